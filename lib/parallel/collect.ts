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

import type { WorkerPool } from "./pool.ts";
import type { Model } from "../model/model.ts";
import { Progress } from "../viz/progress.ts";
import type { Activations } from "../compass/activations.ts";
import {
  collectActivations,
  type CollectInput,
  type CollectOptions,
  type CollectRow,
  finishCollection,
  planCollection,
} from "../compass/collect.ts";
import { makeMatrix } from "../compass/matrix.ts";

/** What a worker returns for one batch (rows in the task's order). */
interface Part {
  layers: number[];
  data: Record<number, Float32Array>;
  tokens?: Record<number, Float32Array[]>;
  tokenCounts: number[];
}

/** collectOnWorkers inside the pool's exclusive section. */
async function collectOnWorkersHeld(
  pool: WorkerPool,
  model: Model,
  rows: CollectInput,
  opts: CollectOptions = {},
): Promise<Activations> {
  const plan = planCollection(model, rows, opts);
  const { pooling, layers, batchSize, maxLength, enc, n, data, tokens, order } = plan;
  if (n === 0) return await collectActivations(model, rows, { ...opts, workers: undefined });
  await pool.sync(model);
  const size = Math.min(batchSize, Math.ceil(n / pool.size));
  const tasks: number[][] = [];
  for (let s = 0; s < n; s += size) tasks.push(order.slice(s, s + size));
  const d = model.config.dModel;
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
  const realTokens = enc.reduce((a, e) => a + e.ids.length, 0);
  return finishCollection(model, plan, t0, realTokens);
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
