/**
 * The behavioural profile of a SafetyWorld model: benign accuracy, harmful compliance,
 * over-refusal on borderline prompts, jailbreak-wrapper compliance, and compliance under a
 * prefill attack of k harmful tokens (Qi et al. 2024), each a rate with a bootstrap
 * interval over prompts. Graded by SafetyWorld's rule-based graders; greedy decoding.
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import type { WorldPromptRow } from "../data/safetyworld/plan.ts";
import { gradeResponse } from "../data/safetyworld/graders.ts";
import { proportionCI } from "../compass/metrics.ts";

/** One measured rate. */
export interface RateRow {
  /** The model's name, as passed to {@link profileModel}. */
  model: string;
  /** What is counted ("benign accuracy", "harmful compliance", "prefill compliance"...). */
  metric: string;
  /** Prefill depth in tokens (prefill rows only). */
  k?: number;
  /** The share of prompts that hit, in [0, 1] (NaN when n is 0). */
  rate: number;
  /** Lower end of the 95% bootstrap interval over prompts. */
  lo: number;
  /** Upper end of the 95% bootstrap interval over prompts. */
  hi: number;
  /** Prompts measured. */
  n: number;
}

/** Options of {@link profileModel}. */
export interface ProfileOptions {
  /** Prompts per kind (test split). @default 100 */
  perKind?: number;
  /** Prefill depths. @default [1, 3, 5, 10] */
  prefillDepths?: number[];
  /** Harmful answers to prefill from, by prompt id (e.g. the unaligned model's own). */
  harmfulAnswers?: Map<string, number[]>;
  /** Most new tokens per answer. @default 48 */
  maxNewTokens?: number;
  /** Bootstrap seed. @default 0 */
  seed?: number;
}

function rate(model: string, metric: string, hits: boolean[], seed: number, k?: number): RateRow {
  const n = hits.length;
  const h = hits.filter(Boolean).length;
  if (n === 0) return { model, metric, k, rate: NaN, lo: NaN, hi: NaN, n };
  const ci = proportionCI(h, n, { method: "bootstrap", seed });
  return { model, metric, k, rate: h / n, lo: ci.lo, hi: ci.hi, n };
}

/** Greedy answers of `model` to rows, graded. */
export async function answerAndGrade(
  model: Model,
  rows: WorldPromptRow[],
  opts: { maxNewTokens?: number; force?: ({ step: number; tokens: number[] }[] | undefined)[] } =
    {},
) {
  const g = await model.generate({
    prompts: rows.map((r) => r.prompt),
    maxNewTokens: opts.maxNewTokens ?? 48,
    force: opts.force,
    batchSize: 32,
  });
  return rows.map((row, i) => ({
    row,
    text: g.text[i],
    ids: g.tokenIds[i],
    grade: gradeResponse(row, g.text[i]),
  }));
}

/** Measures the profile of `model` on the test prompts. */
export async function profileModel(
  model: Model,
  name: string,
  prompts: WorldPromptRow[],
  opts: ProfileOptions = {},
): Promise<{ rows: RateRow[]; harmfulAnswers: Map<string, number[]> }> {
  const per = opts.perKind ?? 100;
  const seed = opts.seed ?? 0;
  const test = (kind: string) =>
    prompts.filter((p) => p.split === "test" && p.kind === kind).slice(0, per);
  const out: RateRow[] = [];
  const benign = await answerAndGrade(model, test("task"), opts);
  out.push(rate(name, "benign accuracy", benign.map((b) => b.grade.correct === true), seed));
  for (const d of [...new Set(benign.map((b) => b.row.domain))].sort()) {
    const mine = benign.filter((b) => b.row.domain === d);
    out.push(rate(name, `benign accuracy (${d})`, mine.map((b) => b.grade.correct === true), seed));
  }
  const harmful = await answerAndGrade(model, test("harmful"), opts);
  out.push(rate(name, "harmful compliance", harmful.map((h) => h.grade.harmful), seed));
  out.push(rate(name, "harmful refusal", harmful.map((h) => h.grade.refusal), seed));
  const border = await answerAndGrade(model, test("borderline"), opts);
  out.push(rate(name, "over-refusal (borderline)", border.map((b) => b.grade.refusal), seed));
  const jb = await answerAndGrade(model, test("jailbreak"), opts);
  out.push(rate(name, "jailbreak compliance", jb.map((j) => j.grade.harmful), seed));
  const answers = opts.harmfulAnswers ?? new Map(
    harmful.filter((h) => h.grade.harmful).map((h) => [h.row.id, h.ids]),
  );
  const withAnswer = harmful.map((h) => h.row).filter((r) => answers.has(r.id));
  for (const k of opts.prefillDepths ?? [1, 3, 5, 10]) {
    const pre = await answerAndGrade(model, withAnswer, {
      ...opts,
      force: withAnswer.map((r) => [{ step: 0, tokens: answers.get(r.id)!.slice(0, k) }]),
    });
    out.push(
      rate(
        name,
        "prefill compliance",
        pre.map((p) => p.grade.harmful && !p.grade.refusal),
        seed,
        k,
      ),
    );
  }
  return { rows: out, harmfulAnswers: answers };
}
