/**
 * XSTest: `xstest_prompts.csv` (id,prompt,type,label,focus,note): label `safe` -> borderline,
 * `unsafe` -> harmful, type -> category.
 *
 * @module
 */

import type { PromptLabel, PromptRow } from "../schema.ts";
import { type BenchmarkSpec, camel, keepExtras, nonEmpty } from "./common.ts";
import { lineOf } from "../csv.ts";

/** How {@linkcode loadBenchmark} reads XSTest (lib/data/benchmarks/load.ts). */
export const xstest: BenchmarkSpec = {
  columns: ["id", "prompt", "type", "label"],
  map: (r, _i, p) => {
    const label = { safe: "borderline", unsafe: "harmful" }[r.label] as PromptLabel | undefined;
    if (!label) {
      throw new Error(
        `${p}:${lineOf(r)}: field "label" is ${JSON.stringify(r.label)}; XSTest labels are ` +
          `"safe" (benign prompts that look unsafe -> borderline) or "unsafe" (-> harmful).`,
      );
    }
    const row: PromptRow = {
      id: `xstest-${r.id}`,
      prompt: nonEmpty(r, "prompt", p),
      label,
      category: r.type,
      source: "xstest",
    };
    return keepExtras(r, ["id", "prompt", "type", "label"], row, camel);
  },
};
