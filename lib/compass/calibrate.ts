/**
 * Calibrating the compass monitor (lib/compass/monitor.ts) to a target false-flag rate.
 *
 * A compass fitted on pooled traces or answer prefixes gives p_safe values that are not
 * calibrated probabilities for single tokens: read token by token, ordinary words can score
 * near 0, and at the default threshold 0.5 the monitor flags nearly every answer. So the
 * threshold is set empirically, the way a detector's operating point is: generate (flag
 * mode, nothing changed) the answers to calibration prompts that should NOT be flagged
 * (benign and borderline ones), take each answer's lowest running score, and choose the
 * largest threshold at which at most a share `fpr` of them would have been flagged (a row is
 * flagged when its running score falls strictly below the threshold). Whether a row is
 * flagged depends only on the tokens up to its first crossing, which flag, stop and steer
 * generate identically, so the calibrated rate holds for every action.
 *
 * Whether the rate transfers to new prompts is an empirical question:
 * {@link monitorFlagRate} measures it on held-out prompts, with a Wilson interval.
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import type { GenerateOptions } from "../model/generate.ts";
import { proportionCI } from "./metrics.ts";
import type { Compass } from "./compass.ts";
import {
  type CalibratedThreshold,
  generateMonitored,
  type MonitorOptions,
  type MonitorTrail,
} from "./monitor.ts";

/** A prompt: its text, or a row that has one (SafetyWorld prompt rows). */
export type PromptInput = string | { prompt: string };

/** Generation settings of the calibration and transfer runs. */
export type MonitorGenOptions = Omit<
  GenerateOptions,
  "prompts" | "inputIds" | "force" | "returnHiddenStates"
>;

/** Options of {@link calibrateMonitor}. */
export interface CalibrateOptions {
  /** Target share of calibration answers flagged. @default 0.05 */
  fpr?: number;
  /** Layer read (negative from the end). @default compass.layer */
  layer?: number;
  /** Running-mean window. @default 4 */
  window?: number;
  /** Generation: new tokens, batch, sampling. @default { maxNewTokens: 48, batchSize: 32 } (greedy) */
  generate?: MonitorGenOptions;
}

/** A share of answers the monitor flagged, with a Wilson 95% interval. */
export interface FlagRate {
  /** flagged / n. */
  rate: number;
  /** Interval ends. */
  lo: number;
  /** Upper end of the interval. */
  hi: number;
  /** Answers flagged. */
  flagged: number;
  /** Answers. */
  n: number;
}

/** What {@link calibrateMonitor} returns: pass it as `monitor.threshold`. */
export interface MonitorCalibration extends CalibratedThreshold, FlagRate {
  /** The target rate. */
  fpr: number;
  /** Each calibration answer's lowest running score (prompt order). */
  minRunning: number[];
}

/** The lowest running score of each trail (+Infinity for a trail with no tokens). */
export function minRunning(trails: readonly Pick<MonitorTrail, "running">[]): number[] {
  return trails.map((t) => t.running.reduce((a, b) => Math.min(a, b), Infinity));
}

/**
 * The largest threshold at which at most `floor(fpr * n)` of the `n` values fall strictly
 * below it: the k-th smallest value (0-based k = floor(fpr * n)), or +Infinity when k = n.
 * With distinct values exactly k fall below; ties at the k-th value make it fewer.
 */
export function thresholdAtRate(values: readonly number[], fpr: number): number {
  if (values.length === 0) throw new Error("Cannot calibrate on no answers: pass some prompts");
  if (!(fpr >= 0 && fpr <= 1)) throw new Error(`Cannot calibrate to fpr ${fpr}: use 0 <= fpr <= 1`);
  if (values.some((v) => Number.isNaN(v))) {
    throw new Error("Cannot calibrate: a running score is NaN (does the compass return NaN?)");
  }
  const sorted = [...values].sort((a, b) => a - b);
  const k = Math.floor(fpr * sorted.length + 1e-9);
  return k >= sorted.length ? Infinity : sorted[k];
}

/** The share of trails with a crossing (flagged), with a Wilson 95% interval. */
export function flagRateOf(trails: readonly Pick<MonitorTrail, "crossing">[]): FlagRate {
  const n = trails.length;
  const flagged = trails.filter((t) => t.crossing !== null).length;
  if (n === 0) return { rate: NaN, lo: NaN, hi: NaN, flagged, n };
  const ci = proportionCI(flagged, n);
  return { rate: flagged / n, lo: ci.lo, hi: ci.hi, flagged, n };
}

/** Share of `values` strictly below `threshold`, with a Wilson interval. */
function rateBelow(values: readonly number[], threshold: number): FlagRate {
  return flagRateOf(values.map((v) => ({ crossing: v < threshold ? 0 : null })));
}

const textOf = (p: PromptInput) => (typeof p === "string" ? p : p.prompt);

/**
 * Calibrates the monitor's threshold on `prompts` (benign and borderline ones: answers
 * that should not be flagged) to the target false-flag rate `fpr` (see the module doc).
 * Returns the threshold with its layer and window (pass the result as `monitor.threshold`)
 * and the rate measured on the calibration answers, with its interval.
 */
export async function calibrateMonitor(
  model: Model,
  compass: Compass,
  prompts: readonly PromptInput[],
  opts: CalibrateOptions = {},
): Promise<MonitorCalibration> {
  const fpr = opts.fpr ?? 0.05;
  if (!(fpr >= 0 && fpr <= 1)) throw new Error(`Cannot calibrate to fpr ${fpr}: use 0 <= fpr <= 1`);
  if (prompts.length === 0) throw new Error("Cannot calibrate on no prompts: pass some");
  const run = await generateMonitored(model, {
    maxNewTokens: 48,
    batchSize: 32,
    ...opts.generate,
    prompts: prompts.map(textOf),
    monitor: {
      compass,
      action: "flag",
      threshold: -Infinity, // never crosses: only the scores are wanted
      window: opts.window ?? 4,
      ...(opts.layer !== undefined ? { layer: opts.layer } : {}),
    },
  });
  const mins = minRunning(run.trails);
  const threshold = thresholdAtRate(mins, fpr);
  return {
    threshold,
    layer: run.settings.layer,
    window: run.settings.window,
    fpr,
    ...rateBelow(mins, threshold),
    minRunning: mins,
  };
}

/**
 * The share of answers to `prompts` the monitor flags (flag mode, answers unchanged): with
 * a calibration as `monitor.threshold` and held-out benign prompts, the calibration's
 * transfer; with harmful prompts, its sensitivity.
 */
export async function monitorFlagRate(
  model: Model,
  prompts: readonly PromptInput[],
  monitor: Omit<MonitorOptions, "action">,
  generate: MonitorGenOptions = {},
): Promise<FlagRate> {
  const run = await generateMonitored(model, {
    maxNewTokens: 48,
    batchSize: 32,
    ...generate,
    prompts: prompts.map(textOf),
    monitor: { ...monitor, action: "flag" },
  });
  return flagRateOf(run.trails);
}
