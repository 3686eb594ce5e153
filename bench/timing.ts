/**
 * The bench's clock: median seconds of a measured function, with enough warm-up and repeats
 * that a run of a few milliseconds (a SafetyWorld decode at B=1) is measured as reliably
 * as a run of seconds (GPT-2-small training). bench/torch_peer.py applies the same rule to
 * PyTorch, so the ratios compare like with like.
 *
 * @module
 */

/** How long to warm up and how many repeats to time (see {@link timeIt}). */
export interface TimingRule {
  /** Keep warming up until this many seconds of warm-up runs (at least one run, at most 10). @default 0.5 */
  warmSeconds?: number;
  /** Keep timing until the timed runs add up to this many seconds. @default 1 */
  minSeconds?: number;
  /** Never time more runs than this. @default 50 */
  maxReps?: number;
}

/**
 * Median seconds of `fn` over at least `reps` timed runs, after warm-up. A short `fn` gets
 * more warm-up runs (its first repeats still pay for one-time work: buffers, BLAS threads)
 * and more timed runs, until `minSeconds` of timed runs (at most `maxReps`); a run of seconds
 * is timed exactly `reps` times after one warm-up.
 */
export async function timeIt(
  reps: number,
  fn: () => Promise<void> | void,
  rule: TimingRule = {},
): Promise<number> {
  const warmSeconds = rule.warmSeconds ?? 0.5, minSeconds = rule.minSeconds ?? 1;
  const maxReps = Math.max(reps, rule.maxReps ?? 50);
  let warm = 0;
  for (let i = 0; i < 10 && (i === 0 || warm < warmSeconds); i++) {
    const t0 = performance.now();
    await fn();
    warm += (performance.now() - t0) / 1000;
  }
  const times: number[] = [];
  let total = 0;
  while (times.length < maxReps && (times.length < reps || total < minSeconds)) {
    const t0 = performance.now();
    await fn();
    const dt = (performance.now() - t0) / 1000;
    times.push(dt);
    total += dt;
  }
  const s = times.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
