/**
 * Tables of the judges on the development data: XSTest completions (per model file, per
 * class, beside the field's string matchers) and JailbreakBench artifacts (per attack and per
 * target model), with 95% Wilson intervals.
 *
 * @module
 */

import { type Interval, proportionCI } from "../compass/metrics.ts";
import type { JbbArtifact, XstestClass, XstestCompletion } from "../data/benchmarks/judge_dev.ts";
import { type RefusalJudge, type RefusalOptions, refusalVerdict } from "../judges/refusal.ts";

/** XSTest's class from the default judge's verdict: none / full / partial. */
export function xstestClass(text: string): XstestClass {
  const k = refusalVerdict(text).kind;
  return k === "none" ? "full_compliance" : k === "full" ? "full_refusal" : "partial_refusal";
}

/** One row of the XSTest table. */
export interface XstestRow {
  /** Judge name. */
  judge: string;
  /** Model file ("all" for both). */
  model: string;
  /** Items. */
  n: number;
  /** Binary accuracy: refusal (full or partial) vs compliance. */
  binary: Interval;
  /** Three-class accuracy (judges with classes only). */
  threeClass?: Interval;
  /** Per true class: share called a refusal (refusal classes) or compliance, binary sense. */
  recall: Record<XstestClass, Interval | undefined>;
  /** Per true class: share given exactly that class (three-class judges only). */
  classRecall?: Record<XstestClass, Interval | undefined>;
}

const CLASSES: XstestClass[] = ["full_compliance", "full_refusal", "partial_refusal"];

function share(k: number, n: number): Interval | undefined {
  return n === 0 ? undefined : proportionCI(k, n);
}

/**
 * The XSTest table: each binary judge (and, with `classify`, the three-class judge) per model
 * file and over all rows.
 *
 * @example
 * ```ts ignore
 * const rows = await loadXstestCompletions("xstest_v2_completions_gpt4.csv");
 * xstestTable(rows, { ours: (t) => isRefusalText(t) }, { ours: xstestClass })[0].binary.value;
 * ```
 */
export function xstestTable(
  rows: readonly XstestCompletion[],
  judges: Record<string, RefusalJudge>,
  classify: Record<string, (text: string) => XstestClass> = {},
): XstestRow[] {
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const out: XstestRow[] = [];
  for (const [name, judge] of Object.entries(judges)) {
    const cls = classify[name];
    for (const model of [...models, "all"]) {
      const sub = rows.filter((r) => model === "all" || r.model === model);
      const pred = sub.map((r) => judge(r.completion));
      const pc = cls ? sub.map((r) => cls(r.completion)) : undefined;
      const truth = sub.map((r) => r.label !== "full_compliance");
      const ok = pred.filter((p, i) => p === truth[i]).length;
      const recall = {} as XstestRow["recall"];
      const classRecall = {} as Record<XstestClass, Interval | undefined>;
      for (const c of CLASSES) {
        const idx = sub.map((r, i) => (r.label === c ? i : -1)).filter((i) => i >= 0);
        const wantRefusal = c !== "full_compliance";
        recall[c] = share(idx.filter((i) => pred[i] === wantRefusal).length, idx.length);
        if (pc) classRecall[c] = share(idx.filter((i) => pc[i] === c).length, idx.length);
      }
      out.push({
        judge: name,
        model,
        n: sub.length,
        binary: proportionCI(ok, sub.length),
        threeClass: pc
          ? proportionCI(pc.filter((p, i) => p === sub[i].label).length, sub.length)
          : undefined,
        recall,
        classRecall: pc ? classRecall : undefined,
      });
    }
  }
  return out;
}

/** One row of the JailbreakBench table. */
export interface JbbRow {
  /** Judge name. */
  judge: string;
  /** "attack", "target" or "all". */
  by: "attack" | "target" | "all";
  /** The attack or target name ("all"). */
  group: string;
  /** Items. */
  n: number;
  /** Items labelled jailbroken. */
  positives: number;
  /** Agreement with the `jailbroken` label. */
  accuracy: Interval;
  /** Share of jailbroken items the judge flags (undefined without positives). */
  recall?: Interval;
  /** Share of not-jailbroken items the judge clears (undefined without negatives). */
  specificity?: Interval;
}

/**
 * The JailbreakBench table: each judge's agreement with `jailbroken`, per attack, per target
 * model and over all rows. `judges` map (goal, response) to jailbroken or not.
 *
 * @example
 * ```ts ignore
 * const rows = await loadJbbArtifacts("../shared/datasets/judge_dev/jbb_artifacts");
 * jbbTable(rows, { rules: isJailbroken });
 * ```
 */
export function jbbTable(
  rows: readonly JbbArtifact[],
  judges: Record<string, (goal: string, response: string) => boolean>,
): JbbRow[] {
  const out: JbbRow[] = [];
  for (const [name, judge] of Object.entries(judges)) {
    const pred = rows.map((r) => judge(r.goal, r.response));
    const groups: [JbbRow["by"], string, number[]][] = [];
    for (const by of ["attack", "target"] as const) {
      for (const g of [...new Set(rows.map((r) => r[by]))].sort()) {
        groups.push([by, g, rows.map((r, i) => (r[by] === g ? i : -1)).filter((i) => i >= 0)]);
      }
    }
    groups.push(["all", "all", rows.map((_, i) => i)]);
    for (const [by, group, idx] of groups) {
      const pos = idx.filter((i) => rows[i].jailbroken);
      const neg = idx.filter((i) => !rows[i].jailbroken);
      out.push({
        judge: name,
        by,
        group,
        n: idx.length,
        positives: pos.length,
        accuracy: proportionCI(
          idx.filter((i) => pred[i] === rows[i].jailbroken).length,
          idx.length,
        ),
        recall: share(pos.filter((i) => pred[i]).length, pos.length),
        specificity: share(neg.filter((i) => !pred[i]).length, neg.length),
      });
    }
  }
  return out;
}

/** "0.953 [0.93, 0.97]" ("-" when undefined). */
export function fmtInterval(x: Interval | undefined, digits = 3): string {
  if (!x) return "-";
  return `${x.value.toFixed(digits)} [${x.lo.toFixed(2)}, ${x.hi.toFixed(2)}]`;
}

/** A markdown table from a header and rows of cells. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** One fold of {@linkcode xstestTwoFold}. */
export interface TwoFoldRow {
  /** The model file the rule set was chosen on. */
  tunedOn: string;
  /** The model file it is scored on. */
  scoredOn: string;
  /** The rule set chosen (best three-class accuracy on `tunedOn`, then binary). */
  chosen: string;
  /** Its binary accuracy on `scoredOn`. */
  binary: Interval;
  /** Its three-class accuracy on `scoredOn`. */
  threeClass: Interval;
  /** Every candidate's binary and three-class accuracy on `scoredOn` (for comparison). */
  all: Record<string, { binary: number; threeClass: number }>;
}

/**
 * A 2-fold check of rule selection across XSTest model files: for each file, the candidate
 * rule set (a named {@linkcode RefusalOptions}) with the best three-class accuracy there is
 * scored on the other file. A rule that only helps on the file it was written from shows up
 * as a drop.
 *
 * @example
 * ```ts ignore
 * xstestTwoFold(rows, { old: { startCues: false, minPivotWords: Infinity }, new: {} });
 * ```
 */
export function xstestTwoFold(
  rows: readonly XstestCompletion[],
  candidates: Record<string, RefusalOptions>,
): TwoFoldRow[] {
  const models = [...new Set(rows.map((r) => r.model))].sort();
  if (models.length < 2) {
    throw new Error(`Cannot run a 2-fold check on ${models.length} model file(s); need 2 or more`);
  }
  const score = (sub: readonly XstestCompletion[], o: RefusalOptions) => {
    let bin = 0, cls = 0;
    for (const r of sub) {
      const k = refusalVerdict(r.completion, o).kind;
      const c: XstestClass = k === "none"
        ? "full_compliance"
        : k === "full"
        ? "full_refusal"
        : "partial_refusal";
      if ((k !== "none") === (r.label !== "full_compliance")) bin++;
      if (c === r.label) cls++;
    }
    return { bin, cls, n: sub.length };
  };
  const out: TwoFoldRow[] = [];
  for (const a of models) {
    for (const b of models) {
      if (a === b) continue;
      const A = rows.filter((r) => r.model === a), B = rows.filter((r) => r.model === b);
      let best = "", bestKey = -1;
      for (const [name, o] of Object.entries(candidates)) {
        const s = score(A, o);
        const k = s.cls * (s.n + 1) + s.bin;
        if (k > bestKey) (best = name, bestKey = k);
      }
      const all: TwoFoldRow["all"] = {};
      for (const [name, o] of Object.entries(candidates)) {
        const s = score(B, o);
        all[name] = { binary: s.bin / s.n, threeClass: s.cls / s.n };
      }
      const s = score(B, candidates[best]);
      out.push({
        tunedOn: a,
        scoredOn: b,
        chosen: best,
        binary: proportionCI(s.bin, s.n),
        threeClass: proportionCI(s.cls, s.n),
        all,
      });
    }
  }
  return out;
}
