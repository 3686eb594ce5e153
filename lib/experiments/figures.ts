/**
 * Figure builders of the RL experiments over their result rows and run logs: grouped rate
 * bars with intervals, and a metric per RL step averaged over the seeds of each condition.
 *
 * @module
 */

import { plotBars } from "../viz/plots/bars.ts";
import { plotCurves } from "../viz/plots/curves.ts";
import type { PlotlyFigure } from "../viz/figure.ts";
import type { ResultRow } from "./rows.ts";
import type { RunRecord } from "./run.ts";

/** Grouped bars (x = metric, one colour per condition) of one table's rows, with intervals. */
export function barsFigure(
  rows: readonly ResultRow[],
  title: string,
  yTitle = "rate",
): PlotlyFigure {
  return plotBars(
    rows.map((r) => ({ name: r.metric, value: r.value, lo: r.lo, hi: r.hi, group: r.condition })),
    { title, yTitle },
  );
}

/** `metric` per RL step, mean over the seeds of each condition, one line per condition. */
export function curvesFigure(
  runs: readonly RunRecord[],
  metric: string,
  title: string,
): PlotlyFigure {
  const conds = [...new Set(runs.map((r) => r.condition))];
  const steps = Math.max(0, ...runs.map((r) => r.log.rows.length));
  const rows = Array.from({ length: steps }, (_, s) => {
    const row: Record<string, number> = { step: s + 1 };
    for (const c of conds) {
      const v = runs.filter((r) => r.condition === c).map((r) => r.log.rows[s]?.[metric])
        .filter((x): x is number => typeof x === "number" && Number.isFinite(x));
      if (v.length) row[c] = v.reduce((a, b) => a + b, 0) / v.length;
    }
    return row;
  });
  return plotCurves(rows, { x: "step", y: conds, overlay: true, title, yTitle: metric });
}
