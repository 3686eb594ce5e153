/**
 * Frozen weight matrices held in host memory, outside the 4 GiB wasm32 heap of the tfjs
 * `wasm` backend: the storage half of "models larger than the wasm heap" (issue 17, item 5).
 * The ops that read them are in `external_weights.ts`; the loader that fills them from
 * safetensors checkpoints by byte range is lib/model/external_load.ts.
 *
 * A matrix is `[rows, cols]` row-major, stored as f32 (`Float32Array`) or as bf16 bits
 * (`Uint16Array`, half the memory; converted to f32 tile by tile when multiplied). Its
 * `layout` says how it is used as the weight of a linear map `y = x W`:
 * - `"out_in"`: the matrix is `[N, K]` (output features x input features), as
 *   Hugging Face `nn.Linear.weight` and embedding tables are stored; `y = x M^T`.
 * - `"in_out"`: the matrix is `[K, N]`; `y = x M`.
 *
 * @module
 */

import { bf16ToF32Array, f32ToBf16Array } from "./bf16_convert.ts";

/** How a matrix is stored in host memory. */
export type ExternalDType = "float32" | "bfloat16";

/** How a stored matrix maps inputs to outputs (see the module doc). */
export type ExternalLayout = "out_in" | "in_out";

/** A frozen matrix in host memory. Create with {@link externalMatrix}. */
export interface ExternalMatrix {
  /** Name for error messages (e.g. the checkpoint tensor name). */
  readonly name: string;
  /** Stored rows (outermost dimension). */
  readonly rows: number;
  /** Stored columns (innermost dimension). */
  readonly cols: number;
  /** Storage type. */
  readonly dtype: ExternalDType;
  /** `[N, K]` (Hugging Face Linear) or `[K, N]`. */
  readonly layout: ExternalLayout;
  /** The values, row-major: f32, or bf16 bits. Never modified by the ops. */
  readonly data: Float32Array | Uint16Array;
}

/** Options for {@link externalMatrix}. */
export interface ExternalMatrixOptions {
  /** Name for error messages. @default "external matrix" */
  name?: string;
  /** How the matrix maps inputs to outputs. @default "out_in" (HF Linear weights, embeddings) */
  layout?: ExternalLayout;
}

/**
 * Wraps host values as an external matrix without copying: a `Float32Array` is stored as
 * f32, a `Uint16Array` as bf16 bits. Throws when the length is not `rows * cols`.
 *
 * @example
 * ```ts
 * import { externalMatrix } from "./external_matrix.ts";
 * // an nn.Linear(3, 2).weight: [out 2, in 3]
 * const w = externalMatrix(new Float32Array([1, 0, 0, 0, 1, 0]), [2, 3], { name: "proj" });
 * console.log(w.rows, w.cols, w.layout); // 2 3 out_in
 * ```
 */
export function externalMatrix(
  data: Float32Array | Uint16Array,
  shape: [number, number],
  opts: ExternalMatrixOptions = {},
): ExternalMatrix {
  const [rows, cols] = shape;
  const name = opts.name ?? "external matrix";
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(`Cannot create ${name}: shape [${shape}] is not two non-negative integers`);
  }
  if (data.length !== rows * cols) {
    throw new Error(
      `Cannot create ${name}: shape [${rows}, ${cols}] needs ${rows * cols} values, got ` +
        `${data.length}`,
    );
  }
  return {
    name,
    rows,
    cols,
    dtype: data instanceof Float32Array ? "float32" : "bfloat16",
    layout: opts.layout ?? "out_in",
    data,
  };
}

/**
 * Converts a matrix to another storage type (f32 -> bf16 rounds to nearest even; bf16 ->
 * f32 is exact); returns it unchanged when it already has that type.
 *
 * @example
 * ```ts
 * import { externalMatrix, toExternalDType } from "./external_matrix.ts";
 * const w = externalMatrix(new Float32Array([1.001, 2]), [1, 2]);
 * console.log(toExternalDType(w, "bfloat16").data); // Uint16Array [0x3f80, 0x4000]
 * ```
 */
export function toExternalDType(m: ExternalMatrix, dtype: ExternalDType): ExternalMatrix {
  if (m.dtype === dtype) return m;
  const data = m.data instanceof Float32Array
    ? f32ToBf16Array(m.data)
    : bf16ToF32Array(m.data as Uint16Array);
  return { ...m, dtype, data };
}

/** Bytes of host memory a matrix holds. */
export function externalBytes(m: ExternalMatrix): number {
  return m.data.byteLength;
}

/** Input features K and output features N of `y = x W` for this matrix. */
export function linearDims(m: ExternalMatrix): { inFeatures: number; outFeatures: number } {
  return m.layout === "out_in"
    ? { inFeatures: m.cols, outFeatures: m.rows }
    : { inFeatures: m.rows, outFeatures: m.cols };
}

/** The matrix values as f32 (a view for f32 storage, a new array for bf16). */
export function externalF32(m: ExternalMatrix): Float32Array {
  return m.data instanceof Float32Array ? m.data : bf16ToF32Array(m.data as Uint16Array);
}
