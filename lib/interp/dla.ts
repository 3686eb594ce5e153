/**
 * Direct logit attribution: the metric's logit difference split into what each component
 * writes into the residual stream (embeddings, each block's attention and MLP, each head),
 * read straight through the final norm and the head.
 *
 * Convention (TransformerLens's `apply_ln_to_stack`): the final norm's scale is FROZEN at
 * its value on the real residual x at the read position (LayerNorm: sigma = sqrt(var(x) +
 * eps), with the centring, which is linear; RMSNorm: rms(x)), so the norm becomes linear and
 * the contributions add up: sum over components + the norm's bias term (GPT-2's ln_f.bias . u)
 * = the metric on the pre-soft-cap logits, up to float rounding. Component c contributes
 * c . v with v = gamma * u / sigma (centred for LayerNorm) and u = W_U^T w the metric's
 * direction in the residual stream. Gemma's final soft-cap is not linear: the attribution is
 * of the logits before it (`preCapMetric`).
 *
 * Per head: head h of block i writes z_h @ W_O[h] (z = `blocks.{i}.attn.hook_z`); the heads
 * plus the output projection's bias (`headBias`) add up to the block's attention term. Not
 * defined for Gemma 2/3, whose post-attention norm is applied after the heads are summed.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Interval } from "../compass/metrics.ts";
import type { Model } from "../model/model.ts";
import { applyFinalNorm, attnOutBias, attnOutProject, unembedRows } from "../model/transformer.ts";
import { type HookInput, inputIds } from "../model/hooks.ts";
import { checkMetric, type LogitDiff, metricOf, positionIndex } from "./metric.ts";
import { columnMeans, type InterpIntervalOptions } from "./intervals.ts";

/** Options of {@link directLogitAttribution}. */
export interface DlaOptions extends InterpIntervalOptions {
  /** The logit difference attributed. */
  metric: LogitDiff;
  /** Split each block's attention term over its heads. @default true, false for Gemma 2/3 */
  perHead?: boolean;
}

/** What {@link directLogitAttribution} returns. */
export interface DlaResult {
  /** Component names: "embed", "attn 0", "mlp 0", ..., then "ln_final bias" (GPT-2 only). */
  components: string[];
  /** Contribution per prompt and component [prompt][component]. */
  values: number[][];
  /** Sum of the contributions per prompt (equals `preCapMetric` up to float rounding). */
  total: number[];
  /** The metric on the logits before any soft-cap, per prompt. */
  preCapMetric: number[];
  /** Mean per component over prompts, with a bootstrap interval over prompts. */
  summary: Interval[];
  /** Per-head contributions [prompt][block][head], when `perHead`. */
  heads?: number[][][];
  /** The attention output bias's contribution [prompt][block] (0 without a bias). */
  headBias?: number[][];
  /** Mean per block and head with an interval [block][head], when `perHead`. */
  headSummary?: Interval[][];
}

/**
 * u = W_U^T w [d]: the metric's direction in the residual stream, through the head only
 * (the identity's rows times the unembedding, 256 rows at a time).
 *
 * @example
 * ```ts ignore
 * const u = residualDirection(model, { plus: [refusalId], minus: [answerId] });
 * ```
 */
export function residualDirection(model: Model, metric: LogitDiff): Float64Array {
  const c = model.config;
  checkMetric(metric, c.vocabSize, "residualDirection");
  const u = new Float64Array(c.dModel);
  for (let r0 = 0; r0 < c.dModel; r0 += 256) {
    const rows = Math.min(256, c.dModel - r0);
    const block = tf.tidy(() => {
      const eye = tf.slice(tf.eye(c.dModel), [r0, 0], [rows, c.dModel]) as tf.Tensor2D;
      return unembedRows(c, model.params, eye).dataSync();
    });
    for (let r = 0; r < rows; r++) u[r0 + r] = metricOf(block.subarray(r * c.vocabSize), metric);
  }
  return u;
}

/** v = gamma * u / scale (centred for LayerNorm) and the bias term, for a residual x. */
function frozenNorm(model: Model, x: Float32Array, u: Float64Array) {
  const c = model.config;
  const d = c.dModel;
  const gammaName = c.arch === "gpt2" ? "ln_f.weight" : "model.norm.weight";
  const gamma = model.params.get(gammaName)!.dataSync();
  const v = new Float64Array(d);
  let bias = 0;
  if (c.arch === "gpt2") {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += x[j];
    mean /= d;
    let vr = 0;
    for (let j = 0; j < d; j++) vr += (x[j] - mean) ** 2;
    const sigma = Math.sqrt(vr / d + c.normEps);
    let vm = 0;
    for (let j = 0; j < d; j++) vm += v[j] = gamma[j] * u[j] / sigma;
    vm /= d;
    for (let j = 0; j < d; j++) v[j] -= vm; // (c - mean c) . v = c . (v - mean v)
    const beta = model.params.get("ln_f.bias")!.dataSync();
    for (let j = 0; j < d; j++) bias += beta[j] * u[j];
  } else {
    let ms = 0;
    for (let j = 0; j < d; j++) ms += x[j] * x[j];
    const rms = Math.sqrt(ms / d + c.normEps);
    for (let j = 0; j < d; j++) v[j] = (gamma[j] + c.normOffset) * u[j] / rms;
  }
  return { v, bias };
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>, off = 0): number {
  let s = 0;
  for (let j = 0; j < b.length; j++) s += a[off + j] * b[j];
  return s;
}

/**
 * Direct logit attribution of a metric over prompts (each run alone): per prompt the
 * contribution of the embeddings, every block's attention and MLP output and (optionally)
 * every head, at the metric's position, with the final norm's scale frozen (see the module
 * note); per component the mean with a bootstrap interval over prompts.
 *
 * @example
 * ```ts ignore
 * const dla = directLogitAttribution(model, prompts, { metric });
 * dla.components; // ["embed", "attn 0", "mlp 0", ...]
 * plotDla(dla);
 * ```
 */
export function directLogitAttribution(
  model: Model,
  prompts: readonly HookInput[],
  opts: DlaOptions,
): DlaResult {
  const c = model.config;
  const n = c.nLayer;
  const perHead = opts.perHead ?? !c.sandwichNorms;
  if (perHead && c.sandwichNorms) {
    throw new Error(
      `directLogitAttribution: per-head attribution is not linear for ${c.modelType} ` +
        `(its post-attention norm follows the sum of the heads); pass perHead: false`,
    );
  }
  if (prompts.length === 0) throw new Error("directLogitAttribution: no prompts");
  const u = residualDirection(model, opts.metric);
  const components = ["embed"];
  for (let i = 0; i < n; i++) components.push(`attn ${i}`, `mlp ${i}`);
  if (c.arch === "gpt2") components.push("ln_final bias");
  const names = [`blocks.0.hook_resid_pre`, `blocks.${n - 1}.hook_resid_post`];
  for (let i = 0; i < n; i++) {
    names.push(`blocks.${i}.hook_attn_out`, `blocks.${i}.hook_mlp_out`);
    if (perHead) names.push(`blocks.${i}.attn.hook_z`);
  }
  const values: number[][] = [], total: number[] = [], preCapMetric: number[] = [];
  const heads: number[][][] = [], headBias: number[][] = [];
  const d = c.dModel, hN = c.nHead, hd = c.headDim;
  for (const prompt of prompts) {
    const ids = inputIds(model, prompt);
    if (ids.length !== 1) throw new Error("directLogitAttribution: one prompt per entry");
    const t = ids[0].length;
    const pos = positionIndex(opts.metric, t, "directLogitAttribution");
    using cache = model.runWithCache(ids, { names, logits: "none" });
    const at = (name: string, width: number) =>
      (cache.get(name).dataSync() as Float32Array).subarray(pos * width, (pos + 1) * width);
    const xFinal = at(`blocks.${n - 1}.hook_resid_post`, d);
    const { v, bias } = frozenNorm(model, xFinal, u);
    const row = [dot(at("blocks.0.hook_resid_pre", d), v)];
    const rowHeads: number[][] = [], rowBias: number[] = [];
    for (let i = 0; i < n; i++) {
      row.push(
        dot(at(`blocks.${i}.hook_attn_out`, d), v),
        dot(at(`blocks.${i}.hook_mlp_out`, d), v),
      );
      if (!perHead) continue;
      const z = at(`blocks.${i}.attn.hook_z`, hN * hd);
      const perHeadOut = tf.tidy(() => {
        // Row h keeps head h's slice of z, zeros elsewhere: o_proj of it is head h's write.
        const masked = new Float32Array(hN * hN * hd);
        for (let h = 0; h < hN; h++) {
          masked.set(z.subarray(h * hd, (h + 1) * hd), h * hN * hd + h * hd);
        }
        return attnOutProject(c, model.params, i, tf.tensor2d(masked, [hN, hN * hd])).dataSync();
      });
      rowHeads.push(Array.from({ length: hN }, (_, h) => dot(perHeadOut, v, h * d)));
      const b = attnOutBias(c, model.params, i);
      rowBias.push(b ? dot(b.dataSync(), v) : 0);
    }
    if (c.arch === "gpt2") row.push(bias);
    values.push(row);
    total.push(row.reduce((a, b) => a + b, 0));
    if (perHead) heads.push(rowHeads), headBias.push(rowBias);
    // The metric before any soft-cap: the head on the final norm's output.
    const pre = tf.tidy(() => {
      const xs = tf.slice(cache.get(`blocks.${n - 1}.hook_resid_post`), [0, pos, 0], [1, 1, d]);
      const normed = applyFinalNorm(c, model.params, xs as tf.Tensor3D);
      return unembedRows(c, model.params, tf.reshape(normed, [1, d]) as tf.Tensor2D).dataSync();
    });
    preCapMetric.push(metricOf(pre, opts.metric));
  }
  const out: DlaResult = {
    components,
    values,
    total,
    preCapMetric,
    summary: columnMeans(values, opts),
  };
  if (perHead) {
    out.heads = heads;
    out.headBias = headBias;
    out.headSummary = Array.from(
      { length: n },
      (_, i) => columnMeans(heads.map((p) => p[i]), { ...opts, seed: (opts.seed ?? 0) + i }),
    );
  }
  return out;
}
