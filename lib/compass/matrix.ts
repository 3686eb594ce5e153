/**
 * Plain row-major Float32 matrices: the currency of the compass. Activations collected
 * from a model (one row per trace or per token, one column per hidden unit) arrive as a
 * {@link Matrix}, and every probe, metric and the CRAFT head read them, so the compass's
 * mathematics needs neither a model nor a tensor engine.
 *
 * @module
 */

/** A dense row-major matrix: element (i, j) is `data[i * cols + j]`. */
export interface Matrix {
  /** Number of rows (traces, tokens, ...). */
  rows: number;
  /** Number of columns (hidden units, ...). */
  cols: number;
  /** `rows * cols` values, row after row. */
  data: Float32Array;
}

/**
 * Creates a matrix, zero-filled unless `data` is given.
 * Throws when `data.length !== rows * cols`.
 *
 * @example
 * ```ts
 * import { makeMatrix } from "../../mod.ts";
 * const m = makeMatrix(2, 3, new Float32Array([1, 2, 3, 4, 5, 6])); // row 1 is [4, 5, 6]
 * ```
 */
export function makeMatrix(rows: number, cols: number, data?: Float32Array): Matrix {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(
      `Cannot make a matrix of shape [${rows}, ${cols}]: sizes must be integers >= 0`,
    );
  }
  const values = data ?? new Float32Array(rows * cols);
  if (values.length !== rows * cols) {
    throw new Error(
      `Cannot make a [${rows}, ${cols}] matrix from ${values.length} values: need ${rows * cols}`,
    );
  }
  return { rows, cols, data: values };
}

/**
 * Builds a matrix from an array of equally long rows.
 * Throws naming the first row whose length differs from row 0.
 */
export function fromRows(rowList: readonly ArrayLike<number>[]): Matrix {
  const rows = rowList.length;
  const cols = rows === 0 ? 0 : rowList[0].length;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const r = rowList[i];
    if (r.length !== cols) {
      throw new Error(`Cannot build a matrix: row ${i} has ${r.length} values, row 0 has ${cols}`);
    }
    for (let j = 0; j < cols; j++) data[i * cols + j] = r[j];
  }
  return { rows, cols, data };
}

/** The matrix as an array of plain number rows (a copy). */
export function toRows(m: Matrix): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < m.rows; i++) out.push(Array.from(row(m, i)));
  return out;
}

/** Row `i` as a view (no copy: writing to it writes to the matrix). */
export function row(m: Matrix, i: number): Float32Array {
  if (i < 0 || i >= m.rows) throw new Error(`Row ${i} is out of range [0, ${m.rows})`);
  return m.data.subarray(i * m.cols, (i + 1) * m.cols);
}

/** A new matrix holding the rows at `indices`, in that order (repeats allowed). */
export function selectRows(m: Matrix, indices: ArrayLike<number>): Matrix {
  const out = new Float32Array(indices.length * m.cols);
  for (let k = 0; k < indices.length; k++) out.set(row(m, indices[k]), k * m.cols);
  return { rows: indices.length, cols: m.cols, data: out };
}

/** Stacks matrices with equal column counts on top of each other. */
export function vstack(parts: readonly Matrix[]): Matrix {
  if (parts.length === 0) return makeMatrix(0, 0);
  const cols = parts[0].cols;
  let rows = 0;
  for (const [k, p] of parts.entries()) {
    if (p.cols !== cols) {
      throw new Error(`Cannot stack matrices: part ${k} has ${p.cols} columns, part 0 has ${cols}`);
    }
    rows += p.rows;
  }
  const data = new Float32Array(rows * cols);
  let offset = 0;
  for (const p of parts) {
    data.set(p.data, offset);
    offset += p.data.length;
  }
  return { rows, cols, data };
}

/**
 * Column means over all rows, or over the rows at `indices` when given (Float64 sums).
 * Returns zeros for an empty selection.
 */
export function mean(m: Matrix, indices?: ArrayLike<number>): Float32Array {
  const acc = new Float64Array(m.cols);
  const n = indices ? indices.length : m.rows;
  for (let k = 0; k < n; k++) {
    const i = indices ? indices[k] : k;
    const base = i * m.cols;
    for (let j = 0; j < m.cols; j++) acc[j] += m.data[base + j];
  }
  const out = new Float32Array(m.cols);
  if (n > 0) { for (let j = 0; j < m.cols; j++) out[j] = acc[j] / n; }
  return out;
}

/** Column standard deviations (population, divisor n) around `mu` (default: the column means). */
export function std(m: Matrix, mu: Float32Array = mean(m)): Float32Array {
  const acc = new Float64Array(m.cols);
  for (let i = 0; i < m.rows; i++) {
    const base = i * m.cols;
    for (let j = 0; j < m.cols; j++) {
      const d = m.data[base + j] - mu[j];
      acc[j] += d * d;
    }
  }
  const out = new Float32Array(m.cols);
  if (m.rows > 0) { for (let j = 0; j < m.cols; j++) out[j] = Math.sqrt(acc[j] / m.rows); }
  return out;
}

/** Dot product of two equally long vectors (Float64 accumulation). */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new Error(`Cannot take a dot product of lengths ${a.length} and ${b.length}`);
  }
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Euclidean norm of a vector. */
export function norm(v: ArrayLike<number>): number {
  return Math.sqrt(dot(v, v));
}

/** A unit-length copy of `v`. Throws for a zero (or non-finite) vector. */
export function normalize(v: ArrayLike<number>): Float32Array {
  const n = norm(v);
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new Error(`Cannot normalise a vector of norm ${n}: it must be non-zero and finite`);
  }
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] / n;
  return out;
}

/** Cosine similarity of two vectors (0 when either is zero). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const d = norm(a) * norm(b);
  return d > 0 ? dot(a, b) / d : 0;
}

/** `m v` plus an optional scalar `bias`: one value per row. Throws on a width mismatch. */
export function matVec(m: Matrix, v: ArrayLike<number>, bias = 0): Float32Array {
  if (v.length !== m.cols) {
    throw new Error(`Cannot multiply a [${m.rows}, ${m.cols}] matrix by a vector of ${v.length}`);
  }
  const out = new Float32Array(m.rows);
  for (let i = 0; i < m.rows; i++) {
    const base = i * m.cols;
    let s = bias;
    for (let j = 0; j < m.cols; j++) s += m.data[base + j] * v[j];
    out[i] = s;
  }
  return out;
}

/** `m^T v`: the weighted sum of the rows, one value per column (Float64 accumulation). */
export function matTVec(m: Matrix, v: ArrayLike<number>): Float64Array {
  if (v.length !== m.rows) {
    throw new Error(`Cannot multiply the transpose of [${m.rows}, ${m.cols}] by ${v.length}`);
  }
  const out = new Float64Array(m.cols);
  for (let i = 0; i < m.rows; i++) {
    const w = v[i];
    if (w === 0) continue;
    const base = i * m.cols;
    for (let j = 0; j < m.cols; j++) out[j] += w * m.data[base + j];
  }
  return out;
}

/**
 * Checks that `m` is a well-formed matrix with `cols` columns (when given) and finite
 * values; `what` names it in the error (e.g. "activations of layer 12").
 */
export function assertMatrix(m: Matrix, what: string, cols?: number): void {
  if (!m || !(m.data instanceof Float32Array) || m.data.length !== m.rows * m.cols) {
    throw new Error(
      `${what} is not a Matrix: expected {rows, cols, data: Float32Array(rows * cols)}`,
    );
  }
  if (cols !== undefined && m.cols !== cols) {
    throw new Error(`${what} has ${m.cols} columns, expected ${cols} (the fitted d_model)`);
  }
  for (let k = 0; k < m.data.length; k++) {
    if (!Number.isFinite(m.data[k])) {
      const i = Math.floor(k / Math.max(m.cols, 1));
      throw new Error(`${what} holds a non-finite value (${m.data[k]}) at row ${i}`);
    }
  }
}
