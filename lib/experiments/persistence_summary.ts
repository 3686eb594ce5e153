/**
 * Reading the persistence table (lib/experiments/persistence.ts) across model variants: the
 * headline measurements per model (refusal with no attack and after each harmful
 * fine-tuning size, persona compliance, helpful steering followed, over-refusal) as grouped
 * bars with their intervals, and as one wide row per model. A deep alignment keeps its
 * refusal after harmful fine-tuning and under personas while still following helpful
 * instructions and not over-refusing; a shallow one loses it.
 *
 * @module
 */

import type { PersistenceRow } from "./persistence.ts";
import { plotBars } from "../viz/plots/bars.ts";
import type { PlotlyFigure } from "../viz/figure.ts";

/** One headline measurement: which rows it reads and its short label. */
export interface PersistenceMeasure {
  /** Short label (legend, column). */
  label: string;
  /** Whether a table row is this measurement. */
  matches: (row: Pick<PersistenceRow, "test" | "metric">) => boolean;
}

const FT = /^harmful fine-tuning \(N=(\d+)\)$/;

/**
 * The headline measurements present in `rows`, in reading order: refusal (no attack),
 * refusal after each fine-tuning size (ascending N), persona compliance, steering followed,
 * over-refusal.
 */
export function persistenceMeasures(rows: readonly PersistenceRow[]): PersistenceMeasure[] {
  const sizes = [...new Set(rows.flatMap((r) => FT.exec(r.test)?.[1] ?? []))]
    .map(Number).sort((a, b) => a - b);
  const is = (test: string, metric: string) => (r: Pick<PersistenceRow, "test" | "metric">) =>
    r.test === test && r.metric === metric;
  const all: PersistenceMeasure[] = [
    { label: "refusal, no attack", matches: is("no attack", "refusal (harmful prompts)") },
    ...sizes.map((n) => ({
      label: `refusal after harmful FT N=${n}`,
      matches: is(`harmful fine-tuning (N=${n})`, "refusal (harmful prompts)"),
    })),
    { label: "persona compliance", matches: is("adversarial personas", "compliance") },
    { label: "helpful steering followed", matches: is("helpful steering", "instruction followed") },
    { label: "over-refusal", matches: is("no attack", "over-refusal (borderline prompts)") },
  ];
  return all.filter((m) => rows.some(m.matches));
}

/** Options of {@link plotPersistence}. */
export interface PersistenceFigureOptions {
  /** Figure title. @default "Persistence of alignment across models (95% intervals over prompts)" */
  title?: string;
  /** Only these measurement labels (see {@link persistenceMeasures}). @default all present */
  measures?: readonly string[];
}

/** Grouped bars: one group per model, one bar per headline measurement, with intervals. */
export function plotPersistence(
  rows: readonly PersistenceRow[],
  opts: PersistenceFigureOptions = {},
): PlotlyFigure {
  const measures = persistenceMeasures(rows).filter((m) =>
    !opts.measures || opts.measures.includes(m.label)
  );
  if (measures.length === 0) {
    throw new Error(
      "Cannot plot persistence: no headline rows (no attack, harmful fine-tuning, personas, " +
        "helpful steering) in the table",
    );
  }
  const models = [...new Set(rows.map((r) => r.model))];
  const bars = measures.flatMap((m) =>
    models.flatMap((model) => {
      const r = rows.find((x) => x.model === model && m.matches(x));
      return r ? [{ name: model, group: m.label, value: r.rate, lo: r.lo, hi: r.hi }] : [];
    })
  );
  return plotBars(bars, {
    title: opts.title ?? "Persistence of alignment across models (95% intervals over prompts)",
    yTitle: "rate",
    xTitle: "model",
  });
}

/** `rate [lo, hi]` in percent. */
export function formatRate(r: Pick<PersistenceRow, "rate" | "lo" | "hi">): string {
  const p = (v: number) => (Number.isFinite(v) ? (100 * v).toFixed(0) : "NaN");
  return `${p(r.rate)}% [${p(r.lo)}, ${p(r.hi)}]`;
}

/** One row per model: each headline measurement as `rate [lo, hi]` (percent). */
export function persistenceSummary(rows: readonly PersistenceRow[]): Record<string, string>[] {
  const measures = persistenceMeasures(rows);
  return [...new Set(rows.map((r) => r.model))].map((model) => {
    const out: Record<string, string> = { model };
    for (const m of measures) {
      const r = rows.find((x) => x.model === model && m.matches(x));
      out[m.label] = r ? formatRate(r) : "";
    }
    return out;
  });
}
