/**
 * AdamW (Loshchilov & Hutter, arXiv 1711.05101): Adam with decoupled weight decay. The
 * state can be exported and restored exactly, so a resumed run continues bit for bit.
 *
 * The moments live on the backend (`stateLocation: "heap"`, fast elementwise kernels) or in
 * host memory as Float32Arrays (`"host"`): tfjs-wasm's heap is wasm32, 4 GiB at most, and
 * full fine-tuning keeps weights, gradients and two moments (4x the parameters' bytes) there;
 * with the moments on the host only weights and one set of gradients remain in the heap.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { adamwSimd, nonFiniteFlags, sumsOfSquares } from "../engine/simd_kernels.ts";
import { wasmHeapView } from "../engine/kernels.ts";
import { adamwOnHost, type HostAdamWNumbers, sumSquaresOnHost } from "../engine/host_passes.ts";
import { hostArrays } from "../engine/host_memory.ts";
import { variableFrom } from "../model/weights.ts";

/** AdamW settings. */
export interface AdamWOptions {
  /** Learning rate. */
  lr: number;
  /** Decay rate of the first moment (mean of the gradients). @default 0.9 */
  beta1?: number;
  /** Decay rate of the second moment (mean of the squared gradients). @default 0.999 */
  beta2?: number;
  /** Added to the denominator's square root for numerical stability. @default 1e-8 */
  eps?: number;
  /** Decoupled weight decay. @default 0.01 */
  weightDecay?: number;
  /**
   * Where the moments m and v live: "heap" as tf.Variables on the backend; "host" as
   * Float32Arrays in JS memory, updated in a JS loop, with the new weights written back by
   * `assign` (for models whose weights, gradients and moments outgrow the wasm heap). The
   * two give the same result within float32 rounding. @default "heap"
   */
  stateLocation?: StateLocation;
}

/**
 * Throws, naming the field, the value and the fix, when an AdamW setting is not a usable
 * number: `lr` outside [0, 1] (an AdamW step moves every weight by about `lr`, so a larger
 * one, or NaN / Infinity, wrecks the weights in one step), `weightDecay` < 0 or not finite,
 * betas outside [0, 1), `eps` <= 0 or not finite. The AdamW constructor calls it, so every
 * trainer refuses such a run before any work.
 *
 * @example
 * ```ts
 * checkAdamWOptions({ lr: 1e-4, weightDecay: 0.01 }); // fine
 * try {
 *   checkAdamWOptions({ lr: NaN });
 * } catch (err) {
 *   console.log((err as Error).message); // "AdamW: lr is NaN; use a learning rate in [0, 1] ..."
 * }
 * ```
 */
export function checkAdamWOptions(o: AdamWOptions, label = "AdamW"): void {
  const fail = (field: string, v: unknown, fix: string) => {
    throw new Error(`${label}: ${field} is ${v}; ${fix}`);
  };
  if (!(o.lr >= 0 && o.lr <= 1)) {
    fail(
      "lr",
      o.lr,
      "use a learning rate in [0, 1] (AdamW moves each weight by about lr per step; typical: 1e-5 to 1e-3)",
    );
  }
  const wd = o.weightDecay;
  if (wd !== undefined && !(wd >= 0 && Number.isFinite(wd))) {
    fail("weightDecay", wd, "use a finite number >= 0 (0 = no decay)");
  }
  for (const [k, b] of [["beta1", o.beta1], ["beta2", o.beta2]] as const) {
    if (b !== undefined && !(b >= 0 && b < 1)) fail(k, b, "use a decay rate in [0, 1)");
  }
  if (o.eps !== undefined && !(o.eps > 0 && Number.isFinite(o.eps))) {
    fail("eps", o.eps, "use a small finite number > 0 (default 1e-8)");
  }
}

/**
 * Throws when a global gradient-norm clip is not a usable number (NaN, negative, infinite);
 * `label` starts the message ("SFT", "trainRL").
 *
 * @example
 * ```ts
 * checkClip(1, "SFT"); // fine; 0 turns clipping off
 * ```
 */
export function checkClip(clip: number, label: string): void {
  if (!(clip >= 0 && Number.isFinite(clip))) {
    throw new Error(`${label}: clip is ${clip}; use a finite gradient-norm bound >= 0 (0 = off)`);
  }
}

/** A non-finite value found by {@link AdamW.nonFinite}: where it is. */
export interface NonFinite {
  /** Index of the variable in the list the optimiser updates. */
  index: number;
  /** Which of its tensors: the weights or one of AdamW's moments. */
  what: "weights" | "first moment" | "second moment";
}

/** Where optimiser state (and accumulated gradients) live: on the backend or in host memory. */
export type StateLocation = "heap" | "host";

/** Exported optimiser state. */
export interface AdamWState {
  /** Steps taken (the bias correction's t). */
  step: number;
  /** First moments, one array per variable, in the variables' order. */
  m: Float32Array[];
  /** Second moments, one array per variable, in the variables' order. */
  v: Float32Array[];
}

/** AdamW over a fixed list of variables. */
export class AdamW {
  /** The settings, with every default filled in. */
  readonly opts: Required<AdamWOptions>;
  private m: tf.Variable[] = [];
  private v: tf.Variable[] = [];
  private hm: Float32Array[] = [];
  private hv: Float32Array[] = [];
  /** Host mode: per variable, what its last update left non-finite (undefined: nothing). */
  private hostBad: (NonFinite["what"] | undefined)[] = [];
  /** Steps taken. */
  t = 0;

  /** An optimiser with these settings; its moments are allocated on the first step. */
  constructor(opts: AdamWOptions) {
    this.opts = {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.01,
      stateLocation: "heap",
      ...opts,
    };
    checkAdamWOptions(this.opts);
    if (this.opts.stateLocation !== "heap" && this.opts.stateLocation !== "host") {
      throw new Error(
        `AdamW: stateLocation must be "heap" or "host", got ${JSON.stringify(opts.stateLocation)}`,
      );
    }
  }

  /**
   * One update. `decay[i]` = false exempts a variable from weight decay (norms, biases).
   * `lrScale` multiplies the learning rate (schedules). In host mode the gradients are read
   * with `dataSync`; {@link stepFromHost} takes gradients already on the host.
   */
  step(vars: tf.Variable[], grads: tf.Tensor[], lrScale = 1, decay?: boolean[]): void {
    if (this.opts.stateLocation === "host") {
      this.begin(vars);
      vars.forEach((x, i) => {
        this.updateHost(i, x, x.dataSync() as Float32Array, grads[i].dataSync(), 1, lrScale, decay);
      });
      return;
    }
    this.begin(vars);
    const { beta1, beta2, eps } = this.opts;
    const { lr, bc1, bc2 } = this.rates(lrScale);
    // One tidy per variable: the intermediates of all variables at once would be ~15x the
    // parameters' bytes (the reason GPT-2-small could not take a step in the wasm heap).
    vars.forEach((x, i) => {
      // One SIMD pass on wasm (lib/engine/simd_kernels.ts), the same bits as the ops below.
      const fast = adamwSimd(x, this.m[i], this.v[i], grads[i], {
        beta1,
        beta2,
        bc1,
        bc2,
        eps,
        lr,
        weightDecay: this.decayOf(i, decay),
      });
      if (fast) {
        this.m[i].assign(fast[0]);
        this.v[i].assign(fast[1]);
        x.assign(fast[2]);
        tf.dispose(fast);
        return;
      }
      tf.tidy(() => {
        const g = grads[i];
        const m = tf.add(tf.mul(this.m[i], beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.v[i], beta2), tf.mul(tf.mul(g, g), 1 - beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        const wd = this.decayOf(i, decay);
        const decayed = wd > 0 ? tf.mul(x, 1 - lr * wd) : x;
        x.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    });
  }

  /**
   * One update from gradients held on the host (e.g. accumulated over micro-batches), each
   * multiplied by `gradScale` first (global-norm clipping). In heap mode they are uploaded one
   * variable at a time and {@link step} runs on them.
   */
  async stepFromHost(
    vars: tf.Variable[],
    grads: Float32Array[],
    lrScale = 1,
    decay?: boolean[],
    gradScale = 1,
  ): Promise<void> {
    if (grads.length !== vars.length) {
      throw new Error(`AdamW: ${grads.length} gradients given for ${vars.length} variables`);
    }
    if (this.opts.stateLocation === "heap") {
      const gs = vars.map((x, i) =>
        tf.tidy(() => {
          const g = tf.tensor(grads[i], x.shape, "float32");
          return gradScale === 1 ? g : tf.mul(g, gradScale);
        })
      );
      try {
        this.step(vars, gs, lrScale, decay);
      } finally {
        tf.dispose(gs);
      }
      return;
    }
    this.begin(vars);
    for (let i = 0; i < vars.length; i++) {
      if (this.updateHostPass(i, vars[i], grads[i], gradScale, lrScale, decay)) continue;
      // On wasm the weights are read in place: updateHost reads all of w before it allocates.
      const w = wasmHeapView(vars[i]) ?? ((await vars[i].data()) as Float32Array);
      this.updateHost(i, vars[i], w, grads[i], gradScale, lrScale, decay);
    }
  }

  /** Allocates the moments on the first step, checks the variable count, counts the step. */
  private begin(vars: tf.Variable[]): void {
    const host = this.opts.stateLocation === "host";
    const have = host ? this.hm.length : this.m.length;
    if (have === 0) {
      if (host) this.allocateHost(vars.map((x) => x.size));
      else {
        this.m = vars.map((x) => variableFrom(tf.zerosLike(x), false));
        this.v = vars.map((x) => variableFrom(tf.zerosLike(x), false));
      }
    } else if (vars.length !== have) {
      throw new Error(`AdamW: ${vars.length} variables given, ${have} expected`);
    }
    if (host) this.hostBad = vars.map(() => undefined);
    this.t += 1;
  }

  /**
   * The host moments, zero: each variable's m and v side by side in a WebAssembly memory
   * (lib/engine/host_memory.ts), where the SIMD pass of {@link updateHostPass} reads them.
   */
  private allocateHost(sizes: number[]): void {
    const pairs = hostArrays(sizes.map((n) => [n, n]));
    this.hm = pairs.map((p) => p[0]);
    this.hv = pairs.map((p) => p[1]);
  }

  /** This step's learning rate and the bias corrections 1 - beta1^t and 1 - beta2^t. */
  private rates(lrScale: number): { lr: number; bc1: number; bc2: number } {
    return {
      lr: this.opts.lr * lrScale,
      bc1: 1 - Math.pow(this.opts.beta1, this.t),
      bc2: 1 - Math.pow(this.opts.beta2, this.t),
    };
  }

  /** Weight decay of variable `i`: 0 when `decay[i]` is false, else `weightDecay`. */
  private decayOf(i: number, decay?: boolean[]): number {
    return decay?.[i] === false ? 0 : this.opts.weightDecay;
  }

  /**
   * {@link updateHost} as one SIMD pass on the wasm heap and the host memories
   * (lib/engine/host_passes.ts `adamwOnHost`): the same numbers and flags, bit for bit. False
   * where it does not apply (the loop runs).
   */
  private updateHostPass(
    i: number,
    x: tf.Variable,
    g: Float32Array,
    gs: number,
    lrScale: number,
    decay?: boolean[],
  ): boolean {
    const m = this.hm[i], v = this.hv[i];
    if (g.length !== m.length || x.size !== m.length) return false; // the loop says what is wrong
    const r = adamwOnHost(x, g, m, v, this.hostNumbers(i, gs, lrScale, decay));
    if (!r) return false;
    x.assign(r.weights);
    r.weights.dispose();
    this.hostBad[i] = nonFiniteOf(r.flags);
    return true;
  }

  /** The numbers of variable `i`'s host update, for the loop and the pass alike. */
  private hostNumbers(
    i: number,
    gs: number,
    lrScale: number,
    decay?: boolean[],
  ): HostAdamWNumbers {
    const { beta1, beta2, eps } = this.opts;
    const { lr, bc1, bc2 } = this.rates(lrScale);
    return {
      gs,
      beta1,
      c1: 1 - beta1,
      beta2,
      c2: 1 - beta2,
      keep: 1 - lr * this.decayOf(i, decay),
      step: lr / bc1,
      ib2: 1 / bc2,
      eps,
    };
  }

  /**
   * The host update of variable `i`: `w` its current values (read only: on the cpu backend it
   * is the tensor's own storage), `g` its gradient times `gs`. Same arithmetic as the heap
   * path, in float64 with the moments stored as float32.
   */
  private updateHost(
    i: number,
    x: tf.Variable,
    w: Float32Array,
    g: ArrayLike<number>,
    gs: number,
    lrScale: number,
    decay?: boolean[],
  ): void {
    const m = this.hm[i];
    const v = this.hv[i];
    if (g.length !== m.length || w.length !== m.length) {
      throw new Error(
        `AdamW: variable ${i} (${x.name}) has ${w.length} values and a gradient of ${g.length}; ` +
          `its state holds ${m.length}. Pass the same variables, in the same order, every step`,
      );
    }
    const { beta1, c1, beta2, c2, keep, step, ib2, eps } = this.hostNumbers(i, gs, lrScale, decay);
    const out = new Float32Array(m.length);
    // The finiteness check rides along: a float64 sum of float32 values cannot overflow, so
    // each sum is finite exactly when every value it adds is.
    let sm = 0, sv = 0, sw = 0;
    for (let j = 0; j < out.length; j++) {
      const gj = g[j] * gs;
      const mj = Math.fround(beta1 * m[j] + c1 * gj); // the stored (float32) moments
      const vj = Math.fround(beta2 * v[j] + c2 * gj * gj);
      m[j] = mj;
      v[j] = vj;
      out[j] = w[j] * keep - (step * mj) / (Math.sqrt(vj * ib2) + eps);
      sm += mj;
      sv += vj;
      sw += out[j];
    }
    this.hostBad[i] = nonFiniteOf(
      (Number.isFinite(sw) ? 0 : 1) | (Number.isFinite(sm) ? 0 : 2) | (Number.isFinite(sv) ? 0 : 4),
    );
    const t = tf.tensor(out, x.shape, "float32");
    x.assign(t);
    t.dispose();
  }

  /**
   * Whether the last update left every weight of `vars` and every moment finite: undefined
   * when it did, else where the first non-finite value is. Call it after {@link step} and
   * before saving anything. Heap mode on wasm: one read pass over the weights and second
   * moments straight off the heap (lib/engine/simd_kernels.ts `nonFiniteFlags`); on other
   * backends one sum per tensor and one read of the results; host mode: the flags the update
   * loop computed on the way (no extra pass). Reads only: no number changes.
   */
  async nonFinite(vars: tf.Variable[]): Promise<NonFinite | undefined> {
    if (this.opts.stateLocation === "host") {
      const i = this.hostBad.findIndex((w) => w !== undefined);
      return i < 0 ? undefined : { index: i, what: this.hostBad[i]! };
    }
    if (vars.length === 0) return undefined;
    // The weights and the second moments suffice: a non-finite first moment makes the
    // update, hence the new weights, non-finite too (Inf * lr, NaN, Inf / Inf, Inf * 0).
    // Elsewhere one sum per tensor, read once: a sum is NaN or infinite when any term is; a
    // finite float32 tensor's sum overflows only when its values average above ~3.4e38 / size,
    // itself a wrecked run. Only after a failure are all three read, to say where.
    const flags = async (groups: tf.Variable[][]): Promise<boolean[]> => {
      const ts = groups.flat();
      const fast = nonFiniteFlags(ts);
      if (fast) return fast;
      const sums = tf.tidy(() => tf.stack(ts.map((x) => tf.sum(x))));
      const d = await sums.data();
      sums.dispose();
      return Array.from(d, (x) => !Number.isFinite(x));
    };
    if (!(await flags([vars, this.v])).some((b) => b)) return undefined;
    const bad = await flags([vars, this.m, this.v]);
    // The moments first: a non-finite moment is the cause when the weights are non-finite too.
    const order = [1, 2, 0].map((g) => g * vars.length);
    for (const base of order) {
      for (let i = 0; i < vars.length; i++) {
        if (bad[base + i]) {
          const what = (["weights", "first moment", "second moment"] as const)[base / vars.length];
          return { index: i, what };
        }
      }
    }
    return { index: 0, what: "weights" };
  }

  /** The state, as plain arrays (copies). */
  async getState(): Promise<AdamWState> {
    if (this.opts.stateLocation === "host") {
      return { step: this.t, m: this.hm.map((a) => a.slice()), v: this.hv.map((a) => a.slice()) };
    }
    return {
      step: this.t,
      m: await Promise.all(this.m.map(async (x) => (await x.data()) as Float32Array)),
      v: await Promise.all(this.v.map(async (x) => (await x.data()) as Float32Array)),
    };
  }

  /**
   * Restores a state saved by {@link getState}, for these variables (in either location: a
   * state saved from the heap restores on the host and vice versa).
   */
  setState(vars: tf.Variable[], s: AdamWState): void {
    if (s.m.length !== vars.length || s.v.length !== vars.length) {
      throw new Error(
        `AdamW.setState: the state holds ${s.m.length} moments for ${vars.length} variables; ` +
          `restore it for the variables it was saved from`,
      );
    }
    vars.forEach((x, i) => {
      if (s.m[i].length !== x.size || s.v[i].length !== x.size) {
        throw new Error(
          `AdamW.setState: variable ${i} (${x.name}) has ${x.size} values but its saved ` +
            `moments ${s.m[i].length} and ${s.v[i].length}; restore it for the same model`,
        );
      }
    });
    this.dispose();
    this.t = s.step;
    if (this.opts.stateLocation === "host") {
      this.allocateHost(vars.map((x) => x.size));
      s.m.forEach((a, i) => this.hm[i].set(a));
      s.v.forEach((a, i) => this.hv[i].set(a));
      return;
    }
    this.m = vars.map((x, i) => variableFrom(tf.tensor(s.m[i], x.shape), false));
    this.v = vars.map((x, i) => variableFrom(tf.tensor(s.v[i], x.shape), false));
  }

  /** Frees the moment buffers. */
  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
    this.m = [];
    this.v = [];
    this.hm = [];
    this.hv = [];
    this.hostBad = [];
  }
}

/**
 * What a host update's finiteness flags name first (bit 0 the weights, bit 1 the first moment,
 * bit 2 the second moment: the bits of lib/engine/host_passes.ts `adamwOnHost`).
 */
function nonFiniteOf(flags: number): NonFinite["what"] | undefined {
  return flags & 1
    ? "weights"
    : flags & 2
    ? "first moment"
    : flags & 4
    ? "second moment"
    : undefined;
}

/**
 * `sqrt(sum_i sum(g_i * g_i))` in float32, as `tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.mul(g,
 * g)))))` computes it: on wasm each variable's sum comes straight off the heap (bit for bit those
 * ops, lib/engine/reduce_wasm.ts) and the sums are added in addN's order, without two kernel
 * dispatches per variable and a read back; elsewhere the ops run.
 */
function globalNorm(grads: tf.Tensor[]): number {
  const sums = grads.length > 0 ? sumsOfSquares(grads) : undefined;
  if (sums) {
    let total = sums[0];
    for (let i = 1; i < sums.length; i++) total = Math.fround(total + sums[i]);
    return Math.fround(Math.sqrt(total));
  }
  const total = tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.mul(g, g))))));
  const norm = total.dataSync()[0];
  total.dispose();
  return norm;
}

/**
 * The factor global-norm clipping to `maxNorm` multiplies gradients of norm `norm` by:
 * `maxNorm / (norm + 1e-6)` when the norm is finite and above a positive `maxNorm`, else 1.
 *
 * @example
 * ```ts
 * import { clipScale } from "./adamw.ts";
 * clipScale(4, 1); // 0.24999993750001562
 * clipScale(0.5, 1); // 1
 * ```
 */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm && Number.isFinite(norm) ? maxNorm / (norm + 1e-6) : 1;
}

/** Scales gradients so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipByGlobalNorm(
  grads: tf.Tensor[],
  maxNorm: number,
): { grads: tf.Tensor[]; norm: number } {
  const norm = globalNorm(grads);
  const scale = clipScale(norm, maxNorm);
  if (scale === 1) return { grads, norm };
  return { grads: grads.map((g) => tf.mul(g, scale)), norm };
}

/**
 * The global L2 norm of gradients held on the host: `sqrt` of the float64 sum of every square,
 * array after array in order (one SIMD pass per array where lib/engine/host_passes.ts
 * `sumSquaresOnHost` applies, else the loop: the same bits).
 *
 * @example
 * ```ts
 * import { hostGlobalNorm } from "./adamw.ts";
 * hostGlobalNorm([new Float32Array([3]), new Float32Array([4])]); // 5
 * ```
 */
export function hostGlobalNorm(arrays: readonly Float32Array[]): number {
  let sq = sumSquaresOnHost(arrays);
  if (sq === undefined) {
    sq = 0;
    for (const a of arrays) for (let j = 0; j < a.length; j++) sq += a[j] * a[j];
  }
  return Math.sqrt(sq);
}

/** Linear warm-up then cosine decay to `minRatio` of the peak: the multiplier at `step`. */
export function warmupCosine(step: number, total: number, warmup: number, minRatio = 0.1): number {
  if (step < warmup) return (step + 1) / Math.max(1, warmup);
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * p));
}
