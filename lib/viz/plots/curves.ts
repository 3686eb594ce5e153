/**
 * Training curves (RL and SFT run logs): one line per metric.
 *
 * @module
 */

import {
  assignColors,
  axis,
  baseLayout,
  CONFIG,
  figure,
  num,
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  rowsOf,
} from "../figure.ts";

/** Options of {@link plotCurves}. */
export interface CurvesOptions {
  /** Column for the x axis (e.g. "step"). */
  x: string;
  /** Columns to draw (e.g. ["reward", "kl", "refusal_rate"]). */
  y: string[];
  /** Figure title. @default "Training curves" */
  title?: string;
  /** X axis title. @default the x column name */
  xTitle?: string;
  /** Y axis title, used when overlaid. @default "value" */
  yTitle?: string;
  /** Draw every column on one axis instead of one stacked subplot per column. @default false */
  overlay?: boolean;
}

/**
 * Metric curves over a shared x (RL reward / KL / refusal rate per step). Missing or
 * non-finite values become gaps. Default: one subplot per column, x axes linked.
 */
export function plotCurves(
  rows: RowsInput<Record<string, unknown>>,
  opts: CurvesOptions,
): PlotlyFigure {
  const fn = "plotCurves";
  const all = rowsOf(rows, fn);
  if (opts.y.length === 0) throw new Error(`${fn}: opts.y is empty; name at least one column`);
  const xs = all.map((r, i) => num(r, opts.x, i, fn));
  const colors = assignColors(opts.y);
  const n = opts.overlay ? 1 : opts.y.length;
  const data: PlotlyTrace[] = opts.y.map((col, k) => ({
    type: "scatter",
    mode: all.length > 60 ? "lines" : "lines+markers",
    name: col,
    x: xs,
    y: all.map((r) => {
      const v = (r as Record<string, unknown>)[col];
      return typeof v === "number" && Number.isFinite(v) ? v : null;
    }),
    line: { color: colors.get(col) },
    xaxis: opts.overlay || k === 0 ? "x" : `x${k + 1}`,
    yaxis: opts.overlay || k === 0 ? "y" : `y${k + 1}`,
  }));
  const xTitle = opts.xTitle ?? opts.x;
  const layout = baseLayout(
    opts.title ?? "Training curves",
    axis(n === 1 ? xTitle : ""),
    axis(opts.overlay ? opts.yTitle ?? "value" : opts.y[0]),
  );
  if (n > 1) {
    layout.grid = { rows: n, columns: 1, pattern: "independent", roworder: "top to bottom" };
    layout.height = Math.max(360, 200 * n + 80);
    layout.showlegend = false;
    for (let k = 2; k <= n; k++) {
      layout[`yaxis${k}`] = axis(opts.y[k - 1]);
      layout[`xaxis${k}`] = axis(k === n ? xTitle : "", { matches: "x" });
    }
  }
  return figure({ data, layout, config: CONFIG });
}
