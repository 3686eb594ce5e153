/**
 * Limits on an untrusted Hugging Face `config.json`, checked in two passes around
 * {@linkcode parseConfig} (lib/model/config.ts):
 *
 * 1. {@linkcode checkRawConfig}, before anything is read or allocated: every field the engine
 *    reads has the JSON type HF expects (a wrong-typed field is an error, never silently
 *    replaced by its default), sizes are integers within {@linkcode CONFIG_LIMITS}, strings
 *    are short, lists are as long as they may be. `n_layer: 1e9` stops here, not in an
 *    out-of-memory abort.
 * 2. {@linkcode checkConfig}, on the normalised config: divisibility (d_model by n_head for
 *    GPT-2, heads by key/value heads), epsilons, RoPE bases and scaling fields positive and
 *    finite, special token ids inside the vocabulary, soft-caps and windows positive.
 *
 * {@linkcode paramCount} and {@linkcode checkMemory} bound the allocation the config implies
 * against the memory the machine has. Every message names the file and the field, and echoes
 * at most {@linkcode ECHO_CHARS} characters of the offending value.
 *
 * @module
 */

import type { ModelConfig } from "./config.ts";
import type { RopeSpec } from "./rope.ts";
import { ECHO_CHARS, shown } from "../io/bounded.ts";

/**
 * Upper bounds on config sizes, far above any released model (Llama 3.1 405B: 126 layers,
 * d_model 16384; Gemma 3: 262144 tokens) and far below what would exhaust a machine's
 * address space before {@linkcode checkMemory} could refuse it.
 */
export const CONFIG_LIMITS = {
  /** vocab_size. */
  vocab: 1 << 24,
  /** n_layer / num_hidden_layers. */
  layers: 4096,
  /** Hidden, MLP and head sizes. */
  width: 1 << 20,
  /** Attention heads and key/value heads. */
  heads: 1 << 14,
  /** max_position_embeddings, windows, original context. */
  positions: 1 << 26,
} as const;

type Kind = "int" | "num" | "bool" | "str" | "tokenId";

/** Fields the engine reads, with their JSON type and (integers) their upper bound. */
const FIELDS: Record<string, [Kind, number?]> = {
  vocab_size: ["int", CONFIG_LIMITS.vocab],
  n_layer: ["int", CONFIG_LIMITS.layers],
  num_hidden_layers: ["int", CONFIG_LIMITS.layers],
  n_embd: ["int", CONFIG_LIMITS.width],
  hidden_size: ["int", CONFIG_LIMITS.width],
  n_head: ["int", CONFIG_LIMITS.heads],
  num_attention_heads: ["int", CONFIG_LIMITS.heads],
  num_key_value_heads: ["int", CONFIG_LIMITS.heads],
  head_dim: ["int", CONFIG_LIMITS.width],
  n_inner: ["int", CONFIG_LIMITS.width],
  intermediate_size: ["int", CONFIG_LIMITS.width],
  n_positions: ["int", CONFIG_LIMITS.positions],
  n_ctx: ["int", CONFIG_LIMITS.positions],
  max_position_embeddings: ["int", CONFIG_LIMITS.positions],
  original_max_position_embeddings: ["int", CONFIG_LIMITS.positions],
  sliding_window: ["int", CONFIG_LIMITS.positions],
  max_window_layers: ["int", CONFIG_LIMITS.layers],
  sliding_window_pattern: ["int", CONFIG_LIMITS.layers],
  _sliding_window_pattern: ["int", CONFIG_LIMITS.layers],
  layer_norm_epsilon: ["num"],
  rms_norm_eps: ["num"],
  rope_theta: ["num"],
  rope_local_base_freq: ["num"],
  partial_rotary_factor: ["num"],
  query_pre_attn_scalar: ["num"],
  attn_logit_softcapping: ["num"],
  final_logit_softcapping: ["num"],
  tie_word_embeddings: ["bool"],
  attention_bias: ["bool"],
  use_sliding_window: ["bool"],
  mlp_bias: ["bool"],
  use_bidirectional_attention: ["bool"],
  scale_attn_by_inverse_layer_idx: ["bool"],
  scale_attn_weights: ["bool"],
  model_type: ["str"],
  hidden_act: ["str"],
  hidden_activation: ["str"],
  activation_function: ["str"],
  bos_token_id: ["tokenId"],
  eos_token_id: ["tokenId"],
  pad_token_id: ["tokenId"],
};

/** The longest string field accepted (model types and activation names are short). */
const MAX_STRING = 64;

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

/**
 * Checks the JSON types and ranges of the fields of a raw config.json before it is parsed:
 * nothing is allocated from a size that fails here. `null` stands for HF's `None` (absent).
 *
 * @example
 * ```ts
 * checkRawConfig({ model_type: "gpt2", n_layer: 2 }, "config.json"); // passes
 * // checkRawConfig({ n_layer: 1e9 }, "config.json") throws:
 * // "config.json: field 'n_layer' is 1000000000; expected an integer in [0, 4096]"
 * ```
 */
export function checkRawConfig(raw: unknown, source: string): asserts raw is Record<
  string,
  unknown
> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`${source}: expected a JSON object, got ${shown(raw, 40)}`);
  }
  const r = raw as Record<string, unknown>;
  const bad = (k: string, want: string): never => {
    throw new Error(`${source}: field '${k}' is ${shown(r[k])}; expected ${want}`);
  };
  for (const [k, [kind, max]] of Object.entries(FIELDS)) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (kind === "int" && (!isInt(v) || v < 0 || v > max!)) {
      bad(k, `an integer in [0, ${max}]`);
    }
    if (kind === "num" && (typeof v !== "number" || !Number.isFinite(v))) bad(k, "a number");
    if (kind === "bool" && typeof v !== "boolean") bad(k, "true or false");
    if (kind === "str" && (typeof v !== "string" || v.length > MAX_STRING)) {
      bad(k, `a string of at most ${MAX_STRING} characters`);
    }
    if (kind === "tokenId") {
      const ids = Array.isArray(v) ? v : [v];
      if (ids.length === 0 || ids.length > 64 || !ids.every((x) => isInt(x) && x >= 0)) {
        bad(k, "a non-negative integer token id, or a list of 1 to 64 of them");
      }
    }
  }
  const types = r.layer_types;
  if (types !== undefined && types !== null) {
    if (
      !Array.isArray(types) || types.length > CONFIG_LIMITS.layers ||
      !types.every((t) => typeof t === "string" && t.length <= MAX_STRING)
    ) {
      bad("layer_types", `a list of at most ${CONFIG_LIMITS.layers} short strings`);
    }
  }
  for (const k of ["rope_scaling", "rope_parameters"]) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== "object" || Array.isArray(v)) bad(k, "an object (or null)");
    checkRopeDict(v as Record<string, unknown>, `${k}`, source, 0);
  }
}

/** A rope dict's fields: numbers finite, lists of numbers bounded, nesting one level (Gemma 3). */
function checkRopeDict(
  d: Record<string, unknown>,
  path: string,
  source: string,
  depth: number,
): void {
  const keys = Object.keys(d);
  if (keys.length > 32) {
    throw new Error(`${source}: field '${path}' has ${keys.length} keys; expected at most 32`);
  }
  for (const k of keys) {
    const v = d[k];
    const where = `${path}.${k.slice(0, 40)}`;
    const bad = (want: string): never => {
      throw new Error(`${source}: field '${where}' is ${shown(v)}; expected ${want}`);
    };
    if (v === null || typeof v === "boolean") continue;
    if (typeof v === "string") {
      if (v.length > MAX_STRING) bad(`a string of at most ${MAX_STRING} characters`);
    } else if (typeof v === "number") {
      if (!Number.isFinite(v)) bad("a finite number");
    } else if (Array.isArray(v)) {
      const ok = v.length <= CONFIG_LIMITS.width &&
        v.every((x) => typeof x === "number" && Number.isFinite(x));
      if (!ok) bad(`a list of at most ${CONFIG_LIMITS.width} finite numbers`);
    } else if (typeof v === "object" && depth === 0) {
      checkRopeDict(v as Record<string, unknown>, where, source, 1);
    } else bad("a number, string, boolean or list of numbers");
  }
}

/**
 * Checks a parsed config: positive sizes, divisibility, epsilons and RoPE positive, token ids
 * in the vocabulary. `parseConfig` calls it; the message names the file and the field.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * checkConfig(makeConfig({ arch: "gpt2", vocabSize: 8, nLayer: 1, dModel: 8, nHead: 2 }), "x");
 * ```
 */
export function checkConfig(c: ModelConfig, source: string): void {
  const fail = (field: string, what: string): never => {
    throw new Error(`${source}: ${field} ${what}`);
  };
  const positive = (field: string, v: number) => {
    if (!isInt(v) || v < 1) fail(field, `is ${shown(v)}; expected a positive integer`);
  };
  const gpt2 = c.arch === "gpt2";
  positive("vocab_size", c.vocabSize);
  positive(gpt2 ? "n_layer" : "num_hidden_layers", c.nLayer);
  positive(gpt2 ? "n_embd" : "hidden_size", c.dModel);
  positive(gpt2 ? "n_head" : "num_attention_heads", c.nHead);
  positive("num_key_value_heads", c.nKvHead);
  if (gpt2 && c.dModel % c.nHead !== 0) {
    fail("n_embd", `(${c.dModel}) is not divisible by n_head (${c.nHead})`);
  }
  positive("head_dim", c.headDim);
  positive(gpt2 ? "n_inner" : "intermediate_size", c.dFf);
  positive(gpt2 ? "n_positions" : "max_position_embeddings", c.maxPositions);
  if (c.nHead % c.nKvHead !== 0) {
    fail(
      "num_attention_heads",
      `(${c.nHead}) is not a multiple of num_key_value_heads (${c.nKvHead})`,
    );
  }
  const eps = gpt2 ? "layer_norm_epsilon" : "rms_norm_eps";
  if (!(c.normEps > 0) || !Number.isFinite(c.normEps)) {
    fail(eps, `is ${shown(c.normEps)}; expected a positive number`);
  }
  if (c.layerTypes.length !== c.nLayer) {
    fail("layer_types", `has ${c.layerTypes.length} entries for ${c.nLayer} layers`);
  }
  if (c.slidingWindow !== undefined) positive("sliding_window", c.slidingWindow);
  for (
    const [field, v] of [
      ["attn_logit_softcapping", c.attnSoftcap],
      ["final_logit_softcapping", c.finalSoftcap],
    ] as const
  ) {
    if (v !== undefined && v !== null && !(v > 0)) {
      fail(field, `is ${shown(v)}; expected a positive number (or null for none)`);
    }
  }
  if (!(c.attnScale > 0) || !Number.isFinite(c.attnScale)) {
    fail("query_pre_attn_scalar", `gives attention scale ${shown(c.attnScale)}; expected > 0`);
  }
  if (c.rope) checkRope(c.rope, c.headDim, "rope_parameters", source);
  if (c.ropeLocal) checkRope(c.ropeLocal, c.headDim, "rope_local_base_freq", source);
  for (const k of ["bos", "eos", "pad"] as const) {
    const raw = c.raw[`${k}_token_id`];
    const ids = raw === undefined || raw === null ? [] : Array.isArray(raw) ? raw : [raw];
    for (const id of ids) {
      if (!isInt(id) || id < 0 || id >= c.vocabSize) {
        fail(`${k}_token_id`, `${shown(id, 40)} is outside the vocabulary [0, ${c.vocabSize})`);
      }
    }
  }
}

/** RoPE fields: base and factors positive and finite, context lengths positive. */
function checkRope(s: RopeSpec, headDim: number, field: string, source: string): void {
  const fail = (what: string): never => {
    throw new Error(`${source}: ${field} (rope_type '${s.type}'): ${what}`);
  };
  const pos = (name: string, v: number | undefined) => {
    if (v !== undefined && (!(v > 0) || !Number.isFinite(v))) {
      fail(`${name} is ${shown(v)}; expected a positive number`);
    }
  };
  pos("rope_theta", s.theta);
  pos("factor", s.factor);
  pos("attention_factor", s.attentionFactor);
  pos("low_freq_factor", s.lowFreqFactor);
  pos("high_freq_factor", s.highFreqFactor);
  pos("beta_fast", s.betaFast);
  pos("beta_slow", s.betaSlow);
  if (!isInt(s.originalMaxPositions) || s.originalMaxPositions < 1) {
    fail(`original_max_position_embeddings is ${shown(s.originalMaxPositions)}; expected > 0`);
  }
  if (s.dim > headDim) fail(`rotary dim ${s.dim} exceeds head_dim ${headDim}`);
  if (
    s.type === "llama3" && s.highFreqFactor !== undefined && s.lowFreqFactor !== undefined &&
    !(s.highFreqFactor > s.lowFreqFactor)
  ) {
    fail(`high_freq_factor (${s.highFreqFactor}) must exceed low_freq_factor (${s.lowFreqFactor})`);
  }
  for (const [name, list] of [["short_factor", s.shortFactor], ["long_factor", s.longFactor]]) {
    if (list && !(list as number[]).every((x) => x > 0 && Number.isFinite(x))) {
      fail(`${name} holds a value <= 0 or not finite; expected positive numbers`);
    }
  }
}

/**
 * Number of parameters a config allocates (float32 values), computed from the sizes alone.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * paramCount(makeConfig({ arch: "gpt2", vocabSize: 8, nLayer: 1, dModel: 8, nHead: 2 }));
 * ```
 */
export function paramCount(c: ModelConfig): number {
  const d = c.dModel;
  const head = c.tieWordEmbeddings ? 0 : c.vocabSize * d;
  if (c.arch === "gpt2") {
    const block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * c.dFf + c.dFf) +
      (c.dFf * d + d);
    return c.vocabSize * d + c.maxPositions * d + c.nLayer * block + 2 * d + head;
  }
  const qd = c.nHead * c.headDim, kvd = c.nKvHead * c.headDim;
  const block = d * (qd + 2 * kvd) + qd * d + 3 * d * c.dFf +
    (c.attnBias ? qd + 2 * kvd : 0) + (c.outBias ? d : 0) + (c.qkNorm ? 2 * c.headDim : 0) +
    (c.sandwichNorms ? 4 : 2) * d;
  return c.vocabSize * d + c.nLayer * block + d + head;
}

/** Bytes of memory available, from Deno.systemMemoryInfo(); undefined without --allow-sys. */
export function availableMemory(): number | undefined {
  try {
    return Deno.systemMemoryInfo().available;
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      return undefined; // no --allow-sys: the size limits of checkRawConfig still hold
    }
    throw err;
  }
}

/**
 * Throws when the float32 parameters of `c`, plus `fileBytes` (the weight files, held while
 * the parameters are built), need more memory than is available (`available` @default
 * {@linkcode availableMemory}()), naming the sizes; called before any allocation. `bytesNeeded`
 * replaces that estimate when the loader knows better (weights kept outside the wasm heap are
 * read tensor by tensor into their host storage, e.g. bf16).
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * const c = makeConfig({ arch: "gpt2", vocabSize: 8, nLayer: 1, dModel: 8, nHead: 2 });
 * checkMemory(c, "config.json", 1e9); // fits
 * ```
 */
export function checkMemory(
  c: ModelConfig,
  source: string,
  available: number | undefined = availableMemory(),
  fileBytes = 0,
  bytesNeeded?: number,
): void {
  const params = paramCount(c);
  const bytes = bytesNeeded ?? params * 4 + fileBytes;
  if (available !== undefined && bytes > available) {
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    throw new Error(
      `${source}: the config describes ${params.toExponential(3)} parameters ` +
        `(${gib(params * 4)} as float32: ${c.nLayer} layers, d_model ${c.dModel}, vocab ` +
        `${c.vocabSize})${fileBytes ? ` read from ${gib(fileBytes)} of weight files` : ""}: ` +
        `${gib(bytes)} in all, more than the ${gib(available)} of memory available; ` +
        "check num_hidden_layers / hidden_size / vocab_size, or load on a larger machine",
    );
  }
}

export { ECHO_CHARS };
