/**
 * A rate against a depth or dose (attack success by prefill depth...), with interval bands.
 *
 * @module
 */

import {
  assignColors,
  axis,
  baseLayout,
  CONFIG,
  figure,
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  seriesOf,
  withAlpha,
} from "../figure.ts";

/** One point of a rate curve (ASR by prefill depth...), with its interval. */
export interface RateRow {
  /** Depth or position (prefill depth k, injection position t...). */
  x: number;
  /** The rate (ASR, refusal rate...) in [0, 1]. */
  rate: number;
  /** Lower end of its interval (NaN or absent = no band). */
  lo: number;
  /** Upper end of its interval. */
  hi: number;
  /** Which line. @default the y title */
  series?: string;
}

/**
 * A rate against a depth or position (attack success vs prefill depth k, vs injection
 * position t), one line per series with a shaded interval band from `lo` to `hi`.
 */
export function plotRateCurve(
  rows: RowsInput<RateRow>,
  opts: { xTitle: string; yTitle: string; title?: string },
): PlotlyFigure {
  const fn = "plotRateCurve";
  const groups = seriesOf(rows, fn, { key: "series", fallback: opts.yTitle, x: "x", y: "rate" });
  const colors = assignColors([...groups.keys()]);
  const data: PlotlyTrace[] = [];
  for (const [series, pts] of groups) {
    const color = colors.get(series)!;
    const x = pts.map((p) => p.x);
    if (pts.some((p) => !Number.isNaN(p.lo) && !Number.isNaN(p.hi))) {
      const edge = { type: "scatter", mode: "lines", x, line: { width: 0 }, showlegend: false };
      data.push({ ...edge, name: `${series} lo`, y: pts.map((p) => p.lo), hoverinfo: "skip" });
      data.push({
        ...edge,
        name: `${series} hi`,
        y: pts.map((p) => p.hi),
        fill: "tonexty",
        fillcolor: withAlpha(color, 0.18),
        hoverinfo: "skip",
      });
    }
    const y = pts.map((p) => p.y);
    data.push({ type: "scatter", mode: "lines+markers", name: series, x, y, line: { color } });
  }
  return figure({
    data,
    layout: baseLayout(
      opts.title ?? `${opts.yTitle} by ${opts.xTitle}`,
      axis(opts.xTitle),
      axis(opts.yTitle, { range: [0, 1.02] }),
    ),
    config: CONFIG,
  });
}
