/**
 * Real-time compass monitoring (CRAFT, arXiv 2603.17305, used at inference time; SCIENCE.md
 * sections 1 and 2): batched, KV-cached generation in which every new token's hidden state
 * at the compass's layer is scored as soon as it is fed (p_safe), a running mean over the
 * last `window` scores is kept per row, and at the first token where it falls below the
 * threshold the monitor acts on that row only:
 * - "flag": record the crossing, change nothing;
 * - "stop": force a refusal in the model's own words (then the end-of-sequence token) and
 *   end the row;
 * - "steer": from the crossing token on, add `strength * r` (the compass's steering
 *   vector, Arditi et al. 2024, arXiv 2406.11717) after that layer for that row. The step
 *   that revealed the crossing is recomputed with the steer on, so the crossing token itself
 *   is steered and the first token that can change is the next one, as with "stop".
 *
 * The loop is built on `forward` and the helpers of generate.ts / sampling.ts (same per-row
 * seeds, so with "flag" the tokens equal `model.generate`'s). Scores are read AFTER the
 * interventions of their layer, so a steered row's later scores include the steer.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../model/model.ts";
import {
  encodePrompts,
  type GenerateOptions,
  type GenerateResult,
  stopTokenIds,
} from "../model/generate.ts";
import { disposeCache, forward, type Intervention, type KVCache } from "../model/transformer.ts";
import { sampleToken } from "../model/sampling.ts";
import { makeRng } from "../data/rng.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import type { Compass } from "./compass.ts";
import { tokenTexts } from "./audit.ts";
import { makeMatrix } from "./matrix.ts";
import { compassVector } from "./steer.ts";

/** What the monitor does at a row's first crossing. */
export type MonitorAction = "flag" | "stop" | "steer";

/** SafetyWorld's refusal, in the words its aligned models use. */
export const DEFAULT_REFUSAL = "i can not help with that .";

/**
 * A threshold calibrated for one layer and window (what `calibrateMonitor` returns,
 * lib/compass/calibrate.ts): passing it as `threshold` also sets the monitor's layer and
 * window, and a conflicting explicit layer or window is an error.
 */
export interface CalibratedThreshold {
  /** The threshold on the running score. */
  threshold: number;
  /** The layer it was calibrated at (0..nLayer). */
  layer: number;
  /** The running-mean window it was calibrated with. */
  window: number;
}

/** Settings of the monitor. */
export interface MonitorOptions {
  /** The compass scoring each new token's hidden state (p_safe). */
  compass: Compass;
  /** Layer read (0 = embeddings, negative from the end). @default compass.layer (or the calibration's) */
  layer?: number;
  /**
   * A running score below it is unsafe: a number, or a {@link CalibratedThreshold} (from
   * `calibrateMonitor`; its layer and window then apply). A compass's p_safe is rarely
   * calibrated per token, so 0.5 can flag almost everything: calibrate. @default 0.5
   */
  threshold?: number | CalibratedThreshold;
  /** Running mean over the last `window` token scores. @default 1 (or the calibration's) */
  window?: number;
  /** flag, stop or steer. */
  action: MonitorAction;
  /** The continuation forced on "stop". @default DEFAULT_REFUSAL */
  refusal?: string;
  /** Steering strength (with a diff-of-means r, 1 moves the unsafe mean onto the safe one). @default 1 */
  strength?: number;
  /** Steering vector. @default the compass's vector (its diff-of-means r, else its direction) */
  direction?: ArrayLike<number>;
}

/** Options of {@link generateMonitored}: generation options plus the monitor. */
export interface MonitoredGenerateOptions extends GenerateOptions {
  /** The monitor. */
  monitor: MonitorOptions;
}

/** The audit trail of one row. */
export interface MonitorTrail {
  /** The prompt (as given, or decoded from `inputIds`). */
  prompt: string;
  /** New token ids. */
  tokenIds: number[];
  /** Their display text (concatenation = decoded text). */
  tokens: string[];
  /** p_safe of each new token's hidden state. */
  scores: number[];
  /** Running mean of the last `window` scores. */
  running: number[];
  /** First token whose running score is below the threshold, or null. */
  crossing: number | null;
  /** The monitor's action. */
  action: MonitorAction;
  /** First generated token the action could change (crossing + 1), or null (flag / none). */
  actionStep: number | null;
  /** Which tokens were forced (prefill, injection, or the stop refusal). */
  forced: boolean[];
  /** Decoded new text (special tokens skipped). */
  text: string;
  /** The layer read, the threshold and the window the trail was made with. */
  layer: number;
  /** The unsafe threshold on the running score. */
  threshold: number;
  /** Tokens in the running mean. */
  window: number;
}

/** What {@link generateMonitored} returns. */
export interface MonitoredResult extends GenerateResult {
  /** One audit trail per row. */
  trails: MonitorTrail[];
  /** The resolved monitor settings. */
  settings: {
    layer: number;
    threshold: number;
    window: number;
    action: MonitorAction;
    strength: number;
  };
}

interface Row {
  done: boolean;
  ids: number[];
  logprobs: number[];
  forced: boolean[];
  scores: number[];
  running: number[];
  crossing: number | null;
  actionStep: number | null;
  refusalFrom?: number;
  hidden: Float32Array[][];
}

/** Running mean at the last element of `scores` over the last `window` entries. */
export function runningMean(scores: readonly number[], window: number): number {
  const from = Math.max(0, scores.length - window);
  let s = 0;
  for (let i = from; i < scores.length; i++) s += scores[i];
  return s / (scores.length - from);
}

type Resolved = MonitoredResult["settings"] & {
  compass: Compass;
  refusalIds: number[];
  shift?: Float32Array;
};

async function monitorBatch(
  m: Model,
  prompts: number[][],
  offset: number,
  opts: MonitoredGenerateOptions,
  cfg: Resolved,
  extra: number[],
): Promise<Row[]> {
  const c = m.config, b = prompts.length, d = c.dModel;
  const maxNew = opts.maxNewTokens ?? 32, stopAtEos = opts.stopAtEos ?? true;
  const eos = m.tokenizer.eosId ?? c.eosTokenId;
  const stop = new Set(stopTokenIds(m, opts)); // generation_config's eos list, as generate
  const pad = m.tokenizer.padId ?? c.padTokenId ?? eos ?? 0;
  if (Math.min(...prompts.map((p) => p.length)) === 0) {
    throw new Error("generateMonitored: empty prompt");
  }
  const len = Math.max(...prompts.map((p) => p.length));
  const ids = prompts.map((p) => [...new Array(len - p.length).fill(pad), ...p]);
  const mask = prompts.map((p) => [...new Array(len - p.length).fill(0), ...p.map(() => 1)]);
  const seed = opts.seed ?? 0;
  const rngs = prompts.map((_, i) => makeRng((seed * 1_000_003 + offset + i) >>> 0));
  const forcedAt = prompts.map((_, i) => {
    const map = new Map<number, number>();
    for (const s of opts.force?.[offset + i] ?? []) {
      s.tokens.forEach((t, j) => map.set(s.step + j, t));
    }
    return map;
  });
  const rows: Row[] = prompts.map(() => ({
    done: false,
    ids: [],
    logprobs: [],
    forced: [],
    scores: [],
    running: [],
    crossing: null,
    actionStep: null,
    hidden: extra.map(() => []),
  }));
  const steerOn = new Float32Array(b);
  const user = opts.interventions ?? [];
  const steer: Intervention = {
    layer: cfg.layer,
    fn: (h) => tf.add(h, tf.mul(tf.tensor3d(steerOn, [b, 1, 1]), tf.tensor1d(cfg.shift!))),
  };
  const layers = [...new Set([cfg.layer, ...extra])];
  // The most slots the cache will need (a refusal may run past maxNew), written in place; a
  // redone step (the steer below) rewrites the same slots.
  const reserve = ids[0].length + maxNew + cfg.refusalIds.length;
  let f = forward(c, m.params, ids, {
    attentionMask: mask,
    useCache: true,
    reserve,
    logits: "last",
    interventions: user,
  });
  let cache: KVCache | undefined = f.cache;
  const release = () =>
    tf.dispose([f.logits!, ...f.hiddenStates.filter(Boolean)].filter((t) => t && !t.isDisposed));
  try {
    for (let step = 0; rows.some((r) => !r.done); step++) {
      const logits = (await f.logits!.data()) as Float32Array;
      release();
      const active = rows.map((r) => !r.done);
      const next = rows.map((r, i) => {
        if (r.done) return pad;
        const row = logits.subarray(i * c.vocabSize, (i + 1) * c.vocabSize);
        const ref = r.refusalFrom !== undefined ? cfg.refusalIds[step - r.refusalFrom] : undefined;
        const forcedTok = ref ?? forcedAt[i].get(step);
        const { token: tok, logprob } = sampleToken(row, opts, rngs[i], forcedTok);
        r.ids.push(tok);
        r.logprobs.push(logprob);
        r.forced.push(forcedTok !== undefined);
        return tok;
      });
      for (let i = 0; i < b; i++) mask[i].push(active[i] ? 1 : 0);
      const prev = cache;
      const feed = () =>
        forward(c, m.params, next.map((t) => [t]), {
          attentionMask: mask,
          cache: prev,
          reserve,
          logits: "last",
          hiddenStates: layers,
          interventions: steerOn.some((v) => v > 0) ? [...user, steer] : user,
        });
      f = feed();
      const h = (await f.hiddenStates[cfg.layer].data()) as Float32Array;
      const idx = active.flatMap((a, i) => (a ? [i] : []));
      const sub = new Float32Array(idx.length * d);
      idx.forEach((i, k) => sub.set(h.subarray(i * d, (i + 1) * d), k * d));
      const scores = idx.length ? cfg.compass.score(makeMatrix(idx.length, d, sub)) : [];
      let restart = false;
      idx.forEach((i, k) => {
        const r = rows[i];
        r.scores.push(scores[k]);
        r.running.push(runningMean(r.scores, cfg.window));
        if (r.crossing !== null || !(r.running[step] < cfg.threshold)) return;
        r.crossing = step;
        const ending = r.refusalFrom === undefined && stopAtEos && stop.has(next[i]) &&
          !forcedAt[i].has(step + 1);
        if (cfg.action === "stop" && !ending && cfg.refusalIds.length > 0) {
          r.refusalFrom = step + 1;
          r.actionStep = step + 1;
        } else if (cfg.action === "steer" && !ending) {
          steerOn[i] = 1;
          r.actionStep = step + 1;
          restart = true;
        }
      });
      if (restart) {
        // Redo this step with the steer on: other rows get exactly h + 0, the same numbers.
        release();
        disposeCache(f.cache);
        f = feed();
      }
      cache = f.cache;
      disposeCache(prev);
      for (let j = 0; j < extra.length; j++) {
        const hx = (await f.hiddenStates[extra[j]].data()) as Float32Array;
        for (const i of idx) rows[i].hidden[j].push(hx.slice(i * d, (i + 1) * d));
      }
      for (const i of idx) {
        const r = rows[i];
        if (r.refusalFrom !== undefined) r.done = step + 1 - r.refusalFrom >= cfg.refusalIds.length;
        else if (stopAtEos && stop.has(next[i]) && !forcedAt[i].has(step + 1)) r.done = true;
        else if (step + 1 >= maxNew) r.done = true;
      }
    }
  } finally {
    disposeCache(cache);
    release();
  }
  return rows;
}

function resolve(m: Model, mon: MonitorOptions): Resolved {
  const c = m.config;
  const { compass, action } = mon;
  if (!["flag", "stop", "steer"].includes(action)) {
    throw new Error(`Cannot monitor: action "${action}" is not flag, stop or steer`);
  }
  if (compass.dModel !== c.dModel) {
    throw new Error(
      `Cannot monitor: the compass reads d=${compass.dModel} hidden states but the model's ` +
        `d_model is ${c.dModel}; fit the compass on this model's activations`,
    );
  }
  const cal = typeof mon.threshold === "object" ? mon.threshold : undefined;
  const raw = mon.layer ?? cal?.layer ?? compass.layer;
  const layer = raw < 0 ? c.nLayer + 1 + raw : raw;
  if (!Number.isInteger(layer) || layer < 0 || layer > c.nLayer) {
    throw new Error(`Cannot monitor layer ${raw}: use 0..${c.nLayer} (or a negative index)`);
  }
  const window = mon.window ?? cal?.window ?? 1;
  if (!Number.isInteger(window) || window < 1) {
    throw new Error(`Cannot monitor with window ${window}: use an integer >= 1`);
  }
  if (cal && (cal.layer !== layer || cal.window !== window)) {
    throw new Error(
      `Cannot monitor at layer ${layer}, window ${window} with a threshold calibrated at layer ` +
        `${cal.layer}, window ${cal.window}: drop the explicit layer/window or calibrate again`,
    );
  }
  const threshold = cal ? cal.threshold : (mon.threshold as number | undefined) ?? 0.5;
  if (typeof threshold !== "number" || Number.isNaN(threshold)) {
    throw new Error(`Cannot monitor with threshold ${threshold}: use a number or a calibration`);
  }
  const strength = mon.strength ?? 1;
  let shift: Float32Array | undefined;
  if (action === "steer") {
    const r = mon.direction ?? compassVector(compass);
    if (r.length !== c.dModel) {
      throw new Error(
        `Cannot steer: the direction has ${r.length} entries, the model's d_model is ${c.dModel}`,
      );
    }
    shift = Float32Array.from(r, (v) => v * strength);
    if (shift.some((v) => !Number.isFinite(v))) {
      throw new Error(
        `Cannot steer with strength ${strength}: the shifted direction is not finite`,
      );
    }
  }
  const eos = m.tokenizer.eosId ?? c.eosTokenId;
  const refusalIds = action === "stop"
    ? [
      ...m.tokenizer.encode(mon.refusal ?? DEFAULT_REFUSAL, { addSpecialTokens: false }),
      ...(eos !== undefined ? [eos] : []),
    ]
    : [];
  return { layer, threshold, window, action, strength, compass, refusalIds, shift };
}

/**
 * Generates like `model.generate` while the compass watches every new token (see the module
 * doc). Rows are independent: one row's crossing, steer or stop changes no other row.
 * A "stop" refusal is always written in full (then the end-of-sequence token), even past
 * `maxNewTokens`.
 */
export async function generateMonitored(
  model: Model,
  opts: MonitoredGenerateOptions,
): Promise<MonitoredResult> {
  if (!opts?.monitor?.compass) {
    throw new Error("Cannot monitor: pass opts.monitor = { compass, action, ... }");
  }
  const cfg = resolve(model, opts.monitor);
  const promptIds = encodePrompts(model, opts);
  const c = model.config;
  const rh = opts.returnHiddenStates;
  const extra = rh === true
    ? Array.from({ length: c.nLayer + 1 }, (_, i) => i)
    : Array.isArray(rh)
    ? rh.map((l) => (l < 0 ? c.nLayer + 1 + l : l))
    : [];
  const bs = Math.max(1, opts.batchSize ?? 16);
  const rows: Row[] = [];
  for (let s = 0; s < promptIds.length; s += bs) {
    rows.push(...await monitorBatch(model, promptIds.slice(s, s + bs), s, opts, cfg, extra));
    opts.onProgress?.(Math.min(s + bs, promptIds.length), promptIds.length);
  }
  const tk = model.tokenizer;
  const text = rows.map((r) => tk.decode(r.ids, { skipSpecialTokens: true }));
  const { compass: _c, refusalIds: _r, shift: _s, ...settings } = cfg;
  return {
    promptIds,
    tokenIds: rows.map((r) => r.ids),
    text,
    logprobs: rows.map((r) => r.logprobs),
    forced: rows.map((r) => r.forced),
    hiddenStates: extra.length
      ? Object.fromEntries(extra.map((l, j) => [
        l,
        rows.map((r) => {
          const flat = new Float32Array(r.hidden[j].length * c.dModel);
          r.hidden[j].forEach((h, k) => flat.set(h, k * c.dModel));
          return flat;
        }),
      ]))
      : undefined,
    trails: rows.map((r, i) => ({
      prompt: opts.prompts?.[i] ?? tk.decode(promptIds[i], { skipSpecialTokens: true }),
      tokenIds: r.ids,
      tokens: tokenTexts(model, r.ids),
      scores: r.scores,
      running: r.running,
      crossing: r.crossing,
      action: cfg.action,
      actionStep: r.actionStep,
      forced: r.forced,
      text: text[i],
      layer: cfg.layer,
      threshold: cfg.threshold,
      window: cfg.window,
    })),
    settings,
  };
}

/** The format tag of files written by {@link saveAudit}. */
export const AUDIT_FORMAT = "safety-compass.monitor-audit";

/** Writes audit trails (one, several, or a whole run's) as JSON, atomically. */
export async function saveAudit(
  trail: MonitorTrail | readonly MonitorTrail[] | Pick<MonitoredResult, "trails">,
  path: string,
): Promise<void> {
  const trails = Array.isArray(trail)
    ? trail
    : "trails" in (trail as object)
    ? (trail as Pick<MonitoredResult, "trails">).trails
    : [trail as MonitorTrail];
  await writeJsonAtomic(path, { format: AUDIT_FORMAT, version: 1, trails });
}
