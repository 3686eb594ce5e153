/**
 * Parquet files (the format of Hugging Face datasets' `refs/convert/parquet` and of most
 * uploaded datasets) as row objects or an arquero table, through hyparquet
 * (https://github.com/hyparam/hyparquet: pure JavaScript, no dependencies). Reads only the
 * byte ranges it needs: the footer, then the column chunks of the columns and rows asked for.
 *
 * Values: strings, booleans, floats and 32-bit integers as JavaScript values; 64-bit integers
 * as numbers when they fit one exactly (an error naming column and row otherwise, or pass
 * `int64: "bigint"`); nulls as null; lists as arrays and structs as objects (recursively);
 * timestamps and dates as `Date`. Every codec pyarrow, polars and Hugging Face write is read
 * (uncompressed, SNAPPY, GZIP, BROTLI, ZSTD, LZ4, LZ4_RAW; hyparquet-compressors); any other
 * is reported by name.
 *
 * @module
 */

import * as aq from "arquero";
import { parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import type { AsyncBuffer, FileMetaData } from "hyparquet";
import { compressors } from "hyparquet-compressors";

/** Options of {@linkcode readParquet}. */
export interface ParquetReadOptions {
  /** Columns to read (top-level names), in this order. @default every column */
  columns?: string[];
  /** First row to read (0-based). @default 0 */
  offset?: number;
  /** Most rows to read. @default all rows from `offset` on */
  limit?: number;
  /**
   * 64-bit integers: `"number"` (exact numbers; a value beyond 2^53 is an error naming its
   * column and row) or `"bigint"` (kept as bigint). @default "number"
   */
  int64?: "number" | "bigint";
}

/** A column of a Parquet file, as {@linkcode parquetInfo} lists it. */
export interface ParquetColumn {
  /** Top-level column name. */
  name: string;
  /** Physical type (`BYTE_ARRAY`, `INT64`, ...), or `group` for lists and structs. */
  type: string;
  /** Logical or converted type when the file gives one (`STRING`, `LIST`, `TIMESTAMP`...). */
  logicalType?: string;
  /** Whether the column may hold nulls. */
  nullable: boolean;
}

/** What a Parquet file holds: its rows, columns, row groups and compression codecs. */
export interface ParquetInfo {
  /** Rows in the file. */
  numRows: number;
  /** Top-level columns. */
  columns: ParquetColumn[];
  /** Row groups. */
  rowGroups: number;
  /** Compression codecs used by its column chunks. */
  codecs: string[];
  /** The writer (`created_by`), when recorded. */
  createdBy?: string;
}

const SUPPORTED_CODECS = new Set(["UNCOMPRESSED", ...Object.keys(compressors)]);

/** An AsyncBuffer over a local file through Deno's file API (reads byte ranges on demand). */
async function fileBuffer(path: string): Promise<{ buf: AsyncBuffer; close: () => void }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    throw new Error(`Cannot read Parquet file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const size = (await file.stat()).size;
  // One read at a time: hyparquet may ask for several ranges concurrently.
  let queue: Promise<unknown> = Promise.resolve();
  const slice = (start: number, end = size): Promise<ArrayBuffer> => {
    const job = queue.then(async () => {
      const out = new Uint8Array(Math.max(0, end - start));
      await file.seek(start, Deno.SeekMode.Start);
      let got = 0;
      while (got < out.length) {
        const n = await file.read(out.subarray(got));
        if (n === null) break;
        got += n;
      }
      if (got !== out.length) throw new Error(`short read at byte ${start + got} of ${path}`);
      return out.buffer;
    });
    queue = job.catch(() => undefined);
    return job;
  };
  return { buf: { byteLength: size, slice }, close: () => file.close() };
}

async function metadataOf(path: string, buf: AsyncBuffer): Promise<FileMetaData> {
  try {
    return await parquetMetadataAsync(buf);
  } catch (err) {
    throw new Error(
      `Cannot read ${path} as Parquet: ${(err as Error).message}; expected a Parquet file ` +
        `(starting and ending with the bytes "PAR1").`,
      { cause: err },
    );
  }
}

function describe(meta: FileMetaData): ParquetInfo {
  const tree = parquetSchema(meta);
  const columns = tree.children.map((c) => {
    const e = c.element;
    const logical = e.logical_type?.type ?? e.converted_type;
    return {
      name: e.name,
      type: e.type ?? "group",
      ...(logical ? { logicalType: String(logical) } : {}),
      nullable: e.repetition_type !== "REQUIRED",
    };
  });
  const codecs = new Set<string>();
  for (const rg of meta.row_groups) {
    for (const col of rg.columns) if (col.meta_data) codecs.add(col.meta_data.codec);
  }
  return {
    numRows: Number(meta.num_rows),
    columns,
    rowGroups: meta.row_groups.length,
    codecs: [...codecs].sort(),
    ...(meta.created_by ? { createdBy: meta.created_by } : {}),
  };
}

/**
 * The shape of a Parquet file without reading its data: rows, columns with their types,
 * row groups, codecs and writer.
 *
 * @example
 * ```ts
 * const info = await parquetInfo("datasets/xstest/test-00000-of-00001.parquet");
 * info.numRows; // 450
 * info.columns.map((c) => c.name); // ["id", "prompt", "type", "label", ...]
 * ```
 * @throws Error naming the path when it cannot be read or is not a Parquet file.
 */
export async function parquetInfo(path: string): Promise<ParquetInfo> {
  const { buf, close } = await fileBuffer(path);
  try {
    return describe(await metadataOf(path, buf));
  } finally {
    close();
  }
}

function convert(
  v: unknown,
  int64: "number" | "bigint",
  at: () => string,
): unknown {
  if (typeof v === "bigint") {
    if (int64 === "bigint") return v;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) {
      throw new Error(
        `${at()}: 64-bit integer ${v} does not fit a JavaScript number exactly; ` +
          `pass { int64: "bigint" } to keep it as a bigint.`,
      );
    }
    return n;
  }
  if (Array.isArray(v)) return v.map((x) => convert(x, int64, at));
  if (v !== null && typeof v === "object" && !(v instanceof Date) && !ArrayBuffer.isView(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = convert(x, int64, at);
    return out;
  }
  return v;
}

function checkRange(n: number | undefined, what: string, path: string): void {
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
    throw new Error(`readParquet(${path}): ${what} must be a whole number >= 0, got ${n}`);
  }
}

/**
 * Reads a Parquet file into row objects, optionally only some columns and a window of rows
 * (only the column chunks and row groups needed are read from disk).
 *
 * @example
 * ```ts
 * const rows = await readParquet("train-00000-of-00001.parquet", {
 *   columns: ["prompt", "label"],
 *   limit: 100,
 * });
 * rows[0]; // { prompt: "...", label: "unsafe" }
 * ```
 * @throws Error naming the path for a missing or non-Parquet file; naming the column and the
 * columns found for an unknown column; naming the codec for a compression it cannot read;
 * naming column and row for a 64-bit integer that does not fit a number.
 */
export async function readParquet(
  path: string,
  opts: ParquetReadOptions = {},
): Promise<Record<string, unknown>[]> {
  checkRange(opts.offset, "offset", path);
  checkRange(opts.limit, "limit", path);
  const { buf, close } = await fileBuffer(path);
  try {
    const meta = await metadataOf(path, buf);
    const info = describe(meta);
    const names = info.columns.map((c) => c.name);
    const columns = opts.columns ?? names;
    const unknown = columns.filter((c) => !names.includes(c));
    if (unknown.length > 0) {
      throw new Error(
        `${path}: no column ${unknown.map((c) => JSON.stringify(c)).join(", ")}; ` +
          `columns found: ${names.map((c) => JSON.stringify(c)).join(", ")}.`,
      );
    }
    const bad = info.codecs.filter((c) => !SUPPORTED_CODECS.has(c));
    if (bad.length > 0) {
      throw new Error(
        `${path}: compressed with ${bad.join(", ")}, which this reader does not decode ` +
          `(it reads ${[...SUPPORTED_CODECS].join(", ")}); rewrite it with snappy, e.g. in ` +
          `Python pyarrow.parquet.write_table(pyarrow.parquet.read_table(src), dst, ` +
          `compression="snappy").`,
      );
    }
    const start = opts.offset ?? 0;
    const end = Math.min(
      info.numRows,
      opts.limit === undefined ? info.numRows : start + opts.limit,
    );
    if (start >= end || columns.length === 0) return [];
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({
        file: buf,
        metadata: meta,
        compressors,
        columns,
        rowStart: start,
        rowEnd: end,
      });
    } catch (err) {
      throw new Error(`Cannot decode ${path}: ${(err as Error).message}`, { cause: err });
    }
    const int64 = opts.int64 ?? "number";
    return rows.map((row, i) => {
      const out: Record<string, unknown> = {};
      for (const c of columns) {
        out[c] = convert(row[c], int64, () => `${path}: column "${c}", row ${start + i}`);
      }
      return out;
    });
  } finally {
    close();
  }
}

/**
 * Reads a Parquet file into an arquero table (same options as {@linkcode readParquet});
 * columns keep the file's order, or the order of `columns`.
 *
 * @example
 * ```ts
 * const t = await readParquetTable("train.parquet", { columns: ["prompt", "label"] });
 * t.groupby("label").count().print();
 * ```
 */
export async function readParquetTable(
  path: string,
  opts: ParquetReadOptions = {},
): Promise<aq.ColumnTable> {
  const rows = await readParquet(path, opts);
  const names = opts.columns ?? (await parquetInfo(path)).columns.map((c) => c.name);
  return aq.from(rows, names);
}
