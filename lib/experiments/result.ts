/**
 * What an RL experiment returns: its result rows (`rows.ts`), figures, RL run logs,
 * example answers and settings; it renders itself in Jupyter and becomes a standalone
 * HTML report (lib/viz/report.ts).
 *
 * @module
 */

import * as aq from "arquero";
import type { PlotlyFigure } from "../viz/figure.ts";
import { figureBundle, JUPYTER_DISPLAY, type MimeBundle, tableBundle } from "../viz/display.ts";
import type { Report, ReportSection } from "../viz/report.ts";
import type { RunRecord } from "./run.ts";
import type { ResultRow } from "./rows.ts";
import type { WorldPromptRow } from "../data/safetyworld/plan.ts";

/** One greedy answer of one condition to one held-out prompt. */
export interface ExampleRow {
  /** The model (condition). */
  condition: string;
  /** Its training seed ("start" for the starting checkpoint). */
  seed: number | string;
  /** The prompt's kind (harmful, jailbreak, borderline, task, trait). */
  kind: string;
  /** The held-out prompt. */
  prompt: string;
  /** The greedy answer. */
  answer: string;
}

/** The answers to the first `perKind` prompts of each of `kinds` in an evaluated set. */
export function pickExamples(
  condition: string,
  seed: number | string,
  rows: readonly WorldPromptRow[],
  texts: readonly string[],
  kinds: readonly string[],
  perKind = 2,
): ExampleRow[] {
  return kinds.flatMap((kind) =>
    rows.map((r, i) => ({ r, i })).filter(({ r }) => r.kind === kind && r.split === "test")
      .slice(0, perKind)
      .map(({ r, i }) => ({ condition, seed, kind, prompt: r.prompt, answer: texts[i].trim() }))
  );
}

/** A titled figure of an experiment. */
export interface NamedFigure {
  /** Short name, e.g. "rates". */
  name: string;
  /** The plotly figure. */
  figure: PlotlyFigure;
}

/** What every experiment function returns. */
export interface ExperimentResult {
  /** "alphaalign", "craft" or "traits". */
  name: string;
  /** A paragraph: what was run and how it is measured. */
  description: string;
  /** Every result row. */
  rows: ResultRow[];
  /** The rows as an arquero table. */
  table(): aq.ColumnTable;
  /** The figures (rate bars, curves, heatmaps). */
  figures: NamedFigure[];
  /** Every RL run (condition, seed, RunLog, throughput). */
  runs: RunRecord[];
  /** A few greedy answers per condition (first seed), to read what the rates count. */
  examples: ExampleRow[];
  /** Resolved settings, seeds included. */
  config: Record<string, unknown>;
  /** Wall-clock seconds of the whole experiment. */
  seconds: number;
  /** Jupyter display: description, figures and the tables. */
  [JUPYTER_DISPLAY](): MimeBundle;
}

const SHOWN = [
  "condition",
  "reference",
  "trainDomain",
  "evalDomain",
  "metric",
  "value",
  "lo",
  "hi",
];

function tableRowsOf(rows: readonly ResultRow[], table: string): Record<string, unknown>[] {
  const mine = rows.filter((r) => r.table === table);
  const cols = SHOWN.filter((k) => mine.some((r) => r[k as keyof ResultRow] !== ""))
    .concat(["n", ...(mine.some((r) => r.templates > 0) ? ["templates"] : []), "seeds", "method"]);
  return mine.map((r) => Object.fromEntries(cols.map((k) => [k, r[k as keyof ResultRow]])));
}

/** Builds the result object (table view and Jupyter display) from its parts. */
export function makeResult(
  parts: Omit<ExperimentResult, "table" | typeof JUPYTER_DISPLAY>,
): ExperimentResult {
  return {
    ...parts,
    table: () => aq.from(parts.rows),
    [JUPYTER_DISPLAY]: () => {
      const tables = [...new Set(parts.rows.map((r) => r.table))].map((t) =>
        tableBundle(tableRowsOf(parts.rows, t), { title: `${parts.name}: ${t}`, maxRows: 60 })
      );
      const figs = parts.figures.map((f) => figureBundle(f.figure)["text/html"]);
      return {
        "text/html": [`<p>${parts.description}</p>`, ...figs, ...tables.map((t) => t["text/html"])]
          .join("\n"),
        "text/plain": `${parts.name}: ${parts.rows.length} rows, ${parts.runs.length} RL runs, ` +
          `${parts.seconds.toFixed(0)} s\n` + tables.map((t) => t["text/plain"]).join("\n"),
      };
    },
  };
}

/** The standalone report of one or more results (lib/viz/report.ts). */
export function resultReport(results: readonly ExperimentResult[], subtitle?: string): Report {
  const sections: ReportSection[] = results.flatMap((r) => [
    {
      heading: `${r.name}: method and settings`,
      text: `${r.description}\n\nSettings: ${JSON.stringify(r.config)}\n\n` +
        `${r.runs.length} RL runs, ${r.seconds.toFixed(0)} s in all.`,
      figures: r.figures.map((f) => f.figure),
    },
    {
      heading: `${r.name}: tables`,
      tables: [
        ...[...new Set(r.rows.map((x) => x.table))].map((t) => ({
          title: t,
          rows: tableRowsOf(r.rows, t),
        })),
        {
          title: "example answers (first seed)",
          rows: r.examples as unknown as Record<string, unknown>[],
        },
      ],
    },
  ]);
  return { title: `RL experiments: ${results.map((r) => r.name).join(", ")}`, subtitle, sections };
}
