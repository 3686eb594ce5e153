/**
 * {@linkcode loadRefusalDirectionSplit}: Arditi et al.'s refusal-direction split files.
 *
 * @module
 */

import type * as aq from "arquero";
import { basename } from "node:path";
import type { PromptLabel, PromptRow, Split } from "../schema.ts";
import { readJson, splitFromName, toTable, UNSPECIFIED } from "./common.ts";

/** Options for {@linkcode loadRefusalDirectionSplit}. */
export interface RefusalSplitOptions {
  /** Label of every row. @default from the file name: harmful_* -> harmful, harmless_* -> benign */
  label?: PromptLabel;
  /** Split. @default from the file name (_train, _val, _test) */
  split?: Split;
}

/**
 * Loads one of Arditi et al.'s refusal-direction split files (`[{instruction, category}]`,
 * e.g. harmful_train.json) as an arquero table of {@linkcode PromptRow}; a null category
 * becomes "unspecified".
 */
export async function loadRefusalDirectionSplit(
  path: string,
  opts: RefusalSplitOptions = {},
): Promise<aq.ColumnTable> {
  const file = basename(path);
  const label = opts.label ??
    (/^harmful/i.test(file) ? "harmful" : /^harmless/i.test(file) ? "benign" : undefined);
  if (label === undefined) {
    throw new Error(
      `Cannot label ${path}: the file name starts with neither "harmful" nor "harmless"; ` +
        `pass {label: "harmful" | "benign"}.`,
    );
  }
  const data = await readJson(path);
  if (!Array.isArray(data)) {
    throw new Error(`${path}: expected a JSON array of {instruction, category} objects.`);
  }
  const split = opts.split ?? splitFromName(path);
  const stem = file.replace(/\.json$/i, "");
  return toTable(data.map((e, k) => {
    const o = e as { instruction?: unknown; category?: unknown };
    if (typeof o?.instruction !== "string" || o.instruction.trim() === "") {
      throw new Error(`${path}: element ${k} needs a non-empty string field "instruction".`);
    }
    const row: PromptRow = {
      id: `${stem}-${k}`,
      prompt: o.instruction,
      label,
      category: typeof o.category === "string" ? o.category : UNSPECIFIED,
      source: "refusal_direction",
    };
    if (split) row.split = split;
    return row;
  }));
}
