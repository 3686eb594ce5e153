/**
 * TruthfulQA: (Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source):
 * Question -> prompt (benign), Best Answer -> answer, the answer lists as string arrays.
 *
 * @module
 */

import { answerList, type BenchmarkSpec, camel, keepExtras, nonEmpty } from "./common.ts";

/** How {@linkcode loadBenchmark} reads TruthfulQA (lib/data/benchmarks/load.ts). */
export const truthfulqa: BenchmarkSpec = {
  columns: ["Question", "Best Answer", "Category"],
  map: (r, i, p) => {
    const used = ["Question", "Best Answer", "Category", "Correct Answers", "Incorrect Answers"];
    const row = keepExtras(r, used, {
      id: `truthfulqa-${i}`,
      prompt: nonEmpty(r, "Question", p),
      label: "benign",
      category: r.Category,
      source: "truthfulqa",
      answer: r["Best Answer"],
    }, camel);
    row.correctAnswers = answerList(r["Correct Answers"] ?? "");
    row.incorrectAnswers = answerList(r["Incorrect Answers"] ?? "");
    return row;
  },
};
