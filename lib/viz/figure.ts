/**
 * Pure plotly.js figure builders for what a safety researcher looks at: layer sweeps,
 * 2-D projections, RL curves, attack-success curves with interval bands, safety-vs-utility
 * scatters, generalisation heatmaps and bar charts. Each builder is `(rows, options) =>
 * PlotlyFigure` (the JSON figure format of plotly.js, https://plotly.com/javascript/reference/),
 * takes plain row objects or an arquero table, and never touches the DOM, so figures are
 * testable data and render anywhere (Jupyter, HTML export, PNG through Chromium).
 *
 * @module
 */

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

function rowsOf<T>(input: RowsInput<T>, fn: string): T[] {
  if (Array.isArray(input)) return input as T[];
  const table = input as { objects?: () => object[] };
  if (typeof table.objects === "function") return table.objects() as T[];
  throw new Error(
    `${fn}: expected an array of row objects or an arquero table, got ${typeof input}`,
  );
}

function num(row: object, field: string, i: number, fn: string, optional = false): number {
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

function str(row: object, field: string, fallback = ""): string {
  const v = (row as Record<string, unknown>)[field];
  return v === undefined || v === null ? fallback : String(v);
}

function groupBy<T>(rows: readonly T[], key: (r: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const k = key(r);
    out.set(k, [...(out.get(k) ?? []), r]);
  }
  return out;
}

interface Point {
  key: string;
  x: number;
  y: number;
  lo: number;
  hi: number;
}

/** Rows -> points (validated with their row index), grouped by `key` and sorted by x. */
function seriesOf(
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

function axis(title: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { title: { text: title }, ...extra };
}

function baseLayout(
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

const CONFIG = { responsive: true, displaylogo: false };

/** Asymmetric error bars from optional lo/hi columns, or undefined when absent. */
function errorBars(v: number[], lo: number[], hi: number[]): Record<string, unknown> | undefined {
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
  return {
    data,
    layout: baseLayout(
      opts.title ?? "Safety compass: AUROC by layer",
      axis(opts.xTitle ?? "Layer", { dtick: 1 }),
      axis(opts.yTitle ?? "AUROC", { range: [0, 1.05] }),
      { shapes: [{ ...chance, line: { dash: "dash", color: "#999", width: 1 } }] },
    ),
    config: CONFIG,
  };
}

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
  return {
    data,
    layout: baseLayout(
      opts.title ?? "Hidden states, projected",
      axis(opts.xTitle ?? "Component 1"),
      axis(opts.yTitle ?? "Component 2"),
    ),
    config: CONFIG,
  };
}

/** Options of {@link plotCurves}. */
export interface CurvesOptions {
  /** Column for the x axis (e.g. "step"). */
  x: string;
  /** Columns to draw (e.g. ["reward", "kl", "refusal_rate"]). */
  y: string[];
  /** Figure title. @default "Training curves" */
  title?: string;
  /** X axis title. @default the x column name */
  xTitle?: string;
  /** Y axis title, used when overlaid. @default "value" */
  yTitle?: string;
  /** Draw every column on one axis instead of one stacked subplot per column. @default false */
  overlay?: boolean;
}

/**
 * Metric curves over a shared x (RL reward / KL / refusal rate per step). Missing or
 * non-finite values become gaps. Default: one subplot per column, x axes linked.
 */
export function plotCurves(
  rows: RowsInput<Record<string, unknown>>,
  opts: CurvesOptions,
): PlotlyFigure {
  const fn = "plotCurves";
  const all = rowsOf(rows, fn);
  if (opts.y.length === 0) throw new Error(`${fn}: opts.y is empty; name at least one column`);
  const xs = all.map((r, i) => num(r, opts.x, i, fn));
  const colors = assignColors(opts.y);
  const n = opts.overlay ? 1 : opts.y.length;
  const data: PlotlyTrace[] = opts.y.map((col, k) => ({
    type: "scatter",
    mode: all.length > 60 ? "lines" : "lines+markers",
    name: col,
    x: xs,
    y: all.map((r) => {
      const v = (r as Record<string, unknown>)[col];
      return typeof v === "number" && Number.isFinite(v) ? v : null;
    }),
    line: { color: colors.get(col) },
    xaxis: opts.overlay || k === 0 ? "x" : `x${k + 1}`,
    yaxis: opts.overlay || k === 0 ? "y" : `y${k + 1}`,
  }));
  const xTitle = opts.xTitle ?? opts.x;
  const layout = baseLayout(
    opts.title ?? "Training curves",
    axis(n === 1 ? xTitle : ""),
    axis(opts.overlay ? opts.yTitle ?? "value" : opts.y[0]),
  );
  if (n > 1) {
    layout.grid = { rows: n, columns: 1, pattern: "independent", roworder: "top to bottom" };
    layout.height = Math.max(360, 200 * n + 80);
    layout.showlegend = false;
    for (let k = 2; k <= n; k++) {
      layout[`yaxis${k}`] = axis(opts.y[k - 1]);
      layout[`xaxis${k}`] = axis(k === n ? xTitle : "", { matches: "x" });
    }
  }
  return { data, layout, config: CONFIG };
}

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
  return {
    data,
    layout: baseLayout(
      opts.title ?? "Per-token KL by response position",
      axis(opts.xTitle ?? "Response position"),
      axis(opts.yTitle ?? "KL (nats)", { rangemode: "tozero" }),
      { showlegend: groups.size > 1 },
    ),
    config: CONFIG,
  };
}

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
  return {
    data,
    layout: baseLayout(
      opts.title ?? `${opts.yTitle} by ${opts.xTitle}`,
      axis(opts.xTitle),
      axis(opts.yTitle, { range: [0, 1.02] }),
    ),
    config: CONFIG,
  };
}

/** One method in a scatter (e.g. safety vs utility), with optional intervals on each axis. */
export interface ScatterRow {
  /** X value. */
  x: number;
  /** Y value. */
  y: number;
  /** Method name (marker text, colour, legend). */
  label: string;
  /** Lower end of the x interval. */
  xlo?: number;
  /** Upper end of the x interval. */
  xhi?: number;
  /** Lower end of the y interval. */
  ylo?: number;
  /** Upper end of the y interval. */
  yhi?: number;
}

/** One labelled marker per row (safety vs utility across methods), with 2-D error bars. */
export function plotScatter(
  rows: RowsInput<ScatterRow>,
  opts: { xTitle: string; yTitle: string; title?: string },
): PlotlyFigure {
  const fn = "plotScatter";
  const all = rowsOf(rows, fn);
  const colors = assignColors(all.map((r) => str(r, "label")));
  const data: PlotlyTrace[] = all.map((r, i) => {
    const x = [num(r, "x", i, fn)];
    const y = [num(r, "y", i, fn)];
    const label = str(r, "label");
    const o = (f: string) => [num(r, f, i, fn, true)];
    return {
      type: "scatter",
      mode: "markers+text",
      name: label,
      x,
      y,
      text: [label],
      textposition: "top center",
      marker: { color: colors.get(label), size: 11 },
      error_x: errorBars(x, o("xlo"), o("xhi")),
      error_y: errorBars(y, o("ylo"), o("yhi")),
    };
  });
  return {
    data,
    layout: baseLayout(
      opts.title ?? `${opts.yTitle} vs ${opts.xTitle}`,
      axis(opts.xTitle),
      axis(opts.yTitle),
    ),
    config: CONFIG,
  };
}

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
  return {
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
  };
}

/** One bar, with an optional interval and group (grouped bars). */
export interface BarRow {
  /** Bar name (x category). */
  name: string;
  /** Bar height. */
  value: number;
  /** Lower end of its interval. */
  lo?: number;
  /** Upper end of its interval. */
  hi?: number;
  /** Group (one trace and colour each; grouped bars). */
  group?: string;
}

/** Bars with error bars: one trace per `group` (grouped), else one colour per bar name. */
export function plotBars(rows: RowsInput<BarRow>, opts: TitleOptions = {}): PlotlyFigure {
  const fn = "plotBars";
  const all = rowsOf(rows, fn);
  const grouped = all.some((r) => r.group !== undefined && r.group !== null);
  const bars = all.map((r, i) => ({
    group: grouped ? str(r, "group", "other") : "",
    name: str(r, "name"),
    y: num(r, "value", i, fn),
    lo: num(r, "lo", i, fn, true),
    hi: num(r, "hi", i, fn, true),
  }));
  const groups = groupBy(bars, (b) => b.group);
  const colors = assignColors(grouped ? [...groups.keys()] : bars.map((b) => b.name));
  const data: PlotlyTrace[] = [...groups].map(([group, rs]) => {
    const y = rs.map((b) => b.y);
    const names = rs.map((b) => b.name);
    return {
      type: "bar",
      name: grouped ? group : opts.yTitle ?? "value",
      x: names,
      y,
      marker: { color: grouped ? colors.get(group) : names.map((n) => colors.get(n)) },
      error_y: errorBars(y, rs.map((b) => b.lo), rs.map((b) => b.hi)),
    };
  });
  return {
    data,
    layout: baseLayout(
      opts.title ?? "Comparison",
      axis(opts.xTitle ?? ""),
      axis(opts.yTitle ?? "value"),
      {
        barmode: "group",
        showlegend: grouped,
      },
    ),
    config: CONFIG,
  };
}
