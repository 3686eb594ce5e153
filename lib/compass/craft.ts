/**
 * The CRAFT latent safety head (phase 1 of "Contrastive Reasoning Alignment: Reinforcement
 * Learning from Hidden Representations", arXiv 2603.17305; SCIENCE.md section 1):
 * `z = L2norm(Linear(1024, 512)(GELU(Linear(d, 1024)(h))))`, `p_lat = softmax(Linear(512, 3)(z))`
 * over [safe, unsafe, rethink], class prototypes `mu_c` (unit, EMA m = 0.98), trained with
 * `a L_proto + b L_inst + g CE + d KL(p_lat || p_text) + e L_contr`.
 *
 * Choices the paper leaves open, made here: for rethink samples L_proto's "other" class is
 * unsafe (a rethink trace ends safe, so unsafe is what it must not resemble); L_contr's
 * ordering term is applied to every sample exactly as written; a class never seen in
 * training keeps a zero prototype (cosine 0). Tensors only live inside the training loop
 * and inside each call (tidy-scoped); a fitted head holds plain Float32Arrays.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
// tfjs-core alone registers no gradients; the union package registers all of them.
import "@tensorflow/tfjs";
import { makeRng, type Rng } from "../data/rng.ts";
import { AdamW } from "../optim/adamw.ts";
import { type Matrix, row } from "./matrix.ts";

/** The three trace classes, in the order of the head's outputs and of the prototypes. */
export const CRAFT_CLASSES = ["safe", "unsafe", "rethink"] as const;
/** A trace class. */
export type CraftClass = typeof CRAFT_CLASSES[number];
/** L_proto's "other" class for each own class: safe->unsafe, unsafe->safe, rethink->unsafe. */
export const PROTO_OTHER: readonly number[] = [1, 0, 1];

/** Weights of the loss terms (arXiv 2603.17305 defaults). */
export interface CraftLossWeights {
  /** a, on L_proto. @default 1 */
  proto: number;
  /** b, on L_inst (InfoNCE). @default 0.5 */
  inst: number;
  /** g, on the 3-class cross-entropy. @default 1 */
  ce: number;
  /** d, on KL(p_lat || p_text); used only when p_text is given. @default 0.5 */
  kl: number;
  /** e, on L_contr. @default 0.3 */
  contr: number;
}

/** Training options; defaults are the paper's (arXiv 2603.17305) unless noted. */
export interface CraftOptions {
  /** Width of the first projection layer. @default 1024 */
  hiddenDim?: number;
  /** Width of z. @default 512 */
  embedDim?: number;
  /** AdamW learning rate. @default 1e-4 */
  lr?: number;
  /** AdamW decoupled weight decay. @default 0.01 */
  weightDecay?: number;
  /** Passes over the data. @default 3 */
  epochs?: number;
  /** Examples per step. @default 16 */
  batchSize?: number;
  /** Loss weights. @default {proto: 1, inst: 0.5, ce: 1, kl: 0.5, contr: 0.3} */
  lossWeights?: Partial<CraftLossWeights>;
  /** Margin m of L_proto and L_contr. @default 0.2 */
  margin?: number;
  /** InfoNCE temperature. @default 0.1 */
  temperature?: number;
  /** Prototype EMA momentum. @default 0.98 */
  momentum?: number;
  /**
   * FIFO queue of past view-2 embeddings used as extra InfoNCE negatives (paper: 4096;
   * scaled to the data). With a queue as large as the data, an example's own embedding
   * from the previous epoch can be among its negatives, as in MoCo. @default min(4096, n_train)
   */
  queueSize?: number;
  /** Share of tokens dropped per view (per-token inputs). @default 0.05 */
  tokenDrop?: number;
  /** Feature dropout per view when only pooled vectors are given (approximation). @default 0.05 */
  featureDrop?: number;
  /** A text judge's probabilities: [n, 3] over the classes, or p_text_safe per example. */
  pText?: Matrix | Float32Array;
  /** Seed of initialisation, shuffling and views. @default 0 */
  seed?: number;
}

/** Mean loss components over one epoch. */
export interface CraftEpoch {
  /** Epoch index, from 0. */
  epoch: number;
  /** The weighted total loss. */
  total: number;
  /** L_proto, the prototype margin loss (unweighted). */
  proto: number;
  /** L_inst, the InfoNCE loss between the two views (unweighted). */
  inst: number;
  /** The 3-class cross-entropy (unweighted). */
  ce: number;
  /** KL(p_lat || p_text) (unweighted; 0 without p_text). */
  kl: number;
  /** L_contr, the contrastive margin loss (unweighted). */
  contr: number;
  /** Optimiser steps (batches) in the epoch. */
  steps: number;
}

/** Inputs of {@link craftLosses} (unit embeddings of two views, logits, prototypes). */
export interface CraftLossInputs {
  /** Unit embeddings of view 1 (the anchor): [B, k]. */
  z: tf.Tensor2D;
  /** Unit embeddings of view 2 (the positives): [B, k]. */
  zPos: tf.Tensor2D;
  /** Safety-head logits of view 1: [B, 3]. */
  logits: tf.Tensor2D;
  /** Class index per row (0 safe, 1 unsafe, 2 rethink). */
  labels: ArrayLike<number>;
  /** Prototypes [3, k] (unit rows, or zero rows for unseen classes). */
  prototypes: tf.Tensor2D;
  /** Past embeddings [Q, k] used as extra negatives. */
  queue?: tf.Tensor2D;
  /** Text judge probabilities [B, 3], or [B, 2] = [p_safe, 1 - p_safe]. */
  pText?: tf.Tensor2D;
  /** Loss weights. @default the paper's */
  weights?: Partial<CraftLossWeights>;
  /** @default 0.2 */
  margin?: number;
  /** @default 0.1 */
  temperature?: number;
}

/** Loss terms as scalars (`kl` is 0 without p_text). */
export interface CraftLossValues {
  total: tf.Scalar;
  proto: tf.Scalar;
  inst: tf.Scalar;
  ce: tf.Scalar;
  kl: tf.Scalar;
  contr: tf.Scalar;
}

const DEFAULT_WEIGHTS: CraftLossWeights = { proto: 1, inst: 0.5, ce: 1, kl: 0.5, contr: 0.3 };

/**
 * The CRAFT loss terms, batch means (pure; call inside `tf.tidy` or a gradient function):
 * - `L_proto = relu(m - cos(z, mu_own) + cos(z, mu_other))` (other: {@link PROTO_OTHER});
 * - `L_inst` = InfoNCE with temperature t: row i's positive is `zPos_i`, its negatives the
 *   other rows of `zPos` and the queue: `-log softmax([z_i . zPos ; z_i . queue] / t)_i`;
 * - `CE` = cross-entropy of the logits; `KL = sum p_lat log(p_lat / p_text)`;
 * - `L_contr = L_proto + 0.5 [relu(m - cos(z,mu_s) + cos(z,mu_r)) + relu(m - cos(z,mu_r) + cos(z,mu_u))]`.
 */
export function craftLosses(inp: CraftLossInputs): CraftLossValues {
  const w = { ...DEFAULT_WEIGHTS, ...inp.weights };
  const m = inp.margin ?? 0.2, t = inp.temperature ?? 0.1;
  const b = inp.labels.length;
  Array.from(inp.labels).forEach((c, i) => {
    if (c !== 0 && c !== 1 && c !== 2) {
      throw new Error(
        `craftLosses: label ${i} is ${c}, expected 0 (safe), 1 (unsafe) or 2 (rethink)`,
      );
    }
  });
  const own = tf.oneHot(tf.tensor1d(Array.from(inp.labels), "int32"), 3); // [B, 3]
  const other = tf.oneHot(tf.tensor1d(Array.from(inp.labels, (c) => PROTO_OTHER[c]), "int32"), 3);
  const cos = tf.matMul(inp.z, inp.prototypes, false, true); // [B, 3]
  const cosOwn = tf.sum(tf.mul(cos, own), 1), cosOther = tf.sum(tf.mul(cos, other), 1); // [B]
  const proto = tf.mean(tf.relu(tf.add(tf.sub(m, cosOwn), cosOther))) as tf.Scalar;
  const [cs, cu, cr] = tf.split(cos, 3, 1).map((c) => tf.reshape(c, [b]));
  const order = tf.add(tf.relu(tf.add(tf.sub(m, cs), cr)), tf.relu(tf.add(tf.sub(m, cr), cu)));
  const contr = tf.add(proto, tf.mul(0.5, tf.mean(order))) as tf.Scalar;
  const keys = inp.queue && inp.queue.shape[0] > 0 ? tf.concat([inp.zPos, inp.queue], 0) : inp.zPos;
  const sim = tf.div(tf.matMul(inp.z, keys, false, true), t); // [B, B + Q]
  const pos = tf.sum(tf.mul(tf.slice(sim, [0, 0], [b, b]), tf.eye(b)), 1); // [B]
  const inst = tf.mean(tf.sub(tf.logSumExp(sim, 1), pos)) as tf.Scalar;
  const logp = tf.logSoftmax(inp.logits); // [B, 3]
  const ce = tf.neg(tf.mean(tf.sum(tf.mul(logp, own), 1))) as tf.Scalar;
  let kl = tf.scalar(0);
  if (inp.pText) {
    let pLat = tf.softmax(inp.logits);
    if (inp.pText.shape[1] === 2) {
      const ps = tf.slice(pLat, [0, 0], [b, 1]);
      pLat = tf.concat([ps, tf.sub(1, ps)], 1);
    }
    const p = tf.clipByValue(pLat, 1e-7, 1), q = tf.clipByValue(inp.pText, 1e-7, 1);
    kl = tf.mean(tf.sum(tf.mul(p, tf.sub(tf.log(p), tf.log(q))), 1)) as tf.Scalar;
  }
  const total = tf.addN([
    tf.mul(w.proto, proto),
    tf.mul(w.inst, inst),
    tf.mul(w.ce, ce),
    tf.mul(inp.pText ? w.kl : 0, kl),
    tf.mul(w.contr, contr),
  ]) as tf.Scalar;
  return { total, proto, inst, ce, kl, contr };
}

/**
 * One prototype update from a batch of unit embeddings `z` [B, k] with class indices:
 * for each class c present, `mu_c <- normalise(m mu_c + (1 - m) mean(z_c))`, or
 * `mu_c <- normalise(mean(z_c))` when c was not seen before. Pure: returns new arrays.
 */
export function updatePrototypes(
  prototypes: Matrix,
  seen: readonly boolean[],
  z: Matrix,
  labels: ArrayLike<number>,
  momentum = 0.98,
): { prototypes: Matrix; seen: boolean[] } {
  const k = z.cols, out = prototypes.data.slice(), nowSeen = seen.slice();
  for (let c = 0; c < 3; c++) {
    const acc = new Float64Array(k);
    let count = 0;
    for (let i = 0; i < z.rows; i++) {
      if (labels[i] !== c) continue;
      count++;
      const r = row(z, i);
      for (let j = 0; j < k; j++) acc[j] += r[j];
    }
    if (count === 0) continue;
    const keep = seen[c] ? momentum : 0;
    let sq = 0;
    for (let j = 0; j < k; j++) {
      acc[j] = keep * out[c * k + j] + (1 - keep) * (acc[j] / count);
      sq += acc[j] * acc[j];
    }
    const nrm = Math.sqrt(sq) || 1;
    for (let j = 0; j < k; j++) out[c * k + j] = acc[j] / nrm;
    nowSeen[c] = true;
  }
  return { prototypes: { rows: 3, cols: k, data: out }, seen: nowSeen };
}

/** Parameter names and the layout of the head (weights stored [in, out]). */
export const CRAFT_PARAM_NAMES = ["fc1.w", "fc1.b", "fc2.w", "fc2.b", "head.w", "head.b"] as const;
/** The six parameters of the head by name (weights stored [in, out]). */
export type CraftParams<T> = Record<typeof CRAFT_PARAM_NAMES[number], T>;
type Params<T> = CraftParams<T>;

/** GELU, tanh form written with a sigmoid: `x * sigmoid(1.5957691 (x + 0.044715 x^3))`. */
function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(tf.mul(1.5957691, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))))));
}

/** Forward pass: unit embeddings z [B, k] and logits [B, 3] of inputs x [B, d]. */
function forward(p: Params<tf.Tensor>, x: tf.Tensor2D): { z: tf.Tensor2D; logits: tf.Tensor2D } {
  const h = gelu(tf.add(tf.matMul(x, p["fc1.w"] as tf.Tensor2D), p["fc1.b"])); // [B, 1024]
  const u = tf.add(tf.matMul(h as tf.Tensor2D, p["fc2.w"] as tf.Tensor2D), p["fc2.b"]); // [B, 512]
  const z = tf.div(u, tf.sqrt(tf.add(tf.sum(tf.square(u), 1, true), 1e-12))) as tf.Tensor2D;
  const logits = tf.add(tf.matMul(z, p["head.w"] as tf.Tensor2D), p["head.b"]) as tf.Tensor2D;
  return { z, logits };
}

/** Shapes of the parameters for input width d. */
function paramShapes(d: number, h: number, k: number): Params<number[]> {
  return {
    "fc1.w": [d, h],
    "fc1.b": [h],
    "fc2.w": [h, k],
    "fc2.b": [k],
    "head.w": [k, 3],
    "head.b": [3],
  };
}

/** PyTorch's Linear initialisation: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
function initParams(d: number, h: number, k: number, rng: Rng): Params<Float32Array> {
  const shapes = paramShapes(d, h, k);
  const fanIn: Params<number> = {
    "fc1.w": d,
    "fc1.b": d,
    "fc2.w": h,
    "fc2.b": h,
    "head.w": k,
    "head.b": k,
  };
  const out = {} as Params<Float32Array>;
  for (const name of CRAFT_PARAM_NAMES) {
    const bound = 1 / Math.sqrt(fanIn[name]);
    const size = shapes[name].reduce((a, b) => a * b, 1);
    out[name] = Float32Array.from({ length: size }, () => (2 * rng.next() - 1) * bound);
  }
  return out;
}

/** A plain tensor record (name -> shape + values), as saved in safetensors. */
export type WeightRecord = Record<string, { shape: number[]; data: Float32Array }>;

/** How a head was fitted: resolved options, seed, view mode, data size. */
export interface CraftFitInfo {
  /** Resolved options (p_text excluded). */
  options: Record<string, number | Record<string, number>>;
  /** "token-drop" (per-token inputs) or "feature-dropout" (pooled inputs: approximated). */
  views: "token-drop" | "feature-dropout";
  /** True when views were approximated by feature dropout on pooled vectors. */
  approximatedViews: boolean;
  /** Training examples. */
  nTrain: number;
  /** Seed used. */
  seed: number;
}

/** A fitted CRAFT head: plain weights and prototypes; every call runs tidy-scoped tfjs. */
export class CraftHead {
  /** Input width d. */
  readonly dModel: number;
  /** Width of the first layer. */
  readonly hiddenDim: number;
  /** Width of z. */
  readonly embedDim: number;

  /**
   * A head from fitted weights and prototypes (as built by {@link fitCraft} and
   * {@link CraftHead.fromWeights}).
   *
   * @param params the six parameters ({@link CRAFT_PARAM_NAMES}, weights [in, out])
   * @param prototypes [3, embedDim], rows safe/unsafe/rethink (zero rows: never seen)
   * @param history loss components per epoch
   * @param info how it was fitted
   */
  constructor(
    readonly params: Readonly<CraftParams<Float32Array>>,
    readonly prototypes: Matrix,
    readonly history: readonly CraftEpoch[] = [],
    readonly info?: CraftFitInfo,
  ) {
    this.dModel = params["fc1.b"].length > 0 ? params["fc1.w"].length / params["fc1.b"].length : 0;
    this.hiddenDim = params["fc1.b"].length;
    this.embedDim = params["fc2.b"].length;
  }

  /**
   * Runs the head on `x` in chunks of 1024 rows; `read` turns z and the logits into the
   * `cols`-wide output.
   */
  private run(
    x: Matrix,
    cols: number,
    read: (z: tf.Tensor2D, l: tf.Tensor2D) => tf.Tensor,
  ): Matrix {
    if (x.cols !== this.dModel) {
      throw new Error(`Cannot apply a CRAFT head fitted on d=${this.dModel} to ${x.cols} columns`);
    }
    const data = new Float32Array(x.rows * cols), chunk = 1024;
    const shapes = paramShapes(this.dModel, this.hiddenDim, this.embedDim);
    for (let start = 0; start < x.rows; start += chunk) {
      const n = Math.min(chunk, x.rows - start);
      const out = tf.tidy(() => {
        const p = {} as Params<tf.Tensor>;
        for (const name of CRAFT_PARAM_NAMES) p[name] = tf.tensor(this.params[name], shapes[name]);
        const xs = tf.tensor2d(x.data.subarray(start * x.cols, (start + n) * x.cols), [n, x.cols]);
        const { z, logits } = forward(p, xs);
        return read(z, logits);
      });
      data.set(out.dataSync() as Float32Array, start * cols);
      out.dispose();
    }
    return { rows: x.rows, cols, data };
  }

  /** Unit embeddings z: [n, embedDim]. */
  embed(x: Matrix): Matrix {
    return this.run(x, this.embedDim, (z) => z);
  }

  /** p_lat: [n, 3] over safe, unsafe, rethink. */
  probs(x: Matrix): Matrix {
    return this.run(x, 3, (_, logits) => tf.softmax(logits));
  }

  /** p_safe = p_lat[:, 0]. */
  score(x: Matrix): Float32Array {
    const p = this.probs(x);
    return Float32Array.from({ length: p.rows }, (_, i) => p.data[i * 3]);
  }

  /** Cosine of z with each prototype (0 for a class never seen in training). */
  cosines(x: Matrix): { safe: Float32Array; unsafe: Float32Array; rethink: Float32Array } {
    const protos = this.prototypes;
    const c = this.run(
      x,
      3,
      (z) => tf.matMul(z, tf.tensor2d(protos.data, [3, protos.cols]), false, true),
    );
    const col = (j: number) => Float32Array.from({ length: c.rows }, (_, i) => c.data[i * 3 + j]);
    return { safe: col(0), unsafe: col(1), rethink: col(2) };
  }

  /** All tensors (parameters and `prototypes`) as a name -> {shape, data} record. */
  weights(): WeightRecord {
    const shapes = paramShapes(this.dModel, this.hiddenDim, this.embedDim);
    const out: WeightRecord = {};
    for (const name of CRAFT_PARAM_NAMES) {
      out[name] = { shape: shapes[name], data: this.params[name] };
    }
    out.prototypes = { shape: [3, this.embedDim], data: this.prototypes.data };
    return out;
  }

  /** Rebuilds a head from {@link CraftHead.weights} output; names the missing or misshapen tensor. */
  static fromWeights(w: WeightRecord, history: CraftEpoch[] = [], info?: CraftFitInfo): CraftHead {
    for (const name of [...CRAFT_PARAM_NAMES, "prototypes"]) {
      if (!w[name]) throw new Error(`Cannot rebuild a CRAFT head: tensor '${name}' is missing`);
    }
    const [d, h] = w["fc1.w"].shape, k = w["fc2.w"].shape[1];
    const shapes = { ...paramShapes(d, h, k), prototypes: [3, k] } as Record<string, number[]>;
    for (const [name, shape] of Object.entries(shapes)) {
      if (
        w[name].shape.join(",") !== shape.join(",") ||
        w[name].data.length !== shape.reduce((a, b) => a * b, 1)
      ) {
        throw new Error(
          `Cannot rebuild a CRAFT head: '${name}' has shape [${
            w[name].shape
          }], expected [${shape}]`,
        );
      }
    }
    const params = {} as Params<Float32Array>;
    for (const name of CRAFT_PARAM_NAMES) params[name] = Float32Array.from(w[name].data);
    const protos = { rows: 3, cols: k, data: Float32Array.from(w.prototypes.data) };
    return new CraftHead(params, protos, history, info);
  }
}

/** Converts trace labels to class indices, naming the first bad entry. */
function classIndex(labels: readonly string[], n: number): number[] {
  if (labels.length !== n) {
    throw new Error(`Cannot fit CRAFT: ${labels.length} labels for ${n} inputs`);
  }
  return labels.map((l, i) => {
    const c = (CRAFT_CLASSES as readonly string[]).indexOf(l);
    if (c < 0) {
      throw new Error(`Cannot fit CRAFT: label ${i} is '${l}', expected safe, unsafe or rethink`);
    }
    return c;
  });
}

/** Two-view sampler: token drop over per-token inputs, or feature dropout over pooled rows. */
function viewSampler(
  pooled: Matrix | undefined,
  tokens: readonly Matrix[] | undefined,
  drop: { token: number; feature: number },
  rng: Rng,
): (i: number, out: Float32Array, at: number) => void {
  return (i, out, at) => {
    if (pooled) {
      const r = row(pooled, i), keep = 1 - drop.feature;
      for (let j = 0; j < r.length; j++) out[at + j] = rng.next() < keep ? r[j] / keep : 0;
      return;
    }
    const t = tokens![i], d = t.cols, kept: number[] = [];
    for (let s = 0; s < t.rows; s++) if (rng.next() >= drop.token) kept.push(s);
    if (kept.length === 0) kept.push(rng.int(t.rows));
    for (const s of kept) {
      for (let j = 0; j < d; j++) out[at + j] += t.data[s * d + j] / kept.length;
    }
  };
}

/** The rows `idx` of p_text as a tensor: [B, 3], or [B, 2] = [p_safe, 1 - p_safe]. */
function batchPText(pText: Matrix | Float32Array, idx: number[]): tf.Tensor2D {
  if (pText instanceof Float32Array) return tf.tensor2d(idx.map((i) => [pText[i], 1 - pText[i]]));
  return tf.tensor2d(idx.map((i) => Array.from(row(pText, i))));
}

const TERMS = ["proto", "inst", "ce", "kl", "contr"] as const;

/**
 * Fits a CRAFT head. `inputs` are pooled hidden states [n, d] (views then come from 5%
 * feature dropout, recorded as `info.approximatedViews`) or one [T_i, d] matrix of
 * per-token hidden states per example (each view = the mean of a random ~95% of tokens).
 * Per batch of 16 (shuffled, seeded): make two views; initialise the prototypes of classes
 * not seen yet from this batch's view-1 embeddings; take an AdamW step on the loss against
 * the current prototypes and queue; EMA-update the prototypes of the classes present with
 * the batch's (detached) view-1 embeddings; push the view-2 embeddings on the FIFO queue.
 */
export function fitCraft(
  inputs: Matrix | readonly Matrix[],
  labels: readonly CraftClass[],
  opts: CraftOptions = {},
): CraftHead {
  const tokens = Array.isArray(inputs) ? inputs as readonly Matrix[] : undefined;
  const pooled = tokens ? undefined : inputs as Matrix;
  const n = tokens ? tokens.length : pooled!.rows;
  const d = tokens ? (tokens[0]?.cols ?? 0) : pooled!.cols;
  const y = classIndex(labels, n);
  if (n === 0 || d === 0) throw new Error("Cannot fit CRAFT on empty inputs");
  tokens?.forEach((t, i) => {
    if (t.cols !== d || t.rows === 0) {
      throw new Error(
        `Cannot fit CRAFT: token matrix ${i} is [${t.rows}, ${t.cols}], need [T>0, ${d}]`,
      );
    }
  });
  const { pText, lossWeights: lw, ...given } = opts;
  const o = {
    hiddenDim: 1024,
    embedDim: 512,
    lr: 1e-4,
    weightDecay: 0.01,
    epochs: 3,
    batchSize: 16,
    margin: 0.2,
    temperature: 0.1,
    momentum: 0.98,
    queueSize: Math.min(4096, n),
    tokenDrop: 0.05,
    featureDrop: 0.05,
    seed: 0,
    ...given,
  };
  const lossWeights = { ...DEFAULT_WEIGHTS, ...lw };
  const textRows = pText instanceof Float32Array ? pText.length : pText?.rows;
  if (pText && (textRows !== n || (!(pText instanceof Float32Array) && pText.cols !== 3))) {
    throw new Error(`Cannot fit CRAFT: pText must be [${n}, 3] or ${n} p_safe values`);
  }
  const rng = makeRng(o.seed), k = o.embedDim;
  const view = viewSampler(
    pooled,
    tokens,
    { token: o.tokenDrop, feature: o.featureDrop },
    rng.fork(),
  );
  const init = initParams(d, o.hiddenDim, k, rng.fork()), shapes = paramShapes(d, o.hiddenDim, k);
  const vars = {} as Params<tf.Variable>;
  for (const name of CRAFT_PARAM_NAMES) {
    vars[name] = tf.tidy(() => tf.variable(tf.tensor(init[name], shapes[name])));
  }
  const varList = CRAFT_PARAM_NAMES.map((name) => vars[name]);
  const opt = new AdamW({ lr: o.lr, weightDecay: o.weightDecay });
  let protos: Matrix = { rows: 3, cols: k, data: new Float32Array(3 * k) },
    seen = [false, false, false];
  const queue = new Float32Array(o.queueSize * k);
  let qFill = 0, qPos = 0;
  const history: CraftEpoch[] = [];
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
      const sums = { total: 0, proto: 0, inst: 0, ce: 0, kl: 0, contr: 0 };
      let steps = 0;
      for (let start = 0; start < n; start += o.batchSize, steps++) {
        const idx = order.slice(start, start + o.batchSize), b = idx.length;
        const by = idx.map((i) => y[i]);
        const v1 = new Float32Array(b * d), v2 = new Float32Array(b * d);
        idx.forEach((i, r) => (view(i, v1, r * d), view(i, v2, r * d)));
        const x1 = tf.tensor2d(v1, [b, d]), x2 = tf.tensor2d(v2, [b, d]);
        const ema = (
          z: Float32Array,
        ) => ({ prototypes: protos, seen } = updatePrototypes(
          protos,
          seen,
          { rows: b, cols: k, data: z },
          by,
          o.momentum,
        ));
        const fresh = by.some((c) => !seen[c]);
        if (fresh) {
          const z0 = tf.tidy(() => forward(vars, x1).z);
          ema(z0.dataSync() as Float32Array);
          z0.dispose();
        }
        const kept: tf.Tensor[] = [];
        const { value, grads } = tf.variableGrads(() => {
          const a = forward(vars, x1), p = forward(vars, x2);
          const l = craftLosses({
            z: a.z,
            zPos: p.z,
            logits: a.logits,
            labels: by,
            weights: lossWeights,
            prototypes: tf.tensor2d(protos.data, [3, k]),
            queue: qFill > 0 ? tf.tensor2d(queue.subarray(0, qFill * k), [qFill, k]) : undefined,
            pText: pText ? batchPText(pText, idx) : undefined,
            margin: o.margin,
            temperature: o.temperature,
          });
          kept.push(...[a.z, p.z, ...TERMS.map((t) => l[t])].map((t) => tf.keep(t)));
          return l.total;
        }, varList);
        // tidy: frees whatever the optimiser's first step allocates besides its moment variables
        tf.tidy(() => opt.step(varList, varList.map((v) => grads[v.name])));
        const [za, zp, ...parts] = kept.map((t) => t.dataSync() as Float32Array);
        if (!fresh) ema(za);
        for (let r = 0; r < b && o.queueSize > 0; r++, qPos = (qPos + 1) % o.queueSize) {
          queue.set(zp.subarray(r * k, (r + 1) * k), qPos * k);
          qFill = Math.min(qFill + 1, o.queueSize);
        }
        sums.total += value.dataSync()[0];
        TERMS.forEach((key, j) => (sums[key] += parts[j][0]));
        tf.dispose([value, x1, x2, ...kept, ...Object.values(grads)]);
      }
      const avg = (key: keyof typeof sums) => sums[key] / Math.max(steps, 1);
      history.push(
        {
          epoch,
          steps,
          total: avg("total"),
          ...Object.fromEntries(TERMS.map((t) => [t, avg(t)])),
        } as CraftEpoch,
      );
    }
    const params = {} as Params<Float32Array>;
    for (const name of CRAFT_PARAM_NAMES) params[name] = Float32Array.from(vars[name].dataSync());
    return new CraftHead(params, protos, history, {
      options: { ...o, lossWeights: { ...lossWeights } },
      views: tokens ? "token-drop" : "feature-dropout",
      approximatedViews: !tokens,
      nTrain: n,
      seed: o.seed,
    });
  } finally {
    opt.dispose();
    tf.dispose(varList);
  }
}
