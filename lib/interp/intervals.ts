/**
 * Bootstrap intervals over prompts for the primitives' summaries (lib/compass/metrics.ts
 * `bootstrapCI`, percentile, seeded).
 *
 * @module
 */

import { bootstrapCI, type Interval } from "../compass/metrics.ts";

/** Resampling settings shared by the primitives. */
export interface InterpIntervalOptions {
  /** Bootstrap resamples over prompts. @default 1000 */
  reps?: number;
  /** 1 - coverage. @default 0.05 */
  alpha?: number;
  /** Seed of the resampling. @default 0 */
  seed?: number;
}

/**
 * Per-column mean over rows (prompts) with a bootstrap interval: `values[prompt][k]`.
 *
 * @example
 * ```ts
 * columnMeans([[1, 2], [3, 4]], { reps: 100 })[0].value; // 2
 * ```
 */
export function columnMeans(values: number[][], opts: InterpIntervalOptions = {}): Interval[] {
  const n = values.length;
  const k = values[0]?.length ?? 0;
  return Array.from({ length: k }, (_, j) =>
    bootstrapCI(n, (idx) => {
      let s = 0;
      for (const i of idx) s += values[i][j];
      return s / idx.length;
    }, { reps: opts.reps, alpha: opts.alpha, seed: opts.seed }));
}

/**
 * A ratio of sums over the same resampled prompts, sum(num[i]) / sum(den[i]), with a bootstrap
 * interval (the normalised patching effect: patched - corrupted over clean - corrupted).
 *
 * @example
 * ```ts
 * ratioOfMeans([1, 3], [2, 2], { reps: 100 }).value; // 1
 * ```
 */
export function ratioOfMeans(
  num: number[],
  den: number[],
  opts: InterpIntervalOptions = {},
): Interval {
  return bootstrapCI(num.length, (idx) => {
    let a = 0, b = 0;
    for (const i of idx) a += num[i], b += den[i];
    return a / b;
  }, { reps: opts.reps, alpha: opts.alpha, seed: opts.seed });
}
