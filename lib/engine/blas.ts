/**
 * OpenBLAS (Linux) or Accelerate (macOS) matrix products for the tfjs `wasm` backend.
 *
 * The stock wasm `BatchMatMul` uses XNNPACK only for batch 1 without transposes; every
 * transposed or batched product (attention, every backward matmul) falls to a scalar loop
 * at ~1.5 GFLOP/s (see shared/PERF-NOTES.md). This module replaces the `BatchMatMul` and
 * `_FusedMatMul` kernels of the wasm backend with ones that call the reference CBLAS
 * interface `cblas_sgemm` (BLAS level 3, row-major) through Deno FFI, directly on views of
 * the wasm heap: no copies. Transposes map to CBLAS flags; batch dims broadcast as NumPy
 * does (which equals tfjs's `bi % batch` rule in every case tfjs supports). Gradients need
 * nothing: tfjs registers them per kernel name, independently of the backend's kernel.
 * Products with few rows against a large matrix (decoding steps of large models) go to the
 * native few-rows kernel or BLIS instead, where one is available (lib/engine/skinny_gemm.ts).
 *
 * Needs `--allow-ffi` (and `--allow-env` to read `SAFETY_COMPASS_BLAS`: `0` disables,
 * a path chooses the library). Without them everything stays on the stock kernels. A scoped
 * grant works: the deno.json tasks pass `--allow-ffi=/usr/lib,/usr/lib64,/usr/local/lib,
 * /System/Library/Frameworks/Accelerate.framework`, and only candidates inside it are tried
 * (a bare `libopenblas.so.0` found through LD_LIBRARY_PATH, or a `SAFETY_COMPASS_BLAS` path
 * elsewhere, then needs that path added, or a plain `--allow-ffi`). That is why the heap views
 * are passed as `buffer` arguments, not raw pointers: Deno 2.9 refuses `UnsafePointer.of`
 * under a path-scoped grant (NotCapable at the first matmul), and a view is no slower (8x8x8
 * sgemm: 0.13-0.16 us per call as buffers, 0.25-0.29 us as pointers).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { DataType, KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs-core";
import {
  addRowsInPlace,
  simdFunctionsOn,
  type WasmBackendLike as SimdBackendLike,
} from "./simd_kernels.ts";
import { granted } from "../io/permissions.ts";
import { countSkinnyCall, isSkinny, loadSkinnyBlas } from "./skinny_gemm.ts";

/** What {@link enableBlas} did, and why. */
export interface BlasInfo {
  /** True while the BLAS kernels are registered on the wasm backend. */
  enabled: boolean;
  /** The shared library in use. */
  library?: string;
  /** A human-readable reason (why enabled, or why not and how to fix it). */
  reason: string;
  /** BLAS threads, as the library reports them (process-wide for OpenBLAS). */
  threads?: number;
  /**
   * The second library for products with few rows and a large matrix (the native few-rows
   * kernel or BLIS, see lib/engine/skinny_gemm.ts), when loaded: its path.
   */
  skinny?: string;
  /** Which library {@link BlasInfo.skinny} is. */
  skinnyKind?: "native" | "blis";
}

const ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;
const F32 = 4; // bytes per float32
const I = "i32", F = "f32", P = "buffer";
const SYMBOLS = {
  cblas_sgemm: {
    // order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
    parameters: [I, I, I, I, I, I, F, P, I, P, I, F, P, I],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
} as const;
type BlasLib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** The parts of tfjs-backend-wasm's `BackendWasm` this module reads (not exported there). */
interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
}

let lib: BlasLib | undefined;
let stock: { batch: KernelConfig; fused?: KernelConfig } | undefined;
let info: BlasInfo = { enabled: false, reason: "enableBlas() has not been called" };

/** FFI is allowed for `path` (all of `--allow-ffi`, or a scoped `--allow-ffi=<dirs>`). */
function ffiAllowed(path: string): boolean {
  return granted({ name: "ffi", path });
}

/** The env override: undefined when unset or unreadable. */
function envSetting(): string | undefined {
  if (!granted({ name: "env", variable: "SAFETY_COMPASS_BLAS" })) return undefined;
  const v = Deno.env.get("SAFETY_COMPASS_BLAS")?.trim();
  return v === "" ? undefined : v;
}

function candidates(): string[] {
  if (Deno.build.os === "darwin") {
    return ["/System/Library/Frameworks/Accelerate.framework/Accelerate"];
  }
  if (Deno.build.os !== "linux") return [];
  const multiarch = `/usr/lib/${Deno.build.arch}-linux-gnu`;
  return [
    `${multiarch}/libopenblas.so.0`, // Debian/Ubuntu (update-alternatives)
    `${multiarch}/openblas-pthread/libopenblas.so.0`,
    "/usr/lib64/libopenblasp.so.0", // Fedora, pthread build
    "/usr/lib64/libopenblas.so.0", // Fedora, serial build
    "/usr/lib/libopenblas.so.0", // Arch, Alpine
    "/usr/local/lib/libopenblas.so.0", // built from source
    "libopenblas.so.0", // whatever the dynamic loader finds (LD_LIBRARY_PATH)
  ];
}

/** Opens `path` and checks that it exports `cblas_sgemm`; the error message otherwise. */
function probe(path: string): string | undefined {
  try {
    Deno.dlopen(path, { cblas_sgemm: SYMBOLS.cblas_sgemm }).close();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Finds OpenBLAS (Linux: libopenblas.so.0 in the usual Debian/Ubuntu/Fedora paths or the
 * `SAFETY_COMPASS_BLAS` env path) or Accelerate (macOS); returns why not when absent or
 * when --allow-ffi is missing.
 */
export function detectBlas(): { path?: string; reason: string } {
  const env = envSetting();
  if (env === "0") return { reason: "BLAS off: disabled by SAFETY_COMPASS_BLAS=0" };
  const tried = env !== undefined && env !== "1" ? [env] : candidates();
  if (tried.length === 0) return { reason: `BLAS off: no known BLAS library on ${Deno.build.os}` };
  const allowed = tried.filter(ffiAllowed);
  if (allowed.length === 0) {
    return {
      reason: `BLAS off: FFI is not allowed${tried[0] === env ? ` for ${env}` : ""}; run ` +
        "deno with --allow-ffi (or --allow-ffi=<the library's folder>) to use it",
    };
  }
  if (tried[0] === env) {
    const err = probe(env);
    return err === undefined ? { path: env, reason: `using SAFETY_COMPASS_BLAS=${env}` } : {
      reason: `BLAS off: SAFETY_COMPASS_BLAS=${env} cannot be opened (${err}); ` +
        "set it to the path of libopenblas.so.0, or to 0 to silence this",
    };
  }
  for (const path of allowed) {
    if (probe(path) === undefined) return { path, reason: `found ${path}` };
  }
  const skipped = tried.filter((p) => !allowed.includes(p));
  return {
    reason: `BLAS off: no OpenBLAS found (tried ${allowed.join(", ")}` +
      (skipped.length ? `; not allowed by --allow-ffi: ${skipped.join(", ")}` : "") + "); " +
      "install it (Debian/Ubuntu: apt install libopenblas0-pthread; Fedora: dnf install " +
      "openblas) or set SAFETY_COMPASS_BLAS to its path",
  };
}

/** Maps each output batch index to the flat batch index of an input (NumPy broadcasting). */
function batchIndex(outDims: number[], inDims: number[]): Int32Array {
  const size = tf.util.sizeFromShape(outDims);
  const idx = new Int32Array(size);
  const inSize = tf.util.sizeFromShape(inDims);
  if (inSize === size) return idx.map((_, i) => i);
  if (inSize === 1) return idx;
  const pad = outDims.length - inDims.length;
  for (let o = 0; o < size; o++) {
    let rest = o, flat = 0, stride = 1;
    for (let d = outDims.length - 1; d >= 0; d--) {
      const coord = rest % outDims[d];
      rest = Math.floor(rest / outDims[d]);
      const dim = d >= pad ? inDims[d - pad] : 1;
      if (dim !== 1) flat += coord * stride;
      stride *= dim;
    }
    idx[o] = flat;
  }
  return idx;
}

/**
 * C = op(A) op(B) for every (broadcast) batch, written into a new wasm tensor. `bStride` is the
 * distance between b's matrices in elements (default: they follow one another; a KV cache's
 * filled slots lie further apart).
 */
function gemm(
  be: WasmBackendLike,
  a: TensorInfo,
  b: TensorInfo,
  tA: boolean,
  tB: boolean,
  bStride?: number,
) {
  const [ra, rb] = [a.shape.length, b.shape.length];
  const m = tA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = tA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = tB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = tB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) {
    throw new Error(
      `Cannot matMul: inner dims differ (${k} vs ${kb}) for shapes [${a.shape}] and ` +
        `[${b.shape}] with transposeA=${tA}, transposeB=${tB}; fix the shapes or transposes`,
    );
  }
  const aDims = a.shape.slice(0, -2), bDims = b.shape.slice(0, -2);
  const outDims = tf.broadcast_util.assertAndGetBroadcastShape(aDims, bDims);
  const out = be.makeOutput([...outDims, m, n], "float32");
  const batch = tf.util.sizeFromShape(outDims);
  // Pointers only now: makeOutput may grow the heap and detach earlier views.
  const heap = be.wasm.HEAPU8;
  const offset = (t: TensorInfo) => be.dataIdMap.get(t.dataId)!.memoryOffset;
  const [aOff, bOff, cOff] = [offset(a), offset(b), offset(out)];
  if (batch * m * n === 0) return out;
  if (k === 0) {
    new Float32Array(heap.buffer, cOff, batch * m * n).fill(0);
    return out;
  }
  const fA = tA ? CBLAS_TRANS : CBLAS_NO_TRANS, fB = tB ? CBLAS_TRANS : CBLAS_NO_TRANS;
  const lda = Math.max(1, tA ? m : k), ldb = Math.max(1, tB ? k : n), ldc = Math.max(1, n);
  // Heap views as "buffer" arguments, not raw pointers: Deno refuses `UnsafePointer.of` under
  // a path-scoped --allow-ffi, and a view costs no copy.
  const at = (bytes: number) => new Uint8Array(heap.buffer, bytes);
  const openblas = lib!.symbols.cblas_sgemm;
  // Few rows against a large matrix (decoding steps of large models): the few-rows library.
  // The native kernel's fast path reads A as is; a transposed A stays on OpenBLAS.
  const few = info.skinny !== undefined && !(tA && info.skinnyKind === "native")
    ? loadSkinnyBlas().sgemm
    : undefined;
  const pick = (rows: number) => {
    if (!few || !isSkinny(rows, k, n)) return openblas;
    countSkinnyCall();
    return few;
  };
  const sgemm = (rows: number, aAt: number, bAt: number, cAt: number) =>
    pick(rows)(
      ROW_MAJOR,
      fA,
      fB,
      rows,
      n,
      k,
      1,
      at(aAt),
      lda,
      at(bAt),
      ldb,
      0,
      at(cAt),
      ldc,
    );
  const aSize = tf.util.sizeFromShape(aDims), bSize = tf.util.sizeFromShape(bDims);
  if (!tA && bSize === 1 && aSize === batch) {
    // [batch, m, k] x [k, n]: one GEMM with batch*m rows (the common dense-layer case).
    sgemm(batch * m, aOff, bOff, cOff);
    return out;
  }
  const ia = batchIndex(outDims, aDims), ib = batchIndex(outDims, bDims);
  for (let i = 0; i < batch; i++) {
    const bAt = bOff + ib[i] * (bStride ?? k * n) * F32;
    sgemm(m, aOff + ia[i] * m * k * F32, bAt, cOff + i * m * n * F32);
  }
  return out;
}

/**
 * Below this many multiply-adds an untransposed batch-1 product stays on the stock kernel
 * (XNNPACK in wasm), whose call costs less than an FFI call: the tiny test models. It was 2^21,
 * which kept all of SafetyWorld's decoding products on XNNPACK; measured on the 2-core Sapphire
 * Rapids Xeon (8 December 2026), OpenBLAS through FFI is faster from here up:
 * [16, 128] x [128, 384] 57 us stock against 27-33 us, [1, 128] x [128, 384] 8.7 against
 * 5.6-6.4 us, and SafetyWorld's decoding at B=32 on two workers went from 8.5-9.5K to 11.6K
 * tok/s. Training is unchanged: its products are far above either limit (`toy:train --quick`
 * gave byte-identical checkpoints).
 */
export const SMALL_GEMM_MACS = 1 << 14;

/**
 * The stock kernel runs XNNPACK for an untransposed product of two batch-1 operands; for tiny
 * ones (below {@link SMALL_GEMM_MACS}) its call beats an FFI call, so they stay on it.
 */
function stockIsFast(a: TensorInfo, b: TensorInfo, tA: boolean, tB: boolean): boolean {
  if (tA || tB) return false;
  const batchOf = (t: TensorInfo) => tf.util.sizeFromShape(t.shape.slice(0, -2));
  if (batchOf(a) !== 1 || batchOf(b) !== 1) return false;
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.shape.length - 1];
  return m * k * n < SMALL_GEMM_MACS;
}

const batchMatMul: KernelFunc = (args) => {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2) {
    return stock!.batch.kernelFunc(args); // the stock kernel's own error or behaviour
  }
  if (stockIsFast(a, b, transposeA, transposeB)) return stock!.batch.kernelFunc(args);
  return gemm(args.backend as WasmBackendLike, a, b, transposeA, transposeB);
};

const SLOT_MATMUL = "ScSlotMatMul";

/** The first `slots` rows of each [C, w] matrix of b, as a TensorInfo over b's own buffer. */
function firstRows(b: TensorInfo, slots: number): TensorInfo {
  return {
    dataId: b.dataId,
    shape: [...b.shape.slice(0, -2), slots, b.shape.at(-1)!],
    dtype: b.dtype,
  };
}

/**
 * The kernel of {@link slotMatMul}: `gemm` over b's first `slots` rows of each [C, w] matrix,
 * read in place (b's batch stride C w): the same calls, sizes and leading dimensions as over
 * those rows copied out, so the same numbers.
 */
const slotMatMulKernel: KernelFunc = (args) => {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { slots, transposeB } = args.attrs as unknown as { slots: number; transposeB: boolean };
  const [c, w] = b.shape.slice(-2);
  return gemm(args.backend as WasmBackendLike, a, firstRows(b, slots), false, transposeB, c * w);
};

/**
 * `a @ b[..., :slots, :]` (or `a @ b[..., :slots, :]^T` with `transposeB`) without copying the
 * slots out: attention over a KV cache with reserved slots (lib/model/transformer.ts), where
 * only the first `slots` positions are filled. Bit for bit `tf.matMul` of the sliced b through
 * the BLAS kernel. Undefined where it does not apply (BLAS off, another backend, not float32,
 * a gradient being recorded, batch shapes that differ, k = 0, or a product the BLAS kernel
 * would leave to the stock one): the caller then slices and multiplies.
 *
 * @example
 * ```ts ignore
 * const scores = slotMatMul(q, kCache, length, true) ??
 *   tf.matMul(q, tf.slice(kCache, [0, 0, 0, 0], [-1, -1, length, -1]), false, true);
 * ```
 */
export function slotMatMul(
  a: tf.Tensor,
  b: tf.Tensor,
  slots: number,
  transposeB: boolean,
): tf.Tensor | undefined {
  const r = a.shape.length;
  if (
    !info.enabled || lib === undefined || tf.getBackend() !== "wasm" ||
    tf.engine().isTapeOn() || a.dtype !== "float32" || b.dtype !== "float32" || r < 3 ||
    b.shape.length !== r || a.shape.slice(0, -2).some((d, i) => d !== b.shape[i])
  ) {
    return undefined;
  }
  const k = a.shape[r - 1], [c, w] = b.shape.slice(-2);
  if (!Number.isInteger(slots) || slots < 1 || slots > c || k === 0) return undefined;
  if ((transposeB ? w : slots) !== k) return undefined;
  // The product tf.matMul would run on the sliced b: leave it where that one goes to the stock
  // kernel, so the numbers stay those of the composed ops.
  if (stockIsFast(a, firstRows(b, slots), false, transposeB)) return undefined;
  return tf.engine().runKernel(SLOT_MATMUL, { a, b }, { slots, transposeB });
}

const BIASED = "ScBiasedMatMul";

/**
 * The largest output (elements) {@link biasedMatMul} takes: the outputs of decoding steps (B x
 * the widest layer). Its bias add is a WebAssembly SIMD pass in place (lib/engine/wasm_simd.ts
 * `addRows`); with the JavaScript loop it had first, the limit was 4,096, since that loop lost to
 * an `Add` kernel at B = 32 (SafetyWorld, 32 x 48 tokens: 229-250 -> 260-276 ms). With the SIMD
 * pass and this limit, 226 -> 217 ms.
 */
export const BIASED_MAX_ELEMENTS = 1 << 16;

/**
 * The kernel of {@link biasedMatMul}: `a @ b` by the registered BatchMatMul's own path (the
 * stock kernel where that one leaves it, else one GEMM), then the bias added to each row in
 * place: float32 additions, as the separate `Add` kernel makes them, without its dispatch.
 */
const biasedMatMulKernel: KernelFunc = (args) => {
  const { a, b, bias } = args.inputs as { a: TensorInfo; b: TensorInfo; bias: TensorInfo };
  // The [1, m, k] x [1, k, n] that tf.matMul hands the kernel for 2-D operands (same buffers).
  const [m, n] = [a.shape[0], b.shape[1]];
  const out = batchMatMul({
    inputs: {
      a: { dataId: a.dataId, shape: [1, ...a.shape], dtype: a.dtype },
      b: { dataId: b.dataId, shape: [1, ...b.shape], dtype: b.dtype },
    },
    backend: args.backend,
    attrs: { transposeA: false, transposeB: false },
  }) as TensorInfo;
  addRowsInPlace(args.backend as SimdBackendLike, out, bias, m, n);
  return { dataId: out.dataId, shape: [m, n], dtype: out.dtype };
};

/**
 * `tf.add(tf.matMul(a, b), bias)` for a [m, k] by b [k, n] and bias [n], as one kernel: bit for
 * bit the two ops (the product takes the path the BLAS BatchMatMul kernel takes for it, the
 * additions are the same float32 ones), one dispatch instead of two: for the small products of
 * decoding, where dispatch outweighs the arithmetic. Undefined where it does not apply (BLAS
 * off, another backend, not float32, a gradient being recorded, other shapes, outputs above
 * {@link BIASED_MAX_ELEMENTS}, the SIMD functions off with `useSimdKernels(false)` or not
 * compiled): the
 * caller then composes the ops.
 *
 * @example
 * ```ts ignore
 * const y = biasedMatMul(x, w, b) ?? tf.add(tf.matMul(x, w), b);
 * ```
 */
export function biasedMatMul(a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor): tf.Tensor | undefined {
  if (
    !info.enabled || lib === undefined || !simdFunctionsOn() ||
    tf.engine().isTapeOn() || a.dtype !== "float32" || b.dtype !== "float32" ||
    bias.dtype !== "float32" || a.rank !== 2 || b.rank !== 2 || bias.rank !== 1 ||
    a.shape[1] !== b.shape[0] || bias.shape[0] !== b.shape[1] || a.size === 0 ||
    b.size === 0 || a.shape[0] * b.shape[1] > BIASED_MAX_ELEMENTS
  ) {
    return undefined;
  }
  return tf.engine().runKernel(BIASED, { a, b, bias }, {});
}

type Activation = (x: number, alpha: number) => number;
const ACTIVATIONS: Record<string, Activation> = {
  linear: (x) => x,
  relu: (x) => (x > 0 ? x : 0),
  relu6: (x) => Math.min(Math.max(x, 0), 6),
  leakyrelu: (x, alpha) => (x > 0 ? x : alpha * x),
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  elu: (x) => (x > 0 ? x : Math.exp(x) - 1),
};

const fusedMatMul: KernelFunc = (args) => {
  const { a, b, bias } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo };
  const attrs = args.attrs as {
    transposeA: boolean;
    transposeB: boolean;
    activation: string;
    leakyreluAlpha?: number;
  };
  const act = ACTIVATIONS[attrs.activation];
  const n = attrs.transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
  const biasSize = bias === undefined ? 0 : tf.util.sizeFromShape(bias.shape);
  const biasOk = bias === undefined ||
    (bias.dtype === "float32" && (biasSize === 1 || bias.shape[bias.shape.length - 1] === n) &&
      (biasSize === 1 || biasSize === n));
  if (act === undefined || !biasOk || a.dtype !== "float32" || b.dtype !== "float32") {
    return stock!.fused!.kernelFunc(args); // prelu, odd bias shapes: the stock kernel
  }
  const be = args.backend as WasmBackendLike;
  const out = gemm(be, a, b, attrs.transposeA, attrs.transposeB);
  const size = tf.util.sizeFromShape(out.shape);
  if (bias === undefined && attrs.activation === "linear") return out;
  const heap = be.wasm.HEAPU8.buffer; // no allocation since gemm: views are valid
  const c = new Float32Array(heap, be.dataIdMap.get(out.dataId)!.memoryOffset, size);
  const bv = bias === undefined
    ? new Float32Array(1)
    : new Float32Array(heap, be.dataIdMap.get(bias.dataId)!.memoryOffset, biasSize);
  const alpha = attrs.leakyreluAlpha ?? 0.2;
  const width = bias === undefined ? 1 : biasSize;
  for (let i = 0; i < size; i++) c[i] = act(c[i] + bv[i % width], alpha);
  return out;
};

function checkThreads(threads: number | undefined): void {
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
    throw new Error(`Cannot set BLAS threads to ${threads}: pass a positive integer`);
  }
}

/**
 * Pools of worker threads running in this process (see {@link pinBlasThreads}); while any
 * runs, the main thread's default thread count is 1.
 */
let pinned = 0;

/**
 * Tells this thread's BLAS module that a worker pool with one BLAS thread per worker runs in
 * the process (`+1` when it starts, `-1` when it stops). OpenBLAS's thread count is one
 * process-wide setting: while a pool runs, an `enableBlas()` on this thread without an
 * explicit `threads` keeps 1 instead of setting all cores, which would give every worker's
 * calls OpenBLAS's helper thread too (measured: it then spins in `sched_yield` beside the
 * workers, a third of the process's CPU time as system time, with no result changed). The
 * count in force is set to 1 at once when BLAS is already on.
 *
 * @example
 * ```ts
 * import { pinBlasThreads } from "./blas.ts";
 * pinBlasThreads(+1); // a pool started
 * pinBlasThreads(-1); // and stopped
 * ```
 */
export function pinBlasThreads(delta: 1 | -1): void {
  pinned = Math.max(0, pinned + delta);
  if (pinned > 0 && info.enabled && lib) info = { ...info, threads: setThreads(1) };
}

/** Sets both libraries' thread counts; returns OpenBLAS's, as it reports it. */
function setThreads(threads: number): number | undefined {
  if (info.skinny !== undefined || !info.enabled) loadSkinnyBlas(threads);
  lib!.symbols.openblas_set_num_threads?.(threads);
  return lib!.symbols.openblas_get_num_threads?.() ?? undefined;
}

/**
 * Registers the BLAS kernels on the wasm backend (call after tf.setBackend("wasm")).
 * Idempotent: a second call only changes the thread count when one is given.
 *
 * Never throws for a missing library (the result says why it is off), but throws when an
 * explicit `path` cannot be opened or `threads` is not a positive integer.
 * `SAFETY_COMPASS_BLAS=0` wins over everything, an explicit `path` included.
 */
export function enableBlas(opts: {
  /** Library to open. @default detectBlas().path */
  path?: string;
  /**
   * BLAS threads (OpenBLAS only; process-wide). Workers running one model each pass 1.
   * @default navigator.hardwareConcurrency (1 while a worker pool runs: {@link pinBlasThreads})
   */
  threads?: number;
} = {}): BlasInfo {
  checkThreads(opts.threads);
  if (info.enabled) {
    if (opts.threads !== undefined) info = { ...info, threads: setThreads(opts.threads) };
    return info;
  }
  if (envSetting() === "0") {
    return (info = { enabled: false, reason: "BLAS off: disabled by SAFETY_COMPASS_BLAS=0" });
  }
  const found = opts.path !== undefined ? { path: opts.path, reason: "path given" } : detectBlas();
  if (found.path === undefined) return (info = { enabled: false, reason: found.reason });
  const batch = tf.getKernel(tf.BatchMatMul, "wasm");
  if (batch === undefined) {
    return (info = {
      enabled: false,
      reason: "BLAS off: no wasm BatchMatMul kernel is registered; import " +
        '"@tensorflow/tfjs-backend-wasm" before calling enableBlas()',
    });
  }
  try {
    lib = Deno.dlopen(found.path, SYMBOLS);
  } catch (e) {
    const msg = `Cannot open BLAS library ${found.path}: ${(e as Error).message}`;
    if (opts.path !== undefined) throw new Error(`${msg}; pass the path of libopenblas.so.0`);
    return (info = { enabled: false, reason: `BLAS off: ${msg}` });
  }
  stock = { batch, fused: tf.getKernel(tf._FusedMatMul, "wasm") };
  tf.unregisterKernel(tf.BatchMatMul, "wasm");
  // Our setupFunc is the stock one, so fallbacks work even if the backend starts later.
  tf.registerKernel({ ...batch, kernelFunc: batchMatMul });
  if (stock.fused !== undefined) {
    tf.unregisterKernel(tf._FusedMatMul, "wasm");
    tf.registerKernel({ ...stock.fused, kernelFunc: fusedMatMul });
  }
  if (tf.getKernel(BIASED, "wasm") === undefined) {
    tf.registerKernel({ kernelName: BIASED, backendName: "wasm", kernelFunc: biasedMatMulKernel });
  }
  if (tf.getKernel(SLOT_MATMUL, "wasm") === undefined) {
    tf.registerKernel({
      kernelName: SLOT_MATMUL,
      backendName: "wasm",
      kernelFunc: slotMatMulKernel,
    });
  }
  const threads = setThreads(
    opts.threads ?? (pinned > 0 ? 1 : navigator.hardwareConcurrency ?? 1),
  );
  const few = loadSkinnyBlas();
  info = {
    enabled: true,
    library: found.path,
    reason: `${found.reason}; ${few.reason}`,
    threads,
    ...(few.sgemm ? { skinny: few.library, skinnyKind: few.kind } : {}),
  };
  return info;
}

/** Restores the stock kernels. */
export function disableBlas(): void {
  if (!info.enabled || stock === undefined) return;
  tf.unregisterKernel(tf.BatchMatMul, "wasm");
  tf.registerKernel(stock.batch);
  if (stock.fused !== undefined) {
    tf.unregisterKernel(tf._FusedMatMul, "wasm");
    tf.registerKernel(stock.fused);
  }
  lib?.close();
  lib = undefined;
  stock = undefined;
  info = { enabled: false, reason: "disabled by disableBlas()" };
}

/** The current state: whether BLAS kernels are registered, which library, how many threads. */
export function blasInfo(): BlasInfo {
  return { ...info };
}
