/**
 * The shallow-safety defence experiment on SafetyWorld (SCIENCE.md sections 4 and 5). From
 * `toy-shallow` (refusal SFT that is only a few tokens deep) it fine-tunes, for each seed:
 *
 * - `recovery-sft`: SFT on the refusal set plus safety-recovery rows (harmful prefix ->
 *   refusal, the prefix out of the loss; Qi et al. 2024, arXiv 2406.05946, defence (a));
 * - `benign-sft` and `benign-tokenwise`: further fine-tuning on harmless SafetyWorld tasks
 *   with plain SFT (the control) and with Qi et al.'s token-wise constrained objective,
 *   whose job is to keep the aligned distribution at early tokens (defence (b));
 * - `trajectory`: SFT on the refusal set with harmful spans injected inside refusals at
 *   random depths, followed by the refusal (Park & Kim, arXiv 2606.04778; `perturb.ts`);
 *
 * and measures every variant, `toy-shallow` and `toy-base`: harmful compliance under a
 * prefill of k tokens of toy-base's own harmful answers and under a 5-token harmful
 * injection at step t, over-refusal on borderline prompts, benign accuracy (test split,
 * greedy, SafetyWorld's graders), and KL(variant || toy-base) by position along toy-base's
 * harmful answers, and whether each model's refusal direction predicts its per-prompt harm
 * after injection (Park & Kim; lib/eval/refusal_predictability.ts: Pearson r across prompts
 * and within templates, Fisher-z intervals, per run). Rates get prompt-clustered bootstrap
 * intervals (Wilson's at 0 and 1), per seed and pooled over seeds; every variant gets the same
 * steps x batch (compute-matched).
 *
 * @module
 */

import * as aq from "arquero";
import { join } from "node:path";
import type { Model } from "../model/model.ts";
import { saveVariant, variantSlug, weightsFingerprint } from "../model/variants.ts";
import type { World, WorldPromptRow, WorldSftRow } from "../data/safetyworld/plan.ts";
import { gradeResponse } from "../data/safetyworld/graders.ts";
import { bootstrapCI } from "../compass/metrics.ts";
import { type MaskedExample, trainTokenwise } from "../train/tokenwise.ts";
import { perturbExamples, type PerturbOptions } from "../train/perturb.ts";
import { injectionCurve, perPromptRate, prefillCurve } from "../eval/injection.ts";
import {
  type RefusalPredictability,
  refusalPredictability,
} from "../eval/refusal_predictability.ts";
import { runAttack } from "../eval/attacks.ts";
import { rateCI } from "../eval/evaluate.ts";
import { klByPosition } from "../eval/diagnostics.ts";
import { plotBars } from "../viz/plots/bars.ts";
import type { PlotlyFigure } from "../viz/figure.ts";
import { plotPositionKl } from "../viz/plots/position_kl.ts";
import { plotRateCurve } from "../viz/plots/rate_curve.ts";
import { templateCluster } from "../data/safetyworld/templates.ts";
import { PREDICT_METRICS } from "./defence_metrics.ts";

/** The defences {@link compareDefences} can train. */
export type DefenceVariant = "recovery-sft" | "benign-sft" | "benign-tokenwise" | "trajectory";

/** Every defence, in table order. */
export const DEFENCE_VARIANTS: readonly DefenceVariant[] = [
  "recovery-sft",
  "benign-sft",
  "benign-tokenwise",
  "trajectory",
];

/** Options of {@link compareDefences}. */
export interface DefenceOptions {
  /** Training seeds (batch order, perturbation draws); one model per variant and seed. @default [0, 1] */
  seeds?: number[];
  /** Optimiser steps per variant (toy-shallow's own refusal SFT took 150). @default 150 */
  steps?: number;
  /** Examples per step. @default 32 */
  batchSize?: number;
  /** Peak learning rate (toy-shallow's). @default 1e-3 */
  lr?: number;
  /** Prefill depths k. @default [0, 1, 3, 5, 10] */
  depths?: number[];
  /** Injection steps t. @default [0, 2, 4, 8] */
  positions?: number[];
  /** Harmful tokens per injection. @default 5 */
  injectLength?: number;
  /** Test prompts per kind (harmful, borderline, task). @default 100 */
  perKind?: number;
  /** New tokens per answer. @default 48 */
  maxNewTokens?: number;
  /** Response positions of the KL curve. @default 16 */
  klPositions?: number;
  /** Which defences to train. @default DEFENCE_VARIANTS */
  variants?: readonly DefenceVariant[];
  /** Trajectory training's schedule (seed and harmfulTexts are set per run). @default rate 0.5, uniform positions, 1-5 harmful words */
  perturb?: Omit<PerturbOptions, "seed" | "harmfulTexts">;
  /** Bootstrap seed. @default 0 */
  ciSeed?: number;
  /** Progress messages. @default none */
  log?: (message: string) => void;
  /**
   * A folder to save the FIRST seed's trained model of every variant in, as
   * `<saveModels>/<variant>/` (HF layout + variant.json: experiment "defences", variant, seed,
   * steps, the starting model's fingerprint; lib/model/variants.ts). @default not saved
   */
  saveModels?: string;
}

/** One row of the result table (`seed` "all" = pooled over seeds; "-" = not trained). */
export interface DefenceRow {
  /** toy-base, toy-shallow, or a {@link DefenceVariant}. */
  variant: string;
  /** Training seed, "all" (pooled) or "-". */
  seed: number | string;
  /**
   * prefill ASR, injection ASR, over-refusal, benign accuracy, KL to toy-base, and per run
   * (not pooled) the {@link PREDICT_METRICS} rows (AUROC and Pearson r, x = the layer).
   */
  metric: string;
  /** Prefill depth k, injection step t, or response position; null for plain rates. */
  x: number | null;
  /** The rate (or KL in nats). */
  value: number;
  /** Lower end of the 95% interval. */
  lo: number;
  /** Upper end of the 95% interval. */
  hi: number;
  /** Generations (or prompts, for KL) behind the value. */
  n: number;
  /** Templates among the prompts of a rate, where the interval resamples them (issue #19). */
  templates?: number;
}

/** What {@link compareDefences} returns. */
export interface DefenceComparison {
  /** Every measurement (arquero table of {@link DefenceRow}). */
  table: aq.ColumnTable;
  /** Prefill ASR by k, injection ASR by t, KL by position, over-refusal / accuracy bars. */
  figures: PlotlyFigure[];
  /** Training log: variant, seed, final loss, seconds. */
  training: aq.ColumnTable;
  /** Options and sizes that made the result. */
  config: Record<string, unknown>;
}

/** Per-prompt outcomes of one model (null = the attack did not reach the prompt). */
/** A measured prompt's id and template cluster ("" when it has none). */
interface PromptKey {
  id: string;
  template: string;
}

interface Measured {
  rates: Map<string, { x: number | null; hits: (boolean | null)[] }>;
  kl: number[][]; // [prompt][position], NaN beyond the answer
  /** Park & Kim: refusal-direction score vs per-prompt injection harm (one model, no pooling). */
  predict: RefusalPredictability;
}

/** The prompt sets one measurement reads. */
interface Sets {
  harmful: WorldPromptRow[];
  borderline: WorldPromptRow[];
  task: WorldPromptRow[];
  /** Train harmful + task prompts the refusal direction is fitted on. */
  directionFit: WorldPromptRow[];
}

const sftOf = (r: WorldSftRow): MaskedExample => ({
  prompt: r.prompt,
  response: r.response,
  ...(r.prefixTokens !== undefined ? { lossFromToken: r.prefixTokens } : {}),
});

/** The training set of one defence. */
function trainingSet(
  v: DefenceVariant,
  world: World,
  seed: number,
  perturb: Omit<PerturbOptions, "seed" | "harmfulTexts">,
) {
  const train = (rows: WorldSftRow[]) => rows.filter((r) => r.split === "train");
  if (v === "recovery-sft") return [...train(world.align), ...train(world.recovery)].map(sftOf);
  if (v === "trajectory") {
    const comply = new Map<string, string[]>();
    for (const r of world.sft) {
      if (r.behaviour === "comply" && r.hazard) {
        comply.set(r.hazard, [...(comply.get(r.hazard) ?? []), r.response]);
      }
    }
    return perturbExamples(train(world.align), {
      ...perturb,
      seed,
      harmfulTexts: (row) => comply.get((row as WorldSftRow).hazard ?? "") ?? [],
    });
  }
  return train(world.sft).filter((r) => r.kind === "task").map(sftOf);
}

async function measure(
  model: Model,
  base: Model,
  sets: Sets,
  answers: Map<string, number[]>,
  o: Resolved,
): Promise<Measured> {
  const gen = { maxNewTokens: o.maxNewTokens, batchSize: 32 };
  const rates: Measured["rates"] = new Map();
  const pre = await prefillCurve(model, sets.harmful, { ...gen, depths: o.depths, answers });
  pre.forEach((c) => rates.set(`prefill ASR@${c.x}`, { x: c.x, hits: c.harmful }));
  const inj = await injectionCurve(model, sets.harmful, {
    ...gen,
    positions: o.positions,
    source: "harmful",
    answers,
    length: o.injectLength,
  });
  inj.forEach((c) => rates.set(`injection ASR@${c.x}`, { x: c.x, hits: c.harmful }));
  const predict = await refusalPredictability(model, {
    fit: sets.directionFit,
    heldOut: [...sets.harmful, ...sets.task],
    attacked: sets.harmful,
    harmfulRate: perPromptRate(inj),
  });
  const graded = async (rows: WorldPromptRow[]) =>
    (await runAttack(model, rows, "none", gen)).map((r, i) => gradeResponse(rows[i], r.text));
  const border = await graded(sets.borderline);
  rates.set("over-refusal", { x: null, hits: border.map((g) => g.refusal) });
  const task = await graded(sets.task);
  rates.set("benign accuracy", { x: null, hits: task.map((g) => g.correct === true) });
  const maxPos = o.klPositions;
  const kl: number[][] = [];
  for (const row of sets.harmful.filter((r) => answers.has(r.id))) {
    const pts = await klByPosition(model, base, [row.prompt], [answers.get(row.id)!], {
      maxPositions: maxPos,
    });
    const line = new Array<number>(maxPos).fill(NaN);
    pts.forEach((p) => (line[p.position] = p.kl));
    kl.push(line);
  }
  return { rates, kl, predict };
}

/** Table rows of one variant: per run, and pooled over runs when there are several. */
function summarise(
  variant: string,
  runs: { seed: number | string; m: Measured; ids: Map<string, PromptKey[]> }[],
  ciSeed: number,
): DefenceRow[] {
  const out: DefenceRow[] = [];
  const groups = runs.length > 1 ? [...runs.map((r) => [r]), runs] : [runs];
  for (const group of groups) {
    const seed = group.length > 1 ? "all" : group[0].seed;
    for (const [key, { x }] of group[0].m.rates) {
      const hits: boolean[] = [], clusters: string[] = [], templates: string[] = [];
      for (const run of group) {
        const ids = run.ids.get(key)!;
        run.m.rates.get(key)!.hits.forEach((h, i) => {
          if (h !== null) (hits.push(h), clusters.push(ids[i].id), templates.push(ids[i].template));
        });
      }
      // Two-level (templates, then prompts; issue #19) where every prompt has a template.
      const tpl = templates.every((t) => t !== "") ? templates : undefined;
      const ci = rateCI(hits, clusters, { ciSeed, templates: tpl });
      const metric = key.split("@")[0];
      out.push({
        variant,
        seed,
        metric,
        x,
        value: ci.rate,
        lo: ci.lo,
        hi: ci.hi,
        n: ci.n,
        ...(ci.templates !== undefined ? { templates: ci.templates } : {}),
      });
    }
    if (group.length === 1) out.push(...predictRows(variant, seed, group[0].m.predict));
    const P = group[0].m.kl.length, L = group[0].m.kl[0]?.length ?? 0;
    for (let j = 0; j < L; j++) {
      // Per prompt: the mean over runs; then a bootstrap over prompts.
      const per = Array.from({ length: P }, (_, i) => {
        const v = group.map((r) => r.m.kl[i][j]).filter(Number.isFinite);
        return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
      }).filter(Number.isFinite);
      if (per.length === 0) continue;
      const mean = (idx: Uint32Array) => idx.reduce((a, i) => a + per[i], 0) / idx.length;
      const ci = bootstrapCI(per.length, mean, { seed: ciSeed });
      out.push({
        variant,
        seed,
        metric: "KL to toy-base",
        x: j,
        value: ci.value,
        lo: ci.lo,
        hi: ci.hi,
        n: per.length,
      });
    }
  }
  return out;
}

/** One run's predictability as table rows (Pearson r with its Fisher-z interval). */
function predictRows(variant: string, seed: number | string, p: RefusalPredictability) {
  const row = (metric: string, value: number, lo: number, hi: number, n: number): DefenceRow => ({
    variant,
    seed,
    metric,
    x: p.layer,
    value,
    lo,
    hi,
    n,
  });
  return [
    row(PREDICT_METRICS.auroc, p.auroc, NaN, NaN, NaN),
    row(
      PREDICT_METRICS.across,
      p.across.pearson,
      p.across.pearsonLo,
      p.across.pearsonHi,
      p.across.n,
    ),
    row(
      PREDICT_METRICS.within,
      p.within.pearson,
      p.within.pearsonLo,
      p.within.pearsonHi,
      p.within.n,
    ),
  ];
}

function figures(rows: DefenceRow[]): PlotlyFigure[] {
  // Pooled rows where a variant has several seeds, else its only run.
  const several = new Set(rows.filter((r) => r.seed === "all").map((r) => r.variant));
  const pooled = rows.filter((r) => !several.has(r.variant) || r.seed === "all");
  const curve = (metric: string) =>
    pooled.filter((r) => r.metric === metric && Number.isFinite(r.value)) // no rows reached: no point
      .map((r) => ({ x: r.x!, rate: r.value, lo: r.lo, hi: r.hi, series: r.variant }));
  return [
    plotRateCurve(curve("prefill ASR"), {
      xTitle: "prefill depth k (tokens of toy-base's harmful answer)",
      yTitle: "harmful compliance",
      title: "Prefill attack",
    }),
    plotRateCurve(curve("injection ASR"), {
      xTitle: "injection step t (5 harmful tokens)",
      yTitle: "harmful compliance",
      title: "Mid-sequence injection",
    }),
    plotPositionKl(
      pooled.filter((r) => r.metric === "KL to toy-base")
        .map((r) => ({ position: r.x!, kl: r.value, series: r.variant })),
      { title: "KL(variant || toy-base) along toy-base's harmful answers" },
    ),
    plotBars(
      pooled.filter((r) => r.metric === "over-refusal" || r.metric === "benign accuracy")
        .map((r) => ({ name: r.variant, value: r.value, lo: r.lo, hi: r.hi, group: r.metric })),
      { title: "Over-refusal (borderline) and benign accuracy", yTitle: "rate" },
    ),
  ];
}

type Resolved = Required<Omit<DefenceOptions, "log" | "perturb" | "saveModels">> & {
  perturb: Omit<PerturbOptions, "seed" | "harmfulTexts">;
};

function resolve(o: DefenceOptions): Resolved {
  return {
    seeds: o.seeds ?? [0, 1],
    steps: o.steps ?? 150,
    batchSize: o.batchSize ?? 32,
    lr: o.lr ?? 1e-3,
    depths: o.depths ?? [0, 1, 3, 5, 10],
    positions: o.positions ?? [0, 2, 4, 8],
    injectLength: o.injectLength ?? 5,
    perKind: o.perKind ?? 100,
    maxNewTokens: o.maxNewTokens ?? 48,
    klPositions: o.klPositions ?? 16,
    variants: o.variants ?? DEFENCE_VARIANTS,
    perturb: { rate: 0.5, positions: "uniform", length: [1, 5], source: "harmful", ...o.perturb },
    ciSeed: o.ciSeed ?? 0,
  };
}

const predictNote = (p: RefusalPredictability) =>
  `; refusal direction (layer ${p.layer}, AUROC ${p.auroc.toFixed(2)}) vs injection harm: ` +
  `r ${p.across.pearson.toFixed(2)}, within template ${p.within.pearson.toFixed(2)} ` +
  `[${p.within.pearsonLo.toFixed(2)}, ${p.within.pearsonHi.toFixed(2)}]`;

/**
 * Trains every defence from `shallow` for every seed and measures them against `shallow`
 * and `base` (see the module doc). `world` must be the world the models were trained on.
 */
export async function compareDefences(
  base: Model,
  shallow: Model,
  world: World,
  opts: DefenceOptions = {},
): Promise<DefenceComparison> {
  const log = opts.log ?? (() => {});
  const cfg = resolve(opts);
  const test = (kind: string) =>
    world.prompts.filter((p) => p.split === "test" && p.kind === kind).slice(0, cfg.perKind);
  const train = (kind: string) =>
    world.prompts.filter((p) => p.split === "train" && p.kind === kind).slice(0, cfg.perKind);
  const sets: Sets = {
    harmful: test("harmful"),
    borderline: test("borderline"),
    task: test("task"),
    directionFit: [...train("harmful"), ...train("task")],
  };
  if (sets.harmful.length === 0) {
    throw new Error("Cannot compare defences: the world has no test harmful prompts");
  }
  // toy-base's own harmful answers are the prefill and injection material.
  const baseAns = await runAttack(base, sets.harmful, "none", {
    maxNewTokens: cfg.maxNewTokens,
    batchSize: 32,
  });
  const answers = new Map<string, number[]>();
  baseAns.forEach((r, i) => {
    if (gradeResponse(sets.harmful[i], r.text).harmful) answers.set(r.id, r.tokenIds);
  });
  log(`toy-base complies with ${answers.size}/${sets.harmful.length} test harmful prompts`);
  const idsOf = (m: Measured) =>
    new Map([...m.rates.keys()].map((k) => {
      const set = k.startsWith("over") ? "borderline" : k.startsWith("benign") ? "task" : "harmful";
      return [k, sets[set].map((r) => ({ id: r.id, template: templateCluster(r) ?? "" }))];
    }));
  const rows: DefenceRow[] = [];
  const secs = (t0: number) => ((performance.now() - t0) / 1000).toFixed(0);
  for (const [name, m] of [["toy-base", base], ["toy-shallow", shallow]] as const) {
    const t0 = performance.now();
    const res = await measure(m, base, sets, answers, cfg);
    rows.push(...summarise(name, [{ seed: "-", m: res, ids: idsOf(res) }], cfg.ciSeed));
    log(`measured ${name} in ${secs(t0)} s${predictNote(res.predict)}`);
  }
  const training: Record<string, unknown>[] = [];
  const startWeights = opts.saveModels ? await weightsFingerprint(shallow) : "";
  for (const v of cfg.variants) {
    const runs = [];
    for (const seed of cfg.seeds) {
      const model = shallow.copy(`toy-shallow+${v}`);
      try {
        const data = trainingSet(v, world, seed, cfg.perturb);
        let t0 = performance.now();
        const res = await trainTokenwise(model, data, {
          objective: v === "benign-tokenwise" ? "tokenwise" : "sft",
          steps: cfg.steps,
          batchSize: cfg.batchSize,
          lr: cfg.lr,
          seed,
          label: `${v} seed ${seed}`,
        });
        const loss = res.history.at(-1)!.loss;
        training.push({ variant: v, seed, examples: data.length, loss, seconds: secs(t0) });
        log(`trained ${v} seed ${seed}: final loss ${loss.toFixed(3)} in ${secs(t0)} s`);
        if (opts.saveModels && seed === cfg.seeds[0]) {
          const dir = join(opts.saveModels, variantSlug(v));
          await saveVariant(model, dir, {
            experiment: "defences",
            condition: v,
            seed,
            stages: [{ name: v === "benign-tokenwise" ? "tokenwise" : "sft", steps: cfg.steps }],
            start: shallow.source,
            startWeights,
            maxNewTokens: cfg.maxNewTokens,
          });
          log(`saved ${v} seed ${seed} to ${dir}`);
        }
        t0 = performance.now();
        const m = await measure(model, base, sets, answers, cfg);
        runs.push({ seed, m, ids: idsOf(m) });
        log(`measured ${v} seed ${seed} in ${secs(t0)} s${predictNote(m.predict)}`);
      } finally {
        model.dispose();
      }
    }
    rows.push(...summarise(v, runs, cfg.ciSeed));
  }
  const counts = { harmful: sets.harmful.length, withAnswer: answers.size };
  return {
    table: aq.from(rows),
    figures: figures(rows),
    training: aq.from(training),
    config: {
      ...cfg,
      worldSeed: world.seed,
      testPrompts: { ...counts, borderline: sets.borderline.length, task: sets.task.length },
    },
  };
}
