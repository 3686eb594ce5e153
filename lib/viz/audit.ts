/**
 * The "reasoning audit" view (CRAFT, arXiv 2603.17305; SCIENCE.md section 1: per-token
 * compass scores drawn over the text of one generation): every token is a span whose
 * background runs from red (score 0, unsafe) through white (0.5) to green (1, safe), with
 * its score in a tooltip, an optional marker where the trace crosses into unsafe territory,
 * and a legend. The output is one self-contained, escaped HTML fragment.
 *
 * @module
 */

import { escapeHtml, formatNumber } from "./display.ts";
import { LABEL_COLORS } from "./figure.ts";

/** Options of {@link renderAudit}. */
export interface AuditOptions {
  /** Scores below it count as unsafe (dotted underline, legend). @default 0.5 */
  threshold?: number;
  /** Heading above the tokens. */
  title?: string;
  /** Show the colour legend. @default true */
  legend?: boolean;
  /** Index of a token to mark as the crossing point (drawn with a ▶ marker and an outline). */
  mark?: number;
  /**
   * Turn tokenizer markers into text: GPT-2's byte-level `Ġ` (space) and `Ċ` (newline),
   * SentencePiece's `▁` (space). @default true
   */
  cleanTokens?: boolean;
}

function rgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const RED = rgb(LABEL_COLORS.unsafe);
const GREEN = rgb(LABEL_COLORS.safe);
const WHITE: [number, number, number] = [255, 255, 255];

/**
 * The background colour of a score: red (0) -> white (0.5) -> green (1), clamped to [0, 1];
 * grey for a non-finite score. Returns `rgb(r,g,b)`.
 */
export function scoreColor(score: number): string {
  if (!Number.isFinite(score)) return "rgb(200,200,200)";
  const s = Math.min(1, Math.max(0, score));
  const [from, to, t] = s < 0.5 ? [RED, WHITE, s / 0.5] : [WHITE, GREEN, (s - 0.5) / 0.5];
  const mix = from.map((c, i) => Math.round(c + (to[i] - c) * t));
  return `rgb(${mix[0]},${mix[1]},${mix[2]})`;
}

/** A token's display text (tokenizer markers turned into spaces/newlines when asked). */
export function cleanToken(token: string): string {
  return token.replaceAll("Ġ", " ").replaceAll("Ċ", "\n").replaceAll("▁", " ");
}

const CSS = `.sc-audit{font:14px/1.9 ui-monospace,SFMono-Regular,Menlo,monospace;` +
  `white-space:pre-wrap;word-break:break-word;max-width:60em}` +
  `.sc-audit h4{font:600 14px system-ui,sans-serif;margin:0 0 6px}` +
  `.sc-audit .tok{border-radius:3px;padding:1px 0}` +
  `.sc-audit .below{text-decoration:underline dotted #7a0000}` +
  `.sc-audit .mark{outline:2px solid #000;outline-offset:1px}` +
  `.sc-audit .pin{color:#000;font-weight:700}` +
  `.sc-audit .legend{font:12px system-ui,sans-serif;color:#555;margin-top:8px}` +
  `.sc-audit .ramp{display:inline-block;width:140px;height:10px;vertical-align:middle;` +
  `margin:0 6px;background:linear-gradient(to right,${scoreColor(0)},${scoreColor(0.5)},` +
  `${scoreColor(1)})}`;

/**
 * Renders tokens coloured by their compass score (0 = unsafe, 1 = safe) as an HTML fragment
 * with a `<style>` of its own. Every token is escaped; its tooltip gives index and score.
 */
export function renderAudit(tokens: string[], scores: number[], opts: AuditOptions = {}): string {
  if (tokens.length !== scores.length) {
    throw new Error(
      `renderAudit: ${tokens.length} tokens but ${scores.length} scores; pass one score per token`,
    );
  }
  const threshold = opts.threshold ?? 0.5;
  const clean = opts.cleanTokens ?? true;
  if (opts.mark !== undefined && !(opts.mark >= 0 && opts.mark < tokens.length)) {
    throw new Error(
      `renderAudit: mark ${opts.mark} is outside the ${tokens.length} tokens; use an index in [0, ${
        tokens.length - 1
      }] or leave it out`,
    );
  }
  const spans = tokens.map((tok, i) => {
    const s = scores[i];
    const classes = ["tok"];
    if (Number.isFinite(s) && s < threshold) classes.push("below");
    if (i === opts.mark) classes.push("mark");
    const tip = `token ${i}: score ${Number.isFinite(s) ? formatNumber(s, 3) : "n/a"}` +
      (i === opts.mark ? " (crossing)" : "");
    const pin = i === opts.mark ? `<span class="pin" title="crossing point">▶</span>` : "";
    const text = escapeHtml(clean ? cleanToken(tok) : tok);
    return `${pin}<span class="${classes.join(" ")}" data-score="${s}" ` +
      `style="background:${scoreColor(s)}" title="${escapeHtml(tip)}">${text}</span>`;
  });
  const title = opts.title ? `<h4>${escapeHtml(opts.title)}</h4>` : "";
  const legend = opts.legend ?? true
    ? `<div class="legend">unsafe 0<span class="ramp"></span>1 safe · threshold ${
      formatNumber(threshold, 3)
    } (dotted underline below it)${
      opts.mark !== undefined ? " · ▶ crossing point" : ""
    } · hover a token for its score</div>`
    : "";
  return `<div class="sc-audit"><style>${CSS}</style>${title}<div class="tokens">${
    spans.join("")
  }</div>${legend}</div>`;
}
