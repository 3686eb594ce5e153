/**
 * Hugging Face transformers as the referee: tests/ref/hf_families.py builds a small random
 * checkpoint per family with transformers itself (eager attention, float32), saves it with
 * save_pretrained and records HF's logits, every `output_hidden_states` entry and greedy
 * `generate` ids. Each checkpoint is loaded here with `loadModel` and must match:
 *   - logits and EVERY hidden state of a left-padded ragged batch (unpadded positions), <= 1e-4;
 *   - each row run alone vs HF's batch row;
 *   - KV-cache decoding, one token at a time, vs the full forward;
 *   - greedy ids of the toolkit's `generate` (one row, and a left-padded batch) vs HF `generate`;
 *   - save() then loadModel() gives the same logits (HF names and layout written back).
 * Cases: gpt2, llama (GQA, head_dim != d/H, attention_bias), llama with linear, dynamic, llama3
 * and yarn RoPE scaling, mistral (sliding_window 5 < prompt), qwen2, qwen3, gemma2, gemma3_text,
 * phi3 (partial rotary, sliding window) and phi3 longrope.
 *
 * Length-dependent RoPE (dynamic, longrope) picks its frequencies from the longest position of
 * a call, in HF as here: a row alone and the same row in a longer batch then differ, and cached
 * keys keep the frequencies they were computed with, so those two checks are skipped for them.
 *
 * Python: env SAFETY_COMPASS_PYTHON, else `python3`, else /usr/bin/python3, the first that can
 * `import transformers, torch`; without one the suite skips with a message.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { findPython, numberTokenizer, TEST_BACKEND, useTestBackend } from "./_helpers.ts";
import { loadModel } from "../lib/model/load.ts";
import type { Model } from "../lib/model/model.ts";

await useTestBackend();

const TOL = 1e-4;
const SCRIPT = new URL("./ref/hf_families.py", import.meta.url).pathname;

const PY = findPython();
let outDir: string | undefined;
let cases: string[] = [];
if (!PY) {
  console.log(
    "hf_parity_test: skipped (no python with `import transformers, torch`; set " +
      "SAFETY_COMPASS_PYTHON or install torch and transformers)",
  );
} else {
  outDir = await Deno.makeTempDir({ prefix: "sc-hf-parity-" });
  const run = await new Deno.Command(PY, {
    args: [SCRIPT, outDir],
    stdout: "piped",
    stderr: "piped",
    env: { TRANSFORMERS_VERBOSITY: "error", TQDM_DISABLE: "1" },
  }).output();
  if (!run.success) {
    throw new Error(`hf_families.py failed:\n${new TextDecoder().decode(run.stderr)}`);
  }
  cases = JSON.parse(await Deno.readTextFile(join(outDir, "cases.json")));
}

interface Ref {
  case: string;
  n_layer: number;
  vocab: number;
  input_ids: number[][];
  attention_mask: number[][];
  logits: number[][][];
  hidden_states: number[][][][];
  greedy: { prompts: number[][]; new_tokens: number; ids: number[][]; ids_nocache: number[][] };
}

const LENGTH_DEPENDENT = new Set(["llama-dynamic", "phi3-longrope"]);

/** max |a - b| over the unpadded positions of [B][T][*] arrays (b's row `rowB` of B). */
function diffRows(a: number[][][], b: number[][][], mask: number[][], rows = [0, 1]): number {
  let m = 0;
  for (const r of rows) {
    for (let t = 0; t < mask[r].length; t++) {
      if (!mask[r][t]) continue;
      const x = a[r][t], y = b[r][t];
      for (let j = 0; j < x.length; j++) m = Math.max(m, Math.abs(x[j] - y[j]));
    }
  }
  return m;
}

async function arr(t: tf.Tensor): Promise<number[][][]> {
  return (await t.array()) as number[][][];
}

async function check(name: string, model: Model, ref: Ref) {
  const c = model.config;
  const ids = ref.input_ids;
  const mask = ref.attention_mask;
  const report: string[] = [];
  // 1. The left-padded batch: logits and every hidden state.
  const f = model.forward(ids, { attentionMask: mask, hiddenStates: "all" });
  assert.equal(ref.hidden_states.length, c.nLayer + 1);
  const dLogits = diffRows(await arr(f.logits!), ref.logits, mask);
  let dHidden = 0;
  for (let l = 0; l <= c.nLayer; l++) {
    const dl = diffRows(await arr(f.hiddenStates[l]), ref.hidden_states[l], mask);
    report.push(`h${l} ${dl.toExponential(1)}`);
    dHidden = Math.max(dHidden, dl);
  }
  const full = await arr(f.logits!);
  tf.dispose([f.logits!, ...f.hiddenStates]);
  console.log(
    `  ${name}: max |logits diff| ${dLogits.toExponential(2)}, hidden ${
      dHidden.toExponential(2)
    } (${report.join(", ")}; tol ${TOL})`,
  );
  assert.ok(dLogits <= TOL, `${name}: logits differ from HF by ${dLogits}`);
  assert.ok(dHidden <= TOL, `${name}: hidden states differ from HF by ${dHidden}`);

  // 2. Each row alone (no padding) vs HF's batch row.
  let dSingle = 0;
  for (let r = 0; r < ids.length; r++) {
    const padded = mask[r].includes(0);
    if (padded && LENGTH_DEPENDENT.has(name)) continue;
    const row = ids[r].filter((_, t) => mask[r][t]);
    const g = model.forward([row], { hiddenStates: "all" });
    const lg = (await arr(g.logits!))[0];
    const off = ids[r].length - row.length;
    for (let t = 0; t < row.length; t++) {
      for (let v = 0; v < c.vocabSize; v++) {
        dSingle = Math.max(dSingle, Math.abs(lg[t][v] - ref.logits[r][t + off][v]));
      }
    }
    for (let l = 0; l <= c.nLayer; l++) {
      const h = (await arr(g.hiddenStates[l]))[0];
      for (let t = 0; t < row.length; t++) {
        h[t].forEach((x, j) =>
          dSingle = Math.max(dSingle, Math.abs(x - ref.hidden_states[l][r][t + off][j]))
        );
      }
    }
    tf.dispose([g.logits!, ...g.hiddenStates]);
  }
  console.log(`  ${name}: rows alone vs HF batch rows ${dSingle.toExponential(2)}`);
  assert.ok(dSingle <= TOL, `${name}: single rows differ from HF by ${dSingle}`);

  // 3. KV-cache decoding of the padded batch, one column at a time, vs the full forward.
  if (!LENGTH_DEPENDENT.has(name)) {
    const start = 8;
    let step = model.forward(ids.map((r) => r.slice(0, start)), {
      attentionMask: mask.map((r) => r.slice(0, start)),
      useCache: true,
    });
    let dCache = diffRows(
      await arr(step.logits!),
      full.map((r) => r.slice(0, start)),
      mask.map((r) => r.slice(0, start)),
    );
    tf.dispose(step.logits!);
    for (let t = start; t < ids[0].length; t++) {
      const prev = step.cache!;
      step = model.forward(ids.map((r) => [r[t]]), {
        attentionMask: mask.map((r) => r.slice(0, t + 1)),
        cache: prev,
      });
      tf.dispose([...prev.k, ...prev.v]);
      const lg = await arr(step.logits!);
      tf.dispose(step.logits!);
      dCache = Math.max(
        dCache,
        diffRows(lg, full.map((r) => [r[t]]), mask.map((r) => [r[t]])),
      );
    }
    tf.dispose([...step.cache!.k, ...step.cache!.v]);
    console.log(`  ${name}: KV-cache decoding vs full forward ${dCache.toExponential(2)}`);
    assert.ok(dCache <= TOL, `${name}: cached decoding differs by ${dCache}`);
  }

  // 4. Greedy generation vs HF generate, one prompt at a time. For phi3-longrope HF's
  // generate mis-handles the step that crosses original_max_position_embeddings (see
  // tests/ref/hf_families.py); the reference is then HF's greedy by full forwards.
  const expected = name === "phi3-longrope" ? ref.greedy.ids_nocache : ref.greedy.ids;
  for (let r = 0; r < ref.greedy.prompts.length; r++) {
    const gen = await model.generate({
      inputIds: [ref.greedy.prompts[r]],
      maxNewTokens: ref.greedy.new_tokens,
      stopAtEos: false,
    });
    assert.deepEqual(gen.tokenIds[0], expected[r], `${name}: greedy ids of row ${r}`);
  }
  // ... and both prompts in one left-padded batch.
  if (!LENGTH_DEPENDENT.has(name)) {
    const both = await model.generate({
      inputIds: ref.greedy.prompts,
      maxNewTokens: ref.greedy.new_tokens,
      stopAtEos: false,
    });
    assert.deepEqual(both.tokenIds, expected, `${name}: greedy ids of the padded batch`);
  }
}

/** save() writes HF names and layout: the reloaded model computes the same logits. */
async function roundTrip(name: string, model: Model, ref: Ref) {
  const dir = await Deno.makeTempDir({ prefix: "sc-hf-save-" });
  try {
    await model.save(dir);
    const again = await loadModel(dir, { tokenizer: model.tokenizer, backend: TEST_BACKEND });
    const a = model.forward(ref.input_ids, { attentionMask: ref.attention_mask });
    const b = again.forward(ref.input_ids, { attentionMask: ref.attention_mask });
    const d = diffRows(await arr(a.logits!), await arr(b.logits!), ref.attention_mask);
    tf.dispose([a.logits!, b.logits!]);
    again.dispose();
    assert.equal(d, 0, `${name}: save + load changed the logits by ${d}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Case `name`'s checkpoint loaded by the toolkit (weights on the heap or outside it) and its HF reference. */
async function loadCase(name: string, weights: "heap" | "external" = "heap") {
  const dir = join(outDir!, name);
  const ref: Ref = JSON.parse(await Deno.readTextFile(join(dir, "ref.json")));
  const model = await loadModel(dir, {
    tokenizer: numberTokenizer(ref.vocab),
    backend: TEST_BACKEND,
    weights,
  });
  return { model, ref };
}

for (const name of PY ? cases : ["(all families)"]) {
  Deno.test({
    name: `HF parity (transformers as referee): ${name}`,
    ignore: !PY,
    async fn() {
      const { model, ref } = await loadCase(name);
      try {
        await check(name, model, ref);
        await roundTrip(name, model, ref);
      } finally {
        model.dispose();
      }
    },
  });
}

// The same checks with the 2-D weights outside the wasm heap (models larger than the heap).
const EXTERNAL_CASES = ["qwen3", "gemma3_text", "phi3", "gpt2"];
for (const name of PY ? cases.filter((c) => EXTERNAL_CASES.includes(c)) : ["(external weights)"]) {
  Deno.test({
    name: `HF parity with weights outside the wasm heap: ${name}`,
    ignore: !PY,
    async fn() {
      const { model, ref } = await loadCase(name, "external");
      try {
        assert.ok(model.external, "weights are external");
        await check(`${name} (external)`, model, ref);
      } finally {
        model.dispose();
      }
    },
  });
}

if (outDir) {
  Deno.test({
    name: "HF parity: remove the temporary checkpoints",
    fn: () => Deno.remove(outDir!, { recursive: true }),
  });
}
