/**
 * The entry of every {@link WorkerPool} worker (a Deno module Worker): it starts its own
 * tfjs backend, holds one model replica, and answers the operations of lib/parallel/pool.ts's
 * protocol one at a time, in the order received. Text never reaches a worker: prompts,
 * traces and outputs are encoded and decoded on the main thread, so any tokenizer works
 * (the replica's tokenizer knows only the special ids, and "encodes" by looking up the ids
 * the main thread sent with the operation).
 *
 * Operations: init, load, update, generate, forward, collect, grad, trainStart, apply, optState,
 * setOptState, trainEnd, evalLoss, weights (see each handler).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { backendInfo, type BackendOptions, initBackend } from "../engine/backend.ts";
import type { LoadPayload, WorkerReply, WorkerRequest } from "./pool.ts";
import { Model } from "../model/model.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";
import { type Params, uniqueName, variableFrom } from "../model/weights.ts";
import { generate, type GenerateOptions } from "../model/generate.ts";
import { collectActivations, type CollectOptions, type CollectRow } from "../compass/collect.ts";
import { lmLoss, type TokenBatch } from "../optim/loss.ts";
import {
  AdamW,
  type AdamWOptions,
  clipByGlobalNorm,
  clipScale,
  hostGlobalNorm,
} from "../optim/adamw.ts";
import { wasmHeapView } from "../engine/kernels.ts";
import { hostArrays } from "../engine/host_memory.ts";

/** A handler's result and the buffers to transfer with it. */
interface Out {
  value: unknown;
  transfer?: Transferable[];
}

const scope = globalThis as unknown as {
  postMessage(msg: unknown, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
};

let model: Model | undefined;
/** Token ids of texts, sent by the main thread with a collect operation. */
let replay: Map<string, number[]> | undefined;
let train:
  | {
    vars: tf.Variable[];
    slots: { offset: number; size: number }[];
    total: number;
    decay: boolean[];
    clip: number;
    opt: AdamW;
    /** Every worker's summed gradient, worker k's at [k * total, (k + 1) * total). */
    grads: SharedArrayBuffer;
    /** This worker's index in the pool. */
    rank: number;
    /**
     * On wasm with the optimiser's state on the heap: one tensor per variable that each step's
     * reduced gradient is written into, in place (they never leave this worker).
     */
    reduced?: tf.Tensor[];
    /** With the optimiser's state on the host: the reduced gradient, allocated once. */
    hostSum?: Float32Array;
  }
  | undefined;

function replica(): Model {
  if (!model) throw new Error("no model loaded in this worker (the pool ships one with sync())");
  return model;
}

/** The replica's tokenizer: special ids, and the ids the main thread sent for each text. */
function replayTokenizer(t: LoadPayload["tokenizer"]): TextTokenizer {
  const none = (what: string) => () => {
    throw new Error(`${what} runs on the main thread; a worker holds no tokenizer`);
  };
  return {
    vocabSize: t.vocabSize,
    bosId: t.bosId,
    eosId: t.eosId,
    padId: t.padId,
    hasChatTemplate: false,
    encode: (text) => {
      const ids = replay?.get(text);
      if (!ids) {
        throw new Error("text reached a worker without its token ids (encode on the main thread)");
      }
      return ids.slice();
    },
    decode: () => "", // the main thread decodes
    tokenToId: none("tokenToId"),
    idToToken: none("idToToken"),
    applyChatTemplate: none("applyChatTemplate"),
  };
}

function endTraining(): void {
  train?.opt.dispose();
  if (train?.reduced) tf.dispose(train.reduced);
  train = undefined;
}

/**
 * dst[j] = (src_0[o + j] + src_1[o + j] + ... ) * inv: the shards' gradients added in order, each
 * sum rounded to float32, then scaled by the float64 `inv` and rounded once more (the numbers a
 * Float32Array sum and an in-place `*= inv` give).
 */
function reduceInto(dst: Float32Array, srcs: Float32Array[], o: number, inv: number): void {
  const a = srcs[0], n = dst.length;
  if (srcs.length === 1) {
    for (let j = 0; j < n; j++) dst[j] = a[o + j] * inv;
  } else if (srcs.length === 2) {
    const b = srcs[1];
    for (let j = 0; j < n; j++) dst[j] = Math.fround(a[o + j] + b[o + j]) * inv;
  } else {
    for (let j = 0; j < n; j++) {
      let s = a[o + j];
      for (let k = 1; k < srcs.length; k++) s = Math.fround(s + srcs[k][o + j]);
      dst[j] = s * inv;
    }
  }
}

const handlers: Record<string, (payload: never) => Promise<Out> | Out> = {
  /** Starts the backend (wasm + BLAS with one thread by default). */
  async init(p: { backend: "wasm" | "cpu"; blas: boolean; blasThreads: number }) {
    const opts: BackendOptions = { blas: p.blas, blasThreads: p.blasThreads };
    return { value: await initBackend(p.backend, opts) };
  },

  /** Replaces the replica with the shipped weights. */
  load(p: LoadPayload) {
    endTraining();
    model?.dispose();
    model = undefined;
    const params: Params = new Map();
    const copy = tf.getBackend() !== "wasm"; // wasm copies into its heap; others may keep the view
    try {
      for (const s of p.slots) {
        const size = s.shape.reduce((a, b) => a * b, 1);
        const view = new Float32Array(p.buffer, s.offset * 4, size);
        const t = tf.tensor(copy ? view.slice() : view, s.shape, "float32");
        params.set(s.name, variableFrom(t, s.trainable, uniqueName(s.name)));
      }
    } catch (err) {
      tf.dispose([...params.values()]);
      throw err;
    }
    model = new Model({
      config: p.config,
      tokenizer: replayTokenizer(p.tokenizer),
      params,
      source: "worker replica",
      backend: backendInfo()!,
    });
    return { value: model.numParams };
  },

  /** Overwrites some parameters of the replica (same names and shapes) with shipped values. */
  update(p: LoadPayload) {
    const m = replica();
    for (const s of p.slots) {
      const v = m.params.get(s.name);
      if (!v) throw new Error(`update: the replica has no parameter '${s.name}'`);
      const size = s.shape.reduce((a, b) => a * b, 1);
      const view = new Float32Array(p.buffer, s.offset * 4, size);
      const t = tf.tensor(tf.getBackend() !== "wasm" ? view.slice() : view, s.shape, "float32");
      v.assign(t);
      t.dispose();
    }
    return { value: p.slots.length };
  },

  /** `generate` over token ids (rowOffset keeps the seeds global); text is decoded by the caller. */
  async generate(opts: GenerateOptions) {
    const g = await generate(replica(), opts);
    const transfer: Transferable[] = [];
    for (const rows of Object.values(g.hiddenStates ?? {})) {
      for (const r of rows) transfer.push(r.buffer);
    }
    const { tokenIds, logprobs, forced, hiddenStates } = g;
    return { value: { tokenIds, logprobs, forced, hiddenStates }, transfer };
  },

  /** One forward pass; logits (all positions) and the requested hidden states as flat arrays. */
  async forward(
    p: {
      ids: number[][];
      attentionMask?: number[][];
      logits: "all" | "last" | "none";
      hiddenStates?: number[];
    },
  ) {
    const m = replica();
    const f = m.forward(p.ids, {
      attentionMask: p.attentionMask,
      logits: p.logits,
      hiddenStates: p.hiddenStates,
    });
    try {
      const logits = f.logits ? (await f.logits.data()) as Float32Array : undefined;
      const hidden: Record<number, Float32Array> = {};
      for (const l of p.hiddenStates ?? []) {
        const layer = l < 0 ? m.config.nLayer + 1 + l : l;
        hidden[l] = (await f.hiddenStates[layer].data()) as Float32Array;
      }
      const transfer = [
        ...(logits ? [logits.buffer] : []),
        ...Object.values(hidden).map((h) => h.buffer),
      ];
      return { value: { logits, hiddenStates: hidden }, transfer };
    } finally {
      tf.dispose([...(f.logits ? [f.logits] : []), ...f.hiddenStates.filter(Boolean)]);
    }
  },

  /** collectActivations over rows whose texts come with their token ids. */
  async collect(p: { rows: CollectRow[]; ids: [string, number[]][]; opts: CollectOptions }) {
    replay = new Map(p.ids);
    try {
      const a = await collectActivations(replica(), p.rows, { ...p.opts, progress: "silent" });
      const data: Record<number, Float32Array> = {};
      const tokens: Record<number, Float32Array[]> = {};
      const transfer: Transferable[] = [];
      for (const l of a.layers) {
        data[l] = a.data.get(l)!.data;
        transfer.push(data[l].buffer);
        if (a.tokens) {
          tokens[l] = a.tokens.get(l)!.map((m) => m.data);
          transfer.push(...tokens[l].map((t) => t.buffer));
        }
      }
      return {
        value: {
          layers: a.layers,
          data,
          tokens: a.tokens ? tokens : undefined,
          tokenCounts: a.tokenCounts,
        },
        transfer,
      };
    } finally {
      replay = undefined;
    }
  },

  /**
   * Starts data-parallel training: the trained variables (by name, in order), AdamW, the shared
   * gradient buffer and this worker's rank in it.
   */
  trainStart(
    p: {
      names: string[];
      decay: boolean[];
      clip: number;
      adamw: AdamWOptions;
      grads: SharedArrayBuffer;
      rank: number;
      total: number;
    },
  ) {
    endTraining();
    const m = replica();
    const vars = p.names.map((n) => {
      const v = m.params.get(n);
      if (!v) throw new Error(`trainStart: the replica has no parameter '${n}'`);
      return v;
    });
    let total = 0;
    const slots = vars.map((v) => {
      const s = { offset: total, size: v.size };
      total += v.size;
      return s;
    });
    if (total !== p.total || p.grads.byteLength < (p.rank + 1) * total * 4) {
      throw new Error(
        `trainStart: the replica's trained variables hold ${total} values, the main thread's ` +
          `${p.total} (buffer of ${p.grads.byteLength} bytes for rank ${p.rank})`,
      );
    }
    const opt = new AdamW(p.adamw);
    const inPlace = tf.getBackend() === "wasm" && opt.opts.stateLocation === "heap";
    train = {
      vars,
      slots,
      total,
      decay: p.decay,
      clip: p.clip,
      opt,
      grads: p.grads,
      rank: p.rank,
      reduced: inPlace ? vars.map((v) => tf.zeros(v.shape, "float32")) : undefined,
    };
    return { value: total };
  },

  /**
   * Gradients of a shard: for each micro-batch j (n_j target tokens), n_j * d(lmLoss_j),
   * summed: the gradient of the shard's summed NLL, written into this worker's part of the
   * shared gradient buffer. Returns the summed NLL and the tokens.
   */
  async grad(p: { parts: TokenBatch[] }) {
    const m = replica();
    if (!train) throw new Error("grad before trainStart");
    const out = new Float32Array(train.grads, train.rank * train.total * 4, train.total);
    out.fill(0);
    let lossSum = 0, tokens = 0;
    for (const batch of p.parts) {
      const n = batch.lossMask.reduce((a, r) => a + r.slice(1).reduce((x, y) => x + y, 0), 0);
      if (n === 0) continue; // a mean over no tokens: loss 0, gradient 0
      const { value, grads } = tf.variableGrads(
        () => lmLoss(m.config, m.params, batch),
        train.vars,
      );
      const loss = (await value.data())[0];
      value.dispose();
      for (let i = 0; i < train.vars.length; i++) {
        const g = grads[train.vars[i].name];
        // Read in place on wasm (nothing allocates until the loop ends), else copied out.
        const d = wasmHeapView(g) ?? ((await g.data()) as Float32Array);
        const o = train.slots[i].offset;
        for (let j = 0; j < d.length; j++) out[o + j] += n * d[j];
        g.dispose();
      }
      lossSum += n * loss;
      tokens += n;
      if (!Number.isFinite(loss)) break;
    }
    return { value: { lossSum, tokens } };
  },

  /**
   * One identical update on every replica: the all-reduce (the gradients of the workers in
   * `from`, added in that order, times `inv`), clip, AdamW step, then the finiteness check of
   * the weights and moments (`bad`: where a non-finite value is). With the optimiser's state on
   * the host the gradient never enters the backend's heap.
   */
  async apply(p: { from: number[]; inv: number; lrScale: number }) {
    if (!train) throw new Error("apply before trainStart");
    const t = train;
    if (p.from.length === 0) throw new Error("apply: no worker's gradient to add");
    const srcs = p.from.map((k) => new Float32Array(t.grads, k * t.total * 4, t.total));
    if (t.opt.opts.stateLocation === "host") {
      // Reused (a large model's is GBs), in a host memory where AdamW's SIMD pass reads it.
      const sum = t.hostSum ??= hostArrays([[t.total]])[0][0];
      reduceInto(sum, srcs, 0, p.inv);
      const views = t.slots.map((s) => sum.subarray(s.offset, s.offset + s.size));
      const norm = hostGlobalNorm(views);
      await t.opt.stepFromHost(t.vars, views, p.lrScale, t.decay, clipScale(norm, t.clip));
      return { value: { norm, bad: await t.opt.nonFinite(t.vars) } };
    }
    // On wasm the sum is written straight into this worker's own gradient tensors (a view is
    // taken per variable: nothing allocates between taking it and writing through it);
    // elsewhere into new tensors, freed after the step.
    const grads = t.vars.map((v, i) => {
      const { offset, size } = t.slots[i];
      const own = t.reduced?.[i];
      const dst = own ? wasmHeapView(own) : new Float32Array(size);
      if (!dst) throw new Error(`apply: gradient ${i} is not on the wasm heap`);
      reduceInto(dst, srcs, offset, p.inv);
      return own ?? tf.tensor(dst, v.shape, "float32");
    });
    const clipped = clipByGlobalNorm(grads, t.clip);
    try {
      t.opt.step(t.vars, clipped.grads, p.lrScale, t.decay);
    } finally {
      if (clipped.grads !== grads) tf.dispose(clipped.grads);
      if (!t.reduced) tf.dispose(grads);
    }
    return { value: { norm: clipped.norm, bad: await t.opt.nonFinite(t.vars) } };
  },

  /** The optimiser's state (for checkpoints). */
  async optState() {
    if (!train) throw new Error("optState before trainStart");
    // Copied, not transferred: on the cpu backend the arrays may be the moments' own storage.
    return { value: await train.opt.getState() };
  },

  /** Restores the optimiser's state (resumption). */
  setOptState(s: { step: number; m: Float32Array[]; v: Float32Array[] }) {
    if (!train) throw new Error("setOptState before trainStart");
    train.opt.setState(train.vars, s);
    return { value: s.step };
  },

  /** Frees the optimiser. */
  trainEnd() {
    endTraining();
    return { value: true };
  },

  /** Mean response NLL and target tokens of each batch (as sft.ts evalLoss sums them). */
  evalLoss(p: { batches: TokenBatch[] }) {
    const m = replica();
    return {
      value: p.batches.map((batch) => {
        const tokens = batch.lossMask.reduce(
          (a, r) => a + r.slice(1).reduce((x, y) => x + y, 0),
          0,
        );
        const loss = tf.tidy(() => lmLoss(m.config, m.params, batch).dataSync()[0]);
        return { loss, tokens };
      }),
    };
  },

  /** The named parameters' values, one after another (the caller knows the shapes). */
  async weights(p: { names: string[] }) {
    const m = replica();
    const parts = await Promise.all(p.names.map(async (n) => {
      const v = m.params.get(n);
      if (!v) throw new Error(`weights: the replica has no parameter '${n}'`);
      return (await v.data()) as Float32Array;
    }));
    const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of parts) (out.set(x, at), at += x.length);
    return { value: out, transfer: [out.buffer] };
  },
};

function reply(msg: WorkerReply, transfer: Transferable[] = []): void {
  scope.postMessage(msg, [...new Set(transfer)]); // a buffer listed twice cannot be sent
}

let queue: Promise<void> = Promise.resolve();
scope.onmessage = (e: MessageEvent<WorkerRequest>) => {
  const { id, op, payload } = e.data;
  queue = queue.then(async () => {
    const h = handlers[op];
    try {
      if (!h) throw new Error(`unknown operation '${op}'`);
      const out = await h(payload as never);
      reply({ id, ok: true, value: out.value }, out.transfer);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      reply({ id, ok: false, error: { message: e.message, stack: e.stack } });
    }
  });
};
