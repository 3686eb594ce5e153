/**
 * The CRAFT RL experiment on SafetyWorld (arXiv 2603.17305; SCIENCE.md sections 1-2): a
 * safety compass (CRAFT head) fitted on the starting model's own hidden states, then GRPO
 * with CRAFT's latent + text reward against its two ablations, text only and latent only,
 * with the same budget and seeds; optionally the toolkit's per-token latent extension.
 *
 * Choices, stated so they can be judged:
 * - Compass data: SafetyWorld traces to harmful prompts (train split, both templates: safe,
 *   unsafe and rethink), run through the STARTING model; last layer (CRAFT's default).
 *   Pooling is the mean over the trace tokens ("mean-response"), not CRAFT's mean over
 *   prompt and response, because during RL the reward sees the hidden states of the
 *   completion only. The head is refitted per seed (its seed = the RL seed).
 * - Transfer check: the traces are templated, the policy answers in plain text, so the
 *   compass is also scored on plain answers (the world's refusals vs harmful compliance
 *   answers): both AUROCs are reported.
 * - Text judge: SafetyWorld's rule grader; `p_text_safe` = 0 for harmful compliance, else 1.
 * - Prompts: the train split's harmful, benign and borderline prompts (jailbreak wrappers
 *   are held out); the reward judges safety only, so over-refusal and benign accuracy
 *   measure what it costs.
 *
 * @module
 */

import type { WorldPromptRow, WorldSftRow, WorldTraceRow } from "../data/safetyworld/plan.ts";
import type { PromptRow } from "../data/schema.ts";
import { type GradableRow, gradeResponse } from "../data/safetyworld/graders.ts";
import type { Model } from "../model/model.ts";
import { collectActivations, type CollectRow } from "../compass/collect.ts";
import type { Activations } from "../compass/activations.ts";
import { fitCompass } from "../compass/fit.ts";
import type { Compass } from "../compass/compass.ts";
import type { CraftOptions } from "../compass/craft.ts";
import { aurocCI } from "../compass/metrics.ts";
import { craftReward, latentOnly, type Reward, textOnly } from "../train/rewards.ts";
import { SAFETY_METRICS, safetyEvalRows } from "./measure.ts";
import type { ExperimentOptions } from "./run.ts";
import { type ExperimentResult, makeResult } from "./result.ts";
import { deltaRows, rateRows, type ResultRow, resultRow, throughputRows } from "./rows.ts";
import { barsFigure, curvesFigure } from "./figures.ts";
import {
  openStart,
  type RLBudget,
  type RLBudgetOptions,
  SeedConditionRunner,
  setUpExperiment,
} from "./runner.ts";
import type { Common } from "./run.ts";

/** The reward conditions. */
export const CRAFT_CONDITIONS = [
  "latent+text",
  "text only",
  "latent only",
  "latent+text per-token",
] as const;
/** A reward condition. */
export type CraftCondition = typeof CRAFT_CONDITIONS[number];

/** Options of {@link runCraftExperiment}; defaults sized for minutes on 2 CPU cores. */
export interface CraftExperimentOptions extends ExperimentOptions, RLBudgetOptions {
  /** Starting checkpoint (compass and policy). @default "toy-base" */
  start?: string;
  /** Conditions to train. @default all four (quick: the first three) */
  conditions?: readonly CraftCondition[];
  /** Compass: pooling of the fit, CRAFT head options. @default { pooling: "mean-response" } */
  compass?: { pooling?: "mean" | "mean-response"; craft?: CraftOptions };
}

const EXAMPLE_KINDS = ["harmful", "jailbreak", "borderline", "task"];

/** The harmful-prompt traces (safe, unsafe, rethink) of one split. */
export const harmfulTraces = (traces: readonly WorldTraceRow[], split: string) =>
  traces.filter((t) => t.label === "harmful" && t.split === split);

/** Plain (untemplated) answers: the world's refusals (safe) and harmful compliance (unsafe). */
export function plainAnswers(
  world: { sft: WorldSftRow[]; align: WorldSftRow[] },
  n: number,
): CollectRow[] {
  const pick = (rows: WorldSftRow[], behaviour: string, traceLabel: string) =>
    rows.filter((r) => r.label === "harmful" && r.behaviour === behaviour).slice(0, n)
      .map((r) => ({ prompt: r.prompt, trace: r.response, traceLabel }));
  return [...pick(world.align, "refuse", "safe"), ...pick(world.sft, "comply", "unsafe")];
}

/** Held-out AUROC (safe vs unsafe rows) of a compass on collected rows, with its interval. */
async function compassAuroc(model: Model, compass: Compass, rows: CollectRow[], pooling: string) {
  const bin = rows.filter((r) => r.traceLabel !== "rethink");
  const acts = await collectActivations(model, bin, {
    layers: [compass.layer],
    pooling: pooling as "mean",
    progress: "silent",
  });
  const s = compass.score(acts.layer(compass.layer));
  return { ci: aurocCI(s, bin.map((r) => r.traceLabel === "safe")), n: bin.length };
}

/** The CRAFT experiments' text judge: p_text_safe = 0 for harmful compliance (SafetyWorld's grader), else 1. */
export const worldTextJudge = (row: PromptRow, text: string): number =>
  gradeResponse(row as GradableRow, text).harmful ? 0 : 1;

/** The RL prompts of the CRAFT experiments: the train split's task, harmful and borderline prompts. */
export function craftTrainPrompts(world: { prompts: WorldPromptRow[] }): WorldPromptRow[] {
  return world.prompts.filter((p) =>
    p.split === "train" && ["task", "harmful", "borderline"].includes(p.kind)
  );
}

/** A runner measuring SAFETY_METRICS on the held-out safety prompts (the CRAFT experiments'). */
export function safetyRunner(
  experiment: string,
  c: Common,
  seeds: number[],
  start: string,
  startWeights: string,
  budget: RLBudget,
  options?: object,
): SeedConditionRunner {
  return new SeedConditionRunner({
    experiment,
    common: c,
    seeds,
    start,
    startWeights,
    budget,
    evalSet: safetyEvalRows(c.world.prompts, c.evalPerKind),
    metrics: SAFETY_METRICS,
    exampleKinds: EXAMPLE_KINDS,
    options,
  });
}

function rewardFor(cond: CraftCondition, compass: Compass): Reward {
  const textJudge = worldTextJudge;
  if (cond === "text only") return textOnly({ textJudge, name: "text" });
  if (cond === "latent only") return latentOnly({ compass, name: "latent" });
  return craftReward({
    compass,
    textJudge,
    perToken: cond === "latent+text per-token",
    name: cond === "latent+text" ? "craft" : "craft_per_token",
  });
}

/**
 * Runs the CRAFT experiment end to end: per seed, fit the compass on the starting model,
 * then train one copy per reward condition with GRPO; every model is measured greedily on
 * the same held-out test prompts. Returns rates and differences with two-level bootstrap
 * intervals, the compass's AUROCs, figures, RL logs and rollout throughput.
 */
export async function runCraftExperiment(
  opts: CraftExperimentOptions = {},
): Promise<ExperimentResult> {
  const { t0, c, q, seeds, budget } = setUpExperiment(opts, 48);
  const cfg = {
    start: opts.start ?? "toy-base",
    conditions: [...(opts.conditions ?? CRAFT_CONDITIONS.slice(0, q ? 3 : 4))],
    ...budget,
    pooling: opts.compass?.pooling ?? "mean-response",
    craft: opts.compass?.craft ?? {},
    evalPerKind: c.evalPerKind,
    seeds,
    quick: q,
  };
  const { start, startWeights } = await openStart(cfg.start, c);
  const layer = start.config.nLayer;
  const nTrain = q ? 240 : 100_000, nTest = q ? 90 : 300;
  const fitRows = harmfulTraces(c.world.traces, "train").slice(0, nTrain);
  const testRows = harmfulTraces(c.world.traces, "test").slice(0, nTest);
  const plain = plainAnswers(c.world, q ? 40 : 150);
  const runner = safetyRunner("craft", c, seeds, cfg.start, startWeights, budget, opts);
  const startName = runner.startName;
  const compassRows: ResultRow[] = [];
  try {
    // Collected once, by the first seed that needs it (with seed workers: once per worker, and
    // never on this thread).
    let acts: Promise<Activations> | undefined;
    const fitActs = () =>
      acts ??= collectActivations(start, fitRows, {
        layers: [layer],
        pooling: cfg.pooling,
        progress: "silent",
      });
    await runner.record(startName, "start", start);
    const train = craftTrainPrompts(c.world);
    const perSeed = await runner.forEachSeed(async (seed, own) => {
      const aucRows: ResultRow[] = [];
      const compass = fitCompass(await fitActs(), {
        method: "craft",
        layer,
        seed,
        craft: cfg.craft,
      });
      for (const [what, rows] of [["test traces", testRows], ["plain answers", plain]] as const) {
        const a = await compassAuroc(start, compass, rows as CollectRow[], cfg.pooling);
        aucRows.push(resultRow({
          experiment: "craft",
          table: "compass",
          condition: `compass seed ${seed}`,
          metric: `AUROC (${what})`,
          value: a.ci.value,
          lo: a.ci.lo,
          hi: a.ci.hi,
          n: a.n,
          prompts: a.n,
          seeds: String(seed),
          method: "class-stratified bootstrap",
        }));
      }
      c.log(`craft: seed ${seed} compass fitted on ${fitRows.length} traces (layer ${layer})`);
      for (const cond of cfg.conditions) {
        await own.train(start, seed, {
          condition: cond,
          rl: { algorithm: "grpo", prompts: train, rewards: [rewardFor(cond, compass)], compass },
        });
      }
      return aucRows;
    });
    compassRows.push(...perSeed.flat());
  } finally {
    start.dispose();
  }
  const { hits, examples, runs } = runner;
  const conds = cfg.conditions as string[];
  const pairs = conds.map((k) => [k, startName] as const).concat(
    conds.filter((k) => k !== "text only" && conds.includes("text only"))
      .map((k) => [k, "text only"] as const),
  );
  const rates = rateRows("craft", hits, seeds, c.ci);
  const deltas = deltaRows("craft", hits, pairs, seeds, c.ci);
  const main = (m: string) => m !== "harmful refusal";
  return makeResult({
    name: "craft",
    description: `CRAFT on SafetyWorld from ${cfg.start}: per seed, a CRAFT compass fitted on ` +
      `${cfg.start}'s last-layer hidden states of ${fitRows.length} harmful-prompt traces ` +
      `(pooling ${cfg.pooling}), then GRPO for ${cfg.steps} steps (${cfg.promptsPerStep} prompts x ` +
      `${cfg.groupSize} rollouts, T 0.6, top-p 0.95, k3 KL ${cfg.klCoef}) with each reward: ` +
      `${conds.join(", ")}. Rates are greedy answers to held-out test prompts ` +
      `(${c.evalPerKind} per kind), 95% intervals from a bootstrap over seeds ${
        seeds.join(", ")
      } ` +
      "and prompts.",
    rows: [...compassRows, ...rates, ...deltas, ...throughputRows("craft", runs)],
    figures: [
      {
        name: "rates",
        figure: barsFigure(rates.filter((r) => main(r.metric)), "CRAFT: rates by model"),
      },
      {
        name: `deltas vs ${startName}`,
        figure: barsFigure(
          deltas.filter((r) => r.reference === startName && main(r.metric)),
          `CRAFT: change vs ${startName}`,
          "difference in rate",
        ),
      },
      { name: "reward", figure: curvesFigure(runs, "reward", "Mean reward per GRPO step") },
      {
        name: "refusal",
        figure: curvesFigure(runs, "refusal_rate", "Refusal rate of rollouts per step"),
      },
      { name: "kl", figure: curvesFigure(runs, "kl", `KL to ${cfg.start} per step`) },
    ],
    runs,
    examples,
    config: { ...cfg, startWeights, compassTraces: fitRows.length, layer },
    seconds: (performance.now() - t0) / 1000,
  });
}
