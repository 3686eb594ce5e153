/**
 * The compass monitor's audit as a standalone, offline HTML page (a summary table, then every
 * row's tokens coloured by p_safe with the crossing marked) and as summary rows. Reads the
 * trails structurally ({@link AuditTrail}), so any `MonitorTrail` of lib/compass/monitor.ts
 * renders here without this folder importing the compass.
 *
 * @module
 */

import { writeTextFileAtomic } from "../io/atomic.ts";
import { renderAudit } from "./audit.ts";
import { buildReport } from "./report.ts";
import { escapeHtml } from "./display.ts";

/** What the page reads of one monitored row (a `MonitorTrail` has all of it). */
export interface AuditTrail {
  /** The prompt. */
  prompt: string;
  /** Display text of each new token. */
  tokens: string[];
  /** p_safe of each new token. */
  scores: number[];
  /** Running mean of the scores. */
  running: number[];
  /** First token whose running score fell below the threshold, or null. */
  crossing: number | null;
  /** The monitor's action. */
  action: string;
  /** First token the action could change, or null. */
  actionStep: number | null;
  /** Decoded new text. */
  text: string;
  /** The unsafe threshold. */
  threshold: number;
  /** Tokens in the running mean. */
  window: number;
}

/** One summary row per trail (for tables and the exported audit). */
export function trailSummary(trails: readonly AuditTrail[]): Record<string, unknown>[] {
  return trails.map((t, i) => ({
    row: i,
    prompt: t.prompt,
    tokens: t.tokens.length,
    crossing: t.crossing ?? "",
    action: t.crossing === null ? "none" : t.action,
    actionStep: t.actionStep ?? "",
    minRunning: t.running.length ? Math.min(...t.running) : NaN,
    threshold: t.threshold,
    text: t.text,
  }));
}

/** Options of {@link exportAudit} / {@link auditHtml}. */
export interface ExportAuditOptions {
  /** Page title. @default "Compass monitor audit" */
  title?: string;
  /** A line under the title (model, compass, settings). */
  subtitle?: string;
  /** Unsafe threshold drawn in every row. @default each trail's own threshold */
  threshold?: number;
  /** Rows rendered token by token (the summary lists all). @default 200 */
  maxRows?: number;
}

/** The part of a monitored run that {@link auditHtml} and {@link exportAudit} read. */
export interface AuditRun {
  /** One trail per row. */
  trails: readonly AuditTrail[];
  /** The monitor settings the run used (shown under the title). */
  settings?: { layer: number; threshold: number; window: number; action: string; strength: number };
}

/** The standalone, offline HTML page of a run: a summary table, then every row's tokens. */
export function auditHtml(run: AuditRun, opts: ExportAuditOptions = {}): string {
  const shown = run.trails.slice(0, opts.maxRows ?? 200);
  const rowsHtml = shown.map((t, i) => {
    const note = t.crossing === null
      ? "no crossing"
      : `crossing at token ${t.crossing} (running p_safe ${
        t.running[t.crossing].toFixed(3)
      } < ${t.threshold}, window ${t.window}); action ${t.action}` +
        (t.actionStep === null ? "" : ` from token ${t.actionStep}`);
    return renderAudit(t.tokens, t.scores, {
      threshold: opts.threshold ?? t.threshold,
      title: `row ${i}: ${t.prompt}`,
      mark: t.crossing ?? undefined,
    }) + `<p class="sc-more">${escapeHtml(note)}</p>`;
  }).join("\n");
  const s = run.settings;
  return buildReport({
    title: opts.title ?? "Compass monitor audit",
    subtitle: opts.subtitle ??
      (s
        ? `layer ${s.layer} · threshold ${s.threshold} · window ${s.window} · action ${s.action}` +
          (s.action === "steer" ? ` · strength ${s.strength}` : "")
        : undefined),
    sections: [
      { heading: "Summary", tables: [{ rows: trailSummary(run.trails), maxRows: 1000 }] },
      {
        heading: "Per-token scores",
        text: `Each token is coloured by its own p_safe (red unsafe, green safe); ▶ marks ` +
          `the first token whose running mean (over the trail's window) fell below the ` +
          `trail's threshold. ` +
          (shown.length < run.trails.length
            ? `Showing ${shown.length} of ${run.trails.length} rows.`
            : ""),
        html: rowsHtml,
      },
    ],
  });
}

/** Writes {@link auditHtml} to `path` atomically (one file, no external resources). */
export async function exportAudit(
  run: AuditRun,
  path: string,
  opts: ExportAuditOptions = {},
): Promise<void> {
  await writeTextFileAtomic(path, auditHtml(run, opts));
}
