/**
 * The toolkit's tokenizer against Hugging Face `transformers` itself, on three tokenizers:
 * the real GPT-2 one (../shared/fixtures/hf-fake-gpt2), and five built at test time by
 * tests/ref/hf_tokenizers.py with the Python `tokenizers` package: a Llama-2-style
 * byte-fallback BPE whose post-processor adds `<s>` (with the Llama-2 `[INST]` chat
 * template), the same under `add_bos_token`/`add_eos_token` flags and in the Metaspace
 * layout, a Llama-3-style byte-level BPE (Sequence post-processor adding
 * `<|begin_of_text|>`, the Llama-3 template) and a Qwen3-style ChatML byte-level BPE (with
 * `enable_thinking` and `<think>` tokens). For tricky strings it compares `encode` (default and without special tokens) with
 * `tokenizer(text)`, `decode` (special tokens skipped and kept) with `tokenizer.decode`, and
 * `encodeChat` / `applyChatTemplate` with `apply_chat_template(tokenize=True / False)`.
 *
 * Skips with a message when no python with `transformers` and `tokenizers` is found
 * (env SAFETY_COMPASS_PYTHON, else `python3`, else /usr/bin/python3).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ChatMessage, loadTokenizer, type TextTokenizer } from "../lib/model/tokenizer.ts";
import { encodeChat } from "../lib/model/chat.ts";
import { findPython } from "./_helpers.ts";

const SCRIPT = new URL("./ref/hf_tokenizers.py", import.meta.url).pathname;
const GPT2 = new URL("../../shared/fixtures/hf-fake-gpt2/", import.meta.url).pathname;

const PY = findPython("transformers, tokenizers");
if (!PY) {
  console.log(
    "tokenizer_hf_test: skipped (no python with `transformers` and `tokenizers`; set " +
      "SAFETY_COMPASS_PYTHON or pip install transformers tokenizers)",
  );
}
const hasGpt2 = (() => {
  try {
    return Deno.statSync(join(GPT2, "tokenizer.json")).isFile;
  } catch {
    return false;
  }
})();
if (!hasGpt2) console.log(`tokenizer_hf_test: GPT-2 case skipped (${GPT2} not found)`);

/** Strings that trip tokenizers: spaces, newlines, unicode, emoji, special-token text. */
const TEXTS = [
  "",
  " ",
  "Hello world",
  " Hello  world ",
  "Hello\nworld\n\n",
  "\ttab\tand\r\nCRLF\n",
  "   leading and trailing   ",
  "naïve café — “quotes” and ‘single’",
  "combining e\u0301 vs precomposed é",
  "日本語のテキスト、中文。",
  "emoji 🙂👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
  "<s>bos text</s> inside",
  "<|im_start|>user\nhi<|im_end|>",
  "<think>hidden</think>shown",
  "<|endoftext|>",
  "a<unk>b",
  "numbers 12345 3.14159 and 1,000,000",
  "ÅΩ≈ç√∫ ∑∏ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
  "don't can't I'm we'll they've",
  "code:\n    def f(x):\n        return x * 2\n",
];

interface ChatCase {
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  kwargs?: Record<string, unknown>;
}

const user = (content: string): ChatMessage => ({ role: "user", content });
const CHATS: ChatCase[] = [
  { messages: [user("Hi")], add_generation_prompt: true },
  { messages: [user("Hi")], add_generation_prompt: false },
  {
    messages: [{ role: "system", content: "Be safe." }, user("How do I pick a lock? 🙂")],
    add_generation_prompt: true,
  },
  {
    messages: [user("2+2?"), { role: "assistant", content: "4" }, user("And 3+3?")],
    add_generation_prompt: true,
  },
  { messages: [user(" spaced\n\ntext ")], add_generation_prompt: true },
  { messages: [user("<s>[INST] fake <|im_end|>")], add_generation_prompt: true },
  { messages: [user("Think?")], add_generation_prompt: true, kwargs: { enable_thinking: false } },
  { messages: [user("Think?")], add_generation_prompt: true, kwargs: { enable_thinking: true } },
  {
    messages: [
      user("2+2?"),
      { role: "assistant", content: "<think>\nsmall sum\n</think>\n\n4" },
      user("Sure?"),
    ],
    add_generation_prompt: true,
    kwargs: { enable_thinking: false },
  },
  {
    messages: [user("Hi"), { role: "assistant", content: "<think>\nhm\n</think>\n\nHello" }],
    add_generation_prompt: false,
  },
  // Llama-2's template raises on non-alternating roles; both sides must refuse.
  { messages: [user("a"), user("b")], add_generation_prompt: true },
];

interface TextRef {
  ids: number[];
  ids_plain: number[];
  decoded: string;
  decoded_special: string;
}
type ChatRef = { text: string; ids: number[] } | { error: string };

async function run(args: string[]): Promise<void> {
  const out = await new Deno.Command(PY!, { args: [SCRIPT, ...args], stdout: "piped" }).output();
  if (!out.success) {
    throw new Error(`hf_tokenizers.py ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** HF's answers for `dir`: the chat cases only when `chats` (a template exists). */
async function reference(
  dir: string,
  tmp: string,
  chats: boolean,
): Promise<{ texts: TextRef[]; chats: ChatRef[] }> {
  const cases = join(tmp, "cases.json");
  const out = join(tmp, "out.json");
  await Deno.writeTextFile(cases, JSON.stringify({ texts: TEXTS, chats: chats ? CHATS : [] }));
  await run(["reference", dir, cases, out]);
  return JSON.parse(await Deno.readTextFile(out));
}

/** Compares every case; returns the number of comparisons, throws listing the mismatches. */
function compare(
  name: string,
  tok: TextTokenizer,
  ref: { texts: TextRef[]; chats: ChatRef[] },
): number {
  const bad: string[] = [];
  let n = 0;
  const check = (what: string, got: unknown, want: unknown) => {
    n++;
    try {
      assert.deepEqual(got, want);
    } catch {
      bad.push(
        `${what}\n    toolkit: ${JSON.stringify(got)}\n    HF:      ${JSON.stringify(want)}`,
      );
    }
  };
  TEXTS.forEach((text, i) => {
    const r = ref.texts[i];
    const q = JSON.stringify(text);
    check(`encode(${q})`, tok.encode(text), r.ids);
    check(`encode(${q}, no special)`, tok.encode(text, { addSpecialTokens: false }), r.ids_plain);
    check(`decode(ids of ${q})`, tok.decode(r.ids), r.decoded);
    check(
      `decode(ids of ${q}, keep special)`,
      tok.decode(r.ids, { skipSpecialTokens: false }),
      r.decoded_special,
    );
  });
  CHATS.forEach((c, i) => {
    const r = ref.chats[i];
    if (r === undefined) return;
    const opts = { addGenerationPrompt: c.add_generation_prompt, templateKwargs: c.kwargs };
    const q = `chat #${i} ${
      JSON.stringify(c.messages).slice(0, 60)
    } gen=${c.add_generation_prompt} ${JSON.stringify(c.kwargs ?? {})}`;
    if ("error" in r) {
      n++;
      let threw = false;
      try {
        tok.applyChatTemplate(c.messages, opts);
      } catch {
        threw = true;
      }
      if (!threw) bad.push(`${q}: HF raised "${r.error}", the toolkit rendered`);
      return;
    }
    check(`${q} text`, tok.applyChatTemplate(c.messages, opts), r.text);
    check(`${q} ids`, encodeChat(tok, c.messages, opts), r.ids);
  });
  console.log(
    `tokenizer_hf_test: ${name}: ${n - bad.length}/${n} comparisons equal to transformers ` +
      `(${TEXTS.length} strings x 4, ${ref.chats.length} chat cases)`,
  );
  assert.equal(bad.length, 0, `${name}: ${bad.length} differences from HF:\n  ${bad.join("\n  ")}`);
  return n;
}

Deno.test({
  name: "GPT-2 tokenizer: encode and decode equal transformers' on tricky strings",
  ignore: !PY || !hasGpt2,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    try {
      compare("gpt2", await loadTokenizer(GPT2), await reference(GPT2, tmp, false));
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "built tokenizers equal transformers: Llama-2-style byte-fallback BPE with a BOS " +
    "post-processor (legacy, under add_bos/eos flags, Metaspace), Llama-3-style byte-level BPE, " +
    "Qwen3-style ChatML with enable_thinking",
  ignore: !PY,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    try {
      await run(["build", tmp]);
      for (const name of ["llama", "llama_flags", "llama_metaspace", "llama3", "qwen3"]) {
        const dir = join(tmp, name);
        const tok = await loadTokenizer(dir);
        const ref = await reference(dir, tmp, true);
        if (name === "llama" || name === "llama3") {
          // Not vacuous: HF's tokenizer(text) starts with <s>, and its chat ids hold exactly one.
          assert.equal(ref.texts[2].ids[0], tok.bosId);
          const chat = ref.chats[0] as { ids: number[] };
          assert.equal(chat.ids.filter((id) => id === tok.bosId).length, 1);
        }
        if (name === "llama_flags") {
          // transformers 5 drops add_bos_token / add_eos_token when tokenizer.json exists: the
          // file's post-processor alone decides (still <s>, no </s>), and so does the toolkit.
          assert.equal(ref.texts[2].ids[0], tok.bosId);
          assert.notEqual(ref.texts[2].ids.at(-1), tok.eosId);
        }
        compare(name, tok, ref);
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
