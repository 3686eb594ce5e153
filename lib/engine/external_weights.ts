/**
 * tfjs ops whose weights live outside the wasm heap: {@link externalMatMul} (a linear layer
 * `y = x W` with a frozen {@link ExternalMatrix}, differentiable with respect to `x`) and
 * {@link externalGather} (embedding rows). With them a model whose weights exceed the 4 GiB
 * wasm32 heap keeps only activations, LoRA adapters and optimizer state in the heap.
 *
 * On the `wasm` backend with OpenBLAS (see `blas.ts`: `--allow-ffi`, libopenblas0-pthread)
 * the product is one CBLAS call with one pointer into the wasm heap (the activations, read
 * and written in place) and one into host memory (`Deno.UnsafePointer.of` on the typed
 * array): `cblas_sgemv` at one row, `cblas_sgemm` otherwise. bf16 matrices are converted to
 * f32 tile by tile (`bf16_convert.ts`) into a cache-sized scratch, then multiplied per tile.
 * Debian's OpenBLAS 0.3.21 exports no `cblas_sbgemm` (built without BUILD_BFLOAT16), and
 * sbgemm would also round the activations to bf16; see bench/external_matmul.ts. At <= 16
 * rows that conversion is the bound; {@link enableBf16Helper} shares it with a second thread.
 *
 * The gradient: for `y = x op(W)`, `dx = dy op(W)^T`, the same external matrix read the
 * other way (no transpose is materialised; no gradient flows to the frozen `W`).
 *
 * Elsewhere (cpu, webgpu, no FFI) the matrix is uploaded as a dense tensor for each call,
 * up to {@link DENSE_FALLBACK_BYTES}; larger ones throw an error naming the size and the fix.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { detectBlas } from "./blas.ts";
import { countSkinnyCall, isSkinny, loadSkinnyBlas } from "./skinny_gemm.ts";
import { bf16TileToF32 } from "./bf16_convert.ts";
import {
  bf16HelperReady,
  splitRowsProduct,
  startBf16Helper,
  stopBf16Helper,
} from "./bf16_helper.ts";
import {
  FEW_ROWS,
  GEMM_SYMBOLS,
  type GemmLib,
  type GemmMode,
  rowsProduct,
} from "./external_gemm.ts";
import { externalF32, type ExternalMatrix, linearDims } from "./external_matrix.ts";

export type { ExternalMatrix } from "./external_matrix.ts";

const F32 = 4;

/** Largest matrix (as f32 bytes) uploaded as a dense tensor when native BLAS is absent. */
export const DENSE_FALLBACK_BYTES = 1 << 30;

/** bf16 products split with the helper thread only from this many stored rows. */
const SPLIT_MIN_ROWS = 64;

/** What {@link externalWeightsInfo} reports. */
export interface ExternalWeightsInfo {
  /** True when products run natively (wasm backend + OpenBLAS through FFI). */
  native: boolean;
  /** Why (or why not), with the fix. */
  reason: string;
}

let lib: GemmLib | null | undefined;
let libReason = "";
let libPath: string | undefined;
/** The few-rows library on pointers (lib/engine/skinny_gemm.ts), for float32 matrices. */
let fewLib: GemmLib | null | undefined;

function openFewLib(): GemmLib | null {
  if (fewLib !== undefined) return fewLib;
  const path = loadSkinnyBlas().library;
  try {
    fewLib = path === undefined ? null : Deno.dlopen(path, GEMM_SYMBOLS);
  } catch {
    fewLib = null; // OpenBLAS takes every product, as before
  }
  return fewLib;
}

function openLib(): GemmLib | null {
  if (lib !== undefined) return lib;
  // A path-scoped --allow-ffi grant opens libraries but refuses Deno.UnsafePointer.of, which
  // these kernels need for host memory: fall back (dense upload) instead of failing mid-run.
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    libReason = "BLAS off for external weights: they need an unscoped --allow-ffi (raw " +
      "pointers into host memory; a path-scoped grant refuses them)";
    return (lib = null);
  }
  const found = detectBlas();
  if (found.path === undefined) {
    libReason = found.reason;
    return (lib = null);
  }
  try {
    lib = Deno.dlopen(found.path, GEMM_SYMBOLS);
    libPath = found.path;
    libReason = `OpenBLAS ${found.path}` +
      (openFewLib()
        ? `; ${loadSkinnyBlas().kind === "native" ? "native kernel" : "BLIS"} for float32 ` +
          `products of few rows (${loadSkinnyBlas().library})`
        : "");
  } catch (e) {
    libReason = `BLAS off: cannot open ${found.path} (${(e as Error).message})`;
    lib = null;
  }
  return lib;
}

/**
 * Whether {@link externalMatMul} runs natively on the current backend, and why.
 *
 * @example
 * ```ts
 * import { externalWeightsInfo } from "./external_weights.ts";
 * console.log(externalWeightsInfo().reason);
 * ```
 */
export function externalWeightsInfo(): ExternalWeightsInfo {
  const l = openLib();
  if (l === null) return { native: false, reason: libReason };
  if (tf.getBackend() !== "wasm") {
    return {
      native: false,
      reason: `backend is ${tf.getBackend()}, not wasm: matrices are uploaded per call`,
    };
  }
  return { native: true, reason: libReason };
}

/**
 * Starts a second thread for bf16 products at up to 16 rows (decode steps), which are bound
 * by the bf16 -> f32 conversion on one core otherwise (see `bf16_helper.ts`). Process-wide;
 * stop it with {@link disableBf16Helper}. Resolves to the state (not native: nothing started).
 *
 * @example
 * ```ts ignore
 * import { disableBf16Helper, enableBf16Helper } from "./external_weights.ts";
 * console.log((await enableBf16Helper()).reason);
 * disableBf16Helper();
 * ```
 */
export async function enableBf16Helper(): Promise<ExternalWeightsInfo> {
  const l = openLib();
  if (l === null || libPath === undefined) return { native: false, reason: libReason };
  await startBf16Helper(libPath);
  return { native: true, reason: `${libReason}, bf16 helper thread on` };
}

/** Stops the thread started by {@link enableBf16Helper} (no-op when none runs). */
export function disableBf16Helper(): void {
  stopBf16Helper();
}

/** The parts of tfjs-backend-wasm's `BackendWasm` used here (not exported there). */
interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/** The native product on pointers; `outView` gives the output's values when needed. */
function nativeProduct(
  w: ExternalMatrix,
  mode: GemmMode,
  m: number,
  input: Deno.PointerObject,
  out: Deno.PointerObject,
  outView: () => Float32Array,
): void {
  const job = { data: w.data, rows: w.rows, cols: w.cols, mode, m, input, out, r0: 0, r1: w.rows };
  const split = w.dtype === "bfloat16" && m <= FEW_ROWS && w.rows >= SPLIT_MIN_ROWS;
  // A float32 decoding product of at most 16 rows: the few-rows library reads the matrix in
  // place (lib/engine/skinny_gemm.ts). With BLIS, one row stays on OpenBLAS's sgemv, which runs
  // on two threads: BLIS's took Qwen3-0.6B's decoding of one sequence from 8.0 to 5.0 tok/s
  // (B=8: 23.1 -> 28.8). The native kernel takes one row too.
  const fewest = loadSkinnyBlas().kind === "native" ? 1 : 2;
  const few = w.dtype === "float32" && m >= fewest && isSkinny(m, w.rows, w.cols);
  if (split && bf16HelperReady()) splitRowsProduct(lib!, job, outView);
  else if (few && openFewLib()) {
    countSkinnyCall();
    rowsProduct(fewLib!, job);
  } else rowsProduct(lib!, job);
}

const KERNEL = "SafetyCompassExternalMatMul";

/** The wasm kernel: reads the activations in the heap and writes a new heap tensor. */
function externalKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const be = args.backend as WasmBackendLike;
  const x = args.inputs.x!;
  const { matrix: w, mode } = args.attrs as unknown as { matrix: ExternalMatrix; mode: GemmMode };
  const [m, inner] = x.shape;
  const outCols = mode === "rowsOut" ? w.rows : w.cols;
  const out = be.makeOutput([m, outCols], "float32");
  if (m * outCols === 0) return out;
  // Pointers only now: makeOutput may grow the heap and detach earlier views.
  const heap = be.wasm.HEAPU8;
  const base = Deno.UnsafePointer.of(heap)!;
  const ptr = (t: tf.TensorInfo) =>
    Deno.UnsafePointer.offset(base, be.dataIdMap.get(t.dataId)!.memoryOffset) as Deno.PointerObject;
  if (inner === 0) {
    new Float32Array(heap.buffer, be.dataIdMap.get(out.dataId)!.memoryOffset, m * outCols).fill(0);
    return out;
  }
  const outView = () =>
    new Float32Array(
      be.wasm.HEAPU8.buffer,
      be.dataIdMap.get(out.dataId)!.memoryOffset,
      m * outCols,
    );
  nativeProduct(w, mode, m, ptr(x), ptr(out), outView);
  return out;
}

let registered = false;
function ensureKernel(): void {
  if (registered) return;
  if (tf.getKernel(KERNEL, "wasm") === undefined) {
    tf.registerKernel({
      kernelName: KERNEL,
      backendName: "wasm",
      kernelFunc: externalKernel as unknown as tf.KernelFunc,
    });
  }
  registered = true;
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/** The product through a dense upload (no native BLAS or another backend). */
function denseProduct(x: tf.Tensor2D, w: ExternalMatrix, mode: GemmMode): tf.Tensor2D {
  const bytes = w.rows * w.cols * F32;
  if (bytes > DENSE_FALLBACK_BYTES) {
    throw new Error(
      `Cannot multiply by ${w.name} [${w.rows}, ${w.cols}] on the ${tf.getBackend()} backend: ` +
        `without native BLAS it would be uploaded as a ${gib(bytes)} f32 tensor per call ` +
        `(limit ${gib(DENSE_FALLBACK_BYTES)}; ${externalWeightsInfo().reason}). Use the wasm ` +
        "backend with OpenBLAS (Debian/Ubuntu: apt install libopenblas0-pthread; run deno " +
        "with --allow-ffi), or a smaller model",
    );
  }
  return tf.tidy(() => {
    const dense = tf.tensor2d(externalF32(w), [w.rows, w.cols]);
    return mode === "rowsOut" ? tf.matMul(x, dense, false, true) : tf.matMul(x, dense);
  });
}

function product(x: tf.Tensor2D, w: ExternalMatrix, mode: GemmMode): tf.Tensor2D {
  if (!externalWeightsInfo().native) return denseProduct(x, w, mode);
  ensureKernel();
  const attrs = { matrix: w, mode } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(KERNEL, { x }, attrs) as tf.Tensor2D;
}

/**
 * `y = x W` for a frozen external matrix: `x` is `[..., K]` (a float32 tensor), `y` is
 * `[..., N]` where `W` is `[N, K]` (`layout: "out_in"`, Hugging Face Linear: `x W^T`) or
 * `[K, N]` (`"in_out"`). Differentiable with respect to `x` (`dx = dy W^T` in the same
 * terms); `W` gets no gradient. Tied LM heads are `externalMatMul(h, embeddingTable)`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu"; // or wasm + enableBlas() for the native path
 * import { externalMatrix } from "./external_matrix.ts";
 * import { externalMatMul } from "./external_weights.ts";
 * const w = externalMatrix(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]); // Linear(3, 2)
 * const y = externalMatMul(tf.tensor2d([[1, 0, 1]]), w);
 * console.log(await y.data()); // Float32Array [4, 10]
 * ```
 */
export function externalMatMul(x: tf.Tensor, w: ExternalMatrix): tf.Tensor {
  const { inFeatures: k, outFeatures: n } = linearDims(w);
  const shape = x.shape;
  if (shape.length < 1 || shape[shape.length - 1] !== k || x.dtype !== "float32") {
    throw new Error(
      `Cannot multiply ${x.dtype} [${shape}] by ${w.name} (${w.layout} [${w.rows}, ${w.cols}]: ` +
        `${k} inputs -> ${n} outputs): the input must be float32 [..., ${k}]`,
    );
  }
  const lead = shape.slice(0, -1);
  const m = lead.reduce((a, b) => a * b, 1);
  const forward: GemmMode = w.layout === "out_in" ? "rowsOut" : "rowsIn";
  const backward: GemmMode = forward === "rowsOut" ? "rowsIn" : "rowsOut";
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    const y = product(tf.reshape(input, [m, k]), w, forward);
    return {
      value: tf.reshape(y, [...lead, n]),
      gradFunc: (dy: tf.Tensor) => tf.reshape(product(tf.reshape(dy, [m, n]), w, backward), shape),
    };
  });
  return op(x);
}

/**
 * Rows of an external matrix as a new tensor `[...ids.shape, cols]` (an embedding lookup:
 * the matrix `[vocab, d]`, whatever its layout). `ids` are int32 row indices; one out of
 * range throws. Not differentiable (the table is frozen).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu"; // or wasm + enableBlas() for the native path
 * import { externalMatrix } from "./external_matrix.ts";
 * import { externalGather } from "./external_weights.ts";
 * const table = externalMatrix(new Float32Array([0, 0, 1, 1, 2, 2]), [3, 2]);
 * console.log(await externalGather(table, tf.tensor1d([2, 0], "int32")).data()); // [2, 2, 0, 0]
 * ```
 */
export function externalGather(w: ExternalMatrix, ids: tf.Tensor | number[]): tf.Tensor {
  const idShape = Array.isArray(ids) ? [ids.length] : ids.shape;
  const values = Array.isArray(ids) ? ids : ids.dataSync();
  const c = w.cols;
  const out = new Float32Array(values.length * c);
  for (let i = 0; i < values.length; i++) {
    const id = values[i];
    if (!Number.isInteger(id) || id < 0 || id >= w.rows) {
      throw new RangeError(
        `Cannot gather row ${id} of ${w.name}: it has rows 0..${w.rows - 1}`,
      );
    }
    out.set(
      w.data instanceof Float32Array
        ? w.data.subarray(id * c, (id + 1) * c)
        : bf16TileToF32(w.data as Uint16Array, id * c, c),
      i * c,
    );
  }
  return tf.tensor(out, [...idShape, c], "float32");
}
