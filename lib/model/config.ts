/**
 * Model configuration, normalised from a Hugging Face `config.json` into one shape the
 * transformer reads: GPT-2 (`configuration_gpt2.py`), and the RMSNorm + RoPE decoders read by
 * lib/model/families.ts (Llama, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3 text, Phi-3).
 * A field whose value the engine does not implement is an error, never a warning.
 *
 * @module
 */

import type { RopeSpec } from "./rope.ts";
import { parseRopeFamily } from "./families.ts";
import { checkConfig, checkRawConfig } from "./config_check.ts";

/** Architecture family: gpt2, or the RMSNorm + RoPE decoders (every other model type). */
export type Arch = "gpt2" | "llama";

/** Attention kind of one block: all past keys, or the last `slidingWindow` slots only. */
export type LayerType = "full" | "sliding";

/** The normalised configuration of a decoder-only transformer. */
export interface ModelConfig {
  /** gpt2 (LayerNorm, learned positions, GELU, fused c_attn) or llama (RMSNorm, RoPE, gated MLP, GQA). */
  arch: Arch;
  /** HF `model_type` as read (gpt2, llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3). */
  modelType: string;
  /** Vocabulary size: rows of the token embedding and of the output head. */
  vocabSize: number;
  /** Number of transformer blocks. */
  nLayer: number;
  /** Hidden size (residual stream width). */
  dModel: number;
  /** Attention (query) heads per block. */
  nHead: number;
  /** Key/value heads (GQA); equals nHead for multi-head attention. */
  nKvHead: number;
  /** Per-head size (config `head_dim`; may differ from dModel / nHead). */
  headDim: number;
  /** MLP hidden size. */
  dFf: number;
  /** Maximum context (learned positions for GPT-2; informational for RoPE). */
  maxPositions: number;
  /** LayerNorm / RMSNorm epsilon. */
  normEps: number;
  /** RoPE base of the full-attention layers (llama; 0 for gpt2). */
  ropeTheta: number;
  /** q/k/v projections have biases (Qwen2, Llama's attention_bias; always for GPT-2). */
  attnBias: boolean;
  /** The attention output projection has a bias (GPT-2; Llama's attention_bias; not Qwen2). */
  outBias: boolean;
  /** Output head shares the token-embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Beginning-of-sequence token id (`bos_token_id`; the first entry when it is a list). */
  bosTokenId?: number;
  /** End-of-sequence token id (`eos_token_id`; the first entry when it is a list). */
  eosTokenId?: number;
  /** Padding token id (`pad_token_id`; the first entry when it is a list). */
  padTokenId?: number;
  /** RoPE of the full-attention layers (llama arch). */
  rope?: RopeSpec;
  /** RoPE of the sliding layers when it differs (Gemma 3 `rope_local_base_freq`). */
  ropeLocal?: RopeSpec;
  /** Attention kind per block (Mistral, Qwen2/3 with use_sliding_window, Gemma 2/3, Phi-3). */
  layerTypes: LayerType[];
  /** Window of the sliding layers: query slot q sees key slots k with q - k < window. */
  slidingWindow?: number;
  /** Per-head RMSNorm of q and k before RoPE (Qwen3 q_norm/k_norm, Gemma 3). */
  qkNorm: boolean;
  /** RMSNorm scale is (offset + w): 1 for Gemma (zero-initialised weights), else 0. */
  normOffset: number;
  /** Gemma 2/3 extra norms: post_attention, pre_feedforward and post_feedforward layernorms. */
  sandwichNorms: boolean;
  /** Token embeddings times this (Gemma: sqrt(d_model) rounded to float32). */
  embedScale: number;
  /** Attention score scale (1/sqrt(head_dim); Gemma: query_pre_attn_scalar^-0.5). */
  attnScale: number;
  /** tanh soft-cap of attention scores (Gemma 2 attn_logit_softcapping). */
  attnSoftcap?: number;
  /** tanh soft-cap of the output logits (Gemma 2/3 final_logit_softcapping). */
  finalSoftcap?: number;
  /** Gated-MLP activation: silu (SwiGLU) or tanh-GELU (GeGLU, gelu_pytorch_tanh). */
  mlpAct: "silu" | "gelu_tanh";
  /** Phi-3 fused projections: qkv_proj and gate_up_proj. */
  fusedProjections: boolean;
  /** The raw config.json, kept for saving. */
  raw: Record<string, unknown>;
}

/** The model types {@link parseConfig} reads. */
export const SUPPORTED_MODEL_TYPES = [
  "gpt2",
  "llama",
  "mistral",
  "qwen2",
  "qwen3",
  "gemma2",
  "gemma3_text",
  "phi3",
  "smollm",
] as const;

function num(raw: Record<string, unknown>, keys: string[], source: string): number {
  for (const k of keys) {
    const v = raw[k];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  throw new Error(`${source}: missing numeric field '${keys[0]}' (also tried ${keys.slice(1)})`);
}

function optNum(raw: Record<string, unknown>, key: string): number | undefined {
  const v = raw[key];
  if (typeof v === "number") return v;
  if (Array.isArray(v) && typeof v[0] === "number") return v[0];
  return undefined;
}

/**
 * Reads a HF config.json object. `source` names the file in error messages. A field whose
 * value the engine does not implement is an error naming it, and so is a value out of range or of
 * the wrong type (lib/model/config_check.ts: checked before anything is allocated).
 *
 * @example
 * ```ts
 * const c = parseConfig({
 *   model_type: "gemma2", vocab_size: 256, hidden_size: 64, num_attention_heads: 4,
 *   num_hidden_layers: 2, intermediate_size: 128, head_dim: 16,
 * });
 * c.layerTypes; // ["sliding", "full"]
 * c.finalSoftcap; // 30 (Gemma2Config's default)
 * ```
 */
export function parseConfig(raw: Record<string, unknown>, source = "config.json"): ModelConfig {
  checkRawConfig(raw, source); // types and sizes, before anything is allocated from them
  const config = parseChecked(raw, source);
  checkConfig(config, source);
  return config;
}

function parseChecked(raw: Record<string, unknown>, source: string): ModelConfig {
  const modelType = String(raw.model_type ?? "");
  const base = {
    modelType,
    vocabSize: num(raw, ["vocab_size"], source),
    bosTokenId: optNum(raw, "bos_token_id"),
    eosTokenId: optNum(raw, "eos_token_id"),
    padTokenId: optNum(raw, "pad_token_id"),
    raw,
  };
  if (modelType === "gpt2") {
    const dModel = num(raw, ["n_embd", "hidden_size"], source);
    const nHead = num(raw, ["n_head", "num_attention_heads"], source);
    const act = String(raw.activation_function ?? "gelu_new");
    if (!["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].includes(act)) {
      throw new Error(
        `${source}: activation_function '${act}' is not supported (gelu_new, gelu_pytorch_tanh, ` +
          "gelu_fast are: the tanh GELU)",
      );
    }
    if (raw.scale_attn_by_inverse_layer_idx === true || raw.scale_attn_weights === false) {
      throw new Error(
        `${source}: scale_attn_by_inverse_layer_idx=true / scale_attn_weights=false are not ` +
          "implemented (GPT-2's 1/sqrt(head_dim) attention scale is)",
      );
    }
    return {
      ...base,
      arch: "gpt2",
      nLayer: num(raw, ["n_layer", "num_hidden_layers"], source),
      dModel,
      nHead,
      nKvHead: nHead,
      headDim: dModel / nHead,
      dFf: typeof raw.n_inner === "number" ? raw.n_inner : 4 * dModel,
      maxPositions: num(raw, ["n_positions", "n_ctx"], source),
      normEps: typeof raw.layer_norm_epsilon === "number" ? raw.layer_norm_epsilon : 1e-5,
      ropeTheta: 0,
      attnBias: true,
      outBias: true,
      tieWordEmbeddings: raw.tie_word_embeddings !== false,
      layerTypes: new Array(num(raw, ["n_layer", "num_hidden_layers"], source)).fill("full"),
      qkNorm: false,
      normOffset: 0,
      sandwichNorms: false,
      embedScale: 1,
      attnScale: 1 / Math.sqrt(dModel / nHead),
      mlpAct: "gelu_tanh",
      fusedProjections: false,
    };
  }
  if ((SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    return { ...base, ...parseRopeFamily(raw, modelType, source) };
  }
  throw new Error(
    `${source}: model_type '${modelType}' is not supported (${
      SUPPORTED_MODEL_TYPES.join(", ")
    } are)`,
  );
}

/** Options for {@link makeConfig}: a config built in code (tests, SafetyWorld models). */
export interface ConfigSpec {
  /** Architecture family (see {@link ModelConfig.arch}). */
  arch: Arch;
  /** Vocabulary size. */
  vocabSize: number;
  /** Number of transformer blocks. */
  nLayer: number;
  /** Hidden size (residual stream width). */
  dModel: number;
  /** Attention (query) heads per block. */
  nHead: number;
  /** Key/value heads (GQA; llama only, GPT-2 always uses nHead). @default nHead */
  nKvHead?: number;
  /** MLP hidden size. @default 4 * dModel */
  dFf?: number;
  /** Maximum context length. @default 1024 for gpt2, 2048 for llama */
  maxPositions?: number;
  /** RoPE base (llama only). @default 10000 */
  ropeTheta?: number;
  /**
   * Llama `attention_bias`: biases on q/k/v and the output projection. Ignored for GPT-2 (always
   * biased); qwen2 always has q/k/v biases and never an output bias. @default false
   */
  attnBias?: boolean;
  /** Output head shares the token-embedding matrix. @default true for gpt2, false for llama */
  tieWordEmbeddings?: boolean;
  /** Llama-family flavour written to config.json (qwen2: q/k/v biases only). @default "llama" */
  modelType?: "llama" | "mistral" | "qwen2";
  /** Beginning-of-sequence token id, written as `bos_token_id` when set. */
  bosTokenId?: number;
  /** End-of-sequence token id, written as `eos_token_id` when set. */
  eosTokenId?: number;
  /** Padding token id, written as `pad_token_id` when set. */
  padTokenId?: number;
}

/** Builds an HF-compatible config.json object and its normalised form. */
export function makeConfig(spec: ConfigSpec): ModelConfig {
  const raw: Record<string, unknown> = spec.arch === "gpt2"
    ? {
      model_type: "gpt2",
      architectures: ["GPT2LMHeadModel"],
      vocab_size: spec.vocabSize,
      n_layer: spec.nLayer,
      n_embd: spec.dModel,
      n_head: spec.nHead,
      n_inner: spec.dFf ?? null,
      n_positions: spec.maxPositions ?? 1024,
      n_ctx: spec.maxPositions ?? 1024,
      activation_function: "gelu_new",
      layer_norm_epsilon: 1e-5,
      tie_word_embeddings: spec.tieWordEmbeddings ?? true,
    }
    : {
      model_type: spec.modelType ?? "llama",
      architectures: [
        { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM" }[
          spec.modelType ?? "llama"
        ],
      ],
      vocab_size: spec.vocabSize,
      num_hidden_layers: spec.nLayer,
      hidden_size: spec.dModel,
      num_attention_heads: spec.nHead,
      num_key_value_heads: spec.nKvHead ?? spec.nHead,
      intermediate_size: spec.dFf ?? 4 * spec.dModel,
      max_position_embeddings: spec.maxPositions ?? 2048,
      rms_norm_eps: 1e-6,
      rope_theta: spec.ropeTheta ?? 10000,
      attention_bias: spec.attnBias ?? false,
      hidden_act: "silu",
      tie_word_embeddings: spec.tieWordEmbeddings ?? false,
    };
  // MistralConfig defaults sliding_window to 4096 when absent; a config built here has none.
  if (raw.model_type === "mistral") raw.sliding_window = null;
  for (const k of ["bos", "eos", "pad"] as const) {
    const v = spec[`${k}TokenId`];
    if (v !== undefined) raw[`${k}_token_id`] = v;
  }
  return parseConfig(raw, "makeConfig");
}
