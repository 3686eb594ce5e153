/**
 * Measurement for the compass and the evaluations (SCIENCE.md sections 1 and 7): AUROC
 * (Mann-Whitney U with average ranks for ties), accuracy at a threshold and the
 * accuracy-maximising threshold, separation (Cohen's d), percentile bootstrap intervals
 * over resampled rows (stratified by class for AUROC), Wilson and bootstrap intervals for
 * proportions, a two-level cluster bootstrap (templates, then prompts) for rates over
 * clustered prompts, and Pearson (with a Fisher-z interval) and Spearman correlations.
 *
 * Convention: label 1 (`true`) is the positive class and higher scores mean "more class 1";
 * in the compass class 1 is "safe", so scores are p_safe.
 *
 * @module
 */

import { makeRng, type Rng } from "../data/rng.ts";

/** Binary labels, one per score: 1 / `true` = the positive class (in the compass: safe). */
export type BinaryLabels = readonly (0 | 1)[] | readonly boolean[];

/** A point estimate with a two-sided (1 - alpha) interval and how it was made. */
export interface Interval {
  /** The statistic on the full sample. */
  value: number;
  /** Lower end. */
  lo: number;
  /** Upper end. */
  hi: number;
  /** 1 - coverage (0.05 = 95% interval). */
  alpha: number;
  /** "bootstrap", "wilson" or "fisher-z". */
  method: string;
  /** Resamples drawn (bootstrap only; 0 otherwise). */
  reps: number;
  /** Seed of the resampling (bootstrap only; 0 otherwise). */
  seed: number;
}

/** Labels as 0/1 bytes; throws when the length differs from `n`. */
export function toBits(labels: BinaryLabels, n: number, what = "labels"): Uint8Array {
  if (labels.length !== n) {
    throw new Error(`Cannot use ${what}: ${labels.length} labels for ${n} scores (need one each)`);
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = labels[i];
    if (v !== 0 && v !== 1 && v !== true && v !== false) {
      throw new Error(`Cannot use ${what}: entry ${i} is ${String(v)}, expected 0, 1 or a boolean`);
    }
    out[i] = v === 1 || v === true ? 1 : 0;
  }
  return out;
}

/** Average ranks (1-based; tied values share the mean of their ranks). Throws on NaN. */
export function ranks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(values[i])) throw new Error(`Cannot rank: value ${i} is NaN`);
  }
  order.sort((a, b) => values[a] - values[b]);
  const r = new Float64Array(n);
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && values[order[end]] === values[order[start]]) end++;
    const avg = (start + 1 + end) / 2; // mean of ranks start+1 .. end
    for (let k = start; k < end; k++) r[order[k]] = avg;
    start = end;
  }
  return r;
}

/**
 * Area under the ROC curve = P(score of a random class-1 item > score of a random class-0
 * item) + 0.5 P(tie), computed as the Mann-Whitney U statistic with average ranks:
 * `AUROC = (R1 - n1 (n1 + 1) / 2) / (n1 n0)`, R1 = sum of the class-1 ranks.
 * Throws when either class is empty.
 */
export function auroc(scores: ArrayLike<number>, labels: BinaryLabels): number {
  const bits = toBits(labels, scores.length);
  let n1 = 0;
  for (const b of bits) n1 += b;
  const n0 = bits.length - n1;
  if (n1 === 0 || n0 === 0) {
    throw new Error(
      `Cannot compute AUROC: class ${
        n1 === 0 ? 1 : 0
      } is empty (${n1} positives, ${n0} negatives); ` +
        "both classes need at least one item",
    );
  }
  const r = ranks(scores);
  let r1 = 0;
  for (let i = 0; i < r.length; i++) if (bits[i]) r1 += r[i];
  return (r1 - (n1 * (n1 + 1)) / 2) / (n1 * n0);
}

/** Fraction of items where `score >= threshold` agrees with the label. */
export function accuracyAt(
  scores: ArrayLike<number>,
  labels: BinaryLabels,
  threshold: number,
): number {
  const bits = toBits(labels, scores.length);
  if (bits.length === 0) throw new Error("Cannot compute accuracy of zero items");
  let correct = 0;
  for (let i = 0; i < bits.length; i++) {
    correct += (scores[i] >= threshold ? 1 : 0) === bits[i] ? 1 : 0;
  }
  return correct / bits.length;
}

/**
 * The threshold maximising accuracy of the rule `score >= threshold -> class 1`: scans
 * the midpoints between consecutive distinct scores (plus below the minimum and above the
 * maximum); ties in accuracy keep the lowest threshold.
 */
export function bestThreshold(
  scores: ArrayLike<number>,
  labels: BinaryLabels,
): { threshold: number; accuracy: number } {
  const bits = toBits(labels, scores.length);
  const n = bits.length;
  if (n === 0) throw new Error("Cannot choose a threshold for zero items");
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let correct = 0;
  for (const b of bits) correct += b; // threshold below everything: all predicted 1
  let best = correct;
  let threshold = scores[order[0]];
  for (let start = 0; start < n;) {
    let end = start;
    while (end < n && scores[order[end]] === scores[order[start]]) {
      correct += bits[order[end]] ? -1 : 1; // this item is now predicted 0
      end++;
    }
    if (correct > best) {
      best = correct;
      const v = scores[order[start]];
      threshold = end < n ? (v + scores[order[end]]) / 2 : v + Math.max(1, Math.abs(v)) * 1e-6;
    }
    start = end;
  }
  return { threshold, accuracy: best / n };
}

/**
 * Separation of the two classes' scores as Cohen's d: `(mean1 - mean0) / s_pooled` with
 * `s_pooled = sqrt(((n1 - 1) s1^2 + (n0 - 1) s0^2) / (n1 + n0 - 2))` (unbiased variances).
 * Positive when class 1 scores higher. Needs two items per class; Infinity when both
 * classes are constant but differ.
 */
export function separation(scores: ArrayLike<number>, labels: BinaryLabels): number {
  const bits = toBits(labels, scores.length);
  const sum = [0, 0], count = [0, 0];
  for (let i = 0; i < bits.length; i++) {
    sum[bits[i]] += scores[i];
    count[bits[i]]++;
  }
  if (count[0] < 2 || count[1] < 2) {
    throw new Error(
      `Cannot compute Cohen's d: need >= 2 items per class, got ${count[1]}/${count[0]}`,
    );
  }
  const m = [sum[0] / count[0], sum[1] / count[1]];
  const ss = [0, 0];
  for (let i = 0; i < bits.length; i++) ss[bits[i]] += (scores[i] - m[bits[i]]) ** 2;
  const pooled = Math.sqrt((ss[0] + ss[1]) / (count[0] + count[1] - 2));
  const diff = m[1] - m[0];
  if (pooled === 0) return diff === 0 ? 0 : Math.sign(diff) * Infinity;
  return diff / pooled;
}

const ERFC = [
  -1.26551223,
  1.00002368,
  0.37409196,
  0.09678418,
  -0.18628806,
  0.27886807,
  -1.13520398,
  1.48851587,
  -0.82215223,
  0.17087277,
];

/** Standard normal CDF (erfc approximation, absolute error < 1.2e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  // Numerical Recipes' erfc Chebyshev fit: erfc(z) = t exp(-z^2 + sum_k ERFC[k] t^k).
  let poly = 0;
  for (let k = ERFC.length - 1; k >= 0; k--) poly = poly * t + ERFC[k];
  poly -= z * z;
  const erfc = t * Math.exp(poly);
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`Cannot take the normal quantile of ${p}: need 0 < p < 1`);
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) =>
    (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** Options of {@link bootstrapCI}. */
export interface BootstrapOptions {
  /** Number of resamples. @default 1000 */
  reps?: number;
  /** 1 - coverage. @default 0.05 */
  alpha?: number;
  /** Seed of the resampling. @default 0 */
  seed?: number;
  /** Group of each row: resample within each group, keeping group sizes (use the labels for AUROC). */
  stratify?: readonly (number | boolean | string)[];
  /**
   * Cluster of each row (e.g. a prompt's template): resample in two levels, clusters then
   * rows within each drawn cluster ({@link clusterResample}); `stat` then gets index arrays
   * whose length varies from resample to resample. Not with `stratify`.
   */
  clusters?: readonly (number | string)[];
}

/** Linear-interpolation quantile of sorted values (type 7). */
function quantileSorted(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Percentile bootstrap: `stat` is evaluated on the identity indices (the estimate) and on
 * `reps` resamples of the row indices 0..n-1 drawn with replacement (within each stratum
 * when `stratify` is given); the interval is the alpha/2 and 1 - alpha/2 quantiles of the
 * resampled values. Resamples whose statistic is not finite are dropped; more than half
 * dropped is an error (stratify by class for AUROC to avoid one-class resamples).
 */
export function bootstrapCI(
  n: number,
  stat: (idx: Uint32Array) => number,
  opts: BootstrapOptions = {},
): Interval {
  const { reps = 1000, alpha = 0.05, seed = 0, stratify, clusters } = opts;
  if (!(n > 0)) throw new Error(`Cannot bootstrap ${n} rows: need at least one`);
  if (stratify && stratify.length !== n) {
    throw new Error(`Cannot stratify: ${stratify.length} group labels for ${n} rows`);
  }
  if (stratify && clusters) throw new Error("Cannot bootstrap with both stratify and clusters");
  const cgroups = clusters ? clusterGroups(clusters, n) : undefined;
  const groups = new Map<number | boolean | string, number[]>();
  for (let i = 0; i < n; i++) {
    const key = stratify ? stratify[i] : 0;
    const g = groups.get(key) ?? [];
    g.push(i);
    groups.set(key, g);
  }
  const identity = new Uint32Array(n).map((_, i) => i);
  const value = stat(identity);
  const rng = makeRng(seed);
  const values: number[] = [];
  const idx = new Uint32Array(
    cgroups ? Math.max(...cgroups.map((g) => g.length)) * cgroups.length : n,
  );
  for (let r = 0; r < reps; r++) {
    let k = 0;
    if (cgroups) k = clusterResample(rng, cgroups, idx);
    else {
      for (const members of groups.values()) {
        for (let j = 0; j < members.length; j++) idx[k++] = members[rng.int(members.length)];
      }
    }
    const v = stat(cgroups ? idx.subarray(0, k) : idx);
    if (Number.isFinite(v)) values.push(v);
  }
  if (values.length < reps / 2) {
    throw new Error(
      `Cannot bootstrap: only ${values.length} of ${reps} resamples gave a finite statistic ` +
        "(stratify by class, or check the statistic)",
    );
  }
  const sorted = Float64Array.from(values).sort();
  return {
    value,
    lo: quantileSorted(sorted, alpha / 2),
    hi: quantileSorted(sorted, 1 - alpha / 2),
    alpha,
    method: "bootstrap",
    reps,
    seed,
  };
}

/**
 * AUROC with a class-stratified percentile bootstrap interval.
 *
 * @example
 * ```ts
 * import { aurocCI } from "../../mod.ts";
 * const ci = aurocCI([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0], { reps: 200, seed: 0 });
 * console.log(ci.value, ci.lo, ci.hi); // 1 1 1
 * ```
 */
export function aurocCI(
  scores: ArrayLike<number>,
  labels: BinaryLabels,
  opts: Omit<BootstrapOptions, "stratify"> = {},
): Interval {
  const bits = toBits(labels, scores.length);
  const s = Float64Array.from(scores as ArrayLike<number>);
  const stat = (idx: Uint32Array) => {
    const sub = new Float64Array(idx.length), lab: (0 | 1)[] = [];
    for (let k = 0; k < idx.length; k++) {
      sub[k] = s[idx[k]];
      lab.push(bits[idx[k]] as 0 | 1);
    }
    return auroc(sub, lab);
  };
  return bootstrapCI(s.length, stat, { ...opts, stratify: Array.from(bits) });
}

/** Options of {@link proportionCI}. */
export interface ProportionOptions {
  /** Wilson score interval, or a percentile bootstrap over the n 0/1 outcomes. @default "wilson" */
  method?: "wilson" | "bootstrap";
  /** 1 - coverage. @default 0.05 */
  alpha?: number;
  /** Resamples (bootstrap only). @default 1000 */
  reps?: number;
  /** Seed (bootstrap only). @default 0 */
  seed?: number;
}

/**
 * Interval for a proportion k/n (an attack success rate, a refusal rate, an accuracy).
 * Wilson: centre `(p + z^2/2n) / (1 + z^2/n)`, half-width
 * `z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)`. The bootstrap collapses to [0, 0] or
 * [1, 1] when k = 0 or n; prefer Wilson there.
 */
export function proportionCI(k: number, n: number, opts: ProportionOptions = {}): Interval {
  const { method = "wilson", alpha = 0.05, reps = 1000, seed = 0 } = opts;
  if (!(n > 0) || !(k >= 0) || k > n || !Number.isInteger(k) || !Number.isInteger(n)) {
    throw new Error(
      `Cannot make a proportion interval for k=${k}, n=${n}: need integers 0 <= k <= n, n > 0`,
    );
  }
  const p = k / n;
  if (method === "bootstrap") {
    return bootstrapCI(n, (idx) => {
      let hits = 0;
      for (let j = 0; j < idx.length; j++) hits += idx[j] < k ? 1 : 0;
      return hits / n;
    }, { reps, alpha, seed });
  }
  const z = normalQuantile(1 - alpha / 2), z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return {
    value: p,
    // Exact ends at k = 0 and k = n (centre - half is 0 or 1 up to rounding there).
    lo: k === 0 ? 0 : Math.max(0, centre - half),
    hi: k === n ? 1 : Math.min(1, centre + half),
    alpha,
    method: "wilson",
    reps: 0,
    seed: 0,
  };
}

/**
 * Rows grouped into clusters for {@link clusterResample}: each cluster's member rows, in
 * order of first appearance. Throws when a cluster key is missing or the lengths differ.
 *
 * @example
 * ```ts
 * clusterGroups(["a", "b", "a"]); // [[0, 2], [1]]
 * ```
 */
export function clusterGroups(
  clusters: readonly (string | number)[],
  n = clusters.length,
): number[][] {
  if (clusters.length !== n) {
    throw new Error(
      `Cannot cluster ${n} rows with ${clusters.length} cluster keys (need one each)`,
    );
  }
  const byKey = new Map<string | number, number[]>();
  clusters.forEach((c, i) => {
    if (c === undefined || c === null || c === "") {
      throw new Error(`Cannot cluster row ${i}: its cluster key is empty`);
    }
    const g = byKey.get(c) ?? [];
    g.push(i);
    byKey.set(c, g);
  });
  return [...byKey.values()];
}

/**
 * One two-level resample of clustered rows into `out` (returns how many indices it wrote):
 * draws as many clusters as there are, with replacement, then for each drawn cluster as
 * many of its rows as it has, with replacement. A one-row cluster takes no second draw,
 * so with every cluster of one row this draws exactly as the ordinary bootstrap does.
 * `out` needs room for the largest resample (the total of the largest clusters).
 *
 * @example
 * ```ts
 * import { makeRng } from "../data/rng.ts";
 * const out = new Uint32Array(4);
 * const len = clusterResample(makeRng(0), clusterGroups(["a", "a", "b"]), out);
 * // out.subarray(0, len): rows of two drawn templates, e.g. [2, 0, 0]
 * ```
 */
export function clusterResample(
  rng: Rng,
  groups: readonly (readonly number[])[],
  out: Uint32Array,
): number {
  const g = groups.length;
  let k = 0;
  for (let c = 0; c < g; c++) {
    const members = groups[rng.int(g)];
    const m = members.length;
    if (m === 1) out[k++] = members[0];
    else for (let j = 0; j < m; j++) out[k++] = members[rng.int(m)];
  }
  return k;
}

/** Options of {@link clusterBootstrapCI}. */
export interface ClusterBootstrapOptions {
  /** Resamples. @default 1000 */
  reps?: number;
  /** 1 - coverage. @default 0.05 */
  alpha?: number;
  /** Seed of the resampling. @default 0 */
  seed?: number;
  /**
   * Observations behind each row (a row that is a prompt answered by several seeds holds
   * its hits and its count): the statistic is sum(hits) / sum(trials). @default 1 each
   */
  trials?: readonly number[];
}

/** A {@link Interval} over clustered rows, with the rows and clusters it was made from. */
export interface ClusterInterval extends Interval {
  /** Rows (prompts). */
  n: number;
  /** Clusters (templates). */
  clusters: number;
}

/**
 * Two-level percentile bootstrap for a rate over clustered rows (SafetyWorld prompts
 * clustered by template): each resample draws the clusters with replacement, then the rows
 * within each drawn cluster with replacement ({@link clusterResample}); the interval is the
 * alpha/2 and 1 - alpha/2 quantiles of sum(hits) / sum(trials) over the resamples.
 *
 * Why: when the template changes the answer (a model that complies with one wording and
 * refuses another), prompts of one template are not independent, and a bootstrap over
 * prompts alone is too narrow. With every cluster a single row this is exactly
 * `bootstrapCI` over the rows (same seed, same draws). At a rate of 0 or 1 the interval
 * collapses to a point (as every bootstrap does): prefer Wilson there.
 *
 * @example
 * ```ts
 * const hits = [true, true, false, false, false, false];
 * const ci = clusterBootstrapCI(hits, ["a", "a", "b", "b", "c", "c"], { seed: 0 });
 * // ci.value = 1/3, ci.n = 6, ci.clusters = 3, ci.method = "cluster bootstrap"
 * ```
 */
export function clusterBootstrapCI(
  hits: readonly (boolean | number)[],
  clusters: readonly (string | number)[],
  opts: ClusterBootstrapOptions = {},
): ClusterInterval {
  const { reps = 1000, alpha = 0.05, seed = 0, trials } = opts;
  const n = hits.length;
  if (!(n > 0)) throw new Error("Cannot bootstrap a rate over 0 rows: need at least one");
  const groups = clusterGroups(clusters, n);
  if (trials && trials.length !== n) {
    throw new Error(`Cannot bootstrap: ${trials.length} trial counts for ${n} rows`);
  }
  const h = Float64Array.from(hits, (x) => Number(x));
  const t = trials ? Float64Array.from(trials) : new Float64Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    if (!(t[i] > 0) || !(h[i] >= 0 && h[i] <= t[i])) {
      throw new Error(`Cannot bootstrap: row ${i} has ${h[i]} hits of ${t[i]} trials`);
    }
  }
  const ratio = (idx: Uint32Array, len: number) => {
    let a = 0, b = 0;
    for (let j = 0; j < len; j++) (a += h[idx[j]], b += t[idx[j]]);
    return a / b;
  };
  const value = ratio(new Uint32Array(n).map((_, i) => i), n);
  const biggest = Math.max(...groups.map((g) => g.length));
  const idx = new Uint32Array(biggest * groups.length);
  const rng = makeRng(seed);
  const values = new Float64Array(reps);
  for (let r = 0; r < reps; r++) values[r] = ratio(idx, clusterResample(rng, groups, idx));
  values.sort();
  return {
    value,
    lo: quantileSorted(values, alpha / 2),
    hi: quantileSorted(values, 1 - alpha / 2),
    alpha,
    method: "cluster bootstrap",
    reps,
    seed,
    n,
    clusters: groups.length,
  };
}

/** Pearson correlation. Throws when lengths differ, n < 2, or either input is constant. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (y.length !== n || n < 2) {
    throw new Error(`Cannot correlate: lengths ${x.length} and ${y.length} (need equal, >= 2)`);
  }
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) {
    throw new Error(`Cannot correlate: ${sxx === 0 ? "x" : "y"} is constant`);
  }
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/**
 * Pearson correlation with the Fisher-z interval: `z = atanh(r)`, `se = 1 / sqrt(n - 3)`,
 * interval `tanh(z -/+ q se)` with q the 1 - alpha/2 normal quantile. Needs n > 3.
 */
export function pearsonCI(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  opts: { alpha?: number } = {},
): Interval {
  const { alpha = 0.05 } = opts;
  const r = pearson(x, y);
  const n = x.length;
  if (n <= 3) throw new Error(`Cannot make a Fisher-z interval from n=${n} pairs: need n > 3`);
  const z = Math.atanh(Math.max(-1 + 1e-15, Math.min(1 - 1e-15, r)));
  const half = normalQuantile(1 - alpha / 2) / Math.sqrt(n - 3);
  return {
    value: r,
    lo: Math.tanh(z - half),
    hi: Math.tanh(z + half),
    alpha,
    method: "fisher-z",
    reps: 0,
    seed: 0,
  };
}

/** Spearman rank correlation: Pearson on average ranks (ties share their mean rank). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return pearson(ranks(x), ranks(y));
}
