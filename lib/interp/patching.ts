/**
 * Activation patching (causal tracing; Meng et al. 2022, Wang et al. 2022): run the
 * corrupted prompt, replace one activation by its value on the clean prompt, and measure
 * how much of the clean metric comes back. Per layer x position (a residual-stream or
 * sub-block activation at one position) or per layer x head (`blocks.{i}.attn.hook_z` of one
 * head at every position).
 *
 * Positions are aligned from the end across pairs (clean and corrupted prompts of one pair
 * must have the same length; pairs may differ): column j is position T - P + j of every
 * pair, P the shortest pair's length. The summary of a cell is the normalised effect
 * sum(patched - corrupted) / sum(clean - corrupted) over prompts (1 = the clean behaviour
 * fully restored, 0 = nothing), with a bootstrap interval over pairs.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Interval } from "../compass/metrics.ts";
import type { Model } from "../model/model.ts";
import { type HookInput, inputIds } from "../model/hooks.ts";
import { checkMetric, type LogitDiff, metricOf, positionIndex } from "./metric.ts";
import { type InterpIntervalOptions, ratioOfMeans } from "./intervals.ts";

/** A clean prompt and its corrupted twin (same length, e.g. one entity swapped). */
export interface PromptPair {
  /** The prompt whose behaviour is measured (e.g. a harmful request: refusal). */
  clean: HookInput;
  /** The same prompt minimally changed (e.g. a harmless request: compliance). */
  corrupted: HookInput;
}

/** What is patched: a [B, T, d] activation per block and position, or each head's z. */
export type PatchTarget =
  | "resid_pre"
  | "resid_mid"
  | "resid_post"
  | "attn_out"
  | "mlp_out"
  | "heads";

/** Options of {@link activationPatching} (and of `attributionPatching`). */
export interface PatchingOptions extends InterpIntervalOptions {
  /** The logit difference measured (at its position, default the last). */
  metric: LogitDiff;
  /** What is patched. @default "resid_pre" */
  target?: PatchTarget;
  /**
   * Fraction of the clean-minus-corrupted difference patched in: 1 is a full patch, a small
   * value a small step along it (where attribution patching's linearisation holds). (Not
   * `alpha`: that is the intervals' significance level.) @default 1
   */
  fraction?: number;
}

/** What the patching primitives return: cells are layer x column. */
export interface PatchingResult {
  /** "activation" (real patching) or "attribution" (its first-order approximation). */
  method: "activation" | "attribution";
  /** What was patched. */
  target: PatchTarget;
  /** Fraction patched in. */
  fraction: number;
  /** Row labels, one per block: "L0", "L1", ... */
  rows: string[];
  /** Column labels: positions ("-3 tok") from the first pair's clean prompt, or "H0", "H1", ... */
  columns: string[];
  /** Metric on each clean prompt. */
  clean: number[];
  /** Metric on each corrupted prompt. */
  corrupted: number[];
  /** (patched - corrupted) per pair [pair][layer][column]. */
  effects: number[][][];
  /** Normalised effect per cell with a bootstrap interval over pairs [layer][column]. */
  summary: Interval[][];
}

/**
 * The hook name patched at block i.
 *
 * @example
 * ```ts
 * targetName("heads", 2); // "blocks.2.attn.hook_z"
 * ```
 */
export function targetName(target: PatchTarget, i: number): string {
  if (target === "heads") return `blocks.${i}.attn.hook_z`;
  return `blocks.${i}.hook_${target}`;
}

/**
 * Validated pairs as ids (equal lengths within a pair), and the common end-aligned window
 * length P (the shortest pair's length).
 *
 * @example
 * ```ts ignore
 * pairIds(model, [{ clean: [1, 2, 3], corrupted: [1, 5, 3] }], "mine").window; // 3
 * ```
 */
export function pairIds(model: Model, pairs: readonly PromptPair[], where: string) {
  if (pairs.length === 0) throw new Error(`${where}: no prompt pairs`);
  const out = pairs.map((p, k) => {
    const a = inputIds(model, p.clean), b = inputIds(model, p.corrupted);
    if (a.length !== 1 || b.length !== 1) throw new Error(`${where}: pair ${k}: one prompt each`);
    if (a[0].length !== b[0].length) {
      throw new Error(
        `${where}: pair ${k}: clean has ${a[0].length} tokens, corrupted ${b[0].length}; ` +
          `patching needs equal lengths (swap same-length spans)`,
      );
    }
    return { clean: a, corrupted: b };
  });
  const window = Math.min(...out.map((p) => p.clean[0].length));
  return { ids: out, window };
}

/**
 * What both patching methods start from: the metric checked against the vocabulary, the
 * target and fraction with their defaults, the pairs' token ids and common window, and the
 * hook name patched in each block.
 *
 * @example
 * ```ts ignore
 * const { ids, window, names } = patchingSetup(model, pairs, { metric }, "activationPatching");
 * ```
 */
export function patchingSetup(
  model: Model,
  pairs: readonly PromptPair[],
  opts: PatchingOptions,
  where: string,
) {
  checkMetric(opts.metric, model.config.vocabSize, where);
  const target = opts.target ?? "resid_pre";
  const fraction = opts.fraction ?? 1;
  const { ids, window } = pairIds(model, pairs, where);
  const names = Array.from({ length: model.config.nLayer }, (_, i) => targetName(target, i));
  return { target, fraction, ids, window, names };
}

/**
 * Column labels of a result: "H0".."H{n-1}" for heads, else "-k token" for the last `window`
 * positions of the first clean prompt.
 *
 * @example
 * ```ts ignore
 * columnLabels(model, "resid_pre", ids, 4); // ["-4 how", "-3 do", "-2 i", "-1 ?"]
 * ```
 */
export function columnLabels(
  model: Model,
  target: PatchTarget,
  firstClean: number[],
  window: number,
): string[] {
  if (target === "heads") return Array.from({ length: model.config.nHead }, (_, h) => `H${h}`);
  const t = firstClean.length;
  return Array.from({ length: window }, (_, j) => {
    const id = firstClean[t - window + j];
    return `${j - window} ${model.tokenizer.idToToken(id) ?? id}`;
  });
}

/**
 * Normalised summaries [layer][column] of effects [pair][layer][column]: per cell
 * sum(effect) / sum(clean - corrupted) over resampled pairs.
 *
 * @example
 * ```ts
 * summarise([[[1]], [[3]]], [2, 4], [0, 0], { reps: 10 })[0][0].value; // 4 / 6
 * ```
 */
export function summarise(
  effects: number[][][],
  clean: number[],
  corrupted: number[],
  opts: InterpIntervalOptions,
): Interval[][] {
  const den = clean.map((c, k) => c - corrupted[k]);
  return effects[0].map((row, l) =>
    row.map((_, j) => ratioOfMeans(effects.map((e) => e[l][j]), den, opts))
  );
}

function metricAt(model: Model, ids: number[][], m: LogitDiff): number {
  const pos = positionIndex(m, ids[0].length);
  const f = model.forward(ids, { logits: "all" });
  const v = model.config.vocabSize;
  const r = metricOf((f.logits!.dataSync() as Float32Array).subarray(pos * v, (pos + 1) * v), m);
  f.logits!.dispose();
  return r;
}

/**
 * Activation patching over prompt pairs: for every block and position (or head), the
 * corrupted prompt is run with that one activation moved to (`fraction` of the way to) its clean
 * value; the effect is the metric's change. One batched forward per block and pair.
 *
 * @example
 * ```ts ignore
 * const p = activationPatching(model, [{ clean: harmful, corrupted: harmless }], { metric });
 * plotPatching(p); // layer x position heatmap of the normalised effect
 * ```
 */
export function activationPatching(
  model: Model,
  pairs: readonly PromptPair[],
  opts: PatchingOptions,
): PatchingResult {
  const c = model.config;
  const where = "activationPatching";
  const { target, fraction, ids, window, names } = patchingSetup(model, pairs, opts, where);
  const clean: number[] = [], corrupted: number[] = [], effects: number[][][] = [];
  for (const pair of ids) {
    const t = pair.clean[0].length;
    const pos = positionIndex(opts.metric, t, where);
    using cache = model.runWithCache(pair.clean, { names, logits: "all" });
    const v = c.vocabSize;
    clean.push(
      metricOf(
        (cache.logits!.dataSync() as Float32Array).subarray(pos * v, (pos + 1) * v),
        opts.metric,
      ),
    );
    const base = metricAt(model, pair.corrupted, opts.metric);
    corrupted.push(base);
    const k = target === "heads" ? c.nHead : window;
    const batch = Array.from({ length: k }, () => pair.corrupted[0]);
    const perLayer: number[][] = [];
    for (let i = 0; i < c.nLayer; i++) {
      const src = cache.get(names[i]);
      const f = model.runWithHooks(batch, {
        logits: "all",
        hooks: {
          [names[i]]: (x) => {
            // Row r patches column r: one position (or one head at every position).
            const mask = target === "heads"
              ? tf.reshape(tf.oneHot(tf.range(0, k, 1, "int32"), c.nHead), [k, 1, c.nHead, 1])
              : tf.reshape(
                tf.oneHot(tf.range(t - window, t, 1, "int32"), t),
                [k, t, 1],
              );
            return tf.add(x, tf.mul(tf.mul(mask, fraction), tf.sub(src, x)));
          },
        },
      });
      const data = f.logits!.dataSync() as Float32Array;
      f.logits!.dispose();
      perLayer.push(Array.from({ length: k }, (_, r) => {
        const off = (r * t + pos) * v;
        return metricOf(data.subarray(off, off + v), opts.metric) - base;
      }));
    }
    effects.push(perLayer);
  }
  return {
    method: "activation",
    target,
    fraction,
    rows: names.map((_, i) => `L${i}`),
    columns: columnLabels(model, target, ids[0].clean[0], window),
    clean,
    corrupted,
    effects,
    summary: summarise(effects, clean, corrupted, opts),
  };
}
