/**
 * Attribution patching (Nanda 2023; Syed et al. 2023): the first-order approximation of
 * activation patching. With the metric's gradient g at the corrupted run, patching
 * activation a from a_corrupted to a_corrupted + f (a_clean - a_corrupted) changes the
 * metric by about f g . (a_clean - a_corrupted), summed over the patched slice (one
 * position, or one head's z at every position). One forward and one backward pass per pair
 * give every cell at once; exact in the limit f -> 0, a linearisation for f = 1 (`fraction`).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../model/model.ts";
import { forward } from "../model/transformer.ts";
import { pearson } from "../compass/metrics.ts";
import { metricWeights, positionIndex } from "./metric.ts";
import {
  columnLabels,
  type PatchingOptions,
  type PatchingResult,
  patchingSetup,
  type PromptPair,
  summarise,
} from "./patching.ts";

/**
 * Attribution patching over prompt pairs, in the same shape as `activationPatching` (one
 * gradient per pair; the clean and corrupted metrics come from the same forward passes).
 *
 * @example
 * ```ts ignore
 * const approx = attributionPatching(model, pairs, { metric });
 * const real = activationPatching(model, pairs, { metric });
 * patchingAgreement(approx, real); // Pearson r over the cells' mean effects
 * ```
 */
export function attributionPatching(
  model: Model,
  pairs: readonly PromptPair[],
  opts: PatchingOptions,
): PatchingResult {
  const c = model.config;
  const where = "attributionPatching";
  const { target, fraction, ids, window, names } = patchingSetup(model, pairs, opts, where);
  const w = tf.tensor1d(metricWeights(opts.metric, c.vocabSize));
  const index = new Map(names.map((n, i) => [n, i]));
  const clean: number[] = [], corrupted: number[] = [], effects: number[][][] = [];
  try {
    for (const pair of ids) {
      const t = pair.clean[0].length;
      const pos = positionIndex(opts.metric, t, where);
      const metricOfLogits = (logits: tf.Tensor3D) =>
        tf.sum(tf.mul(tf.reshape(tf.slice(logits, [0, pos, 0], [1, 1, c.vocabSize]), [-1]), w));
      using cleanCache = model.runWithCache(pair.clean, { names, logits: "all" });
      clean.push(tf.tidy(() => metricOfLogits(cleanCache.logits!).dataSync()[0]));
      // Gradient of the metric at the corrupted run w.r.t. a zero delta added at each point.
      const acts: tf.Tensor[] = [];
      const deltas = names.map((n) => tf.zerosLike(cleanCache.get(n)));
      try {
        const f = (...ds: tf.Tensor[]) => {
          const out = forward(c, model.params, pair.corrupted, {
            logits: "all",
            hook: (name, x) => {
              const i = index.get(name);
              if (i === undefined) return x;
              acts[i] = tf.keep(tf.clone(x));
              return tf.add(x, ds[i]);
            },
          });
          return metricOfLogits(out.logits!) as tf.Scalar;
        };
        const { value: base, grads: g } = tf.valueAndGrads(f)(deltas);
        corrupted.push(base.dataSync()[0]);
        base.dispose();
        const perLayer = names.map((n, i) =>
          tf.tidy(() => {
            const prod = tf.mul(g[i], tf.sub(cleanCache.get(n), acts[i])); // [1, T, d] or [1, T, H, D]
            const cells = target === "heads"
              ? tf.sum(tf.reshape(prod, [t, c.nHead, c.headDim]), [0, 2])
              : tf.slice(tf.sum(tf.reshape(prod, [t, -1]), 1), [t - window], [window]);
            return Array.from(cells.dataSync(), (v) => fraction * v);
          })
        );
        tf.dispose(g);
        effects.push(perLayer);
      } finally {
        tf.dispose([...deltas, ...acts]);
      }
    }
  } finally {
    w.dispose();
  }
  return {
    method: "attribution",
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

/**
 * How well two patching results agree: Pearson r between their per-cell mean effects
 * (over pairs), and between every pair's cells.
 *
 * @example
 * ```ts ignore
 * const { meanR, cellR } = patchingAgreement(attributionPatching(m, pairs, o), activationPatching(m, pairs, o));
 * ```
 */
export function patchingAgreement(
  a: PatchingResult,
  b: PatchingResult,
): { meanR: number; cellR: number } {
  if (
    a.effects.length !== b.effects.length || a.rows.length !== b.rows.length ||
    a.columns.length !== b.columns.length
  ) {
    throw new Error("patchingAgreement: the two results cover different pairs or cells");
  }
  const mean = (r: PatchingResult) =>
    r.rows.flatMap((_, l) =>
      r.columns.map((_, j) => r.effects.reduce((s, e) => s + e[l][j], 0) / r.effects.length)
    );
  return {
    meanR: pearson(mean(a), mean(b)),
    cellR: pearson(a.effects.flat(2), b.effects.flat(2)),
  };
}
