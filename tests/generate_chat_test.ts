/**
 * Prompt encoding, stop ids and reasoning in `generate`, on a word-level tokenizer built
 * here (a TemplateProcessing post-processor adding `<bos>`, `<think>`/`</think>` as added
 * special tokens, a ChatML-like template with a Qwen3-style `enable_thinking` switch) and
 * tiny random models: one BOS per prompt, template kwargs reaching the template, any id of
 * an eos list stopping a row (from options, from generation_config.json at load), the
 * SafetyWorld checkpoints keeping their single eos, and rows split into reasoning and answer.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { TEST_BACKEND, useTestBackend } from "./_helpers.ts";
import { tokenizerFromJson } from "../lib/model/tokenizer.ts";
import { createModel } from "../lib/model/create.ts";
import { generate, type Generator, stopTokenIds } from "../lib/model/generate.ts";
import { loadModel } from "../lib/model/load.ts";
import { encodeChat, encodePrompt } from "../lib/model/chat.ts";
import { readEosTokenIds } from "../lib/model/generation_config.ts";
import { Model } from "../lib/model/model.ts";
import { WorkerPool } from "../lib/parallel/pool.ts";

await useTestBackend();

const SPECIAL = ["<pad>", "<bos>", "<eos>", "<eot>", "<think>", "</think>", "<|user|>", "<|bot|>"];
const WORDS = ["hi", "a", "b", "c", "d", "yes", "no", "think", "?"];
const VOCAB = [...SPECIAL, ...WORDS];
const id = (w: string) => VOCAB.indexOf(w);

/** `<|user|> {content} <eot>` per turn, then `<|bot|>` and, with thinking on, `<think>`. */
const TEMPLATE = "{{ bos_token }}{% for m in messages %}<|user|> {{ m.content }} <eot> " +
  "{% endfor %}{% if add_generation_prompt %}<|bot|>" +
  "{% if enable_thinking is defined and enable_thinking %} <think>" +
  "{% elif enable_thinking is defined %} <think> </think>{% endif %}{% endif %}";

function wordTokenizer(template: string | null = TEMPLATE) {
  const vocab = Object.fromEntries(VOCAB.map((w, i) => [w, i]));
  return tokenizerFromJson({
    version: "1.0",
    added_tokens: SPECIAL.map((content, i) => ({
      id: i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: "WhitespaceSplit" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, {
        Sequence: { id: "A", type_id: 0 },
      }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<bos>": { id: "<bos>", ids: [1], tokens: ["<bos>"] } },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: false },
    model: { type: "WordLevel", vocab, unk_token: "<pad>" },
  }, {
    bos_token: "<bos>",
    eos_token: "<eos>",
    pad_token: "<pad>",
    ...(template === null ? {} : { chat_template: template }),
  });
}

const tok = wordTokenizer();
const model = await createModel(
  { arch: "llama", vocabSize: VOCAB.length, nLayer: 1, dModel: 8, nHead: 2, dFf: 16 },
  { tokenizer: tok, seed: 3, backend: TEST_BACKEND, name: "tiny-chat" },
);
const forced = (...words: string[]) => [{ step: 0, tokens: words.map(id) }];

Deno.test("encode adds the post-processor's BOS by default; a chat prompt has exactly one", () => {
  assert.deepEqual(tok.encode("hi a"), [id("<bos>"), id("hi"), id("a")]);
  assert.deepEqual(tok.encode("hi a", { addSpecialTokens: false }), [id("hi"), id("a")]);
  const chat = encodeChat(tok, [{ role: "user", content: "hi" }]);
  assert.deepEqual(chat, ["<bos>", "<|user|>", "hi", "<eot>", "<|bot|>"].map(id));
  // Plain prompts: tokenizer(prompt), BOS included; without a template "auto" means plain.
  const plain = wordTokenizer(null);
  assert.deepEqual(encodePrompt(plain, "hi"), [id("<bos>"), id("hi")]);
  assert.deepEqual(encodePrompt(tok, "hi", { chat: false }), [id("<bos>"), id("hi")]);
  assert.deepEqual(model.encodePrompt("hi"), chat);
});

Deno.test("generate encodes prompts as HF: one BOS, template kwargs and `thinking` reach the template", async () => {
  const r = await generate(model, { prompts: ["hi", "a b"], maxNewTokens: 1 });
  for (const p of r.promptIds) assert.equal(p.filter((t) => t === id("<bos>")).length, 1);
  assert.deepEqual(r.promptIds[0], ["<bos>", "<|user|>", "hi", "<eot>", "<|bot|>"].map(id));
  const plain = await generate(model, { prompts: ["hi"], chat: false, maxNewTokens: 1 });
  assert.deepEqual(plain.promptIds[0], [id("<bos>"), id("hi")]);
  const on = await generate(model, { prompts: ["hi"], thinking: true, maxNewTokens: 1 });
  assert.deepEqual(on.promptIds[0].slice(-2), [id("<|bot|>"), id("<think>")]);
  const off = await generate(model, {
    prompts: ["hi"],
    chatTemplateKwargs: { enable_thinking: false },
    maxNewTokens: 1,
  });
  assert.deepEqual(off.promptIds[0].slice(-3), [id("<|bot|>"), id("<think>"), id("</think>")]);
  // An explicit chatTemplateKwargs.enable_thinking wins over `thinking`.
  const both = await generate(model, {
    prompts: ["hi"],
    thinking: true,
    chatTemplateKwargs: { enable_thinking: false },
    maxNewTokens: 1,
  });
  assert.deepEqual(both.promptIds[0], off.promptIds[0]);
});

Deno.test("any id of an eos list stops a row; stopAtEos: false runs to maxNewTokens", async () => {
  const g: Generator = { ...model, config: model.config, eosTokenIds: [id("<eot>"), id("d")] };
  assert.deepEqual(stopTokenIds(g), [id("<eot>"), id("d"), id("<eos>")]);
  const r = await generate(g, {
    prompts: ["hi", "hi", "hi"],
    maxNewTokens: 6,
    force: [forced("a", "d"), forced("a", "<eot>"), forced("a", "<eos>")],
  });
  assert.deepEqual(r.tokenIds[0], [id("a"), id("d")]);
  assert.deepEqual(r.tokenIds[1], [id("a"), id("<eot>")]);
  assert.deepEqual(r.tokenIds[2], [id("a"), id("<eos>")]);
  // Options override the model's list; a forced token right after an eos keeps the row going.
  const only = await generate(g, {
    prompts: ["hi", "hi"],
    maxNewTokens: 3,
    eosTokenIds: [id("b")],
    force: [forced("a", "d", "c"), forced("b", "c")],
  });
  assert.deepEqual(only.tokenIds[0], ["a", "d", "c"].map(id));
  assert.deepEqual(only.tokenIds[1].slice(0, 2), ["b", "c"].map(id));
  assert.equal(only.tokenIds[1].length, 3);
  const all = await generate(g, {
    prompts: ["hi"],
    maxNewTokens: 4,
    stopAtEos: false,
    force: [forced("a", "d", "b", "c")],
  });
  assert.deepEqual(all.tokenIds[0], ["a", "d", "b", "c"].map(id));
});

Deno.test("loadModel reads generation_config.json's and config.json's eos lists", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await model.save(dir);
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify({ eos_token_id: [id("<eot>"), id("d")] }),
    );
    const cfg = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
    cfg.eos_token_id = [id("<eos>"), id("<eot>")];
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(cfg));
    const m = await loadModel(dir, { tokenizer: tok });
    try {
      assert.deepEqual(m.eosTokenIds, [id("<eot>"), id("d"), id("<eos>")]);
      assert.deepEqual(m.copy("c").eosTokenIds, m.eosTokenIds);
      const r = await m.generate({ prompts: ["hi"], maxNewTokens: 4, force: [forced("a", "d")] });
      assert.deepEqual(r.tokenIds[0], [id("a"), id("d")]);
    } finally {
      m.dispose();
    }
    await Deno.writeTextFile(join(dir, "generation_config.json"), `{"eos_token_id": "x"}`);
    await assert.rejects(() => readEosTokenIds(dir, {}), /eos_token_id.*integer/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SafetyWorld checkpoints keep their single eos", async () => {
  const m = await loadModel("toy-base");
  try {
    assert.deepEqual(m.eosTokenIds, [2]);
    assert.deepEqual(stopTokenIds(m), [2]);
  } finally {
    m.dispose();
  }
});

Deno.test("generate splits each row into reasoning and answer", async () => {
  const r = await generate(model, {
    prompts: ["hi", "hi", "hi", "hi"],
    maxNewTokens: 5,
    eosTokenIds: [id("<eos>")],
    force: [
      forced("<think>", "a", "b", "</think>", "yes"),
      forced("yes", "no", "<eos>"),
      forced("<think>", "a", "b", "c", "d"), // cut at maxNewTokens inside the reasoning
      forced("a", "</think>", "no", "<eos>"), // no opening tag: the block was opened earlier
    ],
  });
  assert.deepEqual(r.reasoning, ["a b", "", "a b c d", "a"]);
  assert.deepEqual(r.answer, ["yes", "yes no", "", "no"]);
  assert.equal(r.text[0], "a b yes"); // special tags are skipped in `text`
  // A template that opens <think> in the prompt: the generation starts inside it.
  const open = await generate(model, {
    prompts: ["hi", "hi"],
    thinking: true,
    maxNewTokens: 3,
    force: [forced("a", "</think>", "c"), forced("a", "b", "c")],
  });
  assert.deepEqual(open.reasoning, ["a", "a b c"]);
  assert.deepEqual(open.answer, ["c", ""]);
  // enable_thinking: false closes the block in the prompt: all of the generation is answer.
  const closed = await generate(model, {
    prompts: ["hi"],
    thinking: false,
    maxNewTokens: 2,
    force: [forced("a", "b")],
  });
  assert.deepEqual([closed.reasoning, closed.answer], [[""], ["a b"]]);
});

Deno.test("on a worker pool, the model's eos list stops rows and reasoning is split as here", async () => {
  const m = new Model({
    config: model.config,
    tokenizer: tok,
    params: model.params,
    source: "tiny-chat with an eos list",
    backend: model.backend,
    eosTokenIds: [id("d")],
  });
  const opts = {
    prompts: ["hi", "hi", "hi"],
    maxNewTokens: 5,
    thinking: true,
    force: [forced("a", "</think>", "d"), forced("b", "c"), forced("c", "</think>", "a")],
  };
  const here = await m.generate(opts);
  await using pool = await WorkerPool.start({ workers: 1, blas: false });
  const there = await m.generate({ ...opts, workers: pool });
  assert.deepEqual(there.tokenIds, here.tokenIds);
  assert.deepEqual(there.tokenIds[0], ["a", "</think>", "d"].map(id));
  assert.deepEqual([there.reasoning, there.answer], [here.reasoning, here.answer]);
  assert.deepEqual(there.reasoning?.[0], "a");
});
