/**
 * Rotary position embeddings (RoPE, Su et al. 2021, arXiv 2104.09864) with every frequency
 * scaling Hugging Face defines for the decoder families read here: default, linear,
 * dynamic (NTK), llama3, yarn (Peng et al. 2023, arXiv 2309.00071) and longrope (Phi-3).
 *
 * Ported from transformers `modeling_rope_utils.py` (5.x): `_compute_linear_scaling_rope_parameters`,
 * `_compute_dynamic_ntk_parameters`, `_compute_yarn_parameters`, `_compute_longrope_parameters`,
 * `_compute_llama3_parameters`, `RotaryEmbeddingConfigMixin.standardize_rope_params`, and the
 * `dynamic_rope_update` decorator; the tables follow `LlamaRotaryEmbedding.forward` (rotate-half
 * layout: the frequencies repeated twice, cos/sin multiplied by the attention factor) and
 * `Phi3`'s `apply_rotary_pos_emb` (partial rotary: only the first `dim` features of a head
 * rotate).
 *
 * Choices made here: frequencies and angles are computed in float64 and rounded once to
 * float32 (HF computes them in float32; the two differ by ~1e-7 relative). HF's dynamic and
 * longrope embeddings keep state between calls (the longest sequence seen); here every
 * call uses the length of its own positions, which is what HF computes on a fresh model and
 * along one generation (lengths only grow).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { clipName, shown } from "../io/bounded.ts";

/** RoPE scaling types implemented (HF `rope_type`). */
export const ROPE_TYPES = ["default", "linear", "dynamic", "llama3", "yarn", "longrope"] as const;

/** One of {@link ROPE_TYPES}. */
export type RopeType = typeof ROPE_TYPES[number];

/** A resolved RoPE: everything needed to build the cos/sin tables. */
export interface RopeSpec {
  /** Scaling type. */
  type: RopeType;
  /** Base wavelength (`rope_theta`). */
  theta: number;
  /** Rotated features per head (head_dim * partial_rotary_factor, even). */
  dim: number;
  /** Scaling factor (linear, dynamic, llama3, yarn, longrope). */
  factor: number;
  /** `max_position_embeddings` (dynamic scaling starts beyond it). */
  maxPositions: number;
  /** Pre-training context (llama3, yarn, longrope). */
  originalMaxPositions: number;
  /** cos/sin multiplier (yarn, longrope; 1 otherwise). */
  attentionFactor: number;
  /** llama3 `low_freq_factor`. */
  lowFreqFactor?: number;
  /** llama3 `high_freq_factor`. */
  highFreqFactor?: number;
  /** yarn `beta_fast`. */
  betaFast?: number;
  /** yarn `beta_slow`. */
  betaSlow?: number;
  /** yarn `truncate`. */
  truncate?: boolean;
  /** longrope per-frequency factors within the original context. */
  shortFactor?: number[];
  /** longrope per-frequency factors beyond it. */
  longFactor?: number[];
}

const KNOWN_KEYS: Record<RopeType, string[]> = {
  default: [],
  linear: ["factor"],
  dynamic: ["factor"],
  llama3: ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
  yarn: [
    "factor",
    "original_max_position_embeddings",
    "attention_factor",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "truncate",
  ],
  longrope: [
    "factor",
    "original_max_position_embeddings",
    "attention_factor",
    "short_factor",
    "long_factor",
  ],
};

/** What {@link resolveRope} needs besides the rope dict. */
export interface RopeContext {
  /** Per-head size. */
  headDim: number;
  /** `max_position_embeddings`. */
  maxPositions: number;
  /** Top-level `original_max_position_embeddings` (Phi-3 keeps it outside the dict). */
  originalMaxPositions?: number;
  /** Top-level `rope_theta`, or the family's default base. */
  theta: number;
  /** Top-level `partial_rotary_factor`. @default 1 */
  partialRotaryFactor?: number;
  /** config.json path, for error messages. */
  source: string;
}

/**
 * Resolves one HF rope dict (`rope_parameters`, or the older `rope_scaling`; null = plain RoPE)
 * into a {@link RopeSpec}; unknown types or fields are errors.
 *
 * @example
 * ```ts
 * const spec = resolveRope({ rope_type: "linear", factor: 2 }, {
 *   headDim: 64, maxPositions: 4096, theta: 10000, source: "config.json",
 * });
 * spec.factor; // 2
 * ```
 */
export function resolveRope(
  raw: Record<string, unknown> | null | undefined,
  ctx: RopeContext,
): RopeSpec {
  const r = raw ?? {};
  const type = clipName(String(r.rope_type ?? r.type ?? "default"), 40) as RopeType;
  const where = `${ctx.source}: rope_parameters ${shown(r, 200)}`;
  if (!ROPE_TYPES.includes(type)) {
    throw new Error(
      `${where}: rope_type '${type}' is not implemented (${ROPE_TYPES.join(", ")} are)`,
    );
  }
  const allowed = new Set([
    "rope_type",
    "type",
    "rope_theta",
    "partial_rotary_factor",
    ...KNOWN_KEYS[type],
  ]);
  const extra = Object.keys(r).filter((k) => !allowed.has(k));
  if (extra.length) {
    throw new Error(
      `${where}: field(s) ${
        extra.slice(0, 5).map((k) => clipName(k, 40)).join(", ")
      } are not implemented for rope_type '${type}' ` +
        `(implemented: ${[...allowed].join(", ")})`,
    );
  }
  const num = (k: string): number | undefined => {
    const v = r[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new Error(`${where}: ${k} must be a number`);
    }
    return v;
  };
  const need = (k: string): number => {
    const v = num(k);
    if (v === undefined) throw new Error(`${where}: rope_type '${type}' needs '${k}'`);
    return v;
  };
  const theta = num("rope_theta") ?? ctx.theta;
  const prf = num("partial_rotary_factor") ?? ctx.partialRotaryFactor ?? 1;
  const dim = Math.trunc(ctx.headDim * prf);
  if (dim % 2 !== 0 || dim <= 0) {
    throw new Error(`${where}: rotary dim head_dim * partial_rotary_factor = ${dim} must be even`);
  }
  // HF standardize_rope_params: a top-level original_max_position_embeddings wins (Phi-3).
  const originalMax = ctx.originalMaxPositions ?? num("original_max_position_embeddings") ??
    ctx.maxPositions;
  const spec: RopeSpec = {
    type,
    theta,
    dim,
    factor: 1,
    maxPositions: ctx.maxPositions,
    originalMaxPositions: originalMax,
    attentionFactor: 1,
  };
  if (type === "linear" || type === "dynamic") spec.factor = need("factor");
  if (type === "llama3") {
    spec.factor = need("factor");
    spec.lowFreqFactor = need("low_freq_factor");
    spec.highFreqFactor = need("high_freq_factor");
    spec.originalMaxPositions = ctx.originalMaxPositions ??
      need("original_max_position_embeddings");
  }
  if (type === "yarn") {
    const original = ctx.originalMaxPositions ?? need("original_max_position_embeddings");
    spec.originalMaxPositions = original;
    spec.factor = num("factor") ?? ctx.maxPositions / original;
    const mscale = num("mscale");
    const mscaleAll = num("mscale_all_dim");
    const getMscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
    spec.attentionFactor = num("attention_factor") ??
      (mscale && mscaleAll
        ? getMscale(spec.factor, mscale) / getMscale(spec.factor, mscaleAll)
        : getMscale(spec.factor));
    spec.betaFast = num("beta_fast") || 32;
    spec.betaSlow = num("beta_slow") || 1;
    spec.truncate = r.truncate === undefined ? true : Boolean(r.truncate);
  }
  if (type === "longrope") {
    const list = (k: string) => {
      const v = r[k];
      if (!Array.isArray(v) || v.length !== dim / 2 || v.some((x) => typeof x !== "number")) {
        throw new Error(`${where}: ${k} must be a list of ${dim / 2} numbers (rotary dim / 2)`);
      }
      return v as number[];
    };
    spec.shortFactor = list("short_factor");
    spec.longFactor = list("long_factor");
    spec.factor = num("factor") ?? ctx.maxPositions / originalMax;
    spec.attentionFactor = num("attention_factor") ??
      (spec.factor <= 1 ? 1 : Math.sqrt(1 + Math.log(spec.factor) / Math.log(originalMax)));
  }
  return spec;
}

/**
 * Inverse frequencies [dim / 2] for a call whose largest position id is `maxPos`
 * (only dynamic and longrope depend on it, through seq_len = maxPos + 1).
 *
 * @example
 * ```ts
 * const spec = resolveRope(null, { headDim: 4, maxPositions: 64, theta: 100, source: "x" });
 * ropeInvFreq(spec, 0); // Float64Array [1, 0.1]
 * ```
 */
export function ropeInvFreq(s: RopeSpec, maxPos: number): Float64Array {
  const half = s.dim / 2;
  const inv = new Float64Array(half);
  const seqLen = maxPos + 1;
  let base = s.theta;
  if (s.type === "dynamic" && seqLen > s.maxPositions) {
    base = base *
      Math.pow((s.factor * seqLen) / s.maxPositions - (s.factor - 1), s.dim / (s.dim - 2));
  }
  // Same expression as the original code path (bit-identical default tables).
  for (let f = 0; f < half; f++) inv[f] = Math.pow(base, (-2 * f) / s.dim);
  if (s.type === "linear") { for (let f = 0; f < half; f++) inv[f] /= s.factor; }
  if (s.type === "longrope") {
    const ext = seqLen > s.originalMaxPositions ? s.longFactor! : s.shortFactor!;
    for (let f = 0; f < half; f++) inv[f] = inv[f] / ext[f];
  }
  if (s.type === "llama3") {
    const old = s.originalMaxPositions;
    const lo = s.lowFreqFactor!, hi = s.highFreqFactor!;
    const lowWavelen = old / lo, highWavelen = old / hi;
    for (let f = 0; f < half; f++) {
      const wavelen = (2 * Math.PI) / inv[f];
      const scaled = wavelen > lowWavelen ? inv[f] / s.factor : inv[f];
      if (wavelen < highWavelen || wavelen > lowWavelen) inv[f] = scaled;
      else {
        const smooth = (old / wavelen - lo) / (hi - lo);
        inv[f] = ((1 - smooth) * scaled) / s.factor + smooth * scaled;
      }
    }
  }
  if (s.type === "yarn") {
    const corr = (rot: number) =>
      (s.dim * Math.log(s.originalMaxPositions / (rot * 2 * Math.PI))) / (2 * Math.log(s.theta));
    let low = corr(s.betaFast!), high = corr(s.betaSlow!);
    if (s.truncate) low = Math.floor(low), high = Math.ceil(high);
    low = Math.max(low, 0), high = Math.min(high, s.dim - 1);
    if (low === high) high += 0.001;
    for (let f = 0; f < half; f++) {
      const ramp = Math.min(Math.max((f - low) / (high - low), 0), 1);
      const extrapolation = 1 - ramp;
      const interp = inv[f] / s.factor;
      inv[f] = interp * (1 - extrapolation) + inv[f] * extrapolation;
    }
  }
  return inv;
}

/**
 * cos/sin tables [B, T, 1, dim] for position ids `pos` [B, T] (HF rotate-half layout:
 * frequencies repeated twice, times the attention factor).
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * const spec = resolveRope(null, { headDim: 4, maxPositions: 64, theta: 100, source: "x" });
 * const [cos, sin] = ropeTables([[0, 1]], spec); // each [1, 2, 1, 4]
 * ```
 */
export function ropeTables(pos: number[][], s: RopeSpec): [tf.Tensor4D, tf.Tensor4D] {
  const b = pos.length;
  const t = pos[0].length;
  const d = s.dim;
  const half = d / 2;
  let maxPos = 0;
  for (const row of pos) for (const p of row) maxPos = Math.max(maxPos, p);
  const inv = ropeInvFreq(s, maxPos);
  const a = s.attentionFactor;
  const cos = new Float32Array(b * t * d);
  const sin = new Float32Array(b * t * d);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < t; j++) {
      const base = (i * t + j) * d;
      for (let f = 0; f < half; f++) {
        const angle = pos[i][j] * inv[f];
        const c = a === 1 ? Math.cos(angle) : Math.cos(angle) * a;
        const sn = a === 1 ? Math.sin(angle) : Math.sin(angle) * a;
        cos[base + f] = cos[base + f + half] = c;
        sin[base + f] = sin[base + f + half] = sn;
      }
    }
  }
  return [tf.tensor4d(cos, [b, t, 1, d]), tf.tensor4d(sin, [b, t, 1, d])];
}

/**
 * x [B, T, H, D] rotated on its first `cos.shape[3]` features: x*cos + rotate_half(x)*sin,
 * rotate_half(x) = [-x2, x1]; the remaining features pass through (partial rotary).
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * const spec = resolveRope(null, { headDim: 4, maxPositions: 64, theta: 100, source: "x" });
 * const [cos, sin] = ropeTables([[0, 1]], spec);
 * applyRope(tf.ones([1, 2, 2, 4]) as tf.Tensor4D, cos, sin); // [1, 2, 2, 4]
 * ```
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  const [b, t, h, d] = x.shape;
  const r = cos.shape[3];
  if (r === d) {
    const x1 = tf.slice(x, [0, 0, 0, 0], [b, t, h, d / 2]);
    const x2 = tf.slice(x, [0, 0, 0, d / 2], [b, t, h, d / 2]);
    const rotated = tf.concat([tf.neg(x2), x1], 3);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  }
  const xr = tf.slice(x, [0, 0, 0, 0], [b, t, h, r]);
  const pass = tf.slice(x, [0, 0, 0, r], [b, t, h, d - r]);
  const x1 = tf.slice(xr, [0, 0, 0, 0], [b, t, h, r / 2]);
  const x2 = tf.slice(xr, [0, 0, 0, r / 2], [b, t, h, r / 2]);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.concat([tf.add(tf.mul(xr, cos), tf.mul(rotated, sin)), pass], 3);
}
