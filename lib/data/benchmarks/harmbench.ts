/**
 * HarmBench: `harmbench_behaviors_text_*.csv` (Behavior,FunctionalCategory,SemanticCategory,Tags,
 * ContextString,BehaviorID): Behavior -> prompt, BehaviorID -> id, SemanticCategory -> category,
 * split from the file name (`_test`, `_val`).
 *
 * @module
 */

import type { PromptRow } from "../schema.ts";
import { type BenchmarkSpec, camel, keepExtras, nonEmpty, splitFromName } from "./common.ts";

/** How {@linkcode loadBenchmark} reads HarmBench (lib/data/benchmarks/load.ts). */
export const harmbench: BenchmarkSpec = {
  columns: ["Behavior", "SemanticCategory", "BehaviorID"],
  map: (r, _i, p) => {
    const row: PromptRow = {
      id: r.BehaviorID,
      prompt: nonEmpty(r, "Behavior", p),
      label: "harmful",
      category: r.SemanticCategory,
      source: "harmbench",
    };
    const split = splitFromName(p);
    if (split) row.split = split;
    return keepExtras(r, ["Behavior", "SemanticCategory", "BehaviorID"], row, camel);
  },
};
