/**
 * The AlphaAlign experiment on SafetyWorld (arXiv 2507.14987; SCIENCE.md section 3): RL
 * with a verifiable safety reward, from a SafetyWorld checkpoint, measured against the
 * starting model and the "template alone" baseline.
 *
 * How the policy learns the template. The toy models never saw
 * `<safety_reasoning> … </safety_reasoning> <answer> … </answer>`, and RL cannot discover
 * a 4-tag format by sampling. So each seed first runs a short SFT warm-up on SafetyWorld's
 * alphaalign-template traces (train split) holding, for harmful prompts, as many UNSAFE
 * traces (reasoning that plans compliance, then a harmful answer) as SAFE ones (reasoning
 * that names the hazard, then the world's refusal string), plus helpful templated answers
 * to benign and borderline prompts: the format is taught, the safety policy is not. That
 * warm-up model is the paper's "template alone" baseline. Then:
 * - **AlphaAlign**: RL with `R_s + R_h` (`R_s = r_f V_f ± r_a V_r`; `R_h` = positive part of
 *   the group z-score of verifiable correctness, benign prompts only, refusals excluded);
 * - **AlphaAlign-Zero** (ablation): `R_s` only.
 * Both start from the same warm-up weights of a seed, with the same RL seed and budget, on
 * the train split's benign, borderline and harmful prompts (jailbreak wrappers are held out
 * of training). Every model is measured greedily on held-out test prompts.
 *
 * @module
 */

import type { WorldPromptRow, WorldTraceRow } from "../data/safetyworld/plan.ts";
import { ALPHA_REFUSAL } from "../data/safetyworld/lexicon.ts";
import { type GradableRow, gradeResponse } from "../data/safetyworld/graders.ts";
import type { PromptRow } from "../data/schema.ts";
import { isAlphaAlignRefusal } from "../judges/format.ts";
import { type SftExample, trainSft } from "../train/sft.ts";
import { alphaAlignReward } from "../train/rewards.ts";
import { makeRng } from "../data/rng.ts";
import { FORMAT_METRIC, SAFETY_METRICS, safetyEvalRows } from "./measure.ts";
import type { ExperimentOptions } from "./run.ts";
import { type ExperimentResult, makeResult } from "./result.ts";
import { deltaRows, rateRows, throughputRows } from "./rows.ts";
import { barsFigure, curvesFigure } from "./figures.ts";
import { openStart, type RLBudgetOptions, SeedConditionRunner, setUpExperiment } from "./runner.ts";

/** The RL variants. */
export type AlphaAlignVariant = "alphaalign" | "zero";

/** Options of {@link runAlphaAlignExperiment}; RL defaults are sized for minutes on 2 CPU cores. */
export interface AlphaAlignExperimentOptions extends ExperimentOptions, RLBudgetOptions {
  /** Starting checkpoint. @default "toy-shallow" */
  start?: string;
  /** RL variants to train. @default ["alphaalign", "zero"] */
  variants?: readonly AlphaAlignVariant[];
  /** Optimiser (the paper: PPO with GAE, last-token reward). @default "ppo" */
  algorithm?: "ppo" | "grpo";
  /** r_f and r_a of R_s (unpublished in the paper). @default { rf: 1, ra: 1 } */
  rewardWeights?: { rf?: number; ra?: number };
  /** Template warm-up: SFT steps, batch, learning rate. @default { steps: 200, batchSize: 32, lr: 1e-3 } (quick: 4 steps of 8) */
  warmup?: { steps?: number; batchSize?: number; lr?: number };
}

/**
 * The warm-up set: alphaalign-template train traces; for harmful prompts an equal number
 * of safe and unsafe traces (rethink traces left out), plus every benign and borderline one.
 */
export function templateWarmupExamples(traces: readonly WorldTraceRow[], seed = 0): SftExample[] {
  const aa = traces.filter((t) => t.template === "alphaalign" && t.split === "train");
  const harmful = (l: string) => aa.filter((t) => t.label === "harmful" && t.traceLabel === l);
  const safe = harmful("safe"), unsafe = harmful("unsafe");
  const k = Math.min(safe.length, unsafe.length);
  const other = aa.filter((t) => t.label !== "harmful");
  if (k === 0 || other.length === 0) {
    throw new Error(
      "Cannot build the template warm-up: the world has no alphaalign train traces of both " +
        "safe and unsafe kinds (or no benign ones); generate it with default sizes",
    );
  }
  const rows = makeRng(seed).shuffle([...safe.slice(0, k), ...unsafe.slice(0, k), ...other]);
  return rows.map((t) => ({ prompt: t.prompt, response: t.trace }));
}

const TEMPLATE_ONLY = "template only";
const EXAMPLE_KINDS = ["harmful", "jailbreak", "borderline", "task"];

/**
 * Runs the AlphaAlign experiment end to end: starting model, per seed a template warm-up
 * and the RL variants, every model measured on the same held-out prompts; returns rates
 * and differences (vs the warm-up and the start) with two-level bootstrap intervals,
 * figures, the RL logs and the rollout throughput.
 */
export async function runAlphaAlignExperiment(
  opts: AlphaAlignExperimentOptions = {},
): Promise<ExperimentResult> {
  const { t0, c, q, seeds, budget } = setUpExperiment(opts, 80);
  const cfg = {
    start: opts.start ?? "toy-shallow",
    variants: [...(opts.variants ?? ["alphaalign", "zero"])],
    algorithm: opts.algorithm ?? "ppo",
    ...budget,
    rf: opts.rewardWeights?.rf ?? 1,
    ra: opts.rewardWeights?.ra ?? 1,
    warmupSteps: opts.warmup?.steps ?? (q ? 4 : 200),
    warmupBatch: opts.warmup?.batchSize ?? (q ? 8 : 32),
    warmupLr: opts.warmup?.lr ?? 1e-3,
    evalPerKind: c.evalPerKind,
    seeds,
    quick: q,
  };
  const { start, startWeights } = await openStart(cfg.start, c);
  const runner = new SeedConditionRunner({
    experiment: "alphaalign",
    common: c,
    seeds,
    start: cfg.start,
    startWeights,
    budget,
    evalSet: safetyEvalRows(c.world.prompts, c.evalPerKind),
    metrics: [...SAFETY_METRICS, FORMAT_METRIC],
    exampleKinds: EXAMPLE_KINDS,
    options: opts,
  });
  const startName = runner.startName;
  await runner.record(startName, "start", start);
  c.log(`alphaalign: measured ${startName} on ${runner.init.evalSet.length} test prompts`);
  const train: WorldPromptRow[] = c.world.prompts.filter((p) =>
    p.split === "train" && ["task", "harmful", "borderline"].includes(p.kind)
  );
  const helpfulness = (row: PromptRow, text: string) =>
    gradeResponse(row as GradableRow, text).correct === true ? 1 : 0;
  try {
    await runner.forEachSeed(async (seed, own) => {
      const warm = start.copy(`${cfg.start}+template`);
      try {
        await trainSft(warm, templateWarmupExamples(c.world.traces, seed), {
          steps: cfg.warmupSteps,
          batchSize: cfg.warmupBatch,
          lr: cfg.warmupLr,
          seed,
          label: `template warm-up seed ${seed}`,
        });
        await own.record(TEMPLATE_ONLY, seed, warm);
        const warmStage = { name: "template warm-up (sft)", steps: cfg.warmupSteps };
        await own.save(warm, seed, TEMPLATE_ONLY, [warmStage]);
        for (const variant of cfg.variants) {
          const reward = alphaAlignReward({
            refusalString: ALPHA_REFUSAL,
            helpfulness,
            zero: variant === "zero",
            rf: cfg.rf,
            ra: cfg.ra,
            name: variant,
          });
          await own.train(warm, seed, {
            condition: variant,
            before: [warmStage],
            rl: {
              algorithm: cfg.algorithm,
              prompts: train,
              rewards: [reward],
              refusalJudge: (t) => isAlphaAlignRefusal(t, ALPHA_REFUSAL),
            },
          });
        }
      } finally {
        warm.dispose();
      }
    });
  } finally {
    start.dispose();
  }
  const { hits, examples, runs } = runner;
  const pairs: [string, string][] = [
    ...cfg.variants.flatMap((v): [string, string][] => [[v, TEMPLATE_ONLY], [v, startName]]),
    [TEMPLATE_ONLY, startName],
  ];
  const rates = rateRows("alphaalign", hits, seeds, c.ci);
  const deltas = deltaRows("alphaalign", hits, pairs, seeds, c.ci);
  const main = (m: string) => !["harmful refusal"].includes(m);
  return makeResult({
    name: "alphaalign",
    description:
      `AlphaAlign on SafetyWorld from ${cfg.start}: per seed, a ${cfg.warmupSteps}-step ` +
      "SFT warm-up on alphaalign-template traces with as many unsafe as safe harmful traces " +
      `("${TEMPLATE_ONLY}"), then ${cfg.algorithm.toUpperCase()} for ${cfg.steps} steps ` +
      `(${cfg.promptsPerStep} prompts x ${cfg.groupSize} rollouts) with R_s + R_h ("alphaalign") ` +
      'or R_s alone ("zero"). Rates are greedy answers to held-out test prompts ' +
      `(${c.evalPerKind} per kind), 95% intervals from a bootstrap over seeds ${
        seeds.join(", ")
      } ` +
      "and prompts.",
    rows: [...rates, ...deltas, ...throughputRows("alphaalign", runs)],
    figures: [
      {
        name: "rates",
        figure: barsFigure(rates.filter((r) => main(r.metric)), "AlphaAlign: rates by model"),
      },
      {
        name: "deltas vs template only",
        figure: barsFigure(
          deltas.filter((r) => r.reference === TEMPLATE_ONLY && main(r.metric)),
          "AlphaAlign: change vs the template-only warm-up",
          "difference in rate",
        ),
      },
      { name: "reward", figure: curvesFigure(runs, "reward", "Mean reward per RL step") },
      {
        name: "refusal",
        figure: curvesFigure(runs, "refusal_rate", "Refusal-string rate of rollouts per step"),
      },
      { name: "kl", figure: curvesFigure(runs, "kl", "KL to the warm-up model per step") },
    ],
    runs,
    examples,
    config: { ...cfg, startWeights },
    seconds: (performance.now() - t0) / 1000,
  });
}
