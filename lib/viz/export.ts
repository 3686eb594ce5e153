/**
 * Saving figures: `.html` (a standalone page with plotly.js inlined, so it opens offline),
 * `.json` (the plotly.js figure JSON), and `.png` / `.svg` rendered by `Plotly.toImage` in a
 * headless Chromium driven through `playwright-core` (the browser is the system's own:
 * Debian's `chromium`, or any Chrome named by option or `CHROMIUM_PATH`). Every file is
 * written atomically.
 *
 * @module
 */

import { extname } from "node:path";
import { writeFileAtomic, writeJsonAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { escapeHtml, figureDiv, plotlyScriptTag } from "./display.ts";
import type { PlotlyFigure } from "./figure.ts";

/** Options of {@link saveFigure} and {@link renderFigureImage}. */
export interface SaveFigureOptions {
  /** Chromium/Chrome executable. @default $CHROMIUM_PATH, then the usual system paths */
  executablePath?: string;
  /** Image width in CSS pixels. @default the layout's width, else 900 */
  width?: number;
  /** Image height in CSS pixels. @default the layout's height, else 500 */
  height?: number;
  /** Device-pixel scale of PNGs (2 = sharp on high-DPI screens and in papers). @default 2 */
  scale?: number;
  /** Milliseconds before giving up on the browser. @default 60000 */
  timeoutMs?: number;
}

/** Where Chromium is looked for when no executable is named, in order. */
export const CHROMIUM_CANDIDATES: readonly string[] = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
];

/** The arguments Chromium is launched with (headless, no sandbox, no network chatter). */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false; // missing or unreadable: not a usable browser
  }
}

/**
 * The Chromium executable to use: `explicit` if given (which must exist), else
 * `CHROMIUM_PATH`, else the first of {@link CHROMIUM_CANDIDATES} that exists; undefined when none.
 */
export function findChromium(explicit?: string): string | undefined {
  if (explicit !== undefined) return isFile(explicit) ? explicit : undefined;
  let fromEnv: string | undefined;
  try {
    fromEnv = Deno.env.get("CHROMIUM_PATH") || undefined;
  } catch {
    fromEnv = undefined; // no --allow-env: fall back to the system paths
  }
  return [fromEnv, ...CHROMIUM_CANDIDATES].find((p): p is string => !!p && isFile(p));
}

/** A complete offline HTML page showing one figure (plotly.js inlined). */
export function standaloneFigureHtml(fig: PlotlyFigure): string {
  const title = (fig.layout.title as { text?: string } | undefined)?.text ?? "figure";
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${
    escapeHtml(title)
  }</title>\n` +
    `${plotlyScriptTag()}\n</head>\n<body style="margin:0;font-family:system-ui,sans-serif">\n` +
    `${figureDiv(fig, "figure")}\n</body></html>\n`;
}

function decodeDataUrl(url: string): Uint8Array {
  const comma = url.indexOf(",");
  const meta = url.slice(0, comma);
  const body = url.slice(comma + 1);
  if (meta.endsWith(";base64")) return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  return new TextEncoder().encode(decodeURIComponent(body));
}

/**
 * Renders a figure to PNG or SVG bytes with `Plotly.toImage` in headless Chromium. Throws,
 * naming the paths tried and the install command, when no browser is found.
 */
export async function renderFigureImage(
  fig: PlotlyFigure,
  format: "png" | "svg",
  opts: SaveFigureOptions = {},
): Promise<Uint8Array> {
  const executablePath = findChromium(opts.executablePath);
  if (!executablePath) {
    const looked = opts.executablePath !== undefined
      ? `executablePath ${opts.executablePath} does not exist`
      : `looked at $CHROMIUM_PATH, ${CHROMIUM_CANDIDATES.join(", ")}`;
    throw new Error(
      `Cannot render ${format.toUpperCase()}: no Chromium browser found (${looked}). ` +
        `Install one with \`sudo apt-get install chromium\` (Debian/Ubuntu), or pass ` +
        `{ executablePath } / set CHROMIUM_PATH to a Chrome or Chromium executable; ` +
        `.html and .json exports need no browser.`,
    );
  }
  const { chromium } = await import("playwright-core");
  const timeout = opts.timeoutMs ?? 60_000;
  let browser;
  try {
    browser = await chromium.launch({ executablePath, args: [...CHROMIUM_ARGS], timeout });
  } catch (err) {
    throw new Error(
      `Cannot launch Chromium at ${executablePath}: ${(err as Error).message.split("\n")[0]}. ` +
        `Check that it starts (\`${executablePath} --headless --no-sandbox --version\`).`,
      { cause: err },
    );
  }
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(timeout);
    await page.setContent(
      `<!doctype html><html><head><meta charset="utf-8"></head><body>` +
        `${plotlyScriptTag()}</body></html>`,
    );
    const width = opts.width ?? (typeof fig.layout.width === "number" ? fig.layout.width : 900);
    const height = opts.height ??
      (typeof fig.layout.height === "number" ? fig.layout.height : 500);
    const scale = format === "png" ? opts.scale ?? 2 : 1;
    const url = await page.evaluate(
      (a: { fig: PlotlyFigure; format: string; width: number; height: number; scale: number }) => {
        const g = globalThis as unknown as {
          Plotly: { toImage(f: unknown, o: Record<string, unknown>): Promise<string> };
        };
        const { fig, ...o } = a;
        return g.Plotly.toImage({ data: fig.data, layout: fig.layout }, o);
      },
      { fig, format, width, height, scale },
    );
    return decodeDataUrl(url);
  } finally {
    await browser.close();
  }
}

/**
 * Saves a figure; the format comes from the extension: `.html` (standalone, offline),
 * `.json` (plotly figure JSON), `.png` or `.svg` (headless Chromium). Atomic writes.
 */
export async function saveFigure(
  fig: PlotlyFigure,
  path: string,
  opts: SaveFigureOptions = {},
): Promise<void> {
  const ext = extname(path).toLowerCase();
  if (ext === ".html" || ext === ".htm") {
    await writeTextFileAtomic(path, standaloneFigureHtml(fig));
  } else if (ext === ".json") {
    await writeJsonAtomic(path, fig);
  } else if (ext === ".png" || ext === ".svg") {
    const bytes = await renderFigureImage(fig, ext === ".png" ? "png" : "svg", opts);
    await writeFileAtomic(path, bytes);
  } else {
    throw new Error(
      `Cannot save figure to ${path}: unknown extension "${ext}"; use .html, .json, .png or .svg`,
    );
  }
}
