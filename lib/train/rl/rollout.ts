/**
 * The rollout phase of an RL step: the step's prompts (a seeded sample plus an optional
 * small dose of extra prompts, arXiv 2606.24014's mixed-in trait scenarios), `groupSize`
 * completions each from one batched `generate` call (KV cache; the hidden states the
 * rewards list are captured during generation), optional mid-sequence perturbations forced
 * into a share of them (Park & Kim, arXiv 2606.04778; `perturb.ts`), and the
 * {@link RewardContext} of every rollout.
 *
 * @module
 */

import type { Model } from "../../model/model.ts";
import { encodePrompts, type ForcedSpan, type GenerateResult } from "../../model/generate.ts";
import type { PromptRow } from "../../data/schema.ts";
import type { makeRng } from "../../data/rng.ts";
import { perturbRollout, type RolloutPerturber } from "../perturb.ts";
import type { GroupMember, RewardContext } from "../rewards.ts";
import { perturbMaxStep, type ResolvedRLOptions } from "./options.ts";

/** One step's rollouts: G consecutive rows per prompt, and what the rewards read. */
export interface Rollouts {
  /** The prompt row of every rollout (each prompt repeated G times). */
  rows: PromptRow[];
  /** Prompt token ids of every rollout. */
  promptIds: number[][];
  /** The generation (`gen.forced[i][t]`: completion token t of rollout i was forced). */
  gen: GenerateResult;
  /** Completion lengths in tokens (forced ones included). */
  lens: number[];
  /** What each reward call reads. */
  contexts: RewardContext[];
  /** With `perturb`: the spans drawn per rollout (undefined = none drawn). */
  perturbation?: (ForcedSpan[] | undefined)[];
}

/**
 * The perturbation schedule of a run as forced spans per rollout, or undefined when
 * `opts.perturb` is absent; throws on a bad schedule (call it before any work).
 */
export function rolloutPerturber(
  model: Model,
  opts: ResolvedRLOptions,
): RolloutPerturber<PromptRow> | undefined {
  if (!opts.perturb) return undefined;
  return perturbRollout<PromptRow>(model.tokenizer, {
    ...opts.perturb,
    seed: opts.perturb.seed ?? opts.seed,
    maxStep: perturbMaxStep(opts),
  });
}

/** The step's prompts: the seeded main sample plus the mixed-in dose. */
export function sampleRows(
  prompts: PromptRow[],
  order: (step: number) => number[],
  step: number,
  perStep: number,
  mix: ResolvedRLOptions["mix"],
  rng: ReturnType<typeof makeRng>,
): PromptRow[] {
  const rows = order(step).map((i) => prompts[i]);
  if (!mix || mix.rows.length === 0 || !(mix.share > 0)) return rows;
  const k = mix.share * perStep;
  const n = Math.floor(k) + (rng.next() < k - Math.floor(k) ? 1 : 0);
  const extra = rng.shuffle(mix.rows).slice(0, n);
  return [...(mix.replace ? rows.slice(0, Math.max(0, rows.length - n)) : rows), ...extra];
}

/**
 * Generates G completions of each of `batchRows` (with the spans of `perturber` forced in,
 * when given) and builds the reward contexts.
 */
export async function rollout(
  model: Model,
  opts: ResolvedRLOptions,
  batchRows: PromptRow[],
  step: number,
  seed: number,
  requested: number[],
  perturber?: RolloutPerturber<PromptRow>,
): Promise<Rollouts> {
  const c = model.config, G = opts.groupSize, maxNew = opts.maxNewTokens;
  const layerOf = (l: number) => (l < 0 ? c.nLayer + 1 + l : l);
  const layers = [...new Set(requested.map(layerOf))];
  const pIds = encodePrompts(model, { prompts: batchRows.map((r) => r.prompt) });
  pIds.forEach((p, i) => {
    if (c.arch === "gpt2" && p.length + maxNew > c.maxPositions) {
      throw new Error(
        `trainRL: prompt ${batchRows[i].id} has ${p.length} tokens; with maxNewTokens ` +
          `${maxNew} it exceeds the model's ${c.maxPositions} positions`,
      );
    }
  });
  const rows = batchRows.flatMap((r) => new Array<PromptRow>(G).fill(r));
  const promptIds = pIds.flatMap((p) => new Array<number[]>(G).fill(p));
  const perturbation = perturber?.(rows, step);
  const gen = await model.generate({
    inputIds: promptIds,
    temperature: opts.temperature,
    topP: opts.topP,
    topK: opts.topK,
    maxNewTokens: maxNew,
    seed,
    returnHiddenStates: layers.length ? layers : false,
    batchSize: opts.generationBatchSize,
    ...(perturbation ? { force: perturbation } : {}),
  });
  const contexts: RewardContext[] = [];
  for (let g = 0; g < rows.length; g += G) {
    const group: GroupMember[] = gen.text.slice(g, g + G).map((text, k) => ({
      text,
      ids: gen.tokenIds[g + k],
      ...(perturber ? { forced: gen.forced[g + k] } : {}),
    }));
    for (let k = 0; k < G; k++) {
      const i = g + k, row = rows[i];
      const hidden: Record<number, Float32Array> = {};
      for (const l of requested) hidden[l] = hidden[layerOf(l)] = gen.hiddenStates![layerOf(l)][i];
      contexts.push({
        row,
        prompt: row.prompt,
        completion: gen.text[i],
        completionIds: gen.tokenIds[i],
        group,
        groupIndex: k,
        hidden: layers.length ? hidden : undefined,
        compass: opts.compass,
        step,
        ...(perturber ? { forced: gen.forced[i] } : {}),
      });
    }
  }
  const lens = gen.tokenIds.map((t) => t.length);
  return { rows, promptIds, gen, lens, contexts, perturbation };
}
