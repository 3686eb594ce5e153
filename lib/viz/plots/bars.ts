/**
 * Bars with error bars, grouped or one colour per bar.
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
  groupBy,
  num,
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  rowsOf,
  str,
  type TitleOptions,
} from "../figure.ts";

/** One bar, with an optional interval and group (grouped bars). */
export interface BarRow {
  /** Bar name (x category). */
  name: string;
  /** Bar height. */
  value: number;
  /** Lower end of its interval. */
  lo?: number;
  /** Upper end of its interval. */
  hi?: number;
  /** Group (one trace and colour each; grouped bars). */
  group?: string;
}

/** Bars with error bars: one trace per `group` (grouped), else one colour per bar name. */
export function plotBars(rows: RowsInput<BarRow>, opts: TitleOptions = {}): PlotlyFigure {
  const fn = "plotBars";
  const all = rowsOf(rows, fn);
  const grouped = all.some((r) => r.group !== undefined && r.group !== null);
  const bars = all.map((r, i) => ({
    group: grouped ? str(r, "group", "other") : "",
    name: str(r, "name"),
    y: num(r, "value", i, fn),
    lo: num(r, "lo", i, fn, true),
    hi: num(r, "hi", i, fn, true),
  }));
  const groups = groupBy(bars, (b) => b.group);
  const colors = assignColors(grouped ? [...groups.keys()] : bars.map((b) => b.name));
  const data: PlotlyTrace[] = [...groups].map(([group, rs]) => {
    const y = rs.map((b) => b.y);
    const names = rs.map((b) => b.name);
    return {
      type: "bar",
      name: grouped ? group : opts.yTitle ?? "value",
      x: names,
      y,
      marker: { color: grouped ? colors.get(group) : names.map((n) => colors.get(n)) },
      error_y: errorBars(y, rs.map((b) => b.lo), rs.map((b) => b.hi)),
    };
  });
  return figure({
    data,
    layout: baseLayout(
      opts.title ?? "Comparison",
      axis(opts.xTitle ?? ""),
      axis(opts.yTitle ?? "value"),
      {
        barmode: "group",
        showlegend: grouped,
      },
    ),
    config: CONFIG,
  });
}
