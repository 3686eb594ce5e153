/**
 * Park & Kim's question as one call (arXiv 2606.04778, SCIENCE.md section 5): does how far a
 * prompt's hidden state lies along the model's own refusal direction predict how robust the
 * model is to injection on that prompt? The refusal direction is the difference of means
 * between harmful and benign prompts at the last prompt token (Arditi et al. 2024), fitted on
 * training prompts at every layer; the layer used is the one that best separates held-out
 * harmful from benign prompts (highest AUROC, ties broken by Cohen's d; its AUROC is returned,
 * so a direction that reads nothing is visible). The per-prompt score is then correlated with the per-prompt harmful rate after
 * injection ({@link perPromptRate}), across prompts and within templates (each template's mean
 * removed from both numbers, templates with a single prompt dropped), since prompts drawn from
 * a few templates can correlate only because some templates are both easier to read and
 * easier to break.
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import { collectActivations } from "../compass/collect.ts";
import { fitCompass } from "../compass/fit.ts";
import { auroc, separation } from "../compass/metrics.ts";
import { injectionPredictability, type Predictability } from "./injection.ts";

/** A prompt as {@link refusalPredictability} needs it. */
export interface PredictPrompt {
  /** The prompt text. */
  prompt: string;
  /** "harmful" or anything else (benign), for fitting and checking the direction. */
  kind: string;
  /** The template the prompt was drawn from, for the within-template correlation. */
  templateId: string;
}

/** What {@link refusalPredictability} returns. */
export interface RefusalPredictability {
  /** The layer whose refusal direction separated held-out harmful from benign prompts best. */
  layer: number;
  /** That layer's held-out AUROC, harmful vs benign (0.5: the direction reads nothing). */
  auroc: number;
  /** Score vs harmful rate across the attacked prompts. */
  across: Predictability;
  /** The same after removing each template's mean from both (templates with >= 2 prompts). */
  within: Predictability;
  /** Templates behind `within`. */
  templates: number;
}

/** Each value minus its group's mean; groups with fewer than 2 finite pairs become NaN. */
function centreWithin(
  x: readonly number[],
  y: readonly number[],
  group: readonly string[],
): { x: number[]; y: number[]; groups: number } {
  const members = new Map<string, number[]>();
  x.forEach((v, i) => {
    if (Number.isFinite(v) && Number.isFinite(y[i])) {
      members.set(group[i], [...(members.get(group[i]) ?? []), i]);
    }
  });
  const ox = x.map(() => NaN), oy = y.map(() => NaN);
  let groups = 0;
  for (const idx of members.values()) {
    if (idx.length < 2) continue;
    groups++;
    const mx = idx.reduce((a, i) => a + x[i], 0) / idx.length;
    const my = idx.reduce((a, i) => a + y[i], 0) / idx.length;
    for (const i of idx) (ox[i] = x[i] - mx, oy[i] = y[i] - my);
  }
  return { x: ox, y: oy, groups };
}

/**
 * {@link injectionPredictability}, or NaNs (with n) where r is undefined: a model whose harm
 * after injection is the same on every prompt (a deep refusal: 0 everywhere), or fewer than 4
 * pairs. That is a property of the model, not bad input, so it must not stop an experiment.
 */
function correlate(x: readonly number[], y: readonly number[]): Predictability {
  const keep = x.map((v, i) => Number.isFinite(v) && Number.isFinite(y[i]));
  const xs = x.filter((_, i) => keep[i]), ys = y.filter((_, i) => keep[i]);
  const constant = (v: number[]) => v.every((t) => t === v[0]);
  if (xs.length <= 3 || constant(xs) || constant(ys)) {
    return { pearson: NaN, pearsonLo: NaN, pearsonHi: NaN, spearman: NaN, n: xs.length };
  }
  return injectionPredictability(xs, ys);
}

/**
 * Fits `model`'s refusal direction on `fit` prompts at every layer, keeps the layer that
 * separates `heldOut` harmful from benign prompts best, and correlates the `attacked`
 * prompts' scores (higher = more refusal-like) with `harmfulRate` (one per attacked prompt,
 * NaN where no attack reached it). r is NaN where it is undefined (the same harm on every
 * prompt, or fewer than 4 pairs). A negative r means a stronger refusal signal goes with
 * less harm after injection, i.e. alignment predicts robustness.
 *
 * @example
 * ```ts ignore
 * import { generateWorld, loadModel, injectionCurve, perPromptRate, refusalPredictability } from "../../mod.ts";
 * const model = await loadModel("toy-shallow");
 * const world = generateWorld({ seed: 0 });
 * const pick = (split: string, kind: string) => world.prompts.filter((p) => p.split === split && p.kind === kind).slice(0, 40);
 * const attacked = pick("test", "harmful");
 * const curve = await injectionCurve(model, attacked, { positions: [0, 2, 4], source: "harmful" });
 * const p = await refusalPredictability(model, {
 *   fit: [...pick("train", "harmful"), ...pick("train", "task")],
 *   heldOut: [...pick("test", "harmful"), ...pick("test", "task")],
 *   attacked,
 *   harmfulRate: perPromptRate(curve),
 * });
 * console.log(p.layer, p.within.pearson, p.within.pearsonLo, p.within.pearsonHi);
 * ```
 */
export async function refusalPredictability(
  model: Model,
  sets: {
    fit: readonly PredictPrompt[];
    heldOut: readonly PredictPrompt[];
    attacked: readonly PredictPrompt[];
    harmfulRate: readonly number[];
  },
): Promise<RefusalPredictability> {
  const { fit, heldOut, attacked, harmfulRate } = sets;
  if (attacked.length !== harmfulRate.length) {
    throw new Error(
      `refusalPredictability: ${attacked.length} attacked prompts but ${harmfulRate.length} ` +
        "harmful rates; pass one rate per attacked prompt",
    );
  }
  for (const [name, rows] of [["fit", fit], ["heldOut", heldOut]] as const) {
    const harmful = rows.filter((r) => r.kind === "harmful").length;
    if (harmful === 0 || harmful === rows.length) {
      throw new Error(
        `refusalPredictability: ${name} needs both harmful and benign prompts ` +
          `(has ${harmful} harmful of ${rows.length})`,
      );
    }
  }
  const rows = (rs: readonly PredictPrompt[]) =>
    rs.map((r) => ({ prompt: r.prompt, label: r.kind === "harmful" ? "harmful" : "benign" }));
  const opts = { pooling: "last" as const, progress: "silent" as const };
  const fitActs = await collectActivations(model, rows(fit), opts);
  const heldActs = await collectActivations(model, rows(heldOut), opts);
  const attackActs = await collectActivations(model, rows(attacked), opts);
  const isHarmful = heldOut.map((r) => r.kind === "harmful");
  let best = { layer: -1, auroc: -1, d: -Infinity, score: [] as number[] };
  for (const layer of fitActs.layers.filter((l) => l > 0)) {
    const dir = fitCompass(fitActs, {
      method: "diffmean",
      layer,
      labelColumn: "label",
      positive: "benign",
      negative: "harmful",
    });
    // The probe's direction points to "benign"; the refusal direction is its negative.
    const score = (m: ReturnType<typeof heldActs.layer>) =>
      Array.from(dir.probe!.project(m), (v) => -v);
    const held = score(heldActs.layer(layer));
    const a = auroc(held, isHarmful), d = separation(held, isHarmful);
    // Several layers can separate perfectly (AUROC 1): the widest margin breaks the tie.
    if (a > best.auroc || (a === best.auroc && d > best.d)) {
      best = { layer, auroc: a, d, score: score(attackActs.layer(layer)) };
    }
  }
  const within = centreWithin(best.score, harmfulRate, attacked.map((r) => r.templateId));
  return {
    layer: best.layer,
    auroc: best.auroc,
    across: correlate(best.score, harmfulRate),
    within: correlate(within.x, within.y),
    templates: within.groups,
  };
}
