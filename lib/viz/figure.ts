/**
 * The figure format and the parts every plot builder shares (colours, the white template,
 * row validation, axes, error bars). The builders themselves live one per file in
 * lib/viz/plots/ (layer sweeps, 2-D projections, training curves, per-position KL, rate
 * curves with interval bands, scatters, heatmaps, bars). Each builder is `(rows, options) =>
 * PlotlyFigure` (the JSON figure format of plotly.js, https://plotly.com/javascript/reference/),
 * takes plain row objects or an arquero table, and never touches the DOM, so figures are
 * testable data and render anywhere (Jupyter, HTML export, PNG through Chromium).
 *
 * @module
 */

import { figureDisplay, JUPYTER_DISPLAY, type MimeBundle } from "./display.ts";

/** One plotly.js trace (`scatter`, `bar`, `heatmap`, ...): any attributes plus its `type`. */
export type PlotlyTrace = Record<string, unknown> & { type: string };

/** A plotly.js figure: traces, layout and optional config, exactly as `Plotly.newPlot` takes. */
export interface PlotlyFigure {
  /** The traces. */
  data: PlotlyTrace[];
  /** The layout (titles, axes, template, annotations...). */
  layout: Record<string, unknown>;
  /** Optional plotly.js config (`responsive`, `displaylogo`...). */
  config?: Record<string, unknown>;
}

/**
 * Makes `spec` a figure that draws itself when it ends a Jupyter cell: adds a non-enumerable
 * `[Symbol.for("Jupyter.display")]` method (Deno's kernel calls it) returning the figure's MIME
 * bundle (plotly JSON, self-contained HTML, a one-line text). The object stays the plain
 * plotly figure: `data`, `layout` and `config` are unchanged, `JSON.stringify` gives plotly
 * JSON and `assert.deepEqual` against a literal still holds. Every builder in lib/viz/plots
 * returns one. Returns `spec` itself.
 *
 * @example
 * ```ts
 * import { figure } from "./figure.ts";
 * const fig = figure({ data: [{ type: "bar", x: ["a"], y: [1] }], layout: {} });
 * fig; // as a cell's last expression: drawn inline
 * JSON.stringify(fig); // '{"data":[...],"layout":{}}'
 * ```
 */
export function figure(spec: PlotlyFigure): PlotlyFigure {
  if (!spec || !Array.isArray(spec.data) || typeof spec.layout !== "object") {
    throw new Error("figure: expected a plotly figure { data: [...], layout: {...} }");
  }
  if (!Object.hasOwn(spec, JUPYTER_DISPLAY)) {
    Object.defineProperty(spec, JUPYTER_DISPLAY, {
      value: function (this: PlotlyFigure): MimeBundle | Promise<MimeBundle> {
        return figureDisplay(this);
      },
      enumerable: false,
      writable: true,
      configurable: true,
    });
  }
  return spec;
}

/** True when `x` renders itself in Jupyter (it has a `Symbol.for("Jupyter.display")` method). */
export function isDisplayable(x: unknown): boolean {
  return typeof x === "object" && x !== null &&
    typeof (x as Record<symbol, unknown>)[JUPYTER_DISPLAY] === "function";
}

/** Rows as plain objects, or anything with arquero's `objects()` (a table). */
export type RowsInput<T> = readonly T[] | { objects(): object[] };

/** Colours of the vocabulary labels, shared by every figure (and the audit view). */
export const LABEL_COLORS: Readonly<Record<string, string>> = {
  safe: "#2ca02c",
  benign: "#2ca02c",
  harmless: "#2ca02c",
  unsafe: "#d62728",
  harmful: "#d62728",
  rethink: "#f0a202",
  borderline: "#f0a202",
};

const PALETTE = [
  "#1f77b4",
  "#9467bd",
  "#17becf",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#3b4cc0",
  "#006d77",
  "#b5179e",
  "#5c6b73",
]; // deno-fmt-ignore

/**
 * The "plotly_white" look as a template object (plotly.js, unlike plotly.py, does not
 * resolve template names): white background, light grid, the toolkit's colourway.
 */
export const PLOTLY_WHITE: Readonly<Record<string, unknown>> = {
  layout: {
    paper_bgcolor: "white",
    plot_bgcolor: "white",
    font: { color: "#2a3f5f" },
    colorway: PALETTE,
    hovermode: "closest",
    xaxis: { gridcolor: "#ebf0f8", linecolor: "#ebf0f8", zerolinecolor: "#ebf0f8", automargin: true },
    yaxis: { gridcolor: "#ebf0f8", linecolor: "#ebf0f8", zerolinecolor: "#ebf0f8", automargin: true },
  },
};

function hash(text: string): number {
  let h = 0x811c9dc5;
  for (const ch of text.toLowerCase()) h = Math.imul(h ^ ch.codePointAt(0)!, 0x01000193) >>> 0;
  return h;
}

/** The colour of one label: the vocabulary colour, else a stable palette slot from its name. */
export function colorFor(label: string): string {
  return LABEL_COLORS[label.toLowerCase()] ?? PALETTE[hash(label) % PALETTE.length];
}

/**
 * Colours for the labels of one figure: `colorFor` each, moving a label whose palette slot
 * is already taken in this figure to the next free slot (so no two series share a colour).
 */
export function assignColors(labels: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Set<string>();
  for (const label of labels) {
    if (out.has(label)) continue;
    let color = colorFor(label);
    if (!(label.toLowerCase() in LABEL_COLORS)) {
      const start = PALETTE.indexOf(color);
      for (let k = 0; k < PALETTE.length && used.has(color); k++) {
        color = PALETTE[(start + k + 1) % PALETTE.length];
      }
    }
    out.set(label, color);
    used.add(color);
  }
  return out;
}

/** Adds transparency to a `#rrggbb` colour (for interval bands). */
export function withAlpha(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

export function rowsOf<T>(input: RowsInput<T>, fn: string): T[] {
  if (Array.isArray(input)) return input as T[];
  const table = input as { objects?: () => object[] };
  if (typeof table.objects === "function") return table.objects() as T[];
  throw new Error(
    `${fn}: expected an array of row objects or an arquero table, got ${typeof input}`,
  );
}

export function num(row: object, field: string, i: number, fn: string, optional = false): number {
  const v = (row as Record<string, unknown>)[field];
  if (optional && (v === undefined || v === null || Number.isNaN(v))) return NaN;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(
      `${fn}: row ${i} field "${field}" must be a finite number, got ${JSON.stringify(v)}; ` +
        `fix the row or drop it before plotting`,
    );
  }
  return v;
}

export function str(row: object, field: string, fallback = ""): string {
  const v = (row as Record<string, unknown>)[field];
  return v === undefined || v === null ? fallback : String(v);
}

export function groupBy<T>(rows: readonly T[], key: (r: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const k = key(r);
    out.set(k, [...(out.get(k) ?? []), r]);
  }
  return out;
}

export interface Point {
  key: string;
  x: number;
  y: number;
  lo: number;
  hi: number;
}

/** Rows -> points (validated with their row index), grouped by `key` and sorted by x. */
export function seriesOf(
  input: RowsInput<object>,
  fn: string,
  f: { key: string; fallback: string; x: string; y: string },
): Map<string, Point[]> {
  const pts = rowsOf(input, fn).map((r, i) => ({
    key: str(r, f.key, f.fallback),
    x: num(r, f.x, i, fn),
    y: num(r, f.y, i, fn),
    lo: num(r, "lo", i, fn, true),
    hi: num(r, "hi", i, fn, true),
  }));
  const groups = groupBy(pts, (p) => p.key);
  for (const g of groups.values()) g.sort((a, b) => a.x - b.x);
  return groups;
}

export function axis(title: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { title: { text: title }, ...extra };
}

export function baseLayout(
  title: string,
  xaxis: Record<string, unknown>,
  yaxis: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    title: { text: title },
    template: PLOTLY_WHITE,
    xaxis,
    yaxis,
    margin: { t: 60, r: 30, b: 60, l: 70 },
    ...extra,
  };
}

/** The plotly.js config every builder sets. */
export const CONFIG = { responsive: true, displaylogo: false };

/** Asymmetric error bars from optional lo/hi columns, or undefined when absent. */
export function errorBars(
  v: number[],
  lo: number[],
  hi: number[],
): Record<string, unknown> | undefined {
  if (lo.every(Number.isNaN) && hi.every(Number.isNaN)) return undefined;
  return {
    type: "data",
    symmetric: false,
    array: hi.map((h, i) => (Number.isNaN(h) ? 0 : h - v[i])),
    arrayminus: lo.map((l, i) => (Number.isNaN(l) ? 0 : v[i] - l)),
    thickness: 1.2,
  };
}

/** Common title options. */
export interface TitleOptions {
  /** Figure title. */
  title?: string;
  /** X axis title. */
  xTitle?: string;
  /** Y axis title. */
  yTitle?: string;
}
