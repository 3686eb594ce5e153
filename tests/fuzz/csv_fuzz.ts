/**
 * Fuzz target: lib/data/csv.ts on mutated CSV / TSV bytes, decoded strictly as lib/data
 * reads files (lib/io/text.ts), then mapped to PromptRows as loadPrompts does. Accepted files
 * must give records as long as the header, with increasing source lines.
 *
 * @module
 */

import { csvRecords, lineOf, parseCsv } from "../../lib/data/csv.ts";
import { promptRows } from "../../lib/data/benchmarks/prompts.ts";
import { decodeUtf8 } from "../../lib/io/text.ts";
import { mutateBytes } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const enc = new TextEncoder();
const SEEDS = [
  'prompt,label,category\nhow do I bake bread,benign,cooking\n"a ""quoted"", prompt",harmful,x\n',
  'goal,target\r\nWrite a tutorial,Sure here is\r\n\r\nSecond,"multi\nline"\r\n',
  "\ufeffid,prompt,label\n1,caf\u00e9 \u2603,borderline\n2,,benign\n",
  "prompt\tlabel\nhi\tbenign\n",
].map((s) => enc.encode(s));
const SOURCE = "fuzz.csv";

/** The CSV target. */
export const target: FuzzTarget = {
  name: "csv",
  source: SOURCE,
  make: (rng) => mutateBytes(rng, rng.pick(SEEDS)),
  run(input) {
    const text = decodeUtf8(input, SOURCE);
    const delimiter = text.includes("\t") ? "\t" : ",";
    const table = parseCsv(text, SOURCE, { delimiter });
    const recs = csvRecords(table, SOURCE);
    let last = 0;
    for (const [k, r] of table.rows.entries()) {
      if (r.values.length !== table.header.length) return `row ${k} has ${r.values.length} fields`;
      if (!(r.line > last)) return `line ${r.line} after ${last}`;
      last = r.line;
      if (lineOf(recs[k]) !== r.line) return "lineOf";
    }
    if (table.header.some((h) => typeof h !== "string")) return "header";
    const rows = recs.map((rec) => ({ at: `${SOURCE}:${lineOf(rec)}`, rec }));
    if (table.header.includes("prompt")) {
      for (const row of promptRows(rows, table.header, SOURCE, { label: "harmful" })) {
        if (typeof row.prompt !== "string" || typeof row.category !== "string") return "row types";
      }
    }
    return undefined;
  },
};
