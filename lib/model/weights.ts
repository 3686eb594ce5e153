/**
 * Parameter naming and layout for GPT-2 and the RoPE families (lib/model/families.ts), and
 * seeded initialisation.
 *
 * Names are Hugging Face's (without GPT-2's `transformer.` prefix), so a checkpoint maps
 * one to one: Qwen3/Gemma 3 `self_attn.q_norm`/`k_norm`, Gemma's `pre_feedforward_layernorm`
 * and `post_feedforward_layernorm`, Phi-3's fused `qkv_proj` and `gate_up_proj`. One layout
 * change: RoPE-family `*_proj.weight` matrices are stored in HF as `[out, in]` and kept here
 * as `[in, out]`, so every linear layer is a plain `x @ W` (the fast path of tfjs matmul
 * kernels); load and save transpose them.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import { makeRng } from "../data/rng.ts";
import type { ExternalMatrix } from "../engine/external_matrix.ts";

/** The model's parameters by canonical name. */
export type Params = Map<string, tf.Variable>;

/** A parameter's shape as stored here. */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** Stored transposed relative to the HF checkpoint (Llama linear weights). */
  transposed: boolean;
  /** Initialisation: normal(0, std), ones, or zeros. */
  init: "normal" | "ones" | "zeros";
  std?: number;
}

/** Lists every parameter a config needs, in a stable order. */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const out: ParamSpec[] = [];
  const w = (name: string, shape: number[], std = 0.02, transposed = false) =>
    out.push({ name, shape, transposed, init: "normal", std });
  const ones = (name: string, n: number) =>
    out.push({ name, shape: [n], transposed: false, init: "ones" });
  const zeros = (name: string, n: number) =>
    out.push({ name, shape: [n], transposed: false, init: "zeros" });
  const d = c.dModel;
  const projStd = 0.02 / Math.sqrt(2 * c.nLayer);
  if (c.arch === "gpt2") {
    w("wte.weight", [c.vocabSize, d]);
    w("wpe.weight", [c.maxPositions, d], 0.01);
    for (let i = 0; i < c.nLayer; i++) {
      const p = `h.${i}.`;
      ones(p + "ln_1.weight", d), zeros(p + "ln_1.bias", d);
      w(p + "attn.c_attn.weight", [d, 3 * d]), zeros(p + "attn.c_attn.bias", 3 * d);
      w(p + "attn.c_proj.weight", [d, d], projStd), zeros(p + "attn.c_proj.bias", d);
      ones(p + "ln_2.weight", d), zeros(p + "ln_2.bias", d);
      w(p + "mlp.c_fc.weight", [d, c.dFf]), zeros(p + "mlp.c_fc.bias", c.dFf);
      w(p + "mlp.c_proj.weight", [c.dFf, d], projStd), zeros(p + "mlp.c_proj.bias", d);
    }
    ones("ln_f.weight", d), zeros("ln_f.bias", d);
    if (!c.tieWordEmbeddings) w("lm_head.weight", [c.vocabSize, d]);
    return out;
  }
  const qd = c.nHead * c.headDim;
  const kvd = c.nKvHead * c.headDim;
  // RMSNorm weights: ones, or zeros where the scale is (1 + w) (Gemma).
  const norm = (name: string, n: number) => (c.normOffset ? zeros(name, n) : ones(name, n));
  w("model.embed_tokens.weight", [c.vocabSize, d]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `model.layers.${i}.`;
    norm(p + "input_layernorm.weight", d);
    if (c.fusedProjections) {
      w(p + "self_attn.qkv_proj.weight", [d, qd + 2 * kvd], 0.02, true);
    } else {
      w(p + "self_attn.q_proj.weight", [d, qd], 0.02, true);
      w(p + "self_attn.k_proj.weight", [d, kvd], 0.02, true);
      w(p + "self_attn.v_proj.weight", [d, kvd], 0.02, true);
    }
    if (c.attnBias) {
      zeros(p + "self_attn.q_proj.bias", qd);
      zeros(p + "self_attn.k_proj.bias", kvd);
      zeros(p + "self_attn.v_proj.bias", kvd);
    }
    if (c.qkNorm) {
      norm(p + "self_attn.q_norm.weight", c.headDim);
      norm(p + "self_attn.k_norm.weight", c.headDim);
    }
    w(p + "self_attn.o_proj.weight", [qd, d], projStd, true);
    if (c.outBias) zeros(p + "self_attn.o_proj.bias", d);
    norm(p + "post_attention_layernorm.weight", d);
    if (c.sandwichNorms) {
      norm(p + "pre_feedforward_layernorm.weight", d);
      norm(p + "post_feedforward_layernorm.weight", d);
    }
    if (c.fusedProjections) {
      w(p + "mlp.gate_up_proj.weight", [d, 2 * c.dFf], 0.02, true);
    } else {
      w(p + "mlp.gate_proj.weight", [d, c.dFf], 0.02, true);
      w(p + "mlp.up_proj.weight", [d, c.dFf], 0.02, true);
    }
    w(p + "mlp.down_proj.weight", [c.dFf, d], projStd, true);
  }
  norm("model.norm.weight", d);
  if (!c.tieWordEmbeddings) w("lm_head.weight", [c.vocabSize, d]);
  return out;
}

/** Maps a checkpoint tensor name to the canonical name (GPT-2's `transformer.` prefix dropped). */
export function canonicalName(c: ModelConfig, name: string): string {
  if (c.arch === "gpt2" && name.startsWith("transformer.")) return name.slice(12);
  return name;
}

/** The name a canonical parameter is saved under (HF's current save_pretrained layout). */
export function checkpointName(c: ModelConfig, name: string): string {
  if (c.arch === "gpt2" && name !== "lm_head.weight") return "transformer." + name;
  return name;
}

/** Transposes a row-major [r, c] matrix. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < rows; i++) {
    const ri = i * cols;
    for (let j = 0; j < cols; j++) out[j * rows + i] = data[ri + j];
  }
  return out;
}

/** Seeded initial values for every parameter (GPT-2-style init; deterministic on every backend). */
export function initParams(c: ModelConfig, seed: number): Params {
  const rng = makeRng(seed);
  const params: Params = new Map();
  for (const s of paramSpecs(c)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (s.init === "ones") data.fill(1);
    else if (s.init === "normal") {
      const std = s.std ?? 0.02;
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    }
    params.set(s.name, variableFrom(tf.tensor(data, s.shape), true, uniqueName(s.name)));
  }
  return params;
}

/** Wraps a tensor in a variable and frees the source tensor (tf.variable keeps its own reference). */
export function variableFrom(t: tf.Tensor, trainable = true, name?: string): tf.Variable {
  const v = tf.variable(t, trainable, name);
  t.dispose();
  return v;
}

let counter = 0;
/** tfjs variable names are global: make each model's names unique. */
export function uniqueName(name: string): string {
  return `sc${++counter}/${name}`;
}

/**
 * Frozen weight matrices held outside the wasm heap (lib/engine/external_matrix.ts), by
 * canonical name: what {@link attachExternal} gives a {@link Params} map for models larger
 * than the heap. The transformer reads a name here before the heap parameters.
 */
export type ExternalParams = Map<string, ExternalMatrix>;

const EXTERNAL = new WeakMap<Params, ExternalParams>();

/**
 * Attaches frozen external matrices to a parameter map: `forward(config, params, ...)` then
 * multiplies by them through `externalMatMul` (and gathers embeddings with `externalGather`)
 * wherever `params` has no heap tensor of that name. Frozen: no gradient reaches them.
 *
 * @example
 * ```ts
 * import { externalMatrix } from "../engine/external_matrix.ts";
 * const params: Params = new Map();
 * attachExternal(params, new Map([["lm_head.weight", externalMatrix(new Float32Array(6), [3, 2])]]));
 * externalOf(params)?.size; // 1
 * ```
 */
export function attachExternal(params: Params, external: ExternalParams): void {
  EXTERNAL.set(params, external);
}

/** The external matrices attached to `params` by {@link attachExternal}, if any. */
export function externalOf(params: Params): ExternalParams | undefined {
  const e = EXTERNAL.get(params);
  return e && e.size > 0 ? e : undefined;
}
