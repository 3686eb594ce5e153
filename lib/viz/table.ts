/**
 * Tables for reading: rates as percentages with their count or interval and n ("40.8%
 * (20/49)", "40.8% [31.2, 50.1] n=49"), column names in words ("refusalRate" -> "refusal
 * rate"). `rateTable(rows)` returns a table that renders itself when it ends a notebook cell
 * (an HTML table plus aligned text) and prints as text anywhere else.
 *
 * @module
 */

import {
  JUPYTER_DISPLAY,
  type MimeBundle,
  tableBundle,
  type TableInput,
  type TableOptions,
  tablePlain,
  tableRows,
} from "./display.ts";

/** What {@link formatRate} may show beside a rate. */
export interface RateParts {
  /** Successes (shown as `(k/n)` when there is no interval). */
  k?: number;
  /** Trials. */
  n?: number;
  /** Lower end of the interval (a proportion, 0..1). */
  lo?: number;
  /** Upper end of the interval (a proportion, 0..1). */
  hi?: number;
  /** Decimals of the percentages. @default 1 */
  digits?: number;
}

const has = (v: unknown): v is number => typeof v === "number" && !Number.isNaN(v);

/**
 * A proportion as a percentage with what supports it: `40.8% [31.2, 50.1] n=49` with an
 * interval, `40.8% (20/49)` with a count, `40.8% n=49` with n alone; `n/a` for NaN (e.g. a
 * rate over zero rows).
 *
 * @example
 * ```ts
 * import { formatRate } from "./table.ts";
 * formatRate(20 / 49, { k: 20, n: 49 }); // "40.8% (20/49)"
 * formatRate(0.408, { lo: 0.312, hi: 0.501, n: 49 }); // "40.8% [31.2, 50.1] n=49"
 * ```
 */
export function formatRate(rate: number, parts: RateParts = {}): string {
  const d = parts.digits ?? 1;
  const pct = (v: number) => (100 * v).toFixed(d);
  const n = has(parts.n) ? ` n=${parts.n}` : "";
  if (!has(rate)) return `n/a${n}`;
  if (has(parts.lo) && has(parts.hi)) {
    return `${pct(rate)}% [${pct(parts.lo)}, ${pct(parts.hi)}]${n}`;
  }
  if (has(parts.k) && has(parts.n)) return `${pct(rate)}% (${parts.k}/${parts.n})`;
  return `${pct(rate)}%${n}`;
}

/**
 * A column name in words: camelCase and snake_case split, lower-cased except acronyms
 * ("refusalRate" -> "refusal rate", "harmful_compliance" -> "harmful compliance",
 * "aurocLo" -> "auroc lo", "KL" stays).
 *
 * @example
 * ```ts
 * import { readableName } from "./table.ts";
 * readableName("overRefusalRate"); // "over refusal rate"
 * ```
 */
export function readableName(column: string): string {
  return column
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/[_-]+/g, " ")
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => (w.length > 1 && w === w.toUpperCase() ? w : w.toLowerCase()))
    .join(" ");
}

/** Options of {@link rateTable}. */
export interface RateTableOptions extends TableOptions {
  /**
   * Columns holding proportions (0..1). @default every column named "rate" or ending in
   * "rate"/"Rate" whose values are all numbers in [0, 1] (or NaN)
   */
  rates?: readonly string[];
  /**
   * Interval columns of each rate column: `{ rate: ["lo", "hi"] }`. @default for each rate
   * column `c`: `cLo`/`cHi`, `c_lo`/`c_hi` or `c lo`/`c hi` when present, and the plain
   * `lo`/`hi` when there is only one rate column
   */
  intervals?: Readonly<Record<string, readonly [string, string]>>;
  /** Column of trials, shown as `n=` (or in `(k/n)`). @default "n" when present */
  n?: string;
  /** Column of successes (one rate column only). @default "k" when present */
  k?: string;
  /** Column renames applied after the default ones (keys: the original names). */
  names?: Readonly<Record<string, string>>;
  /** Decimals of the percentages. @default 1 */
  percentDigits?: number;
}

function isRateColumn(name: string, rows: readonly Record<string, unknown>[]): boolean {
  if (!/(^|[\s_])rate$|Rate$/i.test(name) && name.toLowerCase() !== "rate") return false;
  return rows.every((r) => {
    const v = r[name];
    return v === undefined || v === null ||
      (typeof v === "number" && (Number.isNaN(v) || (v >= 0 && v <= 1)));
  });
}

function intervalOf(
  col: string,
  cols: Set<string>,
  single: boolean,
): [string, string] | undefined {
  const cands: [string, string][] = [
    [`${col}Lo`, `${col}Hi`],
    [`${col}_lo`, `${col}_hi`],
    [`${col} lo`, `${col} hi`],
  ];
  if (single) cands.push(["lo", "hi"]);
  return cands.find(([lo, hi]) => cols.has(lo) && cols.has(hi));
}

/**
 * A table of rows with its rate columns formatted ("40.8% [31.2, 50.1] n=49") and every
 * column named in words. It renders itself when it ends a notebook cell; `rows` holds the
 * formatted rows and `toString()` the aligned text.
 */
export class RateTable {
  /** The formatted rows (strings where rates were), readable column names. */
  readonly rows: Record<string, unknown>[];
  /** Table options (caption, rows shown, digits of other numbers). */
  readonly options: TableOptions;
  /** Wraps formatted rows. */
  constructor(rows: Record<string, unknown>[], options: TableOptions = {}) {
    this.rows = rows;
    this.options = options;
  }
  /** Called by Deno's Jupyter kernel: an HTML table plus aligned text. */
  [JUPYTER_DISPLAY](): MimeBundle {
    return tableBundle(this.rows, { maxRows: 200, ...this.options });
  }
  /** The aligned plain-text table. */
  toString(): string {
    return tablePlain(this.rows, { maxRows: Infinity, ...this.options });
  }
}

/**
 * Formats the rate columns of `input` (rows or an arquero table) for reading and names the
 * columns in words. Interval and count columns folded into a rate are dropped.
 *
 * @example
 * ```ts
 * import { rateTable } from "./table.ts";
 * const t = rateTable([
 *   { model: "toy-base", refusalRate: 0.408, lo: 0.312, hi: 0.501, n: 49 },
 * ]);
 * t.rows[0]; // { model: "toy-base", "refusal rate": "40.8% [31.2, 50.1] n=49" }
 * t; // as a cell's last expression: an HTML table
 * ```
 */
export function rateTable(input: TableInput, opts: RateTableOptions = {}): RateTable {
  const rows = tableRows(input).rows as Record<string, unknown>[];
  const cols = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) cols.add(k);
  for (const c of opts.rates ?? []) {
    if (!cols.has(c)) {
      throw new Error(`rateTable: rate column "${c}" is not in the table (columns: ${[...cols]})`);
    }
  }
  const rates = opts.rates ?? [...cols].filter((c) => isRateColumn(c, rows));
  const single = rates.length === 1;
  const nCol = opts.n ?? (cols.has("n") ? "n" : undefined);
  const kCol = opts.k ?? (single && cols.has("k") ? "k" : undefined);
  const folded = new Set<string>();
  const spec = rates.map((c) => {
    const iv = opts.intervals?.[c] ?? intervalOf(c, cols, single);
    if (iv) iv.forEach((x) => folded.add(x));
    return { c, iv };
  });
  if (nCol && rates.length > 0) folded.add(nCol);
  if (kCol && single) folded.add(kCol);
  const name = (c: string) => opts.names?.[c] ?? readableName(c);
  const out = rows.map((r) => {
    const o: Record<string, unknown> = {};
    for (const c of cols) {
      if (folded.has(c)) continue;
      const s = spec.find((x) => x.c === c);
      if (!s) {
        o[name(c)] = r[c];
        continue;
      }
      const num = (k?: string) => (k === undefined ? undefined : r[k] as number | undefined);
      o[name(c)] = formatRate(r[c] as number, {
        lo: num(s.iv?.[0]),
        hi: num(s.iv?.[1]),
        n: num(nCol),
        k: single ? num(kCol) : undefined,
        digits: opts.percentDigits,
      });
    }
    return o;
  });
  const { rates: _r, intervals: _i, n: _n, k: _k, names: _x, percentDigits: _p, ...table } = opts;
  return new RateTable(out, table);
}
