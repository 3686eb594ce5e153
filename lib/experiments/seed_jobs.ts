/**
 * Training seeds on worker threads: each seed of an RL experiment runs whole (its warm-up or
 * compass fit, its RL runs, its evaluations) in a Deno Worker of its own, several at once, so
 * that the updates, which run on one thread per seed, use every core. PERF: on the 2-core
 * machine one seed keeps 1.2 cores busy (generation is dispatch-bound and splitting a batch
 * over a generation pool gains little), so two seeds at once take about the time of one.
 *
 * How a worker runs one seed: it calls the experiment's own function with the options it was
 * given plus `seedJob: <seed>` (lib/experiments/seed_worker.ts). In that mode the runner skips
 * the start model's measurement, runs only that seed's body in
 * {@link SeedConditionRunner.forEachSeed}, and stops the experiment right there by throwing a
 * {@link SeedJobDone} that carries what the seed produced (a {@link SeedPartial}). The main
 * thread adds the partials to its runner in seed order, so the rows are those of the
 * one-thread run. Every kernel is the same in a worker as on the main thread (wasm, one
 * OpenBLAS thread), so the numbers are the same bit for bit (tests/experiments_test.ts).
 *
 * What cannot cross to a worker: functions (`log`, reward closures built by the caller) and
 * the generation pool; options are sent by structured clone without them, and each worker
 * prints its own log lines, prefixed with its seed and the seconds since the seed started.
 *
 * @module
 */

import type { Hits } from "./measure.ts";
import type { ExampleRow } from "./result.ts";
import type { RunRecord } from "./run.ts";
import { makeRunLog, type RLLogRow } from "../train/rl/log.ts";
import { pinBlasThreads } from "../engine/blas.ts";
import { mapInLanes } from "../parallel/lanes.ts";

/** An RL run as it crosses threads: the log's rows, options and warnings, not its methods. */
export interface SentRun {
  /** See {@link RunRecord}. */
  condition: string;
  /** See {@link RunRecord}. */
  seed: number;
  /** See {@link RunRecord}. */
  tokens: number;
  /** See {@link RunRecord}. */
  rollouts: number;
  /** See {@link RunRecord}. */
  seconds: number;
  /** The log's per-step rows. */
  rows: RLLogRow[];
  /** The log's resolved options. */
  options: Record<string, unknown>;
  /** The log's warnings. */
  warnings: string[];
}

/** What one seed produced: hit-table additions in order, examples, RL runs, the body's value. */
export interface SeedPartial {
  /** The seed. */
  seed: number;
  /** `[condition, hits]` in the order they were measured. */
  added: [string, Hits][];
  /** Example answers (the first seed's). */
  examples: ExampleRow[];
  /** RL runs, in order. */
  runs: SentRun[];
  /** What the experiment's per-seed body returned (structured-clonable). */
  value: unknown;
}

/** Thrown inside a seed worker once its seed is done (see the module documentation). */
export class SeedJobDone extends Error {
  /** What the seed produced. */
  readonly partial: SeedPartial;

  /** Wraps `partial`. */
  constructor(partial: SeedPartial) {
    super(`seed ${partial.seed} done (seed job)`);
    this.name = "SeedJobDone";
    this.partial = partial;
  }
}

/** A run ready to be sent to another thread. */
export function sendRun(r: RunRecord): SentRun {
  const { log, ...rest } = r;
  return { ...rest, rows: log.rows, options: log.options, warnings: [...log.warnings] };
}

/** The run back from {@link sendRun}, with a working `RunLog`. */
export function receiveRun(s: SentRun): RunRecord {
  const { rows, options, warnings, ...rest } = s;
  const log = makeRunLog(rows, options);
  log.warnings.splice(0, log.warnings.length, ...warnings);
  return { ...rest, log };
}

/** The options without what cannot be cloned (functions, the worker pool), plus `seedJob`. */
export function jobOptions(options: object, seed: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (typeof v === "function" || k === "workers") continue; // `log`, reward closures; the pool
    out[k] = v;
  }
  return { ...out, seedJob: seed, seedWorkers: 0 };
}

/** The experiments a seed worker can run (their module and function). */
export const SEED_JOB_EXPERIMENTS: Record<string, { module: string; fn: string }> = {
  alphaalign: { module: "./alphaalign.ts", fn: "runAlphaAlignExperiment" },
  craft: { module: "./craft_rl.ts", fn: "runCraftExperiment" },
  traits: { module: "./traits.ts", fn: "runTraitsExperiment" },
  hacking: { module: "./hacking.ts", fn: "runHackingExperiment" },
};

/** A seed worker's reply. */
export type SeedJobReply =
  | { ok: true; partial: SeedPartial }
  | { ok: false; message: string; stack?: string };

/**
 * Runs `seeds` of `experiment` on worker threads, `parallel` at a time (a fresh worker per
 * seed); resolves with the partials in seed order. After a failure no further seed starts, and
 * the first error (naming the seed) is thrown once the running ones have finished.
 *
 * @example
 * ```ts ignore
 * import { runSeedJobs } from "./seed_jobs.ts";
 * const partials = await runSeedJobs("traits", { steps: 3 }, [0, 1, 2], 2);
 * console.log(partials.map((p) => p.runs.length));
 * ```
 */
export async function runSeedJobs(
  experiment: string,
  options: object,
  seeds: readonly number[],
  parallel: number,
): Promise<SeedPartial[]> {
  if (!(experiment in SEED_JOB_EXPERIMENTS)) {
    throw new Error(
      `No seed workers for the '${experiment}' experiment (only ${
        Object.keys(SEED_JOB_EXPERIMENTS).join(", ")
      })`,
    );
  }
  if (!Number.isInteger(parallel) || parallel < 1) {
    throw new Error(`seedWorkers is ${parallel}; use a whole number >= 1 (0: off)`);
  }
  const url = new URL("./seed_worker.ts", import.meta.url).href;
  const one = (seed: number) =>
    new Promise<SeedPartial>((resolve, reject) => {
      const w = new Worker(url, { type: "module", name: `safety-compass seed ${seed}` });
      const done = (f: () => void) => (w.terminate(), f());
      w.onmessage = (e: MessageEvent<SeedJobReply>) => {
        const r = e.data;
        if (r.ok) done(() => resolve(r.partial));
        else {
          const err = new Error(`${experiment}: seed ${seed} failed in its worker: ${r.message}`);
          if (r.stack) err.stack = `${err.message}\n(worker) ${r.stack}`;
          done(() => reject(err));
        }
      };
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        done(() => reject(new Error(`${experiment}: seed ${seed}'s worker crashed: ${e.message}`)));
      };
      w.postMessage({ experiment, options: jobOptions(options, seed) });
    });
  pinBlasThreads(+1); // the workers' BLAS calls get one thread each (process-wide setting)
  try {
    return await mapInLanes(seeds, parallel, one);
  } finally {
    pinBlasThreads(-1);
  }
}
