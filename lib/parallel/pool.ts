/**
 * Data parallelism on one machine: a {@link WorkerPool} of Deno module Workers (one per core
 * by default), each with its own tfjs backend (wasm + the OpenBLAS matmul kernel with one
 * BLAS thread) and its own replica of a model's weights. Work is split by rows, results
 * are merged in input order, and everything seeded stays seeded: the parallel versions of
 * the hot paths give the single-process results (see lib/parallel/generate.ts,
 * lib/parallel/collect.ts, lib/parallel/sft.ts).
 *
 * Weights are shipped, not re-loaded: {@link WorkerPool.sync} copies a model's parameters
 * (config, every tensor, the tokenizer's special ids) through one SharedArrayBuffer to every
 * worker, so a model that exists only in memory (after training, after `addLora`) works the
 * same as one loaded from a folder. The pool remembers which tensors it holds and re-ships
 * only when the model's weights have changed since (a `tf.Variable.assign` gives the variable
 * new storage, which the pool notices).
 *
 * What cannot be sent: JavaScript closures (generation `interventions` such as steering and
 * ablation, custom loss functions, progress callbacks). The parallel functions run callbacks
 * on the main thread and refuse interventions with an error saying so.
 *
 * Permissions: workers inherit the main program's permissions (Deno's default). The BLAS
 * kernel needs `--allow-ffi` (and `--allow-env` for `SAFETY_COMPASS_BLAS`); without them each
 * worker runs tfjs's stock wasm kernels, which {@link WorkerPool.backends} reports. The worker
 * modules are read from disk, so `--allow-read` covers them.
 *
 * OpenBLAS's thread count is process-wide: starting a pool sets it to `blasThreads` (1) for
 * the main thread too, and while a pool runs the main thread's own backend start keeps it at 1
 * (`pinBlasThreads`: a model loaded after the pool started used to set all cores again, and
 * OpenBLAS's helper thread then spun beside the workers). Call `enableBlas({ threads })` after
 * {@link WorkerPool.terminate} to restore it for single-process work.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { pinBlasThreads } from "../engine/blas.ts";
import { mapInLanes } from "./lanes.ts";
import type { BackendInfo } from "../engine/backend.ts";
import type { ModelConfig } from "../model/config.ts";
import { externalOf, type Params } from "../model/weights.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";
import type {
  GenerateOptions,
  GenerateResult,
  GenerateRunner,
  Generator,
} from "../model/generate.ts";
import type { Model } from "../model/model.ts";
import type { Activations } from "../compass/activations.ts";
import type { CollectInput, CollectOptions, CollectRunner } from "../compass/collect.ts";
import type { SftExample, SftOptions, SftResult, SftRunner } from "../train/sft.ts";
import { generateOnWorkers } from "./generate.ts";
import { collectOnWorkers } from "./collect.ts";
import { trainSftOnWorkers } from "./sft.ts";

/** Options of {@link WorkerPool.start}. */
export interface PoolOptions {
  /** Workers to start. @default navigator.hardwareConcurrency (at least 1) */
  workers?: number;
  /** The tfjs backend of every worker. @default "wasm" */
  backend?: "wasm" | "cpu";
  /** Register the OpenBLAS matmul kernels in each worker (when present and FFI is allowed). @default true */
  blas?: boolean;
  /** BLAS threads per worker (OpenBLAS: one process-wide setting). @default 1 */
  blasThreads?: number;
}

/** What a pool needs of a model to replicate it: its config, weights and special token ids. */
export interface Replicable {
  /** The architecture and sizes. */
  config: ModelConfig;
  /** The weights (float32 tf.Variables), LoRA adapters included. */
  params: Params;
  /** Only `vocabSize`, `bosId`, `eosId` and `padId` are sent; text is encoded on the main thread. */
  tokenizer: Pick<TextTokenizer, "vocabSize" | "bosId" | "eosId" | "padId">;
}

/** A failure inside one worker: which worker, which operation, and the worker's own error. */
export class WorkerError extends Error {
  /** Index of the worker (0-based). */
  readonly worker: number;
  /** The operation that failed (e.g. "generate", "grad", "start"). */
  readonly op: string;
  /** The error's stack inside the worker, when it had one. */
  readonly workerStack?: string;

  /** Builds the message `worker <i> failed in <op>: <message>`. */
  constructor(worker: number, op: string, message: string, workerStack?: string) {
    super(`worker ${worker} failed in ${op}: ${message}`);
    this.name = "WorkerError";
    this.worker = worker;
    this.op = op;
    this.workerStack = workerStack;
  }
}

/** A request to a worker (the protocol of lib/parallel/worker_main.ts). */
export interface WorkerRequest {
  /** Request id, echoed in the reply. */
  id: number;
  /** The operation's name. */
  op: string;
  /** Its structured-clonable argument. */
  payload: unknown;
}

/** A worker's reply to a {@link WorkerRequest}. */
export type WorkerReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { message: string; stack?: string } };

/** One parameter inside the shared weight buffer sent by {@link WorkerPool.sync}. */
export interface ParamSlot {
  /** Canonical name (as in `model.params`). */
  name: string;
  /** Its shape. */
  shape: number[];
  /** Whether it is a trainable variable. */
  trainable: boolean;
  /** First float of the parameter in the buffer. */
  offset: number;
}

/** The payload of the "load" (a whole replica) and "update" (some parameters) operations. */
export interface LoadPayload {
  /** The model's config. */
  config: ModelConfig;
  /** The tokenizer's vocabulary size and special ids (workers hold no tokenizer). */
  tokenizer: { vocabSize: number; bosId?: number; eosId?: number; padId?: number };
  /** Where each shipped parameter lies in `buffer`. */
  slots: ParamSlot[];
  /** Every parameter's floats, one after another (shared, so sent without copies). */
  buffer: SharedArrayBuffer;
}

/** The pools whose exclusive section the current async context runs in. */
const sections = new AsyncLocalStorage<Set<WorkerPool>>();

interface Pending {
  op: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** The storage identity of a variable: tfjs gives it a new dataId on every `assign`. */
function storageOf(v: unknown): object {
  return (v as { dataId: object }).dataId;
}

/** The worker count to use: the option, else the machine's cores; checked. */
function workerCount(n: number | undefined): number {
  const count = n ?? Math.max(1, navigator.hardwareConcurrency ?? 1);
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`Cannot start a worker pool of ${n} workers: pass a whole number >= 1`);
  }
  return count;
}

/**
 * N Deno module Workers, each holding a replica of one model on its own tfjs backend. Start
 * with {@link WorkerPool.start}; stop with {@link WorkerPool.terminate} (or `await using`).
 * The parallel operations are functions that take the pool (`generateOnWorkers`,
 * `collectOnWorkers`, `trainSft(..., { workers })`), or route through it when a model has
 * `model.workers = pool`.
 */
export class WorkerPool implements AsyncDisposable, GenerateRunner, CollectRunner, SftRunner {
  /** Number of workers. */
  readonly size: number;
  /** Each worker's backend, as its `initBackend` reported it (BLAS on or off, and why). */
  readonly backends: BackendInfo[];
  readonly #workers: Worker[];
  readonly #pending: Map<number, Pending>[];
  #nextId = 1;
  #broken?: string;
  #closed = false;
  #pinned = false;
  /** The replica the workers hold: the model's config and its variables' storage at sync. */
  #held?: { config: ModelConfig; storage: Map<string, object> };
  /** The end of the last {@link exclusive} section. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(workers: Worker[], backends: BackendInfo[], pending: Map<number, Pending>[]) {
    this.#workers = workers;
    this.size = workers.length;
    this.backends = backends;
    this.#pending = pending;
  }

  /**
   * Starts the workers and their backends (in parallel; a few seconds each: every worker
   * loads tfjs and its wasm binary). Throws a {@link WorkerError} naming the first worker
   * that failed to start, after stopping the others.
   */
  static async start(opts: PoolOptions = {}): Promise<WorkerPool> {
    const n = workerCount(opts.workers);
    const url = new URL("./worker_main.ts", import.meta.url);
    const workers: Worker[] = [];
    const pending = Array.from({ length: n }, () => new Map<number, Pending>());
    for (let i = 0; i < n; i++) {
      workers.push(new Worker(url.href, { type: "module", name: `safety-compass worker ${i}` }));
    }
    // The pool is built before the workers answer, so that crash handlers can reach it.
    const pool = new WorkerPool(workers, [], pending);
    workers.forEach((w, i) => pool.#listen(w, i));
    const init = {
      backend: opts.backend ?? "wasm",
      blas: opts.blas ?? true,
      blasThreads: opts.blasThreads ?? 1,
    };
    const results = await Promise.allSettled(
      workers.map((_, i) => pool.call<BackendInfo>(i, "init", init)),
    );
    const failed = results.findIndex((r) => r.status === "rejected");
    if (failed >= 0) {
      await pool.terminate();
      const err = (results[failed] as PromiseRejectedResult).reason as Error;
      throw err instanceof WorkerError
        ? new WorkerError(failed, "start", err.message.replace(/^worker \d+ failed in \w+: /, ""))
        : err;
    }
    pool.backends.push(...results.map((r) => (r as PromiseFulfilledResult<BackendInfo>).value));
    pinBlasThreads(+1);
    pool.#pinned = true;
    return pool;
  }

  #listen(w: Worker, i: number): void {
    w.onmessage = (e: MessageEvent<WorkerReply>) => {
      const msg = e.data;
      const p = this.#pending[i].get(msg.id);
      if (!p) return;
      this.#pending[i].delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new WorkerError(i, p.op, msg.error.message, msg.error.stack));
    };
    w.onerror = (e: ErrorEvent) => {
      e.preventDefault(); // keep the main program alive: the pool reports the crash
      this.#crash(i, `crashed: ${e.message}`);
    };
    w.onmessageerror = () => this.#crash(i, "sent a message that could not be deserialised");
  }

  #crash(i: number, why: string): void {
    this.#broken ??= `worker ${i} ${why}`;
    for (const [id, p] of this.#pending[i]) {
      this.#pending[i].delete(id);
      p.reject(new WorkerError(i, p.op, why));
    }
  }

  /** Whether the pool can take work (not terminated, no worker crashed). */
  get alive(): boolean {
    return !this.#closed && this.#broken === undefined;
  }

  /**
   * Sends one operation to worker `worker` and resolves with its result (operations run one
   * at a time per worker, in the order sent). `transfer` lists buffers to move, not copy.
   * Rejects with a {@link WorkerError} when the operation throws inside the worker.
   */
  call<T>(worker: number, op: string, payload: unknown, transfer: Transferable[] = []): Promise<T> {
    if (this.#closed) {
      return Promise.reject(
        new Error(`Cannot run '${op}': the worker pool was terminated; start a new one`),
      );
    }
    if (this.#broken !== undefined) {
      return Promise.reject(
        new Error(
          `Cannot run '${op}': the worker pool is broken (${this.#broken}); terminate it and ` +
            `start a new one`,
        ),
      );
    }
    if (!Number.isInteger(worker) || worker < 0 || worker >= this.size) {
      return Promise.reject(
        new Error(`No worker ${worker}: the pool has ${this.size} (0..${this.size - 1})`),
      );
    }
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending[worker].set(id, { op, resolve: resolve as (v: unknown) => void, reject });
      const msg: WorkerRequest = { id, op, payload };
      try {
        this.#workers[worker].postMessage(msg, transfer);
      } catch (err) {
        this.#pending[worker].delete(id);
        reject(
          new Error(
            `Cannot send '${op}' to worker ${worker}: ${(err as Error).message} (only ` +
              `structured-clonable data can be sent: no functions or class instances with closures)`,
            { cause: err },
          ),
        );
      }
    });
  }

  /**
   * Runs `fn` once every section started before it has finished, so that its sync and its
   * tasks see the same replica (two calls for two models at once would otherwise swap the
   * weights under each other). The parallel functions (generate, forward, collect, evalLoss,
   * trainSft on workers) each run in one section. Re-entrant: work started from inside a
   * section (an `onStep` callback that generates) runs at once, in that section.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const held = sections.getStore();
    if (held?.has(this)) return fn(); // already inside one of this pool's sections
    const inside = new Set(held ?? []).add(this);
    const run = this.#queue.then(() => sections.run(inside, fn));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs the same operation on every worker; resolves with the results by worker index.
   * `payload` may be a function of the worker's index, for a payload that differs per worker
   * (its rank); every call settles before the first error is thrown.
   */
  async broadcast<T>(op: string, payload: unknown): Promise<T[]> {
    const of = typeof payload === "function"
      ? payload as (worker: number) => unknown
      : () => payload;
    return await settleAll(
      Array.from({ length: this.size }, (_, i) => this.call<T>(i, op, of(i))),
    );
  }

  /**
   * Runs `tasks` on the workers, each task on the next free worker (so long and short tasks
   * balance), and resolves with the results in task order. `onDone` runs on the main thread
   * after each task, in completion order. After a failure no new task starts; the first
   * error is thrown once the tasks already running have finished.
   */
  map<T, R>(
    tasks: readonly T[],
    run: (task: T, worker: number, index: number) => Promise<R>,
    onDone?: (index: number, result: R) => void,
  ): Promise<R[]> {
    return mapInLanes(tasks, this.size, run, onDone);
  }

  /**
   * Makes every worker hold `model`'s current weights: ships them when the pool holds another
   * model or this one's weights changed since the last sync (any `assign`, any added or
   * removed parameter); otherwise does nothing. When only some parameters of the model the
   * pool holds changed (a training step, LoRA adapters), only those are shipped. Resolves
   * with the number of parameters shipped (0: the workers were up to date).
   */
  async sync(model: Replicable): Promise<number> {
    if (externalOf(model.params)) {
      throw new Error(
        "Cannot run this model on a worker pool: its large weights live outside the wasm heap " +
          "and each worker would need its own copy. Run it on this thread (no `workers`).",
      );
    }
    if (this.holds(model)) return 0;
    const held = this.#held;
    const sameModel = held !== undefined && held.config === model.config &&
      held.storage.size === model.params.size &&
      [...model.params.keys()].every((n) => held.storage.has(n));
    const names = [...model.params]
      .filter(([n, v]) => !sameModel || held!.storage.get(n) !== storageOf(v))
      .map(([n]) => n);
    const slots: ParamSlot[] = [];
    let total = 0;
    for (const name of names) {
      const v = model.params.get(name)!;
      if (v.dtype !== "float32") {
        throw new Error(
          `Cannot ship parameter '${name}' to the workers: its dtype is ${v.dtype}, only ` +
            `float32 parameters can be replicated`,
        );
      }
      slots.push({ name, shape: v.shape.slice(), trainable: v.trainable, offset: total });
      total += v.size;
    }
    const buffer = new SharedArrayBuffer(total * 4);
    const all = new Float32Array(buffer);
    for (const s of slots) {
      all.set((await model.params.get(s.name)!.data()) as Float32Array, s.offset);
    }
    const t = model.tokenizer;
    const payload: LoadPayload = {
      config: model.config,
      tokenizer: { vocabSize: t.vocabSize, bosId: t.bosId, eosId: t.eosId, padId: t.padId },
      slots,
      buffer,
    };
    this.#held = undefined; // until every worker has it
    await this.broadcast(sameModel ? "update" : "load", payload);
    this.markSynced(model);
    return slots.length;
  }

  /** Whether the workers hold exactly `model`'s current weights. */
  holds(model: Replicable): boolean {
    const held = this.#held;
    if (!held || held.config !== model.config || held.storage.size !== model.params.size) {
      return false;
    }
    for (const [name, v] of model.params) {
      if (held.storage.get(name) !== storageOf(v)) return false;
    }
    return true;
  }

  /**
   * Records that the workers hold `model`'s current weights without shipping them (after
   * the main thread copied the replicas' weights into the model, e.g. at the end of
   * data-parallel training).
   */
  markSynced(model: Replicable): void {
    this.#held = {
      config: model.config,
      storage: new Map([...model.params].map(([n, v]) => [n, storageOf(v)])),
    };
  }

  /** Forgets which weights the workers hold (the next {@link sync} ships them). */
  invalidate(): void {
    this.#held = undefined;
  }

  /** Stops every worker (idempotent). Pending operations reject; the pool cannot be reused. */
  terminate(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (this.#pinned) pinBlasThreads(-1);
    this.#workers.forEach((w, i) => {
      w.terminate();
      for (const [id, p] of this.#pending[i]) {
        this.#pending[i].delete(id);
        p.reject(new WorkerError(i, p.op, "the pool was terminated"));
      }
    });
    this.#held = undefined;
    return Promise.resolve();
  }

  /**
   * Generation with the rows split across the workers (lib/parallel/generate.ts); what
   * `generate(model, { workers: pool })` and `model.workers = pool` call.
   */
  generate(model: Generator, opts: GenerateOptions): Promise<GenerateResult> {
    return generateOnWorkers(this, model, opts);
  }

  /** Collection with the batches split across the workers (lib/parallel/collect.ts). */
  collect(model: Model, rows: CollectInput, opts: CollectOptions): Promise<Activations> {
    return collectOnWorkers(this, model, rows, opts);
  }

  /** Data-parallel SFT with a gradient all-reduce (lib/parallel/sft.ts). */
  trainSft(model: Model, examples: SftExample[], opts: SftOptions): Promise<SftResult> {
    return trainSftOnWorkers(this, model, examples, opts);
  }

  /** `await using pool = await WorkerPool.start()` terminates it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.terminate();
  }

  /** A one-line description: workers, backend and BLAS of each. */
  toString(): string {
    const b = this.backends[0];
    const blas = b?.blas?.enabled ? `OpenBLAS ${b.blas.library ?? ""}`.trim() : "stock kernels";
    return `WorkerPool(${this.size} workers, ${b?.name ?? "?"}, ${blas}${
      this.alive ? "" : ", stopped"
    })`;
  }
}

/** Awaits every promise; throws the first rejection once all have settled. */
async function settleAll<T>(ps: Promise<T>[]): Promise<T[]> {
  const rs = await Promise.allSettled(ps);
  const bad = rs.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (bad) throw bad.reason;
  return rs.map((r) => (r as PromiseFulfilledResult<T>).value);
}
