/**
 * The claims ledger rendered: the markdown table `deno task claims` prints and the README holds
 * (and its parser, so a table reformatted by `deno fmt` compares equal), and the figure of ours
 * against the paper's number.
 *
 * @module
 */

import { plotScatter } from "../viz/plots/scatter.ts";
import type { PlotlyFigure } from "../viz/figure.ts";
import { countsLine, type LedgerRow } from "./claims.ts";

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");

/**
 * The verdict cell: the verdict, and for all but a rule's outcome, why.
 *
 * @example
 * ```ts
 * import { claimsLedger } from "./claims.ts";
 * import { verdictText } from "./claims_table.ts";
 * console.log(verdictText(claimsLedger({})[0])); // "not run yet: no craft result saved: ..."
 * ```
 */
export function verdictText(r: LedgerRow): string {
  if (r.verdict === "reproduced" || r.verdict === "refuted") return r.verdict;
  if (r.verdict === "inconclusive" && r.why.startsWith("by the rule")) return r.verdict;
  return `${r.verdict}: ${r.why}`;
}

/** The header of {@link ledgerMarkdown}'s table. */
export const LEDGER_COLUMNS = [
  "claim",
  "paper",
  "paper's number",
  "ours [95% interval]",
  "verdict",
  "regenerate",
] as const;

/**
 * The ledger as a markdown table (what `deno task claims` prints and the README holds).
 *
 * @example
 * ```ts
 * import { claimsLedger } from "./claims.ts";
 * import { ledgerMarkdown } from "./claims_table.ts";
 * console.log(ledgerMarkdown(claimsLedger({})));
 * ```
 */
export function ledgerMarkdown(ledger: readonly LedgerRow[]): string {
  const rows = ledger.map((r) =>
    [
      `**${r.id}**: ${r.claim}`,
      r.paper,
      r.paperNumber,
      r.ours + (r.run ? ` (${r.run})` : ""),
      verdictText(r),
      r.command === "-" ? "-" : `\`${r.command}\``,
    ].map(cell)
  );
  const all = [[...LEDGER_COLUMNS], ...rows];
  const w = LEDGER_COLUMNS.map((_, j) => Math.max(3, ...all.map((r) => r[j].length)));
  const line = (r: string[]) => `| ${r.map((c, j) => c.padEnd(w[j])).join(" | ")} |`;
  return [line(all[0]), `| ${w.map((n) => "-".repeat(n)).join(" | ")} |`, ...rows.map(line)]
    .join("\n");
}

/**
 * Parses the rows of a markdown table back to trimmed cells (header and separator dropped), so
 * a table reformatted by `deno fmt` compares equal to the printed one.
 *
 * @example
 * ```ts
 * import { parseMarkdownTable } from "./claims_table.ts";
 * console.log(parseMarkdownTable("| a | b |\n| - | - |\n| 1 | x \\| y |")); // [["1", "x \\| y"]]
 * ```
 */
export function parseMarkdownTable(md: string): string[][] {
  const lines = md.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("|"));
  return lines.slice(2).map((l) =>
    l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\s+/g, " "))
  );
}

/**
 * Ours against the paper's number, one marker per measurement where both are numbers and mean
 * the same quantity (the paper's difference where it reports both ends), with our interval.
 * Returns undefined when no measurement has a paper number.
 *
 * @example
 * ```ts
 * import { claimsLedger } from "./claims.ts";
 * import { ledgerFigure } from "./claims_table.ts";
 * console.log(ledgerFigure(claimsLedger({})) === undefined); // true: nothing measured yet
 * ```
 */
export function ledgerFigure(ledger: readonly LedgerRow[]): PlotlyFigure | undefined {
  const pts = ledger.flatMap((r) =>
    r.measurements.filter((m) => m.paper !== undefined && Number.isFinite(m.value)).map((m) => ({
      x: m.paper!,
      y: m.value,
      ylo: m.lo,
      yhi: m.hi,
      label: `${r.id}${r.measurements.length > 1 ? ` (${m.label.split(", ").pop()})` : ""}` +
        (r.why.startsWith("quick sizes") ? " [quick sizes]" : ""),
    }))
  );
  if (pts.length === 0) return undefined;
  const fig = plotScatter(pts, {
    xTitle: "paper's number (difference in rate)",
    yTitle: "ours on SafetyWorld, 95% interval",
    title: "Claims ledger: ours vs the paper's number (dotted: y = x)",
  });
  // The legend names the markers; text beside them would overlap where the paper's numbers are close.
  fig.data = fig.data.map((t) => ({ ...t, mode: "markers" }));
  fig.data.push({
    type: "scatter",
    mode: "lines",
    x: [-1, 1],
    y: [-1, 1],
    name: "y = x",
    hoverinfo: "skip",
    line: { dash: "dot", color: "#999999", width: 1 },
  });
  return fig;
}

/**
 * `text` (the README) with the table and the counts line of its "## Claims ledger" section
 * replaced by the ledger's; an error when the section, its table or its counts line is missing.
 *
 * @example
 * ```ts ignore
 * const readme = fillLedgerSection(await Deno.readTextFile("README.md"), claimsLedger(results));
 * ```
 */
export function fillLedgerSection(text: string, ledger: readonly LedgerRow[]): string {
  const start = text.indexOf("## Claims ledger");
  if (start < 0) throw new Error("no '## Claims ledger' section to fill");
  const next = text.indexOf("\n## ", start + 1);
  const end = next < 0 ? text.length : next;
  const lines = text.slice(start, end).split("\n");
  const first = lines.findIndex((l) => l.startsWith("|"));
  if (first < 0) throw new Error("the '## Claims ledger' section has no table to replace");
  let last = first;
  while (last < lines.length && lines[last].startsWith("|")) last++;
  lines.splice(first, last - first, ...ledgerMarkdown(ledger).split("\n"));
  const counts = lines.findIndex((l) => l.startsWith("reproduced: "));
  if (counts < 0) throw new Error("the '## Claims ledger' section has no 'reproduced: ...' line");
  lines[counts] = countsLine(ledger);
  return text.slice(0, start) + lines.join("\n") + text.slice(end);
}
