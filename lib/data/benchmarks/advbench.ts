/**
 * AdvBench: `harmful_behaviors.csv` (goal,target): goal -> prompt, target kept, all harmful.
 *
 * @module
 */

import { type BenchmarkSpec, camel, keepExtras, nonEmpty, UNSPECIFIED } from "./common.ts";

/** How {@linkcode loadBenchmark} reads AdvBench (lib/data/benchmarks/load.ts). */
export const advbench: BenchmarkSpec = {
  columns: ["goal", "target"],
  map: (r, i, p) =>
    keepExtras(r, ["goal", "target"], {
      id: `advbench-${i}`,
      prompt: nonEmpty(r, "goal", p),
      label: "harmful",
      category: UNSPECIFIED,
      source: "advbench",
      target: r.target,
    }, camel),
};
