/**
 * The classic linear compasses (SCIENCE.md section 1), fitted on plain matrices of hidden
 * states (one row per trace) with binary labels where **class 1 = safe** throughout the
 * compass, so every probe's score is p_safe:
 * - difference of means (Arditi et al. 2024, arXiv 2406.11717): `r = mean(h|y=1) - mean(h|y=0)`;
 * - PCA reading vector (RepE, Zou et al. 2023, arXiv 2310.01405): the first principal
 *   component of paired differences, by seeded power iteration;
 * - logistic regression (L2-regularised, optionally standardised, fitted by L-BFGS).
 *
 * Every probe ends as `p_safe = sigmoid(x . weights + bias)` with a unit `direction` that
 * class 1 projects higher on. Diff-of-means and PCA only give a direction, so their
 * probability comes from a 1-D logistic fitted on the training projections (a calibration).
 *
 * @module
 */

import { makeRng } from "../data/rng.ts";
import { type Matrix, matTVec, matVec, mean, normalize, std } from "./matrix.ts";
import { type BinaryLabels, toBits } from "./metrics.ts";

/** Which linear probe. */
export type ProbeMethod = "diffmean" | "pca" | "logistic";

/** The plain data of a linear probe (what is saved and loaded). */
export interface LinearProbeSpec {
  /** How it was fitted. */
  method: ProbeMethod;
  /** Unit vector; class 1 (safe) projects higher on it. */
  direction: Float32Array;
  /** Raw-space weights: `p_safe = sigmoid(x . weights + bias)`. */
  weights: Float32Array;
  /** Raw-space bias. */
  bias: number;
  /** diffmean: the unnormalised `r = mean(h|safe) - mean(h|unsafe)` (the steering vector). */
  meanDiff?: Float32Array;
  /**
   * logistic: the feature standardisation `(x - mean) / std` and the weights and bias
   * fitted in that space (`weights`/`bias` above are the same model folded to raw space).
   */
  standardization?: { mean: Float32Array; std: Float32Array; weights: Float32Array; bias: number };
  /** diffmean/pca: `p_safe = sigmoid(scale * (x . direction) + offset)`. */
  calibration?: { scale: number; offset: number };
  /** Fit diagnostics (iterations, convergence, final loss, explained variance). */
  fit?: Record<string, number | boolean>;
}

/** A fitted linear probe: its data plus scoring functions. */
export interface LinearProbe extends LinearProbeSpec {
  /** p_safe of every row: `sigmoid(x . weights + bias)`. */
  score(x: Matrix): Float32Array;
  /** Projection of every row on the unit direction. */
  project(x: Matrix): Float32Array;
}

function checkWidth(x: Matrix, d: number): void {
  if (x.cols !== d) {
    throw new Error(`Cannot score a matrix of ${x.cols} columns with a probe fitted on d=${d}`);
  }
}

/**
 * Wraps probe data with its scoring functions. The bias is rounded to float32, as it is
 * stored, so a saved and reloaded probe scores bit for bit like the fitted one.
 */
export function makeLinearProbe(input: LinearProbeSpec): LinearProbe {
  const spec = { ...input, bias: Math.fround(input.bias) };
  const d = spec.weights.length;
  return {
    ...spec,
    score(x: Matrix): Float32Array {
      checkWidth(x, d);
      return matVec(x, spec.weights, spec.bias).map((t) => 1 / (1 + Math.exp(-t)));
    },
    project(x: Matrix): Float32Array {
      checkWidth(x, d);
      return matVec(x, spec.direction);
    },
  };
}

function checkInputs(x: Matrix, y: BinaryLabels, what: string): Uint8Array {
  const bits = toBits(y, x.rows, `${what} labels`);
  let n1 = 0;
  for (const b of bits) n1 += b;
  if (n1 === 0 || n1 === bits.length) {
    throw new Error(
      `Cannot fit ${what}: all ${bits.length} labels are ${n1 ? 1 : 0}; need both classes`,
    );
  }
  return bits;
}

function classIndices(bits: Uint8Array, c: number): number[] {
  const out: number[] = [];
  bits.forEach((b, i) => b === c && out.push(i));
  return out;
}

/** Calibrates a direction: a 1-D logistic on the projections, folded into weights/bias. */
function calibrated(
  method: ProbeMethod,
  x: Matrix,
  bits: Uint8Array,
  direction: Float32Array,
  l2: number,
): LinearProbeSpec {
  const proj = { rows: x.rows, cols: 1, data: matVec(x, direction) };
  const cal = fitLogistic(proj, Array.from(bits) as (0 | 1)[], { l2, standardize: true });
  const scale = cal.weights[0], offset = cal.bias;
  return {
    method,
    direction,
    weights: direction.map((u) => u * scale),
    bias: offset,
    calibration: { scale, offset },
  };
}

/**
 * Difference of means (Arditi et al. 2024): `r = mean(h|y=1) - mean(h|y=0)`, direction
 * `r / |r|`, score = projection, turned into p_safe by a 1-D logistic calibration.
 */
export function fitDiffMean(x: Matrix, y: BinaryLabels, opts: { l2?: number } = {}): LinearProbe {
  const bits = checkInputs(x, y, "diff-of-means");
  const m1 = mean(x, classIndices(bits, 1)), m0 = mean(x, classIndices(bits, 0));
  const r = m1.map((v, j) => v - m0[j]);
  const spec = calibrated("diffmean", x, bits, normalize(r), opts.l2 ?? 1e-3);
  return makeLinearProbe({ ...spec, meanDiff: r });
}

/** Options of {@link fitPca}. */
export interface PcaOptions {
  /**
   * Contrastive pairs `[i, j]` (row indices; the difference `x_i - x_j` is used). Without
   * pairs, every row is centred on the midpoint of the two class means instead.
   */
  pairs?: readonly (readonly [number, number])[];
  /** Seed of the power iteration's start vector. @default 0 */
  seed?: number;
  /** Power-iteration cap. @default 1000 */
  maxIter?: number;
  /** Stop when the direction moves less than this (L2). @default 1e-9 */
  tol?: number;
  /** L2 of the 1-D calibration logistic. @default 1e-3 */
  l2?: number;
}

/**
 * PCA reading vector (RepE): the top eigenvector of the second-moment matrix of the
 * difference vectors, found by seeded power iteration `v <- D^T D v / |D^T D v|`. With
 * `pairs`, D holds the paired differences; their second moment does not depend on the
 * order inside each pair, which is what RepE's random flipping of pair order achieves.
 * Without pairs, D holds the rows centred on the midpoint of the class means ("class-
 * centred"), whose top component is the class axis when it dominates the within-class
 * variance. The sign is oriented so that class 1 (safe) has the higher mean projection.
 */
export function fitPca(x: Matrix, y: BinaryLabels, opts: PcaOptions = {}): LinearProbe {
  const { seed = 0, maxIter = 1000, tol = 1e-9, l2 = 1e-3 } = opts;
  const bits = checkInputs(x, y, "PCA reading vector");
  const d = x.cols;
  let diffs: Matrix;
  if (opts.pairs) {
    const data = new Float32Array(opts.pairs.length * d);
    opts.pairs.forEach(([i, j], k) => {
      if (!(i >= 0 && i < x.rows && j >= 0 && j < x.rows)) {
        throw new Error(`Cannot use pair ${k} = [${i}, ${j}]: indices must be in [0, ${x.rows})`);
      }
      for (let c = 0; c < d; c++) data[k * d + c] = x.data[i * d + c] - x.data[j * d + c];
    });
    diffs = { rows: opts.pairs.length, cols: d, data };
  } else {
    const m1 = mean(x, classIndices(bits, 1)), m0 = mean(x, classIndices(bits, 0));
    const mid = m1.map((v, j) => (v + m0[j]) / 2);
    diffs = { rows: x.rows, cols: d, data: x.data.map((v, k) => v - mid[k % d]) };
  }
  if (diffs.rows === 0) throw new Error("Cannot fit a PCA reading vector from zero pairs");
  const rng = makeRng(seed);
  let v = normalize(Float32Array.from({ length: d }, () => rng.normal()));
  let iterations = 0, converged = false, lambda = 0;
  for (; iterations < maxIter && !converged; iterations++) {
    const dv = matVec(diffs, v); // [m]
    const next = matTVec(diffs, dv); // [d]
    lambda = dv.reduce((s, t) => s + t * t, 0) / diffs.rows;
    const nv = normalize(next);
    let move = 0;
    for (let j = 0; j < d; j++) move += (nv[j] - v[j]) ** 2;
    converged = Math.sqrt(move) < tol;
    v = nv;
  }
  let total = 0;
  for (const t of diffs.data) total += t * t;
  const proj = matVec(x, v);
  const n1 = bits.reduce((s, b) => s + b, 0);
  const m1p = proj.reduce((s, t, i) => s + (bits[i] ? t : 0), 0) / n1;
  const m0p = proj.reduce((s, t, i) => s + (bits[i] ? 0 : t), 0) / (bits.length - n1);
  if (m1p < m0p) v = v.map((t) => -t);
  const spec = calibrated("pca", x, bits, v, l2);
  return makeLinearProbe({
    ...spec,
    fit: {
      iterations,
      converged,
      explainedVariance: total > 0 ? (lambda * diffs.rows) / total : 0,
    },
  });
}

/** Options of {@link fitLogistic}. */
export interface LogisticOptions {
  /** L2 penalty: loss = mean NLL + (l2 / 2) |w|^2 (bias not penalised). @default 1e-3 */
  l2?: number;
  /** L-BFGS iteration cap. @default 200 */
  maxIter?: number;
  /** Standardise every feature to mean 0, sd 1 before fitting (constant ones kept as-is). @default true */
  standardize?: boolean;
  /** Converged when the largest gradient entry is below this. @default 1e-6 */
  tol?: number;
}

function softplus(t: number): number {
  return t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t));
}

function dot64(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * L2-regularised logistic regression fitted full-batch by L-BFGS (memory 10, Armijo
 * backtracking) in Float64, on standardised features by default. The standardisation is
 * folded into raw-space `weights`/`bias` and also returned. p = p(class 1) = p_safe.
 */
export function fitLogistic(x: Matrix, y: BinaryLabels, opts: LogisticOptions = {}): LinearProbe {
  const { l2 = 1e-3, maxIter = 200, standardize = true, tol = 1e-6 } = opts;
  const bits = checkInputs(x, y, "logistic probe");
  const n = x.rows, d = x.cols;
  const mu = standardize ? mean(x) : new Float32Array(d);
  const sd = standardize ? std(x, mu).map((s) => (s > 0 ? s : 1)) : new Float32Array(d).fill(1);
  const raw = (theta: Float64Array) => {
    const a = new Float64Array(d);
    let offset = theta[d];
    for (let j = 0; j < d; j++) {
      a[j] = theta[j] / sd[j];
      offset -= mu[j] * a[j];
    }
    return { a, offset };
  };
  const evaluate = (theta: Float64Array): { f: number; g: Float64Array } => {
    const { a, offset } = raw(theta);
    const t = matVec(x, a, offset);
    const r = new Float64Array(n);
    let f = 0, rsum = 0;
    for (let i = 0; i < n; i++) {
      f += softplus(t[i]) - bits[i] * t[i];
      r[i] = (1 / (1 + Math.exp(-t[i])) - bits[i]) / n;
      rsum += r[i];
    }
    const gRaw = matTVec(x, r);
    const g = new Float64Array(d + 1);
    let pen = 0;
    for (let j = 0; j < d; j++) {
      g[j] = (gRaw[j] - mu[j] * rsum) / sd[j] + l2 * theta[j];
      pen += theta[j] * theta[j];
    }
    g[d] = rsum;
    return { f: f / n + (l2 / 2) * pen, g };
  };
  let theta = new Float64Array(d + 1);
  let { f, g } = evaluate(theta);
  const mem: { s: Float64Array; y: Float64Array; rho: number }[] = [];
  let iterations = 0, converged = false;
  for (; iterations < maxIter; iterations++) {
    if (g.reduce((m, v) => Math.max(m, Math.abs(v)), 0) < tol) {
      converged = true;
      break;
    }
    const q = g.slice(), alphas: number[] = [];
    for (let k = mem.length - 1; k >= 0; k--) {
      alphas[k] = mem[k].rho * dot64(mem[k].s, q);
      for (let j = 0; j <= d; j++) q[j] -= alphas[k] * mem[k].y[j];
    }
    const last = mem[mem.length - 1];
    const gamma = last
      ? dot64(last.s, last.y) / dot64(last.y, last.y)
      : 1 / Math.max(1, Math.sqrt(dot64(g, g)));
    for (let j = 0; j <= d; j++) q[j] *= gamma;
    for (let k = 0; k < mem.length; k++) {
      const beta = mem[k].rho * dot64(mem[k].y, q);
      for (let j = 0; j <= d; j++) q[j] += mem[k].s[j] * (alphas[k] - beta);
    }
    let p = q.map((v) => -v);
    let slope = dot64(g, p);
    if (!(slope < 0)) {
      mem.length = 0;
      p = g.map((v) => -v);
      slope = -dot64(g, g);
    }
    let step = 1, next: { f: number; g: Float64Array } | undefined, cand = theta;
    for (let k = 0; k < 40; k++, step /= 2) {
      cand = theta.map((v, j) => v + step * p[j]);
      const e = evaluate(cand);
      if (e.f <= f + 1e-4 * step * slope) {
        next = e;
        break;
      }
    }
    if (!next) break; // no decrease possible at Float64 precision
    const s = cand.map((v, j) => v - theta[j]), yv = next.g.map((v, j) => v - g[j]);
    const sy = dot64(s, yv);
    if (sy > 1e-12) {
      mem.push({ s, y: yv, rho: 1 / sy });
      if (mem.length > 10) mem.shift();
    }
    const change = f - next.f;
    theta = cand;
    f = next.f;
    g = next.g;
    if (change <= 1e-15 * Math.max(1, Math.abs(f))) {
      converged = true;
      iterations++;
      break;
    }
  }
  const { a, offset } = raw(theta);
  const weights = Float32Array.from(a);
  return makeLinearProbe({
    method: "logistic",
    direction: normalize(weights),
    weights,
    bias: offset,
    standardization: {
      mean: mu,
      std: sd,
      weights: Float32Array.from(theta.subarray(0, d)),
      bias: theta[d],
    },
    fit: { iterations, converged, loss: f },
  });
}
