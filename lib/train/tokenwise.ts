/**
 * Qi et al.'s token-wise constrained fine-tuning objective (Qi et al. 2024, "Safety
 * Alignment Should Be Made More Than Just a Few Tokens Deep", arXiv 2406.05946, section 4):
 *
 *   L = -sum_t (2 / beta_t) * log sigmoid(beta_t * log(pi_theta(y_t | x, y_<t) / pi_ref(y_t | x, y_<t)))
 *
 * where pi_ref is the aligned model at the start of fine-tuning (a frozen copy) and
 * beta_t = 0.5 at t = 1, 2 for t = 2..5 and 0.1 after (SCIENCE.md section 4). Its gradient
 * is `-2 sigmoid(-beta_t * delta_t) * grad log pi_theta(y_t)` with delta_t the log-ratio: at
 * pi_theta = pi_ref it equals the SFT gradient, and it fades once a token's probability has
 * risen ~1/beta_t nats above the reference, so a large beta keeps early tokens near pi_ref.
 *
 * Also the trainer of masked SFT (the same loop with `objective: "sft"`): examples may skip
 * their first `lossFromToken` response tokens (safety-recovery rows: the harmful prefix is
 * given, only the refusal continuation is learnt), or give the response as `segments` with a
 * loss flag each (an injected span in the middle, see `perturb.ts`). sft.ts's `trainSft` is
 * reused through its exported helpers; checkpoints follow its layout (model/,
 * optimizer.safetensors, trainer_state.json) plus reference.safetensors.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import type { Model } from "../model/model.ts";
import type { Params } from "../model/weights.ts";
import { type TokenBatch, tokenLogprobs } from "../optim/loss.ts";
import {
  batchOrder,
  encodeExamples,
  runSupervised,
  type SftExample,
  type SftOptions,
  type SftResult,
} from "./sft.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";

/** A piece of a response: encoded on its own; `loss: false` keeps it out of the loss. */
export interface ResponseSegment {
  /** The text (segments are joined with single spaces). */
  text: string;
  /** Learn these tokens. */
  loss: boolean;
}

/** An SFT example whose loss may skip response tokens. */
export interface MaskedExample extends SftExample {
  /** Skip the first k response tokens in the loss (recovery rows' `prefixTokens`). @default 0 */
  lossFromToken?: number;
  /** The response as segments (overrides `response` for training; `response` = joined text). */
  segments?: ResponseSegment[];
}

/** An encoded example: `mask[j]` = 1 when token j is a target; `respPos[j]` = 1-based response position. */
export interface EncodedExample {
  seq: number[];
  mask: number[];
  respPos: number[];
}

/** Qi et al.'s beta schedule: beta_1 = 0.5, beta_t = 2 for t = 2..5, 0.1 after (t is 1-based). */
export function betas(t: number): number {
  if (!(t >= 1)) throw new Error(`Cannot give beta_t for t=${t}: t counts response tokens from 1`);
  return t === 1 ? 0.5 : t <= 5 ? 2 : 0.1;
}

/** Tokenises examples: chat-formatted prompt + response (+ eos), with per-token loss masks. */
export function encodeMasked(
  model: Model,
  examples: MaskedExample[],
  appendEos = true,
): EncodedExample[] {
  const plain = encodeExamples(model, examples, appendEos);
  const eos = model.tokenizer.eosId ?? model.config.eosTokenId;
  return examples.map((ex, i) => {
    let { seq, lossFrom } = plain[i];
    let mask = seq.map((_, j) => (j >= Math.max(1, lossFrom) ? 1 : 0));
    if (ex.segments) {
      seq = seq.slice(0, lossFrom);
      mask = mask.slice(0, lossFrom);
      for (const s of ex.segments) {
        const ids = model.tokenizer.encode(s.text, { addSpecialTokens: false });
        seq.push(...ids);
        mask.push(...ids.map(() => (s.loss ? 1 : 0)));
      }
      if (appendEos && eos !== undefined) (seq.push(eos), mask.push(1));
      if (model.config.arch === "gpt2" && seq.length > model.config.maxPositions) {
        throw new Error(
          `Cannot encode example ${i}: ${seq.length} tokens exceed the model's ` +
            `${model.config.maxPositions} positions; shorten its segments`,
        );
      }
    }
    const k = ex.lossFromToken ?? 0;
    if (!Number.isInteger(k) || k < 0 || lossFrom + k > seq.length) {
      throw new Error(
        `Cannot encode example ${i}: lossFromToken=${k} but the response has ` +
          `${seq.length - lossFrom} tokens; pass a whole number of response tokens`,
      );
    }
    for (let j = lossFrom; j < lossFrom + k; j++) mask[j] = 0;
    return { seq, mask, respPos: seq.map((_, j) => Math.max(0, j - lossFrom + 1)) };
  });
}

/** Right-pads encoded examples into a batch (plus the response positions, 0 on padding). */
export function padMasked(
  enc: EncodedExample[],
  pad = 0,
): TokenBatch & { respPos: number[][] } {
  const t = Math.max(...enc.map((e) => e.seq.length));
  const fill = (xs: number[], v: number) => [...xs, ...new Array(t - xs.length).fill(v)];
  return {
    ids: enc.map((e) => fill(e.seq, pad)),
    attentionMask: enc.map((e) => fill(e.seq.map(() => 1), 0)),
    lossMask: enc.map((e) => fill(e.mask, 0)),
    respPos: enc.map((e) => fill(e.respPos, 0)),
  };
}

/**
 * The token-wise constrained loss (a scalar): the mean over target tokens (`mask` 1) of
 * `-(2/beta_t) log sigmoid(beta_t (logp - refLogp))`, beta_t = `beta(pos[b][t])`. `logp`,
 * `refLogp`: [B, T] log-probabilities of the targets; `mask`, `pos`: [B, T] numbers. The
 * token mean (as `lmLoss`, not the paper's per-example sum) keeps SFT learning rates valid.
 */
export function tokenwiseLoss(
  logp: tf.Tensor2D,
  refLogp: tf.Tensor2D,
  mask: number[][],
  pos: number[][],
  beta: (t: number) => number = betas,
): tf.Scalar {
  return tf.tidy(() => {
    const m = tf.tensor2d(mask, logp.shape);
    const b = tf.tensor2d(pos.map((r, i) => r.map((t, j) => (mask[i][j] ? beta(t) : 1))));
    const delta = tf.sub(logp, refLogp); // [B, T]
    const z = tf.mul(b, delta);
    // log sigmoid(z) = min(z, 0) - log(1 + exp(-|z|)), stable; tf.logSigmoid's custom
    // gradient keeps a tensor that an enclosing tidy frees before the backward pass.
    const logSig = tf.sub(tf.minimum(z, 0), tf.log(tf.add(1, tf.exp(tf.neg(tf.abs(z))))));
    const per = tf.div(tf.mul(logSig, -2), b); // [B, T]
    return tf.div(tf.sum(tf.mul(per, m)), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
  });
}

/** Options of {@link trainTokenwise}: sft.ts's options, plus the objective. */
export interface TokenwiseOptions extends SftOptions {
  /** "tokenwise": Qi et al.'s constrained loss; "sft": masked NLL (the control). @default "tokenwise" */
  objective?: "tokenwise" | "sft";
  /** beta_t by 1-based response position. @default betas (0.5, 2 x4, then 0.1) */
  beta?: (t: number) => number;
  /** The reference policy's weights. @default a frozen copy of `model` at the start */
  reference?: Params;
}

/**
 * Fine-tunes `model` in place with the token-wise constrained objective (or masked SFT),
 * through sft.ts's shared loop (schedule, clipping, bucketed batches, NaN guard, atomic
 * checkpoints and exact resumption); the frozen reference is saved with each checkpoint.
 */
export async function trainTokenwise(
  model: Model,
  examples: MaskedExample[],
  opts: TokenwiseOptions = {},
): Promise<SftResult> {
  if (examples.length === 0) throw new Error("trainTokenwise: no examples");
  const objective = opts.objective ?? "tokenwise";
  const bs = Math.min(opts.batchSize ?? 32, examples.length);
  const enc = encodeMasked(model, examples, opts.appendEos ?? true);
  const pad = model.tokenizer.padId ?? 0;
  const order = batchOrder(enc.length, bs, opts.seed ?? 0, enc.map((e) => e.seq.length));
  const ownRef = objective === "tokenwise" && !opts.reference;
  const ref = objective === "tokenwise" ? opts.reference ?? model.cloneParams(false) : undefined;
  const { onStep: _o, validation: _v, reference: _r, beta, ...rest } = opts;
  try {
    return await runSupervised(model, {
      name: objective,
      steps: opts.steps ?? Math.max(1, Math.floor(examples.length / bs)),
      examples: order,
      collate: (idx) => padMasked(idx.map((i) => enc[i]), pad),
      loss: (batch) => {
        const mask = batch.lossMask.map((r) => r.slice(1));
        const lp = tokenLogprobs(model.config, model.params, batch); // [B, T-1]
        if (ref) {
          // The reference is frozen (not among the trained variables): a constant here.
          const refLp = tokenLogprobs(model.config, ref, batch);
          const pos = batch.respPos.map((r) => r.slice(1));
          return tokenwiseLoss(lp, refLp as tf.Tensor2D, mask, pos, beta ?? betas);
        }
        const m = tf.tensor2d(mask, lp.shape);
        return tf.div(tf.neg(tf.sum(tf.mul(lp, m))), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
      },
      stateOptions: { ...rest, objective, beta: beta ? "custom" : "qi2024" },
      saveExtra: ref
        ? async (tmp) => {
          const t: Record<string, { shape: number[]; data: Float32Array }> = {};
          for (const [n, v] of ref) {
            t[n] = { shape: v.shape, data: (await v.data()) as Float32Array };
          }
          await writeSafetensors(join(tmp, "reference.safetensors"), t);
        }
        : undefined,
      loadExtra: ref
        ? async (dir) => {
          const path = join(dir, "reference.safetensors");
          const r = await readSafetensors(path).catch(() => {
            throw new Error(
              `Cannot resume the token-wise objective from ${dir}: ${path} is missing; ` +
                `the reference must be the model at the start of fine-tuning`,
            );
          });
          for (const [n, v] of ref) {
            const t = r.tensors.get(n);
            if (!t || t.data.length !== v.size) {
              throw new Error(
                `Cannot resume the token-wise objective from ${path}: tensor '${n}' is ` +
                  (t ? `of ${t.data.length} values, the model's ${v.size}` : "missing") +
                  "; resume with the model the run started from",
              );
            }
            tf.tidy(() => v.assign(tf.tensor(t.data, v.shape)));
          }
        }
        : undefined,
    }, { label: objective, ...opts });
  } finally {
    if (ownRef && ref) tf.dispose([...ref.values()]);
  }
}
