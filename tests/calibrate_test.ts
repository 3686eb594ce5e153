/**
 * Tests of lib/compass/calibrate.ts. `thresholdAtRate` on hand-derived values (ties, the
 * ends); then a tiny model whose every token carries a planted score (a stub compass reads
 * p_safe = sigmoid(h[0]) at layer 0, where h[0] = wte[tok][0] is set to logit(score(tok))):
 * `calibrateMonitor` returns, for several targets, the threshold at which exactly
 * floor(fpr * n) of the calibration answers are flagged (their lowest running scores are
 * recomputed here from the generated tokens and the planted scores), the monitor run with
 * that calibration flags exactly those rows, its layer and window come with it, and a
 * conflicting window is refused.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { firstCoordinateCompass, tinyModel, useTestBackend } from "./_helpers.ts";
import type { Model } from "../lib/model/model.ts";
import type { Compass } from "../lib/compass/compass.ts";
import { generateMonitored, runningMean } from "../lib/compass/monitor.ts";
import {
  calibrateMonitor,
  flagRateOf,
  minRunning,
  monitorFlagRate,
  thresholdAtRate,
} from "../lib/compass/calibrate.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();

const V = 40, D = 16;
const logit = (p: number) => Math.log(p / (1 - p));
/**
 * A distinct planted score per token, in (0.4, 0.6): small logits, so the planted column
 * barely moves the (tied-head) next-token logits and sampled answers stay varied.
 */
const planted = (tok: number) => 0.4 + 0.2 * (((tok * 17) % V) + 0.5) / V;

const stubCompass = (): Compass => firstCoordinateCompass(D);

function plantScores(m: Model): void {
  const wte = m.params.get("wte.weight")!, wpe = m.params.get("wpe.weight")!;
  const e = wte.arraySync() as number[][], p = wpe.arraySync() as number[][];
  e.forEach((row, tok) => (row[0] = logit(planted(tok))));
  p.forEach((row) => (row[0] = 0));
  wte.assign(tf.tensor2d(e));
  wpe.assign(tf.tensor2d(p));
}

/** 24 prompts of varied tokens and lengths. */
const PROMPTS = Array.from(
  { length: 24 },
  (_, i) =>
    Array.from({ length: 2 + (i % 5) }, (_, j) => 1 + ((i * 7 + j * 11) % (V - 2))).join(" "),
);

Deno.test("thresholdAtRate: the k-th smallest value, k = floor(fpr * n); ties flag fewer", () => {
  const v = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.05];
  // sorted: .05 .1 .2 .3 .4 .5 .6 .7 .8 .9
  assert.equal(thresholdAtRate(v, 0), 0.05); // nothing is below the smallest
  assert.equal(thresholdAtRate(v, 0.1), 0.1); // only .05 below
  assert.equal(thresholdAtRate(v, 0.25), 0.2); // k = 2: .05 and .1 below
  assert.equal(thresholdAtRate(v, 0.3), 0.3); // 0.3 * 10 is 3 despite rounding
  assert.equal(thresholdAtRate(v, 1), Infinity);
  const below = (t: number) => v.filter((x) => x < t).length;
  for (const fpr of [0, 0.1, 0.2, 0.35, 0.5, 0.99, 1]) {
    assert.equal(below(thresholdAtRate(v, fpr)), Math.floor(fpr * 10 + 1e-9), `fpr ${fpr}`);
  }
  // Ties at the k-th value: fewer than k fall strictly below it.
  const tied = [0.1, 0.2, 0.2, 0.2, 0.9];
  assert.equal(thresholdAtRate(tied, 0.4), 0.2);
  assert.equal(tied.filter((x) => x < 0.2).length, 1);
  assert.throws(() => thresholdAtRate([], 0.1), /no answers/);
  assert.throws(() => thresholdAtRate(v, 1.5), /0 <= fpr <= 1/);
  assert.throws(() => thresholdAtRate([0.1, NaN], 0.5), /NaN/);
});

Deno.test("minRunning and flagRateOf on planted trails", () => {
  assert.deepEqual(minRunning([{ running: [0.5, 0.2, 0.4] }, { running: [] }]), [0.2, Infinity]);
  const r = flagRateOf([{ crossing: 3 }, { crossing: null }, { crossing: null }, { crossing: 0 }]);
  assert.deepEqual([r.rate, r.flagged, r.n], [0.5, 2, 4]);
  assert.ok(r.lo < 0.5 && r.hi > 0.5 && r.lo >= 0 && r.hi <= 1);
  assert.ok(Number.isNaN(flagRateOf([]).rate));
});

Deno.test("calibrateMonitor hits the target rate on planted per-token scores; the monitor flags exactly those rows", async () => {
  const m = await tinyModel("gpt2", 5, V);
  try {
    plantScores(m);
    const compass = stubCompass();
    // Sampled (seeded per row), so the rows' answers and their minima differ.
    const generate = {
      maxNewTokens: 10,
      batchSize: 8,
      temperature: 1.5,
      seed: 3,
      stopAtEos: false,
    };
    for (const [window, fpr] of [[2, 0.25], [3, 0.125], [4, 0.5], [2, 0]] as const) {
      const cal = await calibrateMonitor(m, compass, PROMPTS, { fpr, window, generate });
      assert.equal(cal.window, window);
      assert.equal(cal.layer, 0);
      assert.equal(cal.n, PROMPTS.length);
      // The lowest running scores, recomputed from the generated tokens' planted scores.
      const g = await m.generate({ prompts: PROMPTS, ...generate });
      const mins = g.tokenIds.map((ids) => {
        const s = ids.map(planted);
        return Math.min(...s.map((_, k) => runningMean(s.slice(0, k + 1), window)));
      });
      cal.minRunning.forEach((x, i) => assert.ok(Math.abs(x - mins[i]) < 1e-5, `row ${i}`));
      // No tie at the boundary (so the target is reachable exactly): the k-th and (k-1)-th
      // smallest minima differ.
      const want = Math.floor(fpr * PROMPTS.length);
      const sorted = [...cal.minRunning].sort((a, b) => a - b);
      assert.ok(want === 0 || sorted[want - 1] < sorted[want] - 1e-7, `boundary tie: ${sorted}`);
      assert.equal(cal.flagged, want, `window ${window}, fpr ${fpr}`);
      assert.equal(cal.rate, want / PROMPTS.length);
      assert.ok(cal.lo <= cal.rate + 1e-12 && cal.rate <= cal.hi + 1e-12);
      // Monitoring with the calibration (its window and layer apply) flags the same rows.
      const run = await generateMonitored(m, {
        prompts: PROMPTS,
        ...generate,
        monitor: { compass, action: "flag", threshold: cal },
      });
      assert.equal(run.settings.window, window);
      assert.equal(run.settings.threshold, cal.threshold);
      const flagged = run.trails.map((t) => t.crossing !== null);
      assert.deepEqual(flagged, cal.minRunning.map((x) => x < cal.threshold));
      const again = await monitorFlagRate(m, PROMPTS, { compass, threshold: cal }, generate);
      assert.equal(again.flagged, want);
    }
  } finally {
    m.dispose();
  }
});

Deno.test("a calibrated threshold refuses a conflicting window or layer; bad fpr fails", async () => {
  const m = await tinyModel("gpt2", 5, V);
  try {
    plantScores(m);
    const compass = stubCompass();
    const cal = { threshold: 0.3, layer: 0, window: 4 };
    await assert.rejects(
      () =>
        generateMonitored(m, {
          prompts: PROMPTS.slice(0, 2),
          maxNewTokens: 2,
          monitor: { compass, action: "flag", threshold: cal, window: 2 },
        }),
      /calibrated at layer 0, window 4/,
    );
    await assert.rejects(
      () =>
        generateMonitored(m, {
          prompts: PROMPTS.slice(0, 2),
          maxNewTokens: 2,
          monitor: { compass, action: "flag", threshold: cal, layer: 1 },
        }),
      /calibrated at layer 0/,
    );
    await assert.rejects(() => calibrateMonitor(m, compass, PROMPTS, { fpr: 2 }), /0 <= fpr/);
    await assert.rejects(() => calibrateMonitor(m, compass, []), /no prompts/);
  } finally {
    m.dispose();
  }
});
