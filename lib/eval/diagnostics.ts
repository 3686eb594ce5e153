/**
 * Shallow-safety diagnostics (Qi et al. 2024, arXiv 2406.05946): the per-token
 * KL(pi_aligned || pi_base) along fixed responses, by response position. Shallow alignment
 * concentrates it in the first few tokens.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../model/model.ts";
import { encodePrompt } from "../model/chat.ts";
import { padBatch } from "../optim/loss.ts";

/** Mean KL at one response position, over the sequences long enough to have it. */
export interface PositionKl {
  /** Response token index (0 = the first response token). */
  position: number;
  /** Mean KL(aligned || base) of the next-token distributions there, in nats. */
  kl: number;
  /** Sequences long enough to have this position. */
  n: number;
}

/**
 * KL(aligned || base) of the next-token distributions at each response position of
 * `prompt + response` sequences (teacher-forced on the given responses). Both models must
 * share the tokenizer.
 */
export async function klByPosition(
  aligned: Model,
  base: Model,
  prompts: string[],
  responses: number[][],
  opts: { maxPositions?: number; batchSize?: number } = {},
): Promise<PositionKl[]> {
  const maxPos = opts.maxPositions ?? 32;
  const sums = new Float64Array(maxPos);
  const counts = new Int32Array(maxPos);
  const bs = opts.batchSize ?? 16;
  for (let s = 0; s < prompts.length; s += bs) {
    const seqs: number[][] = [];
    const starts: number[] = [];
    for (let i = s; i < Math.min(s + bs, prompts.length); i++) {
      const p = encodePrompt(aligned.tokenizer, prompts[i]);
      seqs.push([...p, ...responses[i].slice(0, maxPos)]);
      starts.push(p.length);
    }
    const batch = padBatch(seqs, starts, aligned.tokenizer.padId ?? 0);
    const kl = tf.tidy(() => {
      const la = tf.logSoftmax(
        aligned.forward(batch.ids, { attentionMask: batch.attentionMask }).logits!,
      );
      const lb = tf.logSoftmax(
        base.forward(batch.ids, { attentionMask: batch.attentionMask }).logits!,
      );
      return tf.sum(tf.mul(tf.exp(la), tf.sub(la, lb)), -1); // [B, T]
    });
    const rows = (await kl.array()) as number[][];
    kl.dispose();
    rows.forEach((row, i) => {
      // The distribution predicting response token j sits at position start + j - 1.
      for (let j = 0; j < Math.min(maxPos, seqs[i].length - starts[i]); j++) {
        sums[j] += row[starts[i] + j - 1];
        counts[j] += 1;
      }
    });
  }
  const out: PositionKl[] = [];
  for (let j = 0; j < maxPos; j++) {
    if (counts[j] > 0) out.push({ position: j, kl: sums[j] / counts[j], n: counts[j] });
  }
  return out;
}
