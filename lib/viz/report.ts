/**
 * Standalone HTML reports: a title, then sections of escaped text, trusted HTML fragments
 * (e.g. a reasoning audit), plotly figures and tables, in one file that opens offline
 * anywhere (plotly.js inlined once in the head, no external script, style or font).
 *
 * @module
 */

import { writeTextFileAtomic } from "../io/atomic.ts";
import { escapeHtml, figureDiv, plotlyScriptTag, tableHtml } from "./display.ts";
import type { PlotlyFigure } from "./figure.ts";

/** A table in a report. */
export interface ReportTable {
  /** Caption. */
  title?: string;
  /** Rows (plain objects; an arquero table gives them through `table.objects()`). */
  rows: Record<string, unknown>[];
  /** Rows shown before a "showing n of m" note. @default 200 */
  maxRows?: number;
  /** Significant digits of non-integer numbers. @default 4 */
  digits?: number;
}

/** One section of a report; its parts appear in this order: text, html, figures, tables. */
export interface ReportSection {
  /** Section heading. */
  heading: string;
  /** Plain text; blank lines separate paragraphs. Escaped. */
  text?: string;
  /** Trusted HTML inserted as is (e.g. `renderAudit(...)`). */
  html?: string;
  /** Figures from lib/viz/figure.ts. */
  figures?: PlotlyFigure[];
  /** Tables. */
  tables?: ReportTable[];
}

/** A whole report. */
export interface Report {
  /** Page and heading title. */
  title: string;
  /** A line under the title (model, seeds, date...). */
  subtitle?: string;
  /** The sections, in order. */
  sections: ReportSection[];
}

const CSS = `
body{margin:0;background:#fafafa;color:#1f2933;font:15px/1.55 system-ui,-apple-system,"Segoe UI",
 Roboto,sans-serif}
main{max-width:980px;margin:0 auto;padding:32px 28px 64px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}
.subtitle{color:#5f6c7b;margin:0 0 20px}
h2{font-size:19px;margin:36px 0 10px;padding-bottom:4px;border-bottom:1px solid #e4e7eb}
nav ol{margin:0;padding-left:20px;color:#5f6c7b}
nav a{color:#2459a8;text-decoration:none}
p{margin:8px 0}
.figure{margin:14px 0}
.sc-table{border-collapse:collapse;margin:14px 0;font-size:13px}
.sc-table caption{text-align:left;font-weight:600;padding:4px 0}
.sc-table th,.sc-table td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:left}
.sc-table th{background:#f5f7fa}
.sc-table td.num{text-align:right;font-variant-numeric:tabular-nums}
.sc-more{color:#7b8794;font-size:12px;margin:0}
`;

function paragraphs(text: string): string {
  return text.split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p.length > 0)
    .map((p) => `<p>${escapeHtml(p).replaceAll("\n", "<br>")}</p>`).join("\n");
}

function checkReport(report: Report): void {
  if (typeof report?.title !== "string" || !Array.isArray(report.sections)) {
    throw new Error(
      "Cannot build report: expected { title: string, sections: [...] }; " +
        `got title ${typeof report?.title} and sections ${typeof report?.sections}`,
    );
  }
  report.sections.forEach((s, i) => {
    if (typeof s?.heading !== "string") {
      throw new Error(`Cannot build report: sections[${i}].heading must be a string`);
    }
    s.tables?.forEach((t, j) => {
      if (!Array.isArray(t?.rows)) {
        throw new Error(
          `Cannot build report: sections[${i}].tables[${j}].rows must be an array of row ` +
            `objects (for an arquero table, pass table.objects())`,
        );
      }
    });
  });
}

/**
 * Builds the report as one standalone HTML page. Figures get deterministic element ids, so
 * the same report gives the same bytes.
 */
export function buildReport(report: Report): string {
  checkReport(report);
  const hasFigures = report.sections.some((s) => (s.figures?.length ?? 0) > 0);
  const toc = report.sections.length > 2
    ? `<nav><ol>${
      report.sections.map((s, i) =>
        `<li><a href="#section-${i + 1}">${escapeHtml(s.heading)}</a></li>`
      )
        .join("")
    }</ol></nav>`
    : "";
  const body = report.sections.map((s, i) => {
    const parts = [`<h2 id="section-${i + 1}">${escapeHtml(s.heading)}</h2>`];
    if (s.text) parts.push(paragraphs(s.text));
    if (s.html) parts.push(`<div class="html">${s.html}</div>`);
    (s.figures ?? []).forEach((fig, k) =>
      parts.push(`<div class="figure">${figureDiv(fig, `figure-${i + 1}-${k + 1}`)}</div>`)
    );
    for (const t of s.tables ?? []) {
      parts.push(
        tableHtml(t.rows, { title: t.title, maxRows: t.maxRows ?? 200, digits: t.digits }),
      );
    }
    return `<section>\n${parts.join("\n")}\n</section>`;
  }).join("\n");
  const subtitle = report.subtitle ? `<p class="subtitle">${escapeHtml(report.subtitle)}</p>` : "";
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(report.title)}</title>`,
    `<style>${CSS}</style>`,
    hasFigures ? plotlyScriptTag() : "",
    "</head><body><main>",
    `<h1>${escapeHtml(report.title)}</h1>`,
    subtitle,
    toc,
    body,
    "</main></body></html>",
    "",
  ].join("\n");
}

/** Writes a report (a {@link Report} or HTML from {@link buildReport}) to `path` atomically. */
export async function writeReport(path: string, report: Report | string): Promise<void> {
  await writeTextFileAtomic(path, typeof report === "string" ? report : buildReport(report));
}
