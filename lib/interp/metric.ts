/**
 * The metric every interpretability primitive reads: a logit difference at one position,
 * mean logit of the `plus` tokens minus mean logit of the `minus` tokens (for example the
 * refusal token against the compliance token), and its vocabulary weights w (linear in the
 * logits: metric = logits . w).
 *
 * @module
 */

import type { TextTokenizer } from "../model/tokenizer.ts";

/** A logit difference: mean(logits[plus]) - mean(logits[minus]) at `position`. */
export interface LogitDiff {
  /** Token ids whose mean logit counts positively (e.g. the refusal's first token). */
  plus: readonly number[];
  /** Token ids whose mean logit counts negatively (e.g. the compliance's first token). */
  minus: readonly number[];
  /** Position read (negative counts from the end). @default -1 (the next-token prediction) */
  position?: number;
}

/**
 * Token ids of words, each of which must be one token of the tokenizer (an error names the
 * ones that are not).
 *
 * @example
 * ```ts ignore
 * const metric = { plus: tokenIds(model.tokenizer, ["sorry"]), minus: tokenIds(model.tokenizer, ["sure"]) };
 * ```
 */
export function tokenIds(tokenizer: TextTokenizer, words: readonly string[]): number[] {
  const missing: string[] = [];
  const ids = words.map((w) => {
    const id = tokenizer.tokenToId(w);
    if (id === undefined) missing.push(w);
    return id ?? -1;
  });
  if (missing.length) {
    throw new Error(`tokenIds: not single tokens of this tokenizer: ${missing.join(", ")}`);
  }
  return ids;
}

/**
 * Checks a metric against a vocabulary size: non-empty `plus` and `minus`, ids in range.
 *
 * @example
 * ```ts
 * checkMetric({ plus: [3], minus: [4] }, 10, "logitLens"); // fine
 * ```
 */
export function checkMetric(m: LogitDiff, vocab: number, where: string): void {
  if (!m || !m.plus?.length || !m.minus?.length) {
    throw new Error(`${where}: metric needs non-empty 'plus' and 'minus' token id lists`);
  }
  for (const id of [...m.plus, ...m.minus]) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new Error(`${where}: metric token id ${id} outside 0..${vocab - 1}`);
    }
  }
}

/**
 * The vocabulary weights w of a metric [V]: 1/|plus| on plus ids, -1/|minus| on minus ids,
 * so that metric = logits . w.
 *
 * @example
 * ```ts
 * metricWeights({ plus: [1], minus: [2, 3] }, 4); // Float32Array [0, 1, -0.5, -0.5]
 * ```
 */
export function metricWeights(m: LogitDiff, vocab: number): Float32Array {
  const w = new Float32Array(vocab);
  for (const id of m.plus) w[id] += 1 / m.plus.length;
  for (const id of m.minus) w[id] -= 1 / m.minus.length;
  return w;
}

/**
 * The metric on one row of logits [V] (float64 sums).
 *
 * @example
 * ```ts
 * metricOf(new Float32Array([0, 2, 1, 3]), { plus: [1], minus: [2, 3] }); // 2 - 2 = 0
 * ```
 */
export function metricOf(logits: ArrayLike<number>, m: LogitDiff): number {
  let p = 0, q = 0;
  for (const id of m.plus) p += logits[id];
  for (const id of m.minus) q += logits[id];
  return p / m.plus.length - q / m.minus.length;
}

/**
 * The absolute index of the metric's position in a sequence of length t.
 *
 * @example
 * ```ts
 * positionIndex({ plus: [1], minus: [2] }, 5); // 4
 * ```
 */
export function positionIndex(m: LogitDiff, t: number, where = "metric"): number {
  const p = m.position ?? -1;
  const i = p < 0 ? t + p : p;
  if (i < 0 || i >= t) throw new Error(`${where}: position ${p} outside a ${t}-token sequence`);
  return i;
}
