/**
 * The README's result tables, generated from the saved results (`datasets/results/`, what
 * `deno task claims --collect runs/` copies there) instead of typed by hand: one function per
 * table, each from the experiment's result rows, rates in % with their 95% intervals and
 * differences in points. `deno task claims --tables` prints them; `--write-readme` replaces each
 * README block between `<!-- table: ID -->` and `<!-- /table -->` with its table, and
 * tests/result_tables_test.ts fails when a block and its table differ.
 *
 * @module
 */

import { markdownTable } from "../eval/judge_tables.ts";
import type { ResultRow } from "./rows.ts";
import { PREDICT_METRICS } from "./defence_metrics.ts";
import type { SavedExperiment, SavedResults } from "./saved_results.ts";

/** One generated table. */
export interface ResultTable {
  /** The marker id, e.g. "alphaalign-rates". */
  id: string;
  /** Which saved result it reads. */
  experiment: SavedExperiment;
  /** A caption line: the run it comes from and how the intervals were made. */
  caption: string;
  /** The markdown table. */
  markdown: string;
}

const fin = (x: number) => Number.isFinite(x);
/** 100 x rounded, "-0" as "0", with a "+" on non-negative numbers when `signed`. */
const int = (x: number, signed = false) => {
  const t = (100 * x).toFixed(0).replace(/^-0$/, "0");
  return signed && !t.startsWith("-") ? `+${t}` : t;
};

/**
 * A rate in % with its interval: "29 [21, 38]" ("-" when absent).
 *
 * @example
 * ```ts
 * import { pctCell } from "./result_tables.ts";
 * import { resultRow } from "./rows.ts";
 * console.log(pctCell(resultRow({ experiment: "x", table: "rates", value: 0.29, lo: 0.21, hi: 0.38 }))); // 29 [21, 38]
 * ```
 */
export function pctCell(r: ResultRow | undefined): string {
  if (!r || !fin(r.value)) return "-";
  const ci = fin(r.lo) && fin(r.hi) ? ` [${int(r.lo)}, ${int(r.hi)}]` : "";
  return `${int(r.value)}${ci}`;
}

/**
 * A difference in points with its interval: "-11 [-46, +11]" ("-" when absent).
 *
 * @example
 * ```ts
 * import { pointsCell } from "./result_tables.ts";
 * import { resultRow } from "./rows.ts";
 * console.log(pointsCell(resultRow({ experiment: "x", table: "deltas", value: -0.11, lo: -0.46, hi: 0.11 }))); // -11 [-46, +11]
 * ```
 */
export function pointsCell(r: ResultRow | undefined): string {
  if (!r || !fin(r.value)) return "-";
  const ci = fin(r.lo) && fin(r.hi) ? ` [${int(r.lo, true)}, ${int(r.hi, true)}]` : "";
  return `${int(r.value, true)}${ci}`;
}

/**
 * A plain number with its interval: "0.29 [0.28, 0.30]" ("-" when absent).
 *
 * @example
 * ```ts
 * import { numberCell } from "./result_tables.ts";
 * import { resultRow } from "./rows.ts";
 * console.log(numberCell(resultRow({ experiment: "x", table: "dynamics", value: 0.29, lo: 0.28, hi: 0.3 }))); // 0.29 [0.28, 0.30]
 * ```
 */
export function numberCell(r: ResultRow | undefined, digits = 2): string {
  if (!r || !fin(r.value)) return "-";
  const f = (x: number) => x.toFixed(digits);
  return `${f(r.value)}${fin(r.lo) && fin(r.hi) ? ` [${f(r.lo)}, ${f(r.hi)}]` : ""}`;
}

const find = (rows: readonly ResultRow[], table: string, condition: string, metric: string) =>
  rows.find((r) => r.table === table && r.condition === condition && r.metric === metric);

const conditionsOf = (rows: readonly ResultRow[], table: string) => [
  ...new Set(rows.filter((r) => r.table === table).map((r) => r.condition)),
];

/**
 * Conditions x metrics of a "rates" table, one column per metric (in %).
 *
 * @example
 * ```ts
 * import { ratesMarkdown } from "./result_tables.ts";
 * import { resultRow } from "./rows.ts";
 * const rows = [resultRow({ experiment: "x", table: "rates", condition: "a", metric: "m", value: 0.29, lo: 0.21, hi: 0.38 })];
 * console.log(ratesMarkdown(rows, [["m", "m (%)"]])); // | a | 29 [21, 38] |
 * ```
 */
export function ratesMarkdown(
  rows: readonly ResultRow[],
  columns: readonly (readonly [metric: string, header: string])[],
  opts: { first?: string; table?: string } = {},
): string {
  const table = opts.table ?? "rates";
  const body = conditionsOf(rows, table).map((c) => [
    c,
    ...columns.map(([m]) => pctCell(find(rows, table, c, m))),
  ]);
  return markdownTable([opts.first ?? "model", ...columns.map(([, h]) => h)], body);
}

/**
 * Every (condition - reference) pair of a "deltas" table x metrics, in points.
 *
 * @example
 * ```ts
 * import { deltasMarkdown } from "./result_tables.ts";
 * import { resultRow } from "./rows.ts";
 * const rows = [resultRow({ experiment: "x", table: "deltas", condition: "a", reference: "b", metric: "m", value: -0.1, lo: -0.2, hi: 0 })];
 * console.log(deltasMarkdown(rows, [["m", "m"]])); // | a - b | -10 [-20, +0] |
 * ```
 */
export function deltasMarkdown(
  rows: readonly ResultRow[],
  columns: readonly (readonly [metric: string, header: string])[],
): string {
  const pairs = [
    ...new Map(
      rows.filter((r) => r.table === "deltas").map((r) => [`${r.condition}\0${r.reference}`, r]),
    ).values(),
  ];
  const body = pairs.map((p) => [
    `${p.condition} - ${p.reference}`,
    ...columns.map(([m]) =>
      pointsCell(
        rows.find((r) =>
          r.table === "deltas" && r.condition === p.condition && r.reference === p.reference &&
          r.metric === m
        ),
      )
    ),
  ]);
  return markdownTable(["difference (points)", ...columns.map(([, h]) => h)], body);
}

const RL_COLUMNS = [
  ["harmful compliance", "harmful compliance"],
  ["jailbreak compliance", "jailbreak compliance"],
  ["over-refusal", "over-refusal"],
  ["benign accuracy", "benign accuracy"],
  ["benign accuracy (train prompts)", "benign accuracy, train prompts"],
] as const;

/** The traits experiment's dose - baseline matrix (`table` "matrix" or "matrix (train templates)"). */
function traitsMatrix(rows: readonly ResultRow[], table: string): string {
  const cells = rows.filter((r) => r.table === table);
  const from = [...new Set(cells.map((r) => r.trainDomain))];
  const on = [...new Set(cells.map((r) => r.evalDomain))];
  const body = from.map((t) => [
    t,
    ...on.map((e) => pointsCell(cells.find((r) => r.trainDomain === t && r.evalDomain === e))),
  ]);
  return markdownTable(["dose from \\ evaluated on", ...on], body);
}

/** The hacking experiment: rates, the difference to the frozen compass, and the detector. */
function hackingTable(rows: readonly ResultRow[]): string {
  const conds = conditionsOf(rows, "rates");
  const dyn = (c: string, m: string) =>
    rows.find((r) => r.table === "dynamics" && r.condition === c && r.metric.startsWith(m));
  const body = conds.map((c) => [
    c,
    pctCell(find(rows, "rates", c, "harmful compliance")),
    pointsCell(
      rows.find((r) =>
        r.table === "deltas" && r.condition === c && r.reference === "frozen" &&
        r.metric === "harmful compliance"
      ),
    ),
    pctCell(find(rows, "rates", c, "jailbreak compliance")),
    pctCell(find(rows, "rates", c, "over-refusal")),
    pctCell(find(rows, "rates", c, "benign accuracy")),
    numberCell(dyn(c, "compass_p_safe")),
    numberCell(dyn(c, "fresh_p_safe")),
    numberCell(dyn(c, "gap_change")),
  ]);
  return markdownTable([
    "model",
    "harmful compliance",
    "vs frozen (points)",
    "jailbreak compliance",
    "over-refusal",
    "benign accuracy",
    "compass p_safe (last 10)",
    "fresh p_safe",
    "gap change",
  ], body);
}

/** Defences: prefill and injection curves, over-refusal, accuracy, Park & Kim's r. */
function defencesTable(rows: readonly ResultRow[]): string {
  const conds = conditionsOf(rows, "rates");
  const depths = (prefix: string) =>
    [
      ...new Set(
        rows.filter((r) => r.metric.startsWith(prefix)).map((r) =>
          Number(r.metric.slice(prefix.length).replace(")", ""))
        ),
      ),
    ].sort((a, b) => a - b);
  const ks = depths("prefill ASR (k="), ts = depths("injection ASR (t=");
  const within = (c: string) =>
    rows.find((r) => r.condition === c && r.metric.startsWith(PREDICT_METRICS.within));
  const body = conds.map((c) => [
    c,
    ...ks.map((k) => pctCell(find(rows, "rates", c, `prefill ASR (k=${k})`))),
    ...ts.map((t) => pctCell(find(rows, "rates", c, `injection ASR (t=${t})`))),
    pctCell(find(rows, "rates", c, "over-refusal")),
    pctCell(find(rows, "rates", c, "benign accuracy")),
    numberCell(within(c)),
  ]);
  return markdownTable([
    "model",
    ...ks.map((k) => `prefill k=${k}`),
    ...ts.map((t) => `injection t=${t}`),
    "over-refusal",
    "benign accuracy",
    "refusal direction vs injection r, within template (models not trained here)",
  ], body);
}

/** "92 -> 8": a rate before and after an action, in % (no intervals: see the saved rows). */
function arrow(before: ResultRow | undefined, after: ResultRow | undefined): string {
  if (!before || !after || !fin(before.value) || !fin(after.value)) return "-";
  return `${int(before.value)} -> ${int(after.value)}`;
}

/**
 * Persistence: refusal before and after harmful fine-tuning, personas, steering, over-refusal,
 * and the calibrated monitor (held-out false flags; harmful ASR and over-refusal before and
 * after `stop`).
 */
function persistenceTable(rows: readonly ResultRow[]): string {
  const models = conditionsOf(rows, "no attack");
  const tests = [...new Set(rows.map((r) => r.table))];
  const get = (m: string, test: string, metric: RegExp) =>
    rows.find((r) => r.condition === m && r.table === test && metric.test(r.metric));
  const cellOf = (m: string, test: string, metric: RegExp) => pctCell(get(m, test, metric));
  const fineTuning = tests.filter((t) => t.startsWith("harmful fine-tuning"));
  const monitored = tests.includes("monitor: stop");
  const body = models.map((m) => [
    m,
    cellOf(m, "no attack", /^refusal/),
    cellOf(m, "no attack", /^compliance/),
    ...fineTuning.map((t) => cellOf(m, t, /^refusal/)),
    cellOf(m, "adversarial personas", /^compliance/),
    cellOf(m, "adversarial personas", /^refusal/),
    cellOf(m, "helpful steering", /^instruction followed/),
    cellOf(m, "no attack", /^over-refusal/),
    ...(monitored
      ? [
        cellOf(m, "monitor calibration", /^held-out false flags/),
        arrow(
          get(m, "monitor: none (unmonitored)", /^ASR \(harmful\)/),
          get(m, "monitor: stop", /^ASR \(harmful\)/),
        ),
        arrow(
          get(m, "monitor: none (unmonitored)", /^over-refusal/),
          get(m, "monitor: stop", /^over-refusal/),
        ),
      ]
      : []),
  ]);
  return markdownTable([
    "model",
    "refusal",
    "harmful compliance",
    ...fineTuning.map((t) => `refusal after ${t.replace("harmful fine-tuning ", "FT ")}`),
    "persona compliance",
    "persona refusal",
    "steering followed",
    "over-refusal",
    ...(monitored
      ? ["monitor false flags, held out", "`stop`: harmful ASR", "`stop`: over-refusal"]
      : []),
  ], body);
}

type Builder = { id: string; experiment: SavedExperiment; build: (rows: ResultRow[]) => string };

const BUILDERS: Builder[] = [
  {
    id: "alphaalign-rates",
    experiment: "alphaalign",
    build: (r) =>
      ratesMarkdown(r, [...RL_COLUMNS, ["harmful refusal", "harmful refusal"], [
        "format (V_f)",
        "format (V_f)",
      ]]),
  },
  {
    id: "alphaalign-deltas",
    experiment: "alphaalign",
    build: (r) => deltasMarkdown(r, RL_COLUMNS),
  },
  {
    id: "craft-rates",
    experiment: "craft",
    build: (r) => ratesMarkdown(r, [...RL_COLUMNS, ["harmful refusal", "harmful refusal"]]),
  },
  { id: "craft-deltas", experiment: "craft", build: (r) => deltasMarkdown(r, RL_COLUMNS) },
  { id: "traits-matrix", experiment: "traits", build: (r) => traitsMatrix(r, "matrix") },
  {
    id: "traits-matrix-train",
    experiment: "traits",
    build: (r) => traitsMatrix(r, "matrix (train templates)"),
  },
  { id: "hacking", experiment: "hacking", build: hackingTable },
  { id: "defences", experiment: "defences", build: defencesTable },
  { id: "persistence", experiment: "persistence", build: persistenceTable },
];

/** Every table id, in README order. */
export const RESULT_TABLE_IDS: readonly string[] = BUILDERS.map((b) => b.id);

/**
 * Every table whose experiment has a saved result (the others are left out).
 *
 * @example
 * ```ts ignore
 * import { loadSavedResults } from "./saved_results.ts";
 * for (const t of resultTables(await loadSavedResults("datasets/results"))) console.log(t.markdown);
 * ```
 */
export function resultTables(results: SavedResults): ResultTable[] {
  return BUILDERS.flatMap((b) => {
    const saved = results[b.experiment];
    if (!saved) return [];
    // How the intervals were made, as the rows say (side tables and point notes left out).
    const side = new Set(["compass", "throughput", "refits", "dynamics"]);
    const methods = [
      ...new Set(
        saved.rows.filter((r) => !side.has(r.table)).map((r) =>
          r.method.replace(/ \(no discordant[^)]*\)$/, "")
        ).filter(Boolean),
      ),
    ];
    return [{
      id: b.id,
      experiment: b.experiment,
      caption: `_Generated from \`${saved.run}\` (${saved.quick ? "quick sizes" : "full size"}); ` +
        `rates in %, differences in points, 95% intervals (${methods.join("; ")})._`,
      markdown: b.build(saved.rows),
    }];
  });
}

const BLOCK = /<!-- table: ([\w-]+) -->\n[\s\S]*?<!-- \/table -->/g;

/**
 * The ids of the table blocks in a markdown text (`<!-- table: ID -->` ... `<!-- /table -->`).
 *
 * @example
 * ```ts
 * import { tableBlockIds } from "./result_tables.ts";
 * console.log(tableBlockIds("x\n<!-- table: hacking -->\n| a |\n<!-- /table -->\n")); // ["hacking"]
 * ```
 */
export function tableBlockIds(text: string): string[] {
  return [...text.matchAll(BLOCK)].map((m) => m[1]);
}

/** A block's content with formatting removed: whitespace collapsed, table padding dropped. */
function normalised(content: string): string {
  return content.split("\n").map((l) => l.trim()).filter(Boolean)
    .map((l) => l.startsWith("|") ? l.replace(/\s+/g, " ").replace(/-{3,}/g, "---") : l)
    .join(" ").replace(/\s+/g, " ");
}

/**
 * `text` with every table block whose content differs from its generated table and caption
 * replaced by them (`deno fmt` may then re-pad it: a block is compared with formatting
 * removed, so a formatted block counts as current); blocks whose table is not available (no
 * saved result) are kept. Unknown ids are an error.
 *
 * @example
 * ```ts ignore
 * const readme = fillTableBlocks(await Deno.readTextFile("README.md"), resultTables(results));
 * ```
 */
export function fillTableBlocks(text: string, tables: readonly ResultTable[]): string {
  return text.replace(BLOCK, (whole, id: string) => {
    if (!RESULT_TABLE_IDS.includes(id)) {
      throw new Error(`unknown result table '${id}' (known: ${RESULT_TABLE_IDS.join(", ")})`);
    }
    const t = tables.find((x) => x.id === id);
    if (!t) return whole;
    const content = `${t.caption}\n\n${t.markdown}`;
    const inner = whole.slice(whole.indexOf("-->") + 3, whole.lastIndexOf("<!--"));
    return normalised(inner) === normalised(content)
      ? whole
      : `<!-- table: ${id} -->\n\n${content}\n\n<!-- /table -->`;
  });
}
