/**
 * The update phase of an RL step, with tensors: the policy (and PPO value-head) pass over
 * prompt + completion, PPO's clipped-ratio surrogate (arXiv 1707.06347; GRPO uses the same
 * surrogate with group advantages, arXiv 2402.03300) plus the k3 KL to the reference as a
 * loss term (verl's `use_kl_loss`), PPO's clipped value loss, and one AdamW step with
 * global-norm clipping. `advantages.ts` holds the same arithmetic on plain arrays. After the
 * update, the policy's trained weights, the value head and both optimisers' moments are
 * checked for non-finite values (one reduction per tensor) before anything can be saved: a
 * `NonFiniteError` (`../step_loop.ts`) stops the run.
 *
 * Which tokens carry loss: completion tokens the policy chose. Prompt tokens, padding and
 * tokens forced into the rollout (mid-sequence perturbations, `RLOptions.perturb`) get
 * weight 0 in the surrogate, the KL and `clip_ratio` (see {@link policyMask}); the value
 * loss covers every completion token (the states after a forced span are states the
 * policy must value).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../../model/model.ts";
import { trainableVariables } from "../../model/lora.ts";
import { forward } from "../../model/transformer.ts";
import type { Params } from "../../model/weights.ts";
import { type AdamW, clipByGlobalNorm } from "../../optim/adamw.ts";
import { NonFiniteError, nonFiniteText } from "../step_loop.ts";
import { isClipped } from "../advantages.ts";
import { padBatch, type TokenBatch, tokenLogprobs } from "../../optim/loss.ts";
import type { ResolvedRLOptions } from "./options.ts";
import { meanOf } from "./log.ts";

/** Identity whose gradient is zero: old log-probs of an on-policy step, value-head features. */
const detach = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

/** PPO's value head: `V = h W + b` on the last block's hidden state (W [d, 1], b [1]). */
export interface ValueHead {
  /** [d, 1] */
  w: tf.Variable;
  /** [1] */
  b: tf.Variable;
}

/** Everything one minibatch update reads (per rollout i; completion token t). */
export interface UpdateInputs {
  /** The policy. */
  model: Model;
  /** PPO's value head. */
  head?: ValueHead;
  /** Frozen reference weights (KL term). */
  ref?: Params;
  /** Prompt + completion token ids. */
  seqs: number[][];
  /** Index of each rollout's first completion log-prob in the [T-1] axis. */
  starts: number[];
  /** Completion lengths. */
  lens: number[];
  /** Per-token advantages. */
  adv: number[][];
  /** Rollout-time log-probs (absent: a single on-policy update, the detached current pass). */
  oldLp?: number[][];
  /** PPO: rollout-time values. */
  oldV: number[][];
  /** Reference log-probs (with `ref`). */
  refLp: number[][];
  /** PPO: value targets. */
  ret?: number[][];
  /** Forced completion tokens (perturbations): no loss, no KL. */
  forced?: boolean[][];
  /** Padding id. */
  pad: number;
}

/** What one update reports. */
export interface UpdateStats {
  /** The minimised loss. */
  loss: number;
  /** Gradient norm before clipping. */
  norm: number;
  /** Mean k3 KL per chosen token (NaN without a reference). */
  kl: number;
  /** PPO value loss (NaN without a value head). */
  vloss: number;
  /** Share of chosen tokens whose ratio was clipped. */
  clip: number;
}

/**
 * The policy-loss weight of every log-prob of a [b, T-1] grid: the batch's loss mask
 * (completion tokens of rollouts `idx`, shifted by one as targets), with the tokens
 * `forced[i][t]` set to 0 so the policy is credited only for tokens it chose.
 */
export function policyMask(
  lossMask: readonly number[][],
  idx: readonly number[],
  starts: readonly number[],
  forced?: readonly (readonly boolean[])[],
): number[][] {
  return lossMask.map((r, k) => {
    const row = r.slice(1);
    forced?.[idx[k]]?.forEach((f, t) => f && (row[starts[idx[k]] + t] = 0));
    return row;
  });
}

/**
 * log p of every next token [B, T-1] at `temperature` (`tokenLogprobs`) and, with a value
 * head, the values [B, T-1] read from the same pass; call inside a tidy or a gradient tape.
 */
function policyPass(
  model: Model,
  params: Params,
  batch: Pick<TokenBatch, "ids" | "attentionMask">,
  temperature: number,
  head?: ValueHead,
): { logp: tf.Tensor2D; values?: tf.Tensor2D } {
  const c = model.config, b = batch.ids.length, t = batch.ids[0].length;
  if (!head) return { logp: tokenLogprobs(c, params, batch, { temperature }) };
  // Same arithmetic as tokenLogprobs, plus the last block's hidden states for the head.
  const f = forward(c, params, batch.ids, {
    attentionMask: batch.attentionMask,
    hiddenStates: [c.nLayer],
  });
  const logits = tf.div(tf.slice(f.logits!, [0, 0, 0], [b, t - 1, c.vocabSize]), temperature);
  const logp = tf.logSoftmax(logits); // [B, T-1, V]
  const flat = batch.ids.flatMap((row) => row.slice(1)).map((id, i) => i * c.vocabSize + id);
  const picked = tf.gather(tf.reshape(logp, [-1]), tf.tensor1d(flat, "int32")); // [B (T-1)]
  const h = detach(tf.slice(f.hiddenStates[c.nLayer], [0, 0, 0], [b, t - 1, c.dModel]));
  const v = tf.add(tf.matMul(tf.reshape(h, [-1, c.dModel]), head.w), head.b); // [B (T-1), 1]
  return {
    logp: tf.reshape(picked, [b, t - 1]) as tf.Tensor2D,
    values: tf.reshape(v, [b, t - 1]) as tf.Tensor2D,
  };
}

/** Places per-rollout values at their completion positions of a [b, T-1] grid (0 elsewhere). */
function grid(idx: number[], t1: number, starts: number[], vals: number[][]): tf.Tensor2D {
  return tf.tensor2d(
    idx.map((i) => {
      const row = new Array<number>(t1).fill(0);
      vals[i].forEach((v, k) => (row[starts[i] + k] = v));
      return row;
    }),
    [idx.length, t1],
  );
}

/** Throws a `NonFiniteError` when `opt`'s last update left `vars` or its moments non-finite. */
async function checkFinite(opt: AdamW, vars: tf.Variable[], names: string[]): Promise<void> {
  const bad = await opt.nonFinite(vars);
  if (bad) throw new NonFiniteError(`after the update, ${nonFiniteText(bad, names)} not finite`);
}

/**
 * One gradient update on rollouts `idx`; throws (before updating) on a non-finite loss, and
 * a `NonFiniteError` after an update that left non-finite weights or moments.
 */
export async function update(
  inp: UpdateInputs,
  idx: number[],
  o: ResolvedRLOptions,
  opt: AdamW,
  vopt: AdamW,
): Promise<UpdateStats> {
  const { model, head, ref, starts } = inp;
  const eps = o.clipEps, vclip = o.valueClip, temperature = o.temperature;
  const klCoef = ref ? o.klCoef : 0;
  const b = padBatch(idx.map((i) => inp.seqs[i]), idx.map((i) => starts[i] + 1), inp.pad);
  const t1 = b.ids[0].length - 1;
  const side: Record<string, tf.Tensor> = {};
  const lossFn = () => {
    const { logp, values } = policyPass(model, model.params, b, temperature, head);
    const tokens = tf.tensor2d(b.lossMask.map((r) => r.slice(1))); // [b, T-1] completion
    const mask = inp.forced ? tf.tensor2d(policyMask(b.lossMask, idx, starts, inp.forced)) : tokens;
    const A = grid(idx, t1, starts, inp.adv);
    const old = inp.oldLp ? grid(idx, t1, starts, inp.oldLp) : detach(logp);
    const ratio = tf.exp(tf.sub(logp, old));
    const clipped = tf.clipByValue(ratio, 1 - eps, 1 + eps);
    let perTok: tf.Tensor = tf.maximum(tf.neg(tf.mul(A, ratio)), tf.neg(tf.mul(A, clipped)));
    const reduceBy = (x: tf.Tensor, m: tf.Tensor) => {
      const count = tf.sum(m, 1); // [b]
      return o.lossAggregation === "token"
        ? tf.div(tf.sum(tf.mul(x, m)), tf.maximum(tf.sum(count), 1))
        : tf.mean(tf.div(tf.sum(tf.mul(x, m), 1), tf.maximum(count, 1)));
    };
    side.ratio = tf.keep(ratio);
    if (ref) {
      const d = tf.sub(grid(idx, t1, starts, inp.refLp), logp); // log pi_ref - log pi
      const kl = tf.sub(tf.sub(tf.exp(d), d), 1); // k3
      side.kl = tf.keep(tf.div(tf.sum(tf.mul(kl, mask)), tf.maximum(tf.sum(mask), 1)));
      perTok = tf.add(perTok, tf.mul(kl, klCoef));
    }
    let loss = reduceBy(perTok, mask);
    if (head && values) {
      const vOld = grid(idx, t1, starts, inp.oldV), R = grid(idx, t1, starts, inp.ret!);
      const vc = tf.add(vOld, tf.clipByValue(tf.sub(values, vOld), -vclip, vclip));
      const vl = tf.mul(tf.maximum(tf.square(tf.sub(values, R)), tf.square(tf.sub(vc, R))), 0.5);
      side.vloss = tf.keep(reduceBy(vl, tokens));
      loss = tf.add(loss, tf.mul(side.vloss, o.vfCoef));
    }
    return loss as tf.Scalar;
  };
  const vars = trainableVariables(model); // the LoRA adapters when the model has some
  const hv = head ? [head.w, head.b] : [];
  const { value, grads } = tf.variableGrads(lossFn, [...vars, ...hv]);
  const gl = vars.map((v) => grads[v.name] ?? tf.zerosLike(v));
  const hg = hv.map((v) => grads[v.name] ?? tf.zerosLike(v));
  const loss = (await value.data())[0];
  const ratio = (await side.ratio.array()) as number[][];
  const kl = side.kl ? (await side.kl.data())[0] : NaN;
  const vloss = side.vloss ? (await side.vloss.data())[0] : NaN;
  tf.dispose([value, ...Object.values(side)]);
  // Scoped so that any temporaries of clipping and of the optimiser step are freed here.
  const cl = tf.tidy(() => clipByGlobalNorm(gl, o.clip));
  const ch = hg.length ? tf.tidy(() => clipByGlobalNorm(hg, o.clip)) : { grads: [], norm: 0 };
  const free = () => tf.dispose([...new Set([...gl, ...hg, ...cl.grads, ...ch.grads])]);
  if (!Number.isFinite(loss) || !Number.isFinite(cl.norm) || !Number.isFinite(ch.norm)) {
    free();
    throw new Error(
      Number.isFinite(loss) ? `the gradient norm is ${cl.norm}` : `the loss is ${loss}`,
    );
  }
  tf.tidy(() => opt.step(vars, cl.grads, 1, vars.map((v) => v.shape.length === 2)));
  if (head) tf.tidy(() => vopt.step(hv, ch.grads, 1, [false, false]));
  free();
  const byVar = new Map([...model.params].map(([n, v]) => [v, n]));
  await checkFinite(opt, vars, vars.map((v) => byVar.get(v) ?? v.name));
  if (head) await checkFinite(vopt, hv, ["value_head.weight", "value_head.bias"]);
  // clip_ratio over the chosen tokens only.
  const chosen = (i: number) => (_: unknown, t: number) => !inp.forced?.[i]?.[t];
  const r = idx.flatMap((i, k) =>
    ratio[k].slice(starts[i], starts[i] + inp.lens[i]).filter(chosen(i))
  );
  const a = idx.flatMap((i) => inp.adv[i].filter(chosen(i)));
  const clip = meanOf(isClipped(r, a, eps).map(Number));
  return { loss, norm: cl.norm, kl, vloss, clip };
}

/** Completion log-probs (and values) of every rollout under `params`, without gradients. */
export async function scorePass(
  inp: UpdateInputs,
  params: Params,
  chunks: number[][],
  temperature: number,
  head?: ValueHead,
): Promise<{ logp: number[][]; values: number[][] }> {
  const logp: number[][] = [], values: number[][] = [];
  for (const idx of chunks) {
    const b = padBatch(idx.map((i) => inp.seqs[i]), idx.map((i) => inp.starts[i] + 1), inp.pad);
    const out = tf.tidy(() => policyPass(inp.model, params, b, temperature, head));
    const lp = (await out.logp.array()) as number[][];
    const v = out.values ? ((await out.values.array()) as number[][]) : undefined;
    tf.dispose([out.logp, ...(out.values ? [out.values] : [])]);
    idx.forEach((i, k) => {
      const s = inp.starts[i], e = s + inp.lens[i];
      logp.push(lp[k].slice(s, e));
      if (v) values.push(v[k].slice(s, e));
    });
  }
  return { logp, values };
}
