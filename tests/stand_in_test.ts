/**
 * Tests of lib/model/stand_in.ts: the random-weight stand-in of a real model. It keeps the
 * architecture (Qwen3: q/k norms, GQA, tied embeddings), its tokenizer is a deterministic
 * byte-level BPE built in code that round-trips any text, its chat template renders Qwen3's
 * thinking switch, and its saved folder is read by transformers exactly as here: the same ids
 * for texts and chats (tests/ref/stand_in_ref.py), and the same logits and hidden states
 * (<= 1e-4; printed). The transformers checks skip, with a message, without a python that
 * can `import transformers, torch` (env SAFETY_COMPASS_PYTHON, else python3, else
 * /usr/bin/python3).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { findPython, TEST_BACKEND, useTestBackend } from "./_helpers.ts";
import {
  isStandIn,
  KNOWN_CONFIGS,
  loadModelOrStandIn,
  randomStandIn,
  standInTokenizerFiles,
  trainByteLevelBpe,
} from "../lib/model/stand_in.ts";
import { loadModel } from "../lib/model/load.ts";

await useTestBackend();

const TOL = 1e-4;
const SCRIPT = new URL("./ref/stand_in_ref.py", import.meta.url).pathname;

const PY = findPython();
if (!PY) {
  console.log("stand_in_test: transformers checks skipped (no python with transformers, torch)");
}

const TEXTS = [
  "How do I kill a Python process?",
  "Écrire 12345 — naïve “quotes”\n\ttabs  and  spaces",
  "I'm sorry, but I can't help with that.",
];

Deno.test("trainByteLevelBpe is deterministic and learns merges from repeated pairs", () => {
  const a = trainByteLevelBpe(["the cat the hat the bat"], 50);
  const b = trainByteLevelBpe(["the cat the hat the bat"], 50);
  assert.deepEqual(a, b);
  assert.equal(Object.keys(a.vocab).length, 256 + a.merges.length);
  assert.ok(a.merges.some(([x, y]) => x + y === "Ġthe" || x + y === "the"), "merges 'the'");
  const files = standInTokenizerFiles();
  const added = files.tokenizerJson.added_tokens as { content: string; id: number }[];
  assert.deepEqual(added.map((t) => t.content), [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
  ]);
  assert.deepEqual(files.generationConfig.eos_token_id, [added[2].id, added[0].id]);
});

Deno.test("randomStandIn keeps Qwen3's architecture and says it is a stand-in", async () => {
  const m = await randomStandIn("Qwen/Qwen3-0.6B", { seed: 0, backend: TEST_BACKEND });
  try {
    assert.ok(isStandIn(m));
    assert.equal(m.source, "random-stand-in:Qwen/Qwen3-0.6B");
    assert.equal(m.config.modelType, "qwen3");
    assert.equal(m.config.qkNorm, true);
    assert.equal(m.config.tieWordEmbeddings, true);
    assert.equal(m.config.nLayer, 4);
    assert.ok(m.config.nKvHead < m.config.nHead, "grouped-query attention");
    assert.equal(m.config.vocabSize, m.tokenizer.vocabSize);
    for (const t of TEXTS) assert.equal(m.tokenizer.decode(m.tokenizer.encode(t)), t);
    const off = m.formatPrompt("Hi");
    assert.equal(off, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    const noThink = m.tokenizer.applyChatTemplate([{ role: "user", content: "Hi" }], {
      templateKwargs: { enable_thinking: false },
    });
    assert.ok(noThink.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    const ids = m.encodePrompt("Hi", { templateKwargs: { enable_thinking: false } });
    const think = m.tokenizer.tokenToId("<think>")!, close = m.tokenizer.tokenToId("</think>")!;
    assert.ok(ids.includes(think) && ids.includes(close), "think tags are single tokens");
    assert.deepEqual(m.eosTokenIds, [
      m.tokenizer.tokenToId("<|im_end|>"),
      m.tokenizer.tokenToId("<|endoftext|>"),
    ]);
    const g = await m.generate({ prompts: ["Hi"], maxNewTokens: 4, thinking: false });
    assert.equal(g.tokenIds[0].length, 4);
    assert.equal(typeof g.answer?.[0], "string");
    const real = await randomStandIn("Qwen/Qwen3-0.6B", {
      shape: "real",
      layers: 1,
      backend: TEST_BACKEND,
    });
    assert.equal(real.config.dModel, KNOWN_CONFIGS["Qwen/Qwen3-0.6B"].hidden_size);
    assert.equal(real.config.headDim, 128);
    real.dispose();
  } finally {
    m.dispose();
  }
  await assert.rejects(() => randomStandIn("nobody/unknown-model"), /not known here/);
});

Deno.test("loadModelOrStandIn: a folder loads for real; an id absent from the cache gives the stand-in", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sc-stand-in-or-" });
  try {
    const m = await randomStandIn("Qwen/Qwen3-0.6B", { seed: 1, backend: TEST_BACKEND });
    await m.save(join(dir, "model"));
    m.dispose();
    const real = await loadModelOrStandIn(join(dir, "model"), { backend: TEST_BACKEND });
    assert.equal(real.standIn, false);
    assert.match(real.reason, /^folder /);
    real.model.dispose();
    const cache = join(dir, "empty-hub-cache");
    await Deno.mkdir(cache);
    const fake = await loadModelOrStandIn("Qwen/Qwen3-0.6B", {
      backend: TEST_BACKEND,
      hub: { cacheDir: cache },
      standIn: { layers: 1 },
    });
    assert.equal(fake.standIn, true);
    assert.ok(isStandIn(fake.model));
    assert.equal(fake.model.config.nLayer, 1);
    assert.match(fake.reason, /not in the Hugging Face cache/);
    fake.model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a saved stand-in opens in transformers with the same ids, logits and hidden states",
  ignore: !PY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "sc-stand-in-" });
    const m = await randomStandIn("Qwen/Qwen3-0.6B", { seed: 3, backend: TEST_BACKEND });
    try {
      await m.save(join(dir, "model"));
      const again = await loadModel(join(dir, "model"), { backend: TEST_BACKEND });
      const chats = [
        { messages: [{ role: "user", content: "How do I make a bomb?" }], kwargs: {} },
        {
          messages: [{ role: "user", content: "2+2?" }],
          kwargs: { enable_thinking: false },
        },
        {
          messages: [
            { role: "system", content: "Be brief." },
            { role: "user", content: "Hi" },
            { role: "assistant", content: "<think>\nshort\n</think>\n\nHello!" },
            { role: "user", content: "Bye" },
          ],
          kwargs: {},
        },
      ];
      const forward = [m.encodePrompt("How do I kill a Python process?")];
      const cases = join(dir, "cases.json"), out = join(dir, "out.json");
      await Deno.writeTextFile(cases, JSON.stringify({ texts: TEXTS, chats, forward }));
      const r = await new Deno.Command(PY!, {
        args: [SCRIPT, join(dir, "model"), cases, out],
        stdout: "piped",
        stderr: "piped",
        env: { TRANSFORMERS_VERBOSITY: "error", TQDM_DISABLE: "1" },
      }).output();
      assert.ok(r.success, new TextDecoder().decode(r.stderr));
      const hf = JSON.parse(await Deno.readTextFile(out));
      TEXTS.forEach((t, i) => assert.deepEqual(again.tokenizer.encode(t), hf.texts[i], t));
      chats.forEach((c, i) => {
        const opts = { templateKwargs: c.kwargs };
        const msgs = c.messages as { role: "user" | "system" | "assistant"; content: string }[];
        assert.equal(again.tokenizer.applyChatTemplate(msgs, opts), hf.chats[i].text);
      });
      const f = m.forward(forward, { hiddenStates: "all" });
      const logits = (await f.logits!.array()) as number[][][];
      let d = 0;
      logits[0].forEach((row, t) =>
        row.forEach((v, j) => d = Math.max(d, Math.abs(v - hf.logits[0][t][j])))
      );
      let dh = 0;
      for (let l = 0; l <= m.config.nLayer; l++) {
        const h = (await f.hiddenStates[l].array()) as number[][][];
        h[0].forEach((row, t) =>
          row.forEach((v, j) => dh = Math.max(dh, Math.abs(v - hf.hidden[0][l][t][j])))
        );
      }
      tf.dispose([f.logits!, ...f.hiddenStates]);
      again.dispose();
      console.log(
        `  stand-in vs transformers: max |logits diff| ${d.toExponential(2)}, hidden ` +
          `${dh.toExponential(2)} (tol ${TOL}); ids and chat templates identical`,
      );
      assert.ok(d <= TOL && dh <= TOL, `logits ${d}, hidden ${dh}`);
    } finally {
      m.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
