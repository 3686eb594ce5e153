/**
 * Tests of lib/compass/probes.ts: each linear probe recovers a direction planted in
 * synthetic Gaussian data, scores held-out points well, and the logistic fit meets its
 * optimality conditions (checked independently of the optimiser).
 *
 * @module
 */

import assert from "node:assert/strict";
import { makeRng } from "../lib/data/rng.ts";
import { dot, fromRows, type Matrix, matVec, normalize } from "../lib/compass/matrix.ts";
import { auroc } from "../lib/compass/metrics.ts";
import { fitDiffMean, fitLogistic, fitPca, makeLinearProbe } from "../lib/compass/probes.ts";

/** n rows per class of N(0, I_d) noise plus (+shift | -shift) * u; class 1 on the + side. */
function planted(seed: number, n: number, d: number, shift: number, u?: Float32Array) {
  const rng = makeRng(seed);
  const dir = u ?? normalize(Float32Array.from({ length: d }, () => rng.normal()));
  const rows: number[][] = [], y: (0 | 1)[] = [];
  for (let i = 0; i < n; i++) {
    for (const c of [1, 0] as const) {
      const sign = c === 1 ? shift : -shift;
      rows.push(Array.from({ length: d }, (_, j) => rng.normal() + sign * dir[j] + 0.5));
      y.push(c);
    }
  }
  return { x: fromRows(rows), y, u: dir };
}

// d = 32, 500 per class, shift 1.5: the classes overlap a little (Bayes error Phi(-1.5) ~ 7%),
// so the logistic fit stays finite and every probe has noise to average out.
const D = 32, N = 500;
const train = planted(1, N, D, 1.5);
const test = planted(2, N, D, 1.5, train.u);

function checkProbe(name: string, probe: ReturnType<typeof fitDiffMean>, x: Matrix = test.x) {
  const cos = dot(probe.direction, train.u);
  console.log(`${name}: cos(direction, planted) = ${cos.toFixed(4)}`);
  assert.ok(cos > 0.95, `${name} cosine ${cos}`);
  assert.ok(Math.abs(dot(probe.direction, probe.direction) - 1) < 1e-5, "direction is unit");
  const p = probe.score(x);
  assert.ok(p.every((v) => v > 0 && v < 1), "scores are probabilities");
  const a = auroc(p, test.y);
  assert.ok(a > 0.95, `${name} held-out AUROC ${a}`);
  // Scores are sigmoid(projection * scale + offset): AUROC of the projection is the same.
  assert.ok(
    Math.abs(auroc(probe.project(x), test.y) - a) < 1e-9,
    "score is monotone in projection",
  );
  // Calibrated: the mean p_safe on a balanced test set is near 0.5 and class 1 is above 0.5.
  const mean1 = p.filter((_, i) => test.y[i] === 1).reduce((s, v) => s + v, 0) / N;
  const mean0 = p.filter((_, i) => test.y[i] === 0).reduce((s, v) => s + v, 0) / N;
  assert.ok(mean1 > 0.8 && mean0 < 0.2, `${name} class means of p_safe ${mean1} / ${mean0}`);
}

Deno.test("diff-of-means recovers the planted direction and r is the mean difference", () => {
  const probe = fitDiffMean(train.x, train.y);
  checkProbe("diffmean", probe);
  assert.equal(probe.method, "diffmean");
  // r = mean(class 1) - mean(class 0), checked on coordinate 0 independently.
  let m1 = 0, m0 = 0;
  for (let i = 0; i < train.x.rows; i++) {
    if (train.y[i]) m1 += train.x.data[i * D];
    else m0 += train.x.data[i * D];
  }
  assert.ok(Math.abs(probe.meanDiff![0] - (m1 - m0) / N) < 1e-5);
  // |r| is about 2 * shift = 3.
  assert.ok(Math.abs(Math.sqrt(dot(probe.meanDiff!, probe.meanDiff!)) - 3) < 0.3);
  // Weights fold the calibration: weights = scale * direction.
  const { scale } = probe.calibration!;
  assert.ok(scale > 0);
  probe.weights.forEach((w, j) => assert.ok(Math.abs(w - scale * probe.direction[j]) < 1e-5));
});

Deno.test("PCA reading vector recovers the planted direction with and without pairs", () => {
  const unpaired = fitPca(train.x, train.y, { seed: 3 });
  checkProbe("pca (class-centred)", unpaired);
  assert.equal(unpaired.fit!.converged, true);
  // Pairs (2k, 2k+1) = (safe, unsafe); reversed order in half of them must not matter.
  const pairs = Array.from(
    { length: N },
    (_, k) => (k % 2 ? [2 * k, 2 * k + 1] : [2 * k + 1, 2 * k]) as [number, number],
  );
  const paired = fitPca(train.x, train.y, { pairs, seed: 4 });
  checkProbe("pca (pairs)", paired);
  // Both seeds converge to the same axis.
  assert.ok(dot(unpaired.direction, fitPca(train.x, train.y, { seed: 9 }).direction) > 0.9999);
  // Explained variance of paired differences: (signal 9 + noise 2) / (9 + 2 * 32) ~ 0.15.
  const ev = paired.fit!.explainedVariance as number;
  assert.ok(ev > 0.1 && ev < 0.3, `explained variance ${ev}`);
  // Flipping the labels flips the orientation.
  const flipped = fitPca(train.x, train.y.map((v) => (1 - v) as 0 | 1), { seed: 3 });
  assert.ok(dot(flipped.direction, unpaired.direction) < -0.9999);
});

Deno.test("logistic probe recovers the planted direction", () => {
  const probe = fitLogistic(train.x, train.y);
  checkProbe("logistic", probe);
  assert.equal(probe.fit!.converged, true, `iterations ${probe.fit!.iterations}`);
  // Raw-space weights reproduce the standardised model.
  const st = probe.standardization!;
  const row0 = train.x.data.subarray(0, D);
  const zRaw = dot(row0, probe.weights) + probe.bias;
  const zStd = row0.reduce((s, v, j) => s + ((v - st.mean[j]) / st.std[j]) * st.weights[j], 0) +
    st.bias;
  assert.ok(Math.abs(zRaw - zStd) < 1e-3, `${zRaw} vs ${zStd}`);
});

Deno.test("logistic fit satisfies the first-order optimality conditions", () => {
  // 1-D, overlapping classes, no standardisation: at the optimum of
  // mean NLL + l2/2 w^2, mean(p - y) = 0 and mean((p - y) x) + l2 w = 0.
  const xs = [0, 1, 2, 3, 4, 5, 1.5, 3.5];
  const y: (0 | 1)[] = [0, 0, 1, 0, 1, 1, 1, 0];
  const l2 = 0.01;
  const probe = fitLogistic(fromRows(xs.map((v) => [v])), y, { l2, standardize: false });
  const w = probe.weights[0], b = probe.bias;
  const p = xs.map((v) => 1 / (1 + Math.exp(-(w * v + b))));
  const gb = p.reduce((s, pi, i) => s + pi - y[i], 0) / xs.length;
  const gw = p.reduce((s, pi, i) => s + (pi - y[i]) * xs[i], 0) / xs.length + l2 * w;
  assert.ok(Math.abs(gb) < 1e-5 && Math.abs(gw) < 1e-5, `gradient ${gb}, ${gw}`);
  assert.ok(w > 0, "class 1 lies at larger x");
});

Deno.test("makeLinearProbe scores sigmoid(x . w + b) and rejects the wrong width", () => {
  const probe = makeLinearProbe({
    method: "logistic",
    direction: Float32Array.of(0.6, 0.8),
    weights: Float32Array.of(3, 4),
    bias: -1,
  });
  const x = fromRows([[1, 0], [0, 0.25]]);
  const p = probe.score(x);
  assert.ok(Math.abs(p[0] - 1 / (1 + Math.exp(-2))) < 1e-6);
  assert.ok(Math.abs(p[1] - 0.5) < 1e-6);
  assert.deepEqual(Array.from(matVec(x, probe.direction)), Array.from(probe.project(x)));
  assert.throws(() => probe.score(fromRows([[1, 2, 3]])), /3 columns.*d=2/);
  assert.throws(() => fitDiffMean(x, [1, 1]), /need both classes/);
});
