/**
 * KL divergence by response position (how deep an alignment goes).
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
  type TitleOptions,
} from "../figure.ts";

/** One point of a per-position KL curve; `series` compares models. */
export interface PositionKlRow {
  /** Response token position (0 = first). */
  position: number;
  /** KL divergence at that position, in nats. */
  kl: number;
  /** Which model or comparison. @default "KL" */
  series?: string;
}

/**
 * Per-token KL(aligned || base) by response position (the "shallow alignment" shape of
 * Qi et al. 2024: large at the first tokens, ~0 after), one line per `series`.
 */
export function plotPositionKl(
  rows: RowsInput<PositionKlRow>,
  opts: TitleOptions = {},
): PlotlyFigure {
  const groups = seriesOf(rows, "plotPositionKl", {
    key: "series",
    fallback: "KL",
    x: "position",
    y: "kl",
  });
  const colors = assignColors([...groups.keys()]);
  const data: PlotlyTrace[] = [...groups].map(([series, pts]) => ({
    type: "scatter",
    mode: "lines+markers",
    name: series,
    x: pts.map((p) => p.x),
    y: pts.map((p) => p.y),
    line: { color: colors.get(series) },
  }));
  return figure({
    data,
    layout: baseLayout(
      opts.title ?? "Per-token KL by response position",
      axis(opts.xTitle ?? "Response position"),
      axis(opts.yTitle ?? "KL (nats)", { rangemode: "tozero" }),
      { showlegend: groups.size > 1 },
    ),
    config: CONFIG,
  });
}
