/**
 * StrongREJECT: (category,source,forbidden_prompt): forbidden_prompt -> prompt.
 *
 * @module
 */

import { type BenchmarkSpec, camel, keepExtras, nonEmpty } from "./common.ts";

/** How {@linkcode loadBenchmark} reads StrongREJECT (lib/data/benchmarks/load.ts). */
export const strongreject: BenchmarkSpec = {
  columns: ["category", "forbidden_prompt"],
  map: (r, i, p) =>
    keepExtras(r, ["category", "forbidden_prompt"], {
      id: `strongreject-${i}`,
      prompt: nonEmpty(r, "forbidden_prompt", p),
      label: "harmful",
      category: r.category,
      source: "strongreject",
    }, camel),
};
