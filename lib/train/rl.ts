/**
 * The RL loop: GRPO (DeepSeekMath, arXiv 2402.03300; CRAFT's optimiser, arXiv 2603.17305)
 * and PPO with GAE and a value head (arXiv 1707.06347; AlphaAlign's optimiser, arXiv
 * 2507.14987), whose rewards may read the policy's hidden states and return per-token
 * rewards (SCIENCE.md sections 2, 3 and 6). Structure and metric names follow TRL's
 * GRPOTrainer / PPOTrainer.
 *
 * One step: seeded prompt sample (+ an optional small dose of extra prompts) -> `groupSize`
 * rollouts each (KV cache; the hidden states the rewards list are captured during
 * generation) -> rewards (each logged) -> advantages (`advantages.ts`) -> `ppoEpochs` passes
 * of clipped-ratio updates against the rollout log-probs (recomputed with the same forward
 * pass at the same temperature), k3 KL to a frozen reference copy (a loss term, as verl's
 * `use_kl_loss`, for both algorithms), loss on completion tokens only; AdamW + clipping.
 * Log-probs are those of the tempered distribution before top-p truncation, as in TRL.
 * Checkpoints, exact resumption and the NaN guard mirror `sft.ts`.
 *
 * @module
 */

import { trainableVariables } from "../model/lora.ts";
import * as tf from "@tensorflow/tfjs-core";
import * as aq from "arquero";
import { join } from "node:path";
import type { Model } from "../model/model.ts";
import { encodePrompts, type GenerateResult } from "../model/generate.ts";
import { forward } from "../model/transformer.ts";
import type { Params } from "../model/weights.ts";
import type { PromptRow } from "../data/schema.ts";
import type { Compass } from "../compass/compass.ts";
import { makeRng } from "../data/rng.ts";
import { isRefusalText } from "../eval/refusal.ts";
import { plotCurves } from "../viz/figure.ts";
import { figureBundle, JUPYTER_DISPLAY, type MimeBundle, tableBundle } from "../viz/display.ts";
import { Progress } from "../viz/progress.ts";
import { writeDirAtomic, writeJsonAtomic } from "../io/atomic.ts";
import { saveModel } from "../model/save.ts";
import { paramsFromCheckpoint } from "../model/load.ts";
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../model/safetensors.ts";
import { AdamW, clipByGlobalNorm } from "./adamw.ts";
import { padBatch, type TokenBatch, tokenLogprobs } from "./loss.ts";
import { batchOrder } from "./sft.ts";
import {
  grpoTokenAdvantages,
  isClipped,
  placeRewards,
  ppoTokenAdvantages,
  sampleVariance,
} from "./advantages.ts";
import {
  evaluateRewards,
  type GroupMember,
  type Reward,
  type RewardContext,
  type RewardScores,
} from "./rewards.ts";

/** RL settings; defaults follow the papers (CRAFT's GRPO, TRL) unless noted. */
export interface RLOptions {
  /** GRPO (group-normalised advantages) or PPO (GAE + value head). */
  algorithm: "grpo" | "ppo";
  /** Training prompts (rows with labels), an array or an arquero table. */
  prompts: readonly PromptRow[] | { objects(): object[] };
  /** Reward terms; the total is `sum weight * value`. */
  rewards: Reward[];
  /** Optimiser steps (one batch of rollouts each). */
  steps: number;
  /** Prompts per step. @default 8 */
  promptsPerStep?: number;
  /** Rollouts per prompt (CRAFT: 8). @default 8 */
  groupSize?: number;
  /** Sampling temperature, also used for the training log-probs (CRAFT: 0.6). @default 0.6 */
  temperature?: number;
  /** Nucleus sampling (CRAFT: 0.95). @default 0.95 */
  topP?: number;
  /** Top-k sampling (0 = off). @default 0 */
  topK?: number;
  /** @default 32 */
  maxNewTokens?: number;
  /** Learning rate: 1e-6..1e-5 for real chat models; tiny SafetyWorld models need ~1e-4..1e-3. @default 1e-5 */
  lr?: number;
  /** AdamW decoupled weight decay (matrices only). @default 0 */
  weightDecay?: number;
  /** Global gradient-norm clip (0 = off). @default 1 */
  clip?: number;
  /** KL coefficient (k3 estimator; CRAFT: 0.01); 0 disables. @default 0.01 */
  klCoef?: number;
  /** "clone": a frozen copy of the starting weights; "none" disables the KL term. @default "clone" */
  reference?: "clone" | "none";
  /** PPO clip range of the ratio. @default 0.2 */
  clipEps?: number;
  /** Passes over each batch of rollouts. @default 1 */
  ppoEpochs?: number;
  /** Rollouts per gradient update. @default all rollouts of the step */
  minibatch?: number;
  /** "token": mean over all completion tokens of the minibatch (TRL's dapo); "sequence": per-sequence mean, then mean (original GRPO). @default "token" */
  lossAggregation?: "token" | "sequence";
  /** GRPO: divide by the group std. @default true */
  scaleByStd?: boolean;
  /** PPO value head (a linear head on the last block's hidden state, its own params, features detached): learning rate. @default lr */
  valueLr?: number;
  /** PPO value-loss coefficient (TRL vf_coef). @default 0.1 */
  vfCoef?: number;
  /** PPO value clip range. @default 0.2 */
  valueClip?: number;
  /** Discount. @default 1 */
  gamma?: number;
  /** GAE lambda (PPO). @default 0.95 */
  lambda?: number;
  /** true: reward arrays stay on their tokens; false: each array's sum moves to the last token (ablation). @default true */
  perTokenRewards?: boolean;
  /** A small dose of extra prompts (e.g. trait scenarios) in every step: `share` of promptsPerStep, added (or replacing main prompts, compute-matched). */
  mix?: { rows: readonly PromptRow[]; share: number; replace?: boolean };
  /** Passed to every reward as `ctx.compass`. */
  compass?: Compass;
  /** Judge of the `refusal_rate` metric. @default isRefusalText */
  refusalJudge?: (text: string) => boolean;
  /** Rows per generation batch. @default 64 */
  generationBatchSize?: number;
  /** Seed of prompt order and sampling. @default 0 */
  seed?: number;
  /** Folder for checkpoints (model/, optimizer, value head, reference, trainer_state.json). */
  checkpointDir?: string;
  /** Steps between checkpoints (and one at the end). @default 50 */
  checkpointEvery?: number;
  /** Continue from `checkpointDir` when it holds a checkpoint. @default false */
  resume?: boolean;
  /** Stop after this many steps in this call (tests of resumption). */
  stopAfter?: number;
  /** Called after every step with its log row and rollouts. */
  onStep?: (row: RLLogRow, rollouts: RolloutRecord[]) => void;
  /** Progress-bar label. @default algorithm */
  label?: string;
}

/** One step's metrics (TRL keys): reward, rewards/<name>/mean, kl, entropy, clip_ratio, ... */
export type RLLogRow = Record<string, number>;

/** One rollout as the step saw it (for inspection: where rewards and advantages landed). */
export interface RolloutRecord {
  /** The prompt row's id. */
  promptId: string;
  /** Decoded completion. */
  completion: string;
  /** Completion token ids. */
  completionIds: number[];
  /** Unweighted value of each reward (summed over tokens). */
  rewards: Record<string, number>;
  /** Weighted per-token reward (scalars on the last token). */
  tokenRewards: number[];
  /** Per-token advantages used in the loss. */
  advantages: number[];
  /** PPO: per-token value targets (GAE advantages + old values). */
  returns?: number[];
  /** PPO: the value head's estimates at rollout time. */
  values?: number[];
}

/** What {@link trainRL} returns; renders as curves + table in Jupyter. */
export interface RunLog {
  /** Per-step metrics. */
  rows: RLLogRow[];
  /** The metrics as an arquero table. */
  table(): aq.ColumnTable;
  /** The resolved, serialisable options (seed included). */
  options: Record<string, unknown>;
  /** Jupyter display: plotly curves and the table. */
  [JUPYTER_DISPLAY](): MimeBundle;
}

/** Identity whose gradient is zero: old log-probs of an on-policy step, value-head features. */
const detach = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

/** PPO's value head: `V = h W + b` on the last block's hidden state (W [d, 1], b [1]). */
interface ValueHead {
  w: tf.Variable;
  b: tf.Variable;
}

/** What a checkpoint holds besides the log. */
interface TrainerParts {
  model: Model;
  opt: AdamW;
  vopt: AdamW;
  head?: ValueHead;
  ref?: Params;
  algo: string;
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

async function adamTensors(opt: AdamW, vars: [string, tf.Variable][]) {
  const s = await opt.getState();
  const out: Record<string, TensorToWrite> = {};
  if (s.m.length === 0) return { step: s.step, tensors: out };
  vars.forEach(([n, v], i) => {
    out[`m.${n}`] = { shape: v.shape, data: s.m[i] };
    out[`v.${n}`] = { shape: v.shape, data: s.v[i] };
  });
  return { step: s.step, tensors: out };
}

function headVars(h: ValueHead): [string, tf.Variable][] {
  return [["value_head.weight", h.w], ["value_head.bias", h.b]];
}

/** Writes model/, optimizer.safetensors, value_head.safetensors, reference.safetensors, trainer_state.json. */
async function saveRLCheckpoint(
  dir: string,
  s: TrainerParts,
  state: { step: number; history: RLLogRow[]; options: Record<string, unknown> },
): Promise<void> {
  const named = [...s.model.params.entries()];
  const o = await adamTensors(s.opt, named);
  const vo = s.head ? await adamTensors(s.vopt, headVars(s.head)) : undefined;
  const weights = async (vs: [string, tf.Variable][]) =>
    Object.fromEntries(
      await Promise.all(vs.map(async ([n, v]) => [n, { shape: v.shape, data: await v.data() }])),
    ) as Record<string, TensorToWrite>;
  await writeDirAtomic(dir, async (tmp) => {
    await saveModel(s.model, join(tmp, "model"));
    await writeSafetensors(join(tmp, "optimizer.safetensors"), o.tensors, { step: `${o.step}` });
    if (s.head && vo) {
      const t = { ...(await weights(headVars(s.head))), ...vo.tensors };
      await writeSafetensors(join(tmp, "value_head.safetensors"), t, { step: `${vo.step}` });
    }
    if (s.ref) {
      await writeSafetensors(join(tmp, "reference.safetensors"), await weights([...s.ref]));
    }
    await writeJsonAtomic(join(tmp, "trainer_state.json"), { algorithm: s.algo, ...state });
  });
}

function restoreAdam(
  opt: AdamW,
  vars: [string, tf.Variable][],
  file: Awaited<ReturnType<typeof readSafetensors>>,
) {
  if (!file.tensors.has(`m.${vars[0][0]}`)) return;
  const state = {
    step: Number(file.metadata.step),
    m: vars.map(([n]) => file.tensors.get(`m.${n}`)!.data),
    v: vars.map(([n]) => file.tensors.get(`v.${n}`)!.data),
  };
  untracked(() => opt.setState(vars.map(([, v]) => v), state));
}

/** Restores a checkpoint written by {@link saveRLCheckpoint}; undefined when there is none. */
async function loadRLCheckpoint(
  dir: string,
  s: TrainerParts,
): Promise<{ step: number; history: RLLogRow[] } | undefined> {
  const statePath = join(dir, "trainer_state.json");
  let state: { algorithm: string; step: number; history: RLLogRow[] };
  try {
    state = JSON.parse(await Deno.readTextFile(statePath));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot resume RL from ${statePath}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (state.algorithm !== s.algo) {
    throw new Error(
      `Cannot resume: ${statePath} field 'algorithm' is ${state.algorithm}, this run is ${s.algo}; ` +
        `use another checkpointDir or the same algorithm`,
    );
  }
  const assign = (target: Map<string, tf.Variable>, file: Map<string, { data: Float32Array }>) => {
    for (const [n, v] of target) {
      const rec = file.get(n);
      if (!rec) throw new Error(`Cannot resume from ${dir}: tensor '${n}' is missing`);
      tf.tidy(() => v.assign(tf.tensor(rec.data, v.shape)));
    }
  };
  const weights = await readSafetensors(join(dir, "model", "model.safetensors"));
  const fresh = paramsFromCheckpoint(s.model.config, weights, join(dir, "model"));
  for (const [n, v] of s.model.params) v.assign(fresh.get(n)!);
  tf.dispose([...fresh.values()]);
  restoreAdam(
    s.opt,
    [...s.model.params],
    await readSafetensors(join(dir, "optimizer.safetensors")),
  );
  if (s.head) {
    const f = await readSafetensors(join(dir, "value_head.safetensors"));
    assign(new Map(headVars(s.head)), f.tensors);
    restoreAdam(s.vopt, headVars(s.head), f);
  }
  if (s.ref) {
    const path = join(dir, "reference.safetensors");
    const f = await readSafetensors(path).catch((err) => {
      throw new Error(
        `Cannot resume with a KL term: ${path} is missing or unreadable (the run was saved ` +
          `without a reference); resume with reference "none" or klCoef 0`,
        { cause: err },
      );
    });
    assign(s.ref, f.tensors);
  }
  return { step: state.step, history: state.history };
}

/** Runs `make` (which creates variables) in a tidy, so the tensors they were made from are freed. */
function untracked<T>(make: () => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    out = make();
  });
  return out!;
}

function rowsOf(p: RLOptions["prompts"]): PromptRow[] {
  return Array.isArray(p) ? p.slice() : ((p as { objects(): object[] }).objects() as PromptRow[]);
}

function meanOf(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/** Serialisable options for the run's record (functions and rows left out). */
function recordOptions(o: RLOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (["number", "string", "boolean"].includes(typeof v)) out[k] = v;
  }
  out.rewards = o.rewards.map((r) => ({ name: r.name, weight: r.weight, layers: r.layers }));
  if (o.mix) out.mix = { share: o.mix.share, replace: !!o.mix.replace, rows: o.mix.rows.length };
  out.seed = o.seed ?? 0;
  return out;
}

/** Wraps log rows as a {@link RunLog} (curves of reward, kl, entropy... and the table). */
export function makeRunLog(rows: RLLogRow[], options: Record<string, unknown>): RunLog {
  return {
    rows,
    options,
    table: () => aq.from(rows),
    [JUPYTER_DISPLAY]: () => {
      const title = `RL (${options.algorithm ?? "?"}): ${rows.length} steps`;
      const table = tableBundle(rows, { title });
      if (rows.length === 0) return table;
      const y = ["reward", "kl", "entropy", "clip_ratio", "refusal_rate", "completion_length"]
        .filter((k) => k in rows[0]);
      const fig = figureBundle(plotCurves(rows, { x: "step", y, title: "RL training curves" }));
      return {
        "text/html": `${fig["text/html"]}\n${table["text/html"]}`,
        "text/plain": table["text/plain"],
      };
    },
  };
}

/** The step's prompts: the seeded main sample plus the mixed-in dose. */
function sampleRows(
  prompts: PromptRow[],
  order: (step: number) => number[],
  step: number,
  perStep: number,
  mix: RLOptions["mix"],
  rng: ReturnType<typeof makeRng>,
): PromptRow[] {
  const rows = order(step).map((i) => prompts[i]);
  if (!mix || mix.rows.length === 0 || !(mix.share > 0)) return rows;
  const k = mix.share * perStep;
  const n = Math.floor(k) + (rng.next() < k - Math.floor(k) ? 1 : 0);
  const extra = rng.shuffle(mix.rows).slice(0, n);
  return [...(mix.replace ? rows.slice(0, Math.max(0, rows.length - n)) : rows), ...extra];
}

/** Everything one minibatch update reads. */
interface UpdateInputs {
  model: Model;
  head?: ValueHead;
  ref?: Params;
  seqs: number[][];
  /** Index of each rollout's first completion log-prob in the [T-1] axis. */
  starts: number[];
  lens: number[];
  adv: number[][];
  oldLp?: number[][];
  oldV: number[][];
  refLp: number[][];
  ret?: number[][];
  pad: number;
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

/** One gradient update on rollouts `idx`; throws (before updating) on a non-finite loss. */
async function update(
  inp: UpdateInputs,
  idx: number[],
  o: RLOptions,
  opt: AdamW,
  vopt: AdamW,
): Promise<{ loss: number; norm: number; kl: number; vloss: number; clip: number }> {
  const { model, head, ref, starts } = inp;
  const eps = o.clipEps ?? 0.2, vclip = o.valueClip ?? 0.2, temperature = o.temperature ?? 0.6;
  const klCoef = ref ? o.klCoef ?? 0.01 : 0;
  const b = padBatch(idx.map((i) => inp.seqs[i]), idx.map((i) => starts[i] + 1), inp.pad);
  const t1 = b.ids[0].length - 1;
  const side: Record<string, tf.Tensor> = {};
  const lossFn = () => {
    const { logp, values } = policyPass(model, model.params, b, temperature, head);
    const mask = tf.tensor2d(b.lossMask.map((r) => r.slice(1))); // [b, T-1]
    const A = grid(idx, t1, starts, inp.adv);
    const old = inp.oldLp ? grid(idx, t1, starts, inp.oldLp) : detach(logp);
    const ratio = tf.exp(tf.sub(logp, old));
    const clipped = tf.clipByValue(ratio, 1 - eps, 1 + eps);
    let perTok: tf.Tensor = tf.maximum(tf.neg(tf.mul(A, ratio)), tf.neg(tf.mul(A, clipped)));
    const count = tf.sum(mask, 1); // [b]
    const reduce = (x: tf.Tensor) =>
      (o.lossAggregation ?? "token") === "token"
        ? tf.div(tf.sum(tf.mul(x, mask)), tf.maximum(tf.sum(count), 1))
        : tf.mean(tf.div(tf.sum(tf.mul(x, mask), 1), tf.maximum(count, 1)));
    side.ratio = tf.keep(ratio);
    if (ref) {
      const d = tf.sub(grid(idx, t1, starts, inp.refLp), logp); // log pi_ref - log pi
      const kl = tf.sub(tf.sub(tf.exp(d), d), 1); // k3
      side.kl = tf.keep(tf.div(tf.sum(tf.mul(kl, mask)), tf.maximum(tf.sum(mask), 1)));
      perTok = tf.add(perTok, tf.mul(kl, klCoef));
    }
    let loss = reduce(perTok);
    if (head && values) {
      const vOld = grid(idx, t1, starts, inp.oldV), R = grid(idx, t1, starts, inp.ret!);
      const vc = tf.add(vOld, tf.clipByValue(tf.sub(values, vOld), -vclip, vclip));
      const vl = tf.mul(tf.maximum(tf.square(tf.sub(values, R)), tf.square(tf.sub(vc, R))), 0.5);
      side.vloss = tf.keep(reduce(vl));
      loss = tf.add(loss, tf.mul(side.vloss, o.vfCoef ?? 0.1));
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
  const cl = tf.tidy(() => clipByGlobalNorm(gl, o.clip ?? 1));
  const ch = hg.length ? tf.tidy(() => clipByGlobalNorm(hg, o.clip ?? 1)) : { grads: [], norm: 0 };
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
  const r = idx.flatMap((i, k) => ratio[k].slice(starts[i], starts[i] + inp.lens[i]));
  const clippedShare = meanOf(isClipped(r, idx.flatMap((i) => inp.adv[i]), eps).map(Number));
  return { loss, norm: cl.norm, kl, vloss, clip: clippedShare };
}

/** Completion log-probs (and values) of every rollout under `params`, without gradients. */
async function scorePass(
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

/** One step's rollouts: G consecutive rows per prompt, and what the rewards read. */
interface Rollouts {
  rows: PromptRow[];
  promptIds: number[][];
  gen: GenerateResult;
  lens: number[];
  contexts: RewardContext[];
}

/** Samples the step's prompts, generates G completions each and builds the reward contexts. */
async function rollout(
  model: Model,
  opts: RLOptions,
  batchRows: PromptRow[],
  step: number,
  seed: number,
  requested: number[],
): Promise<Rollouts> {
  const c = model.config, G = opts.groupSize ?? 8, maxNew = opts.maxNewTokens ?? 32;
  const layerOf = (l: number) => (l < 0 ? c.nLayer + 1 + l : l);
  const layers = [...new Set(requested.map(layerOf))];
  const pIds = encodePrompts(model, { prompts: batchRows.map((r) => r.prompt) });
  pIds.forEach((p, i) => {
    if (c.arch === "gpt2" && p.length + maxNew > c.maxPositions) {
      throw new Error(
        `trainRL: prompt ${batchRows[i].id} has ${p.length} tokens; with maxNewTokens ` +
          `${maxNew} it exceeds the model's ${c.maxPositions} positions`,
      );
    }
  });
  const rows = batchRows.flatMap((r) => new Array<PromptRow>(G).fill(r));
  const promptIds = pIds.flatMap((p) => new Array<number[]>(G).fill(p));
  const gen = await model.generate({
    inputIds: promptIds,
    temperature: opts.temperature ?? 0.6,
    topP: opts.topP ?? 0.95,
    topK: opts.topK ?? 0,
    maxNewTokens: maxNew,
    seed,
    returnHiddenStates: layers.length ? layers : false,
    batchSize: opts.generationBatchSize ?? 64,
  });
  const contexts: RewardContext[] = [];
  for (let g = 0; g < rows.length; g += G) {
    const group: GroupMember[] = gen.text.slice(g, g + G)
      .map((text, k) => ({ text, ids: gen.tokenIds[g + k] }));
    for (let k = 0; k < G; k++) {
      const i = g + k, row = rows[i];
      const hidden: Record<number, Float32Array> = {};
      for (const l of requested) hidden[l] = hidden[layerOf(l)] = gen.hiddenStates![layerOf(l)][i];
      contexts.push({
        row,
        prompt: row.prompt,
        completion: gen.text[i],
        completionIds: gen.tokenIds[i],
        group,
        groupIndex: k,
        hidden: layers.length ? hidden : undefined,
        compass: opts.compass,
        step,
      });
    }
  }
  return { rows, promptIds, gen, lens: gen.tokenIds.map((t) => t.length), contexts };
}

type UpdateStats = Awaited<ReturnType<typeof update>>;

/** The step's log row (TRL's metric names). */
function stepMetrics(
  step: number,
  opts: RLOptions,
  r: Rollouts,
  scores: RewardScores,
  tokenRewards: number[][],
  stats: UpdateStats[],
  extra: { kl: boolean; value: boolean; lr: number; t0: number },
): RLLogRow {
  const G = opts.groupSize ?? 8, N = r.rows.length;
  const totals = tokenRewards.map((x) => x.reduce((a, b) => a + b, 0));
  let zeroStd = 0;
  for (let g = 0; g < N; g += G) if (sampleVariance(totals.slice(g, g + G)) === 0) zeroStd++;
  const row: RLLogRow = { step: step + 1, reward: meanOf(totals) };
  row.reward_std = Math.sqrt(sampleVariance(totals));
  for (const w of opts.rewards) row[`rewards/${w.name}/mean`] = meanOf(scores.components[w.name]);
  if (extra.kl) row.kl = meanOf(stats.map((s) => s.kl));
  row.entropy = meanOf(r.gen.logprobs.flat().map((x) => -x));
  row.clip_ratio = meanOf(stats.map((s) => s.clip));
  row.completion_length = meanOf(r.lens);
  const judge = opts.refusalJudge ?? ((t: string) => isRefusalText(t));
  row.refusal_rate = meanOf(r.gen.text.map((t) => (judge(t) ? 1 : 0)));
  row.frac_reward_zero_std = zeroStd / (N / G);
  row.loss = meanOf(stats.map((s) => s.loss));
  if (extra.value) row.value_loss = meanOf(stats.map((s) => s.vloss));
  row.grad_norm = meanOf(stats.map((s) => s.norm));
  row.learning_rate = extra.lr;
  row.seconds = (performance.now() - extra.t0) / 1000;
  return row;
}

function checkOptions(model: Model, opts: RLOptions, prompts: PromptRow[]): void {
  const fail = (msg: string) => {
    throw new Error(`trainRL: ${msg}`);
  };
  const nLayer = model.config.nLayer, G = opts.groupSize ?? 8, t = opts.temperature ?? 0.6;
  if (opts.algorithm !== "grpo" && opts.algorithm !== "ppo") {
    fail(`algorithm is '${opts.algorithm}'; use "grpo" or "ppo"`);
  }
  if (!(Number.isInteger(opts.steps) && opts.steps >= 0)) fail(`steps is ${opts.steps}; use >= 0`);
  if (prompts.length === 0) fail("opts.prompts is empty; pass prompt rows");
  if (opts.rewards.length === 0) fail("opts.rewards is empty; pass at least one Reward");
  if (!(t > 0)) fail(`temperature is ${t}; RL samples, use > 0`);
  if (!((opts.maxNewTokens ?? 32) >= 1)) fail("maxNewTokens must be >= 1");
  if (!(Number.isInteger(G) && G >= 1)) fail(`groupSize is ${G}; use an integer >= 1`);
  if (opts.algorithm === "grpo" && G < 2) fail(`GRPO needs groupSize >= 2, got ${G}`);
  for (const r of opts.rewards) {
    for (const l of r.layers ?? []) {
      const k = l < 0 ? nLayer + 1 + l : l;
      if (!(k >= 0 && k <= nLayer)) {
        fail(`reward '${r.name}' reads layer ${l}; the model has layers 0..${nLayer}`);
      }
    }
  }
}

/**
 * Trains `model` in place with GRPO or PPO on `opts.prompts` and `opts.rewards`; see
 * {@link RLOptions}. A non-finite reward or loss stops the run with a clear error before
 * the update, leaving the last checkpoint intact.
 *
 * @example
 * ```ts
 * const log = await trainRL(model, {
 *   algorithm: "grpo", prompts, steps: 50, lr: 1e-4,
 *   rewards: [craftReward({ compass, textJudge })],
 * });
 * log.table(); // reward, rewards/craft/mean, kl, entropy, clip_ratio, ...
 * ```
 */
export async function trainRL(model: Model, opts: RLOptions): Promise<RunLog> {
  if (model.loraConfig && opts.checkpointDir) {
    throw new Error(
      "trainRL: checkpoints of a model with LoRA adapters are not supported yet; train without " +
        "checkpointDir and save the adapters with saveLora(model, dir)",
    );
  }
  const prompts = rowsOf(opts.prompts);
  checkOptions(model, opts, prompts);
  const c = model.config, algo = opts.algorithm, seed = opts.seed ?? 0;
  const P = opts.promptsPerStep ?? 8, G = opts.groupSize ?? 8;
  const temperature = opts.temperature ?? 0.6, perToken = opts.perTokenRewards ?? true;
  const requested = [...new Set(opts.rewards.flatMap((r) => r.layers ?? []))];
  const options = recordOptions(opts);
  const parts: TrainerParts = {
    model,
    algo,
    opt: new AdamW({ lr: opts.lr ?? 1e-5, weightDecay: opts.weightDecay ?? 0 }),
    vopt: new AdamW({ lr: opts.valueLr ?? opts.lr ?? 1e-5, weightDecay: 0 }),
    head: algo === "ppo"
      ? untracked(() => ({
        w: tf.variable(tf.zeros([c.dModel, 1])),
        b: tf.variable(tf.zeros([1])),
      }))
      : undefined,
    ref: opts.reference !== "none" && (opts.klCoef ?? 0.01) > 0
      ? untracked(() => model.cloneParams())
      : undefined,
  };
  const order = batchOrder(prompts.length, Math.min(P, prompts.length), seed);
  const bar = new Progress({ total: opts.steps, label: opts.label ?? algo, unit: "step" });
  let history: RLLogRow[] = [];
  let start = 0, lastGood = "none yet";
  const stopped = (step: number) => (err: unknown) =>
    Promise.reject(
      new Error(
        `RL stopped at step ${step + 1}: ${(err as Error).message}. The update was not applied` +
          (opts.checkpointDir
            ? `; the last good checkpoint (${lastGood}) is in ${opts.checkpointDir}`
            : "") +
          ". Fix the reward or lower the learning rate, then resume.",
        { cause: err },
      ),
    );
  try {
    if (opts.resume && opts.checkpointDir) {
      const st = await loadRLCheckpoint(opts.checkpointDir, parts);
      if (st) ({ step: start, history } = st), lastGood = `step ${start}`;
    }
    const stop = Math.min(opts.steps, start + (opts.stopAfter ?? Infinity));
    bar.tick(start);
    for (let step = start; step < stop; step++) {
      const t0 = performance.now();
      // Every random choice of a step comes from its own seeded stream (exact resumption).
      const rng = makeRng((seed * 1_000_003 + step * 7919 + 1) >>> 0);
      const batchRows = sampleRows(prompts, order, step, P, opts.mix, rng);
      const r = await rollout(model, opts, batchRows, step, rng.int(2 ** 31), requested);
      const scores = await evaluateRewards(opts.rewards, r.contexts, r.lens, { perToken })
        .catch(stopped(step));
      const tokenRewards = placeRewards(scores.outcome, scores.process, r.lens);
      // Old log-probs / values and reference log-probs, then advantages.
      const N = r.rows.length, mbSize = Math.min(N, Math.max(1, opts.minibatch ?? N));
      const epochs = Math.max(1, opts.ppoEpochs ?? 1), single = epochs === 1 && mbSize === N;
      const chunks: number[][] = [];
      for (let s = 0; s < N; s += mbSize) {
        chunks.push(r.rows.slice(s, s + mbSize).map((_, k) => s + k));
      }
      const inp: UpdateInputs = {
        model,
        head: parts.head,
        ref: parts.ref,
        seqs: r.rows.map((_, i) => [...r.promptIds[i], ...r.gen.tokenIds[i]]),
        starts: r.promptIds.map((p) => p.length - 1),
        lens: r.lens,
        adv: [],
        oldV: [],
        refLp: [],
        pad: model.tokenizer.padId ?? c.padTokenId ?? 0,
      };
      if (parts.ref) inp.refLp = (await scorePass(inp, parts.ref, chunks, temperature)).logp;
      if (!single || parts.head) {
        const old = await scorePass(inp, model.params, chunks, temperature, parts.head);
        inp.oldLp = single ? undefined : old.logp; // single update: the detached current pass
        inp.oldV = old.values;
      }
      const gamma = opts.gamma ?? 1;
      if (algo === "grpo") {
        const proc = perToken ? scores.process : undefined;
        const scaleByStd = opts.scaleByStd ?? true;
        inp.adv = grpoTokenAdvantages(scores.outcome, proc, r.lens, G, { gamma, scaleByStd });
      } else {
        const lambda = opts.lambda ?? 0.95;
        const p = ppoTokenAdvantages(tokenRewards, inp.oldV, { gamma, lambda });
        inp.adv = p.advantages;
        inp.ret = p.returns;
      }
      // Updates: ppoEpochs passes over shuffled minibatches.
      const stats: UpdateStats[] = [];
      for (let e = 0; e < epochs; e++) {
        const perm = single ? chunks[0] : rng.shuffle(r.rows.map((_, i) => i));
        for (let s = 0; s < N; s += mbSize) {
          const idx = perm.slice(s, s + mbSize);
          stats.push(await update(inp, idx, opts, parts.opt, parts.vopt).catch(stopped(step)));
        }
      }
      const row = stepMetrics(step, opts, r, scores, tokenRewards, stats, {
        kl: !!parts.ref,
        value: !!parts.head,
        lr: parts.opt.opts.lr,
        t0,
      });
      history.push(row);
      opts.onStep?.(
        row,
        r.rows.map((pr, i) => ({
          promptId: pr.id,
          completion: r.gen.text[i],
          completionIds: r.gen.tokenIds[i],
          rewards: Object.fromEntries(
            opts.rewards.map((w) => [w.name, scores.components[w.name][i]]),
          ),
          tokenRewards: tokenRewards[i],
          advantages: inp.adv[i],
          ...(inp.ret ? { returns: inp.ret[i], values: inp.oldV[i] } : {}),
        })),
      );
      bar.tick(1, { reward: Number(row.reward.toFixed(3)) });
      const every = opts.checkpointEvery ?? 50;
      if (opts.checkpointDir && ((step + 1) % every === 0 || step + 1 === stop)) {
        await saveRLCheckpoint(opts.checkpointDir, parts, { step: step + 1, history, options });
        lastGood = `step ${step + 1}`;
      }
    }
  } finally {
    bar.done();
    parts.opt.dispose();
    parts.vopt.dispose();
    if (parts.head) tf.dispose([parts.head.w, parts.head.b]);
    if (parts.ref) tf.dispose([...parts.ref.values()]);
  }
  return makeRunLog(history, options);
}
