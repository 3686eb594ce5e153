/**
 * The arithmetic of policy-gradient RL for language models, as plain functions over number
 * arrays so that every value can be checked by hand (the RL loop in `rl.ts` uses them, and
 * mirrors the differentiable ones with tensors):
 *
 * - GRPO group-normalised advantages, `A_i = (r_i - mean_group) / (std_group + eps)`
 *   (DeepSeekMath, arXiv 2402.03300, section 4.1.2), and its process-supervision form for
 *   per-token rewards (section 4.1.3: rewards normalised over the group, the advantage of a
 *   token is the sum of the normalised rewards from that token on);
 * - the k3 ("low_var_kl") estimator of KL(policy || reference) per token,
 *   `exp(ref - pol) - (ref - pol) - 1` (Schulman, "Approximating KL divergence", 2020);
 * - generalised advantage estimation (Schulman et al. 2015, arXiv 1506.02438);
 * - PPO's clipped surrogate and clipped value losses (Schulman et al. 2017, arXiv 1707.06347);
 * - whitening (TRL's `masked_whiten`).
 *
 * Standard deviations are sample ones (Bessel's n - 1, as `torch.std` in TRL); a single
 * value has std 0.
 *
 * @module
 */

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length ? s / xs.length : 0;
}

/** Sample variance (n - 1 in the denominator); 0 for fewer than two values. */
export function sampleVariance(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return s / (xs.length - 1);
}

/** Options of {@link groupAdvantages}. */
export interface GroupAdvantageOptions {
  /** Divide by the group's standard deviation (Dr. GRPO turns this off). @default true */
  scaleByStd?: boolean;
  /** Added to the standard deviation. @default 1e-4 */
  eps?: number;
}

/**
 * GRPO advantages: rewards come in consecutive groups of `groupSize` (the rollouts of one
 * prompt); each becomes `(r - mean_group) / (std_group + eps)`.
 *
 * @example
 * ```ts
 * groupAdvantages([1, 0, 0, 0], 4); // [1.5, -0.5, -0.5, -0.5] (std 0.5, up to eps)
 * ```
 */
export function groupAdvantages(
  rewards: readonly number[],
  groupSize: number,
  opts: GroupAdvantageOptions = {},
): number[] {
  const { scaleByStd = true, eps = 1e-4 } = opts;
  if (!Number.isInteger(groupSize) || groupSize < 1 || rewards.length % groupSize !== 0) {
    throw new Error(
      `groupAdvantages: ${rewards.length} rewards do not split into groups of ${groupSize}; ` +
        `pass groupSize that divides the number of rewards`,
    );
  }
  const out: number[] = [];
  for (let g = 0; g < rewards.length; g += groupSize) {
    const group = rewards.slice(g, g + groupSize);
    const m = mean(group);
    const scale = scaleByStd ? Math.sqrt(sampleVariance(group)) + eps : 1;
    for (const r of group) out.push((r - m) / scale);
  }
  return out;
}

/** Options of the per-token advantage builders. */
export interface TokenAdvantageOptions extends GroupAdvantageOptions {
  /** Discount from one token to the next. @default 1 */
  gamma?: number;
}

/**
 * Per-token rewards of each rollout: `process[i]` (zeros when absent) plus the sequence
 * reward `outcome[i]` on the last token. Throws when a process row's length differs from
 * `lengths[i]`.
 */
export function placeRewards(
  outcome: readonly number[],
  process: readonly (readonly number[])[] | undefined,
  lengths: readonly number[],
): number[][] {
  return lengths.map((n, i) => {
    const row = process ? process[i].slice() : new Array(n).fill(0);
    if (row.length !== n) {
      throw new Error(`placeRewards: rollout ${i} has ${n} tokens but ${row.length} token rewards`);
    }
    if (n > 0) row[n - 1] += outcome[i];
    return row;
  });
}

/**
 * GRPO advantages per token. The sequence rewards `outcome` are group-normalised
 * ({@link groupAdvantages}) and placed on the last token; the per-token rewards `process`
 * (if any) are normalised with the mean and std of all token rewards of their group
 * (DeepSeekMath's process supervision); the advantage of token t is then
 * `sum_{s >= t} gamma^(s - t) rtilde_s`. With no process rewards and gamma = 1 every token
 * of a rollout gets its group-normalised sequence reward: plain GRPO.
 */
export function grpoTokenAdvantages(
  outcome: readonly number[],
  process: readonly (readonly number[])[] | undefined,
  lengths: readonly number[],
  groupSize: number,
  opts: TokenAdvantageOptions = {},
): number[][] {
  const { gamma = 1, scaleByStd = true, eps = 1e-4 } = opts;
  const seqAdv = groupAdvantages(outcome, groupSize, { scaleByStd, eps });
  let normalised: number[][] | undefined;
  if (process) {
    normalised = [];
    for (let g = 0; g < process.length; g += groupSize) {
      const rows = process.slice(g, g + groupSize);
      const all = rows.flat();
      const m = mean(all);
      const scale = scaleByStd ? Math.sqrt(sampleVariance(all)) + eps : 1;
      for (const r of rows) normalised.push(r.map((x) => (x - m) / scale));
    }
  }
  const placed = placeRewards(seqAdv, normalised, lengths);
  return placed.map((row) => rewardToGo(row, gamma));
}

/** `out[t] = sum_{s >= t} gamma^(s - t) r[s]`. */
export function rewardToGo(r: readonly number[], gamma = 1): number[] {
  const out = new Array<number>(r.length);
  let acc = 0;
  for (let t = r.length - 1; t >= 0; t--) {
    acc = r[t] + gamma * acc;
    out[t] = acc;
  }
  return out;
}

/**
 * The k3 estimator of KL(policy || reference) at each token, from the log-probabilities of
 * the sampled tokens: `exp(ref - pol) - (ref - pol) - 1` (>= 0, unbiased, low variance;
 * verl's `low_var_kl`, without its clamp).
 */
export function k3Kl(logpPolicy: readonly number[], logpRef: readonly number[]): number[] {
  if (logpPolicy.length !== logpRef.length) {
    throw new Error(`k3Kl: ${logpPolicy.length} policy vs ${logpRef.length} reference log-probs`);
  }
  return logpPolicy.map((p, i) => {
    const d = logpRef[i] - p;
    return Math.exp(d) - d - 1;
  });
}

/** Options of {@link gae}. */
export interface GaeOptions {
  /** Discount. @default 1 */
  gamma?: number;
  /** GAE lambda. @default 0.95 */
  lambda?: number;
}

/**
 * Generalised advantage estimation over one sequence: `values[t]` = V(state before token
 * t), the value after the last token is 0 (terminal);
 * `delta_t = r_t + gamma V_{t+1} - V_t`, `A_t = delta_t + gamma lambda A_{t+1}`,
 * `returns = A + V`.
 */
export function gae(
  rewards: readonly number[],
  values: readonly number[],
  opts: GaeOptions = {},
): { advantages: number[]; returns: number[] } {
  const { gamma = 1, lambda = 0.95 } = opts;
  if (rewards.length !== values.length) {
    throw new Error(
      `gae: ${rewards.length} rewards vs ${values.length} values; pass one per token`,
    );
  }
  const n = rewards.length;
  const advantages = new Array<number>(n);
  let next = 0;
  for (let t = n - 1; t >= 0; t--) {
    const vNext = t + 1 < n ? values[t + 1] : 0;
    const delta = rewards[t] + gamma * vNext - values[t];
    next = delta + gamma * lambda * next;
    advantages[t] = next;
  }
  return { advantages, returns: advantages.map((a, t) => a + values[t]) };
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/**
 * PPO's clipped surrogate, per element, as a loss to minimise:
 * `max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))`.
 */
export function clippedPolicyLoss(
  ratio: readonly number[],
  adv: readonly number[],
  eps = 0.2,
): number[] {
  return ratio.map((r, i) => Math.max(-adv[i] * r, -adv[i] * clamp(r, 1 - eps, 1 + eps)));
}

/** Whether the clip is active (ratio beyond 1 +- eps in the direction the advantage pushes). */
export function isClipped(ratio: readonly number[], adv: readonly number[], eps = 0.2): boolean[] {
  return ratio.map((r, i) => (r > 1 + eps && adv[i] > 0) || (r < 1 - eps && adv[i] < 0));
}

/**
 * PPO's clipped value loss, per element:
 * `0.5 max((v - ret)^2, (vOld + clip(v - vOld, -eps, eps) - ret)^2)`.
 */
export function clippedValueLoss(
  v: readonly number[],
  vOld: readonly number[],
  ret: readonly number[],
  eps = 0.2,
): number[] {
  return v.map((x, i) => {
    const clipped = vOld[i] + clamp(x - vOld[i], -eps, eps);
    return 0.5 * Math.max((x - ret[i]) ** 2, (clipped - ret[i]) ** 2);
  });
}

/** Options of {@link whiten}. */
export interface WhitenOptions {
  /** Subtract the mean (false adds it back after scaling, as TRL does for rewards). @default true */
  shiftMean?: boolean;
  /** Added to the variance. @default 1e-8 */
  eps?: number;
}

/** `(x - mean) / sqrt(var + eps)` with the sample variance. */
export function whiten(xs: readonly number[], opts: WhitenOptions = {}): number[] {
  const { shiftMean = true, eps = 1e-8 } = opts;
  const m = mean(xs);
  const s = 1 / Math.sqrt(sampleVariance(xs) + eps);
  return xs.map((x) => (x - m) * s + (shiftMean ? 0 : m));
}

/** Options of {@link ppoTokenAdvantages}. */
export interface PpoAdvantageOptions extends GaeOptions {
  /** Whiten the advantages over all tokens of the batch. @default true */
  whiten?: boolean;
}

/**
 * PPO advantages per token: GAE on each rollout's per-token rewards and values, then
 * (optionally) whitened over every token of the batch. `returns` are the unwhitened
 * `A + V`, the value head's targets.
 */
export function ppoTokenAdvantages(
  tokenRewards: readonly (readonly number[])[],
  values: readonly (readonly number[])[],
  opts: PpoAdvantageOptions = {},
): { advantages: number[][]; returns: number[][] } {
  const per = tokenRewards.map((r, i) => gae(r, values[i], opts));
  let advantages = per.map((p) => p.advantages);
  if (opts.whiten ?? true) {
    const flat = whiten(advantages.flat());
    let k = 0;
    advantages = advantages.map((row) => row.map(() => flat[k++]));
  }
  return { advantages, returns: per.map((p) => p.returns) };
}
