/**
 * Gradient accumulation over micro-batches: a step's batch is cut into micro-batches, each
 * one's gradient is computed and added in with its share of the batch loss's denominator, and
 * the sum is clipped and applied once. The supervised losses here (`lmLoss`, the token-wise
 * loss) are means over the whole batch's target tokens, so a micro-batch with `w_k` of the
 * batch's `W` target tokens weighs `w_k / W` (not `1 / K`): the accumulated gradient then
 * equals the full batch's gradient of the same loss, up to float32 rounding.
 *
 * Gradients accumulate where the optimiser keeps its state (`"heap"`: backend tensors;
 * `"host"`: Float32Arrays, read with `await g.data()` and freed at once, so only one
 * micro-batch's gradients are ever in the backend's memory).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { wasmHeapView } from "../engine/kernels.ts";
import { accumulateOnHost } from "../engine/host_passes.ts";
import { hostArrays } from "../engine/host_memory.ts";
import {
  type AdamW,
  clipByGlobalNorm,
  clipScale,
  hostGlobalNorm,
  type StateLocation,
} from "./adamw.ts";
import type { TokenBatch } from "./loss.ts";

/** One micro-batch and its weight: how many terms of the batch loss's mean it holds. */
export interface MicroBatch<B> {
  /** The micro-batch, as the loss function takes it. */
  batch: B;
  /** Its share of the batch loss's denominator (e.g. its target tokens). */
  weight: number;
}

/** How {@link GradientAccumulator.apply} turns the accumulated gradients into an update. */
export interface ApplyOptions {
  /** Global gradient-norm clip (0 = off). @default 0 */
  clip?: number;
  /** Learning-rate multiplier (the schedule's value at this step). @default 1 */
  lrScale?: number;
  /** `decay[i]` = false exempts variable i from weight decay. @default all decayed */
  decay?: boolean[];
}

/** Cuts `items` into consecutive chunks of at most `size` (the last may be shorter). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) {
    throw new Error(`Cannot cut a batch into micro-batches of ${size}: give a whole number >= 1`);
  }
  const out: T[][] = [];
  for (let s = 0; s < items.length; s += size) out.push(items.slice(s, s + size));
  return out;
}

/**
 * The target tokens of a batch (ones in `lossMask[:, 1:]`): the denominator of `lmLoss` and of
 * the token-wise loss, hence a micro-batch's weight.
 */
export function targetTokens(batch: Pick<TokenBatch, "lossMask">): number {
  let n = 0;
  for (const row of batch.lossMask) for (let j = 1; j < row.length; j++) n += row[j];
  return n;
}

/**
 * Accumulates the gradients of a batch's loss over its micro-batches, for a fixed list of
 * variables, then applies them with an {@link AdamW}. Host buffers are kept between steps
 * (no re-allocation); call {@link dispose} when done.
 */
export class GradientAccumulator {
  private heap: tf.Tensor[] = [];
  private host: Float32Array[] = [];
  private ready = false;

  /**
   * An accumulator for `vars`, holding their gradients on the backend or on the host.
   *
   * @param vars the trained variables, in the optimiser's order
   * @param location where gradients accumulate; pass the optimiser's `stateLocation`
   */
  constructor(readonly vars: tf.Variable[], readonly location: StateLocation = "heap") {}

  /**
   * Replaces the accumulated gradients with those of `sum_k (w_k / W) loss(part_k)`, W the
   * total weight, and returns that loss's value. A single part is taken as is (weight 1: the
   * plain full-batch step); parts of weight 0 are skipped (a mean over no terms is 0). On a
   * non-finite micro-batch loss it stops and returns that value: nothing is usable then, and
   * {@link apply} refuses until the next successful call.
   */
  async accumulate<B>(parts: MicroBatch<B>[], loss: (batch: B) => tf.Scalar): Promise<number> {
    this.reset();
    if (parts.length === 0) throw new Error("Cannot accumulate gradients over no micro-batches");
    const total = parts.length === 1 ? 1 : parts.reduce((a, p) => a + p.weight, 0);
    if (!(total >= 0) || parts.some((p) => !(p.weight >= 0))) {
      throw new Error(
        `Micro-batch weights must be finite and >= 0, got ${parts.map((p) => p.weight)}`,
      );
    }
    let value = 0;
    let first = true;
    for (const p of parts) {
      const share = parts.length === 1 ? 1 : p.weight / total;
      if (!(share > 0)) continue;
      const { value: v, grads } = tf.variableGrads(() => loss(p.batch), this.vars);
      const gl = this.vars.map((x) => grads[x.name]);
      const lv = (await v.data())[0];
      v.dispose();
      if (!Number.isFinite(lv)) {
        tf.dispose(gl);
        this.reset();
        return lv;
      }
      value += share * lv;
      if (this.location === "host") await this.addHost(gl, share, first);
      else this.addHeap(gl, share, first);
      first = false;
    }
    if (first) this.zero(); // every part had weight 0: the loss and its gradient are 0
    this.ready = true;
    return value;
  }

  /** Adds `share` x the gradients `gl` to the backend sums (`first`: starts them); frees `gl`. */
  private addHeap(gl: tf.Tensor[], share: number, first: boolean): void {
    if (first) {
      this.heap = gl.map((g) => {
        if (share === 1) return g;
        const s = tf.mul(g, share);
        g.dispose();
        return s;
      });
      return;
    }
    this.heap = this.heap.map((a, i) => {
      const s = tf.tidy(() => tf.add(a, tf.mul(gl[i], share)));
      tf.dispose([a, gl[i]]);
      return s;
    });
  }

  /** Adds `share` x the gradients `gl` to the host sums (`first`: starts them); frees `gl`. */
  private async addHost(gl: tf.Tensor[], share: number, first: boolean): Promise<void> {
    if (this.host.length === 0) this.allocateHost();
    for (let i = 0; i < gl.length; i++) {
      // One SIMD pass where it applies (lib/engine/host_passes.ts), the loop's bits.
      if (accumulateOnHost(this.host[i], gl[i], share, first)) {
        gl[i].dispose();
        continue;
      }
      // On wasm, read the gradient in place (no 4-byte-per-parameter copy out of the heap);
      // nothing allocates between taking the view and the end of the loop.
      const d = wasmHeapView(gl[i]) ?? ((await gl[i].data()) as Float32Array);
      const a = this.host[i];
      if (first) { for (let j = 0; j < a.length; j++) a[j] = share * d[j]; }
      else for (let j = 0; j < a.length; j++) a[j] += share * d[j];
      gl[i].dispose();
    }
  }

  /** The host sums, zero, in WebAssembly memories (lib/engine/host_memory.ts). */
  private allocateHost(): void {
    this.host = hostArrays(this.vars.map((x) => [x.size])).map((g) => g[0]);
  }

  /** Sets the accumulated gradients to zero (every part had weight 0). */
  private zero(): void {
    if (this.location === "host") {
      if (this.host.length === 0) this.allocateHost();
      else this.host.forEach((a) => a.fill(0));
    } else {
      this.heap = this.vars.map((x) => tf.zerosLike(x));
    }
  }

  /** The accumulated gradients, as copies (for inspection and tests). */
  async values(): Promise<Float32Array[]> {
    this.check("read");
    if (this.location === "host") return this.host.map((a) => a.slice());
    return await Promise.all(this.heap.map(async (g) => (await g.data()) as Float32Array));
  }

  /**
   * Clips the accumulated gradients by their global norm and takes one optimiser step (the
   * optimiser's `stateLocation` must match this accumulator's). Returns the norm before
   * clipping. The gradients are consumed.
   */
  async apply(opt: AdamW, o: ApplyOptions = {}): Promise<number> {
    this.check("apply");
    if (opt.opts.stateLocation !== this.location) {
      throw new Error(
        `GradientAccumulator(${this.location}) cannot feed an AdamW whose stateLocation is ` +
          `"${opt.opts.stateLocation}"; give both the same location`,
      );
    }
    const clip = o.clip ?? 0;
    this.ready = false;
    if (this.location === "host") {
      const norm = hostGlobalNorm(this.host);
      await opt.stepFromHost(this.vars, this.host, o.lrScale ?? 1, o.decay, clipScale(norm, clip));
      return norm;
    }
    const gl = this.heap;
    this.heap = [];
    const clipped = clipByGlobalNorm(gl, clip);
    try {
      opt.step(this.vars, clipped.grads, o.lrScale ?? 1, o.decay);
    } finally {
      tf.dispose(clipped.grads === gl ? gl : [...gl, ...clipped.grads]);
    }
    return clipped.norm;
  }

  /** Throws unless gradients are held (`what` names the refused action in the message). */
  private check(what: string): void {
    if (!this.ready) {
      throw new Error(
        `Cannot ${what} accumulated gradients: none are held (call accumulate() first; ` +
          `a non-finite loss or a previous apply() discards them)`,
      );
    }
  }

  /** Drops any accumulated gradients (host buffers are kept for reuse). */
  reset(): void {
    tf.dispose(this.heap);
    this.heap = [];
    this.ready = false;
  }

  /** Frees everything this accumulator holds. */
  dispose(): void {
    this.reset();
    this.host = [];
  }
}
