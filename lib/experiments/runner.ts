/**
 * The seed-by-condition loop that the three RL experiments (AlphaAlign, CRAFT, traits) share,
 * and their one run-config type. Each experiment says what differs (its start, the per-seed
 * preparation such as a warm-up or a compass fit, its conditions and rewards); this file does
 * what is the same: the RL budget and its defaults, measuring every model on the same
 * held-out prompts, training one condition on a fresh copy, logging, saving the first seed's
 * model, and freeing the copy.
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import type { WorldPromptRow } from "../data/safetyworld/plan.ts";
import type { RLOptions } from "../train/rl/train.ts";
import {
  type Common,
  type ExperimentOptions,
  loadStart,
  resolveCommon,
  type RunRecord,
  runRL,
  saveIfFirstSeed,
  weightsFingerprint,
} from "./run.ts";
import { type Hits, measure, type MetricSpec, resolveSeeds } from "./measure.ts";
import { HitTable } from "./rows.ts";
import { receiveRun, runSeedJobs, SeedJobDone, sendRun } from "./seed_jobs.ts";
import { type ExampleRow, pickExamples } from "./result.ts";

/** The RL budget every experiment takes; each field documented once, here. */
export interface RLBudgetOptions {
  /** RL steps per trained condition. @default 60 (quick: 3) */
  steps?: number;
  /** Prompts per RL step. @default 8 (quick: 4) */
  promptsPerStep?: number;
  /** Rollouts per prompt (GRPO's group; AlphaAlign's R_h z-score group; CRAFT: 8). @default 8 (quick: 4) */
  groupSize?: number;
  /**
   * New tokens per rollout and per evaluated answer. @default per experiment: AlphaAlign 80
   * (templated warm-up answers: p90 59, max 74 tokens; a cut-off answer fails V_f), CRAFT 48,
   * traits 40
   */
  maxNewTokens?: number;
  /** RL learning rate (tiny SafetyWorld models need ~1e-4..1e-3). @default 2e-4 */
  lr?: number;
  /** KL coefficient to the model RL starts from (k3 estimator; CRAFT: 0.01). @default 0.01 */
  klCoef?: number;
}

/** The resolved RL budget: the one run-config type of the experiments. */
export type RLBudget = Required<RLBudgetOptions>;

/** Applies the budget defaults ({@link RLBudgetOptions}); `maxNewTokens` is per experiment. */
export function resolveBudget(o: RLBudgetOptions, quick: boolean, maxNewTokens: number): RLBudget {
  return {
    steps: o.steps ?? (quick ? 3 : 60),
    promptsPerStep: o.promptsPerStep ?? (quick ? 4 : 8),
    groupSize: o.groupSize ?? (quick ? 4 : 8),
    maxNewTokens: o.maxNewTokens ?? maxNewTokens,
    lr: o.lr ?? 2e-4,
    klCoef: o.klCoef ?? 0.01,
  };
}

/** What every RL experiment resolves first: its clock, common options, seeds and budget. */
export interface ExperimentSetup {
  /** `performance.now()` at the start (the result's wall time). */
  t0: number;
  /** The resolved common options. */
  c: Common;
  /** CI sizes. */
  q: boolean;
  /** Training seeds (default 3, quick 2). */
  seeds: number[];
  /** The resolved RL budget. */
  budget: RLBudget;
}

/** Starts the clock and resolves the common options, the seeds and the RL budget. */
export function setUpExperiment(
  opts: ExperimentOptions & RLBudgetOptions,
  maxNewTokens: number,
): ExperimentSetup {
  const t0 = performance.now();
  const c = resolveCommon(opts);
  const q = c.quick;
  return {
    t0,
    c,
    q,
    seeds: resolveSeeds(opts.seeds, q ? 2 : 3),
    budget: resolveBudget(opts, q, maxNewTokens),
  };
}

/** Loads the starting checkpoint (on the experiment's workers) and fingerprints its weights. */
export async function openStart(
  source: string,
  c: Common,
): Promise<{ start: Model; startWeights: string }> {
  const start = await loadStart(source, c.workers);
  return { start, startWeights: await weightsFingerprint(start) };
}

/** What a {@link SeedConditionRunner} is built from. */
export interface RunnerInit {
  /** Experiment name (log lines, saved variants). */
  experiment: string;
  /** The resolved common options. */
  common: Common;
  /** Training seeds; the first one's models are saved and give the examples. */
  seeds: readonly number[];
  /** The starting checkpoint's name or folder, as given. */
  start: string;
  /** The starting weights' fingerprint (recorded with saved variants). */
  startWeights: string;
  /** The RL budget. */
  budget: RLBudget;
  /** Held-out rows every model is measured on. */
  evalSet: readonly WorldPromptRow[];
  /** Metrics measured on them. */
  metrics: readonly MetricSpec[];
  /** Prompt kinds to keep examples of. */
  exampleKinds: readonly string[];
  /** Examples per condition and kind. @default pickExamples' default */
  examplesPerKind?: number;
  /** The experiment's options as given (what seed workers re-run it with). */
  options?: object;
}

/** A trained condition: its stage list (for the saved variant) beside the RL options. */
export interface ConditionSpec {
  /** The condition's name (rows, figures, saved folder). */
  condition: string;
  /** What trainRL needs beyond the budget (algorithm, prompts, rewards, mix, judge, ...). */
  rl: Omit<RLOptions, "steps" | "promptsPerStep" | "groupSize" | "maxNewTokens" | "lr" | "klCoef">;
  /** Training stages before this RL run (e.g. a warm-up), recorded with the saved model. */
  before?: { name: string; steps: number }[];
  /** Budget fields this condition changes (e.g. a stronger KL anchor); recorded in its log. */
  budget?: Partial<RLBudget>;
}

/**
 * Measures models and trains conditions for one experiment, seed by seed; collects the hit
 * table, the first seed's example answers and every RL run.
 *
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { WorldPromptRow } from "../data/safetyworld/plan.ts";
 * import type { Common } from "./run.ts";
 * import { SAFETY_METRICS } from "./measure.ts";
 * declare const c: Common, start: Model, evalSet: WorldPromptRow[], train: WorldPromptRow[];
 * declare const startWeights: string;
 * const seeds = [0, 1, 2];
 * const runner = new SeedConditionRunner({
 *   experiment: "craft",
 *   common: c,
 *   seeds,
 *   start: "toy-base",
 *   startWeights,
 *   budget: resolveBudget({}, false, 48),
 *   evalSet,
 *   metrics: SAFETY_METRICS,
 *   exampleKinds: ["harmful"],
 * });
 * await runner.record(runner.startName, "start", start);
 * for (const seed of seeds) {
 *   await runner.train(start, seed, {
 *     condition: "text only",
 *     rl: { algorithm: "grpo", prompts: train, rewards: [] },
 *   });
 * }
 * ```
 */
export class SeedConditionRunner {
  /** Hits per condition, metric and prompt. */
  readonly hits: HitTable = new HitTable();
  /** Example answers of the start and of the first seed. */
  readonly examples: ExampleRow[] = [];
  /** Every RL run, in order. */
  readonly runs: RunRecord[] = [];
  /** The settings it was built with. */
  readonly init: RunnerInit;
  /** Every hit-table addition, in order. */
  readonly #added: [string, Hits][] = [];

  /** See {@link RunnerInit}. */
  constructor(init: RunnerInit) {
    this.init = init;
  }

  /**
   * Runs `body` once per seed, each on a runner of its own, and adds what the seeds measured,
   * their examples and their RL runs to this runner in seed order; the bodies' values come
   * back in seed order. With `seedWorkers` (ExperimentOptions) the seeds run on worker
   * threads, that many at once, each in a worker that re-runs the experiment for its one seed
   * (lib/experiments/seed_jobs.ts: the body's value must then be structured-clonable); the
   * rows equal the one-thread run's. Inside such a worker (`seedJob`) only that seed's body
   * runs, and what it produced leaves as a thrown `SeedJobDone`.
   *
   * @example
   * ```ts
   * import type { Model } from "../model/model.ts";
   * import type { PromptRow } from "../data/schema.ts";
   * declare const runner: SeedConditionRunner, start: Model, prompts: PromptRow[];
   * await runner.forEachSeed(async (seed, own) => {
   *   await own.train(start, seed, {
   *     condition: "text only",
   *     rl: { algorithm: "grpo", prompts, rewards: [] },
   *   });
   * });
   * ```
   */
  async forEachSeed<T>(
    body: (seed: number, runner: SeedConditionRunner) => Promise<T>,
  ): Promise<T[]> {
    const { seeds, common, experiment } = this.init;
    if (common.seedJob !== undefined) {
      const own = new SeedConditionRunner(this.init);
      const value = await body(common.seedJob, own);
      throw new SeedJobDone({
        seed: common.seedJob,
        added: own.#added,
        examples: own.examples,
        runs: own.runs.map(sendRun),
        value,
      });
    }
    if (common.seedWorkers > 0) {
      const parts = await runSeedJobs(
        experiment,
        this.init.options ?? {},
        seeds,
        common.seedWorkers,
      );
      for (const p of parts) this.#absorb(p.added, p.examples, p.runs.map(receiveRun));
      return parts.map((p) => p.value as T);
    }
    const out: T[] = [];
    for (const seed of seeds) {
      const own = new SeedConditionRunner(this.init);
      out.push(await body(seed, own));
      this.#absorb(own.#added, own.examples, own.runs);
    }
    return out;
  }

  /** Adds one seed's measurements (in their order), examples and RL runs to this runner. */
  #absorb(added: [string, Hits][], examples: ExampleRow[], runs: RunRecord[]): void {
    for (const [condition, hits] of added) this.#add(condition, hits);
    this.examples.push(...examples);
    this.runs.push(...runs);
  }

  /** Adds to the hit table, remembering the order (for {@link forEachSeed}'s merge). */
  #add(condition: string, hits: Hits): void {
    this.hits.add(condition, hits);
    this.#added.push([condition, hits]);
  }

  /** The starting model's condition name: `<start> (start)`. */
  get startName(): string {
    return `${this.init.start} (start)`;
  }

  /** Measures `model` greedily on the held-out set under `condition`. */
  async record(condition: string, seed: number | "start", model: Model): Promise<void> {
    if (seed === "start" && this.init.common.seedJob !== undefined) return; // the main thread's
    const { evalSet, metrics, budget, seeds, exampleKinds, examplesPerKind } = this.init;
    const m = await measure(model, evalSet, metrics, { maxNewTokens: budget.maxNewTokens });
    this.#add(condition, m.hits);
    if (seed === seeds[0] || seed === "start") {
      this.examples.push(
        ...pickExamples(condition, seed, evalSet, m.texts, exampleKinds, examplesPerKind),
      );
    }
  }

  /**
   * Saves `model` as the first seed's `condition` (when the experiment saves models) after
   * the given training stages.
   */
  async save(
    model: Model,
    seed: number,
    condition: string,
    stages: { name: string; steps: number }[],
  ): Promise<void> {
    const { common, experiment, seeds, start, startWeights, budget } = this.init;
    await saveIfFirstSeed(common, model, seeds[0], {
      experiment,
      condition,
      seed,
      stages,
      start,
      startWeights,
      maxNewTokens: budget.maxNewTokens,
    });
  }

  /**
   * Trains a copy of `from` on one condition with the budget, measures it, logs, saves the
   * first seed's model, and frees the copy.
   */
  async train(from: Model, seed: number, spec: ConditionSpec): Promise<void> {
    const { common, experiment, budget } = this.init;
    const policy = from.copy(`${this.init.start}+${spec.condition}`);
    try {
      this.runs.push(
        await runRL(policy, spec.condition, seed, { ...spec.rl, ...budget, ...spec.budget }),
      );
      await this.record(spec.condition, seed, policy);
      common.log(`${experiment}: seed ${seed} ${spec.condition} trained and measured`);
      await this.save(policy, seed, spec.condition, [
        ...(spec.before ?? []),
        { name: spec.rl.algorithm, steps: budget.steps },
      ]);
    } finally {
      policy.dispose();
    }
  }
}
