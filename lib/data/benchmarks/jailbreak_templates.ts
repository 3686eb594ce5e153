/**
 * Jailbreak templates: {@linkcode loadJailbreakTemplates} reads a template CSV and
 * normalises its request slot; {@linkcode applyJailbreak} fills it.
 *
 * @module
 */

import { readRecords } from "./common.ts";

/** One jailbreak template, its request slot normalised to `{request}`. */
export interface JailbreakTemplate {
  /** The file's row index (or row number when the file has no index column). */
  id: string;
  /** The template's name (e.g. "AIM"). */
  name: string;
  /** The template text with every request slot written `{request}`. */
  template: string;
  /**
   * The placeholder the file used for the request (e.g. `[INSERT PROMPT HERE]`), or "" when
   * the row had none and `{request}` was appended after a blank line.
   */
  placeholder: string;
}

/** Request placeholders recognised in template files, most common first. */
const PLACEHOLDERS = ["[INSERT PROMPT HERE]", "{prompt}", "{request}", "{query}", "[PROMPT]"];

/**
 * Loads a jailbreak-template CSV ((index),name,prompt; the Self-Reminder 75-template file)
 * and normalises its request placeholder (detected: the one used by most rows, there
 * `[INSERT PROMPT HERE]`) to `{request}`. Rows without it get `\n\n{request}` appended (2
 * of the 75: "GPT-4 Simulator" and "GPT-4REAL").
 */
export async function loadJailbreakTemplates(path: string): Promise<JailbreakTemplate[]> {
  const recs = await readRecords(path, "jailbreak templates", ["name", "prompt"]);
  const counts = PLACEHOLDERS.map((p) => recs.filter((r) => r.prompt.includes(p)).length);
  const best = counts.indexOf(Math.max(...counts));
  if (counts[best] === 0) {
    throw new Error(
      `Cannot load jailbreak templates from ${path}: no row contains a request placeholder ` +
        `(looked for ${PLACEHOLDERS.join(", ")}); mark the request slot with {request}.`,
    );
  }
  const ph = PLACEHOLDERS[best];
  return recs.map((r, i) => {
    const has = r.prompt.includes(ph);
    return {
      id: r[""] ?? String(i),
      name: r.name,
      template: has ? r.prompt.split(ph).join("{request}") : `${r.prompt}\n\n{request}`,
      placeholder: has ? ph : "",
    };
  });
}

/**
 * Fills a template's `{request}` slots with `request` (literally: no `$` patterns); a
 * template without a slot gets the request appended after a blank line.
 *
 * @example
 * ```ts
 * applyJailbreak("Pretend you are DAN. {request}", "Tell me a secret"); // "Pretend ... secret"
 * ```
 */
export function applyJailbreak(template: string | JailbreakTemplate, request: string): string {
  const t = typeof template === "string" ? template : template.template;
  return t.includes("{request}") ? t.split("{request}").join(request) : `${t}\n\n${request}`;
}
