/**
 * Reward functions for the RL loop: plain typed functions (as TRL's reward functions) that
 * may read the policy's own hidden states, captured during generation, and may return one
 * number per token. Built-ins:
 *
 * - {@link craftReward}: CRAFT's reward from hidden representations ("R2L", arXiv
 *   2603.17305; SCIENCE.md section 2), `R = 0.5 R_lat + 0.4 R_txt + 0.2 R_cons`, with its
 *   ablations {@link latentOnly} and {@link textOnly}, and the toolkit's per-token variant;
 * - {@link alphaAlignReward}: AlphaAlign's verifiable safety reward plus group-normalised
 *   helpfulness (arXiv 2507.14987; SCIENCE.md section 3);
 * - {@link traitReward}: a pluggable trait grader (arXiv 2606.24014; SCIENCE.md section 6).
 *
 * A scalar reward lands on the last completion token; an array gives one reward per
 * completion token (its length must equal the number of completion tokens).
 *
 * @module
 */

import type { PromptRow } from "../data/schema.ts";
import type { Compass } from "../compass/compass.ts";
import type { Matrix } from "../compass/matrix.ts";
import { ALPHAALIGN_REFUSAL, isAlphaAlignRefusal, verifyFormat } from "../judges/format.ts";
import { groupAdvantages } from "./advantages.ts";

/** One completion of the prompt's group. */
export interface GroupMember {
  /** Decoded completion. */
  text: string;
  /** Completion token ids (end-of-sequence included when produced). */
  ids: number[];
  /** Which completion tokens were forced (an injected span); present when the run perturbs. */
  forced?: boolean[];
}

/** Everything a reward may read about one rollout. */
export interface RewardContext {
  /** The prompt row (labels included: `label`, `category`, `answer`, ...). */
  row: PromptRow;
  /** The prompt text (before the chat template). */
  prompt: string;
  /** The decoded completion (special tokens skipped). */
  completion: string;
  /** The completion's token ids. */
  completionIds: number[];
  /** All completions of the same prompt, this one at `groupIndex` (the same array object for the whole group). */
  group: GroupMember[];
  /** Position of this completion in `group`. */
  groupIndex: number;
  /**
   * Hidden states of the completion tokens, [nNew, d] row-major per layer the rewards
   * asked for (keyed both by the layer as requested, e.g. -1, and as resolved).
   */
  hidden?: Record<number, Float32Array>;
  /** The compass given to the RL loop, if any. */
  compass?: Compass;
  /** The RL step (0-based). */
  step: number;
  /**
   * Which completion tokens were forced into the rollout (a mid-sequence perturbation,
   * `RLOptions.perturb`); absent when the run does not perturb. `completion` and
   * `completionIds` include the forced tokens, so a reward can score the recovery after them.
   */
  forced?: boolean[];
}

/** What a reward returns: one number (on the last token) or one per completion token. */
export type RewardValue = number | number[];

/** A reward function. */
export type RewardFn = (ctx: RewardContext) => RewardValue | Promise<RewardValue>;

/** A named, weighted reward; `layers` lists the hidden states it reads. */
export interface Reward {
  /** Name in the metrics (`rewards/<name>/mean`). */
  name: string;
  /** Weight in the total reward. */
  weight: number;
  /** The function. */
  fn: RewardFn;
  /** Layers whose per-token hidden states `fn` reads from `ctx.hidden` (negative = from the end). */
  layers?: number[];
}

/** A verdict on one completion of a row: a number (p_safe for the CRAFT judges, any finite score for helpfulness) or a boolean (1 / 0). */
export type TextJudge = (
  row: PromptRow,
  text: string,
) => number | boolean | Promise<number | boolean>;

async function probability(judge: TextJudge, row: PromptRow, text: string, who: string) {
  const v = await judge(row, text);
  const p = typeof v === "boolean" ? (v ? 1 : 0) : v;
  if (!(p >= 0 && p <= 1)) {
    throw new Error(`${who}: the judge returned ${v} for row ${row.id}; expected p_safe in [0, 1]`);
  }
  return p;
}

/** Weights of CRAFT's reward terms (arXiv 2603.17305). */
export interface CraftWeights {
  /** On R_lat. @default 0.5 */
  lat: number;
  /** On R_txt. @default 0.4 */
  txt: number;
  /** On R_cons. @default 0.2 */
  cons: number;
}

/** `R_lat = cos(z, mu_safe) - cos(z, mu_unsafe) + 0.5 cos(z, mu_rethink)`. */
export function latentReward(cos: { safe: number; unsafe: number; rethink: number }): number {
  return cos.safe - cos.unsafe + 0.5 * cos.rethink;
}

/** The three CRAFT terms and their weighted sum. */
export function craftRewardParts(
  inp: { lat: number; pLatSafe: number; pTextSafe: number },
  weights: CraftWeights = { lat: 0.5, txt: 0.4, cons: 0.2 },
): { lat: number; txt: number; cons: number; total: number } {
  const txt = 2 * inp.pTextSafe - 1;
  const cons = 1 - Math.abs(inp.pLatSafe - inp.pTextSafe);
  return {
    lat: inp.lat,
    txt,
    cons,
    total: weights.lat * inp.lat + weights.txt * txt + weights.cons * cons,
  };
}

/** Options of {@link craftReward}. */
export interface CraftRewardOptions {
  /** The compass (CRAFT head: cosines to prototypes; a linear probe: R_lat = 2 p_safe - 1). */
  compass: Compass;
  /** Layer of the hidden states. @default compass.layer */
  layer?: number;
  /** p_text_safe of a completion (flip a harmfulness score before passing it). Needed unless txt and cons weights are 0. */
  textJudge?: TextJudge;
  /** Weights of the three terms (missing ones keep theirs). @default {lat: 0.5, txt: 0.4, cons: 0.2} */
  weights?: Partial<CraftWeights>;
  /**
   * Per-token latent reward: token t gets `weights.lat * R_lat(h_t)` (its own hidden
   * state) and the last token also gets the text and consistency terms. @default false
   */
  perToken?: boolean;
  /** Name in the metrics (`rewards/<name>/mean`). @default "craft" ("craft_latent" in latentOnly) */
  name?: string;
  /** Weight in the total reward. @default 1 */
  weight?: number;
}

function rLat(compass: Compass, h: Matrix): Float32Array {
  if (compass.cosines) {
    const c = compass.cosines(h);
    return c.safe.map((s, i) =>
      latentReward({ safe: s, unsafe: c.unsafe[i], rethink: c.rethink[i] })
    );
  }
  return compass.score(h).map((p) => 2 * p - 1);
}

/**
 * CRAFT's latent + text reward. The completion's hidden states (layer `layer`, captured
 * during generation) are mean-pooled over the completion tokens (the prompt's are not
 * captured; CRAFT's compass is fitted on the mean over prompt and response), giving z's
 * cosines to the prototypes (R_lat) and p_lat_safe; `R_txt = 2 p_text_safe - 1`,
 * `R_cons = 1 - |p_lat_safe - p_text_safe|`.
 */
export function craftReward(opts: CraftRewardOptions): Reward {
  const { compass, perToken = false } = opts;
  const layer = opts.layer ?? compass.layer;
  const w: CraftWeights = { lat: 0.5, txt: 0.4, cons: 0.2, ...opts.weights };
  const name = opts.name ?? "craft";
  const needsText = w.txt !== 0 || w.cons !== 0;
  if (needsText && !opts.textJudge) {
    throw new Error(
      `${name}: pass textJudge (p_text_safe), or set weights.txt and weights.cons to 0`,
    );
  }
  const fn: RewardFn = async (ctx) => {
    const flat = ctx.hidden?.[layer];
    const d = compass.dModel;
    if (!flat || flat.length === 0 || flat.length % d !== 0) {
      throw new Error(
        `${name}: no [nNew, ${d}] hidden states of layer ${layer} in the context of row ` +
          `${ctx.row.id}; run it through trainRL (it captures the layers a reward lists) or fill ctx.hidden`,
      );
    }
    const n = flat.length / d;
    const pooled = new Float32Array(d);
    for (let t = 0; t < n; t++) for (let j = 0; j < d; j++) pooled[j] += flat[t * d + j] / n;
    const z = { rows: 1, cols: d, data: pooled };
    const pLatSafe = compass.score(z)[0];
    const pTextSafe = needsText
      ? await probability(opts.textJudge!, ctx.row, ctx.completion, name)
      : pLatSafe;
    const lat = perToken ? 0 : rLat(compass, z)[0];
    const parts = craftRewardParts({ lat, pLatSafe, pTextSafe }, w);
    if (!perToken) return parts.total;
    const perTok = Array.from(rLat(compass, { rows: n, cols: d, data: flat }), (x) => w.lat * x);
    perTok[n - 1] += parts.total;
    return perTok;
  };
  return { name, weight: opts.weight ?? 1, fn, layers: [layer] };
}

/** CRAFT's latent term alone (ablation): `R = R_lat`. */
export function latentOnly(opts: Omit<CraftRewardOptions, "textJudge" | "weights">): Reward {
  return craftReward({
    ...opts,
    weights: { lat: 1, txt: 0, cons: 0 },
    name: opts.name ?? "craft_latent",
  });
}

/** CRAFT's text term alone (ablation): `R = 2 p_text_safe - 1`; reads no hidden states. */
export function textOnly(opts: { textJudge: TextJudge; name?: string; weight?: number }): Reward {
  const name = opts.name ?? "craft_text";
  return {
    name,
    weight: opts.weight ?? 1,
    fn: async (ctx) => 2 * (await probability(opts.textJudge, ctx.row, ctx.completion, name)) - 1,
  };
}

/** AlphaAlign's terms: safety `R_s`, helpfulness `R_h` and the total. */
export function alphaAlignParts(
  inp: { harmful: boolean; format: boolean; refusal: boolean; helpfulnessZ?: number },
  opts: { rf?: number; ra?: number; zero?: boolean } = {},
): { safety: number; helpfulness: number; total: number } {
  const { rf = 1, ra = 1, zero = false } = opts;
  const vf = inp.format ? 1 : 0;
  const vr = inp.refusal ? 1 : 0;
  const safety = inp.harmful ? rf * vf + ra * vr : rf * vf - ra * vr;
  const helpfulness = inp.harmful || zero || inp.refusal ? 0 : Math.max(inp.helpfulnessZ ?? 0, 0);
  return { safety, helpfulness, total: safety + helpfulness };
}

/** Options of {@link alphaAlignReward}. */
export interface AlphaAlignRewardOptions {
  /** r_f, the format reward (unpublished in the paper). @default 1 */
  rf?: number;
  /** r_a, the refusal reward (unpublished in the paper). @default 1 */
  ra?: number;
  /** Helpfulness score s of a benign answer (paper: a reward model; toy world: correctness). */
  helpfulness?: TextJudge;
  /** The "Zero" variant: R_s only. @default false */
  zero?: boolean;
  /** The refusal answer. @default ALPHAALIGN_REFUSAL (`\boxed{Sorry, I can't comply}`) */
  refusalString?: string;
  /** Added to the group std in the z-score. @default 1e-4 */
  eps?: number;
  /** Name in the metrics (`rewards/<name>/mean`). @default "alphaalign" */
  name?: string;
  /** Weight in the total reward. @default 1 */
  weight?: number;
}

/**
 * AlphaAlign's reward: `R_s = rf V_f + ra V_r` (harmful) or `rf V_f - ra V_r` (benign and
 * borderline); for benign prompts plus `R_h = max(z, 0)` when the answer is not a refusal,
 * z being the helpfulness score standardised within the prompt's group of rollouts. Group
 * scores are computed once per group (memoised on the group array, which lives one step).
 */
export function alphaAlignReward(opts: AlphaAlignRewardOptions = {}): Reward {
  const refusalString = opts.refusalString ?? ALPHAALIGN_REFUSAL;
  const name = opts.name ?? "alphaalign";
  const zScores = new WeakMap<GroupMember[], Promise<number[]>>();
  const groupZ = (ctx: RewardContext): Promise<number[]> => {
    let z = zScores.get(ctx.group);
    if (!z) {
      z = Promise.all(ctx.group.map(async (g) => {
        const s = Number(await opts.helpfulness!(ctx.row, g.text));
        if (!Number.isFinite(s)) {
          throw new Error(`${name}: helpfulness returned ${s} for row ${ctx.row.id}`);
        }
        return s;
      })).then((s) => groupAdvantages(s, s.length, { eps: opts.eps ?? 1e-4 }));
      zScores.set(ctx.group, z);
    }
    return z;
  };
  const fn: RewardFn = async (ctx) => {
    const harmful = ctx.row.label === "harmful";
    const refusal = isAlphaAlignRefusal(ctx.completion, refusalString);
    const wantsZ = !harmful && !opts.zero && !refusal && opts.helpfulness;
    const helpfulnessZ = wantsZ ? (await groupZ(ctx))[ctx.groupIndex] : 0;
    return alphaAlignParts(
      { harmful, format: verifyFormat(ctx.completion), refusal, helpfulnessZ },
      opts,
    ).total;
  };
  return { name, weight: opts.weight ?? 1, fn };
}

/** The rewards of a batch of rollouts, split as the advantage builders need them. */
export interface RewardScores {
  /** Weighted sum of the scalar rewards (and of the arrays' sums when not per token), per rollout. */
  outcome: number[];
  /** Weighted per-token rewards from the array-valued rewards, per rollout (zeros elsewhere). */
  process: number[][];
  /** Unweighted value of each reward (arrays summed), per rollout: the logged components. */
  components: Record<string, number[]>;
}

/**
 * Runs every reward on every rollout (`lengths[i]` completion tokens). Scalars go to
 * `outcome` (the last token); arrays go to `process` token by token, or, with
 * `perToken: false`, their sum goes to `outcome`. Throws naming the reward, the prompt row
 * and the rollout when a value is not finite or an array has the wrong length.
 */
export async function evaluateRewards(
  rewards: readonly Reward[],
  contexts: readonly RewardContext[],
  lengths: readonly number[],
  opts: { perToken?: boolean } = {},
): Promise<RewardScores> {
  const perToken = opts.perToken ?? true;
  const n = contexts.length;
  const outcome = new Array<number>(n).fill(0);
  const process = lengths.map((len) => new Array<number>(len).fill(0));
  const components: Record<string, number[]> = {};
  for (const r of rewards) components[r.name] = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    for (const r of rewards) {
      const v = await r.fn(contexts[i]);
      const arr = typeof v === "number" ? [v] : v;
      const bad = arr.find((x) => typeof x !== "number" || !Number.isFinite(x));
      if (bad !== undefined || (typeof v !== "number" && v.length !== lengths[i])) {
        throw new Error(
          `reward '${r.name}' returned ` +
            (bad !== undefined ? `${bad}` : `${arr.length} values for ${lengths[i]} tokens`) +
            ` for prompt ${contexts[i].row.id} (rollout ${i}); a reward must return a finite ` +
            `number or one finite number per completion token`,
        );
      }
      const sum = arr.reduce((a, b) => a + b, 0);
      components[r.name][i] += sum;
      if (typeof v === "number" || !perToken) outcome[i] += r.weight * sum;
      else v.forEach((x, t) => (process[i][t] += r.weight * x));
    }
  }
  return { outcome, process, components };
}

/** A trait grader as a reward: true / 1 when the completion shows the trait. */
export function traitReward(
  grader: (row: PromptRow, text: string) => boolean | number | Promise<boolean | number>,
  opts: { name?: string; weight?: number } = {},
): Reward {
  return {
    name: opts.name ?? "trait",
    weight: opts.weight ?? 1,
    fn: async (ctx) => Number(await grader(ctx.row, ctx.completion)),
  };
}
