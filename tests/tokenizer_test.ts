/**
 * Tests of the tokenizer wrapper: GPT-2 golden ids on the shared fixture, special-token ids,
 * chat templates (string, named list, chat_template.jinja, plain fallback) and the errors
 * for missing or broken files.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ChatMessage,
  loadTokenizer,
  plainChatPrompt,
  tokenizerFromJson,
} from "../lib/model/tokenizer.ts";
import { metaspaceDecodeChain } from "../lib/model/tokenizer_fixes.ts";

const shared = new URL("../../shared/", import.meta.url);
const fixture = new URL("fixtures/hf-fake-gpt2/", shared).pathname;
const hasFixture = (() => {
  try {
    return Deno.statSync(join(fixture, "tokenizer.json")).isFile;
  } catch {
    return false;
  }
})();
if (!hasFixture) console.warn(`skipping tokenizer fixture tests: ${fixture} not found`);

const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + " +
  "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}" +
  "{% endif %}";

const convo: ChatMessage[] = [
  { role: "system", content: "Be safe." },
  { role: "user", content: "Hi" },
];

/** A temporary model folder holding the fixture's tokenizer.json and the given extra files. */
async function folderWith(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(join(fixture, "tokenizer.json"), join(dir, "tokenizer.json"));
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
  return dir;
}

Deno.test({
  name: "GPT-2 fixture: golden ids, decode round trip, special tokens",
  ignore: !hasFixture,
  fn: async () => {
    const tok = await loadTokenizer(fixture);
    const ids = tok.encode("Hello world, how are you?");
    assert.deepEqual(ids, [15496, 995, 11, 703, 389, 345, 30]);
    assert.equal(tok.decode(ids), "Hello world, how are you?");
    assert.equal(tok.vocabSize, 50257);
    assert.equal(tok.bosId, 50256);
    assert.equal(tok.eosId, 50256);
    assert.equal(tok.padId, undefined);
    assert.equal(tok.tokenToId("Ġworld"), 995);
    assert.equal(tok.idToToken(15496), "Hello");
    assert.equal(tok.tokenToId("not-a-token-xyz"), undefined);
    assert.deepEqual(tok.encode("<|endoftext|>hi"), [50256, 5303]);
    assert.equal(tok.decode([50256, 5303]), "hi");
    assert.equal(tok.decode([50256, 5303], { skipSpecialTokens: false }), "<|endoftext|>hi");
    assert.equal(tok.hasChatTemplate, false);
    assert.equal(tok.applyChatTemplate(convo), "System: Be safe.\nUser: Hi\nAssistant:");
    assert.equal(
      tok.applyChatTemplate(convo, { addGenerationPrompt: false }),
      "System: Be safe.\nUser: Hi\n",
    );
  },
});

Deno.test("plainChatPrompt formats one line per turn", () => {
  assert.equal(
    plainChatPrompt([{ role: "user", content: "2+2?" }, { role: "assistant", content: "4" }]),
    "User: 2+2?\nAssistant: 4\nAssistant:",
  );
});

Deno.test({
  name: "chat templates render from tokenizer_config.json, named lists and chat_template.jinja",
  ignore: !hasFixture,
  fn: async () => {
    const config = {
      bos_token: "<|endoftext|>",
      eos_token: { content: "<|endoftext|>", special: true },
      pad_token: "!",
      chat_template: "{{ bos_token }}" + CHATML,
    };
    const dir = await folderWith({ "tokenizer_config.json": JSON.stringify(config) });
    try {
      const tok = await loadTokenizer(dir);
      assert.equal(tok.hasChatTemplate, true);
      assert.equal(tok.eosId, 50256);
      assert.equal(tok.padId, 0); // "!" is GPT-2 token 0
      const want = "<|endoftext|><|im_start|>system\nBe safe.<|im_end|>\n" +
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
      assert.equal(tok.applyChatTemplate(convo), want);
      assert.equal(
        tok.applyChatTemplate(convo, { addGenerationPrompt: false }),
        want.slice(0, -"<|im_start|>assistant\n".length),
      );
      // A named list picks "default"; chat_template.jinja overrides the config's template.
      const listed = tokenizerFromJson(
        JSON.parse(await Deno.readTextFile(join(dir, "tokenizer.json"))),
        {
          chat_template: [{ name: "tool_use", template: "T" }, { name: "default", template: "D" }],
        },
      );
      assert.equal(listed.applyChatTemplate(convo), "D");
      await Deno.writeTextFile(join(dir, "chat_template.jinja"), "{{ messages | length }} turns");
      assert.equal((await loadTokenizer(dir)).applyChatTemplate(convo), "2 turns");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "special_tokens_map.json fills special tokens the config lacks",
  ignore: !hasFixture,
  fn: async () => {
    const dir = await folderWith({
      "tokenizer_config.json": JSON.stringify({ eos_token: "." }),
      "special_tokens_map.json": JSON.stringify({ eos_token: "!", pad_token: "<|endoftext|>" }),
    });
    try {
      const tok = await loadTokenizer(dir);
      assert.equal(tok.eosId, 13); // the config's "." wins over the map's "!"
      assert.equal(tok.padId, 50256);
      assert.equal(tok.bosId, undefined);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a failing chat template quotes the Jinja error",
  ignore: !hasFixture,
  fn: async () => {
    const raising = "{% if messages[0]['role'] != 'user' %}" +
      "{{ raise_exception('Conversations must start with a user turn') }}{% endif %}ok";
    const dir = await folderWith({
      "tokenizer_config.json": JSON.stringify({ chat_template: raising }),
    });
    try {
      const tok = await loadTokenizer(dir);
      assert.equal(tok.applyChatTemplate([{ role: "user", content: "x" }]), "ok");
      assert.throws(
        () => tok.applyChatTemplate(convo),
        /Cannot render the chat template of .*tokenizer\.json: ".*Conversations must start with a user turn/,
      );
      const broken = tokenizerFromJson(
        JSON.parse(await Deno.readTextFile(join(dir, "tokenizer.json"))),
        { chat_template: "{% for m in messages %}{{ m.content }}" },
        "broken/tokenizer.json",
      );
      assert.equal(broken.hasChatTemplate, true);
      assert.throws(() => broken.applyChatTemplate(convo), /broken\/tokenizer\.json: "/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("missing or malformed tokenizer files give clear errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(loadTokenizer(dir), (err: Error) => {
      assert.ok(err.message.includes(dir));
      assert.ok(err.message.includes("has no tokenizer.json"));
      return true;
    });
    await Deno.writeTextFile(join(dir, "tokenizer.json"), "{ truncated");
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: not valid JSON/);
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0" }));
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: it has no 'model' field/);
    assert.throws(() => tokenizerFromJson([], undefined, "x.json"), /x\.json: it has no 'model'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Metaspace decoding drops every \u2581 of the first token, as the Rust library does", () => {
  const vocab = { "<s>": 0, "\u2581\u2581": 1, "\u2581a\u2581b": 2, "\u2581c": 3 };
  const json = (decoder: Record<string, unknown>) => ({
    added_tokens: [{ id: 0, content: "<s>", special: true, normalized: false }],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder,
    model: { type: "WordLevel", vocab, unk_token: "<s>" },
  });
  const first = tokenizerFromJson(json({ type: "Metaspace", prepend_scheme: "first" }));
  assert.equal(first.decode([1, 3]), " c");
  assert.equal(first.decode([2, 3]), "ab c");
  assert.equal(first.decode([0, 2], { skipSpecialTokens: false }), "<s> a b");
  const seq = tokenizerFromJson(json({
    type: "Sequence",
    decoders: [{ type: "Metaspace", replacement: "\u2581", prepend_scheme: "never" }],
  }));
  // "never": nothing dropped (Rust tokenizers 0.23 gives the same two strings).
  assert.equal(seq.decode([1, 3]), "   c");
  assert.equal(seq.decode([2, 3]), " a b c");
  assert.deepEqual(metaspaceDecodeChain(["\u2581x"], "\u2581", "always"), ["x"]);
});
