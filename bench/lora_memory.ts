/**
 * `deno run -A bench/lora_memory.ts [--steps N] [--rank R] [--batch B] [--seq T]`: does LoRA
 * fine-tuning of a 0.5B-parameter Llama-family model fit in 8 GiB? Builds a Qwen2-0.5B-shaped
 * model with random weights (24 layers, d=896, 14 heads / 2 KV heads, SwiGLU 4864, vocab
 * 151936, tied embeddings, q/k/v biases: 494M parameters), adds LoRA adapters (rank 8 on the
 * attention projections by default), runs SFT steps with micro-batches of 1 and AdamW state in
 * host memory, and prints tokens/s, the wasm heap and the process's peak resident memory.
 *
 * @module
 */

import { createModel } from "../lib/model/create.ts";
import { addLora } from "../lib/model/lora.ts";
import { trainSft } from "../lib/train/sft.ts";
import { numberTokenizer, peakRssMiB, wasmHeapMiB } from "./common.ts";

const num = (name: string, dflt: number) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
};
const steps = num("steps", 3);
const rank = num("rank", 8);
const batch = num("batch", 4);
const seq = num("seq", 128);
const VOCAB = 151936;

const tokenizer = numberTokenizer(VOCAB);
const peakRssGiB = () => (peakRssMiB() ?? NaN) / 1024;
const heapGiB = () => (wasmHeapMiB() ?? NaN) / 1024;

const t0 = performance.now();
const model = await createModel({
  arch: "llama",
  modelType: "qwen2",
  vocabSize: VOCAB,
  nLayer: 24,
  dModel: 896,
  nHead: 14,
  nKvHead: 2,
  dFf: 4864,
  maxPositions: 1024,
  ropeTheta: 1e6,
  attnBias: true,
  tieWordEmbeddings: true,
}, { tokenizer, backend: "wasm", seed: 1, name: "qwen2-0.5b-shape (random)" });
const built = (performance.now() - t0) / 1000;
const adapted = addLora(model, { rank });
console.log(
  `${model} built in ${built.toFixed(0)} s; LoRA rank ${rank} on ${adapted.length} matrices; ` +
    `heap ${heapGiB().toFixed(2)} GiB, peak RSS ${peakRssGiB().toFixed(2)} GiB`,
);
const half = seq / 2;
const examples = Array.from({ length: batch * steps }, (_, i) => ({
  prompt: Array.from({ length: half }, (_, j) => 1 + ((i * 131 + j * 17) % (VOCAB - 1))).join(" "),
  response: Array.from({ length: half }, (_, j) => 1 + ((i * 71 + j * 29) % (VOCAB - 1))).join(" "),
}));
const run = await trainSft(model, examples, {
  steps,
  batchSize: batch,
  microBatch: 1,
  stateLocation: "host",
  lr: 1e-4,
  appendEos: false,
  label: "lora",
});
const last = run.history.at(-1)!;
console.log(
  `LoRA SFT: ${steps} steps of ${batch} x ${seq} tokens (micro-batches of 1, AdamW state in host ` +
    `memory): ${run.tokensPerSecond.toFixed(1)} tok/s, last loss ${last.loss.toFixed(3)}; ` +
    `wasm heap ${heapGiB().toFixed(2)} GiB, peak RSS ${peakRssGiB().toFixed(2)} GiB ` +
    `(the 8 GiB target: ${peakRssGiB() <= 8 ? "fits" : "does not fit"})`,
);
