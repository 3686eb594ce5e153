/**
 * The settings of `trainRL` (GRPO, DeepSeekMath arXiv 2402.03300; PPO, arXiv 1707.06347),
 * TRL-style: one typed object, every field with its default and, where it comes from a
 * paper, the paper. {@link resolveRLOptions} applies every default once (the rest of the RL
 * loop reads {@link ResolvedRLOptions} and never repeats a default); also the checks that
 * fail a run before any work, and the serialisable record of the options that a run log and
 * its checkpoints carry.
 *
 * @module
 */

import type { Model } from "../../model/model.ts";
import type { PromptRow } from "../../data/schema.ts";
import type { Compass } from "../../compass/compass.ts";
import type { RLMonitor } from "./monitor.ts";
import type { RolloutPerturbOptions } from "../perturb.ts";
import type { Reward } from "../rewards.ts";
import type { RLLogRow, RolloutRecord } from "./log.ts";
import { isRefusalText } from "../../judges/refusal.ts";
import { checkAdamWOptions, checkClip } from "../../optim/adamw.ts";

/**
 * Trajectory training as a rollout option (Park & Kim, arXiv 2606.04778; SCIENCE.md
 * section 5): a share of rollouts get a short span forced into their answer at a sampled
 * generation step, fed through the KV cache like sampled tokens. The forced tokens are
 * excluded from the policy-gradient loss and the KL term (the policy is not credited for
 * text it did not choose); rewards see the full text (and `ctx.forced`), so a reward for
 * safe text rewards recovery after the injection. The paper's schedule is unpublished:
 * every part is a parameter (see `perturb.ts`'s {@link RolloutPerturbOptions}: `rate`,
 * `positions`, `length`, `source`, `labels`, `harmfulTexts`, `affirmative`,
 * `harmfulOffset`). Draws are seeded by (`seed`, step, rollout index), so a resumed run
 * injects the same spans.
 */
export interface RLPerturbOptions extends RolloutPerturbOptions<PromptRow> {
  /** Seed of the span draws. @default the run's `seed` */
  seed?: number;
  /**
   * Uniform positions are drawn in [0, maxStep] (generation steps; fractions are of
   * maxStep); clamped to maxNewTokens - 1 so a span can land. A span drawn after the step
   * where a rollout ended (its end-of-sequence token) is not injected: the logged
   * `perturb/rate` counts the rollouts that really got one. @default min(16, maxNewTokens - 1)
   */
  maxStep?: number;
}

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
  /** Most new tokens per rollout. @default 32 */
  maxNewTokens?: number;
  /** Learning rate: 1e-6..1e-5 for real chat models; tiny SafetyWorld models need ~1e-4..1e-3. @default 1e-5 */
  lr?: number;
  /** AdamW decoupled weight decay (matrices only). @default 0 */
  weightDecay?: number;
  /** Global gradient-norm clip (0 = off). @default 1 */
  clip?: number;
  /** KL coefficient (k3 estimator; CRAFT: 0.01); 0 disables. @default 0.01 */
  klCoef?: number;
  /** "clone": a frozen copy of the starting weights (of the adapters only, with LoRA); "none" disables the KL term. @default "clone" */
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
  /** Mid-sequence perturbations of a share of rollouts (trajectory training); off when absent. */
  perturb?: RLPerturbOptions;
  /** Passed to every reward as `ctx.compass`. */
  compass?: Compass;
  /** Judge of the `refusal_rate` metric. @default isRefusalText */
  refusalJudge?: (text: string) => boolean;
  /** Rows per generation batch. @default 64 */
  generationBatchSize?: number;
  /** Seed of prompt order and sampling. @default 0 */
  seed?: number;
  /**
   * Folder for checkpoints: model/ (or adapter/ in PEFT's layout when the model has LoRA
   * adapters), optimizer, value head, reference, trainer_state.json. Saved as a link to a
   * generation folder beside it, switched atomically (see lib/io/checkpoint_dir.ts).
   */
  checkpointDir?: string;
  /** Steps between checkpoints (and one at the end). @default 50 */
  checkpointEvery?: number;
  /**
   * Continue from `checkpointDir` when it holds a checkpoint (with none, the run starts at
   * step 0 and says so once; a damaged one is refused with an error naming the file). With
   * LoRA, pass the same base model with the same adapters added (`addLora`); the checkpoint
   * holds only the adapters. @default false
   */
  resume?: boolean;
  /** Stop after this many steps in this call (tests of resumption). */
  stopAfter?: number;
  /**
   * Watchers of every step (the hacking detector, a refitted compass...): their layers are
   * captured with the rewards', their numbers logged as `<name>/<key>`, their warnings
   * joined to the run's. @default []
   */
  monitors?: readonly RLMonitor[];
  /** Called after every step with its log row and rollouts. */
  onStep?: (row: RLLogRow, rollouts: RolloutRecord[]) => void;
  /** Progress-bar label. @default algorithm */
  label?: string;
}

/** The fields of {@link RLOptions} that {@link resolveRLOptions} fills with their defaults. */
type Defaulted =
  | "promptsPerStep"
  | "groupSize"
  | "temperature"
  | "topP"
  | "topK"
  | "maxNewTokens"
  | "lr"
  | "weightDecay"
  | "clip"
  | "klCoef"
  | "reference"
  | "clipEps"
  | "ppoEpochs"
  | "lossAggregation"
  | "scaleByStd"
  | "valueLr"
  | "vfCoef"
  | "valueClip"
  | "gamma"
  | "lambda"
  | "perTokenRewards"
  | "refusalJudge"
  | "generationBatchSize"
  | "seed"
  | "checkpointEvery"
  | "resume"
  | "label";

/** {@link RLOptions} with every documented default applied (what the RL loop reads). */
export type ResolvedRLOptions = RLOptions & Required<Pick<RLOptions, Defaulted>>;

/**
 * Applies every default of {@link RLOptions} once, so the rollout, the loss and the log read
 * one resolved value instead of repeating `?? 8` at each use. `minibatch` stays optional
 * (its default, every rollout of the step, is known only per step).
 *
 * @example
 * ```ts
 * import type { PromptRow } from "../../data/schema.ts";
 * import type { Reward } from "../rewards.ts";
 * declare const prompts: PromptRow[], rewards: Reward[];
 * const r = resolveRLOptions({ algorithm: "grpo", prompts, rewards, steps: 10 });
 * r.groupSize; // 8
 * r.valueLr; // = r.lr = 1e-5
 * ```
 */
export function resolveRLOptions(o: RLOptions): ResolvedRLOptions {
  const lr = o.lr ?? 1e-5;
  return {
    ...o,
    promptsPerStep: o.promptsPerStep ?? 8,
    groupSize: o.groupSize ?? 8,
    temperature: o.temperature ?? 0.6,
    topP: o.topP ?? 0.95,
    topK: o.topK ?? 0,
    maxNewTokens: o.maxNewTokens ?? 32,
    lr,
    weightDecay: o.weightDecay ?? 0,
    clip: o.clip ?? 1,
    klCoef: o.klCoef ?? 0.01,
    reference: o.reference ?? "clone",
    clipEps: o.clipEps ?? 0.2,
    ppoEpochs: o.ppoEpochs ?? 1,
    lossAggregation: o.lossAggregation ?? "token",
    scaleByStd: o.scaleByStd ?? true,
    valueLr: o.valueLr ?? lr,
    vfCoef: o.vfCoef ?? 0.1,
    valueClip: o.valueClip ?? 0.2,
    gamma: o.gamma ?? 1,
    lambda: o.lambda ?? 0.95,
    perTokenRewards: o.perTokenRewards ?? true,
    refusalJudge: o.refusalJudge ?? ((t: string) => isRefusalText(t)),
    generationBatchSize: o.generationBatchSize ?? 64,
    seed: o.seed ?? 0,
    checkpointEvery: o.checkpointEvery ?? 50,
    resume: o.resume ?? false,
    label: o.label ?? o.algorithm,
  };
}

/** The prompt rows of `opts.prompts` (an array or an arquero table). */
export function rowsOf(p: RLOptions["prompts"]): PromptRow[] {
  return Array.isArray(p) ? p.slice() : ((p as { objects(): object[] }).objects() as PromptRow[]);
}

/** Fails with "trainRL: what is wrong; how to fix it" before any work is done. */
export function checkOptions(
  model: Model,
  opts: ResolvedRLOptions,
  prompts: PromptRow[],
): void {
  const fail = (msg: string) => {
    throw new Error(`trainRL: ${msg}`);
  };
  const nLayer = model.config.nLayer, G = opts.groupSize, t = opts.temperature;
  if (opts.algorithm !== "grpo" && opts.algorithm !== "ppo") {
    fail(`algorithm is '${opts.algorithm}'; use "grpo" or "ppo"`);
  }
  if (!(Number.isInteger(opts.steps) && opts.steps >= 0)) fail(`steps is ${opts.steps}; use >= 0`);
  if (prompts.length === 0) fail("opts.prompts is empty; pass prompt rows");
  if (opts.rewards.length === 0) fail("opts.rewards is empty; pass at least one Reward");
  if (!(t > 0)) fail(`temperature is ${t}; RL samples, use > 0`);
  if (!(opts.maxNewTokens >= 1)) fail("maxNewTokens must be >= 1");
  checkAdamWOptions({ lr: opts.lr, weightDecay: opts.weightDecay }, "trainRL");
  if (!(opts.valueLr >= 0 && opts.valueLr <= 1)) {
    fail(`valueLr is ${opts.valueLr}; use a learning rate in [0, 1] for the value head`);
  }
  checkClip(opts.clip, "trainRL");
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
  const ms = opts.perturb?.maxStep;
  if (ms !== undefined && !(Number.isInteger(ms) && ms >= 0)) {
    fail(`perturb.maxStep is ${ms}; use a whole number of generation steps >= 0`);
  }
}

/** Serialisable options for the run's record (functions and rows left out). */
export function recordOptions(o: RLOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (["number", "string", "boolean"].includes(typeof v)) out[k] = v;
  }
  out.rewards = o.rewards.map((r) => ({ name: r.name, weight: r.weight, layers: r.layers }));
  if (o.mix) out.mix = { share: o.mix.share, replace: !!o.mix.replace, rows: o.mix.rows.length };
  if (o.perturb) {
    const p = o.perturb;
    out.perturb = {
      rate: p.rate ?? 0.5,
      positions: p.positions ?? "uniform",
      length: p.length ?? [1, 5],
      source: p.source ?? "harmful",
      labels: p.labels ?? ["harmful"],
      seed: p.seed ?? o.seed ?? 0,
      maxStep: perturbMaxStep(o),
      ...(p.source === "affirmative"
        ? { affirmative: p.affirmative ?? "sure , here is how ." }
        : {}),
      ...((p.source ?? "harmful") === "harmful"
        ? { harmfulOffset: p.harmfulOffset ?? "start" }
        : {}),
    };
  }
  if (o.monitors?.length) out.monitors = o.monitors.map((m) => m.name);
  out.seed = o.seed ?? 0;
  return out;
}

/** The last generation step a perturbation may start at. */
export function perturbMaxStep(o: RLOptions): number {
  return Math.min(o.perturb?.maxStep ?? 16, (o.maxNewTokens ?? 32) - 1);
}
