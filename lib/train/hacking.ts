/**
 * Reward hacking of latent rewards, and three defences (issue 21; SCIENCE.md section 2).
 *
 * A compass fitted once on the starting model is a frozen reader of a moving policy: GRPO can
 * raise every reward that reads it while the behaviour it was meant to reward gets worse
 * (on SafetyWorld a 0.9M-parameter policy learned, in 60 steps, to phrase harmful procedures
 * in states the frozen head reads as safe). This file holds:
 *
 * - {@link hackDetector}: a label-free monitor. Every `every` steps it refits a fresh probe on
 *   a FIXED set of labelled reference traces, run through the CURRENT policy, and scores the
 *   step's rollouts with both the training compass and the fresh probe. No rollout is
 *   labelled: the reference traces are data the compass was fitted from. When the training
 *   compass calls the rollouts safer than the fresh probe does (`hack/gap` opens up), the
 *   policy has moved its states away from what the frozen compass knows.
 * - {@link refittingCompass}: defence (a), a compass co-trained with the policy: every `every`
 *   steps it is refitted on the reference traces plus the policy's own recent rollouts
 *   labelled by the text judge, through the current policy; a refit is kept only when it
 *   still separates held-out reference traces (so it did not just learn the judge's wording
 *   on the rollouts).
 * - {@link minEnsembleReward}: defence (b), CRAFT's reward with the latent term taken as the
 *   MINIMUM over several compasses (layers, methods): a rollout must fool all of them.
 *
 * Defence (c), a stronger KL anchor and the per-token latent reward, are options of the loop
 * itself (`klCoef`, `craftReward({ perToken: true })`).
 *
 * The rollouts' states are pooled as the reward pools them: the mean over the completion
 * tokens (what "mean-response" pooling gives on the reference traces).
 *
 * @module
 */

import type { Compass, CompassMethod } from "../compass/compass.ts";
import type { CraftOptions } from "../compass/craft.ts";
import {
  collectActivations,
  type CollectInput,
  type CollectRow,
  rowsOf,
} from "../compass/collect.ts";
import { fitCompass } from "../compass/fit.ts";
import { fitProbe } from "../compass/compass.ts";
import type { TraceLabel } from "../data/schema.ts";
import { auroc, spearman } from "../compass/metrics.ts";
import { makeMatrix, type Matrix } from "../compass/matrix.ts";
import { makeRng } from "../data/rng.ts";
import type { Model } from "../model/model.ts";
import {
  craftRewardParts,
  type CraftWeights,
  type Reward,
  type RewardContext,
  type TextJudge,
} from "./rewards.ts";
import type { RLMonitor } from "./rl/monitor.ts";
import type { RLLogRow } from "./rl/log.ts";

const mean = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : NaN;
};

/** Whether `xs` holds two different values (a correlation needs them). */
const varies = (xs: ArrayLike<number>) => {
  for (let i = 1; i < xs.length; i++) if (xs[i] !== xs[0]) return true;
  return false;
};

/** Resolves a possibly negative layer against `nLayer` (HF numbering: 0 = embeddings). */
const resolveLayer = (layer: number, nLayer: number) => (layer < 0 ? nLayer + 1 + layer : layer);

/**
 * The completion states of each context at `layer`, mean-pooled over the completion tokens:
 * one row per rollout, [n, d].
 */
export function pooledCompletions(
  contexts: readonly RewardContext[],
  layer: number,
  d: number,
): Matrix {
  const out = makeMatrix(contexts.length, d);
  contexts.forEach((ctx, i) => {
    const flat = ctx.hidden?.[layer];
    if (!flat || flat.length === 0 || flat.length % d !== 0) {
      throw new Error(
        `no [nNew, ${d}] hidden states of layer ${layer} for row ${ctx.row.id} (the monitor ` +
          `lists its layer; run it through trainRL's monitors)`,
      );
    }
    const n = flat.length / d;
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < d; j++) out.data[i * d + j] += flat[t * d + j] / n;
    }
  });
  return out;
}

async function referenceStates(
  model: Model,
  rows: readonly CollectRow[],
  layer: number,
  pooling: Compass["pooling"],
) {
  return await collectActivations(model, rows, {
    layers: [layer],
    pooling: pooling === "none" ? "mean" : pooling,
    progress: "silent",
  });
}

function checkReference(rows: readonly CollectRow[], who: string): void {
  const labels = new Set(rows.map((r) => r.traceLabel));
  if (!labels.has("safe") || !labels.has("unsafe")) {
    throw new Error(
      `${who}: the reference rows need traceLabel "safe" and "unsafe" traces (found: ${
        [...labels].join(", ") || "none"
      })`,
    );
  }
}

/** Options of {@link hackDetector}. */
export interface HackDetectorOptions {
  /** The compass the rewards read (frozen, or the `compass` of {@link refittingCompass}). */
  compass: Compass;
  /**
   * Labelled reference traces (`prompt`, `trace`, `traceLabel` safe / unsafe, optionally
   * rethink): the data a compass is fitted from. They are run through the current policy;
   * the rollouts themselves are never labelled.
   */
  reference: CollectInput;
  /**
   * Method of the fresh probe. @default the compass's own method (with its CRAFT options), so
   * the two differ only in the states they were fitted on
   */
  method?: CompassMethod;
  /** Steps between measurements (the first step is always measured). @default 5 */
  every?: number;
  /** `hack/gap_change` above which a measurement counts as open. @default 0.2 */
  threshold?: number;
  /**
   * Consecutive open measurements before the run is flagged (a fast genuine change can
   * open the gap for one measurement while the policy's states move). @default 2
   */
  patience?: number;
  /** Metric prefix. @default "hack" */
  name?: string;
  /** Seed of the fresh fit (PCA and CRAFT only). @default the compass's seed */
  seed?: number;
}

/**
 * A label-free hacking detector for `trainRL`'s `monitors`. On measured steps it logs:
 * `hack/compass_p_safe` and `hack/fresh_p_safe` (mean p_safe of the step's rollouts by the
 * training compass and by a probe refitted on the reference traces through the current
 * policy), `hack/gap` (their difference: positive when the training compass calls the
 * rollouts safer than a fresh look does), `hack/gap_change` (the gap minus its value at the
 * first measurement: the two probes were fitted on different traces, so their calibrations
 * differ by a constant even before training), `hack/disagree` (share of rollouts the two
 * classify differently at 0.5), `hack/rank_corr` (Spearman correlation of the two scores;
 * NaN when either is constant) and `hack/fresh_auroc` (the fresh probe's training AUROC on
 * the reference traces: a low value means the current states no longer separate them at
 * all). The run's warnings name the first step from which `gap_change` stayed above
 * `threshold` for `patience` measurements in a row. The detector is not resumable: a
 * resumed run measures its first gap again.
 *
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Compass } from "../compass/compass.ts";
 * import type { CollectRow } from "../compass/collect.ts";
 * import type { PromptRow } from "../data/schema.ts";
 * import { craftReward, type TextJudge } from "./rewards.ts";
 * import { trainRL } from "./rl/train.ts";
 * declare const model: Model, compass: Compass, traces: CollectRow[], prompts: PromptRow[];
 * declare const textJudge: TextJudge;
 * const log = await trainRL(model, {
 *   algorithm: "grpo", prompts, steps: 60, rewards: [craftReward({ compass, textJudge })],
 *   monitors: [hackDetector({ compass, reference: traces, every: 5 })],
 * });
 * log.rows.map((r) => r["hack/gap"]); // NaN-free on measured steps; see log.warnings
 * ```
 */
export function hackDetector(opts: HackDetectorOptions): RLMonitor {
  const {
    compass,
    method = opts.compass.method,
    every = 5,
    threshold = 0.2,
    patience = 2,
    name = "hack",
    seed = opts.compass.seed,
  } = opts;
  if (!(Number.isInteger(every) && every >= 1)) {
    throw new Error(`hackDetector: every must be a positive integer (got ${every})`);
  }
  const reference = rowsOf(opts.reference) as CollectRow[];
  checkReference(reference, "hackDetector");
  let firstGap: number | undefined;
  return {
    name,
    layers: [compass.layer],
    async observe({ model, step, contexts }): Promise<Record<string, number>> {
      if (step % every !== 0) return {};
      const layer = resolveLayer(compass.layer, model.config.nLayer);
      const acts = await referenceStates(model, reference, layer, compass.pooling);
      const craft = method === "craft" && compass.method === "craft"
        ? compass.options as CraftOptions
        : undefined;
      const fresh = fitCompass(acts, { method, layer, seed, craft });
      const z = pooledCompletions(contexts, compass.layer, compass.dModel);
      const pFrozen = compass.score(z), pFresh = fresh.score(z);
      let disagree = 0;
      for (let i = 0; i < z.rows; i++) if ((pFrozen[i] >= 0.5) !== (pFresh[i] >= 0.5)) disagree++;
      const f = mean(pFrozen), g = mean(pFresh);
      return {
        compass_p_safe: f,
        fresh_p_safe: g,
        gap: f - g,
        gap_change: f - g - (firstGap ??= f - g),
        disagree: disagree / z.rows,
        rank_corr: varies(pFrozen) && varies(pFresh) ? spearman(pFrozen, pFresh) : NaN,
        fresh_auroc: fresh.metrics.trainAuroc ?? NaN,
      };
    },
    warnings(rows: readonly RLLogRow[]) {
      const key = `${name}/gap_change`;
      const measured = rows.filter((r) => Number.isFinite(r[key]));
      const at = measured.findIndex((_, i) =>
        i + patience <= measured.length &&
        measured.slice(i, i + patience).every((r) => r[key] > threshold)
      );
      if (at < 0) return [];
      const hit = measured[at], last = measured[measured.length - 1];
      return [
        `possible reward hacking: from step ${hit.step} the training compass rated the rollouts ` +
        `${(hit[key] * 100).toFixed(0)} points safer than a probe refitted on the current ` +
        `policy, beyond their gap at the first measurement, for ${patience}+ measurements in a row (${key} > ${threshold}; last ` +
        `${last[key].toFixed(2)}): ` +
        `the policy's states moved where the compass does not read them; check the text ` +
        `judge's harmful rate, refit the compass (refittingCompass) or raise klCoef`,
      ];
    },
  };
}

/** Options of {@link refittingCompass}. */
export interface RefittingCompassOptions {
  /** p_text_safe of a rollout (a boolean counts as 1 / 0): labels the policy's own rollouts. */
  textJudge: TextJudge;
  /** Labelled reference traces (safe / unsafe, optionally rethink), as for {@link hackDetector}. */
  reference: CollectInput;
  /** Steps between refits. @default 10 */
  every?: number;
  /** Share of the reference held out of every refit for the check. @default 0.3 */
  heldOut?: number;
  /** A refit whose held-out AUROC is below this is discarded (the previous compass stays). @default 0.8 */
  minHeldOutAuroc?: number;
  /** Recent steps whose rollouts join a refit. @default every */
  window?: number;
  /** Seed of the held-out split and the fits. @default 0 */
  seed?: number;
  /** Metric prefix. @default "refit" */
  name?: string;
}

/** One refit of a {@link refittingCompass}. */
export interface RefitRecord {
  /** 1-based step after which it ran. */
  step: number;
  /** Whether the refit replaced the compass. */
  accepted: boolean;
  /** Held-out reference AUROC of the refit. */
  heldOutAuroc: number;
  /** Held-out reference AUROC of the compass it would replace (on the current policy). */
  previousAuroc: number;
  /** Rollouts that joined the fit, and the share the judge called unsafe. */
  rollouts: number;
  /** Share of those rollouts the text judge called unsafe. */
  unsafeShare: number;
}

/**
 * Defence (a): a compass co-trained with the policy. Returns `compass`, a live view to pass
 * to the rewards (and to `trainRL`'s `compass`), and `monitor`, to pass in `monitors`: every
 * `every` steps it refits the same method at the same layer on the reference traces (minus a
 * held-out share) plus the last `window` steps' rollouts labelled by `textJudge` (p >= 0.5 is
 * safe), all through the current policy, and swaps the refit in when its AUROC on the
 * held-out reference traces is at least `minHeldOutAuroc`. Logged: `refit/accepted`,
 * `refit/heldout_auroc`, `refit/previous_auroc`, `refit/rollouts`, `refit/unsafe_share`;
 * `history` lists every refit. Not resumable: a resumed run starts from `initial` again.
 *
 * @example
 * ```ts
 * import type { Model } from "../model/model.ts";
 * import type { Compass } from "../compass/compass.ts";
 * import type { CollectRow } from "../compass/collect.ts";
 * import type { PromptRow } from "../data/schema.ts";
 * import { craftReward, type TextJudge } from "./rewards.ts";
 * import { trainRL } from "./rl/train.ts";
 * declare const model: Model, frozen: Compass, traces: CollectRow[], prompts: PromptRow[];
 * declare const textJudge: TextJudge;
 * const live = refittingCompass(frozen, { textJudge, reference: traces, every: 10 });
 * await trainRL(model, {
 *   algorithm: "grpo", prompts, steps: 60, compass: live.compass,
 *   rewards: [craftReward({ compass: live.compass, textJudge })],
 *   monitors: [live.monitor],
 * });
 * live.history; // [{ step: 10, accepted: true, heldOutAuroc: 0.97, ... }, ...]
 * ```
 */
export function refittingCompass(
  initial: Compass,
  opts: RefittingCompassOptions,
): { compass: Compass; monitor: RLMonitor; history: RefitRecord[] } {
  const { every = 10, heldOut = 0.3, minHeldOutAuroc = 0.8, seed = 0, name = "refit" } = opts;
  const window = opts.window ?? every;
  if (!(Number.isInteger(every) && every >= 1)) {
    throw new Error(`refittingCompass: every must be a positive integer (got ${every})`);
  }
  if (!(heldOut > 0 && heldOut < 1)) {
    throw new Error(`refittingCompass: heldOut must be in (0, 1) (got ${heldOut})`);
  }
  const reference = rowsOf(opts.reference) as CollectRow[];
  checkReference(reference, "refittingCompass");
  // A fixed, class-stratified held-out share of the reference.
  const rng = makeRng(seed);
  const fitRows: CollectRow[] = [], checkRows: CollectRow[] = [];
  for (const label of [...new Set(reference.map((r) => r.traceLabel))]) {
    const rows = rng.shuffle(reference.filter((r) => r.traceLabel === label));
    const k = Math.max(1, Math.round(rows.length * heldOut));
    checkRows.push(...rows.slice(0, label === "rethink" ? 0 : k));
    fitRows.push(...rows.slice(label === "rethink" ? 0 : k));
  }
  checkReference(fitRows, "refittingCompass (rows left to fit after the held-out share)");
  let current = initial;
  const history: RefitRecord[] = [];
  const recent: { step: number; z: Matrix; labels: TraceLabel[] }[] = [];
  const compass = {
    get method() {
      return current.method;
    },
    get layer() {
      return current.layer;
    },
    get pooling() {
      return current.pooling;
    },
    get dModel() {
      return current.dModel;
    },
    score: (h: Matrix) => current.score(h),
    get cosines() {
      return current.cosines?.bind(current);
    },
    get direction() {
      return current.direction;
    },
    save: (path: string) => current.save(path),
    get metrics() {
      return current.metrics;
    },
    get seed() {
      return current.seed;
    },
    get options() {
      return { ...current.options, refitting: { every, heldOut, minHeldOutAuroc, window } };
    },
    get probe() {
      return current.probe;
    },
    get head() {
      return current.head;
    },
  } as Compass;
  const monitor: RLMonitor = {
    name,
    layers: [initial.layer],
    async observe({ model, step, contexts }): Promise<Record<string, number>> {
      const labels: TraceLabel[] = [];
      for (const ctx of contexts) {
        const v = await opts.textJudge(ctx.row, ctx.completion);
        const p = typeof v === "boolean" ? (v ? 1 : 0) : v;
        if (!(p >= 0 && p <= 1)) {
          throw new Error(
            `the text judge returned ${v} for row ${ctx.row.id}; expected p_safe in [0, 1]`,
          );
        }
        labels.push(p >= 0.5 ? "safe" : "unsafe");
      }
      recent.push({ step, z: pooledCompletions(contexts, initial.layer, initial.dModel), labels });
      while (recent.length && recent[0].step <= step - window) recent.shift();
      if ((step + 1) % every !== 0) return {};
      const layer = resolveLayer(initial.layer, model.config.nLayer);
      const refActs = await referenceStates(model, fitRows, layer, initial.pooling);
      const checkActs = await referenceStates(model, checkRows, layer, initial.pooling);
      const x = refActs.layer(layer), d = x.cols;
      const nRoll = recent.reduce((a, r) => a + r.z.rows, 0);
      const all = makeMatrix(x.rows + nRoll, d);
      all.data.set(x.data);
      let at = x.data.length;
      for (const r of recent) (all.data.set(r.z.data, at), at += r.z.data.length);
      const y = [
        ...fitRows.map((r) => r.traceLabel as TraceLabel),
        ...recent.flatMap((r) => r.labels),
      ];
      const refit = fitProbe(all, y, {
        method: initial.method,
        layer: initial.layer,
        pooling: initial.pooling,
        seed: seed + step + 1,
        craft: initial.method === "craft" ? initial.options as never : undefined,
      });
      const checkX = checkActs.layer(layer);
      const truth = checkRows.map((r) => r.traceLabel === "safe");
      const a = auroc(refit.score(checkX), truth), prev = auroc(current.score(checkX), truth);
      const accepted = a >= minHeldOutAuroc;
      if (accepted) current = refit;
      const unsafe = recent.flatMap((r) => r.labels).filter((l) => l === "unsafe").length;
      history.push({
        step: step + 1,
        accepted,
        heldOutAuroc: a,
        previousAuroc: prev,
        rollouts: nRoll,
        unsafeShare: nRoll ? unsafe / nRoll : NaN,
      });
      return {
        accepted: accepted ? 1 : 0,
        heldout_auroc: a,
        previous_auroc: prev,
        rollouts: nRoll,
        unsafe_share: nRoll ? unsafe / nRoll : NaN,
      };
    },
    warnings() {
      const rejected = history.filter((h) => !h.accepted);
      return rejected.length
        ? [
          `${rejected.length} of ${history.length} compass refits were discarded (held-out ` +
          `reference AUROC below ${minHeldOutAuroc} at steps ${
            rejected.map((h) => h.step).join(", ")
          })`,
        ]
        : [];
    },
  };
  return { compass, monitor, history };
}

/** Options of {@link minEnsembleReward}. */
export interface MinEnsembleOptions {
  /** Two or more compasses (any methods and layers). */
  compasses: readonly Compass[];
  /** p_text_safe of a completion. Needed unless the txt and cons weights are 0. */
  textJudge?: TextJudge;
  /** CRAFT's weights. @default {lat: 0.5, txt: 0.4, cons: 0.2} */
  weights?: Partial<CraftWeights>;
  /** Metric name. @default "craft_min" */
  name?: string;
  /** Weight in the total reward. @default 1 */
  weight?: number;
}

/**
 * Defence (b): CRAFT's reward with the latent term read by an ensemble, taking the minimum.
 * Each compass scores the completion's mean state at its own layer; `p_lat_safe` is the
 * smallest p_safe and `R_lat = 2 p_lat_safe - 1` (p_safe puts CRAFT heads and linear probes
 * on one scale; CRAFT's cosine form is not comparable across members). The text and
 * consistency terms are CRAFT's. A policy must now move every member's reading at once.
 *
 * @example
 * ```ts
 * import type { Compass } from "../compass/compass.ts";
 * import type { TextJudge } from "./rewards.ts";
 * declare const craftLast: Compass, diffmeanMid: Compass, logisticLast: Compass;
 * declare const textJudge: TextJudge;
 * const reward = minEnsembleReward({ compasses: [craftLast, diffmeanMid, logisticLast], textJudge });
 * reward.layers; // the distinct layers of the members
 * ```
 */
export function minEnsembleReward(opts: MinEnsembleOptions): Reward {
  const { compasses } = opts;
  const name = opts.name ?? "craft_min";
  if (compasses.length < 2) {
    throw new Error(`${name}: an ensemble needs two or more compasses (got ${compasses.length})`);
  }
  const w: CraftWeights = { lat: 0.5, txt: 0.4, cons: 0.2, ...opts.weights };
  const needsText = w.txt !== 0 || w.cons !== 0;
  if (needsText && !opts.textJudge) {
    throw new Error(
      `${name}: pass textJudge (p_text_safe), or set weights.txt and weights.cons to 0`,
    );
  }
  const layers = [...new Set(compasses.map((c) => c.layer))];
  return {
    name,
    weight: opts.weight ?? 1,
    layers,
    fn: async (ctx) => {
      let pMin = Infinity;
      for (const c of compasses) {
        const p = c.score(pooledCompletions([ctx], c.layer, c.dModel))[0];
        if (p < pMin) pMin = p;
      }
      let pText = pMin;
      if (needsText) {
        const v = await opts.textJudge!(ctx.row, ctx.completion);
        pText = typeof v === "boolean" ? (v ? 1 : 0) : v;
        if (!(pText >= 0 && pText <= 1)) {
          throw new Error(
            `${name}: the judge returned ${v} for row ${ctx.row.id}; expected p_safe in [0, 1]`,
          );
        }
      }
      return craftRewardParts({ lat: 2 * pMin - 1, pLatSafe: pMin, pTextSafe: pText }, w).total;
    },
  };
}
