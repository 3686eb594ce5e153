/**
 * Lines with shaded interval bands over ordered categories (the logit lens per layer, direct
 * logit attribution per component).
 *
 * @module
 */

import {
  assignColors,
  axis,
  baseLayout,
  CONFIG,
  groupBy,
  num,
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  rowsOf,
  str,
  type TitleOptions,
  withAlpha,
} from "../figure.ts";

/** One point of a banded line: `x` is a category drawn in first-seen order. */
export interface BandLineRow {
  /** Category on the x axis (a layer label, a component name). */
  x: string;
  /** The estimate. */
  value: number;
  /** Lower end of its interval. */
  lo?: number;
  /** Upper end of its interval. */
  hi?: number;
  /** Which line. @default "value" */
  series?: string;
}

/** Options of {@link plotBandLine}. */
export interface BandLineOptions extends TitleOptions {
  /** Draw a dashed line at this y (e.g. 0). @default none */
  reference?: number;
}

/**
 * One line per `series` over ordered x categories, with a shaded band from `lo` to `hi`
 * where given (95% bootstrap intervals over prompts, say).
 *
 * @example
 * ```ts
 * const fig = plotBandLine([
 *   { x: "embed", value: 0.1, lo: 0, hi: 0.2 },
 *   { x: "L1", value: 1.5, lo: 1.1, hi: 1.9 },
 * ], { title: "Logit lens", reference: 0 });
 * fig.data.length; // 2: the band and the line
 * ```
 */
export function plotBandLine(
  rows: RowsInput<BandLineRow>,
  opts: BandLineOptions = {},
): PlotlyFigure {
  const fn = "plotBandLine";
  const all = rowsOf(rows, fn).map((r, i) => ({
    x: str(r, "x"),
    series: str(r, "series", "value"),
    value: num(r, "value", i, fn),
    lo: num(r, "lo", i, fn, true),
    hi: num(r, "hi", i, fn, true),
  }));
  const order = [...new Set(all.map((r) => r.x))];
  const groups = groupBy(all, (r) => r.series);
  const colors = assignColors([...groups.keys()]);
  const data: PlotlyTrace[] = [];
  for (const [series, pts] of groups) {
    pts.sort((a, b) => order.indexOf(a.x) - order.indexOf(b.x));
    const color = colors.get(series)!;
    const banded = pts.filter((p) => Number.isFinite(p.lo) && Number.isFinite(p.hi));
    if (banded.length) {
      data.push({
        type: "scatter",
        mode: "lines",
        name: `${series} interval`,
        x: [...banded.map((p) => p.x), ...banded.map((p) => p.x).reverse()],
        y: [...banded.map((p) => p.hi), ...banded.map((p) => p.lo).reverse()],
        fill: "toself",
        fillcolor: withAlpha(color, 0.2),
        line: { width: 0 },
        hoverinfo: "skip",
        showlegend: false,
      });
    }
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: series,
      x: pts.map((p) => p.x),
      y: pts.map((p) => p.value),
      line: { color },
      marker: { color },
    });
  }
  const shapes = opts.reference === undefined ? [] : [{
    type: "line",
    xref: "paper",
    x0: 0,
    x1: 1,
    y0: opts.reference,
    y1: opts.reference,
    line: { dash: "dash", color: "#999", width: 1 },
  }];
  return {
    data,
    layout: baseLayout(
      opts.title ?? "",
      axis(opts.xTitle ?? "", { type: "category", categoryorder: "array", categoryarray: order }),
      axis(opts.yTitle ?? "value"),
      { shapes },
    ),
    config: CONFIG,
  };
}
