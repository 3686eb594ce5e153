/**
 * Collecting hidden states for the compass (SCIENCE.md section 1; CRAFT, arXiv 2603.17305):
 * every row is run as `formatPrompt(prompt)` tokens followed by `trace` tokens, in right-
 * padded batches, ONE forward pass per batch (no logits) capturing every requested layer;
 * each batch is pooled on the backend into Float32 rows and its tensors freed before the
 * next, so at most one batch of hidden states is alive. Poolings: mean over the attention
 * mask (prompt included, CRAFT's default), response-only mean, last real token, or none
 * (per-token matrices, for CRAFT's token-drop views). The result, {@link Activations},
 * (lib/compass/activations.ts) saves as `activations.safetensors` + `meta.json` and renders
 * itself in Jupyter.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../model/model.ts";
import { encodePrompt } from "../model/chat.ts";
import { Progress, type ProgressMode } from "../viz/progress.ts";
import type { Pooling } from "./compass.ts";
import { Activations } from "./activations.ts";
import { makeMatrix, type Matrix } from "./matrix.ts";

export type { Pooling };

/** One input row: a prompt, the trace that answers it, and any metadata columns (kept). */
export interface CollectRow {
  /** The user request; formatted with the model's chat template (`model.formatPrompt`). */
  prompt: string;
  /** The response text; absent or "" collects the prompt alone. */
  trace?: string;
  /** safe / unsafe / rethink (or any label the fit maps). */
  traceLabel?: string;
  /** Any other column (id, label, category, split, ...). */
  [column: string]: unknown;
}

/** Rows as an array, or an arquero table (anything with `objects()`). */
export type CollectInput = readonly CollectRow[] | { objects(): object[] };

/** Options of {@link collectActivations}. */
export interface CollectOptions {
  /** Layers to capture (0 = embeddings, negative counts from the end). @default "all" */
  layers?: number[] | "all";
  /**
   * "mean": mean over every real token, prompt included (CRAFT); "mean-response": mean
   * over the trace tokens only; "last": the last real token; "none": per-token matrices
   * (`acts.tokens`), with their masked means in `acts.data`. @default "mean"
   */
  pooling?: Pooling;
  /**
   * Rows per forward pass. One batch holds every requested layer's states at once, about
   * `layers x batchSize x longest row x d_model x 4` bytes: lower it for big models. @default 16
   */
  batchSize?: number;
  /**
   * Longest sequence kept. Longer rows lose prompt tokens from the LEFT first (the trace
   * and the end of the prompt, e.g. the chat template's assistant header, are kept); a
   * trace longer than `maxLength` alone keeps its first `maxLength` tokens and no prompt.
   * Dropped counts are in `acts.truncated`. @default model.config.maxPositions
   */
  maxLength?: number;
  /** Called after each batch with the number of rows done. */
  onProgress?: (done: number, total: number) => void;
  /** Where the progress bar draws (see lib/viz/progress.ts). @default "auto" */
  progress?: ProgressMode;
  /**
   * Run the batches elsewhere, for example on a `WorkerPool` (lib/parallel: same batches,
   * same values). @default undefined (this thread)
   */
  workers?: CollectRunner;
}

/**
 * Something that runs {@link collectActivations} elsewhere with the same values, such as a
 * `WorkerPool` (lib/parallel); the single-process code accepts this and never imports the pool.
 */
export interface CollectRunner {
  /** `collectActivations(model, rows, opts)` on the runner. */
  collect(model: Model, rows: CollectInput, opts: CollectOptions): Promise<Activations>;
}

const POOLINGS: readonly Pooling[] = ["mean", "mean-response", "last", "none"];

/** Rows of an array or an arquero table, checked: a string `prompt`, a string `trace` or none. */
export function rowsOf(input: CollectInput): Record<string, unknown>[] {
  const list = Array.isArray(input)
    ? input as readonly object[]
    : typeof (input as { objects?: unknown }).objects === "function"
    ? (input as { objects(): object[] }).objects()
    : undefined;
  if (!list) {
    throw new Error(
      "Cannot collect activations: rows must be an array of objects or an arquero table",
    );
  }
  return list.map((r, i) => {
    const row = r as Record<string, unknown>;
    if (typeof row?.prompt !== "string") {
      throw new Error(
        `Cannot collect activations: row ${i} has no string field 'prompt' (got ${typeof row
          ?.prompt}); every row needs {prompt, trace?}`,
      );
    }
    if (row.trace !== undefined && row.trace !== null && typeof row.trace !== "string") {
      throw new Error(
        `Cannot collect activations: row ${i} field 'trace' is ${typeof row
          .trace}, expected a string`,
      );
    }
    return { ...row };
  });
}

/** Token ids of one row after truncation, the index of its first trace token, tokens dropped. */
export interface Encoded {
  ids: number[];
  responseStart: number;
  truncated: number;
}

/** Encodes row `i` (`formatPrompt(prompt)` then `trace`) and truncates it to `maxLength`. */
export function encodeRow(
  model: Model,
  row: Record<string, unknown>,
  maxLength: number,
  i: number,
): Encoded {
  const p = encodePrompt(model.tokenizer, row.prompt as string);
  const trace = (row.trace as string | undefined) ?? "";
  const t = trace === "" ? [] : model.tokenizer.encode(trace, { addSpecialTokens: false });
  const keepT = Math.min(t.length, maxLength);
  const keepP = Math.min(p.length, maxLength - keepT);
  const ids = [...p.slice(p.length - keepP), ...t.slice(0, keepT)];
  if (ids.length === 0) {
    throw new Error(`Cannot collect activations: row ${i} has no tokens (empty prompt and trace)`);
  }
  return { ids, responseStart: keepP, truncated: p.length + t.length - ids.length };
}

/** Pooling weights [B, T]: each row's weights over its pooled positions sum to 1. */
function poolWeights(batch: Encoded[], t: number, pooling: Pooling): Float32Array {
  const w = new Float32Array(batch.length * t);
  batch.forEach((e, b) => {
    const n = e.ids.length;
    const from = pooling === "last" ? n - 1 : pooling === "mean-response" ? e.responseStart : 0;
    for (let s = from; s < n; s++) w[b * t + s] = 1 / (n - from);
  });
  return w;
}

/**
 * Runs every row through `model` and pools the hidden states of the requested layers
 * (see {@link CollectOptions}). Batches are formed from rows sorted by length (less
 * padding); results are returned in the input order. Also exported as `collectPairs`.
 */
export async function collectActivations(
  model: Model,
  rows: CollectInput,
  opts: CollectOptions = {},
): Promise<Activations> {
  if (opts.workers) return await opts.workers.collect(model, rows, opts);
  const plan = planCollection(model, rows, opts);
  const { pooling, layers, batchSize, enc, n, data, tokens, order } = plan;
  const d = model.config.dModel;
  const pad = model.tokenizer.padId ?? model.config.padTokenId ?? model.tokenizer.eosId ?? 0;
  const bar = new Progress({ total: n, label: "collect", unit: "row", mode: opts.progress });
  const t0 = performance.now();
  let realTokens = 0;
  try {
    for (let s = 0; s < n; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const batch = idx.map((i) => enc[i]);
      const t = batch[0].ids.length; // longest first: rows are sorted by length
      const ids = batch.map((e) => [...e.ids, ...new Array(t - e.ids.length).fill(pad)]);
      const mask = batch.map((e) => e.ids.map(() => 1).concat(new Array(t - e.ids.length).fill(0)));
      const w = poolWeights(batch, t, pooling === "none" ? "mean" : pooling);
      const f = model.forward(ids, { attentionMask: mask, hiddenStates: layers, logits: "none" });
      try {
        for (const l of layers) {
          const h = f.hiddenStates[l]; // [B, T, d]
          const pooled = tf.tidy(() => {
            const weights = tf.tensor3d(w, [batch.length, t, 1]);
            return tf.sum(tf.mul(h, weights), 1); // [B, d]
          });
          const vals = await pooled.data() as Float32Array;
          pooled.dispose();
          const out = data.get(l)!;
          idx.forEach((i, b) => out.data.set(vals.subarray(b * d, (b + 1) * d), i * d));
          if (tokens) {
            const all = await h.data() as Float32Array;
            idx.forEach((i, b) => {
              const len = batch[b].ids.length;
              tokens.get(l)![i] = makeMatrix(len, d, all.slice(b * t * d, (b * t + len) * d));
            });
          }
        }
      } finally {
        tf.dispose(f.hiddenStates.filter(Boolean));
      }
      realTokens += batch.reduce((a, e) => a + e.ids.length, 0);
      bar.tick(idx.length);
      opts.onProgress?.(Math.min(s + batchSize, n), n);
    }
  } finally {
    bar.done();
  }
  return finishCollection(model, plan, t0, realTokens);
}

/** What both collection paths (single process and workers) prepare before the forwards. */
export interface CollectionPlan {
  pooling: Pooling;
  /** Resolved, sorted, checked layer indices (0 = embeddings). */
  layers: number[];
  batchSize: number;
  maxLength: number;
  meta: Record<string, unknown>[];
  enc: Encoded[];
  n: number;
  /** One [n, dModel] matrix per layer, filled in input order. */
  data: Map<number, Matrix>;
  /** Per-token states per layer and row (pooling "none" only). */
  tokens?: Map<number, Matrix[]>;
  /** Row indices, longest first (ties in input order): the batching order. */
  order: number[];
}

/**
 * Checks the options, encodes and truncates every row and allocates the outputs: the part
 * of {@link collectActivations} shared with the worker-pool path. Throws on an unknown
 * pooling, a layer outside `0..nLayer`, an empty layer list, `maxLength < 1`, or a row
 * with no trace tokens under "mean-response".
 */
export function planCollection(
  model: Model,
  rows: CollectInput,
  opts: CollectOptions = {},
): CollectionPlan {
  const c = model.config;
  const pooling = opts.pooling ?? "mean";
  if (!POOLINGS.includes(pooling)) {
    throw new Error(`Cannot collect activations: pooling '${pooling}' is not one of ${POOLINGS}`);
  }
  const layers = opts.layers === undefined || opts.layers === "all"
    ? Array.from({ length: c.nLayer + 1 }, (_, i) => i)
    : [...new Set(opts.layers.map((l) => (l < 0 ? c.nLayer + 1 + l : l)))].sort((a, b) => a - b);
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l > c.nLayer) {
      throw new Error(
        `Cannot collect activations: layer ${l} is outside 0..${c.nLayer} (0 = embeddings)`,
      );
    }
  }
  if (layers.length === 0) throw new Error("Cannot collect activations: `layers` is empty");
  const batchSize = Math.max(1, Math.floor(opts.batchSize ?? 16));
  const maxLength = opts.maxLength ?? c.maxPositions;
  if (!(maxLength >= 1)) throw new Error(`Cannot collect activations: maxLength ${maxLength} < 1`);
  const meta = rowsOf(rows);
  const enc = meta.map((r, i) => encodeRow(model, r, maxLength, i));
  const bare = enc.findIndex((e) => e.responseStart === e.ids.length);
  if (pooling === "mean-response" && bare >= 0) {
    throw new Error(
      `Cannot pool row ${bare} with "mean-response": it has no trace tokens (empty trace, ` +
        `or truncated away); give it a trace or use pooling "mean"`,
    );
  }
  const n = meta.length;
  const data = new Map(layers.map((l) => [l, makeMatrix(n, c.dModel)]));
  const tokens = pooling === "none"
    ? new Map(layers.map((l) => [l, new Array<Matrix>(n)]))
    : undefined;
  const order = Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => enc[b].ids.length - enc[a].ids.length || a - b);
  return { pooling, layers, batchSize, maxLength, meta, enc, n, data, tokens, order };
}

/** Wraps a filled {@link CollectionPlan} as {@link Activations} (timing from `t0`). */
export function finishCollection(
  model: Model,
  plan: CollectionPlan,
  t0: number,
  realTokens: number,
): Activations {
  const seconds = (performance.now() - t0) / 1000;
  const { meta, layers, pooling, data, tokens, enc } = plan;
  return new Activations({
    meta,
    layers,
    pooling,
    data,
    tokens,
    tokenCounts: enc.map((e) => e.ids.length),
    responseStart: enc.map((e) => e.responseStart),
    truncated: enc.map((e) => e.truncated),
    tokensPerSecond: seconds > 0 ? realTokens / seconds : 0,
    seconds,
    model: model.source,
    nLayer: model.config.nLayer,
  });
}

/** Alias of {@link collectActivations} (DESIGN.md's name for collecting contrastive pairs). */
export const collectPairs: typeof collectActivations = collectActivations;
