/**
 * Kernels on the wasm backend that compute the same float32 bits as what they replace, in
 * fewer passes over memory (issue 22), from SIMD functions assembled by lib/engine/wasm_simd.ts
 * and run in place on the tfjs heap:
 *
 * - **GELU** (tanh approximation): three kernels forward and one backward instead of the six-op
 *   composition `x * sigmoid(C (x + 0.044715 x x x))` and the 22 kernels of tfjs's gradient
 *   through it. On a SafetyWorld RL update the composed GELU over [N, 512] (N about 4000
 *   tokens) was about a seventh of the update, each kernel a trip through 8 MB. The forward is
 *   one pass for `z = C (x + 0.044715 x x x)`, tfjs's own `sigmoid`, and `x * s`; the backward
 *   is one pass that reads x, s and dy and repeats, operation for operation and in the same
 *   order, the float32 arithmetic of tfjs's gradients of the composition (the gradients of `mul`,
 *   `sigmoid` and `add`, and their accumulation into x's gradient in tape order).
 * - **Sum over leading axes** (every bias and norm-weight gradient: [N, 512] -> [512]): the
 *   stock kernel transposes the whole input so that the reduced axes come last, then adds each
 *   output's inputs in order from +0; here one pass down the rows adds the same numbers in the
 *   same order, four columns at a time.
 * - **Sum and Max over trailing axes** (a log-softmax's row sums and maxima over the
 *   vocabulary): the stock kernels walk one row at a time, each step waiting on the last; here
 *   four rows walk side by side in SIMD lanes, each in the stock order (lib/engine/reduce_wasm.ts
 *   `rowSum`, `rowMax`). Other sums and maxima keep the stock kernels.
 * - **Layer norm** (lib/engine/layer_norm_wasm.ts): one row kernel forward instead of 9 ops, two
 *   backward instead of about 25. Under a gradient tape it also returns a pass-through of x for
 *   the residual add, so that the residual's share of x's gradient reaches the norm's backward
 *   and is summed first, as tfjs's tape sums it.
 * - **AdamW's heap step** (lib/optim/adamw.ts): m, v and the weights of a variable in one pass
 *   instead of 13 kernels.
 * - GPT-2's q|k|v split into heads is in lib/engine/layout_kernels.ts (`splitHeads`).
 *
 * Measured on the 2-core machine: a SafetyWorld RL update's kernel time fell by a third, a
 * toy:train step (16 x 56 tokens per worker) from about 172 to 105 ms.
 *
 * tests/simd_kernels_test.ts checks all of it bit for bit against the stock kernels and the
 * composed ops, alone and inside whole models' gradients. `useSimdKernels(false)` turns them off
 * for A/B comparisons (in this thread), as `SAFETY_COMPASS_SIMD=0` does everywhere (read once, at
 * start-up).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { envVar } from "../io/env.ts";
import { compileSimd, type SimdFunctions, type SimdProgram } from "./wasm_simd.ts";
import { layerNormFunctions } from "./layer_norm_wasm.ts";
import { reduceFunctions } from "./reduce_wasm.ts";

const GELU_C = 1.5957691216057308; // 2 * sqrt(2 / pi), as in transformer.ts
const CUBE_C = 0.044715;
const PRE = "ScGeluPre", GRAD = "ScGeluGrad";
const ADAMW = "ScAdamW";
const LN_FWD = "ScLnForward", LN_PARAMS = "ScLnGradParams", LN_DX = "ScLnGradX";

/** z = C * (x + 0.044715 * ((x * x) * x)), in the composition's order. */
const prePass: SimdProgram = {
  name: "pre",
  inputs: ["x"],
  steps: [
    ["sq", "mul", "x", "x"],
    ["cube", "mul", "sq", "x"],
    ["m3", "mul", "cube", CUBE_C],
    ["s1", "add", "x", "m3"],
    ["z", "mul", "s1", GELU_C],
  ],
  output: "z",
};

/**
 * dx of y = x * s, s = sigmoid(z), as tfjs's tape computes it: the nodes in reverse
 * (y = x * s; s = sigmoid(z); z = s1 * C; s1 = x + m3; m3 = cube * c; cube = sq * x; sq = x * x),
 * each input's share added to x's gradient in the order the node lists its inputs.
 */
const gradPass: SimdProgram = {
  name: "grad",
  inputs: ["x", "s", "dy"],
  steps: [
    ["g", "mul", "dy", "s"], // y = x * s: x's share
    ["ds", "mul", "dy", "x"], //             s's share
    ["oneMinus", "sub", 1, "s"], // sigmoid: dy * (s * (1 - s))
    ["slope", "mul", "s", "oneMinus"],
    ["dz", "mul", "ds", "slope"],
    ["ds1", "mul", "dz", GELU_C], // z = s1 * C
    ["g", "add", "g", "ds1"], // s1 = x + m3: x's share
    ["dcube", "mul", "ds1", CUBE_C], // m3 = cube * c
    ["dsq", "mul", "dcube", "x"], // cube = sq * x: sq's share
    ["sq", "mul", "x", "x"],
    ["dxCube", "mul", "dcube", "sq"], //              x's share
    ["g", "add", "g", "dxCube"],
    ["dxSq", "mul", "dsq", "x"], // sq = x * x: both shares, one after the other
    ["g", "add", "g", "dxSq"],
    ["g", "add", "g", "dxSq"],
  ],
  output: "g",
};

/**
 * One AdamW update of one variable, as lib/optim/adamw.ts composes it on the backend:
 * m' = m b1 + g (1 - b1); v' = v b2 + (g g)(1 - b2); x' = x keep - ((m' / bc1) / (sqrt(v' / bc2)
 * + eps)) lr, where keep = 1 - lr wd (1 without decay: x * 1 is x, bit for bit).
 */
const adamwPass: SimdProgram = {
  name: "adamw",
  inputs: ["x", "m", "v", "g"],
  scalars: ["b1", "c1", "b2", "c2", "bc1", "bc2", "eps", "keep", "lr"],
  steps: [
    ["mb", "mul", "m", "b1"],
    ["gc", "mul", "g", "c1"],
    ["m2", "add", "mb", "gc"],
    ["vb", "mul", "v", "b2"],
    ["gg", "mul", "g", "g"],
    ["ggc", "mul", "gg", "c2"],
    ["v2", "add", "vb", "ggc"],
    ["mh", "div", "m2", "bc1"],
    ["vh", "div", "v2", "bc2"],
    ["root", "sqrt", "vh"],
    ["den", "add", "root", "eps"],
    ["upd", "div", "mh", "den"],
    ["xk", "mul", "x", "keep"],
    ["step", "mul", "upd", "lr"],
    ["x2", "sub", "xk", "step"],
  ],
  output: ["m2", "v2", "x2"],
};

/** The numbers of one AdamW step (see {@link adamwSimd}). */
export interface AdamWScalars {
  beta1: number;
  beta2: number;
  /** 1 - beta1^t and 1 - beta2^t. */
  bc1: number;
  bc2: number;
  eps: number;
  lr: number;
  /** Decoupled weight decay of this variable (0: none). */
  weightDecay: number;
}

/** The parts of tfjs-backend-wasm's backend these kernels use (not exported there). */
export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  wasm?: { asm?: { memory?: unknown } };
}

let fns: SimdFunctions | undefined;
let enabled = envVar("SAFETY_COMPASS_SIMD") !== "0";
let stockSum: tf.KernelFunc | undefined;
let stockMax: tf.KernelFunc | undefined;

/** What a wasm kernel function receives. */
export type KernelArgs = {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
};

/**
 * The byte offset of a tensor's data in the wasm heap.
 *
 * @example
 * ```ts ignore
 * fns.copy3(offset(be, x), offset(be, out), 1, 0, 0, 1, 0, 0, 1, 0, 0, 4 * x.size);
 * ```
 */
export function offset(be: WasmBackendLike, t: tf.TensorInfo): number {
  return be.typedArrayFromHeap(t).byteOffset;
}

/**
 * `Sum` of a float32 tensor over its leading axes as column sums, or over its trailing axes as
 * row sums (`rowSum`, four rows in SIMD lanes, each in the stock kernel's order); anything
 * else: the stock kernel.
 */
function sumKernel(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x!;
  const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
  const rank = x.shape.length;
  // In the order given: the stock kernel adds in the order of its transpose, which follows it.
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const k = axes.length, size = tf.util.sizeFromShape(x.shape);
  const leading = axes.every((a, i) => a === i);
  const trailing = areTrailing(axes, rank);
  if (
    !enabled || x.dtype !== "float32" || size === 0 || k === 0 || k >= rank ||
    (!leading && !trailing)
  ) {
    return stockSum!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  const be = args.backend as WasmBackendLike;
  if (trailing) return rowReduce(be, x, axes, keepDims, "rowSum");
  const rest = x.shape.slice(k), cols = tf.util.sizeFromShape(rest);
  const out = be.makeOutput(keepDims ? [...axes.map(() => 1), ...rest] : rest, "float32");
  fns!.columnSum(offset(be, x), offset(be, out), size / cols, cols);
  return out;
}

/** Whether `axes` are the last `axes.length` axes of a rank-`rank` tensor, in order. */
function areTrailing(axes: number[], rank: number): boolean {
  return axes.every((a, i) => a === rank - axes.length + i);
}

/** Each row over the trailing `axes` of x reduced by `fn` (`rowSum` or `rowMax`). */
function rowReduce(
  be: WasmBackendLike,
  x: tf.TensorInfo,
  axes: number[],
  keepDims: boolean,
  fn: "rowSum" | "rowMax",
): tf.TensorInfo {
  const lead = x.shape.slice(0, x.shape.length - axes.length);
  const cols = tf.util.sizeFromShape(x.shape.slice(lead.length));
  const out = be.makeOutput(keepDims ? [...lead, ...axes.map(() => 1)] : lead, "float32");
  fns![fn](offset(be, x), offset(be, out), tf.util.sizeFromShape(lead), cols);
  return out;
}

/**
 * `Max` of a float32 tensor over its trailing axes (a log-softmax's row maxima) as `rowMax`:
 * four rows in SIMD lanes, each compared in the stock kernel's order; anything else: the stock
 * kernel. GPT-2-small's training step took 29 ms per [254, 50257] call in the stock kernel.
 */
function maxKernel(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x!;
  const { reductionIndices, keepDims } = args.attrs as {
    reductionIndices: number | number[];
    keepDims: boolean;
  };
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(reductionIndices, x.shape);
  const k = axes.length;
  if (
    !enabled || x.dtype !== "float32" || tf.util.sizeFromShape(x.shape) === 0 || k === 0 ||
    k >= rank || !areTrailing(axes, rank)
  ) {
    return stockMax!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  return rowReduce(args.backend as WasmBackendLike, x, axes, keepDims, "rowMax");
}

function run(fn: string, args: KernelArgs, names: string[]) {
  const be = args.backend as WasmBackendLike;
  const ins = names.map((n) => args.inputs[n]!);
  const out = be.makeOutput(ins[0].shape, "float32");
  const offsets = [...ins, out].map((t) => offset(be, t));
  fns![fn](...offsets, tf.util.sizeFromShape(ins[0].shape));
  return out;
}

/** Rows and width of a layer norm's input (the last axis is normalised). */
function rowsOf(x: tf.TensorInfo): [number, number] {
  const d = x.shape[x.shape.length - 1];
  return [tf.util.sizeFromShape(x.shape) / d, d];
}

/** x, w, b -> y, xc (x minus its row mean), a (variance + eps) and r (1 / sqrt(a)) per row. */
function lnForwardKernel(args: KernelArgs): tf.TensorInfo[] {
  const be = args.backend as WasmBackendLike;
  const { x, w, b } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, d] = rowsOf(x);
  const outs = [
    be.makeOutput(x.shape, "float32"),
    be.makeOutput(x.shape, "float32"),
    be.makeOutput([rows], "float32"),
    be.makeOutput([rows], "float32"),
  ];
  const [xo, wo, bo] = [x, w, b].map((t) => offset(be, t));
  fns!.lnForward(
    xo,
    wo,
    bo,
    ...outs.map((t) => offset(be, t)),
    rows,
    d,
    (args.attrs as { eps: number }).eps,
  );
  return outs;
}

/** dy, w, xc, r -> dw, db (column sums) and dr per row. */
function lnGradParamsKernel(args: KernelArgs): tf.TensorInfo[] {
  const be = args.backend as WasmBackendLike;
  const { dy, w, xc, r } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, d] = rowsOf(dy);
  const outs = [
    be.makeOutput([d], "float32"),
    be.makeOutput([d], "float32"),
    be.makeOutput([rows], "float32"),
  ];
  const ins = [dy, w, xc, r].map((t) => offset(be, t));
  fns!.lnGradParams(...ins, ...outs.map((t) => offset(be, t)), rows, d);
  return outs;
}

/** dy, w, xc, r, da (and the residual's gradient `pass`) -> dx. */
function lnGradXKernel(args: KernelArgs): tf.TensorInfo {
  const be = args.backend as WasmBackendLike;
  const { dy, w, xc, r, da, pass } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, d] = rowsOf(dy);
  const out = be.makeOutput(dy.shape, "float32");
  const ins = [dy, w, xc, r, da, ...(pass ? [pass] : [])].map((t) => offset(be, t));
  fns![pass ? "lnGradXPass" : "lnGradX"](...ins, offset(be, out), rows, d);
  return out;
}

/** x, m, v, g -> m', v', x' (attrs: the step's numbers, as the composed ops round them). */
function adamwKernel(args: KernelArgs): tf.TensorInfo[] {
  const be = args.backend as WasmBackendLike;
  const { x, m, v, g } = args.inputs as Record<string, tf.TensorInfo>;
  const a = args.attrs as unknown as AdamWScalars;
  const outs = [0, 1, 2].map(() => be.makeOutput(x.shape, "float32"));
  const ptrs = [x, m, v, g, ...outs].map((t) => offset(be, t));
  const keep = a.weightDecay > 0 ? 1 - a.lr * a.weightDecay : 1;
  const n = tf.util.sizeFromShape(x.shape);
  fns!.adamw(
    ...ptrs,
    n,
    a.beta1,
    1 - a.beta1,
    a.beta2,
    1 - a.beta2,
    a.bc1,
    a.bc2,
    a.eps,
    keep,
    a.lr,
  );
  return outs;
}

/**
 * One AdamW update of a variable in one pass: `[m', v', x']`, bit for bit the ops
 * lib/optim/adamw.ts composes (each number rounded to float32 as a scalar tensor would be);
 * undefined where the kernel does not apply (the caller composes the ops).
 *
 * @example
 * ```ts ignore
 * const next = adamwSimd(x, m, v, g, { beta1: 0.9, beta2: 0.999, bc1, bc2, eps: 1e-8, lr, weightDecay: 0.01 });
 * ```
 */
export function adamwSimd(
  x: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  numbers: AdamWScalars,
): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (
    !simdFunctionsOn() || [x, m, v, g].some((t) => t.dtype !== "float32" || t.size !== x.size)
  ) {
    return undefined;
  }
  return tf.engine().runKernel(ADAMW, { x, m, v, g }, { ...numbers }) as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
}

/**
 * Each tensor's `tf.sum(tf.mul(t, t))`, bit for bit (lib/engine/reduce_wasm.ts), read straight
 * off the heap: one pass per tensor and no kernel dispatch. Undefined where it does not apply
 * (another backend, a dtype other than float32, the kernels off or not compiled): the caller
 * composes the ops.
 *
 * @example
 * ```ts ignore
 * const sums = sumsOfSquares(grads) ?? grads.map((g) => tf.sum(tf.mul(g, g)).dataSync()[0]);
 * ```
 */
export function sumsOfSquares(ts: readonly tf.Tensor[]): number[] | undefined {
  return perTensor(ts, (x, out, n) => fns!.sumSquares(x, out, n), (heap) => Array.from(heap));
}

/**
 * Adds `bias` ([cols]) to every row of the float32 [rows, cols] matrix at `x` in place, on the
 * heap (lib/engine/wasm_simd.ts `addRows`: the float32 additions of a broadcast `tf.add`, four
 * lanes at a time). For a kernel that owns `x` (a fresh output), called only where
 * {@link simdFunctionsOn} holds.
 *
 * @example
 * ```ts ignore
 * if (simdFunctionsOn()) addRowsInPlace(be, out, bias, m, n);
 * ```
 */
export function addRowsInPlace(
  be: WasmBackendLike,
  x: tf.TensorInfo,
  bias: tf.TensorInfo,
  rows: number,
  cols: number,
): void {
  if (!fns) throw new Error("addRowsInPlace: the SIMD functions are not compiled");
  fns.addRows(offset(be, x), offset(be, bias), rows, cols);
}

/**
 * For each tensor, whether it holds a NaN or an infinity, read straight off the heap in one pass
 * at memory speed (lib/engine/reduce_wasm.ts `nonFiniteBits`), with no kernel dispatch and no
 * temporaries. Undefined where it does not apply (as {@link sumsOfSquares}).
 *
 * @example
 * ```ts ignore
 * const bad = nonFiniteFlags([...weights, ...moments]);
 * if (bad?.some((b) => b)) console.log("a non-finite value");
 * ```
 */
export function nonFiniteFlags(ts: readonly tf.Tensor[]): boolean[] | undefined {
  return perTensor(
    ts,
    (x, out, n) => fns!.nonFiniteBits(x, out, n),
    (heap) => Array.from(new Int32Array(heap.buffer, heap.byteOffset, heap.length), (b) => b !== 0),
  );
}

/**
 * Runs `fn(x, out, n)` for each float32 tensor on this thread's wasm heap, `out` the byte offset
 * of its 4-byte result in a scratch output, and returns `read` of those results; undefined where
 * the kernels do not apply (another backend, another dtype, the kernels off or not compiled, a
 * tensor disposed or not on this heap).
 */
function perTensor<T>(
  ts: readonly tf.Tensor[],
  fn: (x: number, out: number, n: number) => void,
  read: (results: Float32Array) => T[],
): T[] | undefined {
  if (!simdFunctionsOn() || ts.some((t) => t.dtype !== "float32")) return undefined;
  const be = tf.backend() as unknown as WasmBackendLike & {
    disposeData(id: tf.DataId): boolean;
    dataIdMap: { has(id: tf.DataId): boolean };
  };
  // Only tensors whose data is on this heap (not disposed, not on another backend).
  if (ts.some((t) => t.isDisposed || !be.dataIdMap.has(t.dataId))) return undefined;
  const out = be.makeOutput([Math.max(ts.length, 1)], "float32");
  try {
    // Offsets only now: makeOutput may grow the heap (the offsets stay; views would not).
    const at = offset(be, out);
    ts.forEach((t, i) => fn(offset(be, t), at + 4 * i, t.size));
    return read((be.typedArrayFromHeap(out) as Float32Array).subarray(0, ts.length));
  } finally {
    be.disposeData(out.dataId);
  }
}

/** The part of tfjs's engine that runs a kernel function with its own gradient. */
export interface KernelFuncEngine {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => tf.Tensor | tf.Tensor[];
    backwardsFunc: (
      dy: tf.Tensor | tf.Tensor[],
      saved: tf.Tensor[],
    ) => Record<string, () => tf.Tensor>;
    inputs: tf.NamedTensorMap;
  }): tf.Tensor | tf.Tensor[];
}

/**
 * Layer norm over the last axis, `((x - mean) / sqrt(var + eps)) w + b`, through the wasm
 * kernels: bit for bit the composed ops lib/model/transformer.ts writes and their autodiff
 * gradient. Returns `[y, residual]`: the residual is x itself without a gradient tape; under
 * one, with `pass`, it is a copy of x that carries the residual stream's gradient into the
 * norm's backward, so x's gradient is summed in the order the composed ops' tape sums it (the
 * residual's share first); without `pass` x must feed nothing else that needs a gradient for
 * that to hold. Undefined where the kernels do not apply (the caller composes the ops).
 *
 * @example
 * ```ts ignore
 * const [y, res] = layerNormSimd(x, w, b, 1e-5, true) ?? [composedLayerNorm(x, w, b, 1e-5), x];
 * const out = tf.add(res, block(y)); // the residual add reads `res`, not x
 * ```
 */
export function layerNormSimd(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  eps: number,
  pass: boolean,
): [tf.Tensor, tf.Tensor] | undefined {
  const d = x.shape[x.shape.length - 1];
  if (
    !simdFunctionsOn() || x.size === 0 || x.shape.length < 2 ||
    w.size !== d || b.size !== d || [x, w, b].some((t) => t.dtype !== "float32")
  ) {
    return undefined;
  }
  if (!tf.engine().isTapeOn()) {
    const [y, ...rest] = tf.engine().runKernel(LN_FWD, { x, w, b }, { eps }) as tf.Tensor[];
    tf.dispose(rest);
    return [y, x];
  }
  const out = (tf.engine() as unknown as KernelFuncEngine).runKernelFunc({
    forwardFunc: (_backend, save) => {
      const [y, xc, a, r] = tf.engine().runKernel(LN_FWD, { x, w, b }, { eps }) as tf.Tensor[];
      save([xc, a, r, w]);
      return pass ? [y, tf.clone(x)] : y;
    },
    backwardsFunc: (dys, [xc, a, r, ws]) => {
      const [dy, dPass] = pass ? dys as tf.Tensor[] : [dys as tf.Tensor];
      const [dx, dw, db] = tf.tidy(() => {
        const [dw, db, dr] = tf.engine().runKernel(LN_PARAMS, { dy, w: ws, xc, r }) as tf.Tensor[];
        // tfjs's gradient of rsqrt, on the per-row values: -(dr / (a^1.5 * 2))
        const da = tf.neg(tf.div(dr, tf.mul(tf.pow(a, 1.5), 2)));
        const inputs = { dy, w: ws, xc, r, da, ...(pass ? { pass: dPass } : {}) };
        return [tf.engine().runKernel(LN_DX, inputs) as tf.Tensor, dw, db];
      });
      return { x: () => dx, w: () => tf.reshape(dw, w.shape), b: () => tf.reshape(db, b.shape) };
    },
    inputs: { x, w, b },
  });
  return pass ? out as [tf.Tensor, tf.Tensor] : [out as tf.Tensor, x];
}

/**
 * Registers `kernelFunc` as the wasm backend's kernel `kernelName`, replacing any registered one.
 *
 * @example
 * ```ts ignore
 * registerWasmKernel("ScMyKernel", (args) => myKernel(args));
 * ```
 */
export function registerWasmKernel(
  kernelName: string,
  kernelFunc: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[],
): void {
  if (tf.getKernel(kernelName, "wasm") !== undefined) tf.unregisterKernel(kernelName, "wasm");
  tf.registerKernel({
    kernelName,
    backendName: "wasm",
    kernelFunc: kernelFunc as unknown as tf.KernelFunc,
  });
}

/**
 * Compiles and registers the kernels on the wasm backend (idempotent; a no-op where the engine
 * lacks WebAssembly SIMD or the backend's heap cannot be reached, and the composed ops stay).
 */
export function registerSimdKernels(backend: unknown): void {
  if (fns) return;
  const memory = (backend as WasmBackendLike).wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return;
  fns = compileSimd(memory, [prePass, gradPass, adamwPass], [
    ...layerNormFunctions(),
    ...reduceFunctions(),
  ]);
  if (!fns) return;
  registerWasmKernel(LN_FWD, lnForwardKernel);
  registerWasmKernel(LN_PARAMS, lnGradParamsKernel);
  registerWasmKernel(LN_DX, lnGradXKernel);
  registerWasmKernel(ADAMW, adamwKernel);
  registerWasmKernel(PRE, (args) => run("pre", args, ["x"]));
  registerWasmKernel(GRAD, (args) => run("grad", args, ["x", "s", "dy"]));
  stockSum = replaceStock("Sum", sumKernel);
  stockMax = replaceStock("Max", maxKernel);
}

/**
 * Puts `kernel` in place of the wasm backend's stock `name` kernel and returns the stock one
 * (which `kernel` falls back to); nothing when no stock kernel is registered.
 */
function replaceStock(
  name: string,
  kernel: (args: KernelArgs) => tf.TensorInfo,
): tf.KernelFunc | undefined {
  const stock = tf.getKernel(name, "wasm")?.kernelFunc;
  if (stock === undefined) return undefined;
  tf.unregisterKernel(name, "wasm");
  tf.registerKernel({
    kernelName: name,
    backendName: "wasm",
    kernelFunc: kernel as unknown as tf.KernelFunc,
  });
  return stock;
}

/**
 * Turns these kernels on or off for this thread (A/B measurements and tests); returns the
 * previous setting.
 *
 * @example
 * ```ts
 * import { useSimdKernels } from "./simd_kernels.ts";
 * const before = useSimdKernels(false); // composed GELU, autodiff's gradient, stock Sum
 * useSimdKernels(before);
 * ```
 */
export function useSimdKernels(on: boolean): boolean {
  const before = enabled;
  enabled = on;
  return before;
}

/**
 * Whether the SIMD kernels are on in this thread (see {@link useSimdKernels}).
 *
 * @example
 * ```ts
 * import { simdKernelsOn } from "./simd_kernels.ts";
 * if (!simdKernelsOn()) console.log("stock kernels only");
 * ```
 */
export function simdKernelsOn(): boolean {
  return enabled;
}

/**
 * Whether this module's WebAssembly functions can run now: compiled (the engine has WebAssembly
 * SIMD and the wasm backend registered them), turned on, and the wasm backend active. Every
 * heap kernel and pass here asks it before it runs.
 *
 * @example
 * ```ts
 * import { simdFunctionsOn } from "./simd_kernels.ts";
 * if (!simdFunctionsOn()) console.log("composed ops here");
 * ```
 */
export function simdFunctionsOn(): boolean {
  return fns !== undefined && enabled && tf.getBackend() === "wasm";
}

const geluWithGrad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const s = tf.sigmoid(tf.engine().runKernel(PRE, { x }, {}) as tf.Tensor);
  save([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, [xs, ss]: tf.Tensor[]) =>
      tf.engine().runKernel(GRAD, { x: xs, s: ss, dy }, {}) as tf.Tensor,
  };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * GELU (tanh approximation) through the SIMD kernels, bit for bit the composed
 * `x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))` and its autodiff gradient; undefined where
 * they do not apply (another backend, a dtype other than float32, not registered, or turned
 * off), and the caller composes it.
 *
 * @example
 * ```ts ignore
 * const y = geluSimd(x) ?? composedGelu(x);
 * ```
 */
export function geluSimd(x: tf.Tensor): tf.Tensor | undefined {
  if (!simdFunctionsOn() || x.dtype !== "float32") return undefined;
  if (tf.engine().isTapeOn()) return geluWithGrad(x);
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.engine().runKernel(PRE, { x }, {}) as tf.Tensor)));
}
