/**
 * What an RL experiment returns: long-format result rows (arquero-ready: one row per
 * condition x metric, with its interval), figures, the RL run logs, and its settings; it
 * renders itself in Jupyter and becomes a standalone HTML report. Also the bookkeeping
 * from graded answers to rows: hits per condition, metric and seed, then rates and
 * seed-paired differences with the two-level bootstrap of `measure.ts`.
 *
 * @module
 */

import * as aq from "arquero";
import type { PlotlyFigure } from "../viz/figure.ts";
import { figureBundle, JUPYTER_DISPLAY, type MimeBundle, tableBundle } from "../viz/display.ts";
import type { Report, ReportSection } from "../viz/report.ts";
import {
  type CIOptions,
  deltaEstimate,
  type Estimate,
  type Hits,
  rateEstimate,
} from "./measure.ts";
import { type RunRecord, tokensPerSecond } from "./run.ts";
import type { WorldPromptRow } from "../data/safetyworld/plan.ts";

/** One result row (long format). `table` says which table of the experiment it belongs to. */
export interface ResultRow {
  /** "alphaalign", "craft" or "traits". */
  experiment: string;
  /** "rates", "deltas", "matrix", "compass", "throughput", ... */
  table: string;
  /** The condition (model or training arm). */
  condition: string;
  /** What was measured. */
  metric: string;
  /** Estimate: a rate, a difference of rates, an AUROC, tokens per second. */
  value: number;
  /** Lower end of the 95% interval (NaN when none). */
  lo: number;
  /** Upper end of the 95% interval (NaN when none). */
  hi: number;
  /** Observations behind the value (prompts x seeds). */
  n: number;
  /** Evaluation prompts. */
  prompts: number;
  /** The seeds, space-separated. */
  seeds: string;
  /** How the interval was made. */
  method: string;
  /** Deltas: the condition subtracted. */
  reference: string;
  /** Traits: the training domain ("" elsewhere). */
  trainDomain: string;
  /** Traits: the evaluation domain ("" elsewhere). */
  evalDomain: string;
}

/** A row with the defaults filled in. */
export function resultRow(
  r: Partial<ResultRow> & Pick<ResultRow, "experiment" | "table">,
): ResultRow {
  const { experiment, table, ...rest } = r;
  return {
    experiment,
    table,
    condition: "",
    metric: "",
    value: NaN,
    lo: NaN,
    hi: NaN,
    n: 0,
    prompts: 0,
    seeds: "",
    method: "",
    reference: "",
    trainDomain: "",
    evalDomain: "",
    ...rest,
  };
}

/** Graded answers per condition and metric, one row of hits per seed (seeds in call order). */
export class HitTable {
  readonly #data = new Map<string, Map<string, { ids: string[]; hits: boolean[][] }>>();

  /** Adds one seed's (or a deterministic model's) hits for `condition`. */
  add(condition: string, hits: Hits): void {
    const c = this.#data.get(condition) ?? new Map();
    for (const [metric, h] of Object.entries(hits)) {
      const cur = c.get(metric);
      if (cur && cur.ids.join("\n") !== h.ids.join("\n")) {
        throw new Error(`HitTable: ${condition} / ${metric} was measured on other prompts`);
      }
      c.set(metric, { ids: h.ids, hits: [...(cur?.hits ?? []), h.hits] });
    }
    this.#data.set(condition, c);
  }

  /** Conditions in insertion order. */
  conditions(): string[] {
    return [...this.#data.keys()];
  }

  /** Metrics of a condition. */
  metrics(condition: string): string[] {
    return [...(this.#data.get(condition)?.keys() ?? [])];
  }

  /** hits[seed][prompt] of a condition and metric. */
  get(condition: string, metric: string): boolean[][] {
    const h = this.#data.get(condition)?.get(metric);
    if (!h) throw new Error(`HitTable: nothing measured for ${condition} / ${metric}`);
    return h.hits;
  }
}

function fromEstimate(e: Estimate, hits: boolean[][]) {
  return {
    value: e.value,
    lo: e.lo,
    hi: e.hi,
    method: e.method,
    n: hits.length * hits[0].length,
    prompts: hits[0].length,
  };
}

/** One "rates" row per condition and metric. */
export function rateRows(
  experiment: string,
  hits: HitTable,
  seeds: readonly number[],
  ci: CIOptions,
  extra: (condition: string, metric: string) => Partial<ResultRow> = () => ({}),
): ResultRow[] {
  return hits.conditions().flatMap((c) =>
    hits.metrics(c).map((m) => {
      const h = hits.get(c, m);
      return resultRow({
        experiment,
        table: "rates",
        condition: c,
        metric: m,
        seeds: h.length === 1 ? "deterministic" : seeds.join(" "),
        ...fromEstimate(rateEstimate(h, ci), h),
        ...extra(c, m),
      });
    })
  );
}

/** One "deltas" row per (condition, reference) pair and shared metric: rate(condition) - rate(reference). */
export function deltaRows(
  experiment: string,
  hits: HitTable,
  pairs: readonly (readonly [string, string])[],
  seeds: readonly number[],
  ci: CIOptions,
  extra: (condition: string, metric: string) => Partial<ResultRow> = () => ({}),
): ResultRow[] {
  return pairs.flatMap(([c, ref]) =>
    hits.metrics(c).filter((m) => hits.metrics(ref).includes(m)).map((m) => {
      const a = hits.get(c, m), b = hits.get(ref, m);
      return resultRow({
        experiment,
        table: "deltas",
        condition: c,
        reference: ref,
        metric: m,
        seeds: seeds.join(" "),
        ...fromEstimate(deltaEstimate(a, b, ci), a),
        ...extra(c, m),
      });
    })
  );
}

/** "throughput" rows: rollout tokens per second of the RL loop, per condition and overall. */
export function throughputRows(experiment: string, runs: readonly RunRecord[]): ResultRow[] {
  const conds = [...new Set(runs.map((r) => r.condition))];
  return [...conds, "all runs"].map((c) => {
    const mine = c === "all runs" ? runs : runs.filter((r) => r.condition === c);
    return resultRow({
      experiment,
      table: "throughput",
      condition: c,
      metric: "rollout tokens/s",
      value: tokensPerSecond(mine),
      n: mine.reduce((a, r) => a + r.tokens, 0),
      seeds: [...new Set(mine.map((r) => r.seed))].join(" "),
      method: `${mine.reduce((a, r) => a + r.rollouts, 0)} rollouts in ` +
        `${mine.reduce((a, r) => a + r.seconds, 0).toFixed(1)} s`,
    });
  });
}

/** One greedy answer of one condition to one held-out prompt. */
export interface ExampleRow {
  condition: string;
  seed: number | string;
  kind: string;
  prompt: string;
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
    .concat(["n", "seeds", "method"]);
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
