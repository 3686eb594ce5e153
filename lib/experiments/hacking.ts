/**
 * The reward-hacking experiment on SafetyWorld (issue 21; SCIENCE.md section 2): CRAFT's
 * latent + text reward read by a compass fitted once on the starting model is hackable (the
 * policy moves its states where the frozen head reads "safe"). This experiment puts the
 * frozen compass beside three defences on the same seeds, prompts and budget:
 *
 * - `frozen`: CRAFT's latent + text reward, compass fitted once (the baseline).
 * - `co-trained`: the compass refitted every 10 steps on the reference traces plus the
 *   policy's own rollouts labelled by the text judge, kept only when its held-out reference
 *   AUROC stays >= 0.8 (`refittingCompass`).
 * - `ensemble-min`: the latent term is the minimum p_safe over four compasses (CRAFT and
 *   difference of means on the last layer, logistic on the one before, difference of means
 *   in the middle; `minEnsembleReward`).
 * - `strong KL`: the frozen reward with a KL coefficient ten times the budget's.
 * - `per-token`: the frozen reward with the per-token latent term.
 * - `per-token + co-trained`: both.
 *
 * Every run carries the label-free hacking detector (`hackDetector`, every 5 steps) on the
 * compass its reward reads, so `hack/gap` is logged beside the rates. Rates are greedy
 * answers to held-out test prompts with bootstrap intervals over seeds and prompts.
 *
 * @module
 */

import { collectActivations, type CollectRow } from "../compass/collect.ts";
import type { Activations } from "../compass/activations.ts";
import { fitCompass } from "../compass/fit.ts";
import type { Compass } from "../compass/compass.ts";
import { makeRng } from "../data/rng.ts";
import { craftReward, type Reward } from "../train/rewards.ts";
import { hackDetector, minEnsembleReward, refittingCompass } from "../train/hacking.ts";
import type { RLMonitor } from "../train/rl/monitor.ts";
import type { ExperimentOptions, RunRecord } from "./run.ts";
import { type ExperimentResult, makeResult } from "./result.ts";
import { deltaRows, rateRows, type ResultRow, resultRow, throughputRows } from "./rows.ts";
import { barsFigure, curvesFigure } from "./figures.ts";
import { type ConditionSpec, openStart, type RLBudgetOptions, setUpExperiment } from "./runner.ts";
import { craftTrainPrompts, harmfulTraces, safetyRunner, worldTextJudge } from "./craft_rl.ts";

/** The conditions. */
export const HACKING_CONDITIONS = [
  "frozen",
  "co-trained",
  "ensemble-min",
  "strong KL",
  "per-token",
  "per-token + co-trained",
] as const;
/** A condition. */
export type HackingCondition = typeof HACKING_CONDITIONS[number];

/** Options of {@link runHackingExperiment}. */
export interface HackingExperimentOptions extends ExperimentOptions, RLBudgetOptions {
  /** Starting checkpoint. @default "toy-base" */
  start?: string;
  /** Conditions. @default all six (quick: frozen, co-trained, ensemble-min) */
  conditions?: readonly HackingCondition[];
  /** Reference traces per label (safe, unsafe, rethink) for the detector and the refits. @default 80 (quick: 24) */
  referencePerLabel?: number;
  /** Steps between compass refits (co-trained). @default 10 (quick: 2) */
  refitEvery?: number;
  /** Steps between detector measurements. @default 5 (quick: 1) */
  detectEvery?: number;
  /** KL multiplier of the `strong KL` condition. @default 10 */
  strongKl?: number;
}

/** A class-balanced, seeded subset of the reference traces. */
function balanced(rows: readonly CollectRow[], perLabel: number, seed: number): CollectRow[] {
  const rng = makeRng(seed);
  return ["safe", "unsafe", "rethink"].flatMap((l) =>
    rng.shuffle(rows.filter((r) => r.traceLabel === l)).slice(0, perLabel)
  );
}

/** Mean of `metric` over a run's last `k` rows that have it. */
function tail(run: RunRecord, metric: string, k = 10): number {
  const v = run.log.rows.map((r) => r[metric]).filter((x) => Number.isFinite(x));
  const t = v.slice(-k);
  return t.length ? t.reduce((a, b) => a + b, 0) / t.length : NaN;
}

/**
 * Runs the hacking experiment end to end (see the module doc). Returns rates and differences
 * (vs the start and vs `frozen`) with bootstrap intervals over seeds and prompts, a
 * `dynamics` table (per condition: the compass's p_safe of the rollouts, the fresh probe's,
 * and the gap, each averaged over the last 10 measured steps, with the range over seeds),
 * the refits, figures and the RL logs.
 */
export async function runHackingExperiment(
  opts: HackingExperimentOptions = {},
): Promise<ExperimentResult> {
  const { t0, c, q, seeds, budget } = setUpExperiment(opts, 48);
  const cfg = {
    start: opts.start ?? "toy-base",
    conditions: [
      ...(opts.conditions ?? (q ? HACKING_CONDITIONS.slice(0, 3) : HACKING_CONDITIONS)),
    ],
    ...budget,
    referencePerLabel: opts.referencePerLabel ?? (q ? 24 : 80),
    refitEvery: opts.refitEvery ?? (q ? 2 : 10),
    detectEvery: opts.detectEvery ?? (q ? 1 : 5),
    strongKl: opts.strongKl ?? 10,
    pooling: "mean-response" as const,
    evalPerKind: c.evalPerKind,
    seeds,
    quick: q,
  };
  const { start, startWeights } = await openStart(cfg.start, c);
  const last = start.config.nLayer, mid = Math.max(1, Math.round(last / 2));
  const fitRows = harmfulTraces(c.world.traces, "train").slice(0, q ? 240 : 100_000);
  const reference = balanced(
    harmfulTraces(c.world.traces, "validation") as CollectRow[],
    cfg.referencePerLabel,
    0,
  );
  const textJudge = worldTextJudge;
  const runner = safetyRunner("hacking", c, seeds, cfg.start, startWeights, budget, opts);
  const startName = runner.startName;
  const refitRows: ResultRow[] = [];
  try {
    // Collected once, by the first seed that needs it (with seed workers: once per worker).
    let collected: Promise<Activations> | undefined;
    const fitActs = () =>
      collected ??= collectActivations(start, fitRows, {
        layers: [...new Set([mid, last - 1, last])],
        pooling: cfg.pooling,
        progress: "silent",
      });
    await runner.record(startName, "start", start);
    const train = craftTrainPrompts(c.world);
    const perSeed = await runner.forEachSeed(async (seed, own) => {
      const refits: ResultRow[] = [];
      const acts = await fitActs();
      const frozen = fitCompass(acts, { method: "craft", layer: last, seed });
      const members: Compass[] = [
        frozen,
        fitCompass(acts, { method: "diffmean", layer: last, seed }),
        fitCompass(acts, { method: "logistic", layer: last - 1, seed }),
        fitCompass(acts, { method: "diffmean", layer: mid, seed }),
      ];
      c.log(`hacking: seed ${seed}: compasses fitted on ${fitRows.length} traces`);
      for (const cond of cfg.conditions) {
        const detect = (compass: Compass): RLMonitor =>
          hackDetector({ compass, reference, every: cfg.detectEvery });
        let reward: Reward, compass = frozen;
        const monitors: RLMonitor[] = [];
        const coTrained = cond === "co-trained" || cond === "per-token + co-trained";
        let history: ReturnType<typeof refittingCompass>["history"] | undefined;
        if (coTrained) {
          const live = refittingCompass(frozen, {
            textJudge,
            reference,
            every: cfg.refitEvery,
            seed,
          });
          compass = live.compass;
          history = live.history;
          monitors.push(live.monitor);
        }
        if (cond === "ensemble-min") {
          reward = minEnsembleReward({ compasses: members, textJudge, name: "craft_min" });
        } else {
          reward = craftReward({
            compass,
            textJudge,
            perToken: cond.startsWith("per-token"),
            name: "craft",
          });
        }
        monitors.push(detect(compass));
        const spec: ConditionSpec = {
          condition: cond,
          rl: { algorithm: "grpo", prompts: train, rewards: [reward], compass, monitors },
          ...(cond === "strong KL" ? { budget: { klCoef: budget.klCoef * cfg.strongKl } } : {}),
        };
        await own.train(start, seed, spec);
        for (const h of history ?? []) {
          refits.push(resultRow({
            experiment: "hacking",
            table: "refits",
            condition: cond,
            metric: `refit at step ${h.step} (${h.accepted ? "kept" : "discarded"})`,
            value: h.heldOutAuroc,
            n: h.rollouts,
            seeds: String(seed),
            method: `held-out reference AUROC; previous ${h.previousAuroc.toFixed(3)}; ` +
              `unsafe share of rollouts ${h.unsafeShare.toFixed(3)}`,
          }));
        }
      }
      return refits;
    });
    refitRows.push(...perSeed.flat());
  } finally {
    start.dispose();
  }
  const { hits, examples, runs } = runner;
  const conds = cfg.conditions as string[];
  const pairs = conds.map((k) => [k, startName] as const).concat(
    conds.filter((k) => k !== "frozen" && conds.includes("frozen"))
      .map((k) => [k, "frozen"] as const),
  );
  const rates = rateRows("hacking", hits, seeds, c.ci);
  const deltas = deltaRows("hacking", hits, pairs, seeds, c.ci);
  const dynamics = conds.flatMap((cond) =>
    ["hack/compass_p_safe", "hack/fresh_p_safe", "hack/gap", "hack/gap_change"].map((metric) => {
      const v = runs.filter((r) => r.condition === cond).map((r) => tail(r, metric));
      return resultRow({
        experiment: "hacking",
        table: "dynamics",
        condition: cond,
        metric: `${metric.slice(5)} (last 10 measured steps)`,
        value: v.reduce((a, b) => a + b, 0) / v.length,
        lo: Math.min(...v),
        hi: Math.max(...v),
        n: v.length,
        seeds: seeds.join(" "),
        method: "mean over seeds; lo/hi: range over seeds",
      });
    })
  );
  return makeResult({
    name: "hacking",
    description: `Latent reward hacking on SafetyWorld from ${cfg.start}: per seed, compasses ` +
      `fitted on ${fitRows.length} harmful-prompt traces (CRAFT at layer ${last}; the ensemble ` +
      `adds difference of means at ${last} and ${mid} and logistic at ${
        last - 1
      }), then GRPO for ` +
      `${cfg.steps} steps (${cfg.promptsPerStep} prompts x ${cfg.groupSize} rollouts, KL ` +
      `${cfg.klCoef}; strong KL x${cfg.strongKl}) under: ${conds.join(", ")}. The detector and ` +
      `refits read ${reference.length} validation-split reference traces. Rates are greedy ` +
      `answers to held-out test prompts (${c.evalPerKind} per kind), 95% intervals from a ` +
      `bootstrap over seeds ${seeds.join(", ")} and prompts.`,
    rows: [...rates, ...deltas, ...dynamics, ...refitRows, ...throughputRows("hacking", runs)],
    figures: [
      { name: "rates", figure: barsFigure(rates, "Hacking defences: rates by model") },
      {
        name: "deltas vs frozen",
        figure: barsFigure(
          deltas.filter((r) => r.reference === "frozen"),
          "Change vs the frozen compass",
          "difference in rate",
        ),
      },
      {
        name: "gap",
        figure: curvesFigure(runs, "hack/gap", "Hacking detector: compass p_safe - fresh p_safe"),
      },
      {
        name: "compass p_safe",
        figure: curvesFigure(
          runs,
          "hack/compass_p_safe",
          "Rollouts' p_safe by the reward's compass",
        ),
      },
      { name: "kl", figure: curvesFigure(runs, "kl", `KL to ${cfg.start} per step`) },
    ],
    runs,
    examples,
    config: { ...cfg, startWeights, compassTraces: fitRows.length, layers: { mid, last } },
    seconds: (performance.now() - t0) / 1000,
  });
}
