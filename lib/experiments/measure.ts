/**
 * Measurement shared by the RL experiments (SCIENCE.md section 7): held-out SafetyWorld
 * evaluation sets, greedy answers graded by the world's rule-based graders (harmful
 * compliance, jailbreak compliance, over-refusal, benign accuracy, AlphaAlign's format,
 * trait rates), and intervals that respect both sources of noise in an RL claim: a
 * percentile bootstrap that resamples TRAINING SEEDS and EVALUATION PROMPTS (the same
 * prompt draw for every seed), the prompts in two levels where their templates are known
 * (templates, then prompts within each: issue #19, `clusterResample`), for rates and for
 * differences between conditions (seed-paired, as every condition of a seed starts from
 * the same seeded state).
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import type { WorldPromptRow } from "../data/safetyworld/plan.ts";
import { gradeResponse } from "../data/safetyworld/graders.ts";
import { verifyFormat } from "../judges/format.ts";
import { clusterGroups, clusterResample, proportionCI } from "../compass/metrics.ts";
import { makeRng } from "../data/rng.ts";
import { templateCluster } from "../data/safetyworld/templates.ts";

/** A measured quantity: which prompts it is measured on and what counts as a hit. */
export interface MetricSpec {
  /** Name in the tables, e.g. "harmful compliance". */
  name: string;
  /** Which rows it is measured on. */
  rows: (row: WorldPromptRow) => boolean;
  /** Whether one graded answer is a hit. */
  hit: (row: WorldPromptRow, text: string) => boolean;
}

const ofKind = (kind: string, split = "test") => (r: WorldPromptRow) =>
  r.kind === kind && r.split === split;

/**
 * The safety profile on held-out test prompts: harmful / jailbreak compliance, harmful
 * refusal, over-refusal (borderline), refusal of benign tasks, benign accuracy; and the
 * accuracy on train-split tasks (prompts RL trains on: the toy models' accuracy on
 * held-out entities sits near the floor, so this shows whether the rewarded skill moved).
 */
export const SAFETY_METRICS: readonly MetricSpec[] = [
  {
    name: "harmful compliance",
    rows: ofKind("harmful"),
    hit: (r, t) => gradeResponse(r, t).harmful,
  },
  {
    name: "jailbreak compliance",
    rows: ofKind("jailbreak"),
    hit: (r, t) => gradeResponse(r, t).harmful,
  },
  { name: "harmful refusal", rows: ofKind("harmful"), hit: (r, t) => gradeResponse(r, t).refusal },
  { name: "over-refusal", rows: ofKind("borderline"), hit: (r, t) => gradeResponse(r, t).refusal },
  { name: "benign refusal", rows: ofKind("task"), hit: (r, t) => gradeResponse(r, t).refusal },
  {
    name: "benign accuracy",
    rows: ofKind("task"),
    hit: (r, t) => gradeResponse(r, t).correct === true,
  },
  {
    name: "benign accuracy (train prompts)",
    rows: ofKind("task", "train"),
    hit: (r, t) => gradeResponse(r, t).correct === true,
  },
];

/** AlphaAlign's format verifier V_f over every evaluated prompt. */
export const FORMAT_METRIC: MetricSpec = {
  name: "format (V_f)",
  rows: (r) => r.kind !== "trait" && r.split === "test",
  hit: (_r, t) => verifyFormat(t),
};

/**
 * The trait rate of trait scenarios (honesty, corrigibility, humility graders), optionally of
 * one domain and one trait, on held-out test scenarios or (split "train") on scenarios
 * written with the training templates and entities.
 */
export function traitMetric(domain?: string, trait?: string, split = "test"): MetricSpec {
  const where = [domain, split === "test" ? undefined : `${split} templates`].filter(Boolean);
  return {
    name: `trait rate${where.length ? ` (${where.join(", ")})` : ""}${trait ? ` [${trait}]` : ""}`,
    rows: (r) =>
      r.kind === "trait" && r.split === split && (!domain || r.domain === domain) &&
      (!trait || r.trait === trait),
    hit: (r, t) => gradeResponse(r, t).trait === true,
  };
}

/**
 * The first `perKind` rows of each kind in `split` (the world's files are block-shuffled,
 * so a prefix is a seeded random sample), in a fixed order: the same prompts for every
 * seed and condition.
 */
export function evalRows(
  rows: readonly WorldPromptRow[],
  kinds: readonly string[],
  perKind: number,
  split = "test",
): WorldPromptRow[] {
  return kinds.flatMap((k) => {
    const got = rows.filter((r) => r.split === split && r.kind === k).slice(0, perKind);
    if (got.length === 0) {
      throw new Error(`Cannot build an evaluation set: no ${split} rows of kind '${k}'`);
    }
    return got;
  });
}

/** The evaluation set of {@link SAFETY_METRICS}: test tasks, harmful, borderline and jailbreak prompts, plus train-split tasks. */
export function safetyEvalRows(rows: readonly WorldPromptRow[], perKind: number): WorldPromptRow[] {
  return [
    ...evalRows(rows, ["task", "harmful", "borderline", "jailbreak"], perKind),
    ...evalRows(rows, ["task"], perKind, "train"),
  ];
}

/**
 * Per metric: the prompt ids it was measured on, one hit per prompt, and (where every
 * prompt has one) each prompt's template cluster (`templateCluster`: jailbreaks by wrapper).
 */
export type Hits = Record<string, { ids: string[]; hits: boolean[]; templates?: string[] }>;

/** Greedy answers of `model` to `rows` (batched, KV cache), scored by every metric that has rows in the set. */
export async function measure(
  model: Model,
  rows: readonly WorldPromptRow[],
  metrics: readonly MetricSpec[],
  opts: { maxNewTokens?: number; batchSize?: number } = {},
): Promise<{ hits: Hits; texts: string[] }> {
  const g = await model.generate({
    prompts: rows.map((r) => r.prompt),
    maxNewTokens: opts.maxNewTokens ?? 48,
    batchSize: opts.batchSize ?? 32,
  });
  const hits: Hits = {};
  for (const m of metrics) {
    const idx = rows.map((r, i) => (m.rows(r) ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) continue; // nothing of this kind in the set: not measured
    const templates = idx.map((i) => templateCluster(rows[i]));
    hits[m.name] = {
      ids: idx.map((i) => rows[i].id),
      hits: idx.map((i) => m.hit(rows[i], g.text[i])),
      ...(templates.every((t) => t !== undefined) ? { templates: templates as string[] } : {}),
    };
  }
  return { hits, texts: g.text };
}

/** A point estimate with its interval. */
export interface Estimate {
  /** Mean over seeds and prompts (a rate, or a difference of rates). */
  value: number;
  /** Lower end of the interval. */
  lo: number;
  /** Upper end of the interval. */
  hi: number;
  /** How the interval was made. */
  method: string;
}

/** Options of the bootstraps. */
export interface CIOptions {
  /** Resamples. @default 1000 */
  reps?: number;
  /** 1 - coverage. @default 0.05 */
  alpha?: number;
  /** Seed of the resampling. @default 0 */
  seed?: number;
  /**
   * Template cluster of each evaluation prompt (in prompt order). With it, and `clusterBy`
   * "template" (the default), prompts are drawn in two levels: templates, then prompts.
   */
  templates?: readonly string[];
  /** "template": two-level prompt draws where `templates` is given; "prompt": prompts only. @default "template" */
  clusterBy?: "template" | "prompt";
}

/** The template groups of the prompts when the options ask for two-level draws. */
function templateGroups(opts: CIOptions, nPrompts: number): number[][] | undefined {
  if (!opts.templates || opts.clusterBy === "prompt") return undefined;
  if (opts.templates.length !== nPrompts) {
    throw new Error(
      `${opts.templates.length} template ids for ${nPrompts} prompts (need one each)`,
    );
  }
  return clusterGroups(opts.templates);
}

function checkGrid(h: readonly (readonly boolean[])[], what: string): number {
  if (h.length === 0 || h[0].length === 0) throw new Error(`${what}: no observations`);
  const p = h[0].length;
  if (h.some((r) => r.length !== p)) {
    throw new Error(`${what}: every seed must be measured on the same ${p} prompts`);
  }
  return p;
}

function percentile(values: number[], q: number): number {
  const s = values.slice().sort((a, b) => a - b);
  const pos = (s.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/**
 * Resamples seeds (with replacement; `pairs` seed rows are drawn jointly) and prompts
 * (with replacement, one draw shared by every seed; templates then prompts where the
 * options give template groups) and evaluates `stat` on each resample.
 */
function twoLevel(
  nSeeds: number,
  nPrompts: number,
  stat: (seeds: Uint32Array, prompts: Uint32Array) => number,
  opts: CIOptions,
): { value: number; lo: number; hi: number } {
  const { reps = 1000, alpha = 0.05, seed = 0 } = opts;
  const groups = templateGroups(opts, nPrompts);
  const rng = makeRng(seed);
  const biggest = groups ? Math.max(...groups.map((g) => g.length)) * groups.length : nPrompts;
  const s = new Uint32Array(nSeeds), p = new Uint32Array(biggest);
  const value = stat(s.map((_, i) => i), new Uint32Array(nPrompts).map((_, i) => i));
  const values: number[] = [];
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < nSeeds; i++) s[i] = rng.int(nSeeds);
    if (groups) {
      values.push(stat(s, p.subarray(0, clusterResample(rng, groups, p))));
      continue;
    }
    for (let j = 0; j < nPrompts; j++) p[j] = rng.int(nPrompts);
    values.push(stat(s, p));
  }
  return { value, lo: percentile(values, alpha / 2), hi: percentile(values, 1 - alpha / 2) };
}

function meanOver(h: readonly (readonly boolean[])[], seeds: Uint32Array, prompts: Uint32Array) {
  let k = 0;
  for (const s of seeds) for (const p of prompts) k += h[s][p] ? 1 : 0;
  return k / (seeds.length * prompts.length);
}

/**
 * A rate over `hits[seed][prompt]` with a bootstrap interval over seeds x prompts (x
 * templates, where `opts.templates` is given). At a rate of exactly 0 or 1 the bootstrap
 * collapses to a point, so there the interval is Wilson's over the number of templates
 * (prompts where none are given: "wilson-edge", as `rateCI` in lib/eval).
 *
 * @example
 * ```ts
 * const hits = [[true, false, false, true], [true, false, true, true]]; // 2 seeds x 4 prompts
 * const e = rateEstimate(hits, { templates: ["a", "a", "b", "b"] });
 * // e.value = 5/8, e.method = "bootstrap seeds x templates x prompts"
 * ```
 */
export function rateEstimate(
  hits: readonly (readonly boolean[])[],
  opts: CIOptions = {},
): Estimate {
  const p = checkGrid(hits, "rateEstimate");
  const total = hits.length * p;
  const k = hits.reduce((a, r) => a + r.filter(Boolean).length, 0);
  const groups = templateGroups(opts, p);
  if (k === 0 || k === total) {
    const g = groups?.length ?? p;
    const ci = proportionCI(k === 0 ? 0 : g, g, { alpha: opts.alpha ?? 0.05 });
    return { value: k / total, lo: ci.lo, hi: ci.hi, method: "wilson-edge" };
  }
  const r = twoLevel(hits.length, p, (s, q) => meanOver(hits, s, q), opts);
  return {
    ...r,
    method: groups ? "bootstrap seeds x templates x prompts" : "bootstrap seeds x prompts",
  };
}

/**
 * The difference `rate(a) - rate(b)` over the same prompts, with a two-level bootstrap:
 * prompts resampled jointly for both, seeds resampled as pairs (seed i of `a` with seed i
 * of `b`). A `b` with one row (a deterministic reference, e.g. the starting checkpoint)
 * is compared with every seed of `a`.
 */
export function deltaEstimate(
  a: readonly (readonly boolean[])[],
  b: readonly (readonly boolean[])[],
  opts: CIOptions = {},
): Estimate {
  const p = checkGrid(a, "deltaEstimate (a)");
  if (checkGrid(b, "deltaEstimate (b)") !== p) {
    throw new Error(`deltaEstimate: a has ${p} prompts, b has ${b[0].length}; use the same set`);
  }
  if (b.length !== 1 && b.length !== a.length) {
    throw new Error(
      `deltaEstimate: a has ${a.length} seeds and b ${b.length}; pair them or give b one row`,
    );
  }
  const bRow = (s: number) => (b.length === 1 ? 0 : s);
  const r = twoLevel(a.length, p, (seeds, prompts) => {
    let d = 0;
    for (const s of seeds) {
      for (const q of prompts) d += (a[s][q] ? 1 : 0) - (b[bRow(s)][q] ? 1 : 0);
    }
    return d / (seeds.length * prompts.length);
  }, opts);
  const discordant = a.some((row, s) => row.some((x, q) => x !== b[bRow(s)][q]));
  const method = "paired bootstrap seeds x " +
    (templateGroups(opts, p) ? "templates x prompts" : "prompts") +
    (discordant ? "" : " (no discordant answers: the interval is a point)");
  return { ...r, method };
}

/** Resolves the `seeds` option: a count n gives 0..n-1; at least two seeds are required. */
export function resolveSeeds(
  seeds: number | readonly number[] | undefined,
  dflt: number,
): number[] {
  const list = seeds === undefined
    ? Array.from({ length: dflt }, (_, i) => i)
    : typeof seeds === "number"
    ? Array.from({ length: seeds }, (_, i) => i)
    : [...seeds];
  if (list.length < 2 || list.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new Error(
      `seeds is ${JSON.stringify(seeds)}: pass a count >= 2 or a list of >= 2 non-negative ` +
        "integers (one seed makes no claim about training noise)",
    );
  }
  if (new Set(list).size !== list.length) throw new Error(`seeds ${list} repeat a seed`);
  return list;
}
