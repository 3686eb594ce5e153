/**
 * Tests of lib/compass/metrics.ts: hand-derived values (AUROC with ties, thresholds,
 * Cohen's d, Wilson, Pearson/Spearman, Fisher z) and simulated interval coverage.
 *
 * @module
 */

import assert from "node:assert/strict";
import { makeRng } from "../lib/data/rng.ts";
import {
  accuracyAt,
  auroc,
  aurocCI,
  bestThreshold,
  bootstrapCI,
  normalCdf,
  normalQuantile,
  pearson,
  pearsonCI,
  proportionCI,
  ranks,
  separation,
  spearman,
} from "../lib/compass/metrics.ts";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: got ${a}, expected ${b} (tol ${tol})`);

// Scores and labels with ties across classes (0.8 and 0.6 each appear once per class).
const S = [0.9, 0.8, 0.8, 0.6, 0.6, 0.3];
const L: (0 | 1)[] = [1, 1, 0, 1, 0, 0];

Deno.test("auroc equals the hand-counted Mann-Whitney value with ties", () => {
  // Pairs (positive, negative), 3 x 3 = 9; a win counts 1, a tie 0.5:
  //   0.9 vs {0.8, 0.6, 0.3}: 1 + 1 + 1   = 3
  //   0.8 vs {0.8, 0.6, 0.3}: .5 + 1 + 1  = 2.5
  //   0.6 vs {0.8, 0.6, 0.3}: 0 + .5 + 1  = 1.5
  // AUROC = 7 / 9. By ranks: 0.3 -> 1, 0.6 -> 2.5, 0.8 -> 4.5, 0.9 -> 6;
  // R1 = 6 + 4.5 + 2.5 = 13, U = 13 - 3*4/2 = 7, 7 / 9 again.
  close(auroc(S, L), 7 / 9, 1e-12, "auroc");
  assert.deepEqual(Array.from(ranks(S)), [6, 4.5, 4.5, 2.5, 2.5, 1]);
  close(auroc(S, L.map((v) => v === 1)), 7 / 9, 1e-12, "auroc with boolean labels");
  close(auroc(S.map((s) => -s), L), 2 / 9, 1e-12, "reversed scores give 1 - AUROC");
  assert.equal(auroc([1, 1, 1], [1, 0, 1]), 0.5);
});

Deno.test("auroc throws naming the empty class", () => {
  assert.throws(() => auroc([0.1, 0.2], [1, 1]), /class 0 is empty/);
  assert.throws(() => auroc([0.1, 0.2], [0, 0]), /class 1 is empty/);
  assert.throws(() => auroc([0.1, 0.2], [0, 1, 1]), /3 labels for 2 scores/);
});

Deno.test("accuracyAt and bestThreshold match a hand scan", () => {
  // threshold 0.7 predicts 1,1,1,0,0,0 vs labels 1,1,0,1,0,0: 4 of 6 correct.
  close(accuracyAt(S, L, 0.7), 4 / 6, 1e-12, "accuracy at 0.7");
  // Scanning: below all 3/6; 0.45 -> 4/6; 0.7 -> 4/6; 0.85 -> 4/6; above all 3/6.
  // The lowest best threshold is the midpoint of 0.3 and 0.6.
  const best = bestThreshold(S, L);
  close(best.threshold, 0.45, 1e-12, "best threshold");
  close(best.accuracy, 4 / 6, 1e-12, "best accuracy");
  const perfect = bestThreshold([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]);
  assert.equal(perfect.accuracy, 1);
  close(perfect.threshold, 0.45, 1e-12, "separable threshold");
});

Deno.test("separation is Cohen's d with pooled sd", () => {
  // class 1: 2, 4, 6 (mean 4, var 4); class 0: 1, 2, 3 (mean 2, var 1);
  // pooled sd = sqrt((2*4 + 2*1) / 4) = sqrt(2.5); d = 2 / sqrt(2.5).
  close(separation([2, 4, 6, 1, 2, 3], [1, 1, 1, 0, 0, 0]), 2 / Math.sqrt(2.5), 1e-12, "d");
  close(separation([1, 2, 3, 2, 4, 6], [1, 1, 1, 0, 0, 0]), -2 / Math.sqrt(2.5), 1e-12, "-d");
});

Deno.test("normal quantile and cdf agree with tabulated values", () => {
  close(normalQuantile(0.975), 1.959963985, 1e-8, "z_0.975");
  close(normalQuantile(0.001), -3.090232306, 1e-8, "z_0.001");
  close(normalCdf(1.959963985), 0.975, 2e-7, "Phi(1.96)");
  close(normalCdf(0), 0.5, 1e-7, "Phi(0)");
  close(normalCdf(-1), 0.158655254, 2e-7, "Phi(-1)");
});

Deno.test("proportionCI wilson matches the hand formula for 8/10", () => {
  // p = .8, z^2 = 3.841459, denom = 1.3841459, centre = (.8 + .1920729) / denom = .716743,
  // half = 1.959964 / denom * sqrt(.016 + .0096036) = .226575: [.490168, .943318].
  const ci = proportionCI(8, 10);
  close(ci.value, 0.8, 1e-12, "p");
  close(ci.lo, 0.490168, 1e-5, "lo");
  close(ci.hi, 0.943318, 1e-5, "hi");
  const zero = proportionCI(0, 20);
  assert.equal(zero.lo, 0);
  assert.ok(zero.hi > 0.1 && zero.hi < 0.2, `Wilson upper for 0/20 = ${zero.hi}`);
  assert.throws(() => proportionCI(11, 10), /0 <= k <= n/);
});

Deno.test("pearson, spearman and the Fisher-z interval match hand values", () => {
  const x = [1, 2, 3, 4, 5], y = [2, 4, 5, 4, 5];
  // sxy = 6, sxx = 10, syy = 6: r = 6 / sqrt(60).
  close(pearson(x, y), 6 / Math.sqrt(60), 1e-12, "pearson");
  // ranks(y) = 1, 2.5, 4.5, 2.5, 4.5: sxy = 7, syy = 9, sxx = 10: rho = 7 / sqrt(90).
  close(spearman(x, y), 7 / Math.sqrt(90), 1e-12, "spearman");
  const ci = pearsonCI(x, y);
  // atanh(.774597) = 1.031718; half = 1.959964 / sqrt(2) = 1.385904.
  close(ci.lo, Math.tanh(1.031718 - 1.385904), 1e-5, "fisher lo");
  close(ci.hi, Math.tanh(1.031718 + 1.385904), 1e-5, "fisher hi");
  assert.throws(() => pearson([1, 1, 1], [1, 2, 3]), /x is constant/);
});

Deno.test("bootstrapCI is deterministic per seed and brackets the estimate", () => {
  const rng = makeRng(3);
  const v = Array.from({ length: 50 }, () => rng.normal());
  const meanOf = (idx: Uint32Array) => idx.reduce((s, i) => s + v[i], 0) / idx.length;
  const a = bootstrapCI(v.length, meanOf, { reps: 300, seed: 7 });
  const b = bootstrapCI(v.length, meanOf, { reps: 300, seed: 7 });
  const c = bootstrapCI(v.length, meanOf, { reps: 300, seed: 8 });
  assert.deepEqual(a, b);
  assert.notEqual(a.lo, c.lo);
  assert.ok(a.lo < a.value && a.value < a.hi);
  assert.equal(a.reps, 300);
  assert.equal(a.seed, 7);
  // The sd of a mean of 50 N(0,1) is ~0.141: a 95% interval is ~0.55 wide.
  assert.ok(a.hi - a.lo > 0.4 && a.hi - a.lo < 0.7, `width ${a.hi - a.lo}`);
});

Deno.test("stratified bootstrap keeps class counts in every resample", () => {
  const labels = [1, 1, 1, 0, 0, 0, 0, 0];
  let checked = 0;
  bootstrapCI(labels.length, (idx) => {
    const ones = Array.from(idx).filter((i) => labels[i] === 1).length;
    assert.equal(ones, 3);
    checked++;
    return ones;
  }, { reps: 50, stratify: labels });
  assert.equal(checked, 51);
});

Deno.test("95% AUROC bootstrap intervals cover the true AUROC in 90-99% of 200 datasets", () => {
  // Class 1 ~ N(1, 1), class 0 ~ N(0, 1): true AUROC = Phi(1 / sqrt(2)).
  const truth = normalCdf(1 / Math.SQRT2);
  const rng = makeRng(2024);
  let covered = 0;
  const sims = 200;
  for (let s = 0; s < sims; s++) {
    const scores: number[] = [], labels: (0 | 1)[] = [];
    for (let i = 0; i < 40; i++) {
      scores.push(rng.normal() + 1, rng.normal());
      labels.push(1, 0);
    }
    const ci = aurocCI(scores, labels, { reps: 400, seed: s });
    if (ci.lo <= truth && truth <= ci.hi) covered++;
  }
  const rate = covered / sims;
  console.log(`AUROC bootstrap coverage: ${(rate * 100).toFixed(1)}% (target 95%)`);
  assert.ok(rate >= 0.9 && rate <= 0.99, `coverage ${rate}`);
});

Deno.test("95% proportion intervals (wilson and bootstrap) cover p in 90-99% of 200 datasets", () => {
  const p = 0.3, n = 60, sims = 200;
  const rng = makeRng(99);
  const covered = { wilson: 0, bootstrap: 0 };
  for (let s = 0; s < sims; s++) {
    let k = 0;
    for (let i = 0; i < n; i++) k += rng.next() < p ? 1 : 0;
    for (const method of ["wilson", "bootstrap"] as const) {
      const ci = proportionCI(k, n, { method, reps: 400, seed: s });
      if (ci.lo <= p && p <= ci.hi) covered[method]++;
    }
  }
  for (const [method, c] of Object.entries(covered)) {
    console.log(`${method} coverage: ${((c / sims) * 100).toFixed(1)}% (target 95%)`);
    assert.ok(c / sims >= 0.9 && c / sims <= 0.99, `${method} coverage ${c / sims}`);
  }
});
