/**
 * The loop around optimiser steps that single-process SFT (lib/train/sft.ts's
 * `runSupervised`) and data-parallel SFT (lib/parallel/sft.ts) share: the warm-up + cosine
 * schedule, the stop on a non-finite loss before any update, the log row, validation every
 * `evalEvery` steps, the progress bar, the checkpoint cadence and `stopAfter`. What a step
 * does (one process or many) is the caller's `step` hook.
 *
 * The NaN guard has two parts: a step whose loss is not finite applies no update; a step
 * whose update left a weight or an optimiser moment non-finite (its `nonFinite` report,
 * checked after the update and before any save) stops the run before the next checkpoint,
 * so no checkpoint ever holds a non-finite value, and the caller's `restore` hook puts the
 * last good state back (the checkpoint this run last wrote or resumed from).
 *
 * @module
 */

import { type NonFinite, warmupCosine } from "../optim/adamw.ts";
import { Progress } from "../viz/progress.ts";
import type { SftLogRow, SftOptions, SftResult } from "./sft.ts";

/**
 * "the weights of 'h.0.attn.c_attn.weight' are" (for "... not finite"): where a
 * {@link NonFinite} is, with `names` the optimiser's variable names in its order.
 *
 * @example
 * ```ts
 * nonFiniteText({ index: 0, what: "second moment" }, ["wte.weight"]);
 * // "the AdamW second moment of 'wte.weight' is"
 * ```
 */
export function nonFiniteText(nf: NonFinite, names: readonly string[]): string {
  const name = names[nf.index] ?? `variable ${nf.index}`;
  return nf.what === "weights"
    ? `the weights of '${name}' are`
    : `the AdamW ${nf.what} of '${name}' is`;
}

/**
 * A non-finite weight or optimiser moment found after an update or before a save; the
 * message says where ("before saving, the AdamW first moment of 'wte.weight' is not
 * finite"). The trainers stop on it without saving and restore the last good checkpoint.
 */
export class NonFiniteError extends Error {}

/**
 * Throws a {@link NonFiniteError} ("before saving, the <what> of '<name>' is not finite")
 * when any value of `arrays` ([name, values, what]) is NaN or infinite: the last line of
 * defence before a checkpoint is written, whatever put the value there.
 *
 * @example
 * ```ts
 * assertFiniteForSave([["wte.weight", new Float32Array([1, 2]), "weights"]]); // fine
 * ```
 */
export function assertFiniteForSave(
  arrays: readonly (readonly [string, ArrayLike<number>, NonFinite["what"]])[],
): void {
  for (const [name, a, what] of arrays) {
    let sum = 0; // a float64 sum of float32 values is finite exactly when every value is
    for (let j = 0; j < a.length; j++) sum += a[j];
    if (!Number.isFinite(sum)) {
      const text = nonFiniteText({ index: 0, what }, [name]);
      throw new NonFiniteError(`before saving, ${text} not finite`);
    }
  }
}

/** What one optimiser step reports to {@link runStepLoop}. */
export interface StepReport {
  /** The step's loss (mean over its target tokens). */
  loss: number;
  /** False when the loss was not finite and no update was applied. */
  applied: boolean;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Tokens the step consumed (for the log and tokens/s). */
  tokens: number;
  /**
   * Set when the update left non-finite values: which ones ("the second moment of 'wte'").
   * The loop then stops without saving and calls {@link StepHooks.restore}.
   */
  nonFinite?: string;
}

/** The parts of a training run that {@link runStepLoop} calls. */
export interface StepHooks {
  /** Runs step `step` at learning-rate scale `lrScale`; must not apply a non-finite update. */
  step(step: number, lrScale: number): Promise<StepReport>;
  /** The validation loss, called every `evalEvery` steps when the run has validation data. */
  validate?(): number | Promise<number>;
  /** Writes a checkpoint after `step` steps (atomically), every `checkpointEvery` steps. */
  checkpoint?(step: number, history: SftLogRow[]): Promise<void>;
  /**
   * After an update left non-finite values: puts the last good state back into the model
   * (`lastGood`: the step of the checkpoint this run last wrote or resumed from, undefined
   * when there is none) and says what the model now holds, for the error message.
   */
  restore?(lastGood: number | undefined): Promise<string>;
}

/** Where a run starts and what it is called. */
export interface StepLoopInit {
  /** Name in the progress bar's default label and in errors ("SFT"). */
  name: string;
  /** Total optimiser steps of the schedule. */
  steps: number;
  /** The step to start from (a resumed checkpoint's), with its history. */
  start: number;
  /** The log so far (continued in place). */
  history: SftLogRow[];
  /** The base learning rate (the log's `lr` is this times the schedule). */
  lr: number;
  /** True when `start` comes from a checkpoint in `checkpointDir` (a good state to restore). */
  resumed?: boolean;
}

/**
 * Runs steps `init.start .. min(steps, start + stopAfter) - 1` with the schedule and cadence
 * of `opts` (SftOptions: warmup, minLrRatio, evalEvery, checkpointEvery, checkpointDir,
 * stopAfter, label, onStep). Throws, naming the step (1-based) and the last good
 * checkpoint, when a step reports a non-finite loss or a non-finite update (then after
 * `hooks.restore`); the progress bar is closed either way.
 *
 * @example
 * ```ts
 * const result = await runStepLoop(
 *   { name: "SFT", steps: 3, start: 0, history: [], lr: 1e-3 },
 *   { steps: 3, warmup: 0 },
 *   { step: () => Promise.resolve({ loss: 1, applied: true, gradNorm: 0.5, tokens: 8 }) },
 * );
 * result.history.length; // 3
 * ```
 */
export async function runStepLoop(
  init: StepLoopInit,
  opts: SftOptions,
  hooks: StepHooks,
): Promise<SftResult> {
  const { name, steps, start, history } = init;
  const warmup = opts.warmup ?? Math.round(steps * 0.05);
  const bar = new Progress({ total: steps, label: opts.label ?? name, unit: "step" });
  bar.tick(start);
  const t0 = performance.now();
  let tokens = 0;
  const end = Math.min(steps, opts.stopAfter !== undefined ? start + opts.stopAfter : steps);
  const dir = opts.checkpointDir;
  let lastGood = init.resumed && dir ? start : undefined;
  const where = () =>
    lastGood !== undefined
      ? `; the last good checkpoint (step ${lastGood}) is in ${dir}`
      : dir
      ? `; this run has saved no checkpoint yet (the last good checkpoint in ${dir}, if any, ` +
        "is an earlier run's)"
      : "";
  try {
    for (let step = start; step < end; step++) {
      const scale = warmupCosine(step, steps, warmup, opts.minLrRatio ?? 0.1);
      const r = await hooks.step(step, scale);
      if (!r.applied || !Number.isFinite(r.loss)) {
        throw new Error(
          `${name} stopped at step ${step + 1}: the loss is ${r.loss}. No update was applied` +
            where() + ". Lower the learning rate or check the data.",
        );
      }
      const stop = async (what: string): Promise<never> => {
        const held = hooks.restore
          ? await hooks.restore(lastGood)
          : where().slice(2) || "the model in memory keeps the failed update";
        throw new Error(
          `${name} stopped at step ${step + 1}: ${what} not finite ` +
            `(loss ${r.loss}, gradient norm ${r.gradNorm}). Nothing was saved; ${held}. ` +
            "Lower the learning rate or clip the gradients, then resume.",
        );
      };
      if (r.nonFinite !== undefined) await stop(`after the update, ${r.nonFinite}`);
      tokens += r.tokens;
      const row: SftLogRow = {
        step: step + 1,
        loss: r.loss,
        lr: init.lr * scale,
        gradNorm: r.gradNorm,
        tokens,
        seconds: (performance.now() - t0) / 1000,
      };
      const every = opts.evalEvery ?? 100;
      if (hooks.validate && ((step + 1) % every === 0 || step + 1 === steps)) {
        row.valLoss = await hooks.validate();
      }
      history.push(row);
      opts.onStep?.(row);
      bar.tick(1, {
        loss: Number(r.loss.toFixed(4)),
        ...(row.valLoss ? { val: Number(row.valLoss.toFixed(4)) } : {}),
      });
      const ce = opts.checkpointEvery ?? 200;
      if (opts.checkpointDir && ((step + 1) % ce === 0 || step + 1 === end)) {
        try {
          await hooks.checkpoint?.(step + 1, history);
        } catch (err) {
          if (err instanceof NonFiniteError) await stop(err.message.replace(/ not finite$/, ""));
          throw err;
        }
        lastGood = step + 1;
      }
    }
  } finally {
    bar.done();
  }
  const secs = (performance.now() - t0) / 1000;
  return { history, steps: end, tokensPerSecond: tokens / Math.max(secs, 1e-9) };
}
