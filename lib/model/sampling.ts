/**
 * Token choice from one row of logits: greedy, or seeded sampling with temperature, top-k
 * and top-p (nucleus). Runs on the CPU over a Float32Array row, and returns the chosen
 * token's log-probability under the (tempered) model distribution, before truncation.
 *
 * @module
 */

import type { Rng } from "../data/rng.ts";

/** Sampling settings. */
export interface SamplingOptions {
  /** 0 = greedy. @default 0 */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). @default 0 */
  topK?: number;
  /** Keep the smallest set with cumulative probability >= p (1 = off). @default 1 */
  topP?: number;
}

/** log-softmax of `logits / temperature` at index `id` (temperature 0 -> 1). */
export function logProbOf(logits: Float32Array, id: number, temperature = 0): number {
  const inv = temperature > 0 ? 1 / temperature : 1;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i] - max) * inv);
  return (logits[id] - max) * inv - Math.log(sum);
}

/** Full log-softmax of a row (temperature 0 -> 1). */
export function logSoftmax(logits: Float32Array, temperature = 0): Float32Array {
  const inv = temperature > 0 ? 1 / temperature : 1;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i] - max) * inv);
  const lse = Math.log(sum);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = (logits[i] - max) * inv - lse;
  return out;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Chooses the next token from one row of logits. */
export function chooseToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const temperature = opts.temperature ?? 0;
  if (temperature <= 0) return argmax(logits);
  const lp = logSoftmax(logits, temperature);
  let ids = Array.from({ length: lp.length }, (_, i) => i);
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if ((topK > 0 && topK < lp.length) || topP < 1) {
    ids.sort((a, b) => lp[b] - lp[a]);
    if (topK > 0) ids = ids.slice(0, topK);
    if (topP < 1) {
      let cum = 0;
      let cut = ids.length;
      for (let i = 0; i < ids.length; i++) {
        cum += Math.exp(lp[ids[i]]);
        if (cum >= topP) {
          cut = i + 1;
          break;
        }
      }
      ids = ids.slice(0, cut);
    }
  }
  let total = 0;
  for (const i of ids) total += Math.exp(lp[i]);
  let u = rng.next() * total;
  for (const i of ids) {
    u -= Math.exp(lp[i]);
    if (u <= 0) return i;
  }
  return ids[ids.length - 1];
}
