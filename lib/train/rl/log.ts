/**
 * What an RL run records: one row of metrics per step in TRL's namespace (`reward`,
 * `rewards/<name>/mean`, `kl`, `entropy`, `clip_ratio`, `completion_length`,
 * `refusal_rate`, ...), one {@link RolloutRecord} per rollout for inspection, and the
 * {@link RunLog} that renders both in Jupyter.
 *
 * Metric keys (present on every row unless noted):
 *
 * | key | meaning |
 * | --- | --- |
 * | `step` | 1-based step |
 * | `reward`, `reward_std` | mean and std of the weighted total reward per rollout |
 * | `rewards/<name>/mean` | mean unweighted value of each reward (arrays summed) |
 * | `kl` | mean k3 KL to the reference per chosen token (with a reference only) |
 * | `entropy` | mean `-log p` of the sampled (not forced) tokens: a sampled-entropy estimate |
 * | `clip_ratio` | share of chosen tokens whose ratio was clipped |
 * | `completion_length` | mean completion tokens, forced ones included |
 * | `refusal_rate` | share of completions the refusal judge flags |
 * | `frac_reward_zero_std` | share of prompt groups whose rewards all tie |
 * | `perturb/rate` | share of rollouts with an injected span (with `perturb` only) |
 * | `perturb/forced_share` | share of completion tokens that were forced (with `perturb` only) |
 * | `loss`, `value_loss` (PPO), `grad_norm`, `learning_rate`, `seconds` | optimisation |
 *
 * @module
 */

import * as aq from "arquero";
import { plotCurves } from "../../viz/plots/curves.ts";
import { figureBundle, JUPYTER_DISPLAY, type MimeBundle, tableBundle } from "../../viz/display.ts";
import type { ForcedSpan } from "../../model/generate.ts";
import { sampleVariance } from "../advantages.ts";
import type { RewardScores } from "../rewards.ts";
import type { ResolvedRLOptions } from "./options.ts";
import type { Rollouts } from "./rollout.ts";
import type { UpdateStats } from "./loss.ts";

/** One step's metrics (TRL keys): reward, rewards/<name>/mean, kl, entropy, clip_ratio, ... */
export type RLLogRow = Record<string, number>;

/** One rollout as the step saw it (for inspection: where rewards and advantages landed). */
export interface RolloutRecord {
  /** The prompt row's id. */
  promptId: string;
  /** Decoded completion (injected spans included). */
  completion: string;
  /** Completion token ids (injected spans included). */
  completionIds: number[];
  /** Unweighted value of each reward (summed over tokens). */
  rewards: Record<string, number>;
  /** Weighted per-token reward (scalars on the last token). */
  tokenRewards: number[];
  /** Per-token advantages used in the loss. */
  advantages: number[];
  /** PPO: per-token value targets (GAE advantages + old values). */
  returns?: number[];
  /** PPO: the value head's estimates at rollout time. */
  values?: number[];
  /** With `perturb`: the spans drawn for this rollout (undefined = not drawn). */
  perturbation?: ForcedSpan[];
  /** With `perturb`: which completion tokens were forced (they carry no loss or KL). */
  forced?: boolean[];
}

/** What `trainRL` returns; renders as curves + table in Jupyter. */
export interface RunLog {
  /** Per-step metrics. */
  rows: RLLogRow[];
  /** The metrics as an arquero table. */
  table(): aq.ColumnTable;
  /** The resolved, serialisable options (seed included). */
  options: Record<string, unknown>;
  /** What looks wrong with the run as a whole (see {@link runWarnings}); empty when nothing. */
  warnings: string[];
  /** Jupyter display: plotly curves and the table. */
  [JUPYTER_DISPLAY](): MimeBundle;
}

/** Mean of `xs` (0 when empty). */
export function meanOf(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/**
 * Whole-run problems a per-step log hides. Today one: a GRPO run in which every group of
 * every step had identical total rewards (`frac_reward_zero_std` = 1 throughout) had all-zero
 * outcome advantages, so nothing but per-token rewards or the KL term could move its policy,
 * and the KL term has no gradient while the policy equals its reference; typical of a binary
 * reward on a policy that always answers the same way.
 */
export function runWarnings(rows: readonly RLLogRow[], options: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (
    options.algorithm === "grpo" && rows.length > 0 &&
    rows.every((r) => r.frac_reward_zero_std === 1)
  ) {
    out.push(
      `every group of all ${rows.length} GRPO steps had identical rewards, so the outcome ` +
        `advantages were all 0 and the policy did not change through them (only per-token ` +
        `rewards or the KL term could move it, and KL does not while the policy equals its ` +
        `reference): the rewards need variance within a group (a graded reward, a larger ` +
        `groupSize or a higher temperature)`,
    );
  }
  return out;
}

/** Wraps log rows as a {@link RunLog} (curves of reward, kl, entropy... and the table). */
export function makeRunLog(rows: RLLogRow[], options: Record<string, unknown>): RunLog {
  const warnings = runWarnings(rows, options);
  return {
    rows,
    options,
    warnings,
    table: () => aq.from(rows),
    [JUPYTER_DISPLAY]: () => {
      const title = `RL (${options.algorithm ?? "?"}): ${rows.length} steps` +
        (warnings.length ? ` · warning: ${warnings.join("; ")}` : "");
      const table = tableBundle(rows, { title });
      if (rows.length === 0) return table;
      const y = ["reward", "kl", "entropy", "clip_ratio", "refusal_rate", "completion_length"]
        .filter((k) => k in rows[0]);
      const fig = figureBundle(plotCurves(rows, { x: "step", y, title: "RL training curves" }));
      return {
        "text/html": `${fig["text/html"]}\n${table["text/html"]}`,
        "text/plain": table["text/plain"],
      };
    },
  };
}

/** The step's log row (TRL's metric names; see the module's table). */
export function stepMetrics(
  step: number,
  opts: ResolvedRLOptions,
  r: Rollouts,
  scores: RewardScores,
  tokenRewards: number[][],
  stats: UpdateStats[],
  extra: { kl: boolean; value: boolean; lr: number; t0: number },
): RLLogRow {
  const G = opts.groupSize, N = r.rows.length;
  const totals = tokenRewards.map((x) => x.reduce((a, b) => a + b, 0));
  let zeroStd = 0;
  for (let g = 0; g < N; g += G) if (sampleVariance(totals.slice(g, g + G)) === 0) zeroStd++;
  const row: RLLogRow = { step: step + 1, reward: meanOf(totals) };
  row.reward_std = Math.sqrt(sampleVariance(totals));
  for (const w of opts.rewards) row[`rewards/${w.name}/mean`] = meanOf(scores.components[w.name]);
  if (extra.kl) row.kl = meanOf(stats.map((s) => s.kl));
  const forced = r.gen.forced;
  row.entropy = meanOf(
    r.gen.logprobs.flatMap((lp, i) => lp.filter((_, t) => !forced[i]?.[t]))
      .map((x) => -x),
  );
  row.clip_ratio = meanOf(stats.map((s) => s.clip));
  row.completion_length = meanOf(r.lens);
  const judge = opts.refusalJudge;
  row.refusal_rate = meanOf(r.gen.text.map((t) => (judge(t) ? 1 : 0)));
  row.frac_reward_zero_std = zeroStd / (N / G);
  if (opts.perturb) {
    row["perturb/rate"] = meanOf(forced.map((f) => (f.some(Boolean) ? 1 : 0)));
    const total = r.lens.reduce((a, b) => a + b, 0);
    row["perturb/forced_share"] = total ? forced.flat().filter(Boolean).length / total : 0;
  }
  row.loss = meanOf(stats.map((s) => s.loss));
  if (extra.value) row.value_loss = meanOf(stats.map((s) => s.vloss));
  row.grad_norm = meanOf(stats.map((s) => s.norm));
  row.learning_rate = extra.lr;
  row.seconds = (performance.now() - extra.t0) / 1000;
  return row;
}
