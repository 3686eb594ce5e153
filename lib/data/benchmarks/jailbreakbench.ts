/**
 * JailbreakBench: behaviors ((index),Goal,Target,Behavior,Category,Source): Goal -> prompt,
 * Target -> target, Category -> category.
 *
 * @module
 */

import { type BenchmarkSpec, camel, keepExtras, nonEmpty } from "./common.ts";

/** How {@linkcode loadBenchmark} reads JailbreakBench (lib/data/benchmarks/load.ts). */
export const jailbreakbench: BenchmarkSpec = {
  columns: ["Goal", "Target", "Category"],
  map: (r, i, p) =>
    keepExtras(r, ["Goal", "Target", "Category"], {
      id: `jailbreakbench-${r[""] ?? i}`,
      prompt: nonEmpty(r, "Goal", p),
      label: "harmful",
      category: r.Category,
      source: "jailbreakbench",
      target: r.Target,
    }, camel),
};
