/**
 * Data-parallel supervised fine-tuning on a {@link WorkerPool}: `trainSft(model, examples,
 * { workers: pool })`.
 *
 * Every step's batch (the same seeded, length-bucketed batches as the single-process run)
 * is dealt round-robin into one shard per worker. Each worker computes the gradient of its
 * shard's summed response NLL (micro-batched when `microBatch` is set), writes it into its own
 * part of one SharedArrayBuffer, and returns its target-token count n_k. The all-reduce then
 * runs on every worker at once, each reading every part: the shards' gradients added in worker
 * order and divided by N = sum n_k, which is exactly the gradient of `lmLoss` over the whole
 * batch (a mean over its N target tokens), up to float32 rounding. No gradient crosses a
 * message, and no worker waits for the main thread to add them. Each replica then applies the
 * identical clip + AdamW update, so the replicas stay bit for bit equal (checked every step
 * through their gradient norms). The main thread's model gets the trained weights at the end,
 * at every checkpoint, and after a non-finite loss (the last good step's weights: the NaN guard
 * runs before any update, as in sft.ts). After an update
 * that left a non-finite weight or moment (every replica checks its own after each update,
 * before anything is saved) the replicas are abandoned: the main thread's model keeps the
 * weights of the last checkpoint of the run (or those it started with), and the pool ships
 * them again on its next use.
 *
 * Checkpoints have the single-process layout (model/, optimizer.safetensors,
 * trainer_state.json), so a run can resume with or without workers. Validation losses run
 * on the workers too. Only the SFT loss is supported (a custom loss is a closure, which
 * cannot be sent to a worker).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { WorkerPool } from "./pool.ts";
import type { Model } from "../model/model.ts";
import {
  AdamW,
  type AdamWOptions,
  type AdamWState,
  checkAdamWOptions,
  checkClip,
  type NonFinite,
} from "../optim/adamw.ts";
import { padBatch, type TokenBatch } from "../optim/loss.ts";
import { nonFiniteText, runStepLoop } from "../train/step_loop.ts";
import {
  announceFreshStart,
  batchOrder,
  encodeExamples,
  loadCheckpoint,
  saveCheckpoint,
  type SftExample,
  type SftLogRow,
  type SftOptions,
  type SftResult,
  trainableNames,
} from "../train/sft.ts";

/**
 * A worker's answer to "grad": its shard's summed NLL and target tokens (its summed gradient
 * is in its part of the shared gradient buffer).
 */
interface ShardGrad {
  lossSum: number;
  tokens: number;
}

/** Deals `items` round-robin into `k` shards (lengths in a bucketed batch stay balanced). */
export function shardRoundRobin<T>(items: readonly T[], k: number): T[][] {
  const out = Array.from({ length: k }, () => [] as T[]);
  items.forEach((x, i) => out[i % k].push(x));
  return out;
}

/** Cuts `items` into consecutive chunks of at most `size`. */
function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let s = 0; s < items.length; s += size) out.push(items.slice(s, s + size));
  return out;
}

/**
 * Mean response NLL of token batches on the workers, as sft.ts `evalLoss` computes it (each
 * batch's mean weighted by its target tokens); the workers must already hold the weights.
 */
async function evalBatches(pool: WorkerPool, batches: TokenBatch[]): Promise<number> {
  const per = await pool.map(
    batches,
    (b, w) => pool.call<{ loss: number; tokens: number }[]>(w, "evalLoss", { batches: [b] }),
  );
  let total = 0, count = 0;
  per.forEach(([r], i) => {
    const b = batches[i];
    if (b.lossMask[0].length > 1) {
      total += r.loss * r.tokens;
      count += r.tokens;
    }
  });
  return total / Math.max(count, 1);
}

/** The validation batches of `evalLoss` (64 examples each, in order). */
function evalBatchesOf(model: Model, examples: SftExample[], batchSize = 64): TokenBatch[] {
  const enc = encodeExamples(model, examples);
  const pad = model.tokenizer.padId ?? 0;
  return chunks(enc, batchSize).map((part) =>
    padBatch(part.map((e) => e.seq), part.map((e) => e.lossFrom), pad)
  );
}

/** evalLossOnWorkers inside the pool's exclusive section. */
async function evalLossOnWorkersHeld(
  pool: WorkerPool,
  model: Model,
  examples: SftExample[],
  batchSize = 64,
): Promise<number> {
  await pool.sync(model);
  return await evalBatches(pool, evalBatchesOf(model, examples, batchSize));
}

/**
 * sft.ts `evalLoss` on the workers: mean response NLL of `examples`, batches of `batchSize`
 * spread over the pool. Ships the model's weights first when the pool does not hold them.
 */
export function evalLossOnWorkers(
  pool: WorkerPool,
  model: Model,
  examples: SftExample[],
  batchSize = 64,
): Promise<number> {
  return pool.exclusive(() => evalLossOnWorkersHeld(pool, model, examples, batchSize));
}

/** An encoded example: its token ids and the index of its first target (the response). */
export interface EncodedExample {
  /** Prompt + response (+ eos) token ids. */
  seq: number[];
  /** First position whose token is a target (positions before it carry no loss). */
  lossFrom: number;
}

/** Options of {@link DataParallelTrainer.start}. */
export interface DataParallelOptions extends AdamWOptions {
  /** Global gradient-norm clip (0 = off). @default 1 */
  clip?: number;
  /** Restore this optimiser state on every replica (resumption). */
  state?: AdamWState;
}

/** What one {@link DataParallelTrainer.step} did. */
export interface DataParallelStep {
  /** The batch's mean response NLL (lmLoss over the whole batch). */
  loss: number;
  /** The gradient's global norm before clipping (NaN when no update was applied). */
  gradNorm: number;
  /** Target tokens of the batch (the loss's denominator). */
  targetTokens: number;
  /** False when the loss was not finite: then no replica changed. */
  applied: boolean;
  /** Set when the update left a non-finite weight or moment on the replicas: where. */
  nonFinite?: NonFinite;
}

/**
 * The data-parallel step on its own (what {@link trainSftOnWorkers} loops over): replicas of
 * `model`'s trained variables and one AdamW each, on `pool`'s workers. Each {@link step}
 * shards a batch, all-reduces the gradients on the main thread and applies the identical
 * update everywhere; {@link pullWeights} copies the result into `model`.
 */
export class DataParallelTrainer {
  /** The trained parameters' names, in the optimiser's order. */
  readonly names: string[];
  readonly #pool: WorkerPool;
  readonly #model: Model;
  #ended = false;
  #abandoned = false;

  private constructor(pool: WorkerPool, model: Model, names: string[]) {
    this.#pool = pool;
    this.#model = model;
    this.names = names;
  }

  /**
   * Ships `model`'s weights when the pool lacks them and starts an optimiser on every
   * replica for the model's trainable variables (its LoRA adapters when it has some).
   */
  static async start(
    pool: WorkerPool,
    model: Model,
    opts: DataParallelOptions,
  ): Promise<DataParallelTrainer> {
    const names = trainableNames(model);
    const vars = names.map((n) => model.params.get(n)!);
    await pool.sync(model);
    const { clip = 1, state, ...adamw } = opts;
    // One part per worker: worker k writes its shard's gradient at [k * total, (k + 1) * total).
    const total = vars.reduce((a, v) => a + v.size, 0);
    const grads = new SharedArrayBuffer(pool.size * total * 4);
    const decay = vars.map((v) => v.shape.length === 2);
    await pool.broadcast<number>(
      "trainStart",
      (rank: number) => ({ names, decay, clip, adamw, grads, rank, total }),
    );
    if (state) await pool.broadcast("setOptState", state);
    return new DataParallelTrainer(pool, model, names);
  }

  /**
   * One optimiser step on `examples` (one batch): dealt round-robin to the workers, each
   * shard cut into micro-batches of `microBatch` and padded with `pad`. When the loss is not
   * finite nothing is applied (`applied` false).
   */
  async step(
    examples: EncodedExample[],
    opts: { lrScale?: number; microBatch?: number; pad?: number } = {},
  ): Promise<DataParallelStep> {
    if (this.#ended) throw new Error("DataParallelTrainer.step after end()");
    const pool = this.#pool;
    const pad = opts.pad ?? 0;
    const collate = (part: EncodedExample[]) =>
      padBatch(part.map((e) => e.seq), part.map((e) => e.lossFrom), pad);
    const parts = await Promise.all(
      shardRoundRobin(examples, pool.size).map((shard, k) =>
        shard.length === 0 ? undefined : pool.call<ShardGrad>(k, "grad", {
          parts: chunks(shard, opts.microBatch ?? shard.length).map(collate),
        })
      ),
    );
    const from = parts.flatMap((p, k) => (p === undefined ? [] : [k]));
    const n = from.reduce((a, k) => a + parts[k]!.tokens, 0);
    const loss = from.reduce((a, k) => a + parts[k]!.lossSum, 0) / Math.max(n, 1);
    if (!Number.isFinite(loss)) return { loss, gradNorm: NaN, targetTokens: n, applied: false };
    // All-reduce on the workers: the parts of `from`, added in that order, over N target tokens.
    const out = await pool.broadcast<{ norm: number; bad?: NonFinite }>("apply", {
      from,
      inv: 1 / Math.max(n, 1),
      lrScale: opts.lrScale ?? 1,
    });
    const norms = out.map((o) => o.norm);
    const bad = out.find((o) => o.bad)?.bad;
    if (bad) return { loss, gradNorm: norms[0], targetTokens: n, applied: true, nonFinite: bad };
    if (norms.some((x) => !Object.is(x, norms[0]))) {
      throw new Error(
        `Data-parallel step: the replicas' gradient norms differ (${norms.join(", ")}), so ` +
          `their weights have diverged; the workers must share one backend and kernels`,
      );
    }
    return { loss, gradNorm: norms[0], targetTokens: n, applied: true };
  }

  /** Copies the replicas' trained values (worker 0's) into the main thread's model. */
  async pullWeights(): Promise<void> {
    const flat = await this.#pool.call<Float32Array>(0, "weights", { names: this.names });
    let at = 0;
    for (const n of this.names) {
      const v = this.#model.params.get(n)!;
      const t = tf.tensor(flat.subarray(at, at + v.size), v.shape, "float32");
      v.assign(t);
      t.dispose();
      at += v.size;
    }
    this.#pool.markSynced(this.#model);
  }

  /** The optimiser's state (worker 0's; every replica's is the same). */
  optimizerState(): Promise<AdamWState> {
    return this.#pool.call<AdamWState>(0, "optState", {});
  }

  /**
   * Marks the replicas' weights as unusable (an update left non-finite values): {@link end}
   * then leaves the model's weights as they are and the pool forgets what it holds.
   */
  abandon(): void {
    this.#abandoned = true;
  }

  /**
   * Brings the trained weights into the model and frees the replicas' optimisers
   * (idempotent). If the weights cannot be read back (a crashed worker), or the replicas
   * were {@link abandon}ed, the pool forgets what it holds, so its next use ships the
   * model's weights again.
   */
  async end(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#abandoned) this.#pool.invalidate();
    else await this.pullWeights().catch(() => this.#pool.invalidate());
    if (this.#pool.alive) {
      await this.#pool.broadcast("trainEnd", {}).catch(() => this.#pool.invalidate());
    }
  }
}

/** trainSftOnWorkers inside the pool's exclusive section. */
async function trainSftOnWorkersHeld(
  pool: WorkerPool,
  model: Model,
  examples: SftExample[],
  opts: SftOptions = {},
): Promise<SftResult> {
  if (examples.length === 0) throw new Error("trainSft: no examples");
  const bs = Math.min(opts.batchSize ?? 32, examples.length);
  const micro = opts.microBatch;
  if (micro !== undefined && !(Number.isInteger(micro) && micro >= 1)) {
    throw new Error(`SFT: microBatch must be a whole number >= 1, got ${micro}`);
  }
  const enc = encodeExamples(model, examples, opts.appendEos ?? true);
  const pad = model.tokenizer.padId ?? 0;
  const order = batchOrder(enc.length, bs, opts.seed ?? 0, enc.map((e) => e.seq.length));
  const steps = opts.steps ?? Math.max(1, Math.floor(examples.length / bs));
  const { onStep: _o, validation: _v, workers: _w, ...stateOptions } = opts;
  const adamw: AdamWOptions = {
    lr: opts.lr ?? 1e-3,
    weightDecay: opts.weightDecay ?? 0.01,
    stateLocation: opts.stateLocation ?? "heap",
  };
  checkAdamWOptions(adamw, "SFT");
  checkClip(opts.clip ?? 1, "SFT");
  let start = 0;
  let history: SftLogRow[] = [];
  let resumed: AdamWState | undefined;
  if (opts.resume && opts.checkpointDir) {
    const opt = new AdamW({ ...adamw, stateLocation: "host" });
    try {
      const st = await loadCheckpoint(model, opts.checkpointDir, opt, steps);
      if (st) {
        ({ step: start, history } = st);
        resumed = await opt.getState();
      } else announceFreshStart("SFT", opts.checkpointDir);
    } finally {
      opt.dispose();
    }
  }
  const trainer = await DataParallelTrainer.start(pool, model, {
    ...adamw,
    clip: opts.clip ?? 1,
    state: resumed,
  });
  const vars = trainer.names.map((n) => model.params.get(n)!);
  const validation = opts.validation?.length ? evalBatchesOf(model, opts.validation) : undefined;
  let pulledBad = false;
  try {
    return await runStepLoop(
      { name: "SFT", steps, start, history, lr: adamw.lr, resumed: resumed !== undefined },
      { ...opts, label: opts.label ?? "sft" },
      {
        step: async (step, scale) => {
          const idx = order(step);
          const r = await trainer.step(idx.map((i) => enc[i]), {
            lrScale: scale,
            microBatch: micro,
            pad,
          });
          let tokens = 0;
          for (const i of idx) tokens += enc[i].seq.length;
          const nonFinite = r.nonFinite ? nonFiniteText(r.nonFinite, trainer.names) : undefined;
          return { loss: r.loss, applied: r.applied, gradNorm: r.gradNorm, tokens, nonFinite };
        },
        restore: async (lastGood) => {
          trainer.abandon();
          const dir = opts.checkpointDir;
          if (lastGood !== undefined && dir) {
            const opt = new AdamW({ ...adamw, stateLocation: "host" });
            try {
              await loadCheckpoint(model, dir, opt);
            } finally {
              opt.dispose();
            }
            return `the model was restored from the last good checkpoint (step ${lastGood}) in ${dir}`;
          }
          // Else the model holds the weights of its last pull: those it started with, unless
          // the failed save pulled the replicas' weights.
          return pulledBad
            ? "the model in memory keeps the failed update: reload the model"
            : "the model keeps the weights it had before this run";
        },
        validate: validation ? () => evalBatches(pool, validation) : undefined,
        checkpoint: async (step, hist) => {
          pulledBad = true; // until the save below has checked every value
          await trainer.pullWeights();
          const opt = new AdamW({ ...adamw, stateLocation: "host" });
          try {
            opt.setState(vars, await trainer.optimizerState());
            await saveCheckpoint(model, opts.checkpointDir!, opt, {
              step,
              history: hist,
              options: stateOptions,
            });
            pulledBad = false;
          } finally {
            opt.dispose();
          }
        },
      },
    );
  } finally {
    // Also after a failure: the replicas hold the last good step's weights (no update is
    // applied on a non-finite loss), which the model gets, as in the single-process loop.
    await trainer.end();
  }
}

/**
 * Fine-tunes `model` in place on `examples` with data parallelism over `pool` (see the
 * module notes); the options and the result are {@link trainSft}'s. Reached through
 * `trainSft(model, examples, { workers: pool })`.
 */
export function trainSftOnWorkers(
  pool: WorkerPool,
  model: Model,
  examples: SftExample[],
  opts: SftOptions = {},
): Promise<SftResult> {
  return pool.exclusive(() => trainSftOnWorkersHeld(pool, model, examples, opts));
}
