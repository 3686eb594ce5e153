/**
 * A layer sweep: a probe's AUROC per layer, one line per compass method.
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
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  seriesOf,
  type TitleOptions,
} from "../figure.ts";

/** One point of a layer sweep: a probe's AUROC at one layer, with an optional interval. */
export interface LayerSweepRow {
  /** Layer index (0 = embeddings). */
  layer: number;
  /** Compass method (one line each). */
  method: string;
  /** AUROC at this layer. */
  auroc: number;
  /** Lower end of its interval. */
  lo?: number;
  /** Upper end of its interval. */
  hi?: number;
}

/**
 * AUROC per layer, one line per compass method, error bars from `lo`/`hi`, a dashed line
 * at chance (0.5). Defaults: title "Safety compass: AUROC by layer", axes "Layer"/"AUROC".
 */
export function plotLayerSweep(
  rows: RowsInput<LayerSweepRow>,
  opts: TitleOptions = {},
): PlotlyFigure {
  const fn = "plotLayerSweep";
  const groups = seriesOf(rows, fn, { key: "method", fallback: "probe", x: "layer", y: "auroc" });
  const colors = assignColors([...groups.keys()]);
  const data: PlotlyTrace[] = [...groups].map(([method, sorted]) => {
    const y = sorted.map((p) => p.y);
    return {
      type: "scatter",
      mode: "lines+markers",
      name: method,
      x: sorted.map((p) => p.x),
      y,
      error_y: errorBars(y, sorted.map((p) => p.lo), sorted.map((p) => p.hi)),
      line: { color: colors.get(method) },
      marker: { color: colors.get(method) },
    };
  });
  const chance = { type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.5, y1: 0.5 };
  return figure({
    data,
    layout: baseLayout(
      opts.title ?? "Safety compass: AUROC by layer",
      axis(opts.xTitle ?? "Layer", { dtick: 1 }),
      axis(opts.yTitle ?? "AUROC", { range: [0, 1.05] }),
      { shapes: [{ ...chance, line: { dash: "dash", color: "#999", width: 1 } }] },
    ),
    config: CONFIG,
  });
}
