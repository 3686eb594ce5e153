/**
 * A matrix as a heatmap (the trait generalisation matrix).
 *
 * @module
 */

import {
  axis,
  baseLayout,
  CONFIG,
  figure,
  type PlotlyFigure,
  type TitleOptions,
} from "../figure.ts";

/** Options of {@link plotHeatmap}. */
export interface HeatmapOptions extends TitleOptions {
  /** plotly colorscale name or stops. @default "Viridis" */
  colorscale?: string | [number, string][];
  /** Digits of the value annotations. @default 2 */
  digits?: number;
  /** Bottom of the colour range. @default the data's min */
  zmin?: number;
  /** Top of the colour range. @default the data's max */
  zmax?: number;
}

/**
 * A matrix (trait-RL generalisation: trained-on rows x evaluated-on columns) as a heatmap
 * with each value written in its cell. Row 0 is drawn at the top; NaN cells stay blank.
 */
export function plotHeatmap(
  matrix: number[][],
  rowLabels: string[],
  colLabels: string[],
  opts: HeatmapOptions = {},
): PlotlyFigure {
  if (matrix.length !== rowLabels.length || matrix.some((r) => r.length !== colLabels.length)) {
    throw new Error(
      `plotHeatmap: matrix is ${matrix.length}x${matrix[0]?.length ?? 0} but got ` +
        `${rowLabels.length} row labels and ${colLabels.length} column labels; they must match`,
    );
  }
  const finite = matrix.flat().filter(Number.isFinite);
  const zmin = opts.zmin ?? (finite.length ? Math.min(...finite) : 0);
  const zmax = opts.zmax ?? (finite.length ? Math.max(...finite) : 1);
  const annotations = matrix.flatMap((row, i) =>
    row.flatMap((v, j) => {
      if (!Number.isFinite(v)) return [];
      const t = zmax > zmin ? (v - zmin) / (zmax - zmin) : 0.5;
      const dark = (opts.colorscale ?? "Viridis") === "Viridis" ? t < 0.55 : false;
      const text = v.toFixed(opts.digits ?? 2);
      return [{
        x: colLabels[j],
        y: rowLabels[i],
        text,
        showarrow: false,
        font: { color: dark ? "white" : "black" },
      }];
    })
  );
  const z = matrix.map((r) => r.map((v) => (Number.isFinite(v) ? v : null)));
  return figure({
    data: [{
      type: "heatmap",
      z,
      x: colLabels,
      y: rowLabels,
      zmin,
      zmax,
      colorscale: opts.colorscale ?? "Viridis",
    }],
    layout: baseLayout(
      opts.title ?? "Generalisation matrix",
      axis(opts.xTitle ?? "Evaluated on", { type: "category", side: "bottom" }),
      axis(opts.yTitle ?? "Trained on", { type: "category", autorange: "reversed" }),
      { annotations },
    ),
    config: CONFIG,
  });
}
