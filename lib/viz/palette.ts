/**
 * Conventions that make figures honest to read: one fixed, distinct colour per compass
 * method and model (keyed by name, so a method has the same colour in every figure and no
 * two share a grey), integer ticks on layer and depth axes, and a visible mark on rates
 * estimated from few samples (hatched bars, hollow markers, an "n=5" label).
 *
 * @module
 */

import { type PlotlyFigure, withAlpha } from "./figure.ts";

/**
 * Fixed colours of the compass methods and the shipped models. Chosen apart from the
 * label colours (green = safe, red = unsafe, amber = rethink) and from grey (reserved for
 * chance lines and "other"), so a method is never mistaken for a label or for chance.
 */
export const SERIES_COLORS: Readonly<Record<string, string>> = {
  craft: "#1f77b4",
  diffmean: "#ff7f0e",
  pca: "#9467bd",
  logistic: "#17becf",
  linear: "#8c564b",
  mlp: "#e377c2",
  "toy-base": "#1f77b4",
  "toy-shallow": "#ff7f0e",
};

/** Distinct, non-grey colours for series without a fixed colour, in order of preference. */
export const DISTINCT_COLORS: readonly string[] = [
  "#1f77b4",
  "#ff7f0e",
  "#9467bd",
  "#17becf",
  "#8c564b",
  "#e377c2",
  "#bcbd22",
  "#3b4cc0",
  "#b5179e",
  "#006d77",
  "#a0522d",
  "#6a3d9a",
];

function hash(text: string): number {
  let h = 0x811c9dc5;
  for (const ch of text.toLowerCase()) h = Math.imul(h ^ ch.codePointAt(0)!, 0x01000193) >>> 0;
  return h;
}

/**
 * Colours for the series of one figure: the fixed colour of a known method or model, else a
 * stable slot of {@link DISTINCT_COLORS} from the name; a series whose colour is already
 * taken in this figure moves to the next free colour, so no two series share one (up to
 * {@link DISTINCT_COLORS}' length).
 *
 * @example
 * ```ts
 * const c = seriesColors(["craft", "diffmean", "pca", "logistic"]);
 * c.get("craft"); // "#1f77b4", in every figure
 * new Set(c.values()).size; // 4
 * ```
 */
export function seriesColors(names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Set<string>();
  // Fixed colours first, so a known method keeps its colour whatever else is drawn.
  for (const name of names) {
    const fixed = SERIES_COLORS[name.toLowerCase()];
    if (fixed && !out.has(name) && !used.has(fixed)) (out.set(name, fixed), used.add(fixed));
  }
  for (const name of names) {
    if (out.has(name)) continue;
    const start = hash(name) % DISTINCT_COLORS.length;
    let color = DISTINCT_COLORS[start];
    for (let k = 1; k <= DISTINCT_COLORS.length && used.has(color); k++) {
      color = DISTINCT_COLORS[(start + k) % DISTINCT_COLORS.length];
    }
    out.set(name, color);
    used.add(color);
  }
  return out;
}

/**
 * Axis settings for integer-valued data (layers, prefill depths, positions): ticks only on
 * integers, at most about `maxTicks` of them, printed without decimals.
 *
 * @example
 * ```ts
 * integerAxis([0, 1, 2, 3, 4]); // { tick0: 0, dtick: 1, tickformat: "d" }
 * integerAxis([...Array(37).keys()]).dtick; // 4
 * ```
 */
export function integerAxis(
  values: readonly number[],
  maxTicks = 12,
): { tick0: number; dtick: number; tickformat: string } {
  const finite = values.filter(Number.isFinite);
  const span = finite.length ? Math.max(...finite) - Math.min(...finite) : 0;
  const dtick = Math.max(1, Math.ceil(span / maxTicks));
  return { tick0: 0, dtick, tickformat: "d" };
}

/**
 * Puts integer ticks on axes of a figure whose x values are integers (a layer axis drawn by
 * a generic line builder, say), in place; returns the same figure.
 *
 * @example
 * ```ts
 * import { plotCurves } from "./plots/curves.ts";
 * const rows = [{ layer: 0, norm: 1.5 }, { layer: 1, norm: 2.5 }, { layer: 2, norm: 3 }];
 * const fig = withIntegerTicks(plotCurves(rows, { x: "layer", y: ["norm"] }));
 * fig.layout.xaxis; // { ..., dtick: 1, tickformat: "d" }
 * ```
 */
export function withIntegerTicks<F extends PlotlyFigure>(fig: F, axisName = "xaxis"): F {
  const letter = axisName.startsWith("y") ? "y" : "x";
  const values = fig.data.flatMap((t) => {
    const v = t[letter];
    return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
  });
  const current = (fig.layout[axisName] ?? {}) as Record<string, unknown>;
  fig.layout[axisName] = { ...current, ...integerAxis(values) };
  return fig;
}

/** Sample size below which a rate is marked as resting on few samples. */
export const SMALL_N = 30;

/**
 * A short label for a sample size, flagged when small: `"n=5 (small)"`, `"n=40"`.
 *
 * @example
 * ```ts
 * nLabel(5); // "n=5 (small)"
 * ```
 */
export function nLabel(n: number, small = SMALL_N): string {
  return n < small ? `n=${n} (small)` : `n=${n}`;
}

/**
 * Marks the bars of small samples in a bar figure, in place: hatched and paler, with a note
 * above the plot's top right corner. `nOf(traceName, category)` gives the sample size behind a bar (undefined:
 * leave it). Returns the same figure.
 *
 * @example
 * ```ts
 * import { plotBars } from "./plots/bars.ts";
 * const rows = [
 *   { name: "refusal", value: 0.65, lo: 0.5, hi: 0.8, group: "toy-shallow", n: 40 },
 *   { name: "kb accuracy", value: 0.6, lo: 0.2, hi: 1, group: "toy-shallow", n: 5 },
 * ];
 * const sizes = new Map(rows.map((r) => [`${r.group}|${r.name}`, r.n]));
 * hatchSmallN(plotBars(rows), (group, name) => sizes.get(`${group}|${name}`));
 * ```
 */
export function hatchSmallN<F extends PlotlyFigure>(
  fig: F,
  nOf: (traceName: string, category: string) => number | undefined,
  small = SMALL_N,
): F {
  let marked = false;
  for (const trace of fig.data) {
    if (trace.type !== "bar" || !Array.isArray(trace.x)) continue;
    const flags = (trace.x as unknown[]).map((x) => {
      const n = nOf(String(trace.name ?? ""), String(x));
      return n !== undefined && n < small;
    });
    if (!flags.some(Boolean)) continue;
    marked = true;
    const marker = (trace.marker ?? {}) as Record<string, unknown>;
    trace.marker = {
      ...marker,
      opacity: flags.map((f) => (f ? 0.55 : 1)),
      pattern: { shape: flags.map((f) => (f ? "/" : "")), solidity: 0.35 },
    };
  }
  if (marked) {
    const notes = (fig.layout.annotations ?? []) as unknown[];
    fig.layout.annotations = [...notes, {
      text: `hatched, paler bars: fewer than ${small} samples (wide intervals)`,
      xref: "paper",
      yref: "paper",
      x: 1,
      y: 1,
      xanchor: "right",
      yanchor: "bottom",
      showarrow: false,
      font: { size: 11, color: "#5f6c7b" },
    }];
  }
  return fig;
}

/**
 * Recolours a figure's series with {@link seriesColors}, in place, so a model or method has
 * the same colour in every figure of a report: each trace's line and (single) marker colour,
 * and the fill of its interval band (traces named `"<series> lo"` / `"<series> hi"`).
 * Traces without a name, and per-bar colour arrays, are left alone. Returns the same figure.
 *
 * @example
 * ```ts
 * import { plotRateCurve } from "./plots/rate_curve.ts";
 * const fig = withSeriesColors(plotRateCurve([
 *   { x: 0, rate: 0.35, lo: 0.2, hi: 0.5, series: "toy-shallow" },
 *   { x: 1, rate: 0.75, lo: 0.6, hi: 0.9, series: "toy-shallow" },
 * ], { xTitle: "k", yTitle: "compliance" }));
 * ```
 */
export function withSeriesColors<F extends PlotlyFigure>(fig: F): F {
  const seriesOfTrace = (name: string) => name.replace(/ (lo|hi)$/, "");
  const names = fig.data.map((t) => typeof t.name === "string" ? seriesOfTrace(t.name) : "")
    .filter((n) => n !== "");
  const colors = seriesColors([...new Set(names)]);
  for (const trace of fig.data) {
    if (typeof trace.name !== "string") continue;
    const color = colors.get(seriesOfTrace(trace.name));
    if (!color) continue;
    if (/ (lo|hi)$/.test(trace.name)) {
      if (trace.fillcolor !== undefined) trace.fillcolor = withAlpha(color, 0.18);
      continue;
    }
    if (trace.line !== undefined) {
      trace.line = { ...(trace.line as Record<string, unknown>), color };
    }
    const marker = trace.marker as Record<string, unknown> | undefined;
    if (marker === undefined || !Array.isArray(marker.color)) {
      trace.marker = { ...(marker ?? {}), color };
    }
  }
  return fig;
}
