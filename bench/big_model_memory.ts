/**
 * Do models larger than the wasm heap fit, with their frozen weights outside it
 * (lib/engine/external_weights.ts)? Two scenarios, one per process so each peak RSS is its own:
 *
 * `--model 4b` (default): every weight matrix of a Qwen3-4B-shaped checkpoint (36 layers,
 * d=2560, 32/8 heads of 128, SwiGLU 9728, tied 151936 x 2560 embedding) allocated in bf16
 * host storage with random values, then one decode step's worth of linear products at M=1
 * (7 per layer, 36 layers, then the tied LM head), a few times: the per-token time of the
 * linears (attention over a short cache and the norms add little at batch 1).
 *
 * `--model 1.7b-lora`: a Qwen3-1.7B shape (28 layers, d=2048, 16/8 heads, SwiGLU 6144, tied
 * 151936 x 2048 embedding) in bf16 host storage, LoRA adapters (rank 16, on q_proj and v_proj,
 * in the heap) and training steps over `--rows` tokens (@default 128: a GRPO micro-batch of completions; at 256 the backward pass outgrows the 4 GiB heap, since tfjs keeps every intermediate of the stack): a
 * stack of simplified blocks (q/k/v/o and the SwiGLU MLP through the external weights with
 * residuals; attention mixing and norms left out) and the LM head over the rows in chunks of
 * 128, its log-softmax picked at random targets as the loss; gradients for the adapters only.
 *
 * `--from DIR` reads the weights from the sharded bf16 checkpoint in DIR instead (writing a
 * synthetic one there first when DIR has no model.safetensors.index.json) with
 * lib/model/external_load.ts: the peak RSS then shows that loading holds each tensor once.
 * `--helper` turns on the bf16 helper thread (lib/engine/bf16_helper.ts) for M <= 16 products
 * (for `4b`, on every other decode step, to compare in the same process).
 * Prints times, the wasm heap and the process's peak RSS (VmHWM).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { enableBlas } from "../lib/engine/blas.ts";
import { registerWasmKernels } from "../lib/engine/kernels.ts";
import { f32ToBf16Array } from "../lib/engine/bf16_convert.ts";
import { type ExternalMatrix, externalMatrix } from "../lib/engine/external_matrix.ts";
import {
  disableBf16Helper,
  enableBf16Helper,
  externalGather,
  externalMatMul,
  externalWeightsInfo,
} from "../lib/engine/external_weights.ts";
import { makeRng } from "../lib/data/rng.ts";
import { openCheckpoint, readExternalMatrix } from "../lib/model/external_load.ts";
import { writeSyntheticCheckpoint } from "./synthetic_checkpoint.ts";
import { join } from "node:path";
import { peakRssMiB, wasmHeapMiB } from "./common.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "4b" },
    rows: { type: "string", default: "128" },
    steps: { type: "string", default: "3" },
    helper: { type: "boolean", default: false },
    from: { type: "string" },
  },
});

interface Shape {
  layers: number;
  d: number;
  heads: number;
  kvHeads: number;
  ff: number;
  vocab: number;
}
const SHAPES: Record<string, Shape> = {
  "4b": { layers: 36, d: 2560, heads: 32, kvHeads: 8, ff: 9728, vocab: 151936 },
  "1.7b-lora": { layers: 28, d: 2048, heads: 16, kvHeads: 8, ff: 6144, vocab: 151936 },
};
const shape = SHAPES[args.model!];
if (shape === undefined) throw new Error(`--model must be one of ${Object.keys(SHAPES)}`);

await tf.setBackend("wasm");
registerWasmKernels();
enableBlas();
if (!externalWeightsInfo().native) {
  throw new Error(`big_model_memory needs native BLAS: ${externalWeightsInfo().reason}`);
}
if (args.helper && args.model !== "4b") console.log((await enableBf16Helper()).reason);
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
const gib = (mib: number | undefined) => ((mib ?? NaN) / 1024).toFixed(2);
const report = (what: string) =>
  console.log(`${what}: peak RSS ${gib(peakRssMiB())} GiB, wasm heap ${gib(wasmHeapMiB())} GiB`);

/** bf16 random values (normal * 0.02), fast: one 1M block repeated at shifting offsets. */
const block = f32ToBf16Array(
  Float32Array.from({ length: 1 << 20 }, ((r) => () => r.normal() * 0.02)(makeRng(1))),
);
let shift = 0;
function bf16Matrix(name: string, rows: number, cols: number): ExternalMatrix {
  const data = new Uint16Array(rows * cols);
  for (let i = 0; i < data.length;) {
    const s = (shift = (shift + 7919) % 4096);
    const n = Math.min(block.length - s, data.length - i);
    data.set(block.subarray(s, s + n), i);
    i += n;
  }
  return externalMatrix(data, [rows, cols], { name });
}

const { layers, d, heads, kvHeads, ff, vocab } = shape;
const hd = 128;
interface Layer {
  q: ExternalMatrix;
  k: ExternalMatrix;
  v: ExternalMatrix;
  o: ExternalMatrix;
  gate: ExternalMatrix;
  up: ExternalMatrix;
  down: ExternalMatrix;
}
/**
 * A stand-in for attention with the real widths ([M, heads * 128] from q [M, heads * 128] and
 * k, v [M, kvHeads * 128], GQA groups repeated) and gradients to q, k and v, without the
 * mixing over positions (its cost is small next to the linears at these lengths).
 */
function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
  const group = heads / kvHeads;
  return tf.tile(v, [1, group]).add(q.mul(tf.tile(k, [1, group])).mul(0.01));
}

let tLoad = performance.now();
let source = "allocated with random values";
let bytesRead = 0;
let matrix = bf16Matrix;
if (args.from !== undefined) {
  // Weights from a checkpoint on disk (a synthetic one written first when absent).
  const dir = args.from;
  if (!(await exists(join(dir, "model.safetensors.index.json")))) {
    const t = performance.now();
    const bytes = await writeSyntheticCheckpoint(dir, shape);
    console.log(
      `wrote a synthetic bf16 checkpoint to ${dir}: ${(bytes / 2 ** 30).toFixed(2)} GiB in ` +
        `${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
  }
  tLoad = performance.now(); // the read alone
  const ckpt = await openCheckpoint(dir);
  const loaded = new Map<string, ExternalMatrix>();
  for (const name of ckpt.tensors.keys()) {
    if (ckpt.tensors.get(name)!.shape.length !== 2) continue;
    const m = await readExternalMatrix(ckpt, name);
    bytesRead += m.data.byteLength;
    loaded.set(name, m);
  }
  matrix = (name) => loaded.get(name)!;
  source = `read from ${dir} by byte range`;
}
const embed = matrix("model.embed_tokens.weight", vocab, d);
const stack: Layer[] = [];
for (let l = 0; l < layers; l++) {
  const p = `model.layers.${l}`;
  stack.push({
    q: matrix(`${p}.self_attn.q_proj.weight`, heads * hd, d),
    k: matrix(`${p}.self_attn.k_proj.weight`, kvHeads * hd, d),
    v: matrix(`${p}.self_attn.v_proj.weight`, kvHeads * hd, d),
    o: matrix(`${p}.self_attn.o_proj.weight`, d, heads * hd),
    gate: matrix(`${p}.mlp.gate_proj.weight`, ff, d),
    up: matrix(`${p}.mlp.up_proj.weight`, ff, d),
    down: matrix(`${p}.mlp.down_proj.weight`, d, ff),
  });
}
const params = embed.data.length +
  stack.reduce((s, L) => s + Object.values(L).reduce((a, m) => a + m.data.length, 0), 0);
const seconds = (performance.now() - tLoad) / 1000;
console.log(
  `${args.model}: ${(params / 1e9).toFixed(3)}B parameters in bf16 host storage ` +
    `(${(params * 2 / 2 ** 30).toFixed(2)} GiB), ${source} in ${seconds.toFixed(1)} s` +
    (bytesRead > 0 ? ` (${(bytesRead / seconds / 1e9).toFixed(2)} GB/s)` : ""),
);
report("after allocation");

if (args.model === "4b") {
  // With --helper, steps alternate without / with the helper thread (same process, same
  // minutes: on a shared machine that is the only fair comparison).
  const times: Record<string, number[]> = {};
  for (let step = 0; step < Number(args.steps); step++) {
    const mode = args.helper && step % 2 === 1 ? "helper" : "one thread";
    if (args.helper) {
      if (mode === "helper") await enableBf16Helper();
      else disableBf16Helper();
    }
    const t = performance.now();
    tf.tidy(() => {
      let h = externalGather(embed, [step + 1]); // [1, d]
      for (const L of stack) {
        // The attention itself (1 query over a short cache) is left out: it costs ~nothing.
        const q = externalMatMul(h, L.q), k = externalMatMul(h, L.k), v = externalMatMul(h, L.v);
        h = h.add(externalMatMul(attention(q, k, v), L.o));
        const g = externalMatMul(h, L.gate);
        h = h.add(externalMatMul(g.mul(tf.sigmoid(g)).mul(externalMatMul(h, L.up)), L.down));
      }
      const logits = externalMatMul(h, embed); // tied LM head, [1, vocab]
      logits.argMax(1).dataSync();
    });
    const dt = (performance.now() - t) / 1000;
    (times[mode] ??= []).push(dt);
    console.log(`decode step ${step} (${mode}): ${dt.toFixed(2)} s`);
  }
  for (const [mode, ts] of Object.entries(times)) {
    const best = Math.min(...ts);
    console.log(
      `Qwen3-4B bf16 external, one token's linears at M=1 (${mode}): best ${best.toFixed(2)} s ` +
        `(${(1 / best).toFixed(2)} tok/s), ${(params * 2 / best / 1e9).toFixed(1)} GB/s of weights`,
    );
  }
  report("after decode");
} else {
  const rows = Number(args.rows);
  const rank = 16, scale = 32 / rank;
  const rng = makeRng(2);
  const adapters: tf.Variable[] = [];
  const lora = stack.map((L) => {
    const mk = (m: ExternalMatrix) => {
      const out = m.rows, inn = m.cols;
      const a = tf.variable(
        tf.randomNormal([inn, rank], 0, 1 / Math.sqrt(inn), "float32", rng.int(1e6)),
      );
      const b = tf.variable(tf.randomNormal([rank, out], 0, 0.01, "float32", rng.int(1e6)));
      adapters.push(a, b);
      return { a, b };
    };
    return { q: mk(L.q), v: mk(L.v) };
  });
  const ids = Array.from({ length: rows }, () => rng.int(vocab));
  const targets = Array.from({ length: rows }, () => rng.int(vocab));
  const x0 = externalGather(embed, ids); // [rows, d]
  const loraMatMul = (h: tf.Tensor, w: ExternalMatrix, ad: { a: tf.Variable; b: tf.Variable }) =>
    externalMatMul(h, w).add(h.matMul(ad.a).matMul(ad.b).mul(scale));
  const lossFn = () => {
    let h: tf.Tensor = x0;
    for (const [l, L] of stack.entries()) {
      const q = loraMatMul(h, L.q, lora[l].q), k = externalMatMul(h, L.k);
      const v = loraMatMul(h, L.v, lora[l].v);
      h = h.add(externalMatMul(attention(q, k, v), L.o).mul(0.1));
      const g = externalMatMul(h, L.gate);
      h = h.add(externalMatMul(g.mul(tf.sigmoid(g)).mul(externalMatMul(h, L.up)), L.down).mul(0.1));
    }
    // LM head in chunks of 128 rows: [128, vocab] logits at a time (full [rows, vocab] would
    // not fit next to everything else in the heap). -log p(target) = logsumexp(logits) - the
    // target's logit, the latter h . E[target] from a gathered embedding row.
    const parts: tf.Scalar[] = [];
    for (let r0 = 0; r0 < rows; r0 += 128) {
      const n = Math.min(128, rows - r0);
      const hc = h.slice([r0, 0], [n, d]);
      const picked = hc.mul(externalGather(embed, targets.slice(r0, r0 + n))).sum(1);
      parts.push(tf.logSumExp(externalMatMul(hc, embed), 1).sub(picked).sum() as tf.Scalar);
    }
    return tf.addN(parts).div(rows) as tf.Scalar;
  };
  for (let step = 0; step < Number(args.steps); step++) {
    const t = performance.now();
    const { value, grads } = tf.variableGrads(lossFn, adapters);
    const norm = tf.tidy(() =>
      tf.addN(Object.values(grads).map((g) => g.square().sum())).sqrt().dataSync()[0]
    );
    console.log(
      `LoRA step ${step} over ${rows} tokens: loss ${value.dataSync()[0].toFixed(4)}, ` +
        `adapter grad norm ${norm.toExponential(3)}, ${
          ((performance.now() - t) / 1000).toFixed(1)
        } s`,
    );
    tf.dispose([value, ...Object.values(grads)]);
  }
  report(`after ${args.steps} LoRA steps (rank ${rank} on q_proj, v_proj)`);
}
disableBf16Helper(); // the helper Worker would keep the process alive
