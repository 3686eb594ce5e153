/**
 * Supervised fine-tuning: prompt/response pairs, loss on the response tokens, AdamW with
 * warm-up + cosine schedule, global-norm clipping, validation loss, a progress bar,
 * seeded batch order, atomic checkpoints and exact resumption. The NaN guard: the learning
 * rate and the other optimiser numbers are checked before any work; a NaN or infinite loss
 * stops the run before the update; after every update the weights and AdamW's moments are
 * checked (one reduction per tensor) before anything is saved, and a non-finite result
 * stops the run and restores the last good checkpoint. Checkpoints never go backwards
 * (`lib/io/checkpoint_dir.ts`), and a damaged one is refused on resume, never restarted over.
 *
 * Options follow TRL's SFTConfig in spirit: typed fields with documented defaults.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import type { Model } from "../model/model.ts";
import { encodePrompt } from "../model/chat.ts";
import { AdamW, checkClip, type StateLocation } from "../optim/adamw.ts";
import { chunk, GradientAccumulator, targetTokens } from "../optim/accumulate.ts";
import { lmLoss, padBatch, type TokenBatch } from "../optim/loss.ts";
import { assertFiniteForSave, nonFiniteText, runStepLoop } from "./step_loop.ts";
import { makeRng } from "../data/rng.ts";
import { writeCheckpointDir } from "../io/checkpoint_dir.ts";
import { saveModel } from "../model/save.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import {
  adamStateFrom,
  checkpointRoot,
  readCheckpointTensors,
  readTrainerState,
} from "./checkpoint_state.ts";
import { paramsFromCheckpoint } from "../model/load.ts";
import { loadLora, saveLora, trainableVariables } from "../model/lora.ts";

/** One supervised example. */
export interface SftExample {
  /** The user turn (wrapped in the chat template when the tokenizer has one). */
  prompt: string;
  /** The target answer; the loss covers only its tokens. */
  response: string;
}

/** SFT settings. */
export interface SftOptions {
  /** Optimiser steps. @default one epoch */
  steps?: number;
  /** Examples per step. @default 32 */
  batchSize?: number;
  /**
   * Examples per forward/backward pass: each step's batch is cut into micro-batches of this
   * many, whose gradients are accumulated (weighted by their target tokens, so the sum is the
   * full batch's gradient) before one clipped update. Peak memory then holds one
   * micro-batch's activations. @default batchSize (off)
   */
  microBatch?: number;
  /**
   * Where AdamW's moments and the accumulated gradients live: "heap" on the backend, "host" as
   * Float32Arrays in JS memory (full fine-tuning of models whose weights, gradients and
   * moments outgrow tfjs-wasm's 4 GiB heap, e.g. GPT-2-small). @default "heap"
   */
  stateLocation?: StateLocation;
  /** Peak learning rate. @default 1e-3 */
  lr?: number;
  /** Warm-up steps. @default 5% of steps */
  warmup?: number;
  /** Final LR as a fraction of the peak. @default 0.1 */
  minLrRatio?: number;
  /** AdamW decoupled weight decay (matrices only). @default 0.01 */
  weightDecay?: number;
  /** Global gradient-norm clip (0 = off). @default 1 */
  clip?: number;
  /** Batch-order seed. @default 0 */
  seed?: number;
  /** Held-out examples for the validation loss. */
  validation?: SftExample[];
  /** Steps between validation losses. @default 100 */
  evalEvery?: number;
  /**
   * Where checkpoints are saved (model/, optimizer.safetensors, trainer_state.json): a link
   * to a generation folder beside it, switched atomically at each save, so a crash never
   * leaves it without a complete checkpoint (see lib/io/checkpoint_dir.ts).
   */
  checkpointDir?: string;
  /** Steps between checkpoints. @default 200 */
  checkpointEvery?: number;
  /**
   * Continue from `checkpointDir` when it holds a checkpoint (with none, the run starts at
   * step 0 and says so once; a damaged one is refused with an error naming the file).
   * @default false
   */
  resume?: boolean;
  /** Append the end-of-sequence token to responses. @default true */
  appendEos?: boolean;
  /** Label for the progress bar. @default "sft" */
  label?: string;
  /** Called after every step. */
  onStep?: (row: SftLogRow) => void;
  /** Stop after this many steps in this call (for tests of resumption). */
  stopAfter?: number;
  /**
   * Data-parallel training on a worker pool (trainSft only): each worker computes the
   * gradient of its share of every batch, the gradients are summed (weighted by target
   * tokens, so the sum is the full batch's gradient) and every replica applies the same
   * AdamW update; see lib/parallel/sft.ts. @default undefined (this thread)
   */
  workers?: SftRunner;
}

/**
 * Something that runs {@link trainSft} elsewhere, such as a `WorkerPool` (lib/parallel,
 * data-parallel with a gradient all-reduce); the single-process code never imports the pool.
 */
export interface SftRunner {
  /** `trainSft(model, examples, opts)` on the runner; trains `model` in place. */
  trainSft(model: Model, examples: SftExample[], opts: SftOptions): Promise<SftResult>;
}

/** One row of the training log. */
export interface SftLogRow {
  /** Steps completed (1-based, counting steps restored from a checkpoint). */
  step: number;
  /** The batch's training loss, computed before the update. */
  loss: number;
  /** Learning rate of this step, after warm-up and cosine decay. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Validation loss, on the steps where it was computed (every `evalEvery` and the last). */
  valLoss?: number;
  /** Tokens processed (prompt + response, no padding) since this call started. */
  tokens: number;
  /** Wall-clock seconds since this call started. */
  seconds: number;
}

/** What {@link trainSft} returns. */
export interface SftResult {
  /** One row per step, including the rows restored from a checkpoint. */
  history: SftLogRow[];
  /** The step training stopped at (`steps`, or earlier with `stopAfter`). */
  steps: number;
  /** Throughput of this call: tokens processed per wall-clock second. */
  tokensPerSecond: number;
}

/** Tokenises examples: chat-formatted prompt + response (+ eos); loss on the response. */
export function encodeExamples(
  model: Model,
  examples: SftExample[],
  appendEos = true,
): { seq: number[]; lossFrom: number }[] {
  const eos = model.tokenizer.eosId ?? model.config.eosTokenId;
  return examples.map((ex, i) => {
    const p = encodePrompt(model.tokenizer, ex.prompt);
    const r = model.tokenizer.encode(ex.response, { addSpecialTokens: false });
    if (p.length === 0) throw new Error(`SFT example ${i}: empty prompt`);
    const seq = [...p, ...r, ...(appendEos && eos !== undefined ? [eos] : [])];
    if (model.config.arch === "gpt2" && seq.length > model.config.maxPositions) {
      throw new Error(
        `SFT example ${i}: ${seq.length} tokens exceed the model's ${model.config.maxPositions} positions`,
      );
    }
    return { seq, lossFrom: p.length };
  });
}

/**
 * Batch indices for each step: a fresh seeded shuffle every epoch. With `lengths`, batches
 * are length-bucketed: each window of 16 batches' worth of shuffled examples is sorted by
 * length and cut into batches, and the batches are shuffled again, so padding (wasted
 * compute) shrinks while every batch stays a random draw of the data.
 */
export function batchOrder(
  n: number,
  batchSize: number,
  seed: number,
  lengths?: readonly number[],
): (step: number) => number[] {
  const perEpoch = Math.max(1, Math.floor(n / batchSize));
  const cache = new Map<number, number[][]>();
  const epochBatches = (e: number) => {
    let batches = cache.get(e);
    if (!batches) {
      const rng = makeRng(seed * 7919 + e);
      const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
      const window = batchSize * 16;
      const sorted: number[] = [];
      for (let s = 0; s < order.length; s += window) {
        const part = order.slice(s, s + window);
        if (lengths) part.sort((a, b) => lengths[a] - lengths[b] || a - b);
        sorted.push(...part);
      }
      batches = Array.from(
        { length: perEpoch },
        (_, k) => sorted.slice(k * batchSize, (k + 1) * batchSize),
      );
      if (lengths) batches = rng.shuffle(batches);
      cache.clear();
      cache.set(e, batches);
    }
    return batches;
  };
  return (step) => epochBatches(Math.floor(step / perEpoch))[step % perEpoch];
}

/** Mean response NLL over examples, in batches. */
export function evalLoss(model: Model, examples: SftExample[], batchSize = 64): number {
  const enc = encodeExamples(model, examples);
  const pad = model.tokenizer.padId ?? 0;
  let total = 0;
  let count = 0;
  for (let s = 0; s < enc.length; s += batchSize) {
    const part = enc.slice(s, s + batchSize);
    const batch = padBatch(part.map((e) => e.seq), part.map((e) => e.lossFrom), pad);
    const n = batch.lossMask.flat().length - batch.lossMask.length;
    const tokens = batch.lossMask.reduce((a, r) => a + r.slice(1).reduce((x, y) => x + y, 0), 0);
    const loss = tf.tidy(() => lmLoss(model.config, model.params, batch).dataSync()[0]);
    if (n > 0) {
      total += loss * tokens;
      count += tokens;
    }
  }
  return total / Math.max(count, 1);
}

/** Names of the variables the optimiser updates, in its order. */
export function trainableNames(model: Model): string[] {
  const vars = new Set(trainableVariables(model));
  return [...model.params].filter(([, v]) => vars.has(v)).map(([n]) => n);
}

/**
 * Writes a training checkpoint as `dir` (a new generation, switched in atomically: see
 * `lib/io/checkpoint_dir.ts`): model/ (+ adapter/), the optimiser's moments
 * (optimizer.safetensors) and trainer_state.json. Throws a `NonFiniteError` and writes
 * nothing when a weight or moment is not finite.
 */
export async function saveCheckpoint(
  model: Model,
  dir: string,
  opt: AdamW,
  state: { step: number; history: SftLogRow[]; options: Record<string, unknown> },
  extra?: (tmp: string) => Promise<void>,
): Promise<void> {
  const s = await opt.getState();
  const names = trainableNames(model);
  // Never a non-finite value in a checkpoint, whatever put it there.
  assertFiniteForSave([
    ...(await Promise.all(
      [...model.params].map(async ([n, v]) => [n, await v.data(), "weights"] as const),
    )),
    ...names.flatMap((n, i) => [
      [n, s.m[i] ?? [], "first moment"] as const,
      [n, s.v[i] ?? [], "second moment"] as const,
    ]),
  ]);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  names.forEach((n, i) => {
    const shape = model.params.get(n)!.shape;
    tensors[`m.${n}`] = { shape, data: s.m[i] };
    tensors[`v.${n}`] = { shape, data: s.v[i] };
  });
  await writeCheckpointDir(dir, state.step, async (tmp) => {
    await saveModel(model, join(tmp, "model"));
    if (model.loraConfig) await saveLora(model, join(tmp, "adapter"));
    await extra?.(tmp);
    await writeSafetensors(join(tmp, "optimizer.safetensors"), tensors, { step: String(s.step) });
    await Deno.writeTextFile(
      join(tmp, "trainer_state.json"),
      JSON.stringify({ step: state.step, history: state.history, options: state.options }, null, 1),
    );
  });
}

/**
 * Restores a checkpoint written by {@link saveCheckpoint} into `model` and `opt`; undefined
 * when `dir` holds none. A damaged checkpoint throws an error naming the file (see
 * `checkpoint_state.ts`); `totalSteps` (the run's length) refuses one beyond the run.
 */
export async function loadCheckpoint(
  model: Model,
  dir: string,
  opt: AdamW,
  totalSteps?: number,
): Promise<{ step: number; history: SftLogRow[] } | undefined> {
  const root = await checkpointRoot(dir);
  if (!root) return undefined;
  const state = await readTrainerState<{ step: number; history: SftLogRow[] }>(root, totalSteps);
  const weights = await readCheckpointTensors(join(root, "model", "model.safetensors"));
  const fresh = paramsFromCheckpoint(model.config, weights, join(root, "model"));
  const names = trainableNames(model);
  let o;
  try {
    o = adamStateFrom(
      join(root, "optimizer.safetensors"),
      await readCheckpointTensors(join(root, "optimizer.safetensors")),
      names.map((n) => [n, model.params.get(n)!.size]),
    );
  } catch (err) {
    tf.dispose([...fresh.values()]);
    throw err;
  }
  for (const [n, v] of fresh) model.params.get(n)!.assign(v);
  tf.dispose([...fresh.values()]);
  if (model.loraConfig) await loadLora(model, join(root, "adapter"));
  opt.setState(names.map((n) => model.params.get(n)!), o);
  return state;
}

/**
 * The one message (console.warn) of a `resume: true` run that found no checkpoint.
 *
 * @example
 * ```ts
 * announceFreshStart("SFT", "runs/sft/ckpt"); // "SFT: resume is set but ... starting at step 0"
 * ```
 */
export function announceFreshStart(name: string, dir: string): void {
  console.warn(`${name}: resume is set but ${dir} holds no checkpoint; starting at step 0`);
}

/**
 * What a supervised trainer plugs into the shared loop of {@link runSupervised}: its batches
 * (as example indices, so the loop can cut them into micro-batches), its loss, and any state
 * its checkpoints must carry besides weights and optimiser.
 */
export interface SupervisedTask<B extends Pick<TokenBatch, "attentionMask" | "lossMask">> {
  /** Name in messages and the progress bar. */
  name: string;
  /** Total optimiser steps. */
  steps: number;
  /** The examples of a step, as indices (deterministic in the step, so resumption is exact). */
  examples(step: number): number[];
  /** A padded batch of these examples (each micro-batch is padded to its own longest). */
  collate(indices: number[]): B;
  /** The differentiable loss of a batch: a mean over its {@link lossWeight} terms. */
  loss(batch: B): tf.Scalar;
  /**
   * How many terms `loss(batch)` averages over: a micro-batch's weight in the step's
   * gradient. @default its target tokens (ones in lossMask[:, 1:]), as lmLoss normalises
   */
  lossWeight?(batch: B): number;
  /** JSON-safe options recorded in trainer_state.json. */
  stateOptions: Record<string, unknown>;
  /** Writes extra checkpoint files into the checkpoint's temporary folder. */
  saveExtra?(tmp: string): Promise<void>;
  /** Restores them from a checkpoint folder. */
  loadExtra?(dir: string): Promise<void>;
}

/**
 * The supervised training loop shared by SFT and the token-wise objective: AdamW with
 * warm-up + cosine, global-norm clipping, NaN guard before any update, validation loss,
 * progress bar, atomic checkpoints and exact resumption.
 */
export async function runSupervised<B extends Pick<TokenBatch, "attentionMask" | "lossMask">>(
  model: Model,
  task: SupervisedTask<B>,
  opts: SftOptions = {},
): Promise<SftResult> {
  const steps = task.steps;
  const vars = trainableVariables(model);
  const decay = vars.map((v) => v.shape.length === 2);
  const location = opts.stateLocation ?? "heap";
  const micro = opts.microBatch;
  if (micro !== undefined && !(Number.isInteger(micro) && micro >= 1)) {
    throw new Error(`${task.name}: microBatch must be a whole number >= 1, got ${micro}`);
  }
  const clip = opts.clip ?? 1;
  checkClip(clip, task.name);
  const opt = new AdamW({
    lr: opts.lr ?? 1e-3,
    weightDecay: opts.weightDecay ?? 0.01,
    stateLocation: location,
  });
  const acc = new GradientAccumulator(vars, location);
  const names = trainableNames(model);
  let start = 0;
  let history: SftLogRow[] = [];
  let resumed = false;
  try {
    if (opts.resume && opts.checkpointDir) {
      const st = await loadCheckpoint(model, opts.checkpointDir, opt, steps);
      if (st) {
        ({ step: start, history } = st);
        resumed = true;
        await task.loadExtra?.((await checkpointRoot(opts.checkpointDir))!);
      } else announceFreshStart(task.name, opts.checkpointDir);
    }
    return await runStepLoop(
      { name: task.name, steps, start, history, lr: opt.opts.lr, resumed },
      opts,
      {
        step: async (step, scale) => {
          const idx = task.examples(step);
          const parts = chunk(idx, Math.min(micro ?? idx.length, idx.length)).map((p) =>
            task.collate(p)
          );
          const loss = await acc.accumulate(
            parts.map((batch) => ({
              batch,
              weight: parts.length === 1 ? 1 : task.lossWeight?.(batch) ?? targetTokens(batch),
            })),
            (b) => task.loss(b),
          );
          if (!Number.isFinite(loss)) return { loss, applied: false, gradNorm: NaN, tokens: 0 };
          const gradNorm = await acc.apply(opt, { clip, lrScale: scale, decay });
          let tokens = 0;
          for (const b of parts) tokens += b.attentionMask.flat().reduce((a, x) => a + x, 0);
          const bad = await opt.nonFinite(vars);
          const nonFinite = bad ? nonFiniteText(bad, names) : undefined;
          return { loss, applied: true, gradNorm, tokens, nonFinite };
        },
        restore: async (lastGood) => {
          const dir = opts.checkpointDir;
          if (lastGood === undefined || !dir) {
            return (dir ? `this run has saved no checkpoint in ${dir} yet, so ` : "") +
              "the model in memory keeps the failed update: reload the model";
          }
          await loadCheckpoint(model, dir, opt);
          return `the model was restored from the last good checkpoint (step ${lastGood}) in ${dir}`;
        },
        validate: opts.validation?.length ? () => evalLoss(model, opts.validation!) : undefined,
        checkpoint: (step, hist) =>
          saveCheckpoint(
            model,
            opts.checkpointDir!,
            opt,
            { step, history: hist, options: task.stateOptions },
            task.saveExtra,
          ),
      },
    );
  } finally {
    acc.dispose();
    opt.dispose();
  }
}

/** Fine-tunes `model` in place on `examples`. */
export function trainSft(
  model: Model,
  examples: SftExample[],
  opts: SftOptions = {},
): Promise<SftResult> {
  if (examples.length === 0) throw new Error("trainSft: no examples");
  if (opts.workers) return opts.workers.trainSft(model, examples, opts);
  const bs = Math.min(opts.batchSize ?? 32, examples.length);
  const enc = encodeExamples(model, examples, opts.appendEos ?? true);
  const pad = model.tokenizer.padId ?? 0;
  const order = batchOrder(enc.length, bs, opts.seed ?? 0, enc.map((e) => e.seq.length));
  const { onStep: _o, validation: _v, ...stateOptions } = opts;
  return runSupervised(model, {
    name: "SFT",
    steps: opts.steps ?? Math.max(1, Math.floor(examples.length / bs)),
    examples: order,
    collate: (idx) => padBatch(idx.map((i) => enc[i].seq), idx.map((i) => enc[i].lossFrom), pad),
    loss: (batch) => lmLoss(model.config, model.params, batch),
    stateOptions,
  }, { label: "sft", ...opts });
}
