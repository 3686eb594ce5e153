/**
 * AdamW (Loshchilov & Hutter, arXiv 1711.05101): Adam with decoupled weight decay. The
 * state can be exported and restored exactly, so a resumed run continues bit for bit.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { variableFrom } from "../model/weights.ts";

/** AdamW settings. */
export interface AdamWOptions {
  /** Learning rate. */
  lr: number;
  /** @default 0.9 */
  beta1?: number;
  /** @default 0.999 */
  beta2?: number;
  /** @default 1e-8 */
  eps?: number;
  /** Decoupled weight decay. @default 0.01 */
  weightDecay?: number;
}

/** Exported optimiser state. */
export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

/** AdamW over a fixed list of variables. */
export class AdamW {
  readonly opts: Required<AdamWOptions>;
  private m: tf.Variable[] = [];
  private v: tf.Variable[] = [];
  /** Steps taken. */
  t = 0;

  constructor(opts: AdamWOptions) {
    this.opts = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, ...opts };
  }

  /**
   * One update. `decay[i]` = false exempts a variable from weight decay (norms, biases).
   * `lrScale` multiplies the learning rate (schedules).
   */
  step(vars: tf.Variable[], grads: tf.Tensor[], lrScale = 1, decay?: boolean[]): void {
    if (this.m.length === 0) {
      this.m = vars.map((x) => variableFrom(tf.zerosLike(x), false));
      this.v = vars.map((x) => variableFrom(tf.zerosLike(x), false));
    }
    if (vars.length !== this.m.length) {
      throw new Error(`AdamW: ${vars.length} variables given, ${this.m.length} expected`);
    }
    this.t += 1;
    const { beta1, beta2, eps, weightDecay } = this.opts;
    const lr = this.opts.lr * lrScale;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2 = 1 - Math.pow(beta2, this.t);
    tf.tidy(() => {
      vars.forEach((x, i) => {
        const g = grads[i];
        const m = tf.add(tf.mul(this.m[i], beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.v[i], beta2), tf.mul(tf.mul(g, g), 1 - beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        const wd = decay?.[i] === false ? 0 : weightDecay;
        const decayed = wd > 0 ? tf.mul(x, 1 - lr * wd) : x;
        x.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    });
  }

  /** The state, as plain arrays. */
  async getState(): Promise<AdamWState> {
    return {
      step: this.t,
      m: await Promise.all(this.m.map(async (x) => (await x.data()) as Float32Array)),
      v: await Promise.all(this.v.map(async (x) => (await x.data()) as Float32Array)),
    };
  }

  /** Restores a state saved by {@link getState}, for these variables. */
  setState(vars: tf.Variable[], s: AdamWState): void {
    this.dispose();
    this.t = s.step;
    this.m = vars.map((x, i) => variableFrom(tf.tensor(s.m[i], x.shape), false));
    this.v = vars.map((x, i) => variableFrom(tf.tensor(s.v[i], x.shape), false));
  }

  /** Frees the moment buffers. */
  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
    this.m = [];
    this.v = [];
  }
}

/** Scales gradients so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipByGlobalNorm(
  grads: tf.Tensor[],
  maxNorm: number,
): { grads: tf.Tensor[]; norm: number } {
  const total = tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.mul(g, g))))));
  const norm = total.dataSync()[0];
  total.dispose();
  if (!(maxNorm > 0) || norm <= maxNorm || !Number.isFinite(norm)) return { grads, norm };
  const scale = maxNorm / (norm + 1e-6);
  return { grads: grads.map((g) => tf.mul(g, scale)), norm };
}

/** Linear warm-up then cosine decay to `minRatio` of the peak: the multiplier at `step`. */
export function warmupCosine(step: number, total: number, warmup: number, minRatio = 0.1): number {
  if (step < warmup) return (step + 1) / Math.max(1, warmup);
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * p));
}
