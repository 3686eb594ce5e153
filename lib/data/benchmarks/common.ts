/**
 * What the benchmark loaders share: reading CSV records with required columns, keeping
 * unmapped columns under lowerCamelCase names, split names from file names, and building the
 * arquero table of {@linkcode PromptRow}.
 *
 * @module
 */

import * as aq from "arquero";
import { basename } from "node:path";
import { type CsvRecord, csvRecords, type CsvTable, lineOf, readCsv } from "../csv.ts";
import { readParquet } from "../parquet.ts";
import type { PromptRow, Split } from "../schema.ts";
import { clipName } from "../../io/bounded.ts";
import { jsonDepthExceeded, MAX_JSON_DEPTH, readUtf8 } from "../../io/text.ts";

export const CORE = new Set([
  "id",
  "prompt",
  "label",
  "category",
  "source",
  "split",
  "target",
  "answer",
]);
export const UNSPECIFIED = "unspecified";

/** Builds an arquero table whose columns are the union of the rows' keys. */
export function toTable(rows: PromptRow[]): aq.ColumnTable {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    for (const k of Object.keys(row)) if (!seen.has(k)) (seen.add(k), names.push(k));
  }
  return aq.from(rows, names);
}

export function camel(name: string): string {
  const words = name.split(/[^A-Za-z0-9]+/).filter((w) => w !== "");
  return words.map((w, i) =>
    i === 0 ? w[0].toLowerCase() + w.slice(1) : w[0].toUpperCase() + w.slice(1)
  ).join("");
}

export function extraName(name: string, rename: (n: string) => string): string {
  const n = rename(name);
  return n === "source" ? "origin" : CORE.has(n) ? "raw" + n[0].toUpperCase() + n.slice(1) : n;
}

/** Copies every column not in `used` onto `row` (benchmark files: lowerCamelCase names). */
export function keepExtras(
  rec: Record<string, unknown>,
  used: string[],
  row: PromptRow,
  rename: (n: string) => string,
): PromptRow {
  for (const [k, v] of Object.entries(rec)) {
    if (k !== "" && !used.includes(k)) row[extraName(k, rename)] = v;
  }
  return row;
}

/**
 * A Parquet file as a CSV table of strings, so the benchmark mappers read it as they read
 * the CSV release: numbers and booleans as their text, null as "", a list of strings joined
 * with "; " (how the CSV releases write answer lists); the "line" of a record is its 1-based
 * row. A value of any other shape is an error naming column and row.
 */
async function parquetAsCsv(path: string): Promise<CsvTable> {
  const rows = await readParquet(path);
  const header = rows.length > 0 ? Object.keys(rows[0]) : [];
  const text = (v: unknown, col: string, i: number): string => {
    if (v === null || v === undefined) return "";
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join("; ");
    throw new Error(
      `${path}: row ${i + 1}, column "${col}" holds ${
        Array.isArray(v) ? "a list of non-strings" : typeof v
      }; benchmark columns must be text, numbers or lists of strings.`,
    );
  };
  return {
    header,
    rows: rows.map((r, i) => ({ line: i + 1, values: header.map((c) => text(r[c], c, i)) })),
  };
}

export async function readRecords(
  path: string,
  what: string,
  required: string[],
): Promise<CsvRecord[]> {
  const table = /\.parquet$/i.test(path) ? await parquetAsCsv(path) : await readCsv(path);
  const missing = required.filter((c) => !table.header.includes(c));
  if (missing.length > 0) {
    throw new Error(
      `Cannot load ${what} from ${path}: missing column${missing.length > 1 ? "s" : ""} ${
        missing.map((m) => `"${m}"`).join(", ")
      }; columns found: ${columnList(table.header)}. ` +
        `Check that this is the ${what} file.`,
    );
  }
  return csvRecords(table, path);
}

/** The columns of a file, quoted, cut to a bounded length for error messages. */
export function columnList(columns: string[]): string {
  return clipName(columns.map((c) => `"${clipName(c, 40)}"`).join(", "), 240);
}

export function nonEmpty(rec: CsvRecord, col: string, path: string): string {
  const v = rec[col];
  if (v.trim() === "") {
    throw new Error(`${path}:${lineOf(rec)}: empty "${col}"; every row needs a prompt.`);
  }
  return v;
}

export function splitFromName(path: string): Split | undefined {
  const m = /[_.-](train|val|validation|dev|test)\.[a-z]+$/i.exec(basename(path));
  if (!m) return undefined;
  const s = m[1].toLowerCase();
  return s === "train" ? "train" : s === "test" ? "test" : "validation";
}

export function answerList(s: string): string[] {
  return s.split(";").map((a) => a.trim()).filter((a) => a !== "");
}

/** Maps one CSV record (row index, file path) to a PromptRow. */
export type Mapper = (r: CsvRecord, i: number, path: string) => PromptRow;

export async function readText(path: string): Promise<string> {
  return await readUtf8(path, "file");
}

export async function readJson(path: string): Promise<unknown> {
  const text = (await readText(path)).replace(/^\uFEFF/, "");
  const deep = jsonDepthExceeded(text);
  if (deep) {
    const line = text.slice(0, deep).split("\n").length;
    throw new Error(`${path}:${line}: JSON nested deeper than ${MAX_JSON_DEPTH} levels.`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: invalid JSON (${clipName((err as Error).message, 160)}).`, {
      cause: err,
    });
  }
}

/** A benchmark file's required columns and its row mapper. */
export interface BenchmarkSpec {
  /** Columns the file must have. */
  columns: string[];
  /** One record -> one PromptRow. */
  map: Mapper;
}
