/**
 * Models larger than the wasm heap, end to end through the public API: a Qwen3-shaped,
 * random-weight, sharded bf16 checkpoint (as real checkpoints ship; written by
 * bench/synthetic_checkpoint.ts, streamed, never committed) is loaded with `loadModel` (its
 * 2-D weights go outside the heap automatically), then
 * - `--model 4b` (default): collects the hidden states of every layer and generates at B=1;
 * - `--model 1.7b`: adds LoRA adapters (rank 16, q_proj and v_proj) and runs one GRPO step
 *   (2 prompts x 2 rollouts, one rollout per gradient update: four at once outgrow the heap
 *   in the backward pass) with `trainRL`.
 * Prints the times, the wasm heap and the process's peak RSS (VmHWM). One model per process,
 * so each peak is its own.
 *
 *   deno run -A bench/big_model.ts --model 4b [--dir /tmp/sc-qwen3-4b] [--new 16]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { initBackend } from "../lib/engine/backend.ts";
import { externalWeightsInfo } from "../lib/engine/external_weights.ts";
import { loadModel } from "../lib/model/load.ts";
import { addLora } from "../lib/model/lora.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import { trainRL } from "../lib/train/rl/train.ts";
import type { PromptRow } from "../lib/data/schema.ts";
import { type QwenShape, writeSyntheticCheckpoint } from "./synthetic_checkpoint.ts";
import { qwen3Config } from "./real_size.ts";
import { numberTokenizer, peakRssMiB, wasmHeapMiB } from "./common.ts";

const SHAPES: Record<string, QwenShape> = {
  "4b": { layers: 36, d: 2560, heads: 32, kvHeads: 8, ff: 9728, vocab: 151936 },
  "1.7b": { layers: 28, d: 2048, heads: 16, kvHeads: 8, ff: 6144, vocab: 151936 },
};

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "4b" },
    dir: { type: "string" },
    new: { type: "string", default: "16" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log("deno run -A bench/big_model.ts [--model 4b|1.7b] [--dir DIR] [--new N]");
  Deno.exit(0);
}
const shape = SHAPES[args.model];
if (!shape) throw new Error(`--model is '${args.model}'; use one of ${Object.keys(SHAPES)}`);
const dir = args.dir ?? `/tmp/sc-qwen3-${args.model}`;
const newTokens = Number(args.new);

const t0 = performance.now();
const secs = (t: number) => ((performance.now() - t) / 1000).toFixed(1);
const mem = () =>
  `peak RSS ${((peakRssMiB() ?? NaN) / 1024).toFixed(2)} GiB, wasm heap ${
    ((wasmHeapMiB() ?? 0) / 1024).toFixed(2)
  } GiB`;

try {
  await Deno.stat(join(dir, "config.json"));
} catch {
  console.log(`writing a random Qwen3-${args.model} bf16 checkpoint into ${dir} ...`);
  const t = performance.now();
  const bytes = await writeSyntheticCheckpoint(dir, shape);
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(qwen3Config(shape), null, 2));
  console.log(`  ${(bytes / 2 ** 30).toFixed(2)} GiB in ${secs(t)} s`);
}

const backend = await initBackend("wasm");
console.log(`backend: ${backend.reason}; external weights: ${externalWeightsInfo().reason}`);
let t = performance.now();
const model = await loadModel(dir, { tokenizer: numberTokenizer(shape.vocab) });
console.log(
  `loaded ${model} in ${secs(t)} s: ${
    model.external?.size ?? 0
  } matrices outside the heap; ${mem()}`,
);

const prompt = (i: number, n: number) =>
  Array.from({ length: n }, (_, k) => 1000 + ((i * 7919 + k * 104729) % 100000)).join(" ");

if (args.model === "4b") {
  t = performance.now();
  const rows = Array.from({ length: 4 }, (_, i) => ({ prompt: prompt(i, 32), trace: "" }));
  const acts = await collectActivations(model, rows, {
    layers: Array.from({ length: shape.layers + 1 }, (_, l) => l),
    pooling: "mean",
    batchSize: 4,
    progress: "silent",
  });
  console.log(
    `collected ${acts.layers.length} layers x ${rows.length} rows x 32 tokens in ${secs(t)} s ` +
      `(${acts.tokensPerSecond.toFixed(1)} tok/s); ${mem()}`,
  );
  t = performance.now();
  const g = await model.generate({
    prompts: [prompt(9, 16)],
    maxNewTokens: newTokens,
    temperature: 0,
    chat: false,
  });
  const s = (performance.now() - t) / 1000;
  console.log(
    `generated ${g.tokenIds[0].length} tokens at B=1 in ${s.toFixed(1)} s ` +
      `(${(g.tokenIds[0].length / s).toFixed(2)} tok/s, prompt prefill included); ${mem()}`,
  );
} else {
  addLora(model, { rank: 16, targets: ["q_proj", "v_proj"] });
  const prompts: PromptRow[] = [0, 1].map((i) => ({
    id: `p${i}`,
    prompt: prompt(i, 24),
    label: "benign",
    category: "bench",
    source: "bench",
  }));
  t = performance.now();
  const log = await trainRL(model, {
    algorithm: "grpo",
    prompts,
    rewards: [{ name: "len", weight: 1, fn: (ctx) => ctx.completionIds.length / newTokens }],
    steps: 1,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: newTokens,
    temperature: 1,
    lr: 1e-4,
    // One rollout per gradient update: 4 x 40 tokens at once outgrow the 4 GiB heap in the
    // backward pass (tfjs keeps every intermediate of the 28 blocks and the 151936-way head).
    minibatch: 1,
  });
  console.log(
    `one LoRA GRPO step (2 prompts x 2 rollouts x ${newTokens} new tokens, one rollout per ` +
      `update) in ${secs(t)} s, ` +
      `reward ${log.rows[0].reward.toFixed(3)}; ${mem()}`,
  );
}
console.log(`total ${secs(t0)} s`);
