/**
 * The trait-RL generalisation experiment on SafetyWorld (after arXiv 2606.24014, "RL
 * towards broadly and persistently beneficial models"; SCIENCE.md section 6).
 *
 * The main RL stream is ordinary helpfulness RL: GRPO on the train split's benign tasks,
 * rewarded by verifiable correctness. The "small dose" arm replaces a share of each step's
 * prompts by trait scenarios of ONE domain (math, geography or science; all three traits:
 * honesty under pressure, corrigibility, epistemic humility), rewarded by SafetyWorld's
 * trait graders. The compute-matched baseline runs the same steps with the same number of
 * prompts and rollouts per step and the same seed, without trait data (its main-stream
 * prompts are the dose arm's plus the ones the dose replaced); rollout tokens of both are
 * reported. Every model is evaluated greedily on held-out trait scenarios (test templates
 * and entities) of EVERY domain: the train-domain x eval-domain matrix of trait-rate
 * differences vs the baseline, with seed-paired two-level bootstrap intervals.
 *
 * @module
 */

import type { WorldPromptRow } from "../data/safetyworld/plan.ts";
import type { PromptRow } from "../data/schema.ts";
import { type GradableRow, gradeResponse } from "../data/safetyworld/graders.ts";
import { TRAIT_DOMAINS, type TraitDomain, TRAITS } from "../data/safetyworld/traits.ts";
import type { Reward } from "../train/rewards.ts";
import type { Model } from "../model/model.ts";
import { plotHeatmap } from "../viz/figure.ts";
import {
  evalRows,
  measure,
  type MetricSpec,
  resolveSeeds,
  SAFETY_METRICS,
  traitMetric,
} from "./measure.ts";
import {
  cloneModel,
  type ExperimentOptions,
  loadStart,
  resolveCommon,
  type RunRecord,
  runRL,
  saveIfFirstSeed,
  weightsFingerprint,
} from "./run.ts";
import { type ExampleRow, type ExperimentResult, makeResult, pickExamples } from "./result.ts";
import { deltaRows, HitTable, rateRows, type ResultRow, throughputRows } from "./rows.ts";
import { barsFigure, curvesFigure } from "./figures.ts";

/** Options of {@link runTraitsExperiment}; defaults sized for minutes on 2 CPU cores. */
export interface TraitsExperimentOptions extends ExperimentOptions {
  /** Starting checkpoint (its base SFT held good and bad trait answers half and half). @default "toy-base" */
  start?: string;
  /** Training domains (one dose arm each). @default all three */
  domains?: readonly TraitDomain[];
  /** Share of each step's prompts that are trait scenarios in the dose arms (paper: "a few percent"). @default 0.1 */
  share?: number;
  /** GRPO steps per arm. @default 60 (quick: 3) */
  steps?: number;
  /** Prompts per step. @default 8 (quick: 4) */
  promptsPerStep?: number;
  /** Rollouts per prompt. @default 8 (quick: 4) */
  groupSize?: number;
  /** New tokens per rollout and evaluated answer. @default 40 */
  maxNewTokens?: number;
  /** GRPO learning rate (tiny SafetyWorld models need ~1e-4..1e-3). @default 2e-4 */
  lr?: number;
  /** KL coefficient to the starting model (k3 estimator). @default 0.01 */
  klCoef?: number;
}

/** Correctness on main-stream tasks, the trait grader on trait scenarios (1 / 0). */
export function taskOrTraitReward(): Reward {
  return {
    name: "task_or_trait",
    weight: 1,
    fn: (ctx) => {
      const g = gradeResponse(ctx.row as GradableRow, ctx.completion);
      return Number(ctx.row.kind === "trait" ? g.trait === true : g.correct === true);
    },
  };
}

const BASELINE = "baseline (no trait data)";
const dose = (d: string) => `dose: ${d}`;

/**
 * The metrics: trait rate per eval domain (all traits and each trait) on held-out test
 * scenarios and on train-template scenarios, and benign accuracy.
 */
function traitMetrics(): MetricSpec[] {
  return [
    ...["test", "train"].flatMap((split) =>
      TRAIT_DOMAINS.flatMap((d) => [
        traitMetric(d, undefined, split),
        ...TRAITS.map((t) => traitMetric(d, t, split)),
      ])
    ),
    ...SAFETY_METRICS.filter((m) => m.name.startsWith("benign accuracy")),
  ];
}

/** The matrix of `value` (rows: train domains, columns: eval domains) as a heatmap with intervals. */
function matrixFigure(
  rows: ResultRow[],
  train: readonly string[],
  opts: { title: string; xTitle: string },
) {
  const cell = (t: string, e: string) =>
    rows.find((r) => r.trainDomain === t && r.evalDomain === e);
  const m = train.map((t) => TRAIT_DOMAINS.map((e) => cell(t, e)?.value ?? NaN));
  const span = Math.max(0.05, ...m.flat().filter(Number.isFinite).map(Math.abs));
  const fig = plotHeatmap(m, [...train], [...TRAIT_DOMAINS], {
    title: opts.title,
    xTitle: opts.xTitle,
    yTitle: "trait data from",
    // Red = the dose lowered the trait rate, white = no change, blue = it raised it.
    colorscale: [[0, "#d6604d"], [0.5, "#f7f7f7"], [1, "#4393c3"]],
    zmin: -span,
    zmax: span,
  });
  const fmt = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(3)}`;
  for (const a of fig.layout.annotations as { x: string; y: string; text: string }[]) {
    const r = cell(a.y, a.x);
    if (r) a.text = `${fmt(r.value)}<br>[${fmt(r.lo)}, ${fmt(r.hi)}]`;
  }
  return fig;
}

/**
 * Runs the trait experiment end to end: per seed the compute-matched baseline and one dose
 * arm per training domain, every model measured on held-out trait scenarios of every domain
 * and on benign tasks. Returns rates, the matrix of differences vs the baseline (with
 * intervals), figures, RL logs and rollout throughput.
 */
export async function runTraitsExperiment(
  opts: TraitsExperimentOptions = {},
): Promise<ExperimentResult> {
  const t0 = performance.now();
  const c = resolveCommon(opts);
  const q = c.quick;
  const seeds = resolveSeeds(opts.seeds, q ? 2 : 3);
  const cfg = {
    start: opts.start ?? "toy-base",
    domains: [...(opts.domains ?? TRAIT_DOMAINS)],
    share: opts.share ?? 0.1,
    steps: opts.steps ?? (q ? 3 : 60),
    promptsPerStep: opts.promptsPerStep ?? (q ? 4 : 8),
    groupSize: opts.groupSize ?? (q ? 4 : 8),
    maxNewTokens: opts.maxNewTokens ?? 40,
    lr: opts.lr ?? 2e-4,
    klCoef: opts.klCoef ?? 0.01,
    evalPerKind: c.evalPerKind,
    seeds,
    quick: q,
  };
  if (!(cfg.share > 0 && cfg.share < 1)) {
    throw new Error(`share is ${cfg.share}; use 0 < share < 1`);
  }
  for (const d of cfg.domains) {
    if (!TRAIT_DOMAINS.includes(d)) throw new Error(`domain '${d}' is not one of ${TRAIT_DOMAINS}`);
  }
  const startName = `${cfg.start} (start)`;
  const start = await loadStart(cfg.start, c.workers);
  const startWeights = await weightsFingerprint(start);
  const traits = c.world.traits as WorldPromptRow[];
  const evalSet = [
    ...["test", "train"].flatMap((split) =>
      TRAIT_DOMAINS.flatMap((d) =>
        traits.filter((r) => r.split === split && r.domain === d).slice(0, c.evalPerKind)
      )
    ),
    ...evalRows(c.world.prompts, ["task"], c.evalPerKind),
    ...evalRows(c.world.prompts, ["task"], c.evalPerKind, "train"),
  ];
  const metrics = traitMetrics();
  const gen = { maxNewTokens: cfg.maxNewTokens };
  const main: PromptRow[] = c.world.prompts.filter((p) => p.split === "train" && p.kind === "task");
  const hits = new HitTable();
  const examples: ExampleRow[] = [];
  const record = async (condition: string, seed: number | string, model: Model) => {
    const m = await measure(model, evalSet, metrics, gen);
    hits.add(condition, m.hits);
    if (seed === seeds[0] || seed === "start") {
      examples.push(...pickExamples(condition, seed, evalSet, m.texts, ["trait"], 6));
    }
  };
  const runs: RunRecord[] = [];
  try {
    await record(startName, "start", start);
    for (const seed of seeds) {
      for (const arm of [undefined, ...cfg.domains]) {
        const name = arm ? dose(arm) : BASELINE;
        const policy = cloneModel(start, `${cfg.start}+${name}`);
        try {
          const rows = arm ? traits.filter((r) => r.split === "train" && r.domain === arm) : [];
          runs.push(
            await runRL(policy, name, seed, {
              algorithm: "grpo",
              prompts: main,
              rewards: [taskOrTraitReward()],
              mix: arm ? { rows, share: cfg.share, replace: true } : undefined,
              steps: cfg.steps,
              promptsPerStep: cfg.promptsPerStep,
              groupSize: cfg.groupSize,
              maxNewTokens: cfg.maxNewTokens,
              lr: cfg.lr,
              klCoef: cfg.klCoef,
            }),
          );
          await record(name, seed, policy);
          c.log(`traits: seed ${seed} ${name} trained and measured`);
          await saveIfFirstSeed(c, policy, seeds[0], {
            experiment: "traits",
            condition: name,
            seed,
            stages: [{ name: "grpo", steps: cfg.steps }],
            start: cfg.start,
            startWeights,
            maxNewTokens: cfg.maxNewTokens,
          });
        } finally {
          policy.dispose();
        }
      }
    }
  } finally {
    start.dispose();
  }
  const evalOf = (m: string) => TRAIT_DOMAINS.find((d) => m.startsWith(`trait rate (${d}`)) ?? "";
  const trainOf = (cond: string) => cfg.domains.find((d) => cond === dose(d)) ?? "";
  const tag = (cond: string, m: string) => ({ trainDomain: trainOf(cond), evalDomain: evalOf(m) });
  const rates = rateRows("traits", hits, seeds, c.ci, tag);
  const deltas = deltaRows(
    "traits",
    hits,
    [...cfg.domains.map((d) => [dose(d), BASELINE] as const), [BASELINE, startName] as const],
    seeds,
    c.ci,
    tag,
  );
  const matrixOf = (re: RegExp, table: string) =>
    deltas.filter((r) => r.reference === BASELINE && re.test(r.metric))
      .map((r) => ({ ...r, table }));
  const matrix = matrixOf(/^trait rate \(\w+\)$/, "matrix");
  const trainMatrix = matrixOf(/^trait rate \(\w+, train templates\)$/, "matrix (train templates)");
  const overall = (r: ResultRow) =>
    /^trait rate \(\w+\)$/.test(r.metric) || r.metric === "benign accuracy";
  return makeResult({
    name: "traits",
    description: `Trait RL on SafetyWorld from ${cfg.start}: GRPO for ${cfg.steps} steps ` +
      `(${cfg.promptsPerStep} prompts x ${cfg.groupSize} rollouts) on benign tasks rewarded by ` +
      `correctness; each dose arm replaces ${
        (100 * cfg.share).toFixed(0)
      }% of the step's prompts ` +
      "(in expectation) by trait scenarios of one domain graded by the trait graders; the " +
      "baseline has the same steps, prompts and rollouts per step and no trait data. Trait " +
      `rates are greedy answers to ${c.evalPerKind} held-out scenarios per domain (and as many ` +
      "written with the training templates and entities, a second matrix); the matrix " +
      "shows dose - baseline with 95% intervals from a seed-paired bootstrap over seeds " +
      `${seeds.join(", ")} and prompts.`,
    rows: [...matrix, ...trainMatrix, ...rates, ...deltas, ...throughputRows("traits", runs)],
    figures: [
      {
        name: "matrix",
        figure: matrixFigure(
          matrix,
          cfg.domains,
          {
            title: "Trait rate: dose - baseline, held-out scenarios",
            xTitle: "evaluated on (held-out templates and entities)",
          },
        ),
      },
      {
        name: "matrix (train templates)",
        figure: matrixFigure(
          trainMatrix,
          cfg.domains,
          {
            title: "Trait rate: dose - baseline, training templates and entities",
            xTitle: "evaluated on (training templates and entities)",
          },
        ),
      },
      {
        name: "rates",
        figure: barsFigure(rates.filter(overall), "Trait rates and benign accuracy"),
      },
      { name: "reward", figure: curvesFigure(runs, "reward", "Mean reward per GRPO step") },
      { name: "kl", figure: curvesFigure(runs, "kl", `KL to ${cfg.start} per step`) },
    ],
    runs,
    examples,
    config: { ...cfg, startWeights },
    seconds: (performance.now() - t0) / 1000,
  });
}
