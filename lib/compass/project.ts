/**
 * 2-D projection of hidden states for plots: the top two principal axes of a matrix's rows.
 *
 * @module
 */

import { makeRng } from "../data/rng.ts";
import type { Matrix } from "./matrix.ts";

/**
 * Projects the rows of `m` onto their top two principal axes (centred; power iteration with
 * deflation, 100 iterations per axis, seeded start vectors), for 2-D scatter plots of
 * hidden states (`plotProjection`). Returns one (x, y) per row.
 *
 * @example
 * ```ts
 * import { makeMatrix, project2d } from "../../mod.ts";
 * const m = makeMatrix(3, 2, new Float32Array([0, 0, 1, 1, 2, 2.1]));
 * const { x, y } = project2d(m); // x: coordinates along the main axis, y: along the second
 * ```
 */
export function project2d(m: Matrix, seed = 0): { x: number[]; y: number[] } {
  const { rows, cols, data } = m;
  const mu = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mu[j] += data[i * cols + j] / rows;
  const centred = (i: number, j: number) => data[i * cols + j] - mu[j];
  const rng = makeRng(seed);
  const axes: Float64Array[] = [];
  for (let k = 0; k < 2; k++) {
    let v = Float64Array.from({ length: cols }, () => rng.normal());
    for (let it = 0; it < 100; it++) {
      const w = new Float64Array(cols);
      for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += centred(i, j) * v[j];
        for (let j = 0; j < cols; j++) w[j] += s * centred(i, j);
      }
      for (const a of axes) {
        let p = 0;
        for (let j = 0; j < cols; j++) p += w[j] * a[j];
        for (let j = 0; j < cols; j++) w[j] -= p * a[j];
      }
      const n = Math.hypot(...w) || 1;
      v = w.map((x) => x / n);
    }
    axes.push(v);
  }
  const proj = (a: Float64Array) =>
    Array.from({ length: rows }, (_, i) => {
      let s = 0;
      for (let j = 0; j < cols; j++) s += centred(i, j) * a[j];
      return s;
    });
  return { x: proj(axes[0]), y: proj(axes[1]) };
}
