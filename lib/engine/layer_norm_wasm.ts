// deno-fmt-ignore-file -- instruction bytes laid out by meaning, one operation per group
/**
 * Layer norm over the last axis as WebAssembly functions (written with
 * lib/engine/wasm_simd.ts's {@link FunctionWriter}), one row at a time, with the float32
 * arithmetic of the composition lib/model/transformer.ts uses and of tfjs's gradients through
 * it, operation for operation and in the same order:
 *
 * forward (per row of d): `mean = (x_0 + ... + x_{d-1}) / d` (summed in order from +0),
 * `xc = x - mean`, `var = (xc_0 xc_0 + ...) / d`, `a = var + eps`, `r = 1 / sqrt(a)`,
 * `y = ((xc r) w) + b`. The backward follows tfjs's tape in reverse: `b` and `w` get the column
 * sums of dy and of `dy (xc r)`; `dn = dy w`; `r` gets `dr = sum(dn xc)`; then
 * `da = -(dr / (a^1.5 * 2))` (computed by tfjs's own `pow`, outside these functions); xc's
 * gradient is `(dn r + t) + t` with `t = (da / d) xc` (the two shares of `xc * xc`); x's is
 * `(pass + dxc) + (-(sum dxc)) / d`, where `pass` is the gradient x got from the residual stream
 * before the norm's own shares (the order tfjs accumulates them in).
 *
 * @module
 */

import { F32_OP as F, FunctionWriter, WASM_F32, WASM_I32, type WasmFunction } from "./wasm_simd.ts";

const I = WASM_I32;
const STORE = [0x38, 0x00, 0x00], LOAD = [0x2a, 0x00, 0x00];

/** `lnForward(x, w, b, y, xc, a, r, rows, d, eps)`: y and the saved xc, a and r. */
function forwardFunction(): WasmFunction {
  const fw = new FunctionWriter("lnForward", [I, I, I, I, I, I, I, I, I, WASM_F32]);
  const [x, w, b, y, xc, aOut, rOut, rows, d, eps] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const rowBytes = fw.local(I), end = fw.local(I), j = fw.local(I);
  const df = fw.local(WASM_F32), s = fw.local(WASM_F32), mean = fw.local(WASM_F32);
  const v = fw.local(WASM_F32), a = fw.local(WASM_F32), r = fw.local(WASM_F32);
  fw.emit(fw.get(d), fw.i32(2), 0x74, fw.set(rowBytes));
  fw.emit(fw.get(x), fw.get(rows), fw.get(rowBytes), 0x6c, 0x6a, fw.set(end));
  fw.emit(fw.get(d), F.fromU32, fw.set(df));
  fw.emit(fw.whileBelow(x, end, [
    ...fw.f32(0), ...fw.set(s), ...fw.i32(0), ...fw.set(j),
    ...fw.whileBelow(j, rowBytes, [
      ...fw.get(s), ...fw.load(x, j), F.add, ...fw.set(s), ...fw.bump(j, 4),
    ]),
    ...fw.get(s), ...fw.get(df), F.div, ...fw.set(mean),
    ...fw.f32(0), ...fw.set(s), ...fw.i32(0), ...fw.set(j),
    ...fw.whileBelow(j, rowBytes, [
      ...fw.load(x, j), ...fw.get(mean), F.sub, ...fw.set(v),
      ...fw.store(xc, j, fw.get(v)),
      ...fw.get(s), ...fw.get(v), ...fw.get(v), F.mul, F.add, ...fw.set(s),
      ...fw.bump(j, 4),
    ]),
    ...fw.get(s), ...fw.get(df), F.div, ...fw.get(eps), F.add, ...fw.set(a),
    ...fw.f32(1), ...fw.get(a), F.sqrt, F.div, ...fw.set(r),
    ...fw.get(aOut), ...fw.get(a), ...STORE,
    ...fw.get(rOut), ...fw.get(r), ...STORE,
    ...fw.i32(0), ...fw.set(j),
    ...fw.whileBelow(j, rowBytes, [
      ...fw.store(y, j, [
        ...fw.load(xc, j), ...fw.get(r), F.mul, ...fw.load(w, j), F.mul, ...fw.load(b, j), F.add,
      ]),
      ...fw.bump(j, 4),
    ]),
    ...fw.bump(x, fw.get(rowBytes)), ...fw.bump(xc, fw.get(rowBytes)),
    ...fw.bump(y, fw.get(rowBytes)), ...fw.bump(aOut, 4), ...fw.bump(rOut, 4),
  ]));
  return fw.build();
}

/** `lnGradParams(dy, w, xc, r, dw, db, dr, rows, d)`: the gradients of w and b, and dr per row. */
function gradParamsFunction(): WasmFunction {
  const fw = new FunctionWriter("lnGradParams", [I, I, I, I, I, I, I, I, I]);
  const [dy, w, xc, r, dw, db, dr, rows, d] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const rowBytes = fw.local(I), end = fw.local(I), j = fw.local(I);
  const rr = fw.local(WASM_F32), s = fw.local(WASM_F32);
  const dyj = fw.local(WASM_F32), xcj = fw.local(WASM_F32);
  fw.emit(fw.get(d), fw.i32(2), 0x74, fw.set(rowBytes));
  fw.emit(fw.i32(0), fw.set(j));
  fw.emit(fw.whileBelow(j, rowBytes, [
    ...fw.store(dw, j, fw.f32(0)), ...fw.store(db, j, fw.f32(0)), ...fw.bump(j, 4),
  ]));
  fw.emit(fw.get(dy), fw.get(rows), fw.get(rowBytes), 0x6c, 0x6a, fw.set(end));
  fw.emit(fw.whileBelow(dy, end, [
    ...fw.get(r), ...LOAD, ...fw.set(rr),
    ...fw.f32(0), ...fw.set(s), ...fw.i32(0), ...fw.set(j),
    ...fw.whileBelow(j, rowBytes, [
      ...fw.load(dy, j), ...fw.set(dyj), ...fw.load(xc, j), ...fw.set(xcj),
      ...fw.store(dw, j, [
        ...fw.load(dw, j), ...fw.get(dyj), ...fw.get(xcj), ...fw.get(rr), F.mul, F.mul, F.add,
      ]),
      ...fw.store(db, j, [...fw.load(db, j), ...fw.get(dyj), F.add]),
      ...fw.get(s), ...fw.get(dyj), ...fw.load(w, j), F.mul, ...fw.get(xcj), F.mul, F.add,
      ...fw.set(s),
      ...fw.bump(j, 4),
    ]),
    ...fw.get(dr), ...fw.get(s), ...STORE,
    ...fw.bump(dy, fw.get(rowBytes)), ...fw.bump(xc, fw.get(rowBytes)),
    ...fw.bump(r, 4), ...fw.bump(dr, 4),
  ]));
  return fw.build();
}

/**
 * `lnGradX(dy, w, xc, r, da, dx, rows, d)` or, with `pass`,
 * `lnGradXPass(dy, w, xc, r, da, pass, dx, rows, d)`: x's gradient.
 */
function gradXFunction(pass: boolean): WasmFunction {
  const params = pass ? [I, I, I, I, I, I, I, I, I] : [I, I, I, I, I, I, I, I];
  const fw = new FunctionWriter(pass ? "lnGradXPass" : "lnGradX", params);
  const [dy, w, xc, r, da] = [0, 1, 2, 3, 4];
  const ps = pass ? 5 : -1, dx = pass ? 6 : 5, rows = pass ? 7 : 6, d = pass ? 8 : 7;
  const rowBytes = fw.local(I), end = fw.local(I), j = fw.local(I);
  const df = fw.local(WASM_F32), rr = fw.local(WASM_F32), dsq = fw.local(WASM_F32);
  const s = fw.local(WASM_F32), g = fw.local(WASM_F32), t = fw.local(WASM_F32);
  const dm = fw.local(WASM_F32);
  fw.emit(fw.get(d), fw.i32(2), 0x74, fw.set(rowBytes));
  fw.emit(fw.get(d), F.fromU32, fw.set(df));
  fw.emit(fw.get(dy), fw.get(rows), fw.get(rowBytes), 0x6c, 0x6a, fw.set(end));
  fw.emit(fw.whileBelow(dy, end, [
    ...fw.get(r), ...LOAD, ...fw.set(rr),
    ...fw.get(da), ...LOAD, ...fw.get(df), F.div, ...fw.set(dsq),
    ...fw.f32(0), ...fw.set(s), ...fw.i32(0), ...fw.set(j),
    ...fw.whileBelow(j, rowBytes, [
      ...fw.load(xc, j), ...fw.get(dsq), F.mul, ...fw.set(t),
      ...fw.load(dy, j), ...fw.load(w, j), F.mul, ...fw.get(rr), F.mul,
      ...fw.get(t), F.add, ...fw.get(t), F.add, ...fw.set(g),
      ...fw.store(dx, j, fw.get(g)),
      ...fw.get(s), ...fw.get(g), F.add, ...fw.set(s),
      ...fw.bump(j, 4),
    ]),
    ...fw.get(s), F.neg, ...fw.get(df), F.div, ...fw.set(dm),
    ...fw.i32(0), ...fw.set(j),
    ...fw.whileBelow(j, rowBytes, [
      ...fw.store(dx, j, [
        ...(pass ? [...fw.load(ps, j), ...fw.load(dx, j), F.add] : fw.load(dx, j)),
        ...fw.get(dm), F.add,
      ]),
      ...fw.bump(j, 4),
    ]),
    ...fw.bump(dy, fw.get(rowBytes)), ...fw.bump(xc, fw.get(rowBytes)),
    ...fw.bump(dx, fw.get(rowBytes)), ...(pass ? fw.bump(ps, fw.get(rowBytes)) : []),
    ...fw.bump(r, 4), ...fw.bump(da, 4),
  ]));
  return fw.build();
}

/**
 * The layer-norm functions: `lnForward`, `lnGradParams`, `lnGradX`, `lnGradXPass` (see the
 * module doc), for {@link compileSimd}'s `extra`.
 *
 * @example
 * ```ts
 * import { compileSimd } from "./wasm_simd.ts";
 * import { layerNormFunctions } from "./layer_norm_wasm.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const fns = compileSimd(memory, [], layerNormFunctions())!;
 * const heap = new Float32Array(memory.buffer);
 * heap.set([1, 2, 3, 4], 0); // x: one row of 4
 * heap.set([1, 1, 1, 1], 4); // w
 * heap.set([0, 0, 0, 0], 8); // b
 * fns.lnForward(0, 16, 32, 48, 64, 80, 84, 1, 4, 1e-5); // y at byte 48
 * console.log(heap.slice(12, 16)); // about [-1.342, -0.447, 0.447, 1.342]
 * ```
 */
export function layerNormFunctions(): WasmFunction[] {
  return [forwardFunction(), gradParamsFunction(), gradXFunction(false), gradXFunction(true)];
}
