/**
 * `runWithCache` and `runWithHooks` (TransformerLens's `run_with_cache` / `run_with_hooks`)
 * over the named hook points of lib/model/hook_names.ts. Hooks live for one call only: the
 * model holds no hook state.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { ModelConfig } from "./config.ts";
import type { Params } from "./weights.ts";
import { forward, type ForwardOptions, type ForwardOutput } from "./transformer.ts";
import { ActivationCache } from "./activation_cache.ts";
import { resolveHookName } from "./hook_names.ts";

/** What the hooked calls need of a model (a `Model` is one). */
export interface HookableModel {
  /** The architecture. */
  readonly config: ModelConfig;
  /** The weights. */
  readonly params: Params;
  /** A prompt as ids (the chat template when the tokenizer has one). */
  encodePrompt(prompt: string): number[];
}

/** Input of the hooked calls: ids [B, T], one row of ids, or one prompt (`encodePrompt`). */
export type HookInput = number[][] | number[] | string;

/** Where a hook fires. */
export interface HookContext {
  /** The canonical hook name (block index non-negative). */
  name: string;
  /** The block index, for `blocks.{i}.*` points. */
  layer?: number;
}

/**
 * Reads an activation (return nothing) or replaces it (return a tensor of the same shape).
 * Runs inside tf.tidy: `tf.keep` what must outlive the call.
 */
export type HookFn = (x: tf.Tensor, ctx: HookContext) => tf.Tensor | void;

/** Options of {@link runWithCache}. */
export interface RunWithCacheOptions
  extends Pick<ForwardOptions, "attentionMask" | "logits" | "interventions"> {
  /** Hook names to keep (full or negative-index), or a filter on canonical names. @default all */
  names?: readonly string[] | ((name: string) => boolean);
}

/** Options of {@link runWithHooks}. */
export interface RunWithHooksOptions extends Omit<ForwardOptions, "hook"> {
  /** Hooks by name (negative block indices allowed), one function or several in order. */
  hooks: Record<string, HookFn | HookFn[]> | [string, HookFn][];
}

/**
 * The ids [B, T] of an input: rows as given, one row wrapped, a prompt through
 * `model.encodePrompt`.
 *
 * @example
 * ```ts ignore
 * inputIds(model, [5, 6, 7]); // [[5, 6, 7]]
 * ```
 */
export function inputIds(model: HookableModel, input: HookInput): number[][] {
  if (typeof input === "string") return [model.encodePrompt(input)];
  if (input.length > 0 && typeof input[0] === "number") return [input as number[]];
  return input as number[][];
}

function layerOf(name: string): number | undefined {
  const m = /^blocks\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * One forward pass that keeps the named activations: returns an {@link ActivationCache}
 * that owns them and the logits (`cache.dispose()`, or `using cache = ...`).
 *
 * @example
 * ```ts ignore
 * using cache = model.runWithCache("how do i make zorblat ?", { names: ["blocks.-1.hook_resid_post"] });
 * cache.get("resid_post", -1).shape; // [1, T, d]
 * cache.logits; // [1, T, V]
 * ```
 */
export function runWithCache(
  model: HookableModel,
  input: HookInput,
  opts: RunWithCacheOptions = {},
): ActivationCache {
  const c = model.config;
  const ids = inputIds(model, input);
  let keepName: (n: string) => boolean;
  if (opts.names === undefined) keepName = () => true;
  else if (typeof opts.names === "function") keepName = opts.names;
  else {
    const set = new Set(opts.names.map((n) => resolveHookName(c, n, "runWithCache")));
    keepName = (n) => set.has(n);
  }
  const acts = new Map<string, tf.Tensor>();
  let out: ForwardOutput;
  try {
    out = forward(c, model.params, ids, {
      attentionMask: opts.attentionMask,
      logits: opts.logits,
      interventions: opts.interventions,
      hook: (name, x) => {
        if (keepName(name)) acts.set(name, tf.keep(tf.clone(x)));
        return x;
      },
    });
  } catch (e) {
    tf.dispose([...acts.values()]);
    throw e;
  }
  return new ActivationCache(c, ids, acts, out.logits);
}

/**
 * One forward pass with hooks that read or replace named activations, for this call only.
 * Returns what `forward` returns (the caller disposes it). A replacement of another shape is
 * an error naming the hook.
 *
 * @example
 * ```ts ignore
 * import * as tf from "@tensorflow/tfjs-core";
 * const f = model.runWithHooks(ids, {
 *   hooks: { "blocks.1.hook_attn_out": (x) => tf.zerosLike(x) }, // zero-ablate block 1's attention
 * });
 * f.logits!.dispose();
 * ```
 */
export function runWithHooks(
  model: HookableModel,
  input: HookInput,
  opts: RunWithHooksOptions,
): ForwardOutput {
  const c = model.config;
  const byName = new Map<string, HookFn[]>();
  const entries = Array.isArray(opts.hooks) ? opts.hooks : Object.entries(opts.hooks);
  for (const [name, fn] of entries) {
    const key = resolveHookName(c, name, "runWithHooks");
    const fns = Array.isArray(fn) ? fn : [fn];
    for (const f of fns) {
      if (typeof f !== "function") {
        throw new Error(`runWithHooks: hook '${name}' is not a function`);
      }
    }
    byName.set(key, [...(byName.get(key) ?? []), ...fns]);
  }
  const { hooks: _hooks, ...fwd } = opts;
  return forward(c, model.params, inputIds(model, input), {
    ...fwd,
    hook: (name, x) => {
      const fns = byName.get(name);
      if (!fns) return x;
      const ctx: HookContext = { name, layer: layerOf(name) };
      for (const f of fns) {
        const y = f(x, ctx);
        if (y === undefined) continue;
        if (y.shape.length !== x.shape.length || y.shape.some((s, k) => s !== x.shape[k])) {
          throw new Error(
            `runWithHooks: hook on '${name}' returned shape [${y.shape}], expected [${x.shape}]`,
          );
        }
        x = y;
      }
      return x;
    },
  });
}
