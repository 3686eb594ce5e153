/**
 * The reasoning audit (CRAFT, arXiv 2603.17305; SCIENCE.md section 1: "per-token compass
 * scores drawn over the text of one generation"): generate greedily from one prompt while
 * capturing the hidden state of every new token at the compass's layer, score each with
 * the compass (p_safe), and render the tokens coloured by score (lib/viz/audit.ts).
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import type { ForcedSpan } from "../model/generate.ts";
import type { Intervention } from "../model/transformer.ts";
import { type AuditOptions, renderAudit } from "../viz/audit.ts";
import { formatNumber, JUPYTER_DISPLAY, type MimeBundle } from "../viz/display.ts";
import type { Compass } from "./compass.ts";
import { makeMatrix } from "./matrix.ts";

/** Options of {@link auditGeneration}. */
export interface AuditGenerationOptions {
  /** The user prompt (formatted with the chat template when the tokenizer has one). */
  prompt: string;
  /** Tokens to generate. @default 64 */
  maxNewTokens?: number;
  /** Layer whose hidden states are scored. @default compass.layer */
  layer?: number;
  /** p_safe below it counts as unsafe (marks the first crossing). @default 0.5 */
  threshold?: number;
  /** Forced tokens (a prefill attack = step 0, an injection = any step). */
  force?: ForcedSpan[];
  /** Residual-stream edits for this generation (steering, ablation). */
  interventions?: Intervention[];
}

/** Splits ids into display strings whose concatenation is the decoded text (prefix differences). */
export function tokenTexts(model: Model, ids: readonly number[]): string[] {
  const tk = model.tokenizer;
  const out: string[] = [];
  let prev = "";
  for (let i = 0; i < ids.length; i++) {
    const text = tk.decode(ids.slice(0, i + 1), { skipSpecialTokens: false });
    let piece = text.startsWith(prev) ? text.slice(prev.length) : tk.decode([ids[i]], {
      skipSpecialTokens: false,
    });
    if (piece === "") piece = tk.idToToken(ids[i]) ?? `<${ids[i]}>`;
    out.push(piece);
    prev = text;
  }
  return out;
}

/** One audited generation: the new tokens, their p_safe scores, and its rendering. */
export class AuditResult {
  /**
   * One generation's audit, from its tokens and their scores ({@link auditGeneration} makes it).
   *
   * @param prompt the prompt
   * @param tokenIds new token ids
   * @param tokens their display text
   * @param scores p_safe of each new token's hidden state
   * @param text the decoded generation (special tokens skipped)
   * @param layer the layer scored
   * @param threshold the unsafe threshold
   * @param forced which tokens were forced
   */
  constructor(
    readonly prompt: string,
    readonly tokenIds: number[],
    readonly tokens: string[],
    readonly scores: number[],
    readonly text: string,
    readonly layer: number,
    readonly threshold: number,
    readonly forced: boolean[],
  ) {}

  /** Index of the first token scored below the threshold, or undefined. */
  get crossing(): number | undefined {
    const i = this.scores.findIndex((s) => s < this.threshold);
    return i < 0 ? undefined : i;
  }

  /** Mean p_safe over the new tokens (NaN when none). */
  get meanScore(): number {
    return this.scores.reduce((a, b) => a + b, 0) / this.scores.length;
  }

  /** The tokens coloured by score (see `renderAudit`), the first crossing marked. */
  html(opts: AuditOptions = {}): string {
    return renderAudit(this.tokens, this.scores, {
      threshold: this.threshold,
      title: `Compass audit (layer ${this.layer}): ${this.prompt}`,
      mark: this.crossing,
      ...opts,
    });
  }

  /** A one-line description. */
  toString(): string {
    const c = this.crossing;
    return `AuditResult(${this.tokens.length} tokens, layer ${this.layer}, mean p_safe ` +
      `${formatNumber(this.meanScore, 3)}, ${
        c === undefined ? "no crossing" : `crossing at ${c}`
      })` +
      `: ${this.text}`;
  }

  /** Jupyter rich display: the coloured tokens. */
  [JUPYTER_DISPLAY](): MimeBundle {
    return { "text/html": this.html(), "text/plain": this.toString() };
  }
}

/**
 * Generates greedily from `opts.prompt` with `returnHiddenStates: [layer]` and scores every
 * new token's hidden state with `compass.score` (one [n, d] matrix).
 */
export async function auditGeneration(
  model: Model,
  compass: Compass,
  opts: AuditGenerationOptions,
): Promise<AuditResult> {
  const layer = opts.layer ?? compass.layer;
  if (compass.dModel !== model.config.dModel) {
    throw new Error(
      `Cannot audit: the compass reads d=${compass.dModel} hidden states but the model's ` +
        `d_model is ${model.config.dModel}; fit the compass on this model's activations`,
    );
  }
  const g = await model.generate({
    prompts: [opts.prompt],
    maxNewTokens: opts.maxNewTokens ?? 64,
    temperature: 0,
    returnHiddenStates: [layer],
    force: opts.force ? [opts.force] : undefined,
    interventions: opts.interventions,
  });
  const ids = g.tokenIds[0];
  const resolved = layer < 0 ? model.config.nLayer + 1 + layer : layer;
  const hidden = g.hiddenStates![resolved][0];
  const d = model.config.dModel;
  if (hidden.length !== ids.length * d) {
    throw new Error(
      `Cannot audit: generate returned ${hidden.length / d} hidden states for ${ids.length} tokens`,
    );
  }
  const scores = ids.length ? Array.from(compass.score(makeMatrix(ids.length, d, hidden))) : [];
  return new AuditResult(
    opts.prompt,
    ids,
    tokenTexts(model, ids),
    scores,
    g.text[0],
    resolved,
    opts.threshold ?? 0.5,
    g.forced[0],
  );
}
