/**
 * The RL loop: GRPO (DeepSeekMath, arXiv 2402.03300; CRAFT's optimiser, arXiv 2603.17305)
 * and PPO with GAE and a value head (arXiv 1707.06347; AlphaAlign's optimiser, arXiv
 * 2507.14987), whose rewards may read the policy's hidden states and return per-token
 * rewards (SCIENCE.md sections 2, 3 and 6). Structure and metric names follow TRL's
 * GRPOTrainer / PPOTrainer.
 *
 * One step: seeded prompt sample (+ an optional small dose of extra prompts) -> `groupSize`
 * rollouts each (KV cache; the hidden states the rewards list are captured during
 * generation; optionally with mid-sequence perturbations forced into a share of them,
 * SCIENCE.md section 5) -> rewards (each logged) -> advantages (`advantages.ts`) ->
 * `ppoEpochs` passes of clipped-ratio updates against the rollout log-probs (recomputed
 * with the same forward pass at the same temperature), k3 KL to a frozen reference copy (a
 * loss term, as verl's `use_kl_loss`, for both algorithms), loss on the completion tokens
 * the policy chose; AdamW + clipping. Log-probs are those of the tempered distribution
 * before top-p truncation, as in TRL. Checkpoints (full weights, or LoRA adapters; never
 * going backwards, `lib/io/checkpoint_dir.ts`), exact resumption (a damaged checkpoint is
 * refused) and the NaN guard (learning rates checked up front; loss and gradient norm
 * before the update; weights, value head and optimiser moments after it, before any save,
 * with the last good checkpoint restored on a failure) mirror `sft.ts`.
 *
 * The parts: `options.ts` (the options and their checks), `rollout.ts` (prompts,
 * generation, perturbation, reward contexts), `loss.ts` (the surrogate, KL and value
 * losses and the update), `checkpoint.ts` (save / resume), `log.ts` (metrics, run log).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../../model/model.ts";
import { makeRng, type Rng } from "../../data/rng.ts";
import { Progress } from "../../viz/progress.ts";
import { AdamW } from "../../optim/adamw.ts";
import { announceFreshStart, batchOrder } from "../sft.ts";
import { grpoTokenAdvantages, placeRewards, ppoTokenAdvantages } from "../advantages.ts";
import { evaluateRewards, type RewardScores } from "../rewards.ts";
import {
  checkOptions,
  recordOptions,
  type ResolvedRLOptions,
  resolveRLOptions,
  type RLOptions,
  rowsOf,
} from "./options.ts";
import { makeRunLog, type RLLogRow, type RolloutRecord, type RunLog, stepMetrics } from "./log.ts";
import { rollout, rolloutPerturber, type Rollouts, sampleRows } from "./rollout.ts";
import { scorePass, update, type UpdateInputs, type UpdateStats } from "./loss.ts";
import { NonFiniteError } from "../step_loop.ts";
import { observeAll } from "./monitor.ts";
import {
  loadRLCheckpoint,
  makeReference,
  saveRLCheckpoint,
  type TrainerParts,
  untracked,
} from "./checkpoint.ts";

export type { RLOptions, RLPerturbOptions } from "./options.ts";
export { makeRunLog, type RLLogRow, type RolloutRecord, type RunLog, runWarnings } from "./log.ts";
export { policyMask } from "./loss.ts";
export type { RLMonitor, RLMonitorContext } from "./monitor.ts";

/** What a step has gathered before its updates. */
interface StepData {
  r: Rollouts;
  scores: RewardScores;
  /** Weighted per-token rewards (scalars on the last token). */
  tokenRewards: number[][];
  /** The step's seeded stream (minibatch shuffles). */
  rng: Rng;
  /** Wraps an update's error as the run's "RL stopped" error. */
  onError: (err: unknown) => Promise<never>;
}

/**
 * Old log-probs / values and reference log-probs, advantages, then `ppoEpochs` passes of
 * minibatch updates; returns the inputs (advantages, returns) and each update's stats.
 */
async function optimise(
  parts: TrainerParts,
  opts: ResolvedRLOptions,
  { r, scores, tokenRewards, rng, onError }: StepData,
): Promise<{ inp: UpdateInputs; stats: UpdateStats[] }> {
  const { model } = parts, temperature = opts.temperature;
  const N = r.rows.length, mbSize = Math.min(N, Math.max(1, opts.minibatch ?? N));
  const epochs = Math.max(1, opts.ppoEpochs), single = epochs === 1 && mbSize === N;
  const chunks: number[][] = [];
  for (let s = 0; s < N; s += mbSize) chunks.push(r.rows.slice(s, s + mbSize).map((_, k) => s + k));
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
    forced: opts.perturb ? r.gen.forced : undefined,
    pad: model.tokenizer.padId ?? model.config.padTokenId ?? 0,
  };
  if (parts.ref) inp.refLp = (await scorePass(inp, parts.ref, chunks, temperature)).logp;
  if (!single || parts.head) {
    const old = await scorePass(inp, model.params, chunks, temperature, parts.head);
    inp.oldLp = single ? undefined : old.logp; // single update: the detached current pass
    inp.oldV = old.values;
  }
  const gamma = opts.gamma, perToken = opts.perTokenRewards;
  if (opts.algorithm === "grpo") {
    const proc = perToken ? scores.process : undefined;
    const scaleByStd = opts.scaleByStd, G = opts.groupSize;
    inp.adv = grpoTokenAdvantages(scores.outcome, proc, r.lens, G, { gamma, scaleByStd });
  } else {
    const p = ppoTokenAdvantages(tokenRewards, inp.oldV, { gamma, lambda: opts.lambda });
    inp.adv = p.advantages;
    inp.ret = p.returns;
  }
  // Updates: ppoEpochs passes over shuffled minibatches.
  const stats: UpdateStats[] = [];
  for (let e = 0; e < epochs; e++) {
    const perm = single ? chunks[0] : rng.shuffle(r.rows.map((_, i) => i));
    for (let s = 0; s < N; s += mbSize) {
      const idx = perm.slice(s, s + mbSize);
      stats.push(await update(inp, idx, opts, parts.opt, parts.vopt).catch(onError));
    }
  }
  return { inp, stats };
}

/** The step's rollouts as {@link RolloutRecord}s (what `onStep` receives). */
function records(
  opts: RLOptions,
  { r, scores, tokenRewards }: StepData,
  inp: UpdateInputs,
): RolloutRecord[] {
  return r.rows.map((pr, i) => ({
    promptId: pr.id,
    completion: r.gen.text[i],
    completionIds: r.gen.tokenIds[i],
    rewards: Object.fromEntries(opts.rewards.map((w) => [w.name, scores.components[w.name][i]])),
    tokenRewards: tokenRewards[i],
    advantages: inp.adv[i],
    ...(inp.ret ? { returns: inp.ret[i], values: inp.oldV[i] } : {}),
    ...(r.perturbation ? { perturbation: r.perturbation[i], forced: r.gen.forced[i] } : {}),
  }));
}

/**
 * Trains `model` in place with GRPO or PPO on `opts.prompts` and `opts.rewards`; see
 * {@link RLOptions}. With LoRA adapters on the model (`addLora`) only the adapters train,
 * and checkpoints hold only them. A non-finite reward or loss stops the run with a clear
 * error before the update, leaving the last checkpoint intact.
 *
 * @example
 * ```ts
 * import type { Model } from "../../model/model.ts";
 * import type { Compass } from "../../compass/compass.ts";
 * import type { PromptRow } from "../../data/schema.ts";
 * import { craftReward, type TextJudge } from "../rewards.ts";
 * declare const model: Model, compass: Compass, prompts: PromptRow[];
 * declare const textJudge: TextJudge;
 * declare const harmfulAnswers: (row: PromptRow) => string[];
 * const log = await trainRL(model, {
 *   algorithm: "grpo", prompts, steps: 50, lr: 1e-4,
 *   rewards: [craftReward({ compass, textJudge })],
 *   // trajectory training: spans of harmful answers forced into 30% of harmful rollouts
 *   perturb: { rate: 0.3, length: [1, 5], harmfulTexts: (row) => harmfulAnswers(row) },
 * });
 * log.table(); // reward, rewards/craft/mean, kl, entropy, clip_ratio, perturb/rate, ...
 * ```
 */
export async function trainRL(model: Model, raw: RLOptions): Promise<RunLog> {
  const opts = resolveRLOptions(raw);
  const prompts = rowsOf(opts.prompts);
  checkOptions(model, opts, prompts);
  const perturber = rolloutPerturber(model, opts); // throws on a bad schedule
  const c = model.config, algo = opts.algorithm, seed = opts.seed;
  const P = opts.promptsPerStep, perToken = opts.perTokenRewards;
  const monitors = opts.monitors ?? [];
  const requested = [
    ...new Set([...opts.rewards, ...monitors].flatMap((r) => r.layers ?? [])),
  ];
  const options = recordOptions(raw);
  const reference = opts.reference !== "none" && opts.klCoef > 0 ? makeReference(model) : undefined;
  const parts: TrainerParts = {
    model,
    algo,
    opt: new AdamW({ lr: opts.lr, weightDecay: opts.weightDecay }),
    vopt: new AdamW({ lr: opts.valueLr, weightDecay: 0 }),
    head: algo === "ppo"
      ? untracked(() => ({
        w: tf.variable(tf.zeros([c.dModel, 1])),
        b: tf.variable(tf.zeros([1])),
      }))
      : undefined,
    ref: reference?.ref,
    refOwned: reference?.owned ?? [],
  };
  const order = batchOrder(prompts.length, Math.min(P, prompts.length), seed);
  const bar = new Progress({ total: opts.steps, label: opts.label, unit: "step" });
  let history: RLLogRow[] = [];
  let start = 0, lastGood = "none yet", saved = false;
  const dir = opts.checkpointDir;
  const stopped = (step: number) => async (err: unknown): Promise<never> => {
    if (!(err instanceof NonFiniteError)) {
      throw new Error(
        `RL stopped at step ${step + 1}: ${(err as Error).message}. The update was not applied` +
          (dir ? `; the last good checkpoint (${lastGood}) is in ${dir}` : "") +
          ". Fix the reward or lower the learning rate, then resume.",
        { cause: err },
      );
    }
    // The update was applied and left non-finite values: nothing is saved; the model (and
    // the optimisers, value head, reference) go back to the last good checkpoint.
    let held = "the model in memory keeps the failed update: reload the model";
    if (dir && saved) {
      await loadRLCheckpoint(dir, parts);
      held = `the model was restored from the last good checkpoint (${lastGood}) in ${dir}`;
    } else if (dir) held = `this run has saved no checkpoint in ${dir} yet, so ${held}`;
    throw new Error(
      `RL stopped at step ${step + 1}: ${err.message}. Nothing was saved; ${held}. ` +
        "Lower the learning rate or clip the gradients, then resume.",
      { cause: err },
    );
  };
  try {
    if (opts.resume && opts.checkpointDir) {
      const st = await loadRLCheckpoint(opts.checkpointDir, parts, opts.steps);
      if (st) ({ step: start, history } = st), lastGood = `step ${start}`, saved = true;
      else announceFreshStart("trainRL", opts.checkpointDir);
    }
    const stop = Math.min(opts.steps, start + (opts.stopAfter ?? Infinity));
    bar.tick(start);
    for (let step = start; step < stop; step++) {
      const t0 = performance.now();
      // Every random choice of a step comes from its own seeded stream (exact resumption).
      const rng = makeRng((seed * 1_000_003 + step * 7919 + 1) >>> 0);
      const batchRows = sampleRows(prompts, order, step, P, opts.mix, rng);
      const r = await rollout(model, opts, batchRows, step, rng.int(2 ** 31), requested, perturber);
      const scores = await evaluateRewards(opts.rewards, r.contexts, r.lens, { perToken })
        .catch(stopped(step));
      const tokenRewards = placeRewards(scores.outcome, scores.process, r.lens);
      const watched = monitors.length
        ? await observeAll(monitors, {
          model,
          step,
          contexts: r.contexts,
          rewards: tokenRewards.map((x) => x.reduce((a, b) => a + b, 0)),
        }).catch(stopped(step))
        : {};
      const data: StepData = { r, scores, tokenRewards, rng, onError: stopped(step) };
      const { inp, stats } = await optimise(parts, opts, data);
      const row = stepMetrics(step, opts, r, scores, tokenRewards, stats, {
        kl: !!parts.ref,
        value: !!parts.head,
        lr: parts.opt.opts.lr,
        t0,
      });
      Object.assign(row, watched);
      history.push(row);
      opts.onStep?.(row, records(opts, data, inp));
      bar.tick(1, { reward: Number(row.reward.toFixed(3)) });
      const every = opts.checkpointEvery;
      if (opts.checkpointDir && ((step + 1) % every === 0 || step + 1 === stop)) {
        await saveRLCheckpoint(opts.checkpointDir, parts, { step: step + 1, history, options })
          .catch((err) => err instanceof NonFiniteError ? stopped(step)(err) : Promise.reject(err));
        lastGood = `step ${step + 1}`;
        saved = true;
      }
    }
  } finally {
    bar.done();
    parts.opt.dispose();
    parts.vopt.dispose();
    if (parts.head) tf.dispose([parts.head.w, parts.head.b]);
    if (parts.ref) tf.dispose(parts.refOwned.map((n) => parts.ref!.get(n)!));
  }
  const log = makeRunLog(history, options);
  for (const m of monitors) log.warnings.push(...(m.warnings?.(history) ?? []));
  for (const w of log.warnings) console.warn(`trainRL (${raw.label ?? "run"}): ${w}`);
  return log;
}
