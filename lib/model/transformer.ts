/**
 * The decoder-only transformer, readable top to bottom (after nanoGPT): GPT-2 (LayerNorm,
 * learned positions, GELU, fused q|k|v) and the Llama family (RMSNorm, RoPE in HF's
 * rotate-half layout, SwiGLU, grouped-query attention, optional q/k/v biases as in Qwen2).
 *
 * Shapes: B batch, T new tokens, S = past + T keys, d model width, H heads, Hkv key/value
 * heads, D head size, V vocabulary. Hidden state i is the residual stream after block i
 * (0 = embedding output); the final norm is applied only before the head.
 *
 * Speed notes (PERF-NOTES.md): GELU is written with `sigmoid` (tfjs-wasm's tanh and pow are
 * slow), transposes stay 4-D, and q|k|v are cut with `slice`, not `split`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import type { Params } from "./weights.ts";

/** Keys and values of past positions, per layer: [B, Hkv, S, D]. */
export interface KVCache {
  /** Keys, one [B, Hkv, S, D] tensor per layer. */
  k: tf.Tensor4D[];
  /** Values, one [B, Hkv, S, D] tensor per layer. */
  v: tf.Tensor4D[];
  /** Number of cached positions S. */
  length: number;
}

/** An edit of the residual stream after block `layer` (0 = embeddings), scoped to one call. */
export interface Intervention {
  /** Hidden-state index it edits: 0 = embeddings, i = after block i. */
  layer: number;
  /** Returns the new hidden state [B, T, d]; called inside tf.tidy. */
  fn: (h: tf.Tensor3D) => tf.Tensor3D;
}

/** Options of {@link forward}. */
export interface ForwardOptions {
  /** 1 = real token, 0 = padding; covers past + new positions [B, S]. @default all ones */
  attentionMask?: number[][];
  /** Layers whose hidden states to return ("all" = 0..nLayer). @default none */
  hiddenStates?: "all" | number[];
  /** Past keys/values; when given, the returned cache extends it. */
  cache?: KVCache;
  /** Return a cache for further decoding. @default false */
  useCache?: boolean;
  /** Compute logits for every position or only the last one. @default "all" */
  logits?: "all" | "last" | "none";
  /** Residual-stream edits (steering, ablation), applied in order. */
  interventions?: Intervention[];
}

/** What {@link forward} returns. The caller owns (and disposes) every tensor. */
export interface ForwardOutput {
  /** [B, T, V] (or [B, 1, V] with logits "last"); undefined with logits "none". */
  logits?: tf.Tensor3D;
  /** Indexed by layer; only the requested entries are set. Each [B, T, d]. */
  hiddenStates: tf.Tensor3D[];
  /** The extended cache when useCache or cache was given. */
  cache?: KVCache;
}

const GELU_C = 1.5957691216057308; // 2 * sqrt(2 / pi)

/** GELU, tanh approximation (gelu_new), as x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)). */
export function gelu(x: tf.Tensor): tf.Tensor {
  const cube = tf.mul(tf.mul(x, x), x);
  return tf.mul(x, tf.sigmoid(tf.mul(tf.add(x, tf.mul(cube, 0.044715)), GELU_C)));
}

function layerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.mul(xc, xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b);
}

function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  const ms = tf.mean(tf.mul(x, x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w);
}

/**
 * x [N, in] @ W [in, out] (+ b), plus a LoRA update scale * (x @ A) @ B when the parameters
 * hold `<weight>.lora_A` [in, r], `<weight>.lora_B` [r, out] and `<weight>.lora_scale` (see lora.ts).
 */
function linear(x: tf.Tensor, p: Params, weight: string, b?: tf.Tensor): tf.Tensor2D {
  const w = p.get(weight);
  if (!w) throw new Error(`forward: parameter '${weight}' missing`);
  let y = tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D) as tf.Tensor2D;
  const a = p.get(weight + ".lora_A");
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

/** Additive attention mask [B, 1, T, S]: causal over absolute positions, padded keys hidden. */
function attentionBias(mask: number[][], pastLen: number, t: number): tf.Tensor4D {
  const b = mask.length;
  const s = pastLen + t;
  const data = new Float32Array(b * t * s);
  for (let i = 0; i < b; i++) {
    for (let q = 0; q < t; q++) {
      const base = (i * t + q) * s;
      for (let k = 0; k < s; k++) {
        const visible = k <= pastLen + q && mask[i][k] === 1;
        data[base + k] = visible ? 0 : -1e9;
      }
    }
  }
  return tf.tensor4d(data, [b, 1, t, s]);
}

/** cos/sin tables [B, T, 1, D] for RoPE (HF rotate-half layout: frequencies repeated twice). */
function ropeTables(pos: number[][], headDim: number, theta: number): [tf.Tensor4D, tf.Tensor4D] {
  const b = pos.length;
  const t = pos[0].length;
  const half = headDim / 2;
  const cos = new Float32Array(b * t * headDim);
  const sin = new Float32Array(b * t * headDim);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < t; j++) {
      const base = (i * t + j) * headDim;
      for (let f = 0; f < half; f++) {
        const angle = pos[i][j] * Math.pow(theta, (-2 * f) / headDim);
        cos[base + f] = cos[base + f + half] = Math.cos(angle);
        sin[base + f] = sin[base + f + half] = Math.sin(angle);
      }
    }
  }
  return [tf.tensor4d(cos, [b, t, 1, headDim]), tf.tensor4d(sin, [b, t, 1, headDim])];
}

/** x [B, T, H, D] rotated: x*cos + rotate_half(x)*sin, rotate_half(x) = [-x2, x1]. */
function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  const [b, t, h, d] = x.shape;
  const x1 = tf.slice(x, [0, 0, 0, 0], [b, t, h, d / 2]);
  const x2 = tf.slice(x, [0, 0, 0, d / 2], [b, t, h, d / 2]);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** Multi-head attention with GQA; q [B,H,T,D], k/v [B,Hkv,S,D] -> [B, T, H*D]. */
function attend(
  c: ModelConfig,
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D,
): tf.Tensor3D {
  const [b, h, t, d] = q.shape;
  const hkv = c.nKvHead;
  const s = k.shape[2];
  const rep = h / hkv;
  // Query heads g*rep .. g*rep+rep-1 share kv head g (HF repeat_kv): a reshape, no copy.
  const qg = tf.reshape(q, [b, hkv, rep * t, d]);
  let scores = tf.mul(tf.matMul(qg, k, false, true), 1 / Math.sqrt(d)); // [B, Hkv, rep*T, S]
  scores = tf.add(tf.reshape(scores, [b, h, t, s]), bias); // [B, H, T, S]
  const probs = tf.reshape(tf.softmax(scores), [b, hkv, rep * t, s]);
  const out = tf.reshape(tf.matMul(probs, v), [b, h, t, d]); // [B, H, T, D]
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b, t, h * d]);
}

/**
 * One forward pass over `ids` [B, T] (new tokens; past ones live in `opts.cache`).
 * Runs inside tf.tidy; returned tensors belong to the caller.
 */
export function forward(
  c: ModelConfig,
  p: Params,
  ids: number[][],
  opts: ForwardOptions = {},
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
  const g = (name: string) => {
    const v = p.get(name);
    if (!v) throw new Error(`forward: parameter '${name}' missing`);
    return v;
  };
  const pos = positionIds(mask, pastLen, t);
  for (const row of pos) {
    for (const x of row) {
      if (c.arch === "gpt2" && x >= c.maxPositions) {
        throw new Error(`forward: position ${x} exceeds n_positions ${c.maxPositions}`);
      }
    }
  }
  const keep = opts.useCache || opts.cache !== undefined;

  return tf.tidy(() => {
    const d = c.dModel;
    const flatIds = tf.tensor1d(ids.flat(), "int32");
    const bias = attentionBias(mask, pastLen, t);
    let x: tf.Tensor3D;
    let rope: [tf.Tensor4D, tf.Tensor4D] | undefined;
    if (c.arch === "gpt2") {
      const tok = tf.gather(g("wte.weight"), flatIds);
      const pe = tf.gather(g("wpe.weight"), tf.tensor1d(pos.flat(), "int32"));
      x = tf.reshape(tf.add(tok, pe), [b, t, d]);
    } else {
      x = tf.reshape(tf.gather(g("model.embed_tokens.weight"), flatIds), [b, t, d]);
      rope = ropeTables(pos, c.headDim, c.ropeTheta);
    }
    const hidden: tf.Tensor3D[] = [];
    const newK: tf.Tensor4D[] = [];
    const newV: tf.Tensor4D[] = [];
    const edit = (layer: number) => {
      for (const iv of opts.interventions ?? []) if (iv.layer === layer) x = iv.fn(x);
      if (want.has(layer)) hidden[layer] = x;
    };
    edit(0);
    for (let i = 0; i < c.nLayer; i++) {
      let q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D;
      let h2d: tf.Tensor2D;
      if (c.arch === "gpt2") {
        const pre = `h.${i}.`;
        h2d = tf.reshape(
          layerNorm(x, g(pre + "ln_1.weight"), g(pre + "ln_1.bias"), c.normEps),
          [b * t, d],
        );
        const qkv = linear(h2d, p, pre + "attn.c_attn.weight", g(pre + "attn.c_attn.bias"));
        const cut = (j: number) =>
          tf.transpose(
            tf.reshape(tf.slice(qkv, [0, j * d], [b * t, d]), [b, t, c.nHead, c.headDim]),
            [0, 2, 1, 3],
          ) as tf.Tensor4D;
        [q, k, v] = [cut(0), cut(1), cut(2)];
      } else {
        const pre = `model.layers.${i}.self_attn.`;
        h2d = tf.reshape(
          rmsNorm(x, g(`model.layers.${i}.input_layernorm.weight`), c.normEps),
          [b * t, d],
        );
        const opt = (n: string) => (c.attnBias ? g(pre + n) : undefined);
        const proj = (n: string, heads: number) =>
          tf.reshape(linear(h2d, p, pre + n + ".weight", opt(n + ".bias")), [
            b,
            t,
            heads,
            c.headDim,
          ]) as tf.Tensor4D;
        const [cos, sin] = rope!;
        q = tf.transpose(applyRope(proj("q_proj", c.nHead), cos, sin), [0, 2, 1, 3]);
        k = tf.transpose(applyRope(proj("k_proj", c.nKvHead), cos, sin), [0, 2, 1, 3]);
        v = tf.transpose(proj("v_proj", c.nKvHead), [0, 2, 1, 3]);
      }
      if (opts.cache) {
        k = tf.concat([opts.cache.k[i], k], 2);
        v = tf.concat([opts.cache.v[i], v], 2);
      }
      if (keep) newK.push(k), newV.push(v);
      const att = tf.reshape(attend(c, q, k, v, bias), [b * t, c.nHead * c.headDim]);
      if (c.arch === "gpt2") {
        const pre = `h.${i}.`;
        const o = linear(att, p, pre + "attn.c_proj.weight", g(pre + "attn.c_proj.bias"));
        x = tf.add(x, tf.reshape(o, [b, t, d]));
        const h2 = tf.reshape(
          layerNorm(x, g(pre + "ln_2.weight"), g(pre + "ln_2.bias"), c.normEps),
          [b * t, d],
        );
        const fc = gelu(linear(h2, p, pre + "mlp.c_fc.weight", g(pre + "mlp.c_fc.bias")));
        const m = linear(fc, p, pre + "mlp.c_proj.weight", g(pre + "mlp.c_proj.bias"));
        x = tf.add(x, tf.reshape(m, [b, t, d]));
      } else {
        const pre = `model.layers.${i}.`;
        const o = linear(
          att,
          p,
          pre + "self_attn.o_proj.weight",
          c.outBias ? g(pre + "self_attn.o_proj.bias") : undefined,
        );
        x = tf.add(x, tf.reshape(o, [b, t, d]));
        const h2 = tf.reshape(
          rmsNorm(x, g(pre + "post_attention_layernorm.weight"), c.normEps),
          [b * t, d],
        );
        const gate = linear(h2, p, pre + "mlp.gate_proj.weight");
        const up = linear(h2, p, pre + "mlp.up_proj.weight");
        const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D; // SiLU(gate) * up
        x = tf.add(x, tf.reshape(linear(act, p, pre + "mlp.down_proj.weight"), [b, t, d]));
      }
      edit(i + 1);
    }
    let logits: tf.Tensor3D | undefined;
    if (opts.logits !== "none") {
      const last = opts.logits === "last";
      const xs = last ? tf.slice(x, [0, t - 1, 0], [b, 1, d]) : x;
      const tt = last ? 1 : t;
      const normed = c.arch === "gpt2"
        ? layerNorm(xs, g("ln_f.weight"), g("ln_f.bias"), c.normEps)
        : rmsNorm(xs, g("model.norm.weight"), c.normEps);
      const head = c.tieWordEmbeddings
        ? g(c.arch === "gpt2" ? "wte.weight" : "model.embed_tokens.weight")
        : g("lm_head.weight");
      const flat = tf.matMul(tf.reshape(normed, [b * tt, d]), head as tf.Tensor2D, false, true);
      logits = tf.reshape(flat, [b, tt, c.vocabSize]);
    }
    const out: ForwardOutput = { logits, hiddenStates: hidden };
    if (keep) out.cache = { k: newK, v: newV, length: pastLen + t };
    return out as unknown as tf.TensorContainer;
  }) as unknown as ForwardOutput;
}

/** Disposes every tensor of a cache. */
export function disposeCache(cache: KVCache | undefined): void {
  if (!cache) return;
  tf.dispose([...cache.k, ...cache.v]);
}
