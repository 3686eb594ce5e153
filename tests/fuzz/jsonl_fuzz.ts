/**
 * Fuzz target: lib/data/jsonl.ts on mutated JSONL bytes (strict UTF-8), then the schema
 * checks of loadPrompts (PromptRow field types) and of the SafetyWorld reader. Accepted
 * files must give defined values with increasing lines and PromptRows of the schema's types.
 *
 * @module
 */

import { parseJsonlEntries } from "../../lib/data/jsonl.ts";
import { promptRows } from "../../lib/data/benchmarks/prompts.ts";
import { parseWorldJsonl } from "../../lib/data/safetyworld/load.ts";
import { decodeUtf8 } from "../../lib/io/text.ts";
import { type Json, mutateBytes, mutateJson } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const ROWS: Json[] = [
  { id: "p1", prompt: "how do I bake bread", label: "benign", category: "cooking", split: "train" },
  {
    id: "p2",
    prompt: "caf\u00e9 \u2603",
    label: "harmful",
    category: "x",
    split: "test",
    target: "Sure",
  },
  {
    id: "p3",
    prompt: "third",
    label: "borderline",
    category: "y",
    split: "validation",
    answer: "z",
  },
];
const SOURCE = "fuzz.jsonl";
const enc = new TextEncoder();

/** The JSONL target. */
export const target: FuzzTarget = {
  name: "jsonl",
  source: SOURCE,
  make(rng) {
    const rows = ROWS.map((r) => (rng.int(2) ? mutateJson(rng, r) : r));
    const text = rows.map((r) => JSON.stringify(r)).join(rng.pick(["\n", "\r\n", "\n\n"]));
    return rng.int(3) ? enc.encode(text) : mutateBytes(rng, enc.encode(text));
  },
  run(input) {
    const text = decodeUtf8(input, SOURCE);
    const entries = parseJsonlEntries(text, SOURCE);
    let last = 0;
    for (const e of entries) {
      if (e.value === undefined || !(e.line > last)) return `entry at line ${e.line}`;
      last = e.line;
    }
    const columns: string[] = [];
    const rows = entries.map((e) => {
      if (e.value === null || typeof e.value !== "object" || Array.isArray(e.value)) {
        throw new Error(`${SOURCE}:${e.line}: expected a JSON object`); // loadPrompts' check
      }
      for (const k of Object.keys(e.value)) if (!columns.includes(k)) columns.push(k);
      return { at: `${SOURCE}:${e.line}`, rec: e.value as Record<string, unknown> };
    });
    for (const row of promptRows(rows, columns, SOURCE)) {
      for (const k of ["id", "prompt", "label", "category", "source"] as const) {
        if (typeof row[k] !== "string") return `PromptRow.${k} is ${typeof row[k]}`;
      }
      for (const k of ["target", "answer"] as const) {
        if (row[k] !== undefined && typeof row[k] !== "string") return `PromptRow.${k}`;
      }
    }
    for (const r of parseWorldJsonl(text, SOURCE)) {
      if (typeof r.prompt !== "string" || typeof r.split !== "string") return "world row types";
    }
    return undefined;
  },
};
