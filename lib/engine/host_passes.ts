/**
 * The host-state passes of training (issue 22): gradient accumulation into host arrays, their
 * sum of squares (global-norm clipping) and AdamW's host update, each as one WebAssembly SIMD
 * pass (lib/engine/host_state_wasm.ts) instead of a JavaScript loop, with the loop's bits. They
 * apply on the wasm backend with the SIMD kernels on (lib/engine/simd_kernels.ts
 * `simdFunctionsOn`) to arrays from lib/engine/host_memory.ts `hostArrays`; each returns
 * undefined (or false) where it does not apply, and the caller runs its loop.
 *
 * Measured on GPT-2-small's 124M parameters (2-core Xeon, `deno task bench`'s training step: 8 x
 * 128 tokens, micro-batches of 2): the update (clip norm and AdamW) fell from 1.7-2.5 s to
 * 0.58-0.63 s, the step from 8.9-9.4 s to 6.3-6.8 s (0.71x -> 1.04x PyTorch in the bench).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { moduleBytes } from "./wasm_simd.ts";
import { hostStateFunctions } from "./host_state_wasm.ts";
import { hostMemoryOf } from "./host_memory.ts";
import { wasmHeapView } from "./kernels.ts";
import {
  type KernelArgs,
  offset,
  registerWasmKernel,
  simdFunctionsOn,
  type WasmBackendLike,
} from "./simd_kernels.ts";

interface HostFns {
  accumulate(dst: number, src: number, n: number, share: number, first: number): void;
  sumSquares(x: number, n: number, start: number): number;
  adamw(w: number, g: number, m: number, v: number, out: number, n: number, ...k: number[]): number;
}

const ADAMW_HOST = "ScAdamWHost";
let bytes: Uint8Array<ArrayBuffer> | undefined;
let module: WebAssembly.Module | undefined | null;
const cache = new WeakMap<
  WebAssembly.Memory,
  WeakMap<WebAssembly.Memory, WeakMap<WebAssembly.Memory, HostFns>>
>();
let registered = false;

/** The tfjs heap's memory, when the wasm backend is active with the SIMD functions on. */
function heapMemory(): WebAssembly.Memory | undefined {
  if (!simdFunctionsOn()) return undefined;
  const memory = (tf.backend() as unknown as WasmBackendLike).wasm?.asm?.memory;
  return memory instanceof WebAssembly.Memory ? memory : undefined;
}

/** The functions over (heap, grads, moments), compiled once and instantiated once per triple. */
function functionsFor(
  heap: WebAssembly.Memory,
  grads: WebAssembly.Memory,
  moments: WebAssembly.Memory,
): HostFns | undefined {
  if (module === undefined) {
    bytes = moduleBytes(hostStateFunctions(), ["heap", "grads", "moments"]);
    module = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  if (module === null) return undefined; // no multi-memory or no SIMD: the loops run
  let byGrads = cache.get(heap);
  if (!byGrads) cache.set(heap, byGrads = new WeakMap());
  let byMoments = byGrads.get(grads);
  if (!byMoments) byGrads.set(grads, byMoments = new WeakMap());
  let fns = byMoments.get(moments);
  if (!fns) {
    const env = { heap, grads, moments };
    fns = new WebAssembly.Instance(module, { env }).exports as unknown as HostFns;
    byMoments.set(moments, fns);
  }
  return fns;
}

/**
 * `dst[j] = share * g[j]` (`first`) or `dst[j] += share * g[j]`, the float64 products and sums
 * rounded to float32 as the loop `a[j] += share * d[j]` over Float32Arrays rounds them, for a
 * host array `dst` and a gradient `g` on the wasm heap, in one SIMD pass. False where it does not
 * apply (the caller runs that loop).
 *
 * @example
 * ```ts ignore
 * if (!accumulateOnHost(acc, grad, 0.25, false)) for (let j = 0; j < acc.length; j++) acc[j] += 0.25 * d[j];
 * ```
 */
export function accumulateOnHost(
  dst: Float32Array,
  g: tf.Tensor,
  share: number,
  first: boolean,
): boolean {
  const heap = heapMemory();
  const memory = hostMemoryOf(dst);
  if (!heap || !memory || g.size !== dst.length) return false;
  const view = wasmHeapView(g);
  if (!view) return false;
  const fns = functionsFor(heap, memory, memory);
  if (!fns) return false;
  fns.accumulate(dst.byteOffset, view.byteOffset, dst.length, share, first ? 1 : 0);
  return true;
}

/**
 * `start + a[0]^2 + a[1]^2 + ...` over host arrays, array after array, each square and sum in
 * float64 in that order (the loop `sq += a[j] * a[j]`); undefined where it does not apply.
 *
 * @example
 * ```ts ignore
 * const sq = sumSquaresOnHost(grads) ?? loopSum(grads);
 * ```
 */
export function sumSquaresOnHost(arrays: readonly Float32Array[]): number | undefined {
  const heap = heapMemory();
  if (!heap) return undefined;
  const fns: HostFns[] = [];
  for (const a of arrays) {
    const memory = hostMemoryOf(a);
    const f = memory && functionsFor(heap, memory, memory);
    if (!f) return undefined;
    fns.push(f);
  }
  let sq = 0;
  arrays.forEach((a, i) => sq = fns[i].sumSquares(a.byteOffset, a.length, sq));
  return sq;
}

/** The numbers of one host AdamW update (see {@link adamwOnHost}). */
export interface HostAdamWNumbers {
  /** The gradient's multiplier (the clip scale). */
  gs: number;
  /** Decay rate of the first moment. */
  beta1: number;
  /** 1 - beta1. */
  c1: number;
  /** Decay rate of the second moment. */
  beta2: number;
  /** 1 - beta2. */
  c2: number;
  /** 1 - lr * weight decay. */
  keep: number;
  /** lr / (1 - beta1^t). */
  step: number;
  /** 1 / (1 - beta2^t). */
  ib2: number;
  /** Added to the denominator's square root. */
  eps: number;
}

interface AdamWHostAttrs extends HostAdamWNumbers {
  fns: HostFns;
  g: Float32Array;
  m: Float32Array;
  v: Float32Array;
  flags: number;
}

/** w -> w' on the heap, the moments updated in place; the flags are left in the attrs. */
function adamwHostKernel(args: KernelArgs): tf.TensorInfo {
  const be = args.backend as WasmBackendLike;
  const x = args.inputs.x!;
  const a = args.attrs as unknown as AdamWHostAttrs;
  const out = be.makeOutput(x.shape, "float32");
  a.flags = a.fns.adamw(
    offset(be, x),
    a.g.byteOffset,
    a.m.byteOffset,
    a.v.byteOffset,
    offset(be, out),
    a.g.length,
    a.gs,
    a.beta1,
    a.c1,
    a.beta2,
    a.c2,
    a.keep,
    a.step,
    a.ib2,
    a.eps,
  );
  return out;
}

/**
 * AdamW's host update of one variable in one SIMD pass, the float64 arithmetic of the loop in
 * lib/optim/adamw.ts `updateHost` to the bit: m and v (host arrays in one memory) are updated in
 * place, and the new weights are returned as a tensor on the heap, with the loop's finiteness
 * flags (bit 0 the weights, bit 1 the first moment, bit 2 the second). Undefined where it does
 * not apply (another backend, the kernels off, arrays not from `hostArrays`, m and v apart).
 *
 * @example
 * ```ts ignore
 * const r = adamwOnHost(x, g, m, v, numbers);
 * if (r) { x.assign(r.weights); r.weights.dispose(); }
 * ```
 */
export function adamwOnHost(
  x: tf.Tensor,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  numbers: HostAdamWNumbers,
): { weights: tf.Tensor; flags: number } | undefined {
  const heap = heapMemory();
  const grads = hostMemoryOf(g), moments = hostMemoryOf(m);
  if (
    !heap || !grads || !moments || hostMemoryOf(v) !== moments || x.dtype !== "float32" ||
    [g, m, v].some((a) => a.length !== x.size) || !wasmHeapView(x)
  ) {
    return undefined;
  }
  const fns = functionsFor(heap, grads, moments);
  if (!fns) return undefined;
  if (!registered) {
    registerWasmKernel(ADAMW_HOST, adamwHostKernel);
    registered = true;
  }
  const attrs = { ...numbers, fns, g, m, v, flags: 0 } as AdamWHostAttrs;
  const weights = tf.engine().runKernel(ADAMW_HOST, { x }, attrs as unknown as tf.NamedAttrMap);
  return { weights: weights as tf.Tensor, flags: attrs.flags };
}
