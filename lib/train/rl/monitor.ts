/**
 * RL monitors: code that watches every step of `trainRL` without changing its rewards, such
 * as the hacking detector (`lib/train/hacking.ts`) or a compass that is refitted on the
 * policy's own rollouts. A monitor lists the hidden-state layers it reads (captured during
 * generation with the rewards' layers), sees the step's reward contexts after the rewards
 * are computed and before the update (so the policy is the one that produced the rollouts),
 * and returns numbers that land in the step's log row as `<name>/<key>`.
 *
 * @module
 */

import type { Model } from "../../model/model.ts";
import type { RewardContext } from "../rewards.ts";
import type { RLLogRow } from "./log.ts";

/** What a monitor sees after a step's rewards. */
export interface RLMonitorContext {
  /** The policy (before this step's update). */
  model: Model;
  /** The step, 0-based. */
  step: number;
  /** Every rollout's reward context (`hidden` holds the layers the monitor listed). */
  contexts: readonly RewardContext[];
  /** Each rollout's total reward (weighted sum over rewards and tokens). */
  rewards: readonly number[];
}

/**
 * Watches an RL run. `observe` returns the step's numbers (logged as `<name>/<key>`; return
 * `{}` on steps it skips); `warnings` reads the whole log at the end.
 *
 * @example
 * ```ts
 * import type { RLMonitor } from "./monitor.ts";
 * const lengths: RLMonitor = {
 *   name: "length",
 *   observe: ({ contexts }) => ({
 *     max: Math.max(...contexts.map((c) => c.completionIds.length)),
 *   }),
 * };
 * // trainRL(model, { ..., monitors: [lengths] }) logs `length/max` every step
 * ```
 */
export interface RLMonitor {
  /** Prefix of its metrics. */
  name: string;
  /** Layers whose per-token completion states it reads from `ctx.hidden` (negative = from the end). */
  layers?: number[];
  /** The step's numbers (`{}` when it does not measure this step). */
  observe(ctx: RLMonitorContext): Record<string, number> | Promise<Record<string, number>>;
  /** Whole-run warnings from the log rows (empty when nothing looks wrong). */
  warnings?(rows: readonly RLLogRow[]): string[];
}

/** Runs every monitor on a step; returns the prefixed metrics. */
export async function observeAll(
  monitors: readonly RLMonitor[],
  ctx: RLMonitorContext,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of monitors) {
    let got: Record<string, number>;
    try {
      got = await m.observe(ctx);
    } catch (err) {
      throw new Error(
        `monitor '${m.name}' failed at step ${ctx.step + 1}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    for (const [k, v] of Object.entries(got)) out[`${m.name}/${k}`] = v;
  }
  return out;
}
