/**
 * A layer sweep: a probe's AUROC per layer, one line per compass method.
 *
 * @module
 */

import {
  axis,
  baseLayout,
  CONFIG,
  errorBars,
  figure,
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  rowsOf,
  seriesOf,
  type TitleOptions,
} from "../figure.ts";
import { integerAxis, seriesColors, SMALL_N } from "../palette.ts";

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
  /** Test examples behind the AUROC; below {@link SMALL_N} the marker is drawn hollow. */
  n?: number;
}

/**
 * AUROC per layer, one line per compass method, error bars from `lo`/`hi`, a dashed line
 * at chance (0.5). Each method has its fixed colour (lib/viz/palette.ts), layer ticks are
 * integers, and points resting on fewer than `SMALL_N` test examples (`n`) are hollow.
 * Defaults: title "Safety compass: AUROC by layer", axes "Layer"/"AUROC".
 *
 * @example
 * ```ts
 * const fig = plotLayerSweep([
 *   { layer: 0, method: "craft", auroc: 0.61, lo: 0.5, hi: 0.7, n: 96 },
 *   { layer: 1, method: "craft", auroc: 0.93, lo: 0.88, hi: 0.97, n: 96 },
 * ]);
 * ```
 */
export function plotLayerSweep(
  rows: RowsInput<LayerSweepRow>,
  opts: TitleOptions = {},
): PlotlyFigure {
  const fn = "plotLayerSweep";
  const groups = seriesOf(rows, fn, { key: "method", fallback: "probe", x: "layer", y: "auroc" });
  const colors = seriesColors([...groups.keys()]);
  const nOf = new Map<string, number>();
  for (const r of rowsOf(rows, fn) as LayerSweepRow[]) {
    if (typeof r.n === "number") nOf.set(`${r.method ?? "probe"}|${r.layer}`, r.n);
  }
  const layers: number[] = [];
  const data: PlotlyTrace[] = [...groups].map(([method, sorted]) => {
    const y = sorted.map((p) => p.y);
    const ns = sorted.map((p) => nOf.get(`${method}|${p.x}`));
    layers.push(...sorted.map((p) => p.x));
    return {
      type: "scatter",
      mode: "lines+markers",
      name: method,
      x: sorted.map((p) => p.x),
      y,
      error_y: errorBars(y, sorted.map((p) => p.lo), sorted.map((p) => p.hi)),
      line: { color: colors.get(method) },
      marker: {
        color: colors.get(method),
        symbol: ns.map((n) => (n !== undefined && n < SMALL_N ? "circle-open" : "circle")),
        size: 8,
      },
      ...(ns.some((n) => n !== undefined)
        ? { text: ns.map((n) => (n === undefined ? "" : `n=${n}`)) }
        : {}),
    };
  });
  const chance = { type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.5, y1: 0.5 };
  return figure({
    data,
    layout: baseLayout(
      opts.title ?? "Safety compass: AUROC by layer",
      axis(opts.xTitle ?? "Layer", integerAxis(layers)),
      axis(opts.yTitle ?? "AUROC", { range: [0, 1.05] }),
      { shapes: [{ ...chance, line: { dash: "dash", color: "#999", width: 1 } }] },
    ),
    config: CONFIG,
  });
}
