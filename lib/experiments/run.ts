/**
 * Plumbing shared by the RL experiments: the options every experiment takes, loading the
 * SafetyWorld checkpoints and the seed-0 world they were trained on, in-memory copies of a
 * model (so every condition of a seed starts from the same weights without touching disk),
 * and an RL run that records its rollout throughput (tokens generated per second of the
 * whole RL loop: generation, rewards and updates) for bench/.
 *
 * @module
 */

import { join } from "node:path";
import type { Model } from "../model/model.ts";
import { loadModel } from "../model/load.ts";
import type { World } from "../data/safetyworld/plan.ts";
import { generateWorld } from "../data/safetyworld/generate.ts";
import { type RLOptions, type RunLog, trainRL } from "../train/rl/train.ts";
import type { CIOptions } from "./measure.ts";
import type { WorkerPool } from "../parallel/pool.ts";
import { saveVariant, type VariantInfo, variantSlug } from "../model/variants.ts";

/** Options every experiment takes. */
export interface ExperimentOptions {
  /** Training seeds: a count n (seeds 0..n-1) or a list; at least 2. @default 3 (quick: 2) */
  seeds?: number | readonly number[];
  /** CI size: a few RL steps, small evaluation sets, fewer bootstrap resamples. @default false */
  quick?: boolean;
  /** The SafetyWorld the checkpoints were trained on. @default generateWorld({ seed: 0 }) */
  world?: World;
  /** Held-out test prompts per kind (or per trait domain). @default 100 (quick: 16) */
  evalPerKind?: number;
  /** Bootstrap options of every interval. @default { reps: 1000 (quick: 200), alpha: 0.05, seed: 0 } */
  ci?: CIOptions;
  /** Progress lines (run started, rates measured). @default console.log */
  log?: (line: string) => void;
  /**
   * A folder to save the FIRST seed's final model of every trained condition in, as
   * `<saveModels>/<condition slug>/` (HF layout + variant.json: experiment, condition, seed,
   * steps, the start's fingerprint; lib/model/variants.ts). @default not saved
   */
  saveModels?: string;
  /**
   * A worker pool for generation (RL rollouts and evaluation); results are identical to the
   * main thread (rows are seeded by their global index). @default undefined (main thread)
   */
  workers?: WorkerPool;
  /**
   * Seeds trained at once on worker threads, each seed whole in a worker of its own (its
   * warm-up or compass, RL runs and evaluations; lib/experiments/seed_jobs.ts). The rows equal
   * the one-thread run's; each worker prints its own progress. 0: every seed on this thread.
   * @default 0
   */
  seedWorkers?: number;
  /** Internal: set by a seed worker, the one seed it runs (see seed_jobs.ts). */
  seedJob?: number;
}

/** The resolved common options. */
export interface Common {
  /** CI sizes. */
  quick: boolean;
  /** The SafetyWorld in use. */
  world: World;
  /** Evaluation prompts per kind (or per trait domain). */
  evalPerKind: number;
  /** Bootstrap options. */
  ci: CIOptions;
  /** Progress lines. */
  log: (line: string) => void;
  /** Where to save the first seed's models, if anywhere. */
  saveModels?: string;
  /** The generation pool, if any. */
  workers?: WorkerPool;
  /** Seeds trained at once on worker threads (0: none). */
  seedWorkers: number;
  /** Inside a seed worker: its seed. */
  seedJob?: number;
}

/** Fills the common defaults (the world is generated here when not given: ~2 s). */
export function resolveCommon(o: ExperimentOptions): Common {
  const quick = o.quick ?? false;
  const evalPerKind = o.evalPerKind ?? (quick ? 16 : 100);
  if (!(Number.isInteger(evalPerKind) && evalPerKind >= 2)) {
    throw new Error(`evalPerKind is ${o.evalPerKind}; use an integer >= 2`);
  }
  const seedWorkers = o.seedWorkers ?? 0;
  if (!(Number.isInteger(seedWorkers) && seedWorkers >= 0)) {
    throw new Error(`seedWorkers is ${o.seedWorkers}; use a whole number >= 0 (0: off)`);
  }
  return {
    quick,
    seedWorkers,
    seedJob: o.seedJob,
    world: o.world ?? generateWorld({ seed: 0 }),
    evalPerKind,
    ci: { reps: quick ? 200 : 1000, alpha: 0.05, seed: 0, ...o.ci },
    log: o.log ?? ((s) => console.log(s)),
    saveModels: o.saveModels,
    workers: o.workers,
  };
}

/**
 * Loads a SafetyWorld checkpoint (`toy-base`, `toy-shallow`) or a model folder, with a clear
 * error; with `workers`, its generation (and its clones') runs on that pool.
 */
export async function loadStart(source: string, workers?: WorkerPool): Promise<Model> {
  try {
    const model = await loadModel(source);
    model.workers = workers;
    return model;
  } catch (err) {
    throw new Error(
      `Cannot start the experiment from '${source}': ${(err as Error).message}. ` +
        "The SafetyWorld checkpoints are made by `deno task toy:train`.",
      { cause: err },
    );
  }
}

// The weights fingerprint lives with the saved-variant records; re-exported for the experiments.
export { weightsFingerprint } from "../model/variants.ts";

/**
 * Saves the first seed's final model of a condition as a variant (HF layout + variant.json,
 * atomic; lib/model/variants.ts) into `<c.saveModels>/<condition slug>/`; does nothing when
 * `c.saveModels` is unset or `info.seed` is not `firstSeed`.
 */
export async function saveIfFirstSeed(
  c: Common,
  model: Model,
  firstSeed: number,
  info: VariantInfo,
): Promise<void> {
  if (!c.saveModels || info.seed !== firstSeed) return;
  const dir = join(c.saveModels, variantSlug(info.condition));
  await saveVariant(model, dir, info);
  c.log(`${info.experiment}: saved ${info.condition} (seed ${info.seed}) to ${dir}`);
}

/** An independent, trainable copy of `model` (`Model.copy`: weights cloned, worker pool kept). */
export function cloneModel(model: Model, source: string): Model {
  return model.copy(source);
}

/** One RL run of an experiment. */
export interface RunRecord {
  /** The condition it belongs to. */
  condition: string;
  /** Its training seed. */
  seed: number;
  /** The per-step metrics (renders as curves in Jupyter). */
  log: RunLog;
  /** Completion tokens generated over all rollouts. */
  tokens: number;
  /** Rollouts generated. */
  rollouts: number;
  /** Wall-clock seconds of the RL steps (generation, rewards, updates). */
  seconds: number;
}

/** Runs `trainRL` on `model` (in place) and counts rollout tokens and step time. */
export async function runRL(
  model: Model,
  condition: string,
  seed: number,
  opts: RLOptions,
): Promise<RunRecord> {
  let tokens = 0, rollouts = 0, seconds = 0;
  const log = await trainRL(model, {
    ...opts,
    seed,
    label: `${condition} seed ${seed}`,
    onStep: (row, rs) => {
      rollouts += rs.length;
      for (const r of rs) tokens += r.completionIds.length;
      seconds += row.seconds;
      opts.onStep?.(row, rs);
    },
  });
  return { condition, seed, log, tokens, rollouts, seconds };
}

/** Rollout tokens per second over runs (total tokens / total step seconds). */
export function tokensPerSecond(runs: readonly RunRecord[]): number {
  const t = runs.reduce((a, r) => a + r.tokens, 0);
  const s = runs.reduce((a, r) => a + r.seconds, 0);
  return s > 0 ? t / s : NaN;
}
