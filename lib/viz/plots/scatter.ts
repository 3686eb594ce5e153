/**
 * Labelled markers with 2-D error bars (safety against utility across methods).
 *
 * @module
 */

import {
  assignColors,
  axis,
  baseLayout,
  CONFIG,
  errorBars,
  figure,
  num,
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  rowsOf,
  str,
} from "../figure.ts";

/** One method in a scatter (e.g. safety vs utility), with optional intervals on each axis. */
export interface ScatterRow {
  /** X value. */
  x: number;
  /** Y value. */
  y: number;
  /** Method name (marker text, colour, legend). */
  label: string;
  /** Lower end of the x interval. */
  xlo?: number;
  /** Upper end of the x interval. */
  xhi?: number;
  /** Lower end of the y interval. */
  ylo?: number;
  /** Upper end of the y interval. */
  yhi?: number;
}

/** One labelled marker per row (safety vs utility across methods), with 2-D error bars. */
export function plotScatter(
  rows: RowsInput<ScatterRow>,
  opts: { xTitle: string; yTitle: string; title?: string },
): PlotlyFigure {
  const fn = "plotScatter";
  const all = rowsOf(rows, fn);
  const colors = assignColors(all.map((r) => str(r, "label")));
  const data: PlotlyTrace[] = all.map((r, i) => {
    const x = [num(r, "x", i, fn)];
    const y = [num(r, "y", i, fn)];
    const label = str(r, "label");
    const o = (f: string) => [num(r, f, i, fn, true)];
    return {
      type: "scatter",
      mode: "markers+text",
      name: label,
      x,
      y,
      text: [label],
      textposition: "top center",
      marker: { color: colors.get(label), size: 11 },
      error_x: errorBars(x, o("xlo"), o("xhi")),
      error_y: errorBars(y, o("ylo"), o("yhi")),
    };
  });
  return figure({
    data,
    layout: baseLayout(
      opts.title ?? `${opts.yTitle} vs ${opts.xTitle}`,
      axis(opts.xTitle),
      axis(opts.yTitle),
    ),
    config: CONFIG,
  });
}
