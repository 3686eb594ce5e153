/**
 * Result rows of the RL experiments (long format, arquero-ready: one row per condition x
 * metric with its interval) and the bookkeeping that makes them: graded answers per
 * condition, metric and seed, turned into rates and seed-paired differences with the
 * two-level bootstrap of `measure.ts`, plus the rollout throughput of the RL runs.
 *
 * @module
 */

import {
  type CIOptions,
  deltaEstimate,
  type Estimate,
  type Hits,
  rateEstimate,
} from "./measure.ts";
import { type RunRecord, tokensPerSecond } from "./run.ts";

/** One result row (long format). `table` says which table of the experiment it belongs to. */
export interface ResultRow {
  /** "alphaalign", "craft" or "traits". */
  experiment: string;
  /** "rates", "deltas", "matrix", "compass", "throughput", ... */
  table: string;
  /** The condition (model or training arm). */
  condition: string;
  /** What was measured. */
  metric: string;
  /** Estimate: a rate, a difference of rates, an AUROC, tokens per second. */
  value: number;
  /** Lower end of the 95% interval (NaN when none). */
  lo: number;
  /** Upper end of the 95% interval (NaN when none). */
  hi: number;
  /** Observations behind the value (prompts x seeds). */
  n: number;
  /** Evaluation prompts. */
  prompts: number;
  /** Templates among the evaluation prompts (0 where the interval is over prompts only). */
  templates: number;
  /** The seeds, space-separated. */
  seeds: string;
  /** How the interval was made. */
  method: string;
  /** Deltas: the condition subtracted. */
  reference: string;
  /** Traits: the training domain ("" elsewhere). */
  trainDomain: string;
  /** Traits: the evaluation domain ("" elsewhere). */
  evalDomain: string;
}

/** A row with the defaults filled in. */
export function resultRow(
  r: Partial<ResultRow> & Pick<ResultRow, "experiment" | "table">,
): ResultRow {
  const { experiment, table, ...rest } = r;
  return {
    experiment,
    table,
    condition: "",
    metric: "",
    value: NaN,
    lo: NaN,
    hi: NaN,
    n: 0,
    prompts: 0,
    templates: 0,
    seeds: "",
    method: "",
    reference: "",
    trainDomain: "",
    evalDomain: "",
    ...rest,
  };
}

/** Graded answers per condition and metric, one row of hits per seed (seeds in call order). */
export class HitTable {
  readonly #data = new Map<
    string,
    Map<string, { ids: string[]; hits: boolean[][]; templates?: string[] }>
  >();

  /** Adds one seed's (or a deterministic model's) hits for `condition`. */
  add(condition: string, hits: Hits): void {
    const c = this.#data.get(condition) ?? new Map();
    for (const [metric, h] of Object.entries(hits)) {
      const cur = c.get(metric);
      if (cur && cur.ids.join("\n") !== h.ids.join("\n")) {
        throw new Error(`HitTable: ${condition} / ${metric} was measured on other prompts`);
      }
      c.set(metric, { ids: h.ids, hits: [...(cur?.hits ?? []), h.hits], templates: h.templates });
    }
    this.#data.set(condition, c);
  }

  /** Conditions in insertion order. */
  conditions(): string[] {
    return [...this.#data.keys()];
  }

  /** Metrics of a condition. */
  metrics(condition: string): string[] {
    return [...(this.#data.get(condition)?.keys() ?? [])];
  }

  /** The template cluster of each prompt of a condition and metric, where all have one. */
  templates(condition: string, metric: string): string[] | undefined {
    return this.#data.get(condition)?.get(metric)?.templates;
  }

  /** hits[seed][prompt] of a condition and metric. */
  get(condition: string, metric: string): boolean[][] {
    const h = this.#data.get(condition)?.get(metric);
    if (!h) throw new Error(`HitTable: nothing measured for ${condition} / ${metric}`);
    return h.hits;
  }
}

function fromEstimate(e: Estimate, hits: boolean[][], ci: CIOptions) {
  return {
    value: e.value,
    lo: e.lo,
    hi: e.hi,
    method: e.method,
    n: hits.length * hits[0].length,
    prompts: hits[0].length,
    templates: ci.templates && ci.clusterBy !== "prompt" ? new Set(ci.templates).size : 0,
  };
}

/** One "rates" row per condition and metric. */
export function rateRows(
  experiment: string,
  hits: HitTable,
  seeds: readonly number[],
  ci: CIOptions,
  extra: (condition: string, metric: string) => Partial<ResultRow> = () => ({}),
): ResultRow[] {
  return hits.conditions().flatMap((c) =>
    hits.metrics(c).map((m) => {
      const h = hits.get(c, m);
      const opts = { ...ci, templates: hits.templates(c, m) };
      return resultRow({
        experiment,
        table: "rates",
        condition: c,
        metric: m,
        seeds: h.length === 1 ? "deterministic" : seeds.join(" "),
        ...fromEstimate(rateEstimate(h, opts), h, opts),
        ...extra(c, m),
      });
    })
  );
}

/** One "deltas" row per (condition, reference) pair and shared metric: rate(condition) - rate(reference). */
export function deltaRows(
  experiment: string,
  hits: HitTable,
  pairs: readonly (readonly [string, string])[],
  seeds: readonly number[],
  ci: CIOptions,
  extra: (condition: string, metric: string) => Partial<ResultRow> = () => ({}),
): ResultRow[] {
  return pairs.flatMap(([c, ref]) =>
    hits.metrics(c).filter((m) => hits.metrics(ref).includes(m)).map((m) => {
      const a = hits.get(c, m), b = hits.get(ref, m);
      const opts = { ...ci, templates: hits.templates(c, m) };
      return resultRow({
        experiment,
        table: "deltas",
        condition: c,
        reference: ref,
        metric: m,
        seeds: seeds.join(" "),
        ...fromEstimate(deltaEstimate(a, b, opts), a, opts),
        ...extra(c, m),
      });
    })
  );
}

/** "throughput" rows: rollout tokens per second of the RL loop, per condition and overall. */
export function throughputRows(experiment: string, runs: readonly RunRecord[]): ResultRow[] {
  const conds = [...new Set(runs.map((r) => r.condition))];
  return [...conds, "all runs"].map((c) => {
    const mine = c === "all runs" ? runs : runs.filter((r) => r.condition === c);
    return resultRow({
      experiment,
      table: "throughput",
      condition: c,
      metric: "rollout tokens/s",
      value: tokensPerSecond(mine),
      n: mine.reduce((a, r) => a + r.tokens, 0),
      seeds: [...new Set(mine.map((r) => r.seed))].join(" "),
      method: `${mine.reduce((a, r) => a + r.rollouts, 0)} rollouts in ` +
        `${mine.reduce((a, r) => a + r.seconds, 0).toFixed(1)} s`,
    });
  });
}
