/**
 * A signed matrix (activation patching: layer x position or layer x head; per-head direct
 * logit attribution) as a diverging heatmap centred at 0, with intervals in the hover text.
 *
 * @module
 */

import { axis, baseLayout, CONFIG, type PlotlyFigure, type TitleOptions } from "../figure.ts";

/** Options of {@link plotPatchingHeatmap}. */
export interface PatchingHeatmapOptions extends TitleOptions {
  /** Lower ends of each cell's interval (same shape as the matrix), shown on hover. */
  lo?: number[][];
  /** Upper ends of each cell's interval, shown on hover. */
  hi?: number[][];
  /** Largest |value| of the colour range (symmetric around 0). @default the data's max |value| */
  zmax?: number;
  /** Digits of the value annotations; 0 draws none. @default 2 */
  digits?: number;
}

/**
 * A matrix of signed effects (rows = layers, drawn top to bottom; columns = positions or
 * heads) as plotly's diverging "RdBu" heatmap centred at 0: red positive, blue negative, grey 0.
 * NaN cells stay blank; values that round to zero are written "0.00", not "-0.00"; with
 * `lo`/`hi` the hover text gives each cell's interval.
 *
 * @example
 * ```ts
 * const fig = plotPatchingHeatmap([[0.1, 0.9], [0.0, -0.2]], ["L0", "L1"], ["how", "?"], {
 *   title: "Activation patching (resid_pre)",
 * });
 * fig.data[0].type; // "heatmap"
 * ```
 */
export function plotPatchingHeatmap(
  matrix: number[][],
  rowLabels: string[],
  colLabels: string[],
  opts: PatchingHeatmapOptions = {},
): PlotlyFigure {
  const fn = "plotPatchingHeatmap";
  const shapeOk = (m: number[][]) =>
    m.length === rowLabels.length && m.every((r) => r.length === colLabels.length);
  if (!shapeOk(matrix)) {
    throw new Error(
      `${fn}: matrix is ${matrix.length}x${matrix[0]?.length ?? 0} but got ` +
        `${rowLabels.length} row labels and ${colLabels.length} column labels; they must match`,
    );
  }
  for (const [k, m] of [["lo", opts.lo], ["hi", opts.hi]] as const) {
    if (m && !shapeOk(m)) throw new Error(`${fn}: opts.${k} must have the matrix's shape`);
  }
  const finite = matrix.flat().filter(Number.isFinite);
  const zmax = opts.zmax ?? Math.max(1e-12, ...finite.map(Math.abs));
  // Column labels may repeat (the same token twice): plot on indices, label the ticks.
  const xs = colLabels.map((_, j) => j);
  const text = matrix.map((row, i) =>
    row.map((v, j) => {
      const ci = opts.lo && opts.hi
        ? ` [${opts.lo[i][j].toFixed(3)}, ${opts.hi[i][j].toFixed(3)}]`
        : "";
      return `${rowLabels[i]}, ${colLabels[j]}: ${Number.isFinite(v) ? v.toFixed(3) : "n/a"}${ci}`;
    })
  );
  const digits = opts.digits ?? 2;
  const fmt = (v: number) => (Math.abs(v) < 0.5 * 10 ** -digits ? 0 : v).toFixed(digits);
  const annotations = digits > 0 && matrix.length * colLabels.length <= 400
    ? matrix.flatMap((row, i) =>
      row.flatMap((v, j) =>
        Number.isFinite(v)
          ? [{
            x: j,
            y: rowLabels[i],
            text: fmt(v),
            showarrow: false,
            font: { color: Math.abs(v) > 0.6 * zmax ? "white" : "black", size: 10 },
          }]
          : []
      )
    )
    : [];
  return {
    data: [{
      type: "heatmap",
      z: matrix.map((r) => r.map((v) => (Number.isFinite(v) ? v : null))),
      x: xs,
      y: rowLabels,
      text,
      hoverinfo: "text",
      zmin: -zmax,
      zmax,
      zmid: 0,
      colorscale: "RdBu",
    }],
    layout: baseLayout(
      opts.title ?? "Activation patching",
      axis(opts.xTitle ?? "Position", {
        tickmode: "array",
        tickvals: xs,
        ticktext: colLabels,
        side: "bottom",
      }),
      axis(opts.yTitle ?? "Layer", { type: "category", autorange: "reversed" }),
      { annotations },
    ),
    config: CONFIG,
  };
}
