/**
 * Fuzz target: lib/model/config.ts `parseConfig` on mutated config.json files of every
 * family, then the allocation check. An accepted config must be usable: positive integer
 * sizes, a layer type per layer, finite positive RoPE frequencies, token ids in the
 * vocabulary, and parameters that fit the memory limit given here (16 GiB).
 *
 * @module
 */

import { parseConfig } from "../../lib/model/config.ts";
import { checkMemory } from "../../lib/model/config_check.ts";
import { paramSpecs } from "../../lib/model/weights.ts";
import { ropeInvFreq } from "../../lib/model/rope.ts";
import { type Json, mutateJsonText } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const LLAMA = {
  model_type: "llama",
  vocab_size: 64,
  hidden_size: 32,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  intermediate_size: 64,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  bos_token_id: 1,
  eos_token_id: [2, 3],
};
const SEEDS: Json[] = [
  {
    model_type: "gpt2",
    vocab_size: 64,
    n_layer: 2,
    n_embd: 32,
    n_head: 4,
    n_inner: null,
    n_positions: 128,
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: true,
  },
  LLAMA,
  {
    ...LLAMA,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  },
  { ...LLAMA, model_type: "qwen3", head_dim: 16, use_sliding_window: true, sliding_window: 8 },
  { ...LLAMA, model_type: "mistral", sliding_window: 16 },
  { ...LLAMA, model_type: "gemma2", head_dim: 8, query_pre_attn_scalar: 8 },
  {
    ...LLAMA,
    model_type: "gemma3_text",
    head_dim: 8,
    rope_scaling: { rope_type: "linear", factor: 8 },
  },
  {
    ...LLAMA,
    model_type: "phi3",
    partial_rotary_factor: 0.5,
    rope_scaling: { type: "longrope", short_factor: [1, 1], long_factor: [2, 2] },
    original_max_position_embeddings: 64,
  },
  {
    ...LLAMA,
    rope_scaling: { rope_type: "yarn", factor: 4, original_max_position_embeddings: 64 },
  },
];

const SOURCE = "fuzz/config.json";

/** The config.json target. */
export const target: FuzzTarget = {
  name: "config",
  source: SOURCE,
  make: (rng) => mutateJsonText(rng, rng.pick(SEEDS)),
  run(input) {
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(input));
    } catch {
      throw new Error(`${SOURCE}: not JSON`); // loadModel's own wrapper
    }
    const c = parseConfig(raw as Record<string, unknown>, SOURCE);
    checkMemory(c, SOURCE, 16 * 2 ** 30);
    for (
      const k of ["vocabSize", "nLayer", "dModel", "nHead", "nKvHead", "headDim", "dFf"] as const
    ) {
      if (!Number.isInteger(c[k]) || c[k] < 1) return `${k} = ${c[k]}`;
    }
    if (c.layerTypes.length !== c.nLayer) return "layerTypes length";
    if (!(c.normEps > 0)) return `normEps ${c.normEps}`;
    for (const id of [c.bosTokenId, c.eosTokenId, c.padTokenId]) {
      if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) {
        return `token id ${id}`;
      }
    }
    for (const r of [c.rope, c.ropeLocal]) {
      if (!r) continue;
      for (const pos of [0, c.maxPositions - 1, 4 * c.maxPositions]) {
        const inv = ropeInvFreq(r, Math.min(pos, 1 << 20));
        if (!inv.every((x) => Number.isFinite(x) && x >= 0)) {
          return `rope inv_freq ${inv.slice(0, 4)}`;
        }
      }
      if (!(r.attentionFactor > 0 && Number.isFinite(r.attentionFactor))) return "attention factor";
    }
    if (paramSpecs(c).some((s) => s.shape.some((d) => !Number.isInteger(d) || d < 0))) {
      return "param shape";
    }
    return undefined;
  },
};
