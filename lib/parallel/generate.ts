/**
 * A model's hot paths on a {@link WorkerPool}: generation and the forward pass, split by rows
 * across the workers and merged in input order.
 *
 * Generation on workers gives the single-process result token for token: prompts are
 * encoded and outputs decoded on the main thread, each task carries its rows' global index
 * (`rowOffset`), so row i is still seeded with `seed * 1_000_003 + i`, and forced spans
 * travel with their rows. Rows are cut into tasks of `min(batchSize, ceil(rows / workers))`,
 * each generated as one batch on the next free worker; a row's tokens do not depend on its
 * batch (left padding is masked), so the split changes nothing but float rounding far below
 * the gap between two tokens' logits.
 *
 * Not sendable, hence refused: `interventions` (steering and ablation closures). Progress
 * callbacks run on the main thread.
 *
 * @module
 */

import type { WorkerPool } from "./pool.ts";
import {
  encodePrompts,
  generate,
  type GenerateOptions,
  type GenerateResult,
  type Generator,
} from "../model/generate.ts";

/** What a worker returns for one generation task (text is decoded here). */
type Part = Pick<GenerateResult, "tokenIds" | "logprobs" | "forced" | "hiddenStates">;

/** Cuts `n` rows into tasks of at most `size`: their first rows. */
function taskStarts(n: number, size: number): number[] {
  return Array.from({ length: Math.ceil(n / size) }, (_, k) => k * size);
}

/** The rows per task: `batchSize`, lowered so that every worker gets work. */
function taskSize(n: number, batchSize: number | undefined, workers: number): number {
  return Math.min(Math.max(1, batchSize ?? 16), Math.max(1, Math.ceil(n / workers)));
}

/** generateOnWorkers inside the pool's exclusive section. */
async function generateOnWorkersHeld(
  pool: WorkerPool,
  model: Generator,
  opts: GenerateOptions,
): Promise<GenerateResult> {
  if (opts.interventions?.length) {
    throw new Error(
      "Cannot generate on workers: `interventions` (steering, ablation) are functions, and " +
        "functions cannot be sent to worker threads. Generate without a pool for this call " +
        "(no `workers` option; unset `model.workers`), or drop the interventions",
    );
  }
  const { onProgress, workers: _w, interventions: _i, prompts: _p, force, chat: _c, ...rest } =
    opts;
  const promptIds = encodePrompts(model, opts);
  const n = promptIds.length;
  const local: Generator = {
    config: model.config,
    params: model.params,
    tokenizer: model.tokenizer,
  };
  if (n === 0) return await generate(local, { ...opts, workers: undefined });
  await pool.sync(model);
  const size = taskSize(n, opts.batchSize, pool.size);
  let done = 0;
  const parts = await pool.map(
    taskStarts(n, size),
    (s, w) =>
      pool.call<Part>(w, "generate", {
        ...rest,
        inputIds: promptIds.slice(s, s + size),
        force: force?.slice(s, s + size),
        rowOffset: (opts.rowOffset ?? 0) + s,
        batchSize: size,
      }),
    (_, part) => {
      done += part.tokenIds.length;
      onProgress?.(done, n);
    },
  );
  const layers = Object.keys(parts[0].hiddenStates ?? {}).map(Number);
  const result: GenerateResult = {
    promptIds,
    tokenIds: parts.flatMap((p) => p.tokenIds),
    text: [],
    logprobs: parts.flatMap((p) => p.logprobs),
    forced: parts.flatMap((p) => p.forced),
    hiddenStates: parts[0].hiddenStates
      ? Object.fromEntries(layers.map((l) => [l, parts.flatMap((p) => p.hiddenStates![l])]))
      : undefined,
  };
  result.text = result.tokenIds.map((t) => model.tokenizer.decode(t, { skipSpecialTokens: true }));
  return result;
}

/**
 * `model.generate(opts)` with the rows split across `pool`'s workers (see the module notes);
 * also reached by `generate(model, { ..., workers: pool })` and by `model.workers = pool`.
 * Ships the model's weights first when the pool does not hold them. Throws when `opts` has
 * interventions (closures cannot be sent to workers).
 */
export function generateOnWorkers(
  pool: WorkerPool,
  model: Generator,
  opts: GenerateOptions,
): Promise<GenerateResult> {
  return pool.exclusive(() => generateOnWorkersHeld(pool, model, opts));
}

/** Options of {@link forwardOnWorkers}. */
export interface WorkerForwardOptions {
  /** 1 = real token, 0 = padding, [B, T]. @default all ones */
  attentionMask?: number[][];
  /** Logits of every position, of the last one, or none. @default "all" */
  logits?: "all" | "last" | "none";
  /** Layers whose hidden states to return (0 = embeddings, negative from the end). @default none */
  hiddenStates?: number[];
}

/** What {@link forwardOnWorkers} returns: flat row-major Float32Arrays (no tensors). */
export interface WorkerForwardOutput {
  /** [B, T, V] (or [B, 1, V] with logits "last"); undefined with logits "none". */
  logits?: Float32Array;
  /** layer (as requested) -> [B, T, d]. */
  hiddenStates: Record<number, Float32Array>;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

/** forwardOnWorkers inside the pool's exclusive section. */
async function forwardOnWorkersHeld(
  pool: WorkerPool,
  model: Generator,
  inputIds: number[][],
  opts: WorkerForwardOptions = {},
): Promise<WorkerForwardOutput> {
  if (inputIds.length === 0) {
    throw new Error("forwardOnWorkers: inputIds must be a non-empty [B, T] array");
  }
  await pool.sync(model);
  const size = Math.ceil(inputIds.length / pool.size);
  type Out = { logits?: Float32Array; hiddenStates: Record<number, Float32Array> };
  const parts = await pool.map(
    taskStarts(inputIds.length, size),
    (s, w) =>
      pool.call<Out>(w, "forward", {
        ids: inputIds.slice(s, s + size),
        attentionMask: opts.attentionMask?.slice(s, s + size),
        logits: opts.logits ?? "all",
        hiddenStates: opts.hiddenStates,
      }),
  );
  return {
    logits: parts[0].logits ? concat(parts.map((p) => p.logits!)) : undefined,
    hiddenStates: Object.fromEntries(
      (opts.hiddenStates ?? []).map((l) => [l, concat(parts.map((p) => p.hiddenStates[l]))]),
    ),
  };
}

/**
 * One forward pass over `inputIds` [B, T] with the rows split across `pool`'s workers
 * (ceil(B / workers) rows each); returns the logits and hidden states as flat arrays, rows
 * in input order. Ships the model's weights first when the pool does not hold them.
 */
export function forwardOnWorkers(
  pool: WorkerPool,
  model: Generator,
  inputIds: number[][],
  opts: WorkerForwardOptions = {},
): Promise<WorkerForwardOutput> {
  return pool.exclusive(() => forwardOnWorkersHeld(pool, model, inputIds, opts));
}
