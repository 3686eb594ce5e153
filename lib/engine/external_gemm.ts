/**
 * The CBLAS calls behind `externalMatMul`, on raw pointers, for a range of a stored matrix's
 * rows: shared by the main thread (`external_weights.ts`) and the bf16 helper thread
 * (`bf16_helper_worker.ts`), which each take part of the rows.
 *
 * With the stored matrix S `[R, C]` row-major, two products:
 * - `rowsOut`: out `[M, R]` = in `[M, C]` S^T (rows [r0, r1) write output columns r0..r1);
 * - `rowsIn`: out `[M, C]` = in `[M, R]` S (rows [r0, r1) add in[:, r0:r1] S[r0:r1]).
 * f32 storage is one call on the whole range; bf16 is converted tile by tile
 * (`bf16_convert.ts`) and each tile multiplied: `cblas_sgemv` at M = 1, `cblas_sgemm` above.
 *
 * @module
 */

import { bf16TileToF32 } from "./bf16_convert.ts";

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;
const F32 = 4;
const I = "i32", F = "f32", P = "pointer";

/** The FFI symbols used (OpenBLAS or any CBLAS). */
export const GEMM_SYMBOLS = {
  // order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
  cblas_sgemm: { parameters: [I, I, I, I, I, I, F, P, I, P, I, F, P, I], result: "void" },
  // order, trans, M, N, alpha, A, lda, x, incx, beta, y, incy
  cblas_sgemv: { parameters: [I, I, I, I, F, P, I, P, I, F, P, I], result: "void" },
  openblas_set_num_threads: { parameters: [I], result: "void", optional: true },
  openblas_get_num_threads: { parameters: [], result: I, optional: true },
} as const;

/** An opened CBLAS library. */
export type GemmLib = Deno.DynamicLibrary<typeof GEMM_SYMBOLS>;

/** Which product (see the module doc). */
export type GemmMode = "rowsOut" | "rowsIn";

/**
 * Target f32 bytes of one converted bf16 tile: L2-sized at one input row (sgemv), larger
 * for a few rows (sgemm's per-call packing costs more than the tile's cache misses:
 * Qwen3-4B layer at M = 8, 512 KiB tiles 263 ms, 2 MiB tiles 132 ms, one back-to-back pair
 * on a shared machine), 8 MiB for many.
 */
const TILE_BYTES_ONE_ROW = 512 << 10;
const TILE_BYTES_FEW_ROWS = 2 << 20;
const TILE_BYTES_MANY_ROWS = 8 << 20;

/** At most this many input rows count as "few" (decode). */
export const FEW_ROWS = 16;

/** A pointer `bytes` past `p`. */
export function offsetPtr(p: Deno.PointerObject, bytes: number): Deno.PointerObject {
  return Deno.UnsafePointer.offset(p, bytes) as Deno.PointerObject;
}

/** The address of a typed array's first element. */
export function ptrOf(view: ArrayBufferView): Deno.PointerObject {
  const base = Deno.UnsafePointer.of(new Uint8Array(view.buffer as ArrayBuffer))!;
  return offsetPtr(base as Deno.PointerObject, view.byteOffset);
}

/** One product over stored rows [r0, r1); see the module doc. */
export interface RowsJob {
  /** The whole stored matrix (f32 values or bf16 bits), `[R, C]` row-major. */
  data: Float32Array | Uint16Array;
  /** Stored rows R and columns C. */
  rows: number;
  cols: number;
  mode: GemmMode;
  /** Input rows M. */
  m: number;
  /** The input, `[M, C]` (rowsOut) or `[M, R]` (rowsIn), row-major. */
  input: Deno.PointerObject;
  /** The output, `[M, R]` (rowsOut) or `[M, C]` (rowsIn, overwritten), row-major. */
  out: Deno.PointerObject;
  /** The row range. */
  r0: number;
  r1: number;
}

/** Runs a {@link RowsJob} on the calling thread. */
export function rowsProduct(lib: GemmLib, job: RowsJob): void {
  const s = lib.symbols;
  const { rows: R, cols: C, mode, m, input, out } = job;
  const tile = (r0: number, n: number, a: Deno.PointerObject, beta: number) => {
    if (mode === "rowsOut") {
      const o = offsetPtr(out, r0 * F32);
      if (m === 1) s.cblas_sgemv(ROW_MAJOR, NO_TRANS, n, C, 1, a, C, input, 1, 0, o, 1);
      else s.cblas_sgemm(ROW_MAJOR, NO_TRANS, TRANS, m, n, C, 1, input, C, a, C, 0, o, R);
    } else {
      const x = offsetPtr(input, r0 * F32);
      if (m === 1) s.cblas_sgemv(ROW_MAJOR, TRANS, n, C, 1, a, C, x, 1, beta, out, 1);
      else s.cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, C, n, 1, x, R, a, C, beta, out, C);
    }
  };
  if (job.r1 <= job.r0) return;
  if (job.data instanceof Float32Array) {
    tile(job.r0, job.r1 - job.r0, offsetPtr(ptrOf(job.data), job.r0 * C * F32), 0);
    return;
  }
  const bits = job.data as Uint16Array;
  const target = m === 1
    ? TILE_BYTES_ONE_ROW
    : m <= FEW_ROWS
    ? TILE_BYTES_FEW_ROWS
    : TILE_BYTES_MANY_ROWS;
  const step = Math.max(1, Math.floor(target / (C * F32)));
  for (let r0 = job.r0; r0 < job.r1; r0 += step) {
    const n = Math.min(step, job.r1 - r0);
    tile(r0, n, ptrOf(bf16TileToF32(bits, r0 * C, n * C)), r0 === job.r0 ? 0 : 1);
  }
}
