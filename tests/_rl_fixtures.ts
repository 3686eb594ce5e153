/**
 * Fixtures the RL tests share: four number-word prompts, a per-token reward on completion
 * token 1, and a `trainRL` wrapper that keeps every step's log row and rollouts.
 */
import type { PromptLabel, PromptRow } from "../lib/data/schema.ts";
import type { Reward } from "../lib/train/rewards.ts";
import type { Model } from "../lib/model/model.ts";
import {
  type RLLogRow,
  type RLOptions,
  type RolloutRecord,
  trainRL,
} from "../lib/train/rl/train.ts";

/** Four short prompts of number words, labelled by `label(i)` (default: all benign). */
export function numberPrompts(label: (i: number) => PromptLabel = () => "benign"): PromptRow[] {
  return ["1 2 3", "4 5 6", "8 9 10", "11 12"].map((prompt, i) => ({
    id: `p${i}`,
    prompt,
    label: label(i),
    category: "toy",
    source: "test",
  }));
}

/** Harmful at even indices, benign at odd ones. */
export const alternating = (i: number): PromptLabel => (i % 2 === 0 ? "harmful" : "benign");

/** Per-token reward: 1 on completion token 1 (when there is one), 0 elsewhere. */
export const TOKEN1: Reward = {
  name: "token1",
  weight: 1,
  fn: (ctx) => ctx.completionIds.map((_, t) => (t === 1 ? 1 : 0)),
};

/** `trainRL` that records every step's log row and rollouts. */
export async function trainCollecting(model: Model, opts: Omit<RLOptions, "onStep">) {
  const steps: { row: RLLogRow; rollouts: RolloutRecord[] }[] = [];
  const log = await trainRL(model, {
    ...opts,
    onStep: (row, rollouts) => steps.push({ row, rollouts }),
  });
  return { log, steps };
}
