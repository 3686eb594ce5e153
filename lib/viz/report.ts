/**
 * Standalone HTML reports: a title, a summary of findings in sentences, then sections of
 * escaped text, trusted HTML fragments (e.g. a reasoning audit), plotly figures and tables,
 * and the run's provenance, in one file that opens offline anywhere (plotly.js inlined once
 * in the head, no external script, style or font).
 *
 * @module
 */

import { writeTextFileAtomic } from "../io/atomic.ts";
import { type Provenance, provenanceRows } from "../io/provenance.ts";
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
  /**
   * Columns to show, in order, as `{ key: "Header" }` (e.g. `{ aurocLo: "AUROC low" }`);
   * other fields are left out. A key missing from every row is an error. @default every
   * field, under its own name
   */
  columns?: Record<string, string>;
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
  /** Summary of findings: sentences shown first, as a list, before any section. */
  summary?: string[];
  /** The sections, in order. */
  sections: ReportSection[];
  /**
   * Provenance of the run (lib/io/provenance.ts): shown as the last section and embedded as
   * JSON in `<script type="application/json" id="provenance">`.
   */
  provenance?: Provenance;
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
.summary{background:#f5f7fa;border-left:4px solid #2459a8;padding:10px 18px;margin:16px 0}
.summary h2{border:0;margin:4px 0 6px;font-size:17px}
.summary li{margin:4px 0}
.provenance td{font-family:ui-monospace,Menlo,monospace;font-size:12px;word-break:break-all}
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
      for (const key of Object.keys(t.columns ?? {})) {
        if (t.rows.length > 0 && !t.rows.some((r) => key in r)) {
          throw new Error(
            `Cannot build report: sections[${i}].tables[${j}].columns names "${key}", which ` +
              `no row has; row fields: ${Object.keys(t.rows[0]).join(", ")}`,
          );
        }
      }
    });
  });
  if (report.summary !== undefined && !Array.isArray(report.summary)) {
    throw new Error("Cannot build report: summary must be an array of sentences (strings)");
  }
}

/** Rows with only the chosen columns, under their display names. */
function shownRows(t: ReportTable): Record<string, unknown>[] {
  const cols = t.columns;
  if (!cols) return t.rows;
  return t.rows.map((r) => {
    const out: Record<string, unknown> = {};
    for (const [key, label] of Object.entries(cols)) out[label] = r[key];
    return out;
  });
}

/** JSON safe inside a `<script>` element (no `</script>`, no `<!--`). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replaceAll("<", "\\u003c");
}

/**
 * Builds the report as one standalone HTML page: title, summary of findings, sections, then
 * provenance. Figures get deterministic element ids, so the same report gives the same bytes.
 *
 * @example
 * ```ts
 * const html = buildReport({
 *   title: "Compass sweep",
 *   summary: ["The best layer is 3 (craft, AUROC 0.93 [0.88, 0.97], n = 96)."],
 *   sections: [{
 *     heading: "Layer sweep",
 *     tables: [{
 *       rows: [{ layer: 3, auroc: 0.93, nTest: 96 }],
 *       columns: { layer: "Layer", auroc: "AUROC", nTest: "Test traces" },
 *     }],
 *   }],
 * });
 * await writeReport("runs/sweep/report.html", html);
 * ```
 */
export function buildReport(report: Report): string {
  checkReport(report);
  const hasFigures = report.sections.some((s) => (s.figures?.length ?? 0) > 0);
  const headings = report.sections.map((s) => s.heading);
  if (report.provenance) headings.push("Provenance");
  const toc = headings.length > 2
    ? `<nav><ol>${
      headings.map((h, i) => `<li><a href="#section-${i + 1}">${escapeHtml(h)}</a></li>`)
        .join("")
    }</ol></nav>`
    : "";
  const summary = (report.summary?.length ?? 0) > 0
    ? `<div class="summary"><h2 id="summary">Summary of findings</h2><ul>${
      report.summary!.map((line) => `<li>${escapeHtml(line)}</li>`).join("\n")
    }</ul></div>`
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
        tableHtml(shownRows(t), {
          title: t.title,
          maxRows: t.maxRows ?? 200,
          digits: t.digits,
        }),
      );
    }
    return `<section>\n${parts.join("\n")}\n</section>`;
  });
  if (report.provenance) {
    const n = report.sections.length + 1;
    body.push(
      `<section class="provenance">\n<h2 id="section-${n}">Provenance</h2>\n` +
        tableHtml(provenanceRows(report.provenance), { maxRows: 1000 }) +
        `\n<script type="application/json" id="provenance">${
          scriptJson(report.provenance)
        }</script>\n</section>`,
    );
  }
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
    summary,
    toc,
    body.join("\n"),
    "</main></body></html>",
    "",
  ].join("\n");
}

/**
 * Writes a report (a {@link Report} or HTML from {@link buildReport}) to `path` atomically.
 *
 * @example
 * ```ts
 * await writeReport("runs/x/report.html", { title: "x", sections: [{ heading: "h", text: "t" }] });
 * ```
 */
export async function writeReport(path: string, report: Report | string): Promise<void> {
  await writeTextFileAtomic(path, typeof report === "string" ? report : buildReport(report));
}
