/**
 * bfloat16 -> float32 conversion of weight tiles, for matrices stored as bf16 outside the
 * wasm heap (see `external_matrix.ts`) and multiplied by OpenBLAS `sgemm`, which reads f32.
 *
 * bf16 is the upper half of an f32, so the conversion is `bits << 16`. A JS loop does it at
 * ~0.9 G elements/s on this machine; a 60-byte WebAssembly SIMD function (hand-encoded below:
 * `i32x4.extend_{low,high}_i16x8_u` then `i32x4.shl 16`, 8 elements per iteration) does it at
 * ~7.4 G elements/s on cache-resident data. That function can only read its own linear
 * memory, so a tile is first copied (`TypedArray.set`, a memcpy) from host memory into a
 * staging area of the converter's memory, then converted into a scratch area beside it; the
 * caller hands OpenBLAS a pointer into that scratch. Measured over 512 MB of bf16 in DRAM:
 * copy + convert 3.3 G elements/s on one core (the copy is the bound).
 *
 * The converter's memory is small (a few tiles) and separate from the tfjs heap. Where
 * WebAssembly SIMD is missing the same API runs a JS loop.
 *
 * @module
 */

import { uleb } from "./wasm_simd.ts";

/**
 * The module: imports memory `e.m`, exports `cvt(src, dst, n)`, which writes
 * `ceil(n / 8) * 8` f32 values at byte `dst` from the bf16 values at byte `src`.
 */
function converterModule(): Uint8Array<ArrayBuffer> {
  const simd = (op: number) => [0xfd, ...uleb(op)];
  const [SRC, DST, N, END, V] = [0, 1, 2, 3, 4];
  const LOAD = 0x00, STORE = 0x0b, EXT_LO = 0xa9, EXT_HI = 0xaa, SHL = 0xab;
  const code = [
    ...[0x20, SRC, 0x20, N, 0x41, 1, 0x74, 0x6a, 0x21, END], // end = src + 2n
    ...[0x02, 0x40, 0x20, SRC, 0x20, END, 0x4f, 0x0d, 0], // block; if src >= end: break
    ...[0x03, 0x40], // loop
    ...[0x20, SRC, ...simd(LOAD), 4, 0, 0x21, V], // v = 8 bf16 values
    ...[0x20, DST, 0x20, V, ...simd(EXT_LO), 0x41, 16, ...simd(SHL), ...simd(STORE), 4, 0],
    ...[0x20, DST, 0x20, V, ...simd(EXT_HI), 0x41, 16, ...simd(SHL), ...simd(STORE), 4, 16],
    ...[0x20, DST, 0x41, 32, 0x6a, 0x21, DST], // dst += 32
    ...[0x20, SRC, 0x41, 16, 0x6a, 0x22, SRC, 0x20, END, 0x49, 0x0d, 0], // src += 16; loop
    ...[0x0b, 0x0b, 0x0b], // end loop, block, function
  ];
  const func = [2, 1, 0x7f, 1, 0x7b, ...code]; // locals: 1 i32 (end), 1 v128
  const section = (id: number, bytes: number[]) => [id, ...uleb(bytes.length), ...bytes];
  const name = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 0]), // type (i32, i32, i32) -> ()
    ...section(2, [1, ...name("e"), ...name("m"), 2, 0, 1]), // import memory, min 1 page
    ...section(3, [1, 0]),
    ...section(7, [1, ...name("cvt"), 0, 0]),
    ...section(10, [1, ...uleb(func.length), ...func]),
  ]);
}

const PAGE = 65536;

interface Simd {
  memory: WebAssembly.Memory;
  cvt: (src: number, dst: number, n: number) => void;
}

let simd: Simd | undefined | null; // null: unavailable
let jsScratch = new Float32Array(0);

function loadSimd(): Simd | null {
  if (simd !== undefined) return simd;
  try {
    const bytes = converterModule();
    if (!WebAssembly.validate(bytes)) return (simd = null);
    const memory = new WebAssembly.Memory({ initial: 1 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: { m: memory } });
    simd = { memory, cvt: inst.exports.cvt as Simd["cvt"] };
  } catch (_e) {
    simd = null; // no SIMD support in this runtime: the JS loop below does the work
  }
  return simd;
}

/** True when the WebAssembly SIMD converter is in use (false: a JS loop). */
export function bf16SimdAvailable(): boolean {
  return loadSimd() !== null;
}

/**
 * Converts `count` bf16 values of `src` starting at element `start` into an f32 scratch
 * buffer and returns a view of it: valid until the next call (the scratch is reused), never
 * to be kept. The view's buffer is the converter's own memory (not the tfjs heap), so it may
 * be handed to native code with `Deno.UnsafePointer.of`.
 *
 * @example
 * ```ts
 * import { bf16TileToF32 } from "./bf16_convert.ts";
 * const bits = new Uint16Array([0x3f80, 0xc000]); // 1, -2
 * console.log(Array.from(bf16TileToF32(bits, 0, 2))); // [1, -2]
 * ```
 */
export function bf16TileToF32(src: Uint16Array, start: number, count: number): Float32Array {
  if (start < 0 || count < 0 || start + count > src.length) {
    throw new RangeError(
      `Cannot convert bf16 elements [${start}, ${start + count}): the array holds ${src.length}`,
    );
  }
  const s = loadSimd();
  if (s === null) {
    if (jsScratch.length < count) jsScratch = new Float32Array(count);
    const out = new Uint32Array(jsScratch.buffer, 0, count);
    for (let i = 0; i < count; i++) out[i] = src[start + i] << 16;
    return jsScratch.subarray(0, count);
  }
  const padded = Math.ceil(count / 8) * 8;
  const scratchAt = padded * 2; // staging holds `padded` bf16 values, 16-byte aligned
  const need = scratchAt + padded * 4;
  if (s.memory.buffer.byteLength < need) {
    s.memory.grow(Math.ceil((need - s.memory.buffer.byteLength) / PAGE));
  }
  new Uint16Array(s.memory.buffer, 0, count).set(src.subarray(start, start + count));
  s.cvt(0, scratchAt, count);
  return new Float32Array(s.memory.buffer, scratchAt, count);
}

/**
 * Converts a whole bf16 array to a new Float32Array (exact: every bf16 value is an f32).
 *
 * @example
 * ```ts
 * import { bf16ToF32Array } from "./bf16_convert.ts";
 * console.log(Array.from(bf16ToF32Array(new Uint16Array([0x4040])))); // [3]
 * ```
 */
export function bf16ToF32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const tile = 1 << 20;
  for (let i = 0; i < src.length; i += tile) {
    const n = Math.min(tile, src.length - i);
    out.set(bf16TileToF32(src, i, n), i);
  }
  return out;
}

/**
 * Rounds f32 values to bf16 bits (round to nearest even; NaN stays a quiet NaN), as
 * checkpoints are written and as `cblas_sbgemm` would round activations.
 *
 * @example
 * ```ts
 * import { f32ToBf16Array } from "./bf16_convert.ts";
 * console.log(f32ToBf16Array(new Float32Array([1, -2]))); // Uint16Array [0x3f80, 0xc000]
 * ```
 */
export function f32ToBf16Array(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    out[i] = (b & 0x7fffffff) > 0x7f800000
      ? ((b >>> 16) | 0x40) & 0xffff
      : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}
