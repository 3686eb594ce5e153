// deno-fmt-ignore-file -- instruction bytes laid out by meaning, one operation per group
/**
 * The host-state passes of AdamW and gradient accumulation as WebAssembly functions over three
 * memories: the tfjs heap (memory 0, the weights and one micro-batch's gradients) and two host
 * memories (lib/engine/host_memory.ts: memory 1 the accumulated gradients, memory 2 the
 * moments). Each repeats, operation for operation, the float64 arithmetic of the JavaScript
 * loops in lib/optim/accumulate.ts and lib/optim/adamw.ts, two elements at a time (f64x2 lanes;
 * float64 `+ - * /` and `sqrt` are correctly rounded in every engine, and the float32 stores
 * round as a Float32Array store does), so their bits are the loops' bits:
 *
 * - `accumulate(dst, src, n, share, first)`: dst[j] = f32(share * src[j]) when `first`, else
 *   f32(dst[j] + share * src[j]) (`GradientAccumulator`'s host sums; dst in memory 1, src on
 *   the heap);
 * - `sumSquares(x, n, start)`: start + x_0 x_0 + x_1 x_1 + ... in float64, in order (one element
 *   at a time: the sum's order is the loop's), x in memory 1;
 * - `adamw(w, g, m, v, out, n, gs, b1, c1, b2, c2, keep, step, ib2, eps)`: AdamW's host update
 *   of one variable (w and out on the heap, g in memory 1, m and v in memory 2, updated in
 *   place), returning the finiteness flags the loop's sums give: bit 0 a non-finite new weight,
 *   bit 1 a non-finite first moment, bit 2 a non-finite second moment (OR of the bits of
 *   `x - x`, which is +0 exactly when x is finite).
 *
 * @module
 */

import { FunctionWriter, memarg, WASM_F64, WASM_I32, WASM_V128, type WasmFunction } from "./wasm_simd.ts";

const I = WASM_I32, D = WASM_F64, V = WASM_V128, SIMD = 0xfd;
const HEAP = 0, GRADS = 1, MOMENTS = 2;

const F64X2 = {
  add: [SIMD, 0xf0, 0x01], sub: [SIMD, 0xf1, 0x01], mul: [SIMD, 0xf2, 0x01],
  div: [SIMD, 0xf3, 0x01], sqrt: [SIMD, 0xef, 0x01], splat: [SIMD, 0x14],
  fromF32: [SIMD, 0x5f], // f64x2.promote_low_f32x4
  toF32: [SIMD, 0x5e], // f32x4.demote_f64x2_zero
};
const V_OR = [SIMD, 0x50], V_AND = [SIMD, 0x4e], V_ANY = [SIMD, 0x53];
/** The low lane of an f64x2 kept, the high one cleared (a tail of one element). */
const LOW_LANE = [SIMD, 0x0c, ...Array(8).fill(0xff), ...Array(8).fill(0)];

/** Loads two float32s (one, zero-filled, for a tail) from `memory` as the low lanes. */
function load(pair: boolean, memory: number): number[] {
  return pair ? [SIMD, 0x5d, ...memarg(3, memory)] : [SIMD, 0x5c, ...memarg(2, memory)];
}

/** Stores the low two float32 lanes (one for a tail) to `memory`. */
function store(pair: boolean, memory: number): number[] {
  return pair ? [SIMD, 0x5b, ...memarg(3, memory), 0] : [SIMD, 0x5a, ...memarg(2, memory), 0];
}

/**
 * `accumulate(dst, src, n, share, first)`: `a[j] = share * d[j]` or `a[j] += share * d[j]` of
 * lib/optim/accumulate.ts, a Float32Array `a` and a float64 `share`.
 */
function accumulateFunction(): WasmFunction {
  const fw = new FunctionWriter("accumulate", [I, I, I, D, I]);
  const [dst, src, n, share, first] = [0, 1, 2, 3, 4];
  const i = fw.local(I), end = fw.local(I), s = fw.local(V);
  const at = (base: number) => [...fw.get(base), ...fw.get(i), 0x6a];
  const step = (pair: boolean, start: boolean) => [
    ...at(dst),
    ...(start ? [] : [...at(dst), ...load(pair, GRADS), ...F64X2.fromF32]),
    ...fw.get(s), ...at(src), ...load(pair, HEAP), ...F64X2.fromF32, ...F64X2.mul,
    ...(start ? [] : F64X2.add),
    ...F64X2.toF32, ...store(pair, GRADS),
    ...fw.bump(i, pair ? 8 : 4),
  ];
  const loops = (start: boolean) => [
    ...fw.i32(0), ...fw.set(i),
    ...fw.get(n), ...fw.i32(-2), 0x71, ...fw.i32(2), 0x74, ...fw.set(end),
    ...fw.whileBelow(i, end, step(true, start)),
    ...fw.get(n), ...fw.i32(2), 0x74, ...fw.set(end),
    ...fw.whileBelow(i, end, step(false, start)),
  ];
  fw.emit(
    fw.get(share), F64X2.splat, fw.set(s),
    fw.get(first), 0x04, 0x40, loops(true), 0x05, loops(false), 0x0b,
  );
  return fw.build();
}

/** `sumSquares(x, n, start) -> f64`: `sq += a[j] * a[j]` over a Float32Array, in order. */
function sumSquaresFunction(): WasmFunction {
  const fw = new FunctionWriter("sumSquares", [I, I, D], [D]);
  const [x, n, acc] = [0, 1, 2];
  const end = fw.local(I), v = fw.local(D);
  fw.emit(
    fw.get(x), fw.get(n), fw.i32(2), 0x74, 0x6a, fw.set(end),
    fw.whileBelow(x, end, [
      ...fw.get(acc),
      ...fw.get(x), 0x2a, ...memarg(2, GRADS), 0xbb, 0x22, ...fw.set(v).slice(1), // tee v
      ...fw.get(v), 0xa2, 0xa0, ...fw.set(acc),
      ...fw.bump(x, 4),
    ]),
    fw.get(acc),
  );
  return fw.build();
}

/** `adamw(...) -> flags`: the loop of lib/optim/adamw.ts `updateHost`, two lanes at a time. */
function adamwFunction(): WasmFunction {
  const names = ["gs", "b1", "c1", "b2", "c2", "keep", "step", "ib2", "eps"] as const;
  const fw = new FunctionWriter("adamw", [I, I, I, I, I, I, ...names.map(() => D)], [I]);
  const [w, g, m, v, out, n] = [0, 1, 2, 3, 4, 5];
  const i = fw.local(I), end = fw.local(I);
  const k = Object.fromEntries(names.map((name, j) => [name, { param: 6 + j, lanes: fw.local(V) }]));
  const [gj, mj, vj, o, r] = [0, 1, 2, 3, 4].map(() => fw.local(V));
  const [fo, fm, fv] = [0, 1, 2].map(() => fw.local(V));
  const c = (name: typeof names[number]) => fw.get(k[name].lanes);
  const at = (base: number) => [...fw.get(base), ...fw.get(i), 0x6a];
  /** flag |= (x - x), the high lane masked off for a tail. */
  const flag = (f: number, x: number, pair: boolean) => [
    ...fw.get(f), ...fw.get(x), ...fw.get(x), ...F64X2.sub, ...(pair ? [] : [...LOW_LANE, ...V_AND]),
    ...V_OR, ...fw.set(f),
  ];
  const step = (pair: boolean) => [
    // gj = g[j] * gs
    ...at(g), ...load(pair, GRADS), ...F64X2.fromF32, ...c("gs"), ...F64X2.mul, ...fw.set(gj),
    // m[j] = mj = fround(beta1 * m[j] + c1 * gj)
    ...c("b1"), ...at(m), ...load(pair, MOMENTS), ...F64X2.fromF32, ...F64X2.mul,
    ...c("c1"), ...fw.get(gj), ...F64X2.mul, ...F64X2.add, ...F64X2.toF32, ...fw.set(r),
    ...at(m), ...fw.get(r), ...store(pair, MOMENTS),
    ...fw.get(r), ...F64X2.fromF32, ...fw.set(mj),
    // v[j] = vj = fround(beta2 * v[j] + c2 * gj * gj)
    ...c("b2"), ...at(v), ...load(pair, MOMENTS), ...F64X2.fromF32, ...F64X2.mul,
    ...c("c2"), ...fw.get(gj), ...F64X2.mul, ...fw.get(gj), ...F64X2.mul, ...F64X2.add,
    ...F64X2.toF32, ...fw.set(r),
    ...at(v), ...fw.get(r), ...store(pair, MOMENTS),
    ...fw.get(r), ...F64X2.fromF32, ...fw.set(vj),
    // out[j] = w[j] * keep - (step * mj) / (sqrt(vj * ib2) + eps)
    ...at(w), ...load(pair, HEAP), ...F64X2.fromF32, ...c("keep"), ...F64X2.mul,
    ...c("step"), ...fw.get(mj), ...F64X2.mul,
    ...fw.get(vj), ...c("ib2"), ...F64X2.mul, ...F64X2.sqrt, ...c("eps"), ...F64X2.add,
    ...F64X2.div, ...F64X2.sub, ...F64X2.toF32, ...fw.set(r),
    ...at(out), ...fw.get(r), ...store(pair, HEAP),
    ...fw.get(r), ...F64X2.fromF32, ...fw.set(o),
    ...flag(fo, o, pair), ...flag(fm, mj, pair), ...flag(fv, vj, pair),
    ...fw.bump(i, pair ? 8 : 4),
  ];
  fw.emit(
    names.flatMap((name) => [...fw.get(k[name].param), ...F64X2.splat, ...fw.set(k[name].lanes)]),
    fw.i32(0), fw.set(i),
    fw.get(n), fw.i32(-2), 0x71, fw.i32(2), 0x74, fw.set(end),
    fw.whileBelow(i, end, step(true)),
    fw.get(n), fw.i32(2), 0x74, fw.set(end),
    fw.whileBelow(i, end, step(false)),
    // (any fo) | (any fm) << 1 | (any fv) << 2
    fw.get(fo), V_ANY,
    fw.get(fm), V_ANY, fw.i32(1), 0x74, 0x72,
    fw.get(fv), V_ANY, fw.i32(2), 0x74, 0x72,
  );
  return fw.build();
}

/** The three functions, for a module importing the memories heap, grads and moments, in order. */
export function hostStateFunctions(): WasmFunction[] {
  return [accumulateFunction(), sumSquaresFunction(), adamwFunction()];
}
