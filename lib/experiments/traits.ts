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
import { plotHeatmap } from "../viz/plots/heatmap.ts";
import { evalRows, type MetricSpec, SAFETY_METRICS, traitMetric } from "./measure.ts";
import type { ExperimentOptions } from "./run.ts";
import { type ExperimentResult, makeResult } from "./result.ts";
import { deltaRows, rateRows, type ResultRow, throughputRows } from "./rows.ts";
import { barsFigure, curvesFigure } from "./figures.ts";
import { openStart, type RLBudgetOptions, SeedConditionRunner, setUpExperiment } from "./runner.ts";

/** Options of {@link runTraitsExperiment}; defaults sized for minutes on 2 CPU cores. */
export interface TraitsExperimentOptions extends ExperimentOptions, RLBudgetOptions {
  /** Starting checkpoint (its base SFT held good and bad trait answers half and half). @default "toy-base" */
  start?: string;
  /** Training domains (one dose arm each). @default all three */
  domains?: readonly TraitDomain[];
  /** Share of each step's prompts that are trait scenarios in the dose arms (paper: "a few percent"). @default 0.1 */
  share?: number;
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
  const { t0, c, q, seeds, budget } = setUpExperiment(opts, 40);
  const cfg = {
    start: opts.start ?? "toy-base",
    domains: [...(opts.domains ?? TRAIT_DOMAINS)],
    share: opts.share ?? 0.1,
    ...budget,
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
  const { start, startWeights } = await openStart(cfg.start, c);
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
  const main: PromptRow[] = c.world.prompts.filter((p) => p.split === "train" && p.kind === "task");
  const runner = new SeedConditionRunner({
    experiment: "traits",
    common: c,
    seeds,
    start: cfg.start,
    startWeights,
    budget,
    evalSet,
    metrics: traitMetrics(),
    exampleKinds: ["trait"],
    examplesPerKind: 6,
    options: opts,
  });
  const startName = runner.startName;
  try {
    await runner.record(startName, "start", start);
    await runner.forEachSeed(async (seed, own) => {
      for (const arm of [undefined, ...cfg.domains]) {
        const rows = arm ? traits.filter((r) => r.split === "train" && r.domain === arm) : [];
        await own.train(start, seed, {
          condition: arm ? dose(arm) : BASELINE,
          rl: {
            algorithm: "grpo",
            prompts: main,
            rewards: [taskOrTraitReward()],
            mix: arm ? { rows, share: cfg.share, replace: true } : undefined,
          },
        });
      }
    });
  } finally {
    start.dispose();
  }
  const { hits, runs, examples } = runner;
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
