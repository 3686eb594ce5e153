/**
 * Model configuration, normalised from a Hugging Face `config.json` (GPT-2 and the Llama
 * family: Llama, Mistral, Qwen2, SmolLM) into one shape the transformer reads.
 *
 * @module
 */

/** Architecture family. */
export type Arch = "gpt2" | "llama";

/** The normalised configuration of a decoder-only transformer. */
export interface ModelConfig {
  /** gpt2 (LayerNorm, learned positions, GELU, fused c_attn) or llama (RMSNorm, RoPE, SwiGLU, GQA). */
  arch: Arch;
  /** HF `model_type` as read (gpt2, llama, mistral, qwen2, ...). */
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
  /** Per-head size. */
  headDim: number;
  /** MLP hidden size. */
  dFf: number;
  /** Maximum context (learned positions for GPT-2; informational for RoPE). */
  maxPositions: number;
  /** LayerNorm / RMSNorm epsilon. */
  normEps: number;
  /** RoPE base (llama). */
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
  /** The raw config.json, kept for saving. */
  raw: Record<string, unknown>;
}

const LLAMA_TYPES = new Set(["llama", "mistral", "qwen2", "smollm", "qwen3"]);

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

/** Reads a HF config.json object. `source` names the file in error messages. */
export function parseConfig(raw: Record<string, unknown>, source = "config.json"): ModelConfig {
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
    if (!["gelu_new", "gelu", "gelu_pytorch_tanh", "gelu_fast"].includes(act)) {
      throw new Error(`${source}: activation_function '${act}' is not supported (gelu_new is)`);
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
    };
  }
  if (LLAMA_TYPES.has(modelType)) {
    const dModel = num(raw, ["hidden_size"], source);
    const nHead = num(raw, ["num_attention_heads"], source);
    const nKvHead = typeof raw.num_key_value_heads === "number" ? raw.num_key_value_heads : nHead;
    if (nHead % nKvHead !== 0) {
      throw new Error(
        `${source}: num_attention_heads (${nHead}) must be a multiple of num_key_value_heads (${nKvHead})`,
      );
    }
    const scaling = raw.rope_scaling as Record<string, unknown> | null | undefined;
    if (scaling && scaling.rope_type !== "default" && scaling.type !== "default") {
      console.warn(
        `${source}: rope_scaling ${JSON.stringify(scaling)} is not implemented; using plain RoPE ` +
          "(exact within the original context length only)",
      );
    }
    return {
      ...base,
      arch: "llama",
      nLayer: num(raw, ["num_hidden_layers"], source),
      dModel,
      nHead,
      nKvHead,
      headDim: typeof raw.head_dim === "number" ? raw.head_dim : dModel / nHead,
      dFf: num(raw, ["intermediate_size"], source),
      maxPositions: typeof raw.max_position_embeddings === "number"
        ? raw.max_position_embeddings
        : 4096,
      normEps: typeof raw.rms_norm_eps === "number" ? raw.rms_norm_eps : 1e-6,
      ropeTheta: typeof raw.rope_theta === "number" ? raw.rope_theta : 10000,
      attnBias: raw.attention_bias === true || modelType === "qwen2",
      // HF Llama/Mistral: attention_bias adds biases to q, k, v AND o; Qwen2: q, k, v only.
      outBias: raw.attention_bias === true && modelType !== "qwen2",
      tieWordEmbeddings: raw.tie_word_embeddings === true,
    };
  }
  throw new Error(
    `${source}: model_type '${modelType}' is not supported (gpt2, llama, mistral, qwen2 are)`,
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
  for (const k of ["bos", "eos", "pad"] as const) {
    const v = spec[`${k}TokenId`];
    if (v !== undefined) raw[`${k}_token_id`] = v;
  }
  return parseConfig(raw, "makeConfig");
}
