/**
 * Activation collection on a {@link WorkerPool}: `collectActivations(model, rows, { workers })`.
 *
 * The main thread encodes and truncates every row exactly as the single-process path does,
 * sorts the rows by length and cuts the same batches (`batchSize`, lowered to
 * `ceil(rows / workers)` when there are fewer batches than workers, so every worker gets
 * work); each batch is one task, run by the next free worker with `collectActivations` on the
 * batch's token ids, and the pooled rows are put back in input order. With as many batches
 * as workers or more, the batches are the single-process ones, so the values are the same;
 * otherwise they differ by float rounding only (padding is masked).
 *
 * @module
 */

import type { WorkerPool } from "../engine/pool.ts";
import type { Model } from "../model/model.ts";
import { Progress } from "../viz/progress.ts";
import {
  Activations,
  collectActivations,
  type CollectInput,
  type CollectOptions,
  type CollectRow,
  encodeRow,
  rowsOf,
} from "./collect.ts";
import type { Pooling } from "./compass.ts";
import { makeMatrix, type Matrix } from "./matrix.ts";

const POOLINGS: readonly Pooling[] = ["mean", "mean-response", "last", "none"];

/** What a worker returns for one batch (rows in the task's order). */
interface Part {
  layers: number[];
  data: Record<number, Float32Array>;
  tokens?: Record<number, Float32Array[]>;
  tokenCounts: number[];
}

/** The requested layers, resolved and checked as collectActivations does. */
function resolveLayers(model: Model, layers: CollectOptions["layers"]): number[] {
  const c = model.config;
  const out = layers === undefined || layers === "all"
    ? Array.from({ length: c.nLayer + 1 }, (_, i) => i)
    : [...new Set(layers.map((l) => (l < 0 ? c.nLayer + 1 + l : l)))].sort((a, b) => a - b);
  for (const l of out) {
    if (!Number.isInteger(l) || l < 0 || l > c.nLayer) {
      throw new Error(
        `Cannot collect activations: layer ${l} is outside 0..${c.nLayer} (0 = embeddings)`,
      );
    }
  }
  if (out.length === 0) throw new Error("Cannot collect activations: `layers` is empty");
  return out;
}

/** collectOnWorkers inside the pool's exclusive section. */
async function collectOnWorkersHeld(
  pool: WorkerPool,
  model: Model,
  rows: CollectInput,
  opts: CollectOptions = {},
): Promise<Activations> {
  const c = model.config;
  const pooling = opts.pooling ?? "mean";
  if (!POOLINGS.includes(pooling)) {
    throw new Error(`Cannot collect activations: pooling '${pooling}' is not one of ${POOLINGS}`);
  }
  const layers = resolveLayers(model, opts.layers);
  const batchSize = Math.max(1, Math.floor(opts.batchSize ?? 16));
  const maxLength = opts.maxLength ?? c.maxPositions;
  if (!(maxLength >= 1)) throw new Error(`Cannot collect activations: maxLength ${maxLength} < 1`);
  const meta = rowsOf(rows);
  const n = meta.length;
  if (n === 0) return await collectActivations(model, rows, { ...opts, workers: undefined });
  const enc = meta.map((r, i) => encodeRow(model, r, maxLength, i));
  const bare = enc.findIndex((e) => e.responseStart === e.ids.length);
  if (pooling === "mean-response" && bare >= 0) {
    throw new Error(
      `Cannot pool row ${bare} with "mean-response": it has no trace tokens (empty trace, ` +
        `or truncated away); give it a trace or use pooling "mean"`,
    );
  }
  await pool.sync(model);
  const order = Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => enc[b].ids.length - enc[a].ids.length || a - b);
  const size = Math.min(batchSize, Math.ceil(n / pool.size));
  const tasks: number[][] = [];
  for (let s = 0; s < n; s += size) tasks.push(order.slice(s, s + size));
  const d = c.dModel;
  const data = new Map(layers.map((l) => [l, makeMatrix(n, d)]));
  const tokens = pooling === "none"
    ? new Map(layers.map((l) => [l, new Array<Matrix>(n)]))
    : undefined;
  const bar = new Progress({ total: n, label: "collect", unit: "row", mode: opts.progress });
  const t0 = performance.now();
  let done = 0;
  try {
    await pool.map(
      tasks,
      (idx, w) => {
        // Texts become keys whose token ids travel with them (workers hold no tokenizer).
        const ids: [string, number[]][] = [];
        const taskRows: CollectRow[] = idx.map((i) => {
          const e = enc[i];
          ids.push([`p${i}`, e.ids.slice(0, e.responseStart)], [
            `t${i}`,
            e.ids.slice(e.responseStart),
          ]);
          return { prompt: `p${i}`, trace: e.responseStart < e.ids.length ? `t${i}` : undefined };
        });
        const taskOpts: CollectOptions = { layers, pooling, batchSize: size, maxLength };
        return pool.call<Part>(w, "collect", { rows: taskRows, ids, opts: taskOpts });
      },
      (k, part) => {
        const idx = tasks[k];
        for (const l of layers) {
          const out = data.get(l)!, vals = part.data[l];
          idx.forEach((i, b) => out.data.set(vals.subarray(b * d, (b + 1) * d), i * d));
          if (tokens) {
            idx.forEach((i, b) => {
              tokens.get(l)![i] = makeMatrix(part.tokenCounts[b], d, part.tokens![l][b]);
            });
          }
        }
        done += idx.length;
        bar.tick(idx.length);
        opts.onProgress?.(done, n);
      },
    );
  } finally {
    bar.done();
  }
  const seconds = (performance.now() - t0) / 1000;
  const realTokens = enc.reduce((a, e) => a + e.ids.length, 0);
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
    nLayer: c.nLayer,
  });
}

/**
 * {@link collectActivations} with the batches run on `pool`'s workers (see the module
 * notes); the same result, in input order. Ships the model's weights first when the pool
 * does not hold them. `onProgress` and the progress bar run on the main thread.
 */
export function collectOnWorkers(
  pool: WorkerPool,
  model: Model,
  rows: CollectInput,
  opts: CollectOptions = {},
): Promise<Activations> {
  return pool.exclusive(() => collectOnWorkersHeld(pool, model, rows, opts));
}
