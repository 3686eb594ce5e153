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
 * `rowSum` and `rowMax` reduce each row of a matrix in the order of tfjs-wasm's `Sum` and `Max`
 * over the innermost axis, four rows at once (see `rowReduceFunction`).
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

const V_SPLAT = [SIMD, 0x13], V_STORE = [SIMD, 0x0b, 0x00, 0x00], V_ADD = [SIMD, 0xe4, 0x01];
const V_GT = [SIMD, 0x44], V_NE = [SIMD, 0x42], V_SELECT = [SIMD, 0x52];
const V_ZERO = [SIMD, 0x0c, ...Array(16).fill(0)];
const F32_GT = 0x5e, F32_NE = 0x5c, SELECT = 0x1b;
const replaceLane = (lane: number) => [SIMD, 0x20, lane];

/**
 * `rowSum(x, out, rows, cols)` and `rowMax(x, out, rows, cols)`: each row of a row-major
 * [rows, cols] float32 matrix reduced to one number, as tfjs-wasm's `Sum` and `Max` over the
 * innermost axis reduce it: one element after another, in order, `sum = sum + v` from +0, or
 * `if (v > max || v is NaN) max = v` from the row's first element (so a row with a NaN gives
 * its last NaN, bits and all, and of equal zeros the first is kept: the stock kernel's results,
 * probed on 1,170 random rows of zeros, NaNs and infinities and on NaN payloads). The per-row order is kept by giving each of
 * four rows its own SIMD lane: the four walk their rows side by side, which runs four of the
 * scalar loop's dependent additions or comparisons at once. Rows past a multiple of four take
 * the scalar loop.
 */
function rowReduceFunction(kind: "sum" | "max"): WasmFunction {
  const fw = new FunctionWriter(kind === "sum" ? "rowSum" : "rowMax", [I, I, I, I]);
  const [x, out, rows, cols] = [0, 1, 2, 3];
  const r = fw.local(I), rows4 = fw.local(I), rowBytes = fw.local(I), end = fw.local(I);
  const p = [0, 1, 2, 3].map(() => fw.local(I));
  const acc = fw.local(V128), v = fw.local(V128), s = fw.local(0x7d), w = fw.local(0x7d);
  /** The four rows' elements at p0..p3 as one vector. */
  const gather = [
    ...fw.get(p[0]), ...LOAD, ...V_SPLAT,
    ...[1, 2, 3].flatMap((k) => [...fw.get(p[k]), ...LOAD, ...replaceLane(k)]),
  ];
  const step = kind === "sum"
    ? [...fw.get(acc), ...gather, ...V_ADD, ...fw.set(acc)]
    // acc = (v > acc || v is NaN) ? v : acc, lane by lane
    : [
      ...gather, ...fw.set(v), ...fw.get(v), ...fw.get(acc),
      ...fw.get(v), ...fw.get(acc), ...V_GT, ...fw.get(v), ...fw.get(v), ...V_NE, ...V_OR,
      ...V_SELECT, ...fw.set(acc),
    ];
  const scalarStep = kind === "sum"
    ? [...fw.get(s), ...fw.get(p[0]), ...LOAD, F.add, ...fw.set(s)]
    : [
      ...fw.get(p[0]), ...LOAD, ...fw.set(w), ...fw.get(w), ...fw.get(s),
      ...fw.get(w), ...fw.get(s), F32_GT, ...fw.get(w), ...fw.get(w), F32_NE, I32_OR,
      SELECT, ...fw.set(s),
    ];
  fw.emit(
    fw.get(cols), fw.i32(2), 0x74, fw.set(rowBytes),
    fw.get(rows), fw.i32(-4), 0x71, fw.set(rows4),
    fw.i32(0), fw.set(r),
    // four rows at a time: p_k = x + (r + k) rowBytes; the walk ends where row r ends
    fw.whileBelow(r, rows4, [
      ...fw.get(x), ...fw.get(r), ...fw.get(rowBytes), 0x6c, 0x6a, ...fw.set(p[0]),
      ...[1, 2, 3].flatMap((k) => [...fw.get(p[k - 1]), ...fw.get(rowBytes), 0x6a, ...fw.set(p[k])]),
      ...fw.get(p[0]), ...fw.get(rowBytes), 0x6a, ...fw.set(end),
      ...(kind === "sum" ? V_ZERO : gather), ...fw.set(acc),
      ...fw.whileBelow(p[0], end, [...step, ...p.flatMap((q) => fw.bump(q, 4))]),
      ...fw.get(out), ...fw.get(r), ...fw.i32(2), 0x74, 0x6a, ...fw.get(acc), ...V_STORE,
      ...fw.bump(r, 4),
    ]),
    // the rest one row at a time
    fw.whileBelow(r, rows, [
      ...fw.get(x), ...fw.get(r), ...fw.get(rowBytes), 0x6c, 0x6a, ...fw.set(p[0]),
      ...fw.get(p[0]), ...fw.get(rowBytes), 0x6a, ...fw.set(end),
      ...(kind === "sum" ? fw.f32(0) : [...fw.get(p[0]), ...LOAD]), ...fw.set(s),
      ...fw.whileBelow(p[0], end, [...scalarStep, ...fw.bump(p[0], 4)]),
      ...fw.get(out), ...fw.get(r), ...fw.i32(2), 0x74, 0x6a, ...fw.get(s), ...STORE,
      ...fw.bump(r, 1),
    ]),
  );
  return fw.build();
}

/**
 * The functions of this module: `sumSquares`, `nonFiniteBits`, `rowSum` and `rowMax`.
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
  return [
    sumSquaresFunction(),
    nonFiniteBitsFunction(),
    rowReduceFunction("sum"),
    rowReduceFunction("max"),
  ];
}
