/**
 * Jupyter display for the toolkit (Jupyter messaging "display_data" MIME bundles, as Deno's
 * kernel sends them): a figure becomes `application/vnd.plotly.v1+json` for frontends with a
 * plotly renderer, plus a `text/html` fallback that renders with no extension and no
 * internet (plotly.js from the npm package `plotly.js-dist-min`, inlined once per process),
 * plus `text/plain`. Tables and raw HTML get bundles too, and `show()` sends any of them.
 *
 * @module
 */

import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PlotlyFigure } from "./figure.ts";
import { envVar } from "../io/env.ts";

/** The symbol Deno's Jupyter kernel calls to render a cell's result (`Deno.jupyter.$display`). */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display");

/** A Jupyter MIME bundle: MIME type -> payload; `text/plain` is always present. */
export interface MimeBundle {
  /** Plain-text fallback, shown by every frontend and by `show()` outside Jupyter. */
  "text/plain": string;
  /** Any other representation (`text/html`, `application/vnd.plotly.v1+json`...). */
  [mime: string]: unknown;
}

/** A table: an array of row objects, or an arquero table (anything with `objects()`). */
export type TableInput = readonly object[] | {
  objects(options?: { limit?: number }): object[];
  numRows?(): number;
};

const PLOTLY_VERSION = "4.1.2";
const PLOTLY_TAG_START = `<script type="text/javascript">/* plotly.js ${PLOTLY_VERSION} */`;

let runtimeOverride: typeof Deno.jupyter | undefined | null = null;

/**
 * Test seam: makes {@link jupyterRuntime} return `runtime` (undefined = outside Jupyter);
 * `null` restores the real lookup. `Deno.jupyter` itself cannot be replaced.
 */
export function overrideJupyterRuntime(runtime: typeof Deno.jupyter | undefined | null): void {
  runtimeOverride = runtime;
}

/** The `Deno.jupyter` namespace when running inside Deno's Jupyter kernel, else undefined. */
export function jupyterRuntime(): typeof Deno.jupyter | undefined {
  if (runtimeOverride !== null) return runtimeOverride;
  try {
    // Outside `deno jupyter` the getter throws; that absence is the answer, not a failure.
    const j = Deno.jupyter;
    return j && typeof j.display === "function" ? j : undefined;
  } catch {
    return undefined;
  }
}

function plotlyCandidates(): string[] {
  const out: string[] = [];
  const explicit = envVar("PLOTLY_JS_PATH");
  if (explicit) out.push(explicit);
  try {
    const url = import.meta.resolve("plotly.js-dist-min");
    if (url.startsWith("file:")) out.push(fileURLToPath(url));
  } catch { /* not in the import map: try the next way */ }
  try {
    out.push(createRequire(import.meta.url).resolve("plotly.js-dist-min"));
  } catch { /* no node_modules resolution here: try the next way */ }
  const home = envVar("HOME") ?? envVar("USERPROFILE") ?? "";
  const cache = envVar("DENO_DIR") ??
    (Deno.build.os === "darwin"
      ? join(home, "Library", "Caches", "deno")
      : Deno.build.os === "windows"
      ? join(envVar("LOCALAPPDATA") ?? home, "deno")
      : join(envVar("XDG_CACHE_HOME") ?? join(home, ".cache"), "deno"));
  out.push(
    join(cache, "npm", "registry.npmjs.org", "plotly.js-dist-min", PLOTLY_VERSION, "plotly.min.js"),
  );
  return out;
}

let plotlySource: string | undefined;

/**
 * The minified plotly.js bundle's source (read once, then kept). Looked up through the
 * import map (`import.meta.resolve`), node resolution, then Deno's npm cache; the env var
 * `PLOTLY_JS_PATH` overrides all. Throws naming every place tried when none has it.
 */
export function plotlyJsSource(): string {
  if (plotlySource !== undefined) return plotlySource;
  const tried: string[] = [];
  for (const path of plotlyCandidates()) {
    try {
      // "</script" cannot occur inside an inline script; this spelling is equivalent in JS.
      plotlySource = Deno.readTextFileSync(path).replaceAll("</script", "<\\/script");
      return plotlySource;
    } catch (err) {
      tried.push(`${path} (${(err as Error).name})`);
    }
  }
  throw new Error(
    `Cannot find plotly.js (npm:plotly.js-dist-min@${PLOTLY_VERSION}); tried: ${
      tried.join(", ")
    }. ` +
      `Fix: run \`deno install\` in the repository (deno.json maps "plotly.js-dist-min"), ` +
      `grant --allow-read, or set PLOTLY_JS_PATH to a plotly.min.js file.`,
  );
}

/** A `<script>` element carrying the whole plotly.js bundle (~4.8 MB). */
export function plotlyScriptTag(): string {
  return `${PLOTLY_TAG_START}\n${plotlyJsSource()}\n</script>`;
}

let included = false;

/** Makes the next figure bundle carry plotly.js again (e.g. after clearing a notebook's outputs). */
export function resetPlotlyInclusion(): void {
  included = false;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

/** JSON that is safe inside an inline `<script>` (no `</script>`, no line separators). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replaceAll("<", "\\u003c").replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

const session = `${Date.now().toString(36)}-${Deno.pid.toString(36)}`;
let divCount = 0;

/**
 * A `<div>` plus a small script that draws `fig` into it with `Plotly.newPlot`, waiting up
 * to 10 s for plotly.js to appear on the page (it may arrive in an earlier output).
 */
export function figureDiv(fig: PlotlyFigure, id = `sc-plot-${session}-${divCount++}`): string {
  const height = typeof fig.layout.height === "number" ? fig.layout.height : 450;
  const missing = "plotly.js is not loaded on this page: call resetPlotlyInclusion() " +
    "and re-run this cell.";
  return `<div id="${escapeHtml(id)}" class="sc-plotly" style="width:100%;height:${height}px">` +
    `</div>\n<script type="text/javascript">(function(){var n=0;function draw(){` +
    `var el=document.getElementById(${scriptJson(id)});` +
    `if(el&&window.Plotly){var f=${scriptJson(fig)};` +
    `window.Plotly.newPlot(el,f.data,f.layout,f.config||{});}` +
    `else if(n++<200){setTimeout(draw,50);}else if(el){el.textContent=${scriptJson(missing)};}}` +
    `draw();})();</script>`;
}

/** One-line description of a figure, for `text/plain`. */
export function describeFigure(fig: PlotlyFigure): string {
  const title = (fig.layout.title as { text?: string } | undefined)?.text ?? "untitled";
  const types = [...new Set(fig.data.map((t) => t.type))].join(", ");
  return `Figure "${title}": ${fig.data.length} trace(s) (${types || "none"})`;
}

/**
 * The MIME bundle of a figure. The first bundle of the process carries plotly.js in its
 * HTML; later ones only a div and a `Plotly.newPlot` call (see `resetPlotlyInclusion`).
 */
export function figureBundle(fig: PlotlyFigure): MimeBundle {
  const head = included ? "" : plotlyScriptTag() + "\n";
  const html = head + figureDiv(fig);
  included = true;
  return {
    "application/vnd.plotly.v1+json": fig,
    "text/html": html,
    "text/plain": describeFigure(fig),
  };
}

/**
 * What a figure's Jupyter display method returns: its bundle, except for the first figure of
 * a Jupyter session, where plotly.js (4.8 MB) is first sent as an output of its own and given
 * time to drain (Deno's kernel awaits display methods), so the figure itself is small. Deno's
 * kernel can drop a large cell result that it sends just before the cell's idle status.
 *
 * @example
 * ```ts
 * import { figureDisplay } from "./display.ts";
 * const bundle = await figureDisplay({ data: [{ type: "bar", x: ["a"], y: [1] }], layout: {} });
 * ```
 */
export function figureDisplay(fig: PlotlyFigure): MimeBundle | Promise<MimeBundle> {
  if (included || !jupyterRuntime()) return figureBundle(fig);
  return show(htmlBundle(plotlyScriptTag(), "")).then(() => figureBundle(fig));
}

/** A bundle from raw HTML and its plain-text fallback. */
export function htmlBundle(html: string, plain: string): MimeBundle {
  return { "text/html": html, "text/plain": plain };
}

/**
 * A number rounded for reading: integers as they are, others to `digits` significant
 * digits (exponent form below 1e-4 or from 1e7 on).
 */
export function formatNumber(v: number, digits = 4): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e7)) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}

/** One cell's text: numbers rounded, long arrays summarised, objects as short JSON. */
export function formatValue(v: unknown, digits = 4): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return formatNumber(v, digits);
  if (typeof v === "string") return v;
  if (typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const arr = Array.from(v as ArrayLike<unknown>);
    const head = arr.slice(0, 4).map((x) => formatValue(x, digits)).join(", ");
    return `[${head}${arr.length > 4 ? `, … (${arr.length})` : ""}]`;
  }
  const json = JSON.stringify(v) ?? String(v);
  return json.length > 80 ? json.slice(0, 79) + "…" : json;
}

/** Rows of a table input (at most `limit`) and the total row count. */
export function tableRows(input: TableInput, limit = Infinity): { rows: object[]; total: number } {
  if (Array.isArray(input)) return { rows: input.slice(0, limit), total: input.length };
  const t = input as Exclude<TableInput, readonly object[]>;
  if (typeof t.objects !== "function") {
    throw new Error("Cannot show table: expected an array of row objects or an arquero table");
  }
  const rows = t.objects(Number.isFinite(limit) ? { limit } : undefined);
  return { rows, total: typeof t.numRows === "function" ? t.numRows() : rows.length };
}

function columnsOf(rows: readonly object[]): string[] {
  const cols = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) cols.add(k);
  return [...cols];
}

/** Options of tables in bundles and reports. */
export interface TableOptions {
  /** Rows shown; the rest are counted in a footer. @default 20 */
  maxRows?: number;
  /** Caption. */
  title?: string;
  /** Significant digits of non-integer numbers. @default 4 */
  digits?: number;
}

/** An HTML `<table>` (escaped cells, right-aligned numbers, a footer when rows are cut). */
export function tableHtml(input: TableInput, opts: TableOptions = {}): string {
  const { rows, total } = tableRows(input, opts.maxRows ?? 20);
  const cols = columnsOf(rows);
  const cell = (v: unknown, tag: string) =>
    `<${tag}${typeof v === "number" ? ' class="num"' : ""}>${
      escapeHtml(formatValue(v, opts.digits))
    }</${tag}>`;
  const head = cols.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = rows.map((r) =>
    `<tr>${cols.map((c) => cell((r as Record<string, unknown>)[c], "td")).join("")}</tr>`
  ).join("\n");
  const caption = opts.title ? `<caption>${escapeHtml(opts.title)}</caption>` : "";
  const foot = total > rows.length
    ? `<p class="sc-more">showing ${rows.length} of ${total} rows</p>`
    : "";
  return `<table class="sc-table">${caption}<thead><tr>${head}</tr></thead>\n<tbody>${body}</tbody></table>${foot}`;
}

/** A plain-text table with aligned columns. */
export function tablePlain(input: TableInput, opts: TableOptions = {}): string {
  const { rows, total } = tableRows(input, opts.maxRows ?? 20);
  const cols = columnsOf(rows);
  const grid = [
    cols,
    ...rows.map((r) =>
      cols.map((c) => formatValue((r as Record<string, unknown>)[c], opts.digits))
    ),
  ];
  const widths = cols.map((_, j) => Math.max(...grid.map((line) => line[j].length)));
  const lines = grid.map((line) => line.map((s, j) => s.padEnd(widths[j])).join("  ").trimEnd());
  if (opts.title) lines.unshift(opts.title);
  if (total > rows.length) lines.push(`(showing ${rows.length} of ${total} rows)`);
  return lines.join("\n");
}

const TABLE_CSS = `<style>.sc-table{border-collapse:collapse;font:13px system-ui,sans-serif}` +
  `.sc-table th,.sc-table td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}` +
  `.sc-table td.num{text-align:right;font-variant-numeric:tabular-nums}` +
  `.sc-table caption{font-weight:600;text-align:left;padding:4px 0}.sc-more{color:#777;font-size:12px}</style>`;

/** The bundle of a table (rows or an arquero table): HTML table + aligned plain text. */
export function tableBundle(input: TableInput, opts: TableOptions = {}): MimeBundle {
  return htmlBundle(TABLE_CSS + tableHtml(input, opts), tablePlain(input, opts));
}

function isFigure(x: unknown): x is PlotlyFigure {
  const f = x as PlotlyFigure;
  return typeof x === "object" && x !== null && Array.isArray(f.data) &&
    typeof f.layout === "object" && f.data.every((t) => typeof t?.type === "string");
}

/** True for an object that already is a MIME bundle (string `text/plain`, MIME-type keys). */
function isMimeBundle(x: unknown): x is MimeBundle {
  return typeof x === "object" && x !== null && !Array.isArray(x) &&
    typeof (x as Record<string, unknown>)["text/plain"] === "string" &&
    Object.keys(x).every((k) => /^[a-z]+\/[\w.+-]+$/.test(k));
}

function bundleOf(x: unknown): MimeBundle | Promise<MimeBundle> {
  // A figure's bundle is made here, synchronously (plotly.js inline when first), not through
  // its display method, which may first send plotly.js on its own and wait.
  if (isFigure(x)) return figureBundle(x);
  const own = (x as { [JUPYTER_DISPLAY]?: () => unknown } | null)?.[JUPYTER_DISPLAY];
  if (typeof own === "function") return own.call(x) as MimeBundle | Promise<MimeBundle>;
  if (isMimeBundle(x)) return x;
  if (typeof x === "string") return { "text/plain": x };
  const looksTable = Array.isArray(x)
    ? x.length > 0 && x.every((r) => typeof r === "object" && r !== null)
    : typeof (x as { objects?: unknown } | null)?.objects === "function";
  if (looksTable) return tableBundle(x as TableInput);
  return { "text/plain": Deno.inspect(x, { colors: false }) };
}

/**
 * The bundle for any value: its own display method, a figure, a table, or inspected text.
 *
 * @example
 * ```ts
 * import { toBundle } from "./display.ts";
 * const b = await toBundle([{ model: "toy-base", refusal: 0.4 }]);
 * console.log(b["text/plain"]); // an aligned text table
 * ```
 */
export async function toBundle(x: unknown): Promise<MimeBundle> {
  return await bundleOf(x);
}

/**
 * Milliseconds to wait after sending `bundle` to the kernel: 50 ms plus 600 ms per MB of its
 * text payloads (about 3 s for the bundle that carries plotly.js), capped at 8 s.
 */
export function drainMs(bundle: MimeBundle): number {
  let chars = 0;
  for (const v of Object.values(bundle)) if (typeof v === "string") chars += v.length;
  return Math.min(8000, 50 + Math.round((600 * chars) / 1e6));
}

/**
 * Displays `x` now: inside Jupyter the bundle goes to `Deno.jupyter.display` before `show`
 * returns, so `show(fig)` without `await` still shows the figure in its own cell (and, left as
 * the cell's value, renders as nothing more); outside Jupyter its text/plain is printed.
 * `await show(x)` also waits (a few seconds at most) for the kernel to send large bundles
 * before the cell ends. One case can still lose a figure, in Deno's kernel rather than here:
 * the session's first figure (it carries plotly.js, 4.8 MB) shown without `await` just
 * before the cell ends (kept in 4 of 9 nbconvert runs); the next figure then carries
 * plotly.js again. `await show(fig)` kept it in 9 of 9 runs, ending the cell with `fig` in 6 of 6.
 *
 * @example
 * ```ts
 * import { plotBars, show } from "../../mod.ts";
 * const fig = plotBars([{ name: "refusal", value: 0.4, lo: 0.31, hi: 0.5 }]);
 * await show(fig); // or just `show(fig)`, or end the cell with `fig`
 * ```
 */
export function show(x: unknown): Promise<void> {
  let made: MimeBundle | Promise<MimeBundle>;
  try {
    made = bundleOf(x);
  } catch (err) {
    return Promise.reject(err);
  }
  // A plain bundle is sent before `show` returns (Deno.jupyter.display starts its message
  // synchronously), so an unawaited `show(fig)` still lands in this cell.
  const sent = made instanceof Promise ? made.then(sendBundle) : sendBundle(made);
  const done = sent.then(async ({ bundle, jupyter }) => {
    if (!jupyter) return;
    // Deno's kernel can report the cell idle before a large display has gone out, and
    // frontends (nbconvert among them) drop outputs that arrive after idle: give the kernel's
    // socket time to drain, longer for large bundles (the first figure carries plotly.js).
    await new Promise((resolve) => setTimeout(resolve, drainMs(bundle)));
    if (carriesPlotlyJs(bundle)) included = true;
  });
  // As a cell's last expression (`show(fig)` without await), the returned promise renders as
  // nothing rather than "Promise { <pending> }" (the figure has already been sent), and the
  // kernel, which awaits a display method, waits for the drain before ending the cell.
  const settled = () => done.then(() => ({}), () => ({}));
  Object.defineProperty(done, JUPYTER_DISPLAY, { value: settled, enumerable: false });
  return done;
}

function carriesPlotlyJs(bundle: MimeBundle): boolean {
  const html = bundle["text/html"];
  return typeof html === "string" && html.startsWith(PLOTLY_TAG_START);
}

function sendBundle(bundle: MimeBundle): Promise<{ bundle: MimeBundle; jupyter: boolean }> {
  const jupyter = jupyterRuntime();
  if (!jupyter) {
    console.log(bundle["text/plain"]);
    return Promise.resolve({ bundle, jupyter: false });
  }
  // Until the bundle carrying plotly.js has drained, later figures carry it again: if this
  // one is cut off (an unawaited show at the very end of a cell), the next still draws.
  if (carriesPlotlyJs(bundle)) included = false;
  return jupyter.display(bundle, { raw: true }).then(() => ({ bundle, jupyter: true }));
}

/** A figure that renders itself when it ends a notebook cell. */
export class Figure {
  /** The plotly.js figure. */
  readonly spec: PlotlyFigure;
  /** Wraps a figure from any builder in lib/viz/figure.ts. */
  constructor(spec: PlotlyFigure) {
    this.spec = spec;
  }
  /** Called by Deno's Jupyter kernel. */
  [JUPYTER_DISPLAY](): MimeBundle | Promise<MimeBundle> {
    return figureDisplay(this.spec);
  }
  /** The plain figure (so `JSON.stringify(figure)` gives plotly JSON). */
  toJSON(): PlotlyFigure {
    return this.spec;
  }
}
