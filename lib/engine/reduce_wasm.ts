// deno-fmt-ignore-file -- instruction bytes laid out by meaning, one operation per group
/**
 * Reductions over the tfjs heap as WebAssembly functions.
 *
 * `sumSquares(x, out, n)` as a WebAssembly function (written with lib/engine/wasm_simd.ts's
 * {@link FunctionWriter}) over the tfjs heap: `out[0] = x_0 x_0 + x_1 x_1 + ... + x_{n-1} x_{n-1}`,
 * each square rounded to float32 and the sum taken in order from +0 in float32, which is
 * `tf.sum(tf.mul(x, x))` on the wasm backend operation for operation (its `Mul`, then its `Sum`
 * over every axis, one element after another). lib/optim/adamw.ts's global-norm clipping reads
 * every gradient's sum this way, without two kernel dispatches per variable.
 *
 * `nonFiniteBits(x, out, n)` stores at out (an int32) 0 when all n floats at x are finite and
 * something else when one is NaN or infinite: it ORs the bits of `x - x` over the data, which is
 * +0 for a finite x and NaN otherwise, four lanes at a time (a pass at memory speed, no dependent
 * float adds). AdamW's check after each update (lib/optim/adamw.ts `nonFinite`) reads the weights
 * and moments this way.
 *
 * @module
 */

import { F32_OP as F, FunctionWriter, WASM_I32, type WasmFunction } from "./wasm_simd.ts";

const I = WASM_I32, V128 = 0x7b, SIMD = 0xfd;
const LOAD = [0x2a, 0x00, 0x00], STORE = [0x38, 0x00, 0x00];
const V_LOAD = [SIMD, 0x00, 0x00, 0x00], V_OR = [SIMD, 0x50], V_ANY = [SIMD, 0x53];
const V_SUB = [SIMD, 0xe5, 0x01], I32_OR = 0x72, I32_FROM_F32_BITS = 0xbc;
const I32_STORE = [0x36, 0x02, 0x00];

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

/** `nonFiniteBits(x, out, n)`: int32 at out, 0 exactly when the n floats at x are all finite. */
function nonFiniteBitsFunction(): WasmFunction {
  const fw = new FunctionWriter("nonFiniteBits", [I, I, I]);
  const [x, out, n] = [0, 1, 2];
  const vecEnd = fw.local(I), end = fw.local(I), bits = fw.local(I);
  const acc = fw.local(V128), v = fw.local(V128), s = fw.local(0x7d);
  fw.emit(
    // vecEnd = x + (n & ~3) * 4; end = x + n * 4
    fw.get(x), fw.get(n), fw.i32(-4), 0x71, fw.i32(2), 0x74, 0x6a, fw.set(vecEnd),
    fw.get(x), fw.get(n), fw.i32(2), 0x74, 0x6a, fw.set(end),
    // acc |= bits(v - v), four lanes at a time (acc starts as zero: locals do)
    fw.whileBelow(x, vecEnd, [
      ...fw.get(x), ...V_LOAD, ...fw.set(v),
      ...fw.get(acc), ...fw.get(v), ...fw.get(v), ...V_SUB, ...V_OR, ...fw.set(acc),
      ...fw.bump(x, 16),
    ]),
    // the rest one at a time: bits |= bits(s - s)
    fw.get(acc), V_ANY, fw.set(bits),
    fw.whileBelow(x, end, [
      ...fw.get(x), ...LOAD, ...fw.set(s),
      ...fw.get(bits), ...fw.get(s), ...fw.get(s), F.sub, I32_FROM_F32_BITS, I32_OR, ...fw.set(bits),
      ...fw.bump(x, 4),
    ]),
    fw.get(out), fw.get(bits), I32_STORE,
  );
  return fw.build();
}

/**
 * The functions of this module: `sumSquares` and `nonFiniteBits`.
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
 * heap.set([1, NaN, 3, 4, 5], 0);
 * fns.nonFiniteBits(0, 64, 5);
 * console.log(new Int32Array(memory.buffer)[16] !== 0); // true
 * ```
 */
export function reduceFunctions(): WasmFunction[] {
  return [sumSquaresFunction(), nonFiniteBitsFunction()];
}
