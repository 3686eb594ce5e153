/**
 * The layer sweep (SCIENCE.md sections 1 and 7): fit each compass method on every layer's
 * training rows, score the held-out rows of the same layer, and report AUROC and accuracy
 * with percentile-bootstrap / Wilson intervals and the separation (Cohen's d) of the
 * held-out scores. One row per (layer, method), ready for an arquero table or a plot.
 *
 * @module
 */

import type { TraceLabel } from "../data/schema.ts";
import { binaryLabels, type CompassMethod, fitProbe, type FitProbeOptions } from "./compass.ts";
import { type Matrix, selectRows } from "./matrix.ts";
import { accuracyAt, aurocCI, type BinaryLabels, proportionCI, separation } from "./metrics.ts";

/** One split: a matrix per layer (same rows in every layer) and one label per row. */
export interface SweepSplit {
  /** Hidden states per layer: `layers[i]` is [n, d]. */
  layers: readonly Matrix[];
  /** Trace labels (safe/unsafe/rethink) or binary labels (1 = safe). */
  labels: readonly TraceLabel[] | BinaryLabels;
}

/** Options of {@link layerSweep}. */
export interface SweepOptions {
  /** Methods to compare. @default ["diffmean", "pca", "logistic"] */
  methods?: readonly CompassMethod[];
  /** Seed of every fit and of the bootstrap. @default 0 */
  seed?: number;
  /** Bootstrap resamples for the AUROC interval. @default 1000 */
  reps?: number;
  /** 1 - coverage of the intervals. @default 0.05 */
  alpha?: number;
  /** The model's layer number of each entry of `layers`. @default 0, 1, 2, ... */
  layerIds?: readonly number[];
  /** Threshold on p_safe for the accuracy. @default 0.5 */
  threshold?: number;
  /** Passed to every fit (pooling, l2, craft options, rethinkAs...). */
  fit?: Omit<FitProbeOptions, "method" | "layer" | "seed">;
}

/** One (layer, method) result on the held-out split. */
export interface SweepRow {
  /** The model's layer number (from `layerIds`). */
  layer: number;
  /** The probe fitted. */
  method: CompassMethod;
  /** Held-out AUROC of p_safe (safe vs unsafe; rethink rows left out). */
  auroc: number;
  /** Lower end of the AUROC's class-stratified bootstrap interval. */
  aurocLo: number;
  /** Upper end of the AUROC's class-stratified bootstrap interval. */
  aurocHi: number;
  /** Held-out accuracy of `p_safe >= threshold`. */
  accuracy: number;
  /** Wilson interval of the accuracy. */
  accLo: number;
  /** Upper end of the accuracy's Wilson interval. */
  accHi: number;
  /**
   * Cohen's d of logit(p_safe) between held-out safe and unsafe rows; for the linear
   * probes this equals d of the projection on the direction (d is affine-invariant).
   */
  separation: number;
  /** Held-out rows scored. */
  nTest: number;
}

function logit(p: number): number {
  const q = Math.min(Math.max(p, 1e-7), 1 - 1e-7);
  return Math.log(q / (1 - q));
}

/** Fits every method on every layer of `train`, scores `test`, and measures it. */
export function layerSweep(
  train: SweepSplit,
  test: SweepSplit,
  opts: SweepOptions = {},
): SweepRow[] {
  const { methods = ["diffmean", "pca", "logistic"], seed = 0, reps = 1000, alpha = 0.05 } = opts;
  const { threshold = 0.5, fit = {} } = opts;
  if (train.layers.length !== test.layers.length) {
    throw new Error(
      `Cannot sweep: train has ${train.layers.length} layers, test has ${test.layers.length}`,
    );
  }
  const ids = opts.layerIds ?? train.layers.map((_, i) => i);
  if (ids.length !== train.layers.length) {
    throw new Error(`Cannot sweep: ${ids.length} layerIds for ${train.layers.length} layers`);
  }
  const bits = binaryLabels(test.labels, "drop");
  const keep = [...bits.keys()].filter((i) => bits[i] >= 0);
  const y = keep.map((i) => bits[i] as 0 | 1);
  const rows: SweepRow[] = [];
  train.layers.forEach((xTrain, li) => {
    const xTest = selectRows(test.layers[li], keep);
    for (const method of methods) {
      const compass = fitProbe(xTrain, train.labels, { ...fit, method, layer: ids[li], seed });
      const p = compass.score(xTest);
      const a = aurocCI(p, y, { reps, alpha, seed });
      const acc = accuracyAt(p, y, threshold);
      const correct = Math.round(acc * y.length);
      const accCI = proportionCI(correct, y.length, { alpha });
      rows.push({
        layer: ids[li],
        method,
        auroc: a.value,
        aurocLo: a.lo,
        aurocHi: a.hi,
        accuracy: acc,
        accLo: accCI.lo,
        accHi: accCI.hi,
        separation: separation(Array.from(p, logit), y),
        nTest: y.length,
      });
    }
  });
  return rows;
}
