// deno-fmt-ignore-file -- instruction bytes laid out by meaning, one operation per group
/**
 * `sumSquares(x, out, n)` as a WebAssembly function (written with lib/engine/wasm_simd.ts's
 * {@link FunctionWriter}) over the tfjs heap: `out[0] = x_0 x_0 + x_1 x_1 + ... + x_{n-1} x_{n-1}`,
 * each square rounded to float32 and the sum taken in order from +0 in float32, which is
 * `tf.sum(tf.mul(x, x))` on the wasm backend operation for operation (its `Mul`, then its `Sum`
 * over every axis, one element after another). lib/optim/adamw.ts's global-norm clipping reads
 * every gradient's sum this way, without two kernel dispatches per variable.
 *
 * @module
 */

import { F32_OP as F, FunctionWriter, WASM_I32, type WasmFunction } from "./wasm_simd.ts";

const I = WASM_I32;
const LOAD = [0x2a, 0x00, 0x00], STORE = [0x38, 0x00, 0x00];

/** `sumSquares(x, out, n)`: the float32 sum of squares of n floats at x, stored at out. */
function sumSquaresFunction(): WasmFunction {
  const fw = new FunctionWriter("sumSquares", [I, I, I]);
  const [x, out, n] = [0, 1, 2];
  const end = fw.local(I), s = fw.local(0x7d), v = fw.local(0x7d);
  fw.emit(
    fw.get(x), fw.get(n), fw.i32(2), 0x74, 0x6a, fw.set(end),
    fw.f32(0), fw.set(s),
    fw.whileBelow(x, end, [
      ...fw.get(x), ...LOAD, ...fw.set(v),
      ...fw.get(s), ...fw.get(v), ...fw.get(v), F.mul, F.add, ...fw.set(s),
      ...fw.bump(x, 4),
    ]),
    fw.get(out), fw.get(s), STORE,
  );
  return fw.build();
}

/**
 * The functions of this module: `sumSquares`.
 *
 * @example
 * ```ts
 * import { compileSimd } from "./wasm_simd.ts";
 * import { reduceFunctions } from "./reduce_wasm.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const fns = compileSimd(memory, [], reduceFunctions())!;
 * const heap = new Float32Array(memory.buffer);
 * heap.set([1, 2, 3], 0); // x at byte 0
 * fns.sumSquares(0, 64, 3); // at byte 64
 * console.log(heap[16]); // 14
 * ```
 */
export function reduceFunctions(): WasmFunction[] {
  return [sumSquaresFunction()];
}
