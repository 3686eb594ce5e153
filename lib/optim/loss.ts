/**
 * Language-model losses over token batches: per-token log-probabilities of the targets,
 * and the masked mean negative log-likelihood (loss only where `lossMask` is 1, e.g. the
 * response tokens of SFT).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "../model/config.ts";
import type { Params } from "../model/weights.ts";
import { forward, type Intervention } from "../model/transformer.ts";

/** A right-padded token batch. */
export interface TokenBatch {
  /** [B, T] token ids (padding anywhere where attentionMask is 0). */
  ids: number[][];
  /** [B, T] 1 = real token. */
  attentionMask: number[][];
  /** [B, T] 1 = predict this token from the previous ones (position 0 is never predicted). */
  lossMask: number[][];
}

/** Pads sequences on the right into a {@link TokenBatch}; `lossFrom[i]` = first target index. */
export function padBatch(seqs: number[][], lossFrom: number[], pad = 0): TokenBatch {
  const t = Math.max(...seqs.map((s) => s.length));
  return {
    ids: seqs.map((s) => [...s, ...new Array(t - s.length).fill(pad)]),
    attentionMask: seqs.map((s) => [...s.map(() => 1), ...new Array(t - s.length).fill(0)]),
    lossMask: seqs.map((s, i) =>
      Array.from({ length: t }, (_, j) => (j >= Math.max(1, lossFrom[i]) && j < s.length ? 1 : 0))
    ),
  };
}

/**
 * log p(ids[b, t] | ids[b, < t]) for t >= 1, as a [B, T-1] tensor (differentiable).
 * Optionally also returns the hidden states of `layers` from the same pass.
 */
export function tokenLogprobs(
  c: ModelConfig,
  p: Params,
  batch: Pick<TokenBatch, "ids" | "attentionMask">,
  opts: { temperature?: number; interventions?: Intervention[] } = {},
): tf.Tensor2D {
  const b = batch.ids.length;
  const t = batch.ids[0].length;
  return tf.tidy(() => {
    const f = forward(c, p, batch.ids, {
      attentionMask: batch.attentionMask,
      interventions: opts.interventions,
    });
    const logits = tf.slice(f.logits!, [0, 0, 0], [b, t - 1, c.vocabSize]); // [B, T-1, V]
    const scaled = opts.temperature && opts.temperature > 0
      ? tf.div(logits, opts.temperature)
      : logits;
    const logp = tf.logSoftmax(scaled); // [B, T-1, V]
    const targets = batch.ids.flatMap((row) => row.slice(1));
    const flatIdx = tf.tensor1d(targets.map((tok, i) => i * c.vocabSize + tok), "int32");
    const picked = tf.gather(tf.reshape(logp, [-1]), flatIdx);
    return tf.reshape(picked, [b, t - 1]) as tf.Tensor2D;
  });
}

/** Masked mean negative log-likelihood of the batch (a scalar). */
export function lmLoss(c: ModelConfig, p: Params, batch: TokenBatch): tf.Scalar {
  return tf.tidy(() => {
    const lp = tokenLogprobs(c, p, batch);
    const mask = tf.tensor2d(batch.lossMask.map((r) => r.slice(1)));
    const n = tf.maximum(tf.sum(mask), 1);
    return tf.div(tf.neg(tf.sum(tf.mul(lp, mask))), n) as tf.Scalar;
  });
}
