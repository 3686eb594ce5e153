/**
 * The verdict rules of the claims ledger (lib/experiments/claims.ts) and the reading of result
 * rows they work on: a {@link Measurement} is a number with its 95% interval and the side of 0
 * a claim expects; {@link difference} makes one from saved rows (the paired difference where
 * the result holds it, else the conservative unpaired one); the rules turn measurements into
 * reproduced / refuted / inconclusive.
 *
 * @module
 */

import type { ResultRow } from "./rows.ts";

/** One number a claim reads, with its interval and the side of 0 the claim expects. */
export interface Measurement {
  /** What it is, e.g. "latent+text - text only, harmful compliance". */
  label: string;
  /** The estimate. */
  value: number;
  /** Lower end of the 95% interval (NaN when none). */
  lo: number;
  /** Upper end of the 95% interval (NaN when none). */
  hi: number;
  /** Observations behind it. */
  n: number;
  /** How the interval was made. */
  method: string;
  /** The side of 0 the claim expects; absent: shown, but not part of the verdict. */
  expect?: "below" | "above";
  /** The paper's number for the same quantity, where it gives one (for the figure). */
  paper?: number;
}

/** The verdict of a rule on measurements (quick sizes and missing results are handled before). */
export type Decision = "reproduced" | "refuted" | "inconclusive";

/** Thrown by a claim's `measure` when the saved result lacks a row it needs. */
export class MissingRowError extends Error {
  /**
   * Names the missing row.
   *
   * @param what the row that is missing
   * @example
   * ```ts
   * import { MissingRowError } from "./claim_rules.ts";
   * console.log(new MissingRowError("rates / toy-base / over-refusal").message);
   * ```
   */
  constructor(what: string) {
    super(`no row for ${what}`);
    this.name = "MissingRowError";
  }
}

// ---------------------------------------------------------------- reading rows

/** `"start"` matches the starting model's condition ("toy-base (start)"); anything else matches exactly. */
const sameCondition = (want: string, got: string) =>
  want === "start" ? /\(start\)$/.test(got) : want === got;

/**
 * The row of a table, condition and metric (and reference, for deltas).
 *
 * @example
 * ```ts
 * import { findRow } from "./claim_rules.ts";
 * import { resultRow } from "./rows.ts";
 * const rows = [resultRow({ experiment: "craft", table: "rates", condition: "toy-base (start)", metric: "harmful compliance", value: 0.9 })];
 * console.log(findRow(rows, { table: "rates", condition: "start", metric: "harmful compliance" })?.value); // 0.9
 * ```
 */
export function findRow(
  rows: readonly ResultRow[],
  q: { table: string; condition: string; metric: string; reference?: string },
): ResultRow | undefined {
  return rows.find((r) =>
    r.table === q.table && sameCondition(q.condition, r.condition) && r.metric === q.metric &&
    (q.reference === undefined || sameCondition(q.reference, r.reference))
  );
}

/**
 * {@link findRow}, or a {@link MissingRowError} naming the row (a claim whose row is missing
 * becomes "not run yet").
 *
 * @example
 * ```ts
 * import { requireRow } from "./claim_rules.ts";
 * try {
 *   requireRow([], { table: "rates", condition: "toy-shallow", metric: "over-refusal" });
 * } catch (err) {
 *   console.log((err as Error).message); // "no row for rates / toy-shallow / over-refusal"
 * }
 * ```
 */
export function requireRow(
  rows: readonly ResultRow[],
  q: { table: string; condition: string; metric: string; reference?: string },
): ResultRow {
  const r = findRow(rows, q);
  if (!r) {
    throw new MissingRowError(
      `${q.table} / ${q.condition}${q.reference ? ` - ${q.reference}` : ""} / ${q.metric}`,
    );
  }
  return r;
}

/**
 * `condition - reference` on `metric`: the saved paired difference (table "deltas") where the
 * result has it, else the difference of the two rates (table `ratesTable`) with the
 * conservative interval `[lo_a - hi_b, hi_a - lo_b]`.
 *
 * @example
 * ```ts
 * import { difference } from "./claim_rules.ts";
 * import { resultRow } from "./rows.ts";
 * const rate = (condition: string, value: number, lo: number, hi: number) =>
 *   resultRow({ experiment: "x", table: "rates", condition, metric: "m", value, lo, hi, n: 10 });
 * const d = difference([rate("a", 0.2, 0.1, 0.3), rate("b", 0.6, 0.5, 0.7)], "a", "b", "m");
 * console.log(d.value, d.lo, d.hi); // ≈ -0.4 -0.6 -0.2
 * ```
 */
export function difference(
  rows: readonly ResultRow[],
  condition: string,
  reference: string,
  metric: string,
  opts: { ratesTable?: string; label?: string; expect?: "below" | "above"; paper?: number } = {},
): Measurement {
  const label = opts.label ?? `${condition} - ${reference}, ${metric}`;
  const extra = {
    ...(opts.expect ? { expect: opts.expect } : {}),
    ...(opts.paper !== undefined ? { paper: opts.paper } : {}),
  };
  const d = findRow(rows, { table: "deltas", condition, reference, metric });
  if (d) return { label, value: d.value, lo: d.lo, hi: d.hi, n: d.n, method: d.method, ...extra };
  const t = opts.ratesTable ?? "rates";
  const a = requireRow(rows, { table: t, condition, metric });
  const b = requireRow(rows, { table: t, condition: reference, metric });
  return {
    label,
    value: a.value - b.value,
    lo: a.lo - b.hi,
    hi: a.hi - b.lo,
    n: Math.min(a.n, b.n),
    method: "difference of two unpaired intervals (conservative)",
    ...extra,
  };
}

// ---------------------------------------------------------------- verdict rules

const holds = (m: Measurement) => m.expect === "below" ? m.hi < 0 : m.lo > 0;
const contradicts = (m: Measurement) => m.expect === "below" ? m.lo > 0 : m.hi < 0;
const deciding = (ms: readonly Measurement[]) => ms.filter((m) => m.expect !== undefined);

/**
 * The default rule: reproduced when every deciding measurement's 95% interval lies strictly on
 * the side of 0 the claim expects; refuted when any lies strictly on the other side;
 * inconclusive otherwise (an interval touching or straddling 0, or none).
 *
 * @example
 * ```ts
 * import { allOnExpectedSide } from "./claim_rules.ts";
 * const m = { label: "d", value: -0.2, lo: -0.3, hi: -0.1, n: 100, method: "", expect: "below" as const };
 * console.log(allOnExpectedSide([m])); // "reproduced"
 * ```
 */
export function allOnExpectedSide(ms: readonly Measurement[]): Decision {
  const d = deciding(ms);
  if (d.length === 0) return "inconclusive";
  if (d.some(contradicts)) return "refuted";
  return d.every(holds) ? "reproduced" : "inconclusive";
}

/**
 * For "at least one of these works": reproduced when any deciding interval lies strictly on the
 * expected side of 0; refuted when none even reaches it (every interval is on the other side
 * or touches 0 from there); inconclusive otherwise.
 *
 * @example
 * ```ts
 * import { anyOnExpectedSide } from "./claim_rules.ts";
 * const m = (lo: number, hi: number) => ({ label: "d", value: (lo + hi) / 2, lo, hi, n: 9, method: "", expect: "below" as const });
 * console.log(anyOnExpectedSide([m(-0.2, 0.1), m(-0.3, -0.1)])); // "reproduced"
 * console.log(anyOnExpectedSide([m(0, 0.1), m(0.05, 0.2)])); // "refuted"
 * ```
 */
export function anyOnExpectedSide(ms: readonly Measurement[]): Decision {
  const d = deciding(ms);
  if (d.length === 0) return "inconclusive";
  if (d.some(holds)) return "reproduced";
  const cannot = (m: Measurement) => m.expect === "below" ? m.lo >= 0 : m.hi <= 0;
  return d.every(cannot) ? "refuted" : "inconclusive";
}

/**
 * For a generalisation matrix: reproduced when at least half of the deciding intervals lie on
 * the expected side of 0 and none on the other; refuted when at least half lie on the other
 * side and none on the expected one; inconclusive otherwise.
 *
 * @example
 * ```ts
 * import { mostOnExpectedSide } from "./claim_rules.ts";
 * const m = (lo: number, hi: number) => ({ label: "c", value: (lo + hi) / 2, lo, hi, n: 9, method: "", expect: "above" as const });
 * console.log(mostOnExpectedSide([m(0.1, 0.3), m(-0.1, 0.2)])); // "reproduced"
 * ```
 */
export function mostOnExpectedSide(ms: readonly Measurement[]): Decision {
  const d = deciding(ms);
  if (d.length === 0) return "inconclusive";
  const yes = d.filter(holds).length, no = d.filter(contradicts).length;
  if (yes * 2 >= d.length && no === 0) return "reproduced";
  if (no * 2 >= d.length && yes === 0) return "refuted";
  return "inconclusive";
}

/**
 * For a claim of NO effect (e.g. "X does not predict Y"), decided on every measurement given:
 * reproduced when every 95% interval lies strictly inside `(-margin, +margin)` (an effect of
 * `margin` or more is ruled out); refuted when any interval excludes 0 (an effect is there);
 * inconclusive otherwise (the interval holds 0 but is too wide to rule out `margin`).
 *
 * @example
 * ```ts
 * import { nearZero } from "./claim_rules.ts";
 * const r = (lo: number, hi: number) => ({ label: "r", value: (lo + hi) / 2, lo, hi, n: 90, method: "" });
 * console.log(nearZero(0.3)([r(-0.2, 0.2)])); // "reproduced"
 * console.log(nearZero(0.3)([r(-0.5, -0.1)])); // "refuted"
 * console.log(nearZero(0.3)([r(-0.4, 0.1)])); // "inconclusive"
 * ```
 */
export function nearZero(margin: number): (ms: readonly Measurement[]) => Decision {
  if (!(margin > 0)) throw new Error(`nearZero: margin must be > 0, got ${margin}`);
  return (ms) => {
    const ok = ms.filter((m) => Number.isFinite(m.lo) && Number.isFinite(m.hi));
    if (ok.length === 0) return "inconclusive";
    if (ok.some((m) => m.lo > 0 || m.hi < 0)) return "refuted";
    return ok.every((m) => m.lo > -margin && m.hi < margin) ? "reproduced" : "inconclusive";
  };
}

/**
 * `a - b` of two rates measured separately, with the conservative interval
 * `[lo_a - hi_b, hi_a - lo_b]` (wider than a paired one would be).
 *
 * @example
 * ```ts
 * import { unpaired } from "./claim_rules.ts";
 * import { resultRow } from "./rows.ts";
 * const a = resultRow({ experiment: "x", table: "rates", value: 0.5, lo: 0.4, hi: 0.6, n: 50 });
 * const b = resultRow({ experiment: "x", table: "rates", value: 0.2, lo: 0.1, hi: 0.3, n: 50 });
 * console.log(unpaired(a, b, "a - b", "above").lo); // ≈ 0.1
 * ```
 */
export function unpaired(
  a: ResultRow,
  b: ResultRow,
  label: string,
  expect: "below" | "above",
): Measurement {
  return {
    label,
    value: a.value - b.value,
    lo: a.lo - b.hi,
    hi: a.hi - b.lo,
    n: Math.min(a.n, b.n),
    method: "difference of two unpaired intervals (conservative)",
    expect,
  };
}

const f2 = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(2)}` : "n/a");

/**
 * One measurement as the table prints it: `label: +0.12 [-0.03, +0.25]`.
 *
 * @example
 * ```ts
 * import { formatMeasurement } from "./claim_rules.ts";
 * console.log(formatMeasurement({ label: "d", value: 0.12, lo: -0.03, hi: 0.25, n: 9, method: "" }));
 * ```
 */
export function formatMeasurement(m: Measurement): string {
  const ci = Number.isFinite(m.lo) && Number.isFinite(m.hi) ? ` [${f2(m.lo)}, ${f2(m.hi)}]` : "";
  return `${m.label}: ${f2(m.value)}${ci}`;
}
