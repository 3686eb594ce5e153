/**
 * The RMSNorm + RoPE decoder families, read from a Hugging Face `config.json` exactly as
 * transformers 5.x reads them, defaults included:
 *
 * | model_type    | HF files ported from (configuration_*.py, modeling_*.py)          | what differs from Llama |
 * |---------------|------------------------------------------------------------------|-------------------------|
 * | llama, smollm | models/llama                                                     | attention_bias on q/k/v/o |
 * | mistral       | models/mistral (MistralAttention, create_sliding_window_causal_mask) | sliding_window on every layer, no biases |
 * | qwen2         | models/qwen2 (Qwen2Attention)                                    | q/k/v biases, no o bias; sliding layers i >= max_window_layers when use_sliding_window |
 * | qwen3         | models/qwen3 (Qwen3Attention)                                    | per-head q_norm/k_norm before RoPE; head_dim default 128 |
 * | gemma2        | models/gemma2 (Gemma2RMSNorm, Gemma2DecoderLayer, Gemma2Attention, Gemma2ForCausalLM) | (1 + w) norms, sqrt(d) embedding scale, GeGLU, sandwich norms, query_pre_attn_scalar, attention and final logit soft-caps, alternating sliding layers |
 * | gemma3_text   | models/gemma3 (Gemma3Attention, Gemma3RotaryEmbedding, Gemma3TextConfig) | gemma2 plus (1 + w) q/k norms, a local RoPE base for sliding layers, 5:1 sliding pattern, no attention soft-cap |
 * | phi3          | models/phi3 (Phi3Attention, Phi3MLP, Phi3Config)                 | fused qkv_proj and gate_up_proj, partial_rotary_factor, longrope |
 *
 * HF quirks kept on purpose: Gemma 3's attention ignores `attn_logit_softcapping` (HF never
 * passes it to the attention function), Mistral has no attention biases whatever the config
 * says. Fields changing the computation that are not implemented (mlp_bias, bidirectional
 * attention, other activations or RoPE types) are errors.
 *
 * @module
 */

import type { LayerType, ModelConfig } from "./config.ts";
import { resolveRope, type RopeSpec } from "./rope.ts";

/** What a family adds to the fields every config has (vocabulary, special tokens, raw). */
export type FamilyFields = Omit<
  ModelConfig,
  "modelType" | "vocabSize" | "bosTokenId" | "eosTokenId" | "padTokenId" | "raw"
>;

const GEMMA = new Set(["gemma2", "gemma3_text"]);

/**
 * Reads the fields of a RoPE decoder (model types other than gpt2); `parseConfig` calls it.
 *
 * @example
 * ```ts
 * const f = parseRopeFamily({
 *   model_type: "qwen3", hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2,
 *   intermediate_size: 128, head_dim: 32,
 * }, "qwen3", "config.json");
 * f.qkNorm; // true
 * f.headDim; // 32 (not 64 / 4)
 * ```
 */
export function parseRopeFamily(
  raw: Record<string, unknown>,
  modelType: string,
  source: string,
): FamilyFields {
  const n = (k: string): number | undefined => {
    const v = raw[k];
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  };
  const need = (k: string): number => {
    const v = n(k);
    if (v === undefined) throw new Error(`${source}: missing numeric field '${k}'`);
    return v;
  };
  const refuse = (what: string, supported: string): never => {
    throw new Error(`${source}: ${what} is not implemented (${supported})`);
  };
  const gemma = GEMMA.has(modelType);
  const gemma3 = modelType === "gemma3_text";
  const phi3 = modelType === "phi3";
  const qwen = modelType === "qwen2" || modelType === "qwen3";

  const dModel = need("hidden_size");
  const nHead = need("num_attention_heads");
  const nLayer = need("num_hidden_layers");
  const nKvHead = n("num_key_value_heads") ?? nHead;
  if (nHead % nKvHead !== 0) {
    throw new Error(
      `${source}: num_attention_heads (${nHead}) must be a multiple of num_key_value_heads (${nKvHead})`,
    );
  }
  // head_dim: phi3 has no such field; qwen3 and gemma default to 128 / 256 when it is absent.
  const defaultHeadDim = modelType === "qwen3" ? 128 : gemma ? 256 : dModel / nHead;
  const headDim = phi3 ? dModel / nHead : (n("head_dim") ?? defaultHeadDim);
  if (!Number.isInteger(headDim)) {
    throw new Error(`${source}: head_dim ${headDim} is not an integer`);
  }
  const maxPositions = n("max_position_embeddings") ??
    (gemma3 ? 131072 : gemma ? 8192 : phi3 ? 4096 : 2048);

  // Activation of the gated MLP.
  const actName = String(
    gemma ? (raw.hidden_activation ?? "gelu_pytorch_tanh") : (raw.hidden_act ?? "silu"),
  );
  const mlpAct = ["silu", "swish"].includes(actName)
    ? "silu"
    : ["gelu_pytorch_tanh", "gelu_new", "gelu_fast"].includes(actName)
    ? "gelu_tanh"
    : refuse(`activation '${actName}'`, "silu and gelu_pytorch_tanh are");
  if (raw.mlp_bias === true) refuse("mlp_bias=true", "MLP projections without biases are");
  if (raw.use_bidirectional_attention === true) {
    refuse("use_bidirectional_attention=true", "causal attention is");
  }

  // Biases: llama/qwen3/gemma `attention_bias` -> q, k, v and o; qwen2 q/k/v always, never o.
  const biasAll = raw.attention_bias === true && !["mistral", "phi3", "qwen2"].includes(modelType);
  const attnBias = modelType === "qwen2" || biasAll;

  // Sliding windows and layer types.
  let window: number | undefined;
  let types: LayerType[] = new Array(nLayer).fill("full");
  const fromConfig = Array.isArray(raw.layer_types) ? raw.layer_types as unknown[] : undefined;
  const readTypes = () => {
    if (!fromConfig) return undefined;
    if (fromConfig.length !== nLayer) {
      throw new Error(`${source}: layer_types has ${fromConfig.length} entries, not ${nLayer}`);
    }
    return fromConfig.map((t) =>
      t === "sliding_attention"
        ? "sliding"
        : t === "full_attention"
        ? "full"
        : refuse(`layer type '${t}'`, "full_attention and sliding_attention are")
    ) as LayerType[];
  };
  if (modelType === "mistral" || phi3) {
    // MistralConfig defaults sliding_window to 4096 when the key is absent; Phi3Config to None.
    const w = "sliding_window" in raw
      ? n("sliding_window")
      : modelType === "mistral"
      ? 4096
      : undefined;
    if (w !== undefined) (window = w), (types = new Array(nLayer).fill("sliding"));
  } else if (qwen) {
    // Qwen2/3Config: sliding_window only with use_sliding_window; layers i >= max_window_layers.
    if (raw.use_sliding_window === true) {
      window = n("sliding_window") ?? 4096;
      const maxWindow = n("max_window_layers") ?? 28;
      types = readTypes() ??
        Array.from({ length: nLayer }, (_, i) => (i >= maxWindow ? "sliding" : "full"));
    }
  } else if (gemma) {
    window = "sliding_window" in raw ? n("sliding_window") : 4096;
    const pattern = n("sliding_window_pattern") ?? n("_sliding_window_pattern") ?? 6;
    types = readTypes() ??
      Array.from(
        { length: nLayer },
        (_, i) =>
          gemma3 ? ((i + 1) % pattern ? "sliding" : "full") : ((i + 1) % 2 ? "sliding" : "full"),
      );
  }
  if (window === undefined) types = types.map(() => "full"); // HF: no window, no sliding mask
  if (window !== undefined && (!Number.isInteger(window) || window < 1)) {
    throw new Error(`${source}: sliding_window must be a positive integer, got ${window}`);
  }

  // RoPE. Old configs: rope_theta + rope_scaling; transformers 5: rope_parameters.
  const prf = n("partial_rotary_factor");
  const ctx = {
    headDim,
    maxPositions,
    originalMaxPositions: n("original_max_position_embeddings"),
    partialRotaryFactor: prf,
    source,
  };
  const dict = (v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
  let rope: RopeSpec;
  let ropeLocal: RopeSpec | undefined;
  if (gemma3) {
    const params = dict(raw.rope_parameters);
    const nested = params && ("full_attention" in params || "sliding_attention" in params);
    const full = nested ? dict(params!.full_attention) : dict(raw.rope_scaling) ?? params;
    const local = nested ? dict(params!.sliding_attention) : undefined;
    rope = resolveRope(full, { ...ctx, theta: n("rope_theta") ?? 1e6 });
    ropeLocal = resolveRope(local, { ...ctx, theta: n("rope_local_base_freq") ?? 1e4 });
  } else {
    let params = dict(raw.rope_scaling) ?? dict(raw.rope_parameters);
    if (
      phi3 && params && (params.rope_type === "su" || params.rope_type === "yarn" ||
        params.type === "su" || params.type === "yarn")
    ) {
      params = { ...params, rope_type: "longrope" }; // Phi3Config renames su / yarn to longrope
      delete params.type;
    }
    if (phi3 && !ctx.originalMaxPositions) ctx.originalMaxPositions = 4096; // Phi3Config default
    rope = resolveRope(params, { ...ctx, theta: n("rope_theta") ?? 10000 });
  }
  if (!gemma3 && !phi3 && prf !== undefined && prf !== 1) {
    refuse(`partial_rotary_factor ${prf} for ${modelType}`, "phi3 reads it");
  }

  return {
    arch: "llama",
    nLayer,
    dModel,
    nHead,
    nKvHead,
    headDim,
    dFf: need("intermediate_size"),
    maxPositions,
    normEps: n("rms_norm_eps") ?? (phi3 ? 1e-5 : 1e-6),
    ropeTheta: rope.theta,
    attnBias,
    outBias: biasAll,
    tieWordEmbeddings: typeof raw.tie_word_embeddings === "boolean"
      ? raw.tie_word_embeddings
      : gemma,
    rope,
    ropeLocal,
    layerTypes: types,
    slidingWindow: window,
    qkNorm: modelType === "qwen3" || gemma3,
    normOffset: gemma ? 1 : 0,
    sandwichNorms: gemma,
    embedScale: gemma ? Math.fround(Math.sqrt(dModel)) : 1,
    attnScale: gemma ? Math.pow(n("query_pre_attn_scalar") ?? 256, -0.5) : 1 / Math.sqrt(headDim),
    // Gemma2Config defaults: 50 / 30; Gemma3TextConfig: none (and its attention ignores the first).
    attnSoftcap: modelType === "gemma2"
      ? ("attn_logit_softcapping" in raw ? n("attn_logit_softcapping") : 50)
      : undefined,
    finalSoftcap: modelType === "gemma2"
      ? ("final_logit_softcapping" in raw ? n("final_logit_softcapping") : 30)
      : gemma3
      ? n("final_logit_softcapping")
      : undefined,
    mlpAct,
    fusedProjections: phi3,
  };
}
