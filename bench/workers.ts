/**
 * The data-parallel rows of `deno task bench`: the hot paths on a {@link WorkerPool} (one
 * worker per core, each with its own wasm backend and the OpenBLAS kernel on one BLAS
 * thread), measured like the single-process rows of bench/run.ts (warm-up, then the median
 * of the repeats; weights are shipped during the warm-up).
 *
 * Decoding one sequence (B=1) cannot be split across workers: `decode1` is one stream on one
 * worker (latency), `decodeStreams` one B=1 stream per worker at once (throughput of
 * independent requests).
 *
 * @module
 */

import { WorkerPool } from "../lib/parallel/pool.ts";
import type { Model } from "../lib/model/model.ts";
import { forwardOnWorkers, generateOnWorkers } from "../lib/parallel/generate.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import { DataParallelTrainer } from "../lib/parallel/sft.ts";
import { timeIt } from "./timing.ts";
import type { StateLocation } from "../lib/optim/adamw.ts";

/** The sizes a worker row measures (bench/run.ts's Shape, less its name and config). */
export interface WorkerBenchShape {
  /** Vocabulary size (token ids are drawn below it). */
  vocab: number;
  /** Forward batch: rows x tokens. */
  fwd: { b: number; t: number };
  /** Decoding: rows, prompt tokens, new tokens. */
  gen: { b: number; prompt: number; steps: number };
  /** Training batch, micro-batch and where AdamW's state lives. */
  train: { b: number; t: number; microBatch?: number; state?: StateLocation };
}

function ids(b: number, t: number, vocab: number, salt = 0): number[][] {
  return Array.from(
    { length: b },
    (_, i) => Array.from({ length: t }, (_, j) => 1 + ((i * 131 + j * 17 + salt) % (vocab - 1))),
  );
}

/** The pool's configuration in words (printed beside the row). */
function describe(pool: WorkerPool): string {
  const b = pool.backends[0];
  const threads = (b.blas as { threads?: number } | undefined)?.threads ?? "-";
  return `${pool.size} workers, each ${b.name} (${b.reason}), ${threads} BLAS thread`;
}

/** Forward, decode (B, and B=1), collect on `workers` workers (tokens/s). */
export async function measureInferenceOnWorkers(
  m: Model,
  s: WorkerBenchShape,
  reps: number,
  workers: number,
): Promise<Record<string, unknown>> {
  await using pool = await WorkerPool.start({ workers });
  const fx = ids(s.fwd.b, s.fwd.t, s.vocab);
  const fwd = await timeIt(reps, async () => {
    await forwardOnWorkers(pool, m, fx);
  });
  const gx = ids(s.gen.b, s.gen.prompt, s.vocab, 7);
  const gen = (rows: number[][], batchSize: number) => async () => {
    await generateOnWorkers(pool, m, {
      inputIds: rows,
      maxNewTokens: s.gen.steps,
      stopAtEos: false,
      batchSize,
    });
  };
  const r = Math.max(1, reps - 1);
  const decode = await timeIt(r, gen(gx, s.gen.b));
  const one = await timeIt(r, gen(gx.slice(0, 1), 1));
  const streams = await timeIt(r, gen(gx.slice(0, pool.size), 1));
  const rows = fx.map((x) => ({
    prompt: x.slice(0, s.fwd.t / 2).join(" "),
    trace: x.slice(s.fwd.t / 2).join(" "),
  }));
  let collectTok = 0;
  const collect = await timeIt(r, async () => {
    const acts = await collectActivations(m, rows, {
      batchSize: s.fwd.b,
      progress: "silent",
      workers: pool,
    });
    collectTok = acts.tokenCounts.reduce((a, b) => a + b, 0);
  });
  return {
    forward: (s.fwd.b * s.fwd.t) / fwd,
    decode: (s.gen.b * s.gen.steps) / decode,
    decode1: s.gen.steps / one,
    decodeStreams: (pool.size * s.gen.steps) / streams,
    collect: collectTok / collect,
    workers: describe(pool),
  };
}

/** One data-parallel optimiser step (gradients, all-reduce, AdamW on every replica), tokens/s. */
export async function measureTrainingOnWorkers(
  m: Model,
  s: WorkerBenchShape,
  reps: number,
  workers: number,
): Promise<Record<string, unknown>> {
  await using pool = await WorkerPool.start({ workers });
  const { b, t, microBatch, state = "heap" } = s.train;
  const examples = ids(b, t, s.vocab, 3).map((seq) => ({ seq, lossFrom: 1 }));
  // clip 0: the single-process row applies the gradient unclipped too.
  const trainer = await DataParallelTrainer.start(pool, m, {
    lr: 1e-4,
    clip: 0,
    stateLocation: state,
  });
  const time = await timeIt(Math.max(1, reps - 1), async () => {
    await trainer.step(examples, { microBatch });
  });
  await trainer.end();
  return { train: (b * t) / time, workers: describe(pool) };
}
