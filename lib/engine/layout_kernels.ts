/**
 * Faster wasm kernels for moving data, bit for bit the stock ones (issue 22). A SafetyWorld
 * step is hundreds of small kernels, and some of the stock ones spend more time walking shapes
 * than moving bytes:
 *
 * - **Concat** copies with a `subarray().set()` per row and input: decoding one token
 *   concatenates each layer's whole KV cache with the new position (256 rows of two blocks a
 *   call at B = 64).
 * - **Transpose** with the last axis kept (the heads' `[B, T, H, Dh] <-> [B, H, T, Dh]` in
 *   every attention, forward and backward) walks element by element.
 * - **Slice** (GPT-2's q|k|v columns) copies a row at a time from JavaScript.
 *
 * Here each is one pass of lib/engine/layout_wasm.ts's SIMD copy over at most three loops of
 * strided blocks: shapes are collapsed first (size-1 axes dropped, axes that are contiguous in
 * source and destination merged), and anything that still needs more loops, another dtype than
 * float32 or int32, or an empty tensor goes to the stock kernel. Measured on the 2-core
 * machine with cache-resident inputs: a [16, 56, 4, 32] head transpose 120 -> 35 us, a [896, 128]
 * column block of [896, 384] 150 -> 40 us, a KV-cache concat [64, 4, 40, 32] + [64, 4, 1, 32]
 * 235 -> 165 us (that one is bound by copying the whole cache). Broadcast arithmetic was tried
 * the same way and left out: at these sizes the stock kernels already run at memory speed.
 * tests/layout_kernels_test.ts compares every path with the stock kernels bit for bit.
 * `SAFETY_COMPASS_SIMD=0` or `useSimdKernels(false)` turns them off with the other SIMD kernels.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { compileSimd, type SimdFunctions } from "./wasm_simd.ts";
import { layoutFunctions } from "./layout_wasm.ts";
import {
  type KernelArgs,
  type KernelFuncEngine,
  offset,
  registerWasmKernel,
  simdKernelsOn,
  type WasmBackendLike,
} from "./simd_kernels.ts";

type Kernel = (args: KernelArgs) => tf.TensorInfo | undefined;

let fns: SimdFunctions | undefined;

/** One loop of a collapsed iteration: its count and each operand's stride (in elements). */
interface Axis {
  n: number;
  strides: number[];
}

/**
 * Drops axes of size 1 and merges neighbours that are one contiguous run in every operand
 * (`stride[j] = stride[j + 1] n[j + 1]`), outermost first.
 *
 * @example
 * ```ts ignore
 * collapse([4, 3, 2], [[6, 2, 1], [0, 0, 1]]); // [{ n: 12, strides: [2, 0] }, { n: 2, strides: [1, 1] }]
 * ```
 */
export function collapse(shape: readonly number[], strides: readonly number[][]): Axis[] {
  const out: Axis[] = [];
  shape.forEach((n, j) => {
    if (n === 1) return;
    const s = strides.map((st) => st[j]);
    const prev = out.at(-1);
    if (prev && prev.strides.every((p, k) => p === s[k] * n)) {
      prev.n *= n;
      prev.strides = s;
    } else out.push({ n, strides: s });
  });
  return out;
}

/** Row-major element strides of `shape`. */
function rowStrides(shape: readonly number[]): number[] {
  const strides = new Array(shape.length).fill(0);
  for (let j = shape.length - 1, s = 1; j >= 0; j--) {
    strides[j] = s;
    s *= shape[j];
  }
  return strides;
}

const FOUR_BYTES = new Set<tf.DataType>(["float32", "int32"]);

/** Pads a collapsed copy (source and destination strides) to three loops, outer ones of count 1. */
function three(axes: Axis[]): Axis[] {
  const one = { n: 1, strides: [0, 0] };
  return [...new Array(3 - axes.length).fill(one), ...axes];
}

/**
 * Copies `x`'s elements at `start` + the collapsed axes' strides into a new contiguous
 * tensor of `shape`; undefined when more than three loops remain besides the contiguous block.
 */
function stridedCopy(
  be: WasmBackendLike,
  x: tf.TensorInfo,
  shape: number[],
  start: number,
  srcStrides: number[],
): tf.TensorInfo | undefined {
  const outStrides = rowStrides(shape);
  const axes = collapse(shape, [srcStrides, outStrides]);
  // The innermost axis, when contiguous in x, is copied as one block.
  const inner = axes.at(-1);
  const block = inner && inner.strides[0] === 1 ? inner.n : 1;
  const loops = block > 1 ? axes.slice(0, -1) : axes;
  if (loops.length > 3) return undefined;
  const out = be.makeOutput(shape, x.dtype);
  const [l0, l1, l2] = three(loops);
  fns!.copy3(
    offset(be, x) + 4 * start,
    offset(be, out),
    l0.n,
    4 * l0.strides[0],
    4 * l0.strides[1],
    l1.n,
    4 * l1.strides[0],
    4 * l1.strides[1],
    l2.n,
    4 * l2.strides[0],
    4 * l2.strides[1],
    4 * block,
  );
  return out;
}

const transposeKernel: Kernel = (args) => {
  const x = args.inputs.x!;
  const perm = (args.attrs as { perm: number[] }).perm;
  const rank = x.shape.length;
  // Only permutations that keep the last axis: rows of it are copied whole. The identity is
  // left to the registered kernel, which shares the data (lib/engine/kernels.ts).
  if (!FOUR_BYTES.has(x.dtype) || rank === 0 || perm[rank - 1] !== rank - 1) return undefined;
  if (perm.every((p, i) => p === i)) return undefined;
  if (tf.util.sizeFromShape(x.shape) === 0) return undefined;
  const xStrides = rowStrides(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  return stridedCopy(args.backend as WasmBackendLike, x, shape, 0, perm.map((p) => xStrides[p]));
};

const sliceKernel: Kernel = (args) => {
  const x = args.inputs.x!;
  if (!FOUR_BYTES.has(x.dtype)) return undefined;
  const { begin, size } = args.attrs as { begin: number[]; size: number[] };
  const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  if (tf.util.sizeFromShape(s) === 0) return undefined;
  const xStrides = rowStrides(x.shape);
  const start = b.reduce((a, bj, j) => a + bj * xStrides[j], 0);
  return stridedCopy(args.backend as WasmBackendLike, x, s, start, xStrides);
};

const concatKernel: Kernel = (args) => {
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const dtype = inputs[0]?.dtype;
  if (!FOUR_BYTES.has(dtype) || inputs.some((t) => t.dtype !== dtype)) return undefined;
  const axis = tf.util.parseAxisParam((args.attrs as { axis: number }).axis, inputs[0].shape)[0];
  const shapes = inputs.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, axis);
  const shape = tf.backend_util.computeOutShape(shapes, axis);
  const kept = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  if (kept.length < 2) return undefined; // the stock kernel's identity (or empty) case
  const be = args.backend as WasmBackendLike;
  const out = be.makeOutput(shape, dtype);
  const rows = tf.util.sizeFromShape(shape.slice(0, axis));
  const width = tf.util.sizeFromShape(shape.slice(axis));
  let at = offset(be, out);
  for (const t of kept) {
    const inner = tf.util.sizeFromShape(t.shape.slice(axis));
    fns!.copy3(offset(be, t), at, 1, 0, 0, 1, 0, 0, rows, 4 * inner, 4 * width, 4 * inner);
    at += 4 * inner;
  }
  return out;
};

const KV_WRITE = "ScKvWrite";

/**
 * cache [B, H, C, D], x [B, H, t, D], attribute `at`: copies x into slots [at, at + t) of the
 * cache's own buffer and returns that buffer again, shared (as Reshape shares it), not copied.
 */
function kvWriteKernel(args: KernelArgs): tf.TensorInfo {
  const be = args.backend as WasmBackendLike & { incRef(dataId: tf.DataId): void };
  const { cache, x } = args.inputs as { cache: tf.TensorInfo; x: tf.TensorInfo };
  const at = (args.attrs as { at: number }).at;
  const [b, h, c, d] = cache.shape, t = x.shape[2];
  const rows = b * h, block = 4 * t * d;
  fns!.copy3(
    offset(be, x),
    offset(be, cache) + 4 * at * d,
    1,
    0,
    0,
    1,
    0,
    0,
    rows,
    block,
    4 * c * d,
    block,
  );
  be.incRef(cache.dataId);
  return { dataId: cache.dataId, shape: cache.shape, dtype: cache.dtype };
}

/**
 * Whether {@link writeSlots} can run here now (wasm, its kernels compiled and on): where it
 * cannot, reserving cache slots would only cost a copy, so `forward` reserves none.
 *
 * @example
 * ```ts
 * import { slotWritesAvailable } from "./layout_kernels.ts";
 * if (!slotWritesAvailable()) console.log("KV caches grow by concatenation here");
 * ```
 */
export function slotWritesAvailable(): boolean {
  return fns !== undefined && simdKernelsOn() && tf.getBackend() === "wasm";
}

/**
 * Writes x [B, H, t, D] into slots [at, at + t) of a KV cache tensor [B, H, C, D] with reserved
 * slots, **in place**, and returns a tensor sharing the cache's buffer (dispose both; the buffer
 * lives while either does). A decoding step then costs a copy of its new position, not of the
 * whole cache (lib/model/transformer.ts). Whoever still holds the cache sees the new slots too:
 * extend a cache with reserved slots once, never twice from the same state. Undefined where it
 * does not apply (another backend or dtype, the kernels off, a gradient being recorded, shapes
 * that differ, no room): the caller then concatenates.
 *
 * @example
 * ```ts ignore
 * const k = writeSlots(cache.k[i], kNew, cache.length) ?? tf.concat([cache.k[i], kNew], 2);
 * ```
 */
export function writeSlots(
  cache: tf.Tensor4D,
  x: tf.Tensor4D,
  at: number,
): tf.Tensor4D | undefined {
  const [b, h, c, d] = cache.shape, t = x.shape[2];
  if (
    !slotWritesAvailable() || tf.engine().isTapeOn() || cache.dtype !== "float32" ||
    x.dtype !== "float32" || x.shape[0] !== b ||
    x.shape[1] !== h || x.shape[3] !== d || !Number.isInteger(at) || at < 0 || at + t > c ||
    x.size === 0
  ) {
    return undefined;
  }
  return tf.engine().runKernel(KV_WRITE, { cache, x }, { at }) as tf.Tensor4D;
}

const SPLIT = "ScSplitHeads", MERGE_GRAD = "ScMergeHeadsGrad";

/** Attributes of the head kernels: the batch, positions, blocks (q|k|v: 3) and heads. */
interface HeadsAttrs {
  b: number;
  t: number;
  parts: number;
  heads: number;
}

/**
 * The loops that carry block j of a [B T, P H D] matrix to and from [B, H, T, D] (byte strides:
 * matrix side, heads side).
 */
function headLoops(a: HeadsAttrs, d: number): [number, number, number][] {
  const w = a.parts * a.heads * d;
  return [
    [a.b, 4 * a.t * w, 4 * a.heads * a.t * d],
    [a.heads, 4 * d, 4 * a.t * d],
    [a.t, 4 * w, 4 * d],
  ];
}

/** x [B T, P H D] -> P tensors [B, H, T, D]: block j's heads, positions in order. */
function splitHeadsKernel(args: KernelArgs): tf.TensorInfo[] {
  const be = args.backend as WasmBackendLike;
  const x = args.inputs.x!;
  const a = args.attrs as unknown as HeadsAttrs;
  const d = x.shape[1] / (a.parts * a.heads);
  const outs = Array.from(
    { length: a.parts },
    () => be.makeOutput([a.b, a.heads, a.t, d], "float32"),
  );
  const [[n0, s0, d0], [n1, s1, d1], [n2, s2, d2]] = headLoops(a, d);
  const base = offset(be, x);
  outs.forEach((o, j) => {
    fns!.copy3(
      base + 4 * j * a.heads * d,
      offset(be, o),
      n0,
      s0,
      d0,
      n1,
      s1,
      d1,
      n2,
      s2,
      d2,
      4 * d,
    );
  });
  return outs;
}

/** The P gradients [B, H, T, D] -> x's [B T, P H D], each value + 0 (see {@link splitHeads}). */
function mergeHeadsGradKernel(args: KernelArgs): tf.TensorInfo {
  const be = args.backend as WasmBackendLike;
  const a = args.attrs as unknown as HeadsAttrs;
  const parts = Array.from({ length: a.parts }, (_, j) => args.inputs[String(j)]!);
  const d = parts[0].shape[3];
  const out = be.makeOutput([a.b * a.t, a.parts * a.heads * d], "float32");
  const [[n0, s0, d0], [n1, s1, d1], [n2, s2, d2]] = headLoops(a, d);
  const base = offset(be, out);
  parts.forEach((g, j) => {
    fns!.copy3z(
      offset(be, g),
      base + 4 * j * a.heads * d,
      n0,
      d0,
      s0,
      n1,
      d1,
      s1,
      n2,
      d2,
      s2,
      4 * d,
    );
  });
  return out;
}

/**
 * Splits a fused projection x [B T, P H D] (GPT-2's q|k|v: P = 3) into P tensors [B, H, T, D] in
 * one copy, where `tf.slice`, `tf.reshape` and `tf.transpose` per block take nine kernels (three
 * passes over memory per block in training). The values are the same; under a gradient tape the
 * backward is one pass too and gives the bits of the composed ops' gradient: each block's values
 * moved back into place plus +0 (tfjs adds the blocks' zero-padded gradients together, which
 * turns -0 into +0; a block whose gradient never comes gets zeros, as there). Undefined where
 * the kernels do not apply (another backend or dtype, turned off): the caller composes the ops.
 *
 * @example
 * ```ts ignore
 * const [q, k, v] = splitHeads(qkv, b, t, 3, nHead) ?? composedSplit(qkv);
 * ```
 */
export function splitHeads(
  x: tf.Tensor2D,
  b: number,
  t: number,
  parts: number,
  heads: number,
): tf.Tensor4D[] | undefined {
  const [rows, w] = x.shape;
  if (
    !fns || !simdKernelsOn() || tf.getBackend() !== "wasm" || x.dtype !== "float32" ||
    x.size === 0 || rows !== b * t || w % (parts * heads) !== 0
  ) {
    return undefined;
  }
  const attrs = { b, t, parts, heads };
  if (!tf.engine().isTapeOn()) return tf.engine().runKernel(SPLIT, { x }, attrs) as tf.Tensor4D[];
  return (tf.engine() as unknown as KernelFuncEngine).runKernelFunc({
    forwardFunc: () => tf.engine().runKernel(SPLIT, { x }, attrs) as tf.Tensor[],
    backwardsFunc: (dys) => {
      const list = Array.isArray(dys) ? dys : [dys]; // one output: tfjs passes a single dy
      const grads = Object.fromEntries(list.map((g, j) => [String(j), g]));
      const dx = tf.engine().runKernel(MERGE_GRAD, grads, attrs) as tf.Tensor;
      return { x: () => dx };
    },
    inputs: { x },
  }) as tf.Tensor4D[];
}

/** Replaces a stock wasm kernel with `fast`, which falls back to it when it returns undefined. */
function override(kernelName: string, fast: Kernel): void {
  const stock = tf.getKernel(kernelName, "wasm")?.kernelFunc;
  if (stock === undefined) return;
  tf.unregisterKernel(kernelName, "wasm");
  tf.registerKernel({
    kernelName,
    backendName: "wasm",
    kernelFunc: ((args: KernelArgs) =>
      (simdKernelsOn() ? fast(args) : undefined) ??
        stock(args as Parameters<tf.KernelFunc>[0])) as unknown as tf.KernelFunc,
  });
}

/**
 * Compiles the copies, puts the kernels in place of the stock Concat, Transpose and Slice on the
 * wasm backend and registers the head kernels of {@link splitHeads} (idempotent; a no-op where the engine lacks
 * WebAssembly SIMD or the heap cannot be reached).
 *
 * @example
 * ```ts ignore
 * await tf.setBackend("wasm");
 * registerLayoutKernels(tf.backend());
 * ```
 */
export function registerLayoutKernels(backend: unknown): void {
  if (fns) return;
  const memory = (backend as WasmBackendLike).wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return;
  fns = compileSimd(memory, [], layoutFunctions());
  if (!fns) return;
  override("Concat", concatKernel);
  override("Transpose", transposeKernel);
  override("Slice", sliceKernel);
  registerWasmKernel(SPLIT, splitHeadsKernel);
  registerWasmKernel(KV_WRITE, kvWriteKernel);
  registerWasmKernel(MERGE_GRAD, mergeHeadsGradKernel);
}
