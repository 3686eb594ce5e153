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
  /** logistic: the feature standardisation applied before the fitted weights. */
  standardization?: { mean: Float32Array; std: Float32Array };
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

/** Wraps probe data with its scoring functions. */
export function makeLinearProbe(spec: LinearProbeSpec): LinearProbe {
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
    throw new Error(`Cannot fit ${what}: all ${bits.length} labels are ${n1 ? 1 : 0}; need both classes`);
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
