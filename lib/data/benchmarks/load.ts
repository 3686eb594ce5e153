/**
 * {@linkcode loadBenchmark}: the standard safety benchmark files (SCIENCE.md section 7) as
 * arquero tables of {@linkcode PromptRow}, one reader per dataset in this folder. Paths are
 * always given by the caller: benchmark files are never shipped with the toolkit.
 *
 * Benchmark columns not mapped onto a PromptRow field are kept under their lowerCamelCase
 * name (`ContextString` -> `contextString`, `FunctionalCategory` -> `functionalCategory`); a
 * column that would collide with a PromptRow field is renamed (`Source` -> `origin`).
 *
 * @module
 */

import type * as aq from "arquero";
import type { PromptRow } from "../schema.ts";
import {
  type BenchmarkSpec,
  readJson,
  readRecords,
  readText,
  toTable,
  UNSPECIFIED,
} from "./common.ts";
import { advbench } from "./advbench.ts";
import { harmbench } from "./harmbench.ts";
import { xstest } from "./xstest.ts";
import { jailbreakbench } from "./jailbreakbench.ts";
import { strongreject } from "./strongreject.ts";
import { truthfulqa } from "./truthfulqa.ts";

const SPECS: Record<Exclude<BenchmarkName, "malicious_instruct">, BenchmarkSpec> = {
  advbench,
  harmbench,
  xstest,
  jailbreakbench,
  strongreject,
  truthfulqa,
};

/** Benchmarks {@linkcode loadBenchmark} understands. */
export type BenchmarkName =
  | "advbench"
  | "harmbench"
  | "xstest"
  | "jailbreakbench"
  | "strongreject"
  | "truthfulqa"
  | "malicious_instruct";

/** Options for {@linkcode loadBenchmark}. */
export interface LoadBenchmarkOptions {
  /**
   * HarmBench only: path of `harmbench_targets_text.json` (BehaviorID -> target string);
   * when given, each row gets its `target`.
   * @default undefined (no targets)
   */
  targetsPath?: string;
}

/**
 * Loads a standard benchmark file as an arquero table of {@linkcode PromptRow}.
 *
 * Mapping: AdvBench goal -> prompt, target kept, all `harmful`; HarmBench Behavior -> prompt,
 * BehaviorID -> id, SemanticCategory -> category, `functionalCategory`, `tags`,
 * `contextString` kept, split from the file name (`_test`, `_val`); XSTest label `safe` ->
 * `borderline` (benign prompts that look dangerous), `unsafe` -> `harmful`, type ->
 * category, `focus`/`note` kept; JailbreakBench Goal -> prompt, Target -> target, Category ->
 * category, `behavior`/`origin` kept; StrongREJECT forbidden_prompt -> prompt, `origin` kept;
 * TruthfulQA Question -> prompt (`benign`), Best Answer -> answer, `correctAnswers` and
 * `incorrectAnswers` as string arrays, `type`/`origin` kept; MaliciousInstruct one prompt a
 * line, all `harmful`.
 *
 * @example
 * ```ts
 * const xs = await loadBenchmark("xstest", "datasets/xstest/xstest_prompts.csv");
 * xs.groupby("label").count().print(); // borderline 250, harmful 200
 * ```
 * @throws Error naming file and line for malformed rows; file, column and the columns found
 * for a missing required column.
 */
export async function loadBenchmark(
  name: BenchmarkName,
  path: string,
  opts: LoadBenchmarkOptions = {},
): Promise<aq.ColumnTable> {
  if (name === "malicious_instruct") {
    const text = await readText(path);
    const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
    const rows: PromptRow[] = [];
    lines.forEach((l) => {
      if (l.trim() === "") return;
      rows.push({
        id: `malicious_instruct-${rows.length}`,
        prompt: l.trim(),
        label: "harmful",
        category: UNSPECIFIED,
        source: "malicious_instruct",
      });
    });
    return toTable(rows);
  }
  const spec = SPECS[name];
  if (!spec) {
    throw new Error(
      `Unknown benchmark ${JSON.stringify(name)}; expected one of ${
        [...Object.keys(SPECS), "malicious_instruct"].join(", ")
      } (or use loadPrompts for other files).`,
    );
  }
  const recs = await readRecords(path, name, spec.columns);
  const rows = recs.map((r, i) => spec.map(r, i, path));
  if (name === "harmbench" && opts.targetsPath) {
    const targets = await readJson(opts.targetsPath) as Record<string, unknown>;
    for (const row of rows) {
      const t = targets[row.id];
      if (typeof t === "string") row.target = t;
    }
  }
  return toTable(rows);
}
