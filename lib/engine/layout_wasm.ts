// deno-fmt-ignore-file -- instruction bytes laid out by meaning, one operation per group
/**
 * Strided copies as a WebAssembly SIMD function (written with lib/engine/wasm_simd.ts's
 * {@link FunctionWriter}) over the tfjs heap, for the kernels of lib/engine/layout_kernels.ts:
 * `copy3(src, dst, n0, s0, d0, n1, s1, d1, n2, s2, d2, bytes)` copies, for every (i0, i1, i2)
 * below (n0, n1, n2), `bytes` bytes from `src + i0 s0 + i1 s1 + i2 s2` to
 * `dst + i0 d0 + i1 d1 + i2 d2` (16 bytes at a time, then 4; strides in bytes): the bits move,
 * nothing is computed (Concat, Transpose with the last axis kept, Slice, heads). `copy3z` takes
 * the same arguments and stores each float32 plus +0 (the same number, with -0 made +0), as a
 * gradient that tfjs sums with zero pads has it.
 *
 * @module
 */

import { FunctionWriter, WASM_I32, type WasmFunction } from "./wasm_simd.ts";

const I = WASM_I32;
const SIMD = 0xfd;
const V_LOAD = [SIMD, 0x00, 0x00, 0x00], V_STORE = [SIMD, 0x0b, 0x00, 0x00];
const I32_LOAD = [0x28, 0x00, 0x00], I32_STORE = [0x36, 0x00, 0x00];
const F32_LOAD = [0x2a, 0x00, 0x00], F32_STORE = [0x38, 0x00, 0x00];
// + 0 on four lanes (v128.const 0, f32x4.add) and on one (f32.const 0, f32.add)
const V_PLUS_ZERO = [SIMD, 0x0c, ...new Array(16).fill(0), SIMD, 0xe4, 0x01];
const F32_PLUS_ZERO = [0x43, 0, 0, 0, 0, 0x92];

/** for (i = 0; i < n; i++) { body } with an i32 counter `i` and count `n`. */
function times(fw: FunctionWriter, i: number, n: number, body: number[]): number[] {
  return [...fw.i32(0), ...fw.set(i), ...fw.whileBelow(i, n, [...body, ...fw.bump(i, 1)])];
}

/** `copy3`, or with `plusZero` `copy3z`: each float32 stored as itself + 0 (-0 becomes +0). */
function copyFunction(plusZero: boolean): WasmFunction {
  const fw = new FunctionWriter(plusZero ? "copy3z" : "copy3", [I, I, I, I, I, I, I, I, I, I, I, I]);
  const [src, dst, n0, s0, d0, n1, s1, d1, n2, s2, d2, bytes] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const [i0, i1, i2, o, vec] = [I, I, I, I, I].map((t) => fw.local(t));
  const [p1, q1, p, q] = [I, I, I, I].map((t) => fw.local(t));
  // dst + o, then the value at src + o, stored there
  const at = (l: number) => [...fw.get(l), ...fw.get(o), 0x6a];
  const block = [
    ...fw.i32(0), ...fw.set(o),
    ...fw.whileBelow(o, vec, [...at(q), ...at(p), ...V_LOAD, ...(plusZero ? V_PLUS_ZERO : []), ...V_STORE, ...fw.bump(o, 16)]),
    ...fw.whileBelow(o, bytes, [
      ...at(q), ...at(p), ...(plusZero ? [...F32_LOAD, ...F32_PLUS_ZERO, ...F32_STORE] : [...I32_LOAD, ...I32_STORE]),
      ...fw.bump(o, 4),
    ]),
  ];
  fw.emit(
    fw.get(bytes), fw.i32(-16), 0x71, fw.set(vec),
    times(fw, i0, n0, [
      ...fw.get(src), ...fw.set(p1), ...fw.get(dst), ...fw.set(q1),
      ...times(fw, i1, n1, [
        ...fw.get(p1), ...fw.set(p), ...fw.get(q1), ...fw.set(q),
        ...times(fw, i2, n2, [...block, ...fw.bump(p, fw.get(s2)), ...fw.bump(q, fw.get(d2))]),
        ...fw.bump(p1, fw.get(s1)), ...fw.bump(q1, fw.get(d1)),
      ]),
      ...fw.bump(src, fw.get(s0)), ...fw.bump(dst, fw.get(d0)),
    ]),
  );
  return fw.build();
}

/**
 * The functions of this module: `copy3` and `copy3z` (the same loops; each float32 + 0).
 *
 * @example
 * ```ts
 * import { compileSimd } from "./wasm_simd.ts";
 * import { layoutFunctions } from "./layout_wasm.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const fns = compileSimd(memory, [], layoutFunctions())!;
 * const heap = new Float32Array(memory.buffer);
 * heap.set([1, 2, 3, 4, 5, 6], 0); // x [2, 3] at byte 0
 * fns.copy3(0, 64, 1, 0, 0, 3, 4, 8, 2, 12, 4, 4); // its transpose [3, 2] at byte 64
 * console.log(heap.slice(16, 22)); // [1, 4, 2, 5, 3, 6]
 * ```
 */
export function layoutFunctions(): WasmFunction[] {
  return [copyFunction(false), copyFunction(true)];
}
