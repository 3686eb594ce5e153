/**
 * Trajectory training with mid-sequence perturbations (Park & Kim, arXiv 2606.04778;
 * SCIENCE.md section 5): a short span is injected INSIDE the target response at a chosen
 * position, and what follows it is a recovery (for harmful prompts: the refusal), so the
 * model learns to return to safety after off-trajectory tokens at any depth, not only at
 * the first token (Qi et al. 2024's recovery examples, arXiv 2406.05946, are the special
 * case of a span at position 0). The paper's schedule and loss are unpublished, so every
 * part is a parameter: rate, positions, span lengths, where the injected text comes from.
 *
 * - {@link perturbExamples}: SFT rows -> masked examples for `trainTokenwise` (objective
 *   "sft" or "tokenwise"): the response as segments `[before][span][continuation]`, the span
 *   out of the loss. Positions and lengths count whitespace-separated words, which are
 *   tokens for SafetyWorld's word-level tokenizer (word positions for subword tokenizers).
 * - {@link perturbRollout}: the same schedule as `ForcedSpan[]` per rollout, in tokens, for
 *   `model.generate({ force })`.
 *
 * @module
 */

import type { ForcedSpan } from "../model/generate.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";
import { makeRng, type Rng } from "../data/rng.ts";
import type { MaskedExample } from "./tokenwise.ts";

/** Where spans go: uniform over the answer, one of a list of positions, or a fraction of its length. */
export type PerturbPositions = "uniform" | readonly number[] | { fraction: number };
/** Where the injected text comes from (as the injection attack's sources in lib/eval/attacks.ts). */
export type PerturbSource = "harmful" | "affirmative" | "random";

/** A row to perturb: a prompt and its target response (SafetyWorld's align rows fit). */
export interface PerturbRow {
  /** Row id (error messages, bookkeeping). */
  id?: string;
  /** The user request. */
  prompt: string;
  /** The target response (a refusal, for harmful rows). */
  response: string;
  /** Prompt label; only rows whose label is in `labels` are perturbed. */
  label?: string;
  /** Recovery rows: leading response words given, not learnt (rows with it pass unperturbed). */
  prefixTokens?: number;
}

/** The schedule shared by {@link perturbExamples} and {@link perturbRollout}. */
export interface PerturbSchedule<R> {
  /** Share of eligible rows (label in `labels`) perturbed. @default 0.5 */
  rate?: number;
  /** Where the span goes (0 = before the first answer word/token). @default "uniform" */
  positions?: PerturbPositions;
  /** Span length range [min, max], inclusive, drawn uniformly. @default [1, 5] */
  length?: readonly [number, number];
  /** Injected text source. @default "harmful" */
  source?: PerturbSource;
  /** Seed of every draw. @default 0 */
  seed?: number;
  /** Harmful answers to cut spans from, per row (required by source "harmful"). */
  harmfulTexts?: (row: R) => readonly string[];
  /** Cut harmful spans from the answer's start, or from a random offset. @default "start" */
  harmfulOffset?: "start" | "random";
  /** Text of the "affirmative" source (truncated to the drawn length). @default "sure , here is how ." */
  affirmative?: string;
  /** Labels of the rows to perturb. @default ["harmful"] */
  labels?: readonly string[];
}

/** Options of {@link perturbExamples}. */
export interface PerturbOptions extends PerturbSchedule<PerturbRow> {
  /** Words of the "random" source. @default every distinct word of the rows' prompts and responses */
  vocab?: readonly string[];
  /**
   * What follows the span: "restart" = the whole target response again (a recovery: the
   * refusal from its start), "resume" = the rest of the target after the insertion point.
   * @default "restart"
   */
  continuation?: "restart" | "resume";
}

/** A masked SFT example, with what was injected where. */
export interface PerturbedExample extends MaskedExample {
  /** The row's id. */
  id?: string;
  /** Word index of the response where the span starts; absent when not perturbed. */
  injectedAt?: number;
  /** The injected words; absent when not perturbed. */
  injected?: string;
}

function checkSchedule<R>(o: PerturbSchedule<R>): void {
  const rate = o.rate ?? 0.5;
  const [lo, hi] = o.length ?? [1, 5];
  if (!(rate >= 0 && rate <= 1)) {
    throw new Error(`Cannot perturb: rate=${rate}; pass a share in [0, 1]`);
  }
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi < lo) {
    throw new Error(`Cannot perturb: length=[${lo}, ${hi}]; pass whole numbers 1 <= min <= max`);
  }
  const p = o.positions ?? "uniform";
  const bad = p === "uniform"
    ? false
    : Array.isArray(p)
    ? p.length === 0 || p.some((x) => !Number.isInteger(x) || x < 0)
    : !((p as { fraction: number }).fraction >= 0 && (p as { fraction: number }).fraction <= 1);
  if (bad) {
    throw new Error(
      `Cannot perturb: positions=${JSON.stringify(p)}; use "uniform", a list of whole ` +
        "numbers >= 0, or {fraction} in [0, 1]",
    );
  }
  if ((o.source ?? "harmful") === "harmful" && !o.harmfulTexts) {
    throw new Error(
      'Cannot perturb with source "harmful": pass harmfulTexts(row) -> harmful answers ' +
        '(e.g. SafetyWorld sft rows with behaviour "comply" for the row\'s hazard)',
    );
  }
}

/** The insertion point for an answer of `n` units (clamped to n). */
function drawPosition(rng: Rng, positions: PerturbPositions, n: number): number {
  if (positions === "uniform") return rng.int(n + 1);
  if (Array.isArray(positions)) return Math.min(n, rng.pick(positions as readonly number[]));
  return Math.round((positions as { fraction: number }).fraction * n);
}

/** A span of `len` units of `units`, from the start or a random offset. */
function cut<T>(rng: Rng, units: readonly T[], len: number, offset: "start" | "random"): T[] {
  const l = Math.min(len, units.length);
  const o = offset === "random" ? rng.int(units.length - l + 1) : 0;
  return units.slice(o, o + l);
}

function harmfulOf<R extends { id?: string }>(rng: Rng, o: PerturbSchedule<R>, row: R): string {
  const texts = o.harmfulTexts!(row);
  if (texts.length === 0) {
    throw new Error(
      `Cannot perturb row ${row.id ?? "(no id)"}: harmfulTexts returned no harmful answer ` +
        'for it; return at least one, or use source "affirmative" or "random"',
    );
  }
  return rng.pick(texts);
}

const words = (t: string) => t.split(/\s+/).filter((w) => w.length > 0);

/**
 * Turns SFT rows into masked examples: each eligible row is perturbed with probability
 * `rate` (a span of the drawn source and length inserted at the drawn position, excluded
 * from the loss, followed by the recovery continuation); other rows pass through whole
 * (recovery rows keep `prefixTokens` as `lossFromToken`). Deterministic in `seed`.
 */
export function perturbExamples(
  rows: readonly PerturbRow[],
  opts: PerturbOptions = {},
): PerturbedExample[] {
  checkSchedule(opts);
  const rng = makeRng(opts.seed ?? 0);
  const source = opts.source ?? "harmful";
  const labels = opts.labels ?? ["harmful"];
  const [lo, hi] = opts.length ?? [1, 5];
  const vocab = opts.vocab ??
    [...new Set(rows.flatMap((r) => [...words(r.prompt), ...words(r.response)]))].sort();
  if (source === "random" && vocab.length === 0) {
    throw new Error('Cannot perturb with source "random": the vocabulary is empty; pass vocab');
  }
  return rows.map((row) => {
    const plain: PerturbedExample = { id: row.id, prompt: row.prompt, response: row.response };
    if (row.prefixTokens !== undefined) plain.lossFromToken = row.prefixTokens;
    // Every row draws the same number of values, so one row's outcome never shifts another's.
    const r = rng.fork();
    const go = r.next() < (opts.rate ?? 0.5);
    if (!go || row.prefixTokens !== undefined || !labels.includes(row.label ?? "")) return plain;
    const resp = words(row.response);
    const at = drawPosition(r, opts.positions ?? "uniform", resp.length);
    const len = lo + r.int(hi - lo + 1);
    const span = source === "harmful"
      ? cut(r, words(harmfulOf(r, opts, row)), len, opts.harmfulOffset ?? "start")
      : source === "affirmative"
      ? words(opts.affirmative ?? "sure , here is how .").slice(0, len)
      : Array.from({ length: len }, () => r.pick(vocab));
    const rest = (opts.continuation ?? "restart") === "restart" ? resp : resp.slice(at);
    const segments = [
      { text: resp.slice(0, at).join(" "), loss: true },
      { text: span.join(" "), loss: false },
      { text: rest.join(" "), loss: true },
    ].filter((s) => s.text.length > 0);
    return {
      ...plain,
      response: segments.map((s) => s.text).join(" "),
      segments,
      injectedAt: at,
      injected: span.join(" "),
    };
  });
}

/** Options of {@link perturbRollout}: the schedule, in tokens of generation steps. */
export interface RolloutPerturbOptions<R> extends PerturbSchedule<R> {
  /** Uniform positions are drawn in [0, maxStep]; fractions are of maxStep. @default 16 */
  maxStep?: number;
}

/** Forced spans for a batch of rollouts (one entry per row; undefined = unperturbed). */
export type RolloutPerturber<R> = (
  rows: readonly R[],
  step: number,
) => (ForcedSpan[] | undefined)[];

/**
 * The perturbation schedule as forced spans for rollouts: call the returned function with
 * the batch's rows (one per rollout, repeated for a group) and the training step, and pass
 * the result as `force` to `model.generate({ prompts, force })`. Draws are seeded by
 * (`seed`, step, row index). A span that starts right after a rollout's end-of-sequence
 * token makes the generator continue past it (the end-of-sequence token stays in the
 * answer); a span drawn for a later step is not injected at all (`generate` returns which
 * tokens were forced). Keep `maxStep` within typical answer lengths. `trainRL` takes the
 * same schedule as its `perturb` option.
 */
export function perturbRollout<R extends { id?: string; label?: string }>(
  tokenizer: TextTokenizer,
  opts: RolloutPerturbOptions<R> = {},
): RolloutPerturber<R> {
  checkSchedule(opts);
  const special = new Set([tokenizer.bosId, tokenizer.eosId, tokenizer.padId]);
  const maxStep = opts.maxStep ?? 16;
  const source = opts.source ?? "harmful";
  const labels = opts.labels ?? ["harmful"];
  const [lo, hi] = opts.length ?? [1, 5];
  return (rows, step) => {
    const rng = makeRng(((opts.seed ?? 0) * 0x9e3779b1 + step * 0x85ebca6b) >>> 0);
    return rows.map((row) => {
      const r = rng.fork();
      const go = r.next() < (opts.rate ?? 0.5);
      if (!go || !labels.includes(row.label ?? "")) return undefined;
      const at = drawPosition(r, opts.positions ?? "uniform", maxStep);
      const len = lo + r.int(hi - lo + 1);
      let tokens: number[];
      if (source === "harmful") {
        const ids = tokenizer.encode(harmfulOf(r, opts, row), { addSpecialTokens: false }).filter((
          t,
        ) => !special.has(t));
        tokens = cut(r, ids, len, opts.harmfulOffset ?? "start");
      } else if (source === "affirmative") {
        tokens = tokenizer.encode(opts.affirmative ?? "sure , here is how .", {
          addSpecialTokens: false,
        }).slice(0, len);
      } else {
        tokens = [];
        while (tokens.length < len) {
          const id = r.int(tokenizer.vocabSize);
          if (!special.has(id)) tokens.push(id);
        }
      }
      return tokens.length ? [{ step: at, tokens }] : undefined;
    });
  };
}
