/**
 * Batched generation with a KV cache: left-padded prompts, one forward pass for the
 * prompt, then one cached step per new token. Forced tokens (prefill attacks, mid-answer
 * injections) are fed like sampled ones, so an injection is a forced token, never a
 * re-encoding of the prefix. Sampling is seeded per row (seed, row index), so a row's
 * tokens do not depend on how prompts are batched.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import type { Params } from "./weights.ts";
import type { TextTokenizer } from "./tokenizer.ts";
import { disposeCache, forward, type Intervention, type KVCache } from "./transformer.ts";
import { steerInterventions, type SteerOptions } from "./steering.ts";
import { sampleToken, type SamplingOptions } from "./sampling.ts";
import { encodePrompt } from "./chat.ts";
import { splitReasoningIds } from "./reasoning.ts";
import { makeRng } from "../data/rng.ts";

/** Tokens forced into a row's answer from generation step `step` on (0 = first new token). */
export interface ForcedSpan {
  /** Generation step of the first forced token (0 = first new token). */
  step: number;
  /** Token ids forced, one per step from `step` on. */
  tokens: number[];
}

/** Options of `model.generate`. */
export interface GenerateOptions extends SamplingOptions {
  /** Text prompts (formatted with the chat template when `chat` allows). */
  prompts?: string[];
  /** Or token ids, used as given. */
  inputIds?: number[][];
  /** Most tokens generated per row. @default 32 */
  maxNewTokens?: number;
  /** Sampling seed; row i draws from `seed * 1_000_003 + rowOffset + i`. @default 0 */
  seed?: number;
  /** Per-token hidden states of these layers (true = all) for every new token. @default false */
  returnHiddenStates?: boolean | number[];
  /** Stop a row at any of its end-of-sequence tokens (see `eosTokenIds`). @default true */
  stopAtEos?: boolean;
  /**
   * The ids that end a row, as HF's `generation_config.eos_token_id` (an int or a list).
   * @default the model's `eosTokenIds` (generation_config.json and config.json, read at
   * load) together with the tokenizer's `eos_token`
   */
  eosTokenIds?: number[];
  /**
   * Apply the tokenizer's chat template to `prompts` ("auto": when it has one), tokenized as
   * `apply_chat_template(..., add_generation_prompt=True, tokenize=True)`, so the template's
   * own BOS is the only one. Prompts without a template are encoded as `tokenizer(prompt)`,
   * special tokens included. @default "auto"
   */
  chat?: boolean | "auto";
  /**
   * Extra chat-template variables, as the `**kwargs` of HF's `apply_chat_template`
   * (e.g. `{ enable_thinking: false }` for Qwen3). @default {}
   */
  chatTemplateKwargs?: Record<string, unknown>;
  /**
   * Shorthand for `chatTemplateKwargs.enable_thinking` (Qwen3's switch; `false` renders an
   * empty think block into the prompt). An explicit `chatTemplateKwargs.enable_thinking` wins.
   * @default undefined (the template's default)
   */
  thinking?: boolean;
  /** Forced tokens per row (prefill = step 0; injection = any step). */
  force?: (ForcedSpan[] | undefined)[];
  /** Residual-stream edits for the whole call (steering, ablation). */
  interventions?: Intervention[];
  /**
   * Steer this call with a vector (from `steeringVector(model, pairs, { layer })`): add
   * `strength` times it at its layer (`{ vector, strength }`), or remove its direction from
   * every residual stream (`{ vector, ablate: true }`). Applied after `interventions`.
   * @default none
   */
  steer?: SteerOptions;
  /** Prompts per forward batch. @default 16 */
  batchSize?: number;
  /** Called after each batch with the number of rows done. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Index of this call's first row in a larger call: row i is seeded with
   * `seed * 1_000_003 + rowOffset + i` (worker pools set it; `force` stays indexed from 0).
   * @default 0
   */
  rowOffset?: number;
  /**
   * Run somewhere other than this thread, for example on a `WorkerPool` (lib/parallel/pool.ts:
   * rows split across workers, merged in order, identical seeds). Interventions cannot be
   * sent to workers: a call with both throws. @default model.workers when the call has no
   * interventions, else none
   */
  workers?: GenerateRunner;
}

/**
 * Something that runs {@link generate} elsewhere with the same result, such as a `WorkerPool`
 * (lib/parallel): the single-process code accepts this interface and never imports the pool.
 */
export interface GenerateRunner {
  /** `generate(model, opts)` on the runner; same tokens as on this thread. */
  generate(model: Generator, opts: GenerateOptions): Promise<GenerateResult>;
}

/** What generation returns (new tokens only). */
export interface GenerateResult {
  /** Prompt token ids, unpadded. */
  promptIds: number[][];
  /** New token ids per row (the end-of-sequence token included when produced). */
  tokenIds: number[][];
  /** Decoded new text per row (special tokens skipped). */
  text: string[];
  /**
   * Per row, the text inside the `<think>...</think>` block of the new tokens ("" when
   * none; everything when the prompt opened the block, up to `</think>`), trimmed; see
   * lib/model/reasoning.ts. Set by every local generation.
   */
  reasoning?: string[];
  /** Per row, the new text outside the think block (all of it when there is none), trimmed. */
  answer?: string[];
  /** log p of each new token under the (tempered) model distribution. */
  logprobs: number[][];
  /** Which new tokens were forced. */
  forced: boolean[][];
  /** layer -> per row, [nNew, d] row-major, when requested. */
  hiddenStates?: Record<number, Float32Array[]>;
}

/** What generate needs of a model. */
export interface Generator {
  /** Normalised architecture and sizes. */
  config: ModelConfig;
  /** Weights by canonical (HF) name. */
  params: Params;
  /** Encodes prompts and decodes the new tokens. */
  tokenizer: TextTokenizer;
  /** End-of-sequence ids of generation_config.json and config.json (see `eosTokenIds`). */
  eosTokenIds?: readonly number[];
  /** A runner every call without interventions uses (see {@link GenerateOptions.workers}). */
  workers?: GenerateRunner;
}

/**
 * Turns prompts into token ids as HF does (see {@linkcode encodePrompt}): the chat template
 * (with `chatTemplateKwargs` and `thinking`) when asked or available, encoded without a
 * second BOS; else `tokenizer(prompt)`.
 */
export function encodePrompts(m: Generator, opts: GenerateOptions): number[][] {
  if (opts.inputIds) return opts.inputIds.map((r) => r.slice());
  if (!opts.prompts) throw new Error("generate: pass `prompts` or `inputIds`");
  const templateKwargs = {
    ...(opts.thinking === undefined ? {} : { enable_thinking: opts.thinking }),
    ...opts.chatTemplateKwargs,
  };
  return opts.prompts.map((p) =>
    encodePrompt(m.tokenizer, p, { chat: opts.chat ?? "auto", templateKwargs })
  );
}

/**
 * The ids that stop generation: `opts.eosTokenIds`, else the model's `eosTokenIds`
 * (generation_config.json, config.json) with the tokenizer's `eos_token` (or config's
 * `eos_token_id`), without repeats.
 */
export function stopTokenIds(m: Generator, opts: GenerateOptions = {}): number[] {
  if (opts.eosTokenIds) return [...new Set(opts.eosTokenIds)];
  const own = m.tokenizer.eosId ?? m.config.eosTokenId;
  return [...new Set([...(m.eosTokenIds ?? []), ...(own === undefined ? [] : [own])])];
}

/** Adds each row's reasoning and answer (lib/model/reasoning.ts) to a result. */
function withReasoning(m: Generator, r: GenerateResult): GenerateResult {
  const parts = r.tokenIds.map((ids, i) => splitReasoningIds(m.tokenizer, ids, r.promptIds[i]));
  return { ...r, reasoning: parts.map((p) => p.reasoning), answer: parts.map((p) => p.answer) };
}

function padId(m: Generator): number {
  return m.tokenizer.padId ?? m.config.padTokenId ?? m.tokenizer.eosId ?? m.config.eosTokenId ?? 0;
}

async function rowsOf(t: tf.Tensor): Promise<Float32Array> {
  const data = await t.data();
  return data as Float32Array;
}

/** Generates for one batch of prompt ids (rows `offset`.. of the whole call). */
async function generateBatch(
  m: Generator,
  prompts: number[][],
  offset: number,
  opts: GenerateOptions,
  layers: number[],
): Promise<Omit<GenerateResult, "promptIds" | "text">> {
  const c = m.config;
  const b = prompts.length;
  const maxNew = opts.maxNewTokens ?? 32;
  const stop = new Set(stopTokenIds(m, opts));
  const stopAtEos = opts.stopAtEos ?? true;
  const pad = padId(m);
  const len = Math.max(...prompts.map((p) => p.length));
  if (Math.min(...prompts.map((p) => p.length)) === 0) throw new Error("generate: empty prompt");
  const ids = prompts.map((p) => [...new Array(len - p.length).fill(pad), ...p]);
  const mask = prompts.map((p) => [...new Array(len - p.length).fill(0), ...p.map(() => 1)]);
  const seed = opts.seed ?? 0;
  const first = (opts.rowOffset ?? 0) + offset; // the rows' global index, for their seeds
  const rngs = prompts.map((_, i) => makeRng((seed * 1_000_003 + first + i) >>> 0));
  const forcedAt = prompts.map((_, i) => {
    const map = new Map<number, number>();
    for (const span of opts.force?.[offset + i] ?? []) {
      span.tokens.forEach((tok, j) => map.set(span.step + j, tok));
    }
    return map;
  });
  const out = {
    tokenIds: prompts.map(() => [] as number[]),
    logprobs: prompts.map(() => [] as number[]),
    forced: prompts.map(() => [] as boolean[]),
    hidden: layers.map(() => prompts.map(() => [] as Float32Array[])),
  };
  const done = new Array(b).fill(false);
  const hsOpt = layers.length ? layers : undefined;
  // The most slots the cache will need: room for the coming steps, written in place.
  const reserve = len + maxNew;
  let f = forward(c, m.params, ids, {
    attentionMask: mask,
    useCache: true,
    reserve,
    logits: "last",
    interventions: opts.interventions,
  });
  let cache: KVCache | undefined = f.cache;
  const vocab = c.vocabSize;
  try {
    for (let step = 0; step < maxNew; step++) {
      const logits = await rowsOf(f.logits!);
      tf.dispose(f.logits!);
      const next: number[] = [];
      for (let i = 0; i < b; i++) {
        if (done[i]) {
          next.push(pad);
          continue;
        }
        const row = logits.subarray(i * vocab, (i + 1) * vocab);
        const forcedTok = forcedAt[i].get(step);
        const { token: tok, logprob } = sampleToken(row, opts, rngs[i], forcedTok);
        out.tokenIds[i].push(tok);
        out.logprobs[i].push(logprob);
        out.forced[i].push(forcedTok !== undefined);
        next.push(tok);
      }
      const finishing = next.map((tok, i) =>
        !done[i] && stopAtEos && stop.has(tok) && !forcedAt[i].has(step + 1)
      );
      const last = step === maxNew - 1;
      const allDone = done.every((d, i) => d || finishing[i]);
      if ((last || allDone) && !hsOpt) break;
      // Feed the chosen tokens: yields their hidden states and the next logits.
      for (let i = 0; i < b; i++) mask[i].push(done[i] ? 0 : 1);
      const prev: KVCache | undefined = cache;
      ids.forEach((row, i) => row.push(next[i]));
      // Phi-3 longrope (HF Phi3ForCausalLM.prepare_inputs_for_generation): when the sequence
      // first outgrows original_max_position_embeddings, the cache built with the short
      // factors is dropped and the whole sequence is run again (with the long ones).
      const rerun = c.rope?.type === "longrope" && prev?.length === c.rope.originalMaxPositions;
      f = forward(c, m.params, rerun ? ids : next.map((t) => [t]), {
        attentionMask: mask,
        cache: rerun ? undefined : prev,
        useCache: true,
        reserve,
        logits: last || allDone ? "none" : "last",
        hiddenStates: hsOpt,
        interventions: opts.interventions,
      });
      if (rerun) {
        f.hiddenStates = f.hiddenStates.map((h) => {
          if (!h) return h;
          const s = tf.slice(h, [0, h.shape[1] - 1, 0], [b, 1, h.shape[2]]);
          h.dispose();
          return s;
        });
      }
      cache = f.cache;
      disposeCache(prev);
      for (let j = 0; j < layers.length; j++) {
        const h = await rowsOf(f.hiddenStates[layers[j]]);
        for (let i = 0; i < b; i++) {
          if (!done[i]) out.hidden[j][i].push(h.slice(i * c.dModel, (i + 1) * c.dModel));
        }
      }
      tf.dispose(f.hiddenStates.filter(Boolean));
      finishing.forEach((fin, i) => fin && (done[i] = true));
      if (last || allDone) break;
    }
  } finally {
    disposeCache(cache);
    if (f.logits && !f.logits.isDisposed) f.logits.dispose();
  }
  const hiddenStates = layers.length
    ? Object.fromEntries(layers.map((l, j) => [
      l,
      out.hidden[j].map((rows) => {
        const flat = new Float32Array(rows.length * c.dModel);
        rows.forEach((r, k) => flat.set(r, k * c.dModel));
        return flat;
      }),
    ]))
    : undefined;
  return { tokenIds: out.tokenIds, logprobs: out.logprobs, forced: out.forced, hiddenStates };
}

/** Batched generation; see {@link GenerateOptions}. */
export async function generate(m: Generator, opts: GenerateOptions): Promise<GenerateResult> {
  if (opts.steer) {
    const { steer, ...rest } = opts;
    const added = steerInterventions(steer, m.config.nLayer);
    opts = { ...rest, interventions: [...(opts.interventions ?? []), ...added] };
  }
  const pool = opts.workers ?? (opts.interventions?.length ? undefined : m.workers);
  // Stop ids are resolved here, on the model: a worker's replica knows only the tokenizer's.
  opts = { ...opts, eosTokenIds: stopTokenIds(m, opts) };
  if (pool) return withReasoning(m, await pool.generate(m, opts));
  const promptIds = encodePrompts(m, opts);
  const c = m.config;
  const rh = opts.returnHiddenStates;
  const layers = rh === true
    ? Array.from({ length: c.nLayer + 1 }, (_, i) => i)
    : Array.isArray(rh)
    ? [...new Set(rh.map((l) => (l < 0 ? c.nLayer + 1 + l : l)))] // -1 and nLayer are one layer
    : [];
  const bs = Math.max(1, opts.batchSize ?? 16);
  const result: GenerateResult = {
    promptIds,
    tokenIds: [],
    text: [],
    logprobs: [],
    forced: [],
    hiddenStates: layers.length ? Object.fromEntries(layers.map((l) => [l, []])) : undefined,
  };
  for (let s = 0; s < promptIds.length; s += bs) {
    const part = await generateBatch(m, promptIds.slice(s, s + bs), s, opts, layers);
    result.tokenIds.push(...part.tokenIds);
    result.logprobs.push(...part.logprobs);
    result.forced.push(...part.forced);
    for (const l of layers) result.hiddenStates![l].push(...part.hiddenStates![l]);
    opts.onProgress?.(Math.min(s + bs, promptIds.length), promptIds.length);
  }
  result.text = result.tokenIds.map((t) => m.tokenizer.decode(t, { skipSpecialTokens: true }));
  return withReasoning(m, result);
}
