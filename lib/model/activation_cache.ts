/**
 * The activations of one forward pass by hook name (TransformerLens's `ActivationCache`): it
 * owns its tensors (one `dispose()`, or `using`), reads them by full or short name with
 * negative block indices, and renders itself in Jupyter.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import { actName, resolveHookName } from "./hook_names.ts";

/** Activations of one call by canonical hook name, plus the logits; owns every tensor. */
export class ActivationCache {
  /** The model's config (resolves negative indices). */
  readonly config: ModelConfig;
  /** The input ids [B, T] of the call. */
  readonly ids: number[][];
  /** The call's logits [B, T, V] (or [B, 1, V] with `logits: "last"`), unless "none". */
  readonly logits?: tf.Tensor3D;
  #acts: Map<string, tf.Tensor>;
  #disposed = false;

  /** Wraps tensors already kept; `runWithCache` builds caches. */
  constructor(
    config: ModelConfig,
    ids: number[][],
    acts: Map<string, tf.Tensor>,
    logits?: tf.Tensor3D,
  ) {
    this.config = config;
    this.ids = ids;
    this.#acts = acts;
    this.logits = logits;
  }

  /** The canonical names held, in the order the forward reached them. */
  get names(): string[] {
    return [...this.#acts.keys()];
  }

  /** Whether `dispose` has run. */
  get disposed(): boolean {
    return this.#disposed;
  }

  #key(name: string, layer?: number): string {
    if (this.#disposed) throw new Error("ActivationCache: read after dispose()");
    return resolveHookName(this.config, actName(name, layer), "ActivationCache");
  }

  /** Whether an activation was cached (full name, or short name and block index). */
  has(name: string, layer?: number): boolean {
    return this.#acts.has(this.#key(name, layer));
  }

  /**
   * One activation by full name (`blocks.-1.hook_resid_post`) or short name and block
   * (`get("resid_post", 3)`, as `cache["resid_post", 3]`). The cache owns it: do not dispose.
   */
  get(name: string, layer?: number): tf.Tensor {
    const key = this.#key(name, layer);
    const t = this.#acts.get(key);
    if (!t) {
      throw new Error(
        `ActivationCache: '${key}' was not cached; held: ${this.names.join(", ") || "nothing"} ` +
          `(pass it in runWithCache's names)`,
      );
    }
    return t;
  }

  /**
   * Hidden state i in Hugging Face's numbering as a view of the named points: i < nLayer is
   * `blocks.{i}.hook_resid_pre`, nLayer is `ln_final.hook_normalized`; negative counts from
   * the end. Equal to `forward(..., { hiddenStates: [i] }).hiddenStates[i]`.
   */
  hiddenState(i: number): tf.Tensor3D {
    const n = this.config.nLayer;
    const l = i < 0 ? n + 1 + i : i;
    if (l < 0 || l > n) throw new Error(`ActivationCache: hidden state ${i} outside 0..${n}`);
    return (l === n
      ? this.get("ln_final.hook_normalized")
      : this.get("resid_pre", l)) as tf.Tensor3D;
  }

  /** Frees every tensor (activations and logits); reading afterwards is an error. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    tf.dispose([...this.#acts.values()]);
    if (this.logits) this.logits.dispose();
  }

  /** `using cache = model.runWithCache(...)` disposes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A one-line description. */
  toString(): string {
    return `ActivationCache(${this.#acts.size} activations, ${this.ids.length}x` +
      `${this.ids[0]?.length ?? 0} tokens${this.#disposed ? ", disposed" : ""})`;
  }

  /** Jupyter rich display: one row per activation with its shape and size. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    const rows = [...this.#acts].map(([k, t]) =>
      `<tr><td><code>${k}</code></td><td>[${t.shape.join(", ")}]</td>` +
      `<td style="text-align:right">${(t.size * 4 / 1024).toFixed(1)} KiB</td></tr>`
    ).join("");
    const html = `<table><caption><b>${this.toString()}</b></caption>` +
      `<tr><th>name</th><th>shape</th><th>size</th></tr>${rows}</table>`;
    return { "text/html": html, "text/plain": this.toString() };
  }
}
