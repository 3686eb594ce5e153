/**
 * Reader and writer of the safetensors format (Hugging Face,
 * https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}}`,
 * then the data buffer, offsets relative to its start. Tensors are decoded to Float32Array
 * (F16/BF16/F64/integers converted); writing supports F32, F16 and BF16. Also reads the
 * sharded layout (`model.safetensors.index.json` + shards) of a Hugging Face model folder.
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "./atomic.ts";
import { exists } from "./exists.ts";
import { clipName, shown } from "./bounded.ts";

/** Element types of the safetensors format that this reader decodes. */
export type SafetensorsDType =
  | "F32"
  | "F16"
  | "BF16"
  | "F64"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/**
 * One tensor: its stored dtype and shape, and its values decoded to f32 (row-major; for
 * F32 tensors possibly a view of the file's bytes, see {@linkcode parseSafetensors}).
 */
export interface TensorRecord {
  /** The dtype stored in the file. */
  dtype: SafetensorsDType;
  /** Dimensions, outermost first. */
  shape: number[];
  /** Values decoded to f32, row-major. */
  data: Float32Array;
}

/** A parsed safetensors file (or the union of a sharded checkpoint's shards). */
export interface SafetensorsFile {
  /** The header's `__metadata__` strings (for shards, merged; the first shard wins a key). */
  metadata: Record<string, string>;
  /** Tensors by name. */
  tensors: Map<string, TensorRecord>;
}

/** A tensor to write: shape, f32 values (row-major) and the stored dtype (@default "F32"). */
export interface TensorToWrite {
  /** Dimensions, outermost first. */
  shape: number[];
  /** f32 values, row-major. */
  data: Float32Array;
  /** Dtype to store (values are converted on write). @default "F32" */
  dtype?: "F32" | "F16" | "BF16";
}

const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Converts IEEE half-precision bits (0..65535) to a number (exact). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

/**
 * Converts a number to IEEE half-precision bits, rounding to nearest even (after rounding
 * to f32 first). Overflow gives infinity, NaN stays a (quiet) NaN, the sign of zero is kept.
 */
export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16(scratchU32[0]);
}

/** Converts bfloat16 bits (the upper half of an f32) to a number (exact). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

function f32BitsToBf16(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts a number to bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16(scratchU32[0]);
}

let f16Table: Float32Array | undefined;
function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/**
 * Decodes `n` elements at byte offset `off` of `bytes` into a Float32Array. Assumes a
 * little-endian host (every platform Deno runs on; checked in parseSafetensors). Aligned
 * data is read in place: an aligned F32 tensor is returned as a view of `bytes` (no copy:
 * the first touch of fresh memory costs more than the decoding itself).
 */
function decode(bytes: Uint8Array, off: number, n: number, dtype: SafetensorsDType): Float32Array {
  const size = DTYPE_BYTES[dtype];
  const start = bytes.byteOffset + off;
  const raw = start % size === 0
    ? bytes.buffer as ArrayBuffer
    : bytes.buffer.slice(start, start + n * size) as ArrayBuffer;
  const at = start % size === 0 ? start : 0;
  if (dtype === "F32") return new Float32Array(raw, at, n);
  const out = new Float32Array(n);
  switch (dtype) {
    case "F16": {
      const src = new Uint16Array(raw, at, n);
      const table = f16Lookup();
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case "BF16": {
      const src = new Uint16Array(raw, at, n);
      const dst = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) dst[i] = src[i] << 16;
      return out;
    }
    case "I64": {
      const lo = new Uint32Array(raw, at, 2 * n);
      const hi = new Int32Array(raw, at, 2 * n);
      for (let i = 0; i < n; i++) out[i] = hi[2 * i + 1] * 4294967296 + lo[2 * i];
      return out;
    }
    case "F64":
      out.set(new Float64Array(raw, at, n));
      return out;
    case "I32":
      out.set(new Int32Array(raw, at, n));
      return out;
    case "I16":
      out.set(new Int16Array(raw, at, n));
      return out;
    case "I8":
      out.set(new Int8Array(raw, at, n));
      return out;
    default: // U8, BOOL
      out.set(new Uint8Array(raw, at, n));
      return out;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

const span = (e: Entry): string => `[${e.begin}, ${e.end}]`;

/** Validates one header entry against the data buffer length `bufLen`. */
function parseEntry(
  name: string,
  info: unknown,
  bufLen: number,
  fail: (what: string) => never,
): Entry {
  const t = `tensor '${clipName(name, 80)}'`;
  if (!isObject(info)) return fail(`entry for ${t} is not an object`);
  const { dtype, shape, data_offsets: offs } = info;
  if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
    const known = Object.keys(DTYPE_BYTES).join(", ");
    return fail(`${t} has unknown dtype ${shown(dtype, 40)} (supported: ${known})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    const got = shown(shape, 60);
    return fail(`${t} has shape ${got}; expected an array of non-negative integers`);
  }
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount)) {
    const got = shown(offs, 60);
    return fail(`${t} has data_offsets ${got}; expected [begin, end], non-negative integers`);
  }
  const [begin, end] = offs;
  if (begin > end) fail(`${t} has data_offsets begin ${begin} > end ${end}`);
  if (end > bufLen) {
    fail(`${t} has data_offsets [${begin}, ${end}] out of range of the ${bufLen}-byte data buffer`);
  }
  const dt = dtype as SafetensorsDType;
  const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dt];
  if (end - begin !== expected) {
    fail(
      `${t} (${dt}, shape [${
        clipName(String(shape), 60)
      }]) needs ${expected} bytes; data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype: dt, shape, begin, end };
}

/**
 * Parses the bytes of a safetensors file. `source` (the path) names the file in errors.
 * Throws on a short file, a bad header, an unknown dtype, a bad shape, offsets out of range,
 * overlapping or reversed, or a byte count that does not match the shape. F32 tensors whose
 * data is 4-byte aligned in `bytes` (always, for files with the standard 8-byte-padded
 * header) are views of `bytes`, not copies: do not modify `bytes` while they are in use.
 */
export function parseSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  const fail = (what: string): never => {
    throw new Error(`Cannot read safetensors file ${source}: ${what}`);
  };
  if (!LITTLE_ENDIAN) fail("big-endian hosts are not supported");
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > bytes.length - 8) {
    fail(`header length ${headerLen} runs past the end of the file (${bytes.length} bytes)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)),
    );
  } catch (err) {
    fail(`header is not valid UTF-8 JSON (${clipName((err as Error).message, 160)})`);
  }
  if (!isObject(header)) fail("header is not a JSON object");
  const head = header as Record<string, unknown>;
  const base = 8 + headerLen;
  const metadata: Record<string, string> = {};
  const meta = head["__metadata__"];
  if (meta !== undefined) {
    if (!isObject(meta)) fail("__metadata__ is not an object of strings");
    for (const [k, v] of Object.entries(meta as Record<string, unknown>)) {
      if (typeof v !== "string") fail(`__metadata__ field '${clipName(k, 80)}' is not a string`);
      metadata[k] = v as string;
    }
  }
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(head)) {
    if (name !== "__metadata__") entries.push(parseEntry(name, info, bytes.length - base, fail));
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1], cur = sorted[i];
    if (cur.begin < prev.end) {
      const [a, b] = [clipName(cur.name, 80), clipName(prev.name, 80)];
      fail(`tensor '${a}' ${span(cur)} overlaps tensor '${b}' ${span(prev)}`);
    }
  }
  const tensors = new Map<string, TensorRecord>();
  for (const e of entries) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: decode(bytes, base + e.begin, n, e.dtype),
    });
  }
  return { metadata, tensors };
}

/** Reads and parses one safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw new Error(`Cannot read safetensors file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseSafetensors(bytes, path);
}

/** Reads model.safetensors, or every shard listed by model.safetensors.index.json (weight_map), from a HF model folder. */
export async function readModelWeights(dir: string): Promise<SafetensorsFile> {
  const indexPath = join(dir, "model.safetensors.index.json");
  if (!(await exists(indexPath))) {
    const single = join(dir, "model.safetensors");
    if (await exists(single)) return readSafetensors(single);
    throw new Error(
      `Cannot load weights: ${dir} has neither model.safetensors nor model.safetensors.index.json ` +
        `(only safetensors weights are read; convert a pytorch_model.bin with save_pretrained(safe_serialization=True))`,
    );
  }
  let index: unknown;
  try {
    index = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (err) {
    throw new Error(`Cannot read ${indexPath}: ${(err as Error).message}`, { cause: err });
  }
  const weightMap = isObject(index) ? index["weight_map"] : undefined;
  if (!isObject(weightMap) || !Object.values(weightMap).every((v) => typeof v === "string")) {
    throw new Error(
      `Cannot read ${indexPath}: field 'weight_map' must be an object {tensor name: shard file}`,
    );
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
    // A shard is a file of this folder: no path (an index must not read ../../anything).
    if (!/^[\w.-]+\.safetensors$/.test(shard) || shard.startsWith(".")) {
      throw new Error(
        `Cannot read ${indexPath}: weight_map['${clipName(name, 80)}'] is ${shown(shard, 80)}; ` +
          "expected a file name in the same folder ending in .safetensors",
      );
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  for (const shard of byShard.keys()) {
    if (!(await exists(join(dir, shard)))) {
      throw new Error(
        `Cannot load weights: ${indexPath} lists shard ${shard}, which is missing from ${dir}`,
      );
    }
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorRecord>();
  const owner = new Map<string, string>();
  for (const [shard, names] of byShard) {
    const path = join(dir, shard);
    const file = await readSafetensors(path);
    for (const name of names) {
      if (!file.tensors.has(name)) {
        throw new Error(
          `Cannot load weights: ${indexPath} maps tensor '${
            clipName(name, 80)
          }' to ${shard}, but ${path} lacks it`,
        );
      }
    }
    for (const [name, t] of file.tensors) {
      if (owner.has(name)) {
        throw new Error(
          `Cannot load weights: tensor '${clipName(name, 80)}' appears in both ${
            owner.get(name)
          } and ${shard} in ${dir}`,
        );
      }
      owner.set(name, shard);
      tensors.set(name, t);
    }
    for (const [k, v] of Object.entries(file.metadata)) metadata[k] ??= v;
  }
  return { metadata, tensors };
}

/**
 * Throws naming the first of `names` that `file` lacks, e.g. "model.safetensors in DIR lacks
 * tensor 'h.3.attn.c_attn.weight' required by config.json (n_layer=4)". `source` names the
 * file, `hint` (optional) says what requires the tensor.
 */
export function requireTensors(
  file: SafetensorsFile,
  names: string[],
  source: string,
  hint?: string,
): void {
  for (const name of names) {
    if (file.tensors.has(name)) continue;
    const some = [...file.tensors.keys()].slice(0, 3).map((n) => `'${n}'`).join(", ");
    throw new Error(
      `${source} lacks tensor '${name}'${hint ? ` required by ${hint}` : ""}; ` +
        `it holds ${file.tensors.size} tensors${some ? `, such as ${some}` : ""}`,
    );
  }
}

/**
 * Serialises tensors to safetensors bytes: names sorted, data laid out in that order,
 * header padded with spaces so the data starts at a multiple of 8. dtype @default "F32".
 */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header["__metadata__"] = metadata;
  let offset = 0;
  for (const name of names) {
    const { shape, data, dtype = "F32" } = tensors[name];
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw new Error(
        `Cannot write tensor '${name}': shape ${
          JSON.stringify(shape)
        } is not an array of non-negative integers`,
      );
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new Error(
        `Cannot write tensor '${name}': shape [${shape}] holds ${count} values but data has ${data.length}`,
      );
    }
    const size = count * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let headerLen = enc.encode(json).length;
  json += " ".repeat((8 - ((8 + headerLen) % 8)) % 8);
  const headerBytes = enc.encode(json);
  headerLen = headerBytes.length;
  const out = new Uint8Array(8 + headerLen + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLen), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerLen;
  for (const name of names) {
    const { data, dtype = "F32" } = tensors[name];
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    if (dtype === "F32" && LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    } else if (dtype === "F32") {
      for (let i = 0; i < bits.length; i++) view.setUint32(pos + 4 * i, bits[i], true);
    } else {
      const conv = dtype === "F16" ? f32BitsToF16 : f32BitsToBf16;
      for (let i = 0; i < bits.length; i++) view.setUint16(pos + 2 * i, conv(bits[i]), true);
    }
    pos += data.length * DTYPE_BYTES[dtype];
  }
  return out;
}

/** Serialises tensors (see {@linkcode serializeSafetensors}) and writes them to `path` atomically. */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
