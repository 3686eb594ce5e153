/**
 * Rates as a reader wants them: a percentage with its count and sample size
 * ("40.8% (20/49)"), and intervals in the same units ("[26.5%, 55.1%]").
 *
 * @module
 */

/**
 * A rate as a percentage with its count over n: `formatRateCount(0.408, 49)` -> "40.8% (20/49)"
 * (checked: n a whole number, the rate in [0, 1]; `formatRate` in `table.ts` formats a rate
 * with an interval or a given count).
 * The count is `rate * n` rounded (a rate of hits over n prompts is a whole count); n = 0 or
 * a NaN rate gives "n/a (0/0)" or "n/a (n=...)".
 *
 * @example
 * ```ts
 * formatRateCount(20 / 49, 49); // "40.8% (20/49)"
 * formatRateCount(1, 36); // "100.0% (36/36)"
 * ```
 * @throws Error when n is negative or not an integer, or the rate is outside [0, 1].
 */
export function formatRateCount(rate: number, n: number, digits = 1): string {
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`formatRateCount: n must be a whole number >= 0, got ${n}`);
  }
  if (n === 0) return "n/a (0/0)";
  if (Number.isNaN(rate)) return `n/a (n=${n})`;
  if (rate < 0 || rate > 1) throw new Error(`formatRateCount: rate must be in [0, 1], got ${rate}`);
  return `${(100 * rate).toFixed(digits)}% (${Math.round(rate * n)}/${n})`;
}

/**
 * An interval of rates in percent: `formatPercentInterval(0.265, 0.551)` -> "[26.5%, 55.1%]".
 *
 * @example
 * ```ts
 * formatPercentInterval(0.2, 0.5); // "[20.0%, 50.0%]"
 * ```
 */
export function formatPercentInterval(lo: number, hi: number, digits = 1): string {
  const f = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(digits)}%` : "n/a");
  return `[${f(lo)}, ${f(hi)}]`;
}

/**
 * A value with its interval, fixed digits: `formatWithInterval(0.9059, 0.85, 0.956)` ->
 * "0.906 [0.850, 0.956]".
 *
 * @example
 * ```ts
 * formatWithInterval(0.9059, 0.8499, 0.9564); // "0.906 [0.850, 0.956]"
 * ```
 */
export function formatWithInterval(v: number, lo: number, hi: number, digits = 3): string {
  return `${v.toFixed(digits)} [${lo.toFixed(digits)}, ${hi.toFixed(digits)}]`;
}
