/**
 * The named hook points of the forward pass, as TransformerLens names them, and their
 * resolution (negative block indices, short names such as `("resid_post", 3)`).
 *
 * Per block i (0-based; `blocks.-1` is the last block):
 * - `blocks.{i}.hook_resid_pre` [B, T, d]: the residual entering block i (= hidden state i).
 * - `blocks.{i}.attn.hook_pattern` [B, H, T, S]: attention probabilities after the softmax.
 * - `blocks.{i}.attn.hook_z` [B, T, H, D]: each head's output before the output projection;
 *   head h's contribution to the residual is z_h @ W_O[h*D:(h+1)*D, :] (plus the bias once).
 * - `blocks.{i}.hook_attn_out` [B, T, d]: what the attention sub-block adds to the residual
 *   (o_proj with its bias; for Gemma 2/3, after `post_attention_layernorm`).
 * - `blocks.{i}.hook_resid_mid` [B, T, d]: the residual after the attention sub-block's add
 *   (for Gemma 2/3, whose attention output is normed first, still the residual after the add).
 * - `blocks.{i}.hook_mlp_out` [B, T, d]: what the MLP sub-block adds (Gemma: after
 *   `post_feedforward_layernorm`).
 * - `blocks.{i}.hook_resid_post` [B, T, d]: the residual after block i.
 *
 * Outside the blocks: `hook_embed` (token embeddings; Gemma: after the sqrt(d) scale),
 * `hook_pos_embed` (GPT-2's learned positions only) and `ln_final.hook_normalized` (the final
 * norm's output, what the head reads = hidden state nLayer).
 *
 * @module
 */

import type { ModelConfig } from "./config.ts";

/** Names of one block's hook points, relative to `blocks.{i}.`, in the order they fire. */
export const BLOCK_HOOKS: readonly string[] = [
  "hook_resid_pre",
  "attn.hook_pattern",
  "attn.hook_z",
  "hook_attn_out",
  "hook_resid_mid",
  "hook_mlp_out",
  "hook_resid_post",
];

/** Short names of {@link actName} and the hook each one means. */
const SHORT: Readonly<Record<string, string>> = {
  resid_pre: "hook_resid_pre",
  resid_mid: "hook_resid_mid",
  resid_post: "hook_resid_post",
  attn_out: "hook_attn_out",
  mlp_out: "hook_mlp_out",
  pattern: "attn.hook_pattern",
  z: "attn.hook_z",
  embed: "hook_embed",
  pos_embed: "hook_pos_embed",
  normalized: "ln_final.hook_normalized",
};

/**
 * A full hook name from a short one, as TransformerLens's `utils.get_act_name`:
 * `actName("resid_post", 3)` is `blocks.3.hook_resid_post`; `embed`, `pos_embed` and
 * `normalized` take no layer. Full names pass through unchanged.
 *
 * @example
 * ```ts
 * actName("resid_pre", -1); // "blocks.-1.hook_resid_pre" (resolved against a model later)
 * actName("z", 0); // "blocks.0.attn.hook_z"
 * ```
 */
export function actName(kind: string, layer?: number): string {
  if (kind.includes(".") || kind.startsWith("hook_")) {
    if (layer !== undefined) {
      throw new Error(`actName: '${kind}' is a full hook name; it takes no layer (got ${layer})`);
    }
    return kind;
  }
  const full = SHORT[kind];
  if (!full) {
    throw new Error(
      `actName: unknown activation '${kind}'; valid: ${Object.keys(SHORT).join(", ")}`,
    );
  }
  const global = kind === "embed" || kind === "pos_embed" || kind === "normalized";
  if (global) {
    if (layer !== undefined) throw new Error(`actName: '${kind}' takes no layer (got ${layer})`);
    return full;
  }
  if (layer === undefined || !Number.isInteger(layer)) {
    throw new Error(`actName: '${kind}' needs an integer block index (got ${layer})`);
  }
  return `blocks.${layer}.${full}`;
}

/**
 * Every hook point of a model, in the order the forward reaches them.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * const c = makeConfig({ arch: "gpt2", vocabSize: 8, nLayer: 1, dModel: 8, nHead: 2 });
 * hookPointNames(c).length; // 2 + 7 + 1 = 10
 * ```
 */
export function hookPointNames(c: ModelConfig): string[] {
  const out = ["hook_embed"];
  if (c.arch === "gpt2") out.push("hook_pos_embed");
  for (let i = 0; i < c.nLayer; i++) for (const h of BLOCK_HOOKS) out.push(`blocks.${i}.${h}`);
  out.push("ln_final.hook_normalized");
  return out;
}

/**
 * The canonical name (non-negative block index) of a hook name, or an error that names it
 * and lists the valid ones. Accepts negative block indices (`blocks.-1.hook_resid_post`).
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * const c = makeConfig({ arch: "llama", vocabSize: 8, nLayer: 4, dModel: 8, nHead: 2 });
 * resolveHookName(c, "blocks.-1.attn.hook_z"); // "blocks.3.attn.hook_z"
 * ```
 */
export function resolveHookName(c: ModelConfig, name: string, where = "hook"): string {
  const m = /^blocks\.(-?\d+)\.(.+)$/.exec(name);
  const valid = () =>
    `valid names: hook_embed${c.arch === "gpt2" ? ", hook_pos_embed" : ""}, ` +
    `blocks.{i}.{${BLOCK_HOOKS.join("|")}} with i in ${-c.nLayer}..${c.nLayer - 1}, ` +
    `ln_final.hook_normalized (short names: actName("resid_post", i))`;
  if (m) {
    const i = Number(m[1]);
    if (!BLOCK_HOOKS.includes(m[2])) {
      throw new Error(`${where}: unknown hook point '${name}' ('${m[2]}'); ${valid()}`);
    }
    if (i < -c.nLayer || i >= c.nLayer) {
      throw new Error(
        `${where}: block ${i} of '${name}' outside ${-c.nLayer}..${c.nLayer - 1} ` +
          `(${c.nLayer} blocks)`,
      );
    }
    return `blocks.${i < 0 ? c.nLayer + i : i}.${m[2]}`;
  }
  const global = ["hook_embed", "ln_final.hook_normalized"];
  if (c.arch === "gpt2") global.push("hook_pos_embed");
  if (!global.includes(name)) throw new Error(`${where}: unknown hook point '${name}'; ${valid()}`);
  return name;
}
