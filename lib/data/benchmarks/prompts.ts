/**
 * {@linkcode loadPrompts}: a user's own prompt file (CSV, TSV, JSONL, JSON) as an arquero
 * table of {@linkcode PromptRow}, with every column auto-detected unless named.
 *
 * @module
 */

import type * as aq from "arquero";
import { basename, extname } from "node:path";
import { csvRecords, lineOf, readCsv } from "../csv.ts";
import { readJsonlEntries } from "../jsonl.ts";
import { readParquet } from "../parquet.ts";
import type { PromptLabel, PromptRow } from "../schema.ts";
import { columnList, keepExtras, readJson, readText, toTable, UNSPECIFIED } from "./common.ts";
import { shown } from "../../io/bounded.ts";

/**
 * A JSON/JSONL field mapped onto a {@linkcode PromptRow} string field must be a string (the
 * id may also be an integer, kept as its decimal text); anything else is an error naming the
 * row and the field, never a silent `String(value)`.
 */
function stringField(
  rec: Record<string, unknown>,
  col: string | undefined,
  at: string,
  role: string,
  integerOk = false,
): string | undefined {
  if (col === undefined) return undefined;
  const v = rec[col];
  if (v === undefined || v === null || typeof v === "string") return v ?? undefined;
  if (integerOk && typeof v === "number" && Number.isSafeInteger(v)) return String(v);
  throw new Error(
    `${at}: field ${shown(col, 40)} (the ${role}) is ${shown(v, 60)}; expected a string ` +
      `(PromptRow.${role} in lib/data/schema.ts).`,
  );
}

/** Options for {@linkcode loadPrompts}; every column is auto-detected unless named. */
export interface LoadPromptsOptions {
  /**
   * Column holding the prompt text.
   * @default the first of prompt, goal, instruction, Behavior, forbidden_prompt, question,
   * query, request, text (case-insensitive)
   */
  promptColumn?: string;
  /** Column holding the label. @default "label" when present */
  labelColumn?: string;
  /**
   * Label for every row, used when the file has no label column (required then).
   * @default undefined
   */
  label?: PromptLabel;
  /**
   * Extra label spellings (lower-cased value -> label), merged over the built-in ones
   * (harmful/unsafe/1/true -> harmful, benign/safe/harmless/0/false -> benign, borderline).
   * @default {}
   */
  labelMap?: Record<string, PromptLabel>;
  /** Column used as id. @default "id" when present, else `<source>-<row index>` */
  idColumn?: string;
  /** Column used as category. @default "category" when present, else "unspecified" */
  categoryColumn?: string;
  /** Column used as target. @default "target" when present */
  targetColumn?: string;
  /** Column used as reference answer. @default "answer" when present */
  answerColumn?: string;
  /** Value of the `source` field. @default the file's base name */
  source?: string;
}

const PROMPT_COLUMNS = [
  "prompt",
  "goal",
  "instruction",
  "behavior",
  "forbidden_prompt",
  "question",
  "query",
  "request",
  "text",
];
const LABELS: Record<string, PromptLabel> = {
  harmful: "harmful",
  unsafe: "harmful",
  "1": "harmful",
  true: "harmful",
  benign: "benign",
  safe: "benign",
  harmless: "benign",
  "0": "benign",
  false: "benign",
  borderline: "borderline",
};

/** One record of a prompt file and where it was read ("file:line"). */
export interface RawRow {
  at: string;
  rec: Record<string, unknown>;
}

async function readRows(path: string): Promise<{ rows: RawRow[]; columns: string[] }> {
  const ext = extname(path).toLowerCase();
  if (ext === ".csv" || ext === ".tsv") {
    const table = await readCsv(path, { delimiter: ext === ".tsv" ? "\t" : "," });
    const rows = csvRecords(table, path).map((r) => ({ at: `${path}:${lineOf(r)}`, rec: r }));
    return { rows, columns: table.header };
  }
  let raw: { at: string; value: unknown }[];
  if (ext === ".jsonl" || ext === ".ndjson") {
    raw = (await readJsonlEntries(path)).map((e) => ({ at: `${path}:${e.line}`, value: e.value }));
  } else if (ext === ".json") {
    const v = await readJson(path);
    if (!Array.isArray(v)) throw new Error(`${path}: expected a JSON array of objects.`);
    raw = v.map((value, k) => ({ at: `${path}: element ${k}`, value }));
  } else if (ext === ".parquet") {
    raw = (await readParquet(path)).map((value, k) => ({ at: `${path}: row ${k}`, value }));
  } else if (ext === ".txt") {
    raw = (await readText(path)).split(/\r?\n/).map((l, k) => ({
      at: `${path}:${k + 1}`,
      value: l.trim() === "" ? null : { prompt: l.trim() },
    })).filter((r) => r.value !== null);
  } else {
    throw new Error(
      `Cannot load prompts from ${path}: unknown extension ${JSON.stringify(ext)}; ` +
        `use .csv, .tsv, .jsonl, .ndjson, .json (array of objects), .parquet or .txt (one ` +
        `prompt a line).`,
    );
  }
  const columns: string[] = [];
  const rows = raw.map(({ at, value }) => {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`${at}: expected a JSON object such as {"prompt": "...", "label": "..."}.`);
    }
    for (const k of Object.keys(value)) if (!columns.includes(k)) columns.push(k);
    return { at, rec: value as Record<string, unknown> };
  });
  return { rows, columns };
}

function pickColumn(
  columns: string[],
  given: string | undefined,
  candidates: string[],
  path: string,
  role: string,
): string | undefined {
  if (given !== undefined) {
    if (!columns.includes(given)) {
      throw new Error(
        `Cannot load prompts from ${path}: ${role} column ${shown(given, 60)} not found; ` +
          `columns found: ${columnList(columns)}.`,
      );
    }
    return given;
  }
  for (const c of candidates) {
    const hit = columns.find((col) => col.toLowerCase() === c);
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/**
 * Loads a user's prompt file (CSV, TSV, JSONL, JSON array or plain text) as an arquero table
 * of {@linkcode PromptRow}, auto-detecting the common column names. Other columns are kept
 * under their own names, except those named like a PromptRow field: `source` -> `origin`,
 * others get a `raw` prefix (`split` -> `rawSplit`).
 *
 * @example
 * ```ts
 * const t = await loadPrompts("my_prompts.jsonl", { label: "harmful" });
 * ```
 * @throws Error naming the file (and line) for a missing column or an unknown label.
 */
export async function loadPrompts(
  path: string,
  opts: LoadPromptsOptions = {},
): Promise<aq.ColumnTable> {
  const { rows, columns } = await readRows(path);
  return toTable(promptRows(rows, columns, path, opts));
}

/**
 * The PromptRows of records already read (`at` = "file:line" of each), with the columns of
 * the file: the synchronous core of {@linkcode loadPrompts} (the fuzz suite calls it).
 *
 * @example
 * ```ts
 * const rows = promptRows([{ at: "x.jsonl:1", rec: { prompt: "hi", label: "benign" } }],
 *   ["prompt", "label"], "x.jsonl");
 * rows[0].label; // "benign"
 * ```
 */
export function promptRows(
  rows: RawRow[],
  columns: string[],
  path: string,
  opts: LoadPromptsOptions = {},
): PromptRow[] {
  const promptCol = pickColumn(columns, opts.promptColumn, PROMPT_COLUMNS, path, "prompt");
  const found = columnList(columns);
  if (promptCol === undefined) {
    throw new Error(
      `Cannot load prompts from ${path}: no prompt column (looked for ${
        PROMPT_COLUMNS.join(", ")
      }); columns found: ${found}. Pass {promptColumn: "..."}.`,
    );
  }
  const labelCol = pickColumn(columns, opts.labelColumn, ["label"], path, "label");
  if (labelCol === undefined && opts.label === undefined) {
    throw new Error(
      `Cannot load prompts from ${path}: no "label" column; columns found: ${found}. ` +
        `Pass {label: "harmful"} (or "benign"/"borderline") to label every row, ` +
        `or {labelColumn: "..."}.`,
    );
  }
  const idCol = pickColumn(columns, opts.idColumn, ["id"], path, "id");
  const catCol = pickColumn(columns, opts.categoryColumn, ["category"], path, "category");
  const targetCol = pickColumn(columns, opts.targetColumn, ["target"], path, "target");
  const answerCol = pickColumn(columns, opts.answerColumn, ["answer"], path, "answer");
  const labels: Record<string, PromptLabel> = { ...LABELS, ...opts.labelMap };
  const source = opts.source ?? basename(path);
  const used = [promptCol, labelCol, idCol, catCol, targetCol, answerCol].filter((c) =>
    c !== undefined
  ) as string[];
  return rows.map(({ at, rec }, i) => {
    const prompt = rec[promptCol];
    if (typeof prompt !== "string" || prompt.trim() === "") {
      throw new Error(
        `${at}: field ${shown(promptCol, 40)} is ${
          shown(prompt, 40)
        }; expected a non-empty string.`,
      );
    }
    let label = opts.label as PromptLabel;
    const rawLabel = rec[labelCol ?? ""];
    if (
      labelCol !== undefined &&
      !["string", "number", "boolean", "undefined"].includes(typeof rawLabel) && rawLabel !== null
    ) {
      throw new Error(
        `${at}: field ${shown(labelCol, 40)} is ${shown(rawLabel, 60)}; expected a string.`,
      );
    }
    if (labelCol !== undefined && rec[labelCol] != null && rec[labelCol] !== "") {
      const mapped = labels[String(rec[labelCol]).trim().toLowerCase()];
      if (!mapped) {
        throw new Error(
          `${at}: field ${shown(labelCol, 40)} is ${shown(rec[labelCol], 60)}; expected one of ${
            Object.keys(labels).join(", ")
          } (add spellings with {labelMap: {...}}).`,
        );
      }
      label = mapped;
    } else if (label === undefined) {
      throw new Error(`${at}: field "${labelCol}" is empty; give a label or pass {label}.`);
    }
    const id = stringField(rec, idCol, at, "id", true);
    const category = stringField(rec, catCol, at, "category");
    const target = stringField(rec, targetCol, at, "target");
    const answer = stringField(rec, answerCol, at, "answer");
    const row: PromptRow = {
      id: id ?? `${source}-${i}`,
      prompt,
      label,
      category: category ?? UNSPECIFIED,
      source,
    };
    if (target !== undefined) row.target = target;
    if (answer !== undefined) row.answer = answer;
    return keepExtras(rec, used, row, (n) => n);
  });
}
