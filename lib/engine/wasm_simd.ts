/**
 * A small assembler for elementwise float32 programs as WebAssembly SIMD functions that work
 * in place on another module's memory (the tfjs wasm backend's heap): one pass over the data
 * computes what would otherwise take one tfjs kernel, and one trip through memory, per
 * operation.
 *
 * A program is a list of steps `[name, op, a, b]` (op `add`, `sub` or `mul`; operands are input
 * names, earlier steps or float32 constants) and the name of the step it stores. Every step
 * rounds to float32, as a tfjs kernel does, in the order written, so a program written in the
 * order a composition of tfjs ops computes gives the same bits (IEEE float32 `+ - *` are exact
 * to the bit in every engine; wasm has no fused multiply-add to change that). The compiled
 * function takes the byte offsets of its inputs and its output and the element count; it runs
 * four lanes at a time and the remainder one at a time with the same scalar operations.
 *
 * @module
 */

/** A step's operation, each rounding to float32 (`sqrt` reads only its first operand). */
export type SimdOp = "add" | "sub" | "mul" | "div" | "sqrt";

/** An operand: an input's or an earlier step's name, or a constant (rounded to float32). */
export type SimdOperand = string | number;

/** One step of a program: `name = a op b` (`name = sqrt(a)`). */
export type SimdStep = readonly [name: string, op: SimdOp, a: SimdOperand, b?: SimdOperand];

/** An elementwise program: named inputs, steps in order, and the steps (or inputs) stored. */
export interface SimdProgram {
  /** The exported function's name. */
  name: string;
  /** Input names, in the order of the function's pointer arguments. */
  inputs: readonly string[];
  /** Per-call float32 numbers (the same for every element), after the count. */
  scalars?: readonly string[];
  steps: readonly SimdStep[];
  /** What the function stores: one output, or several (their pointers in this order). */
  output: string | readonly string[];
}

/**
 * The compiled functions: `fn(...inputOffsets, ...outputOffsets, n, ...scalars)`, offsets in
 * bytes.
 */
export type SimdFunctions = Record<string, (...args: number[]) => void>;

const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

/**
 * Unsigned LEB128, as the wasm binary format encodes integers.
 *
 * @example
 * ```ts
 * import { uleb } from "./wasm_simd.ts";
 * uleb(300); // [0xac, 0x02]
 * ```
 */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

function str(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function f32Bytes(v: number): number[] {
  return [...new Uint8Array(new Float32Array([v]).buffer)];
}

const SIMD = 0xfd;
const simdOp: Record<SimdOp, number[]> = {
  add: [SIMD, ...uleb(0xe4)],
  sub: [SIMD, ...uleb(0xe5)],
  mul: [SIMD, ...uleb(0xe6)],
  div: [SIMD, ...uleb(0xe7)],
  sqrt: [SIMD, ...uleb(0xe3)],
};
const scalarOp: Record<SimdOp, number[]> = {
  add: [0x92],
  sub: [0x93],
  mul: [0x94],
  div: [0x95],
  sqrt: [0x91],
};

/** The outputs of a program, as a list. */
function outputsOf(p: SimdProgram): readonly string[] {
  return typeof p.output === "string" ? [p.output] : p.output;
}

/** The operands a step reads. */
function operands(op: SimdOp, a: SimdOperand, b: SimdOperand | undefined): SimdOperand[] {
  return op === "sqrt" ? [a] : [a, b!];
}

/** Checks a program's names and operands; throws naming the first problem. */
function check(p: SimdProgram): void {
  const scalars = p.scalars ?? [];
  const known = new Set([...p.inputs, ...scalars]);
  if (known.size !== p.inputs.length + scalars.length) {
    throw new Error(`SIMD program ${p.name}: repeated input or scalar name`);
  }
  for (const [name, op, a, b] of p.steps) {
    if (!(op in simdOp)) throw new Error(`SIMD program ${p.name}: unknown op "${op}" in ${name}`);
    if (op !== "sqrt" && b === undefined) {
      throw new Error(`SIMD program ${p.name}: step ${name} (${op}) needs two operands`);
    }
    if (scalars.includes(name)) {
      throw new Error(`SIMD program ${p.name}: step ${name} sets a scalar`);
    }
    for (const x of operands(op, a, b)) {
      if (typeof x === "string" && !known.has(x)) {
        throw new Error(`SIMD program ${p.name}: step ${name} reads "${x}" before it is set`);
      }
    }
    known.add(name);
  }
  for (const o of outputsOf(p)) {
    if (!known.has(o)) throw new Error(`SIMD program ${p.name}: no value "${o}"`);
  }
}

/** The code entry (size, locals, instructions) of one program's function. */
function body(p: SimdProgram): number[] {
  const outs = outputsOf(p), scalars = p.scalars ?? [];
  const k = p.inputs.length, o = outs.length, n = k + o, sc = n + 1;
  const i = sc + scalars.length, end = i + 1;
  const names = [...p.inputs, ...p.steps.map((s) => s[0])];
  const slot = new Map<string, number>();
  for (const name of names) if (!slot.has(name)) slot.set(name, slot.size);
  const vBase = end + 1, sBase = vBase + slot.size;
  const code: number[] = [];
  const emitLoop = (simd: boolean): void => {
    const local = (name: string) => (simd ? vBase : sBase) + slot.get(name)!;
    const width = simd ? 16 : 4;
    code.push(0x02, 0x40, 0x03, 0x40); // block, loop
    code.push(0x20, ...uleb(i), 0x20, ...uleb(end), 0x4f, 0x0d, 0x01); // i >= end: break
    p.inputs.forEach((name, j) => {
      code.push(0x20, ...uleb(j), 0x20, ...uleb(i), 0x6a); // input pointer + i
      code.push(...(simd ? [SIMD, 0x00] : [0x2a]), 0x00, 0x00); // load, align 1, offset 0
      code.push(0x21, ...uleb(local(name)));
    });
    for (const [name, op, a, b] of p.steps) {
      for (const x of operands(op, a, b)) {
        const sj = typeof x === "string" ? scalars.indexOf(x) : -1;
        if (sj >= 0) code.push(0x20, ...uleb(sc + sj), ...(simd ? [SIMD, 0x13] : [])); // splat
        else if (typeof x === "string") code.push(0x20, ...uleb(local(x)));
        else if (simd) code.push(SIMD, 0x0c, ...[0, 1, 2, 3].flatMap(() => f32Bytes(x)));
        else code.push(0x43, ...f32Bytes(x));
      }
      code.push(...(simd ? simdOp[op] : scalarOp[op]), 0x21, ...uleb(local(name)));
    }
    outs.forEach((name, j) => {
      code.push(0x20, ...uleb(k + j), 0x20, ...uleb(i), 0x6a, 0x20, ...uleb(local(name)));
      code.push(...(simd ? [SIMD, 0x0b] : [0x38]), 0x00, 0x00); // store
    });
    code.push(0x20, ...uleb(i), 0x41, ...sleb(width), 0x6a, 0x21, ...uleb(i)); // i += width
    code.push(0x0c, 0x00, 0x0b, 0x0b); // br loop, end loop, end block
  };
  // end = (n & ~3) * 4: the bytes the four-lane loop covers; then the rest one at a time.
  code.push(0x20, ...uleb(n), 0x41, ...sleb(-4), 0x71, 0x41, 0x02, 0x74, 0x21, ...uleb(end));
  code.push(0x41, 0x00, 0x21, ...uleb(i));
  emitLoop(true);
  code.push(0x20, ...uleb(n), 0x41, 0x02, 0x74, 0x21, ...uleb(end));
  emitLoop(false);
  code.push(0x0b);
  const locals = [...uleb(3), 2, I32, ...uleb(slot.size), V128, ...uleb(slot.size), F32];
  const fn = [...locals, ...code];
  return [...uleb(fn.length), ...fn];
}

/** A function of a module: its parameter types and its results (none by default). */
export interface WasmFunction {
  name: string;
  /** Parameter value types ({@link WASM_I32}, {@link WASM_F32}, {@link WASM_F64}). */
  params: number[];
  /** Result value types. @default [] */
  results?: number[];
  /** The code entry: size, locals, instructions, end. */
  body: number[];
}

/** The i32 value type. */
export const WASM_I32 = I32;
/** The f32 value type. */
export const WASM_F32 = F32;
/** The f64 value type. */
export const WASM_F64 = 0x7c;
/** The v128 value type. */
export const WASM_V128 = V128;

/**
 * Writes one function's code with scalar float32 arithmetic: parameters and locals by index,
 * loops over byte offsets, loads and stores at `base + offset` (for kernels whose reductions
 * must run in a fixed order, which the four-lane programs cannot express).
 */
export class FunctionWriter {
  readonly code: number[] = [];
  readonly #params: number[];
  readonly #locals: number[] = [];

  readonly #results: number[];

  constructor(readonly name: string, params: number[], results: number[] = []) {
    this.#params = params;
    this.#results = results;
  }

  /** A new local of type `type`; returns its index. */
  local(type: number): number {
    this.#locals.push(type);
    return this.#params.length + this.#locals.length - 1;
  }

  /** Appends instructions (numbers are bytes; nested arrays are flattened). */
  emit(...parts: (number | number[])[]): this {
    for (const x of parts) Array.isArray(x) ? this.code.push(...x) : this.code.push(x);
    return this;
  }

  get(l: number): number[] {
    return [0x20, ...uleb(l)];
  }

  set(l: number): number[] {
    return [0x21, ...uleb(l)];
  }

  i32(n: number): number[] {
    return [0x41, ...sleb(n)];
  }

  f32(v: number): number[] {
    return [0x43, ...f32Bytes(v)];
  }

  /** f32 at byte `base + off` (two i32 locals). */
  load(base: number, off: number): number[] {
    return [...this.get(base), ...this.get(off), 0x6a, 0x2a, 0x00, 0x00];
  }

  /** Stores the f32 that `value` leaves on the stack at byte `base + off`. */
  store(base: number, off: number, value: number[]): number[] {
    return [...this.get(base), ...this.get(off), 0x6a, ...value, 0x38, 0x00, 0x00];
  }

  /** `l += n` for an i32 local. */
  bump(l: number, n: number | number[]): number[] {
    return [...this.get(l), ...(typeof n === "number" ? this.i32(n) : n), 0x6a, ...this.set(l)];
  }

  /** while (a < b, unsigned) { body }, for i32 locals a and b. */
  whileBelow(a: number, b: number, body: number[]): number[] {
    // deno-fmt-ignore
    return [
      0x02, 0x40, 0x03, 0x40, ...this.get(a), ...this.get(b), 0x4f, 0x0d, 0x01, ...body,
      0x0c, 0x00, 0x0b, 0x0b,
    ];
  }

  /** The finished function. */
  build(): WasmFunction {
    const groups: number[] = [];
    for (const t of this.#locals) groups.push(1, t);
    const fn = [...uleb(this.#locals.length), ...groups, ...this.code, 0x0b];
    return {
      name: this.name,
      params: this.#params,
      results: this.#results,
      body: [...uleb(fn.length), ...fn],
    };
  }
}

/** f32 operations: `F32_OP.add` etc. (each rounds to float32). */
export const F32_OP = {
  add: 0x92,
  sub: 0x93,
  mul: 0x94,
  div: 0x95,
  sqrt: 0x91,
  neg: 0x8c,
  fromU32: 0xb3,
} as const;

function programFunction(p: SimdProgram): WasmFunction {
  check(p);
  const ptrs = p.inputs.length + outputsOf(p).length + 1;
  return {
    name: p.name,
    params: [...Array(ptrs).fill(I32), ...(p.scalars ?? []).map(() => F32)],
    body: body(p),
  };
}

/**
 * A function `(x, v, rows, cols)` that walks the rows of a row-major [rows, cols] float32 matrix
 * at x and adds each row and the vector v elementwise (four columns at a time, the remainder one
 * at a time), one float32 addition per element:
 * - `columnSum(x, out, rows, cols)`: into v, which starts at +0: out[c] = x[0, c] + x[1, c] + ...
 *   + x[rows - 1, c], the rows added in order: the order of a sequential reduction over the rows,
 *   read in one pass down the matrix instead of after a transpose;
 * - `addRows(x, bias, rows, cols)`: into the row, in place: x[r, c] = x[r, c] + bias[c], the
 *   additions of a broadcast `tf.add(x, bias)` without a kernel dispatch or a new buffer.
 */
function rowAddFunction(name: "columnSum" | "addRows"): WasmFunction {
  const fw = new FunctionWriter(name, [I32, I32, I32, I32]);
  const [x, v, rows, cols] = [0, 1, 2, 3];
  const [dst, src] = name === "addRows" ? [x, v] : [v, x];
  const c = fw.local(I32), rowBytes = fw.local(I32), vecBytes = fw.local(I32), end = fw.local(I32);
  // dst[c..] = dst[c..] + src[c..], four lanes or one, then c moves on
  // deno-fmt-ignore
  const addInto = (simd: boolean) => [
    ...fw.get(dst), ...fw.get(c), 0x6a, // address of dst[c]
    ...fw.get(dst), ...fw.get(c), 0x6a, ...(simd ? [SIMD, 0x00] : [0x2a]), 0x00, 0x00,
    ...fw.get(src), ...fw.get(c), 0x6a, ...(simd ? [SIMD, 0x00] : [0x2a]), 0x00, 0x00,
    ...(simd ? simdOp.add : scalarOp.add),
    ...(simd ? [SIMD, 0x0b] : [0x38]), 0x00, 0x00,
    ...fw.bump(c, simd ? 16 : 4),
  ];
  // columnSum's out = +0
  // deno-fmt-ignore
  const zero = name === "columnSum"
    ? [
      ...fw.i32(0), ...fw.set(c),
      ...fw.whileBelow(c, rowBytes, [...fw.store(v, c, fw.f32(0)), ...fw.bump(c, 4)]),
    ]
    : [];
  // deno-fmt-ignore
  fw.emit(
    fw.get(cols), fw.i32(2), 0x74, fw.set(rowBytes),
    fw.get(cols), fw.i32(-4), 0x71, fw.i32(2), 0x74, fw.set(vecBytes),
    zero,
    // end = x + rows * rowBytes; for each row: the addition; x += rowBytes
    fw.get(x), fw.get(rows), fw.get(rowBytes), 0x6c, 0x6a, fw.set(end),
    fw.whileBelow(x, end, [
      ...fw.i32(0), ...fw.set(c),
      ...fw.whileBelow(c, vecBytes, addInto(true)),
      ...fw.whileBelow(c, rowBytes, addInto(false)),
      ...fw.bump(x, fw.get(rowBytes)),
    ]),
  );
  return fw.build();
}

/**
 * The bytes of a module importing the memories `env.<name>` (memory index = position in
 * `memories`; a load or store names an index other than 0 with {@link memarg}) and exporting
 * `functions`.
 *
 * @example
 * ```ts
 * import { FunctionWriter, moduleBytes, WASM_I32 } from "./wasm_simd.ts";
 * const nop = new FunctionWriter("nop", [WASM_I32]).build();
 * WebAssembly.validate(moduleBytes([nop], ["heap", "host"])); // true
 * ```
 */
export function moduleBytes(
  functions: readonly WasmFunction[],
  memories: readonly string[] = ["memory"],
): Uint8Array<ArrayBuffer> {
  const types = functions.map((f) => {
    const results = f.results ?? [];
    return [0x60, ...uleb(f.params.length), ...f.params, ...uleb(results.length), ...results];
  });
  const imports = memories.flatMap((m) => [...str("env"), ...str(m), 0x02, 0x00, 0x00]);
  // deno-fmt-ignore
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [...uleb(types.length), ...types.flat()]),
    ...section(2, [...uleb(memories.length), ...imports]),
    ...section(3, [...uleb(functions.length), ...functions.flatMap((_, j) => uleb(j))]),
    ...section(7, [
      ...uleb(functions.length),
      ...functions.flatMap((f, j) => [...str(f.name), 0x00, ...uleb(j)]),
    ]),
    ...section(10, [...uleb(functions.length), ...functions.flatMap((f) => f.body)]),
  ];
  return new Uint8Array(bytes);
}

/**
 * A load's or store's memory argument: alignment (log2 bytes), memory index and offset 0. Index 0
 * is the plain form; another index sets the multi-memory flag (bit 6 of the alignment field).
 *
 * @example
 * ```ts
 * import { memarg } from "./wasm_simd.ts";
 * memarg(2, 1); // [0x42, 1, 0]: a 4-byte access in memory 1
 * ```
 */
export function memarg(align: number, memory: number): number[] {
  return memory === 0 ? [align, 0x00] : [align | 0x40, ...uleb(memory), 0x00];
}

/**
 * The bytes of a module importing `env.memory` and exporting one function per program, and
 * `columnSum(x, out, rows, cols)` and `addRows(x, bias, rows, cols)` (see {@link compileSimd});
 * throws naming a malformed program.
 */
export function simdModuleBytes(
  programs: readonly SimdProgram[],
  extra: readonly WasmFunction[] = [],
): Uint8Array<ArrayBuffer> {
  return moduleBytes([
    ...programs.map(programFunction),
    rowAddFunction("columnSum"),
    rowAddFunction("addRows"),
    ...extra,
  ]);
}

/**
 * Compiles `programs` into functions over `memory`, with `columnSum(x, out, rows, cols)` (the
 * column sums of a row-major [rows, cols] matrix, rows added in order from +0),
 * `addRows(x, bias, rows, cols)` (bias added to every row of x, in place) and any `extra`
 * functions written with {@link FunctionWriter}; undefined where
 * the engine has no WebAssembly SIMD (the caller then keeps its composed ops).
 *
 * @example
 * ```ts
 * import { compileSimd } from "./wasm_simd.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const fns = compileSimd(memory, [{
 *   name: "axpy", inputs: ["x", "y"], steps: [["ax", "mul", "x", 2], ["r", "add", "ax", "y"]],
 *   output: "r",
 * }])!;
 * const heap = new Float32Array(memory.buffer);
 * heap.set([1, 2, 3, 4, 5], 0); // x at byte 0
 * heap.set([1, 1, 1, 1, 1], 8); // y at byte 32
 * fns.axpy(0, 32, 64, 5); // out at byte 64
 * console.log(heap.slice(16, 21)); // [3, 5, 7, 9, 11]
 * fns.columnSum(0, 96, 2, 4); // [[1, 2, 3, 4], [5, 0, 0, 0]] -> [6, 2, 3, 4] at byte 96
 * console.log(heap.slice(24, 28)); // [6, 2, 3, 4]
 * fns.addRows(0, 96, 2, 4); // x += [6, 2, 3, 4] on each row, in place
 * console.log(heap.slice(0, 8)); // [7, 4, 6, 8, 11, 2, 3, 4]
 * ```
 */
export function compileSimd(
  memory: WebAssembly.Memory,
  programs: readonly SimdProgram[],
  extra: readonly WasmFunction[] = [],
): SimdFunctions | undefined {
  const bytes = simdModuleBytes(programs, extra);
  if (!WebAssembly.validate(bytes)) return undefined;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  return instance.exports as unknown as SimdFunctions;
}
