/**
 * The decoder-only transformer, readable top to bottom (after nanoGPT): GPT-2 (LayerNorm,
 * learned positions, GELU, fused q|k|v) and the RoPE families of lib/model/families.ts
 * (Llama, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3 text, Phi-3): RMSNorm (Gemma: (1 + w)),
 * RoPE in HF's rotate-half layout with every scaling of lib/model/rope.ts, gated MLP (SwiGLU
 * or GeGLU), grouped-query attention, sliding-window layers, q/k norms, soft-caps.
 * Ported from transformers 5.x `LlamaDecoderLayer`, `Qwen3Attention`, `Gemma2DecoderLayer`,
 * `Gemma3Attention`, `Phi3Attention`/`Phi3MLP` and their `eager_attention_forward`.
 *
 * Shapes: B batch, T new tokens, S = past + T keys, d model width, H heads, Hkv key/value
 * heads, D head size, V vocabulary.
 *
 * Hidden states follow Hugging Face's `output_hidden_states`: index 0 is the embedding output
 * (after Gemma's sqrt(d) scale), index i (1 <= i < nLayer) the residual stream after block i,
 * and index nLayer the output of the final norm (what the head reads). The raw residual after
 * the last block is `finalResidual` (ask with `finalResidual: true`). An intervention at
 * layer nLayer edits that post-norm state, right before the head; with `beforeFinalNorm` it
 * edits the raw residual instead (before the final norm).
 *
 * Speed notes (PERF-NOTES.md): GELU is written with `sigmoid` (tfjs-wasm's tanh and pow are
 * slow), transposes stay 4-D, and q|k|v are cut with `slice`, not `split`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import { externalOf, type Params } from "./weights.ts";
import { externalGather, externalMatMul } from "../engine/external_weights.ts";
import { fusedAttention, fusedGelu, fusedLayerNorm } from "../engine/fused.ts";
import { geluSimd, layerNormSimd } from "../engine/simd_kernels.ts";
import { slotWritesAvailable, splitHeads, writeSlots } from "../engine/layout_kernels.ts";
import { biasedMatMul, slotMatMul } from "../engine/blas.ts";
import { applyRope, ropeTables } from "./rope.ts";

/**
 * The most free slots a cache gains at once under {@link ForwardOptions.reserve}: a long
 * generation's cache grows by this many positions at a time (one copy each), never to its
 * whole reserve at once.
 */
export const RESERVE_CHUNK = 256;

/**
 * Keys and values of past positions, per layer: [B, Hkv, C, D], of which the first `length`
 * slots hold positions (C > length where slots are reserved: {@link ForwardOptions.reserve}).
 */
export interface KVCache {
  /** Keys, one [B, Hkv, C, D] tensor per layer. */
  k: tf.Tensor4D[];
  /** Values, one [B, Hkv, C, D] tensor per layer. */
  v: tf.Tensor4D[];
  /** Number of cached positions S (the filled slots). */
  length: number;
}

/**
 * An edit of hidden state `layer` (HF numbering: 0 = embeddings, i = after block i, nLayer =
 * after the final norm, just before the head), scoped to one call.
 */
export interface Intervention {
  /** Hidden-state index it edits: 0 = embeddings, i = after block i, nLayer = final-norm output. */
  layer: number;
  /**
   * With `layer` = nLayer: edit the raw residual after the last block, before the final norm
   * (what the old numbering called layer nLayer; directional ablation of every residual
   * stream uses it). @default false
   */
  beforeFinalNorm?: boolean;
  /** Returns the new hidden state [B, T, d]; called inside tf.tidy. */
  fn: (h: tf.Tensor3D) => tf.Tensor3D;
}

/** Options of {@link forward}. */
export interface ForwardOptions {
  /** 1 = real token, 0 = padding; covers past + new positions [B, S]. @default all ones */
  attentionMask?: number[][];
  /**
   * Hidden states to return, HF numbering ("all" = 0..nLayer; nLayer = after the final norm;
   * negative counts from the end). @default none
   */
  hiddenStates?: "all" | number[];
  /** Also return the raw residual stream after the last block (before the final norm). @default false */
  finalResidual?: boolean;
  /**
   * Past keys/values; when given, the returned cache extends it. A cache with reserved slots
   * (see `reserve`) is extended **in place**: the returned cache shares its buffers, so extend
   * it once, never twice from the same state (re-running the same step is fine: it rewrites the
   * same slots).
   */
  cache?: KVCache;
  /** Return a cache for further decoding. @default false */
  useCache?: boolean;
  /**
   * The most slots the cache will need (past + new positions + the steps to come): the returned
   * cache then holds room for up to {@link RESERVE_CHUNK} more positions (fewer near the limit),
   * and later steps write their keys and values into it instead of copying the whole cache each
   * step; a step that fills the last slot adds the next chunk (one copy), so memory follows the
   * filled length as with concatenation. Pass it on every step. Used where the kernels for it
   * exist (wasm); elsewhere the cache grows by concatenation as without it. The numbers are the
   * same either way. @default no reserve
   */
  reserve?: number;
  /** Compute logits for every position or only the last one. @default "all" */
  logits?: "all" | "last" | "none";
  /** Residual-stream edits (steering, ablation), applied in order. */
  interventions?: Intervention[];
  /**
   * Called at every named hook point (lib/model/hooks.ts lists them, in TransformerLens's
   * names) with the activation; returns it or a replacement of the same shape. Called inside
   * tf.tidy: keep (`tf.keep`) what must outlive the call. `Model.runWithCache` and
   * `Model.runWithHooks` are the checked way to use it. @default none
   */
  hook?: ForwardHook;
}

/**
 * The raw hook of {@link ForwardOptions}: `name` is a full hook-point name (e.g.
 * `blocks.2.hook_resid_post`, block indices non-negative), `x` the activation.
 */
export type ForwardHook = (name: string, x: tf.Tensor) => tf.Tensor;

/** A per-block hook: `name` relative to `blocks.{i}.`. */
type BlockHook = <T extends tf.Tensor>(name: string, x: T) => T;

/** What {@link forward} returns. The caller owns (and disposes) every tensor. */
export interface ForwardOutput {
  /** [B, T, V] (or [B, 1, V] with logits "last"); undefined with logits "none". */
  logits?: tf.Tensor3D;
  /** Indexed by layer (HF numbering); only the requested entries are set. Each [B, T, d]. */
  hiddenStates: tf.Tensor3D[];
  /** The residual after the last block, before the final norm [B, T, d], when asked for. */
  finalResidual?: tf.Tensor3D;
  /** The extended cache when useCache or cache was given. */
  cache?: KVCache;
}

const GELU_C = 1.5957691216057308; // 2 * sqrt(2 / pi)

/**
 * True while `forward` runs a decoding step (a KV cache given, no hooks): only then do layer
 * norm, GELU and attention use the fused kernels of lib/engine/fused.ts. Every other forward
 * (full passes, prefill, hooked runs, the training forward) keeps the composed ops, so the
 * log-probs of a rollout recomputed without a tape equal the training forward's bit for bit,
 * and hooks stay bit-equal to a plain forward.
 */
let decodingStep = false;

/** GELU, tanh approximation (gelu_new), as x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)). */
export function gelu(x: tf.Tensor): tf.Tensor {
  const fused = decodingStep ? fusedGelu(x) : undefined;
  if (fused) return fused;
  const simd = geluSimd(x); // the same bits as the ops below, in 3 kernels (1 backward)
  if (simd) return simd;
  const cube = tf.mul(tf.mul(x, x), x);
  return tf.mul(x, tf.sigmoid(tf.mul(tf.add(x, tf.mul(cube, 0.044715)), GELU_C)));
}

function layerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  return layerNormRes(x, w, b, eps, false)[0];
}

/**
 * Layer norm, and the tensor the residual add must read in x's place: x itself, except under
 * a gradient tape with the wasm kernels, where it is the kernel's pass-through of x (with
 * `pass`), so that x's gradient sums the residual's share and the norm's in the composed ops'
 * order (lib/engine/simd_kernels.ts).
 */
function layerNormRes(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  eps: number,
  pass: boolean,
): [tf.Tensor, tf.Tensor] {
  const fused = decodingStep ? fusedLayerNorm(x, w, b, eps) : undefined;
  if (fused) return [fused, x];
  const simd = layerNormSimd(x, w, b, eps, pass); // the same bits as the ops below
  if (simd) return simd;
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.mul(xc, xc), -1, true);
  return [tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b), x];
}

/** RMSNorm over the last axis; scale w (Llama) or (1 + w) (Gemma, `offset` 1). */
function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number, offset = 0): tf.Tensor {
  const ms = tf.mean(tf.mul(x, x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), offset ? tf.add(w, offset) : w);
}

/** cap * tanh(x / cap) (Gemma 2 soft-capping). */
function softcap(x: tf.Tensor, cap: number): tf.Tensor {
  return tf.mul(tf.tanh(tf.div(x, cap)), cap);
}

/**
 * x [N, in] @ W [in, out] (+ b), plus a LoRA update scale * (x @ A) @ B when the parameters
 * hold `<weight>.lora_A` [in, r], `<weight>.lora_B` [r, out] and `<weight>.lora_scale` (see lora.ts).
 */
function linear(x: tf.Tensor, p: Params, weight: string, b?: tf.Tensor): tf.Tensor2D {
  const w = p.get(weight);
  const ext = w ? undefined : externalOf(p)?.get(weight);
  if (!w && !ext) throw new Error(`forward: parameter '${weight}' missing`);
  const a = p.get(weight + ".lora_A");
  if (decodingStep && w && b && !a) {
    // Decoding's small products: product and bias in one kernel, the same numbers.
    const fused = biasedMatMul(x, w, b);
    if (fused) return fused as tf.Tensor2D;
  }
  let y =
    (ext ? externalMatMul(x, ext) : tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D)) as tf.Tensor2D;
  if (a) {
    const down = tf.matMul(x as tf.Tensor2D, a as tf.Tensor2D);
    const up = tf.matMul(down, p.get(weight + ".lora_B")! as tf.Tensor2D);
    y = tf.add(y, tf.mul(up, p.get(weight + ".lora_scale")!)) as tf.Tensor2D;
  }
  return b ? tf.add(y, b) as tf.Tensor2D : y;
}

/** Position ids of the new T positions from the full mask: cumsum(mask) - 1, clipped at 0. */
export function positionIds(mask: number[][], pastLen: number, t: number): number[][] {
  return mask.map((row) => {
    let c = 0;
    const out: number[] = [];
    for (let s = 0; s < pastLen + t; s++) {
      c += row[s];
      if (s >= pastLen) out.push(Math.max(c - 1, 0));
    }
    return out;
  });
}

/**
 * Additive attention mask [B, 1, T, S]: causal over absolute slots, padded keys hidden, and
 * with `window` only keys k with q - k < window (HF `sliding_window_overlay`, over cache
 * slots; with left padding the slots of real tokens are contiguous, so this is also the
 * distance in positions).
 */
function attentionBias(mask: number[][], pastLen: number, t: number, window?: number): tf.Tensor4D {
  const b = mask.length;
  const s = pastLen + t;
  const data = new Float32Array(b * t * s);
  for (let i = 0; i < b; i++) {
    for (let q = 0; q < t; q++) {
      const base = (i * t + q) * s;
      const qs = pastLen + q;
      for (let k = 0; k < s; k++) {
        const visible = k <= qs && mask[i][k] === 1 && (window === undefined || qs - k < window);
        data[base + k] = visible ? 0 : -1e9;
      }
    }
  }
  return tf.tensor4d(data, [b, 1, t, s]);
}

/** The first `s` slots of a cache tensor [B, H, C, D] (itself when C = s). */
function firstSlots(x: tf.Tensor4D, s: number): tf.Tensor4D {
  return x.shape[2] === s ? x : tf.slice(x, [0, 0, 0, 0], [-1, -1, s, -1]);
}

/** `a @ x[:, :, :s]` (transposed with `transposeB`), without a copy where the BLAS kernel can. */
function slotProduct(a: tf.Tensor, x: tf.Tensor4D, s: number, transposeB: boolean): tf.Tensor {
  if (x.shape[2] === s) return tf.matMul(a, x, false, transposeB);
  return slotMatMul(a, x, s, transposeB) ??
    tf.matMul(a, firstSlots(x, s), false, transposeB);
}

/**
 * Multi-head attention with GQA; q [B,H,T,D], k/v [B,Hkv,C,D] of which the first S slots are
 * read (S from bias [B, 1, T, S]) -> [B, T, H*D].
 */
function attend(
  c: ModelConfig,
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D,
  hk: BlockHook,
): tf.Tensor3D {
  const [b, h, t, d] = q.shape;
  if (decodingStep) {
    // One kernel where it pays (decoding's small tensors; lib/engine/fused.ts), else the ops below.
    const z = fusedAttention(q, k, v, bias, c.attnScale, c.attnSoftcap ?? 0);
    if (z) return tf.reshape(z, [b, t, h * d]);
  }
  const hkv = c.nKvHead;
  const s = bias.shape[3]; // k and v may hold reserved slots past these
  const rep = h / hkv;
  // Query heads g*rep .. g*rep+rep-1 share kv head g (HF repeat_kv): a reshape, no copy.
  const qg = tf.reshape(q, [b, hkv, rep * t, d]);
  let scores = tf.mul(slotProduct(qg, k, s, true), c.attnScale); // [B, Hkv, rep*T, S]
  if (c.attnSoftcap !== undefined) scores = softcap(scores, c.attnSoftcap);
  scores = tf.add(tf.reshape(scores, [b, h, t, s]), bias); // [B, H, T, S]
  const pattern = hk("attn.hook_pattern", tf.softmax(scores) as tf.Tensor4D); // [B, H, T, S]
  const probs = tf.reshape(pattern, [b, hkv, rep * t, s]);
  const out = tf.reshape(slotProduct(probs, v, s, false), [b, h, t, d]); // [B, H, T, D]
  const z = hk("attn.hook_z", tf.transpose(out, [0, 2, 1, 3]) as tf.Tensor4D); // [B, T, H, D]
  return tf.reshape(z, [b, t, h * d]);
}

type Get = (name: string) => tf.Tensor;

/**
 * GPT-2 q, k, v [B, H, T, D] from the fused c_attn of block i, and the x the block's residual
 * add reads (see {@link layerNormRes}).
 */
function gpt2Qkv(
  c: ModelConfig,
  p: Params,
  g: Get,
  i: number,
  x: tf.Tensor3D,
): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor3D] {
  const [b, t, d] = x.shape;
  const pre = `h.${i}.`;
  const [h, res] = layerNormRes(x, g(pre + "ln_1.weight"), g(pre + "ln_1.bias"), c.normEps, true);
  const h2d = tf.reshape(h, [b * t, d]);
  const qkv = linear(h2d, p, pre + "attn.c_attn.weight", g(pre + "attn.c_attn.bias"));
  // On wasm one copy makes the three [B, H, T, D] blocks, and under a gradient tape one pass
  // puts their gradients back (the bits of the composed slices, reshapes and transposes).
  const heads = splitHeads(qkv as tf.Tensor2D, b, t, 3, c.nHead);
  const cut = (j: number) =>
    heads?.[j] ??
      tf.transpose(
        tf.reshape(tf.slice(qkv, [0, j * d], [b * t, d]), [b, t, c.nHead, c.headDim]),
        [0, 2, 1, 3],
      ) as tf.Tensor4D;
  return [cut(0), cut(1), cut(2), res as tf.Tensor3D];
}

/**
 * RoPE-family q, k, v [B, H(kv), T, D] of block i: input norm, projections (fused for
 * Phi-3), biases, per-head q/k norms (Qwen3, Gemma 3), rotary embedding.
 */
function ropeQkv(
  c: ModelConfig,
  p: Params,
  g: Get,
  i: number,
  x: tf.Tensor3D,
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
) {
  const [b, t, d] = x.shape;
  const pre = `model.layers.${i}.self_attn.`;
  const h2d = tf.reshape(
    rmsNorm(x, g(`model.layers.${i}.input_layernorm.weight`), c.normEps, c.normOffset),
    [b * t, d],
  );
  const qd = c.nHead * c.headDim;
  const kvd = c.nKvHead * c.headDim;
  const heads = (y: tf.Tensor2D, n: number) => tf.reshape(y, [b, t, n, c.headDim]) as tf.Tensor4D;
  let qf: tf.Tensor4D, kf: tf.Tensor4D, vf: tf.Tensor4D;
  if (c.fusedProjections) {
    const qkv = linear(h2d, p, pre + "qkv_proj.weight"); // [B*T, qd + 2 kvd]
    qf = heads(tf.slice(qkv, [0, 0], [b * t, qd]), c.nHead);
    kf = heads(tf.slice(qkv, [0, qd], [b * t, kvd]), c.nKvHead);
    vf = heads(tf.slice(qkv, [0, qd + kvd], [b * t, kvd]), c.nKvHead);
  } else {
    const opt = (n: string) => (c.attnBias ? g(pre + n) : undefined);
    const proj = (n: string, nh: number) =>
      heads(linear(h2d, p, pre + n + ".weight", opt(n + ".bias")), nh);
    qf = proj("q_proj", c.nHead);
    kf = proj("k_proj", c.nKvHead);
    vf = proj("v_proj", c.nKvHead);
  }
  if (c.qkNorm) {
    qf = rmsNorm(qf, g(pre + "q_norm.weight"), c.normEps, c.normOffset) as tf.Tensor4D;
    kf = rmsNorm(kf, g(pre + "k_norm.weight"), c.normEps, c.normOffset) as tf.Tensor4D;
  }
  const q = tf.transpose(applyRope(qf, cos, sin), [0, 2, 1, 3]) as tf.Tensor4D;
  const k = tf.transpose(applyRope(kf, cos, sin), [0, 2, 1, 3]) as tf.Tensor4D;
  const v = tf.transpose(vf, [0, 2, 1, 3]) as tf.Tensor4D;
  return [q, k, v];
}

/** GPT-2: x + c_proj(att), then x + MLP(ln_2(x)) with GELU. */
function gpt2Rest(
  c: ModelConfig,
  p: Params,
  g: Get,
  i: number,
  x: tf.Tensor3D,
  att: tf.Tensor2D,
  hk: BlockHook,
) {
  const [b, t, d] = x.shape;
  const pre = `h.${i}.`;
  const o = linear(att, p, pre + "attn.c_proj.weight", g(pre + "attn.c_proj.bias"));
  x = tf.add(x, hk("hook_attn_out", tf.reshape(o, [b, t, d]) as tf.Tensor3D));
  x = hk("hook_resid_mid", x);
  const [ln2, res] = layerNormRes(x, g(pre + "ln_2.weight"), g(pre + "ln_2.bias"), c.normEps, true);
  x = res as tf.Tensor3D;
  const h2 = tf.reshape(ln2, [b * t, d]);
  const fc = gelu(linear(h2, p, pre + "mlp.c_fc.weight", g(pre + "mlp.c_fc.bias")));
  const m = linear(fc, p, pre + "mlp.c_proj.weight", g(pre + "mlp.c_proj.bias"));
  return tf.add(x, hk("hook_mlp_out", tf.reshape(m, [b, t, d]) as tf.Tensor3D)) as tf.Tensor3D;
}

/**
 * RoPE families: x + o_proj(att) (Gemma: post_attention_layernorm of it first), then the gated
 * MLP act(gate) * up on the post-attention norm (Gemma: pre_feedforward_layernorm, and
 * post_feedforward_layernorm on the output).
 */
function ropeRest(
  c: ModelConfig,
  p: Params,
  g: Get,
  i: number,
  x: tf.Tensor3D,
  att: tf.Tensor2D,
  hk: BlockHook,
) {
  const [b, t, d] = x.shape;
  const pre = `model.layers.${i}.`;
  const norm = (y: tf.Tensor, n: string) =>
    rmsNorm(y, g(pre + n + ".weight"), c.normEps, c.normOffset);
  let o: tf.Tensor = linear(
    att,
    p,
    pre + "self_attn.o_proj.weight",
    c.outBias ? g(pre + "self_attn.o_proj.bias") : undefined,
  );
  if (c.sandwichNorms) o = norm(o, "post_attention_layernorm");
  x = tf.add(x, hk("hook_attn_out", tf.reshape(o, [b, t, d]) as tf.Tensor3D));
  x = hk("hook_resid_mid", x); // Gemma: after the post-attention norm's output is added
  const h2 = tf.reshape(
    norm(x, c.sandwichNorms ? "pre_feedforward_layernorm" : "post_attention_layernorm"),
    [b * t, d],
  );
  let gate: tf.Tensor2D, up: tf.Tensor2D;
  if (c.fusedProjections) {
    const gu = linear(h2, p, pre + "mlp.gate_up_proj.weight"); // [B*T, 2 dFf]: gate | up
    gate = tf.slice(gu, [0, 0], [b * t, c.dFf]);
    up = tf.slice(gu, [0, c.dFf], [b * t, c.dFf]);
  } else {
    gate = linear(h2, p, pre + "mlp.gate_proj.weight");
    up = linear(h2, p, pre + "mlp.up_proj.weight");
  }
  const act = c.mlpAct === "silu"
    ? tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D // SiLU(gate) * up
    : tf.mul(gelu(gate), up) as tf.Tensor2D; // gelu_pytorch_tanh(gate) * up
  let m: tf.Tensor = linear(act, p, pre + "mlp.down_proj.weight");
  if (c.sandwichNorms) m = norm(m, "post_feedforward_layernorm");
  return tf.add(x, hk("hook_mlp_out", tf.reshape(m, [b, t, d]) as tf.Tensor3D)) as tf.Tensor3D;
}

/** The final norm (ln_f / model.norm) of x [B, T', d]. */
function finalNorm(c: ModelConfig, g: Get, x: tf.Tensor): tf.Tensor3D {
  return (c.arch === "gpt2"
    ? layerNorm(x, g("ln_f.weight"), g("ln_f.bias"), c.normEps)
    : rmsNorm(x, g("model.norm.weight"), c.normEps, c.normOffset)) as tf.Tensor3D;
}

/** A parameter getter whose error names the missing weight (and what to do with external ones). */
function getter(p: Params): Get {
  return (name: string) => {
    const v = p.get(name);
    if (!v) {
      throw new Error(
        `forward: parameter '${name}' missing` +
          (externalOf(p) ? "" : " (a Params map built from a model with weights outside the " +
            "wasm heap must carry them: attachExternal(params, externalOf(model.params)))"),
      );
    }
    return v;
  };
}

/** rows [N, d] @ W_U^T -> [N, V]: the head's product, before any soft-cap. */
function headProduct(c: ModelConfig, p: Params, g: Get, rows: tf.Tensor2D): tf.Tensor2D {
  const headName = c.tieWordEmbeddings
    ? (c.arch === "gpt2" ? "wte.weight" : "model.embed_tokens.weight")
    : "lm_head.weight";
  const extHead = p.has(headName) ? undefined : externalOf(p)?.get(headName);
  return (extHead
    ? externalMatMul(rows, extHead)
    : tf.matMul(rows, g(headName) as tf.Tensor2D, false, true)) as tf.Tensor2D;
}

/** The head on the final-norm output xs [B, T', d] -> logits [B, T', V] (soft-capped when set). */
function headLogits(c: ModelConfig, p: Params, g: Get, xs: tf.Tensor3D): tf.Tensor3D {
  const [b, tt, d] = xs.shape;
  let flat: tf.Tensor = headProduct(c, p, g, tf.reshape(xs, [b * tt, d]));
  if (c.finalSoftcap !== undefined) flat = softcap(flat, c.finalSoftcap);
  return tf.reshape(flat, [b, tt, c.vocabSize]);
}

/**
 * The final norm then the head on a residual x [B, T, d], with the exact ops of
 * {@link forward}: on the residual after the last block it returns the model's own logits,
 * bit for bit (the logit lens reads every other layer through it). The caller disposes it.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { makeConfig } from "./config.ts";
 * import { initParams } from "./weights.ts";
 * const c = makeConfig({ arch: "gpt2", vocabSize: 32, nLayer: 2, dModel: 16, nHead: 4 });
 * const p = initParams(c, 0);
 * const f = forward(c, p, [[1, 2, 3]], { finalResidual: true });
 * unembed(c, p, f.finalResidual!); // equals f.logits exactly
 * ```
 */
export function unembed(c: ModelConfig, p: Params, x: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const g = getter(p);
    return headLogits(c, p, g, finalNorm(c, g, x));
  });
}

/**
 * rows [N, d] times the unembedding, W_U^T -> [N, V], without the final norm or soft-cap
 * (works with the head in host memory). With the identity's rows it gives W_U^T itself,
 * which is how a logit direction is carried back to the residual stream.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { makeConfig } from "./config.ts";
 * import { initParams } from "./weights.ts";
 * const c = makeConfig({ arch: "llama", vocabSize: 32, nLayer: 1, dModel: 8, nHead: 2 });
 * unembedRows(c, initParams(c, 0), tf.eye(8)).shape; // [8, 32]: row j is W_U[:, j]
 * ```
 */
export function unembedRows(c: ModelConfig, p: Params, rows: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => headProduct(c, p, getter(p), rows));
}

/**
 * The final norm alone (GPT-2's `ln_f`, else `model.norm`) of x [B, T, d], as the forward
 * computes it.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { makeConfig } from "./config.ts";
 * import { initParams } from "./weights.ts";
 * const c = makeConfig({ arch: "gpt2", vocabSize: 32, nLayer: 1, dModel: 8, nHead: 2 });
 * applyFinalNorm(c, initParams(c, 0), tf.ones([1, 2, 8])).shape; // [1, 2, 8]
 * ```
 */
export function applyFinalNorm(c: ModelConfig, p: Params, x: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => finalNorm(c, getter(p), x));
}

/**
 * Block i's attention output projection (GPT-2 `attn.c_proj`, else `self_attn.o_proj`, LoRA
 * and host-memory weights included) of z [N, H * D], WITHOUT its bias: with every head but h
 * zeroed in z it is head h's contribution z_h @ W_O[h]. Before Gemma's post-attention norm.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { makeConfig } from "./config.ts";
 * import { initParams } from "./weights.ts";
 * const c = makeConfig({ arch: "gpt2", vocabSize: 32, nLayer: 1, dModel: 8, nHead: 2 });
 * attnOutProject(c, initParams(c, 0), 0, tf.ones([3, 8])).shape; // [3, 8]
 * ```
 */
export function attnOutProject(
  c: ModelConfig,
  p: Params,
  i: number,
  z: tf.Tensor2D,
): tf.Tensor2D {
  return tf.tidy(() =>
    linear(
      z,
      p,
      c.arch === "gpt2" ? `h.${i}.attn.c_proj.weight` : `model.layers.${i}.self_attn.o_proj.weight`,
    )
  );
}

/**
 * The bias of block i's attention output projection [d], or undefined when it has none
 * (Llama-style `o_proj` without `outBias`). The tensor belongs to the model: do not dispose.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { makeConfig } from "./config.ts";
 * import { initParams } from "./weights.ts";
 * const c = makeConfig({ arch: "gpt2", vocabSize: 32, nLayer: 1, dModel: 8, nHead: 2 });
 * attnOutBias(c, initParams(c, 0), 0)?.shape; // [8]
 * ```
 */
export function attnOutBias(c: ModelConfig, p: Params, i: number): tf.Tensor | undefined {
  if (c.arch === "gpt2") return getter(p)(`h.${i}.attn.c_proj.bias`);
  return c.outBias ? getter(p)(`model.layers.${i}.self_attn.o_proj.bias`) : undefined;
}

/**
 * One forward pass over `ids` [B, T] (new tokens; past ones live in `opts.cache`).
 * Runs inside tf.tidy; returned tensors belong to the caller.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { makeConfig } from "./config.ts";
 * import { initParams } from "./weights.ts";
 * const c = makeConfig({ arch: "llama", vocabSize: 32, nLayer: 2, dModel: 16, nHead: 4 });
 * const f = forward(c, initParams(c, 0), [[1, 2, 3]], { hiddenStates: [0, -1] });
 * f.logits; // [1, 3, 32]; f.hiddenStates[2]: after the final norm, as HF's hidden_states[-1]
 * ```
 */
export function forward(
  c: ModelConfig,
  p: Params,
  ids: number[][],
  opts: ForwardOptions = {},
): ForwardOutput {
  const outer = decodingStep;
  decodingStep = !opts.hook && opts.cache !== undefined;
  try {
    return forwardPass(c, p, ids, opts);
  } finally {
    decodingStep = outer;
  }
}

/** {@link forward}'s body (the wrapper sets `decodingStep` around it). */
function forwardPass(
  c: ModelConfig,
  p: Params,
  ids: number[][],
  opts: ForwardOptions,
): ForwardOutput {
  const b = ids.length;
  const t = ids[0]?.length ?? 0;
  if (b === 0 || t === 0) throw new Error("forward: inputIds must be a non-empty [B, T] array");
  for (const row of ids) {
    if (row.length !== t) {
      throw new Error("forward: rows of inputIds differ in length; left-pad them");
    }
  }
  const pastLen = opts.cache?.length ?? 0;
  const mask = opts.attentionMask ?? ids.map(() => new Array(pastLen + t).fill(1));
  if (mask.length !== b || mask.some((r) => r.length !== pastLen + t)) {
    throw new Error(`forward: attentionMask must be [${b}, ${pastLen + t}] (past + new positions)`);
  }
  const want = new Set<number>(
    opts.hiddenStates === "all"
      ? Array.from({ length: c.nLayer + 1 }, (_, i) => i)
      : (opts.hiddenStates ?? []).map((l) => (l < 0 ? c.nLayer + 1 + l : l)),
  );
  for (const l of want) {
    if (l < 0 || l > c.nLayer) throw new Error(`forward: layer ${l} outside 0..${c.nLayer}`);
  }
  for (const iv of opts.interventions ?? []) {
    if (iv.layer < 0 || iv.layer > c.nLayer) {
      throw new Error(`forward: intervention layer ${iv.layer} outside 0..${c.nLayer}`);
    }
    if (iv.beforeFinalNorm && iv.layer !== c.nLayer) {
      throw new Error(
        `forward: beforeFinalNorm edits the residual after the last block; use layer ${c.nLayer}, ` +
          `not ${iv.layer}`,
      );
    }
  }
  const g = getter(p);
  const hook = opts.hook;
  const pos = positionIds(mask, pastLen, t);
  for (const row of pos) {
    for (const x of row) {
      if (c.arch === "gpt2" && x >= c.maxPositions) {
        throw new Error(`forward: position ${x} exceeds n_positions ${c.maxPositions}`);
      }
    }
  }
  const keep = opts.useCache || opts.cache !== undefined;
  const last = c.nLayer;
  // Reserve slots only where later steps can write into them, a chunk at a time, when the
  // cache this step returns would have none left.
  const reserveSlots = keep && opts.reserve !== undefined && opts.reserve > pastLen + t &&
      slotWritesAvailable()
    ? Math.min(opts.reserve, pastLen + t + RESERVE_CHUNK)
    : 0;

  return tf.tidy(() => {
    const d = c.dModel;
    const flatIds = tf.tensor1d(ids.flat(), "int32");
    // One additive mask per attention kind used (full, sliding).
    const biases = new Map<string, tf.Tensor4D>();
    const biasOf = (i: number) => {
      const sliding = c.layerTypes[i] === "sliding" && c.slidingWindow !== undefined;
      const key = sliding ? "sliding" : "full";
      if (!biases.has(key)) {
        biases.set(key, attentionBias(mask, pastLen, t, sliding ? c.slidingWindow : undefined));
      }
      return biases.get(key)!;
    };
    const external = externalOf(p);
    const embed = (name: string): tf.Tensor => {
      const e = p.has(name) ? undefined : external?.get(name);
      return e ? externalGather(e, flatIds) : tf.gather(g(name), flatIds);
    };
    let x: tf.Tensor3D;
    let rope: [tf.Tensor4D, tf.Tensor4D] | undefined;
    let ropeLocal: [tf.Tensor4D, tf.Tensor4D] | undefined;
    if (c.arch === "gpt2") {
      let tok = tf.reshape(embed("wte.weight"), [b, t, d]) as tf.Tensor3D;
      let pe = tf.reshape(
        tf.gather(g("wpe.weight"), tf.tensor1d(pos.flat(), "int32")),
        [b, t, d],
      ) as tf.Tensor3D;
      if (hook) tok = hook("hook_embed", tok) as tf.Tensor3D;
      if (hook) pe = hook("hook_pos_embed", pe) as tf.Tensor3D;
      x = tf.add(tok, pe);
    } else {
      x = tf.reshape(embed("model.embed_tokens.weight"), [b, t, d]);
      if (c.embedScale !== 1) x = tf.mul(x, c.embedScale); // Gemma: sqrt(d) in float32
      if (hook) x = hook("hook_embed", x) as tf.Tensor3D;
      rope = ropeTables(pos, c.rope!);
      if (c.ropeLocal && c.layerTypes.includes("sliding")) {
        ropeLocal = ropeTables(pos, c.ropeLocal);
      }
    }
    const hidden: tf.Tensor3D[] = [];
    const newK: tf.Tensor4D[] = [];
    const newV: tf.Tensor4D[] = [];
    // Hidden state `layer` is a view of the named hook points: blocks.{layer}.hook_resid_pre
    // for layer < nLayer (after the interventions at that layer), ln_final.hook_normalized
    // (then the interventions at nLayer) for the last one.
    const edit = (layer: number) => {
      for (const iv of opts.interventions ?? []) {
        if (iv.layer === layer && !iv.beforeFinalNorm) x = iv.fn(x);
      }
      if (hook && layer < last) x = hook(`blocks.${layer}.hook_resid_pre`, x) as tf.Tensor3D;
      if (want.has(layer)) hidden[layer] = x;
    };
    // Hidden states 0 .. nLayer-1 are residuals; nLayer is the final-norm output (below).
    if (last > 0) edit(0);
    // The masks are made here, outside the blocks' scopes, so every block can reuse them.
    for (let i = 0; i < c.nLayer; i++) biasOf(i);
    for (let i = 0; i < c.nLayer; i++) {
      // One scope per block: its intermediates are freed when it ends (what the gradient needs
      // is kept by the tape), so a forward holds one block's activations, not all of them.
      const hk: BlockHook = hook
        ? <T extends tf.Tensor>(n: string, y: T) => hook(`blocks.${i}.${n}`, y) as T
        : <T extends tf.Tensor>(_n: string, y: T) => y;
      const [xNext, kNew, vNew] = tf.tidy(() => {
        let q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, xRes = x;
        if (c.arch === "gpt2") [q, k, v, xRes] = gpt2Qkv(c, p, g, i, x);
        else {
          const [cos, sin] = c.layerTypes[i] === "sliding" && ropeLocal ? ropeLocal : rope!;
          [q, k, v] = ropeQkv(c, p, g, i, x, cos, sin);
        }
        if (opts.cache) [k, v] = extendCache(opts.cache.k[i], opts.cache.v[i], k, v, pastLen);
        const att = tf.reshape(
          attend(c, q, k, v, biasOf(i), hk),
          [
            b * t,
            c.nHead * c.headDim,
          ],
        ) as tf.Tensor2D;
        const y = hk(
          "hook_resid_post",
          c.arch === "gpt2"
            ? gpt2Rest(c, p, g, i, xRes, att, hk)
            : ropeRest(c, p, g, i, x, att, hk),
        );
        if (!keep) return [y];
        return reserveSlots && k.shape[2] === pastLen + t
          ? [y, withRoom(k, reserveSlots), withRoom(v, reserveSlots)]
          : [y, k, v];
      }) as [tf.Tensor3D, tf.Tensor4D?, tf.Tensor4D?];
      x = xNext;
      if (keep) newK.push(kNew!), newV.push(vNew!);
      if (i + 1 < last) edit(i + 1);
    }
    for (const iv of opts.interventions ?? []) if (iv.beforeFinalNorm) x = iv.fn(x);
    const residual = x;
    const ivLast = (opts.interventions ?? []).some((iv) =>
      iv.layer === last && !iv.beforeFinalNorm
    );
    let logits: tf.Tensor3D | undefined;
    let xs: tf.Tensor3D | undefined; // what the head reads
    const lastOnly = opts.logits === "last";
    if (want.has(last) || ivLast || hook || (opts.logits !== "none" && !lastOnly)) {
      x = finalNorm(c, g, x);
      if (hook) x = hook("ln_final.hook_normalized", x) as tf.Tensor3D;
      edit(last);
      if (opts.logits !== "none") xs = lastOnly ? tf.slice(x, [0, t - 1, 0], [b, 1, d]) : x;
    } else if (lastOnly) {
      xs = finalNorm(c, g, tf.slice(x, [0, t - 1, 0], [b, 1, d]));
    }
    if (xs) logits = headLogits(c, p, g, xs);
    const out: ForwardOutput = { logits, hiddenStates: hidden };
    if (opts.finalResidual) out.finalResidual = residual;
    if (keep) out.cache = { k: newK, v: newV, length: pastLen + t };
    return out as unknown as tf.TensorContainer;
  }) as unknown as ForwardOutput;
}

/**
 * A layer's cache extended by the new keys and values [B, Hkv, t, D]: written into reserved
 * slots in place where it has some (and `writeSlots` applies: enough room, wasm, ...), else
 * concatenated after the filled slots.
 */
function extendCache(
  ck: tf.Tensor4D,
  cv: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  pastLen: number,
): [tf.Tensor4D, tf.Tensor4D] {
  if (ck.shape[2] > pastLen) {
    const wk = writeSlots(ck, k, pastLen);
    const wv = wk && writeSlots(cv, v, pastLen);
    if (wk && wv) return [wk, wv];
    // Written where room was (slots past pastLen only): the copies below do not read them.
  }
  return [
    tf.concat([firstSlots(ck, pastLen), k], 2),
    tf.concat([firstSlots(cv, pastLen), v], 2),
  ];
}

/** `x` [B, H, S, D] with zero slots appended up to `slots` (itself when it has as many). */
function withRoom(x: tf.Tensor4D, slots: number): tf.Tensor4D {
  const s = x.shape[2];
  return s >= slots ? x : tf.pad(x, [[0, 0], [0, 0], [0, slots - s], [0, 0]]);
}

/** Disposes every tensor of a cache. */
export function disposeCache(cache: KVCache | undefined): void {
  if (!cache) return;
  tf.dispose([...cache.k, ...cache.v]);
}
