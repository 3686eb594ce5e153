/**
 * A 2-D projection of activations, one colour per label.
 *
 * @module
 */

import {
  assignColors,
  axis,
  baseLayout,
  CONFIG,
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

/** One projected point; `text` shows on hover. */
export interface ProjectionPoint {
  /** First coordinate. */
  x: number;
  /** Second coordinate. */
  y: number;
  /** Class (colour and legend entry). */
  label: string;
  /** Hover text. @default the label */
  text?: string;
}

/** A 2-D projection (PCA, compass axes...) scattered with one colour per label. */
export function plotProjection(
  points: RowsInput<ProjectionPoint>,
  opts: TitleOptions = {},
): PlotlyFigure {
  const fn = "plotProjection";
  const pts = rowsOf(points, fn).map((r, i) => ({
    label: str(r, "label", "unlabelled"),
    x: num(r, "x", i, fn),
    y: num(r, "y", i, fn),
    text: str(r, "text", str(r, "label", "unlabelled")),
  }));
  const groups = groupBy(pts, (p) => p.label);
  const colors = assignColors([...groups.keys()]);
  const data: PlotlyTrace[] = [...groups].map(([label, rs]) => ({
    type: "scatter",
    mode: "markers",
    name: label,
    x: rs.map((p) => p.x),
    y: rs.map((p) => p.y),
    text: rs.map((p) => p.text),
    marker: { color: colors.get(label), size: 7, opacity: 0.75 },
  }));
  return figure({
    data,
    layout: baseLayout(
      opts.title ?? "Hidden states, projected",
      axis(opts.xTitle ?? "Component 1"),
      axis(opts.yTitle ?? "Component 2"),
    ),
    config: CONFIG,
  });
}
