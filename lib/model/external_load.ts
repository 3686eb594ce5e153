/**
 * Streaming reader of safetensors checkpoints (Hugging Face format: an 8-byte little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets}}`, the data) for
 * models larger than the wasm heap: {@link openCheckpoint} reads only the headers (of one
 * file, or of every shard of a `model.safetensors.index.json`), and
 * {@link readExternalMatrix} reads one tensor by byte range (`Deno.open`, `seek`, `read`)
 * straight into the storage of an {@link ExternalMatrix}: a BF16 tensor lands in its
 * `Uint16Array` with no conversion and no second copy; other dtypes are converted in 16 MiB
 * chunks. No tfjs tensor is created and no file is held in memory whole.
 *
 * The header parser is its own: `lib/io/safetensors.ts` parses a header only together
 * with the whole file's bytes (its offsets are checked against them).
 *
 * @module
 */

import { join } from "node:path";
import { clipName, shown } from "../io/bounded.ts";
import { bf16TileToF32, f32ToBf16Array } from "../engine/bf16_convert.ts";
import {
  type ExternalDType,
  type ExternalLayout,
  type ExternalMatrix,
  externalMatrix,
} from "../engine/external_matrix.ts";

/** Dtypes this reader decodes to f32 or bf16 storage. */
export type StreamDType = "F32" | "F16" | "BF16";

const BYTES: Record<StreamDType, number> = { F32: 4, F16: 2, BF16: 2 };

/** Where one tensor's bytes are. */
export interface CheckpointTensor {
  /** Tensor name. */
  name: string;
  /** Stored dtype. */
  dtype: StreamDType;
  /** Dimensions, outermost first. */
  shape: number[];
  /** The file holding it. */
  path: string;
  /** Absolute byte offset of its data in the file. */
  offset: number;
  /** Bytes of data. */
  byteLength: number;
}

/** A checkpoint's tensors, by name, without their data. */
export interface StreamingCheckpoint {
  /** The file or folder opened. */
  source: string;
  /** Header `__metadata__` strings (for shards, merged; the first shard wins a key). */
  metadata: Record<string, string>;
  /** Tensor locations by name. */
  tensors: Map<string, CheckpointTensor>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

/** Reads exactly `dest.length` bytes at `offset` of an open file. */
async function readExactly(
  file: Deno.FsFile,
  offset: number,
  dest: Uint8Array,
  path: string,
): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  const chunk = 64 << 20;
  let done = 0;
  while (done < dest.length) {
    const n = await file.read(dest.subarray(done, Math.min(dest.length, done + chunk)));
    if (n === null) {
      throw new Error(
        `Cannot read ${path}: file ends at byte ${offset + done}, expected ${dest.length - done} ` +
          "more (truncated download?)",
      );
    }
    done += n;
  }
}

/** Parses and validates the header of one safetensors file. */
async function readHeader(
  path: string,
): Promise<{ metadata: Record<string, string>; tensors: CheckpointTensor[] }> {
  const fail = (what: string): never => {
    throw new Error(`Cannot read safetensors file ${path}: ${what}`);
  };
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    return fail((e as Error).message);
  }
  try {
    const size = (await file.stat()).size;
    if (size < 8) fail(`file is ${size} bytes, shorter than the 8-byte header length`);
    const lenBytes = new Uint8Array(8);
    await readExactly(file, 0, lenBytes, path);
    const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
    if (headerLen > size - 8) {
      fail(`header length ${headerLen} runs past the end of the file (${size} bytes)`);
    }
    const headerBytes = new Uint8Array(headerLen);
    await readExactly(file, 8, headerBytes, path);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
    } catch (e) {
      fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
    }
    if (!isObject(header)) return fail("header is not a JSON object");
    const base = 8 + headerLen;
    const metadata: Record<string, string> = {};
    const tensors: CheckpointTensor[] = [];
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__") {
        if (!isObject(info)) fail("__metadata__ is not an object of strings");
        for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
          if (typeof v !== "string") fail(`__metadata__ field '${k}' is not a string`);
          metadata[k] = v as string;
        }
        continue;
      }
      tensors.push(parseEntry(name, info, base, size, fail));
    }
    const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1];
      if (sorted[i].offset < prev.offset + prev.byteLength) {
        fail(`tensor '${clipName(sorted[i].name)}' overlaps tensor '${clipName(prev.name)}'`);
      }
    }
    return { metadata, tensors };
  } finally {
    file.close();
  }
}

function parseEntry(
  name: string,
  info: unknown,
  base: number,
  size: number,
  fail: (what: string) => never,
): CheckpointTensor {
  const t = `tensor '${clipName(name)}'`;
  if (!isObject(info)) return fail(`entry for ${t} is not an object`);
  const { dtype, shape, data_offsets: offs } = info;
  if (typeof dtype !== "string" || !(dtype in BYTES)) {
    return fail(
      `${t} has dtype ${shown(dtype)}; this streaming reader reads F32, F16 and BF16 ` +
        "(read other dtypes with lib/io/safetensors.ts)",
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    return fail(`${t} has shape ${shown(shape)}; expected non-negative integers`);
  }
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount) || offs[0] > offs[1]) {
    return fail(`${t} has data_offsets ${shown(offs)}; expected [begin <= end]`);
  }
  const dt = dtype as StreamDType;
  const [begin, end] = offs as number[];
  if (base + end > size) {
    fail(`${t} has data_offsets [${begin}, ${end}] past the end of the file (${size} bytes)`);
  }
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * BYTES[dt];
  if (end - begin !== expected) {
    fail(
      `${t} (${dt}, shape [${shape}]) needs ${expected} bytes; data_offsets span ${end - begin}`,
    );
  }
  return {
    name,
    dtype: dt,
    shape: shape as number[],
    path: "",
    offset: base + begin,
    byteLength: expected,
  };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Reads the headers of a checkpoint: a `.safetensors` file, or a Hugging Face model folder
 * with `model.safetensors` or `model.safetensors.index.json` (+ its shards). Reads no data.
 *
 * @example
 * ```ts ignore
 * import { openCheckpoint } from "./external_load.ts";
 * const ckpt = await openCheckpoint("models/Qwen3-4B");
 * console.log(ckpt.tensors.get("model.embed_tokens.weight")?.shape); // [151936, 2560]
 * ```
 */
export async function openCheckpoint(path: string): Promise<StreamingCheckpoint> {
  if (await isFile(path)) {
    const { metadata, tensors } = await readHeader(path);
    return {
      source: path,
      metadata,
      tensors: new Map(tensors.map((t) => [t.name, { ...t, path }])),
    };
  }
  const indexPath = join(path, "model.safetensors.index.json");
  if (!(await isFile(indexPath))) {
    const single = join(path, "model.safetensors");
    if (await isFile(single)) return { ...(await openCheckpoint(single)), source: path };
    throw new Error(
      `Cannot open checkpoint ${path}: it is neither a safetensors file nor a folder with ` +
        "model.safetensors or model.safetensors.index.json",
    );
  }
  let index: unknown;
  try {
    index = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (e) {
    throw new Error(`Cannot read ${indexPath}: ${clipName((e as Error).message, 200)}`, {
      cause: e,
    });
  }
  const weightMap = isObject(index) ? index["weight_map"] : undefined;
  if (!isObject(weightMap) || !Object.values(weightMap).every((v) => typeof v === "string")) {
    throw new Error(
      `Cannot read ${indexPath}: field 'weight_map' must be an object {tensor name: shard file}`,
    );
  }
  for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
    // A shard is a file of this folder: no path (an index must not read ../../anything).
    if (!/^[\w.-]+\.safetensors$/.test(shard) || shard.startsWith(".")) {
      throw new Error(
        `Cannot read ${indexPath}: weight_map['${clipName(name, 80)}'] is ${shown(shard, 80)}; ` +
          "expected a file name in the same folder ending in .safetensors",
      );
    }
  }
  const shards = [...new Set(Object.values(weightMap as Record<string, string>))];
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, CheckpointTensor>();
  for (const shard of shards) {
    const file = join(path, shard);
    if (!(await isFile(file))) {
      throw new Error(
        `Cannot open checkpoint ${path}: ${indexPath} lists shard ${shard}, which is missing`,
      );
    }
    const head = await readHeader(file);
    for (const t of head.tensors) {
      const prev = tensors.get(t.name);
      if (prev !== undefined) {
        throw new Error(
          `Cannot open checkpoint ${path}: tensor '${t.name}' is in both ${prev.path} and ${file}`,
        );
      }
      tensors.set(t.name, { ...t, path: file });
    }
    for (const [k, v] of Object.entries(head.metadata)) metadata[k] ??= v;
  }
  for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
    if (tensors.get(name)?.path !== join(path, shard)) {
      throw new Error(
        `Cannot open checkpoint ${path}: ${indexPath} maps '${clipName(name)}' to ${
          clipName(shard)
        }, which lacks it`,
      );
    }
  }
  return { source: path, metadata, tensors };
}

function entry(ckpt: StreamingCheckpoint, name: string): CheckpointTensor {
  const t = ckpt.tensors.get(name);
  if (t === undefined) {
    const some = [...ckpt.tensors.keys()].slice(0, 3).map((n) => `'${n}'`).join(", ");
    throw new Error(
      `Cannot read tensor '${
        clipName(name)
      }': ${ckpt.source} lacks it (it holds ${ckpt.tensors.size} ` +
        `tensors${some ? `, such as ${some}` : ""})`,
    );
  }
  return t;
}

const CHUNK_ELEMS = 4 << 20; // 16 MiB of f32 per conversion chunk

/** Converts a chunk of raw little-endian values to f32. */
function chunkToF32(raw: Uint8Array, dtype: StreamDType, n: number): Float32Array {
  if (dtype === "F32") return new Float32Array(raw.buffer, raw.byteOffset, n);
  const bits = new Uint16Array(raw.buffer, raw.byteOffset, n);
  if (dtype === "BF16") return bf16TileToF32(bits, 0, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f16Table()[bits[i]];
  return out;
}

let f16Lookup: Float32Array | undefined;
function f16Table(): Float32Array {
  if (f16Lookup !== undefined) return f16Lookup;
  f16Lookup = new Float32Array(65536);
  for (let b = 0; b < 65536; b++) {
    const sign = b & 0x8000 ? -1 : 1, exp = (b >>> 10) & 0x1f, mant = b & 0x3ff;
    f16Lookup[b] = exp === 0
      ? sign * mant * 2 ** -24
      : exp === 0x1f
      ? (mant ? NaN : sign * Infinity)
      : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return f16Lookup;
}

/** Reads a tensor's values into `dest` (f32, or bf16 bits), chunk by chunk. */
async function readInto(t: CheckpointTensor, dest: Float32Array | Uint16Array): Promise<void> {
  const file = await Deno.open(t.path, { read: true });
  try {
    const direct = (t.dtype === "F32" && dest instanceof Float32Array) ||
      (t.dtype === "BF16" && dest instanceof Uint16Array);
    if (direct) {
      await readExactly(
        file,
        t.offset,
        new Uint8Array(dest.buffer, dest.byteOffset, t.byteLength),
        t.path,
      );
      return;
    }
    const size = BYTES[t.dtype];
    const raw = new Uint8Array(CHUNK_ELEMS * size);
    for (let i = 0; i < dest.length; i += CHUNK_ELEMS) {
      const n = Math.min(CHUNK_ELEMS, dest.length - i);
      await readExactly(file, t.offset + i * size, raw.subarray(0, n * size), t.path);
      const f32 = chunkToF32(raw, t.dtype, n);
      dest.set(dest instanceof Float32Array ? f32 : f32ToBf16Array(f32), i);
    }
  } finally {
    file.close();
  }
}

/** Options for {@link readExternalMatrix}. */
export interface ReadExternalOptions {
  /**
   * Host storage: `"keep"` stores BF16 as bf16 and F32/F16 as f32; or force one (F32 -> bf16
   * rounds to nearest even). @default "keep"
   */
  storage?: "keep" | ExternalDType;
  /** @default "out_in" (Hugging Face Linear weights and embedding tables) */
  layout?: ExternalLayout;
}

/**
 * Reads one tensor of a checkpoint into a new external matrix `[shape[0], rest]` (1-D
 * tensors become `[1, n]`), reading only its byte range.
 *
 * @example
 * ```ts ignore
 * import { openCheckpoint, readExternalMatrix } from "./external_load.ts";
 * const ckpt = await openCheckpoint("models/Qwen3-4B");
 * const q = await readExternalMatrix(ckpt, "model.layers.0.self_attn.q_proj.weight");
 * console.log(q.dtype, q.rows, q.cols); // bfloat16 4096 2560
 * ```
 */
export async function readExternalMatrix(
  ckpt: StreamingCheckpoint,
  name: string,
  opts: ReadExternalOptions = {},
): Promise<ExternalMatrix> {
  const t = entry(ckpt, name);
  const storage = opts.storage ?? "keep";
  const dtype: ExternalDType = storage !== "keep"
    ? storage
    : t.dtype === "BF16"
    ? "bfloat16"
    : "float32";
  const n = t.shape.reduce((a, b) => a * b, 1);
  const rows = t.shape.length >= 2 ? t.shape[0] : 1;
  const dest = dtype === "float32" ? new Float32Array(n) : new Uint16Array(n);
  await readInto(t, dest);
  return externalMatrix(dest, [rows, rows === 0 ? 0 : n / rows], { name, layout: opts.layout });
}

/**
 * Reads one (small) tensor as f32 values, e.g. a norm weight or a bias that goes into a
 * tfjs tensor.
 *
 * @example
 * ```ts ignore
 * import { openCheckpoint, readTensorF32 } from "./external_load.ts";
 * const ckpt = await openCheckpoint("models/Qwen3-4B");
 * const { shape } = await readTensorF32(ckpt, "model.norm.weight"); // [2560]
 * ```
 */
export async function readTensorF32(
  ckpt: StreamingCheckpoint,
  name: string,
): Promise<{ shape: number[]; data: Float32Array }> {
  const t = entry(ckpt, name);
  const data = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
  await readInto(t, data);
  return { shape: [...t.shape], data };
}
