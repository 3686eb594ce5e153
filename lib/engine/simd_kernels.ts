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
 *   same order, four columns at a time. Other sums keep the stock kernel.
 *
 * tests/simd_kernels_test.ts checks all of it bit for bit against the stock kernels and the
 * composed ops, alone and inside whole models' gradients. `useSimdKernels(false)` turns them off
 * for A/B comparisons.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { compileSimd, type SimdFunctions, type SimdProgram } from "./wasm_simd.ts";

const GELU_C = 1.5957691216057308; // 2 * sqrt(2 / pi), as in transformer.ts
const CUBE_C = 0.044715;
const PRE = "ScGeluPre", GRAD = "ScGeluGrad";

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

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  wasm?: { asm?: { memory?: unknown } };
}

let fns: SimdFunctions | undefined;
let enabled = true;
let stockSum: tf.KernelFunc | undefined;

function offset(be: WasmBackendLike, t: tf.TensorInfo): number {
  return be.typedArrayFromHeap(t).byteOffset;
}

/** `Sum` over leading axes of a float32 tensor as column sums; anything else: the stock kernel. */
function sumKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const x = args.inputs.x!;
  const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
  const rank = x.shape.length;
  // In the order given: the stock kernel adds in the order of its transpose, which follows it.
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const k = axes.length, size = x.shape.reduce((a, b) => a * b, 1);
  if (
    !enabled || x.dtype !== "float32" || size === 0 || k === 0 || k >= rank ||
    axes.some((a, i) => a !== i)
  ) {
    return stockSum!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  const be = args.backend as WasmBackendLike;
  const rest = x.shape.slice(k), cols = rest.reduce((a, b) => a * b, 1);
  const out = be.makeOutput(keepDims ? [...axes.map(() => 1), ...rest] : rest, "float32");
  fns!.columnSum(offset(be, x), offset(be, out), size / cols, cols);
  return out;
}

function run(fn: string, args: { inputs: tf.NamedTensorInfoMap; backend: unknown }, names: string[]) {
  const be = args.backend as WasmBackendLike;
  const ins = names.map((n) => args.inputs[n]!);
  const out = be.makeOutput(ins[0].shape, "float32");
  const offsets = [...ins, out].map((t) => offset(be, t));
  fns![fn](...offsets, ins[0].shape.reduce((a, b) => a * b, 1));
  return out;
}

/**
 * Compiles and registers the kernels on the wasm backend (idempotent; a no-op where the engine
 * lacks WebAssembly SIMD or the backend's heap cannot be reached, and the composed ops stay).
 */
export function registerSimdKernels(backend: unknown): void {
  if (fns) return;
  const memory = (backend as WasmBackendLike).wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return;
  fns = compileSimd(memory, [prePass, gradPass]);
  if (!fns) return;
  for (
    const [kernelName, fn, names] of [[PRE, "pre", ["x"]], [GRAD, "grad", ["x", "s", "dy"]]] as const
  ) {
    if (tf.getKernel(kernelName, "wasm") !== undefined) tf.unregisterKernel(kernelName, "wasm");
    tf.registerKernel({
      kernelName,
      backendName: "wasm",
      kernelFunc: ((args: { inputs: tf.NamedTensorInfoMap; backend: unknown }) =>
        run(fn, args, [...names])) as unknown as tf.KernelFunc,
    });
  }
  const stock = tf.getKernel("Sum", "wasm")?.kernelFunc;
  if (stock !== undefined) {
    stockSum = stock;
    tf.unregisterKernel("Sum", "wasm");
    tf.registerKernel({
      kernelName: "Sum",
      backendName: "wasm",
      kernelFunc: sumKernel as unknown as tf.KernelFunc,
    });
  }
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
  if (!fns || !enabled || x.dtype !== "float32" || tf.getBackend() !== "wasm") return undefined;
  if (tf.engine().isTapeOn()) return geluWithGrad(x);
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.engine().runKernel(PRE, { x }, {}) as tf.Tensor)));
}
