/**
 * The `Model`: config + tokenizer + weights on the active tfjs backend, with the calls a
 * notebook makes on it (forward with hidden states, generate, save) and a Jupyter display.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import type { TextTokenizer } from "./tokenizer.ts";
import { forward, type ForwardOptions, type ForwardOutput } from "./transformer.ts";
import {
  generate,
  type GenerateOptions,
  type GenerateResult,
  type GenerateRunner,
} from "./generate.ts";
import {
  attachExternal,
  externalOf,
  type ExternalParams,
  type Params,
  variableFrom,
} from "./weights.ts";
import type { BackendInfo } from "../engine/backend.ts";
import { saveModel } from "./save.ts";
import { encodePrompt, type PromptOptions } from "./chat.ts";
import {
  type HookInput,
  runWithCache,
  type RunWithCacheOptions,
  runWithHooks,
  type RunWithHooksOptions,
} from "./hooks.ts";
import type { ActivationCache } from "./activation_cache.ts";
import { hookPointNames } from "./hook_names.ts";

/** What a model can do; remote models lack hidden states and training. */
export interface ModelCapabilities {
  /** Per-layer hidden states can be read (forward, collection, compass fitting). */
  hiddenStates: boolean;
  /** Weights are local variables that can be trained (SFT, RL, LoRA). */
  training: boolean;
  /** Per-token log-probabilities are returned. */
  logprobs: boolean;
}

/** A local language model whose hidden states can be read and whose weights can be trained. */
export class Model {
  /** Normalised architecture and sizes. */
  readonly config: ModelConfig;
  /** encode / decode / applyChatTemplate. */
  readonly tokenizer: TextTokenizer;
  /** Weights by canonical (HF) name; tf.Variables, trainable. */
  readonly params: Params;
  /** Where it was loaded from. */
  readonly source: string;
  /** The backend it runs on. */
  readonly backend: BackendInfo;
  /**
   * End-of-sequence ids of generation_config.json and config.json (an int or a list each),
   * read at load; `generate` stops at any of them and at the tokenizer's `eos_token`.
   * @default [] (models built in code: the tokenizer's eos only)
   */
  readonly eosTokenIds: readonly number[];
  /** Tokenizer and generation files (raw bytes) written next to the weights on save. */
  readonly assets: Map<string, Uint8Array>;
  /** The LoRA adapters' settings, when lib/model/lora.ts added some. */
  loraConfig?: { rank: number; alpha: number; targets: string[] };
  /** Local models have every capability. */
  readonly capabilities: ModelCapabilities = { hiddenStates: true, training: true, logprobs: true };
  /**
   * A runner (a `WorkerPool` of lib/parallel) that every `generate` call without
   * interventions runs on (rows split across workers, same tokens as on this thread). A pool
   * ships these weights again by itself whenever they have changed. @default undefined (this
   * thread)
   */
  workers?: GenerateRunner;

  /**
   * Wraps parts already built: a config, its tokenizer and weights on the active backend.
   * Notebooks get models from {@link loadModel} or {@link createModel} instead.
   */
  constructor(init: {
    config: ModelConfig;
    tokenizer: TextTokenizer;
    params: Params;
    source: string;
    backend: BackendInfo;
    assets?: Map<string, Uint8Array>;
    eosTokenIds?: readonly number[];
  }) {
    this.assets = init.assets ?? new Map();
    this.eosTokenIds = init.eosTokenIds ?? [];
    this.config = init.config;
    this.tokenizer = init.tokenizer;
    this.params = init.params;
    this.source = init.source;
    this.backend = init.backend;
  }

  /** Number of parameters. */
  get numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    for (const m of this.external?.values() ?? []) n += m.rows * m.cols;
    return n;
  }

  /**
   * The frozen 2-D weights held outside the wasm heap (`loadModel(..., { weights:
   * "external" })`, automatic for large models), or undefined when every weight is a tensor.
   */
  get external(): ExternalParams | undefined {
    return externalOf(this.params);
  }

  /**
   * One forward pass: `f.logits` [B, T, V], `f.hiddenStates[i]` [B, T, d] for requested
   * layers in Hugging Face's `output_hidden_states` numbering (0 = embeddings, i = after
   * block i, nLayer = after the final norm). The caller disposes the tensors
   * (or wraps the call in `tf.tidy`).
   */
  forward(inputIds: number[][], opts: ForwardOptions = {}): ForwardOutput {
    return forward(this.config, this.params, inputIds, opts);
  }

  /**
   * One forward pass keeping the named activations (TransformerLens names, negative block
   * indices allowed; default all): the cache owns them and the logits (`dispose()` or
   * `using`). See lib/model/hook_names.ts for every point.
   *
   * @example
   * ```ts ignore
   * using cache = model.runWithCache("how do i make zorblat ?");
   * cache.get("resid_post", 3); // = forward's hiddenStates[4] on a 5+ block model
   * ```
   */
  runWithCache(input: HookInput, opts: RunWithCacheOptions = {}): ActivationCache {
    return runWithCache(this, input, opts);
  }

  /**
   * One forward pass whose hooks read or replace named activations, for this call only; the
   * caller disposes what it returns.
   *
   * @example
   * ```ts ignore
   * const f = model.runWithHooks(ids, { hooks: { "blocks.-1.hook_mlp_out": (x) => tf.zerosLike(x) } });
   * ```
   */
  runWithHooks(input: HookInput, opts: RunWithHooksOptions): ForwardOutput {
    return runWithHooks(this, input, opts);
  }

  /** Every named hook point of this model, in the order the forward reaches them. */
  get hookPoints(): string[] {
    return hookPointNames(this.config);
  }

  /** Batched, KV-cached generation (greedy at temperature 0). */
  generate(opts: GenerateOptions): Promise<GenerateResult> {
    return generate(this, opts);
  }

  /**
   * One user prompt as input ids, as HF builds them ({@linkcode encodePrompt}): the chat
   * template when the tokenizer has one, tokenized without adding a second BOS; else
   * `tokenizer(prompt)` with its special tokens. Prefer it to
   * `tokenizer.encode(formatPrompt(p))`, which adds the post-processor's BOS (Llama) in
   * front of the template's own.
   *
   * @example
   * ```ts ignore
   * const f = model.forward([model.encodePrompt("how do i make zorblat ?")]);
   * const ids = model.encodePrompt("2+2?", { templateKwargs: { enable_thinking: false } });
   * ```
   */
  encodePrompt(prompt: string, opts: PromptOptions = {}): number[] {
    return encodePrompt(this.tokenizer, prompt, opts);
  }

  /**
   * Formats a user prompt with the chat template (when the tokenizer has one). Its text
   * holds the template's BOS: encode it with `addSpecialTokens: false`, or use
   * {@linkcode Model.encodePrompt}.
   */
  formatPrompt(prompt: string): string {
    return this.tokenizer.hasChatTemplate
      ? this.tokenizer.applyChatTemplate([{ role: "user", content: prompt }], {
        addGenerationPrompt: true,
      })
      : prompt;
  }

  /** Saves config, weights and tokenizer in the Hugging Face layout, atomically. */
  save(dir: string, opts: { dtype?: "F32" | "F16" | "BF16" } = {}): Promise<void> {
    return saveModel(this, dir, opts);
  }

  /**
   * An independent, trainable copy named `source`: the weights are cloned; config, tokenizer,
   * backend, assets, LoRA settings and worker pool are shared. The original is never touched.
   */
  copy(source: string): Model {
    const m = new Model({
      config: this.config,
      tokenizer: this.tokenizer,
      params: this.cloneParams(true),
      source,
      backend: this.backend,
      assets: this.assets,
      eosTokenIds: this.eosTokenIds,
    });
    m.loraConfig = this.loraConfig && { ...this.loraConfig };
    m.workers = this.workers;
    return m;
  }

  /** A copy of the weights (for a frozen reference policy). */
  cloneParams(trainable = false): Params {
    const out: Params = new Map();
    for (const [k, v] of this.params) out.set(k, variableFrom(tf.clone(v), trainable));
    // Frozen host matrices are shared, never copied (they are never written).
    const ext = this.external;
    if (ext) attachExternal(out, ext);
    return out;
  }

  /** Frees the weights. */
  dispose(): void {
    tf.dispose([...this.params.values()]);
  }

  /** A one-line description. */
  toString(): string {
    const c = this.config;
    return `Model(${this.source}: ${c.modelType}, ${c.nLayer} layers, d=${c.dModel}, ` +
      `${c.nHead} heads${c.nKvHead !== c.nHead ? `/${c.nKvHead} kv` : ""}, vocab ${c.vocabSize}, ` +
      `${(this.numParams / 1e6).toFixed(2)}M params, backend ${this.backend.name})`;
  }

  /** Jupyter rich display. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const c = this.config;
    const rows: [string, string | number][] = [
      ["source", this.source],
      ["architecture", `${c.modelType} (${c.arch})`],
      ["layers", c.nLayer],
      ["d_model", c.dModel],
      ["heads / kv heads", `${c.nHead} / ${c.nKvHead}`],
      ["vocab", c.vocabSize],
      ["parameters", `${(this.numParams / 1e6).toFixed(2)}M`],
      ["backend", `${this.backend.name} (${this.backend.reason})`],
    ];
    const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
    const html = `<table><caption><b>Model</b></caption>${
      rows.map(([k, v]) =>
        `<tr><th style="text-align:left">${k}</th><td>${esc(String(v))}</td></tr>`
      )
        .join("")
    }</table>`;
    return { "text/html": html, "text/plain": this.toString() };
  }
}
