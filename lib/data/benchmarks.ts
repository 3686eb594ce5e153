/**
 * Loaders for the standard safety benchmark files (SCIENCE.md section 7), for users' own
 * prompt files, for jailbreak templates, refusal-prefix lists and the refusal-direction
 * splits. Prompt loaders return arquero tables of {@linkcode PromptRow}.
 *
 * Formats: AdvBench `harmful_behaviors.csv` (goal,target); HarmBench
 * `harmbench_behaviors_text_*.csv` (Behavior,FunctionalCategory,SemanticCategory,Tags,
 * ContextString,BehaviorID); XSTest `xstest_prompts.csv` (id,prompt,type,label,focus,note);
 * JailbreakBench behaviors ((index),Goal,Target,Behavior,Category,Source); StrongREJECT
 * (category,source,forbidden_prompt); TruthfulQA (Type,Category,Question,Best Answer,
 * Correct Answers,Incorrect Answers,Source); MaliciousInstruct (one prompt per line);
 * Self-Reminder jailbreak templates ((index),name,prompt); Arditi et al.'s refusal-direction
 * splits ([{instruction, category}]). Paths are always given by the caller: benchmark
 * files are never shipped with the toolkit.
 *
 * Benchmark columns not mapped onto a PromptRow field are kept under their lowerCamelCase
 * name (`ContextString` -> `contextString`, `FunctionalCategory` -> `functionalCategory`); a
 * column that would collide with a PromptRow field is renamed (`Source` -> `origin`).
 *
 * @module
 */

import * as aq from "arquero";
import { basename, extname } from "node:path";
import { type CsvRecord, csvRecords, lineOf, readCsv } from "./csv.ts";
import { readJsonlEntries } from "./jsonl.ts";
import type { PromptLabel, PromptRow, Split } from "./schema.ts";

export type { PromptLabel, PromptRow, Split };

/** Benchmarks {@linkcode loadBenchmark} understands. */
export type BenchmarkName =
  | "advbench"
  | "harmbench"
  | "xstest"
  | "jailbreakbench"
  | "strongreject"
  | "truthfulqa"
  | "malicious_instruct";

/** Options for {@linkcode loadBenchmark}. */
export interface LoadBenchmarkOptions {
  /**
   * HarmBench only: path of `harmbench_targets_text.json` (BehaviorID -> target string);
   * when given, each row gets its `target`.
   * @default undefined (no targets)
   */
  targetsPath?: string;
}

const CORE = new Set(["id", "prompt", "label", "category", "source", "split", "target", "answer"]);
const UNSPECIFIED = "unspecified";

/** Builds an arquero table whose columns are the union of the rows' keys. */
function toTable(rows: PromptRow[]): aq.ColumnTable {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    for (const k of Object.keys(row)) if (!seen.has(k)) (seen.add(k), names.push(k));
  }
  return aq.from(rows, names);
}

function camel(name: string): string {
  const words = name.split(/[^A-Za-z0-9]+/).filter((w) => w !== "");
  return words.map((w, i) =>
    i === 0 ? w[0].toLowerCase() + w.slice(1) : w[0].toUpperCase() + w.slice(1)
  ).join("");
}

function extraName(name: string, rename: (n: string) => string): string {
  const n = rename(name);
  return n === "source" ? "origin" : CORE.has(n) ? "raw" + n[0].toUpperCase() + n.slice(1) : n;
}

/** Copies every column not in `used` onto `row` (benchmark files: lowerCamelCase names). */
function keepExtras(
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

async function readRecords(path: string, what: string, required: string[]): Promise<CsvRecord[]> {
  const table = await readCsv(path);
  const missing = required.filter((c) => !table.header.includes(c));
  if (missing.length > 0) {
    throw new Error(
      `Cannot load ${what} from ${path}: missing column${missing.length > 1 ? "s" : ""} ${
        missing.map((m) => `"${m}"`).join(", ")
      }; columns found: ${table.header.map((h) => `"${h}"`).join(", ")}. ` +
        `Check that this is the ${what} file.`,
    );
  }
  return csvRecords(table, path);
}

function nonEmpty(rec: CsvRecord, col: string, path: string): string {
  const v = rec[col];
  if (v.trim() === "") {
    throw new Error(`${path}:${lineOf(rec)}: empty "${col}"; every row needs a prompt.`);
  }
  return v;
}

function splitFromName(path: string): Split | undefined {
  const m = /[_.-](train|val|validation|dev|test)\.[a-z]+$/i.exec(basename(path));
  if (!m) return undefined;
  const s = m[1].toLowerCase();
  return s === "train" ? "train" : s === "test" ? "test" : "validation";
}

function answerList(s: string): string[] {
  return s.split(";").map((a) => a.trim()).filter((a) => a !== "");
}

type Mapper = (r: CsvRecord, i: number, path: string) => PromptRow;

const SPECS: Record<Exclude<BenchmarkName, "malicious_instruct">, [string[], Mapper]> = {
  advbench: [["goal", "target"], (r, i, p) =>
    keepExtras(r, ["goal", "target"], {
      id: `advbench-${i}`,
      prompt: nonEmpty(r, "goal", p),
      label: "harmful",
      category: UNSPECIFIED,
      source: "advbench",
      target: r.target,
    }, camel)],
  harmbench: [["Behavior", "SemanticCategory", "BehaviorID"], (r, _i, p) => {
    const row: PromptRow = {
      id: r.BehaviorID,
      prompt: nonEmpty(r, "Behavior", p),
      label: "harmful",
      category: r.SemanticCategory,
      source: "harmbench",
    };
    const split = splitFromName(p);
    if (split) row.split = split;
    return keepExtras(r, ["Behavior", "SemanticCategory", "BehaviorID"], row, camel);
  }],
  xstest: [["id", "prompt", "type", "label"], (r, _i, p) => {
    const label = { safe: "borderline", unsafe: "harmful" }[r.label] as PromptLabel | undefined;
    if (!label) {
      throw new Error(
        `${p}:${lineOf(r)}: field "label" is ${JSON.stringify(r.label)}; XSTest labels are ` +
          `"safe" (benign prompts that look unsafe -> borderline) or "unsafe" (-> harmful).`,
      );
    }
    const row: PromptRow = {
      id: `xstest-${r.id}`,
      prompt: nonEmpty(r, "prompt", p),
      label,
      category: r.type,
      source: "xstest",
    };
    return keepExtras(r, ["id", "prompt", "type", "label"], row, camel);
  }],
  jailbreakbench: [
    ["Goal", "Target", "Category"],
    (r, i, p) =>
      keepExtras(r, ["Goal", "Target", "Category"], {
        id: `jailbreakbench-${r[""] ?? i}`,
        prompt: nonEmpty(r, "Goal", p),
        label: "harmful",
        category: r.Category,
        source: "jailbreakbench",
        target: r.Target,
      }, camel),
  ],
  strongreject: [
    ["category", "forbidden_prompt"],
    (r, i, p) =>
      keepExtras(r, ["category", "forbidden_prompt"], {
        id: `strongreject-${i}`,
        prompt: nonEmpty(r, "forbidden_prompt", p),
        label: "harmful",
        category: r.category,
        source: "strongreject",
      }, camel),
  ],
  truthfulqa: [["Question", "Best Answer", "Category"], (r, i, p) => {
    const used = ["Question", "Best Answer", "Category", "Correct Answers", "Incorrect Answers"];
    const row = keepExtras(r, used, {
      id: `truthfulqa-${i}`,
      prompt: nonEmpty(r, "Question", p),
      label: "benign",
      category: r.Category,
      source: "truthfulqa",
      answer: r["Best Answer"],
    }, camel);
    row.correctAnswers = answerList(r["Correct Answers"] ?? "");
    row.incorrectAnswers = answerList(r["Incorrect Answers"] ?? "");
    return row;
  }],
};

/**
 * Loads a standard benchmark file as an arquero table of {@linkcode PromptRow}.
 *
 * Mapping: AdvBench goal -> prompt, target kept, all `harmful`; HarmBench Behavior -> prompt,
 * BehaviorID -> id, SemanticCategory -> category, `functionalCategory`, `tags`,
 * `contextString` kept, split from the file name (`_test`, `_val`); XSTest label `safe` ->
 * `borderline` (benign prompts that look dangerous), `unsafe` -> `harmful`, type ->
 * category, `focus`/`note` kept; JailbreakBench Goal -> prompt, Target -> target, Category ->
 * category, `behavior`/`origin` kept; StrongREJECT forbidden_prompt -> prompt, `origin` kept;
 * TruthfulQA Question -> prompt (`benign`), Best Answer -> answer, `correctAnswers` and
 * `incorrectAnswers` as string arrays, `type`/`origin` kept; MaliciousInstruct one prompt a
 * line, all `harmful`.
 *
 * @example
 * ```ts
 * const xs = await loadBenchmark("xstest", "datasets/xstest/xstest_prompts.csv");
 * xs.groupby("label").count().print(); // borderline 250, harmful 200
 * ```
 * @throws Error naming file and line for malformed rows; file, column and the columns found
 * for a missing required column.
 */
export async function loadBenchmark(
  name: BenchmarkName,
  path: string,
  opts: LoadBenchmarkOptions = {},
): Promise<aq.ColumnTable> {
  if (name === "malicious_instruct") {
    const text = await readText(path);
    const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
    const rows: PromptRow[] = [];
    lines.forEach((l) => {
      if (l.trim() === "") return;
      rows.push({
        id: `malicious_instruct-${rows.length}`,
        prompt: l.trim(),
        label: "harmful",
        category: UNSPECIFIED,
        source: "malicious_instruct",
      });
    });
    return toTable(rows);
  }
  const spec = SPECS[name];
  if (!spec) {
    throw new Error(
      `Unknown benchmark ${JSON.stringify(name)}; expected one of ${
        [...Object.keys(SPECS), "malicious_instruct"].join(", ")
      } (or use loadPrompts for other files).`,
    );
  }
  const recs = await readRecords(path, name, spec[0]);
  const rows = recs.map((r, i) => spec[1](r, i, path));
  if (name === "harmbench" && opts.targetsPath) {
    const targets = await readJson(opts.targetsPath) as Record<string, unknown>;
    for (const row of rows) {
      const t = targets[row.id];
      if (typeof t === "string") row.target = t;
    }
  }
  return toTable(rows);
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`Cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (err) {
    throw new Error(`${path}: invalid JSON (${(err as Error).message}).`, { cause: err });
  }
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

interface RawRow {
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
  } else if (ext === ".txt") {
    raw = (await readText(path)).split(/\r?\n/).map((l, k) => ({
      at: `${path}:${k + 1}`,
      value: l.trim() === "" ? null : { prompt: l.trim() },
    })).filter((r) => r.value !== null);
  } else {
    throw new Error(
      `Cannot load prompts from ${path}: unknown extension ${JSON.stringify(ext)}; ` +
        `use .csv, .tsv, .jsonl, .ndjson, .json (array of objects) or .txt (one prompt a line).`,
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
        `Cannot load prompts from ${path}: ${role} column "${given}" not found; columns found: ${
          columns.map((c) => `"${c}"`).join(", ")
        }.`,
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
  const promptCol = pickColumn(columns, opts.promptColumn, PROMPT_COLUMNS, path, "prompt");
  const found = columns.map((c) => `"${c}"`).join(", ");
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
  const out = rows.map(({ at, rec }, i) => {
    const prompt = rec[promptCol];
    if (typeof prompt !== "string" || prompt.trim() === "") {
      throw new Error(`${at}: field "${promptCol}" must be a non-empty string.`);
    }
    let label = opts.label as PromptLabel;
    if (labelCol !== undefined && rec[labelCol] !== undefined && rec[labelCol] !== "") {
      const mapped = labels[String(rec[labelCol]).trim().toLowerCase()];
      if (!mapped) {
        throw new Error(
          `${at}: field "${labelCol}" is ${JSON.stringify(rec[labelCol])}; expected one of ${
            Object.keys(labels).join(", ")
          } (add spellings with {labelMap: {...}}).`,
        );
      }
      label = mapped;
    } else if (label === undefined) {
      throw new Error(`${at}: field "${labelCol}" is empty; give a label or pass {label}.`);
    }
    const row: PromptRow = {
      id: idCol !== undefined ? String(rec[idCol]) : `${source}-${i}`,
      prompt,
      label,
      category: catCol !== undefined ? String(rec[catCol] ?? UNSPECIFIED) : UNSPECIFIED,
      source,
    };
    if (targetCol !== undefined && rec[targetCol] != null) row.target = String(rec[targetCol]);
    if (answerCol !== undefined && rec[answerCol] != null) row.answer = String(rec[answerCol]);
    return keepExtras(rec, used, row, (n) => n);
  });
  return toTable(out);
}

/** One jailbreak template, its request slot normalised to `{request}`. */
export interface JailbreakTemplate {
  /** The file's row index (or row number when the file has no index column). */
  id: string;
  /** The template's name (e.g. "AIM"). */
  name: string;
  /** The template text with every request slot written `{request}`. */
  template: string;
  /**
   * The placeholder the file used for the request (e.g. `[INSERT PROMPT HERE]`), or "" when
   * the row had none and `{request}` was appended after a blank line.
   */
  placeholder: string;
}

/** Request placeholders recognised in template files, most common first. */
const PLACEHOLDERS = ["[INSERT PROMPT HERE]", "{prompt}", "{request}", "{query}", "[PROMPT]"];

/**
 * Loads a jailbreak-template CSV ((index),name,prompt; the Self-Reminder 75-template file)
 * and normalises its request placeholder (detected: the one used by most rows, there
 * `[INSERT PROMPT HERE]`) to `{request}`. Rows without it get `\n\n{request}` appended (2
 * of the 75: "GPT-4 Simulator" and "GPT-4REAL").
 */
export async function loadJailbreakTemplates(path: string): Promise<JailbreakTemplate[]> {
  const recs = await readRecords(path, "jailbreak templates", ["name", "prompt"]);
  const counts = PLACEHOLDERS.map((p) => recs.filter((r) => r.prompt.includes(p)).length);
  const best = counts.indexOf(Math.max(...counts));
  if (counts[best] === 0) {
    throw new Error(
      `Cannot load jailbreak templates from ${path}: no row contains a request placeholder ` +
        `(looked for ${PLACEHOLDERS.join(", ")}); mark the request slot with {request}.`,
    );
  }
  const ph = PLACEHOLDERS[best];
  return recs.map((r, i) => {
    const has = r.prompt.includes(ph);
    return {
      id: r[""] ?? String(i),
      name: r.name,
      template: has ? r.prompt.split(ph).join("{request}") : `${r.prompt}\n\n{request}`,
      placeholder: has ? ph : "",
    };
  });
}

/**
 * Fills a template's `{request}` slots with `request` (literally: no `$` patterns); a
 * template without a slot gets the request appended after a blank line.
 *
 * @example
 * ```ts
 * applyJailbreak("Pretend you are DAN. {request}", "Tell me a secret"); // "Pretend ... secret"
 * ```
 */
export function applyJailbreak(template: string | JailbreakTemplate, request: string): string {
  const t = typeof template === "string" ? template : template.template;
  return t.includes("{request}") ? t.split("{request}").join(request) : `${t}\n\n${request}`;
}

/** One refusal-prefix list and how its source matched it. */
export interface RefusalPrefixList {
  /** The list's key in the file. */
  name: string;
  /** The strings. */
  prefixes: string[];
  /** "start": the stripped completion starts with one; "anywhere": substring match. */
  mode: "anywhere" | "start";
  /** Whether the source compared case-sensitively. */
  caseSensitive: boolean;
  /** Where the list comes from (repository, file). */
  source: string;
  /** The source's matching rule, verbatim. */
  match: string;
}

/**
 * Loads refusal_prefixes.json: `{<name>: {source, match, license, prefixes}}` (keys
 * `gcg_test_prefixes_long`, `gcg_test_prefixes_short`, `refusal_direction_jbb_substrings`,
 * `xstest_strmatch_refusal_prefixes`). `mode`/`caseSensitive` are read from `match`
 * ("startswith" -> start; "case-insensitive" or "lower()" -> case-insensitive), so
 * `prefixRefusalJudge(list.prefixes, list)` reproduces each source's rule.
 */
export async function loadRefusalPrefixes(
  path: string,
): Promise<Record<string, RefusalPrefixList>> {
  const data = await readJson(path);
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new Error(`${path}: expected an object {name: {prefixes: [...], match: "..."}}.`);
  }
  const out: Record<string, RefusalPrefixList> = {};
  for (const [name, v] of Object.entries(data as Record<string, unknown>)) {
    const e = v as { prefixes?: unknown; match?: unknown; source?: unknown };
    if (!Array.isArray(e?.prefixes) || !e.prefixes.every((p) => typeof p === "string")) {
      throw new Error(`${path}: field "${name}.prefixes" must be an array of strings.`);
    }
    const match = typeof e.match === "string" ? e.match : "";
    out[name] = {
      name,
      prefixes: e.prefixes as string[],
      mode: /startswith/i.test(match) ? "start" : "anywhere",
      caseSensitive: !/case-insensitive|lower\(\)/i.test(match),
      source: typeof e.source === "string" ? e.source : "",
      match,
    };
  }
  return out;
}

/** Options for {@linkcode loadRefusalDirectionSplit}. */
export interface RefusalSplitOptions {
  /** Label of every row. @default from the file name: harmful_* -> harmful, harmless_* -> benign */
  label?: PromptLabel;
  /** Split. @default from the file name (_train, _val, _test) */
  split?: Split;
}

/**
 * Loads one of Arditi et al.'s refusal-direction split files (`[{instruction, category}]`,
 * e.g. harmful_train.json) as an arquero table of {@linkcode PromptRow}; a null category
 * becomes "unspecified".
 */
export async function loadRefusalDirectionSplit(
  path: string,
  opts: RefusalSplitOptions = {},
): Promise<aq.ColumnTable> {
  const file = basename(path);
  const label = opts.label ??
    (/^harmful/i.test(file) ? "harmful" : /^harmless/i.test(file) ? "benign" : undefined);
  if (label === undefined) {
    throw new Error(
      `Cannot label ${path}: the file name starts with neither "harmful" nor "harmless"; ` +
        `pass {label: "harmful" | "benign"}.`,
    );
  }
  const data = await readJson(path);
  if (!Array.isArray(data)) {
    throw new Error(`${path}: expected a JSON array of {instruction, category} objects.`);
  }
  const split = opts.split ?? splitFromName(path);
  const stem = file.replace(/\.json$/i, "");
  return toTable(data.map((e, k) => {
    const o = e as { instruction?: unknown; category?: unknown };
    if (typeof o?.instruction !== "string" || o.instruction.trim() === "") {
      throw new Error(`${path}: element ${k} needs a non-empty string field "instruction".`);
    }
    const row: PromptRow = {
      id: `${stem}-${k}`,
      prompt: o.instruction,
      label,
      category: typeof o.category === "string" ? o.category : UNSPECIFIED,
      source: "refusal_direction",
    };
    if (split) row.split = split;
    return row;
  }));
}
