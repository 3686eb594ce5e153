/**
 * Tests of lib/compass/craft.ts on the pure-JS cpu backend: every CRAFT loss term against
 * values worked out by hand on 2-D embeddings, the EMA prototype formula, learning on
 * separable synthetic data (pooled and per-token inputs), determinism, weight round trips
 * and tensor leaks.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { makeRng } from "../lib/data/rng.ts";
import {
  type CraftClass,
  CraftHead,
  craftLosses,
  fitCraft,
  updatePrototypes,
} from "../lib/compass/craft.ts";
import { fromRows, type Matrix, mean } from "../lib/compass/matrix.ts";
import { auroc } from "../lib/compass/metrics.ts";

await tf.setBackend("cpu");

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: got ${a}, expected ${b} (diff ${Math.abs(a - b)})`);

// Prototypes mu_s = (1, 0), mu_u = (0, 1), mu_r = (0.6, 0.8).
// Rows: z0 = (0.8, 0.6) unsafe, z1 = (1, 0) rethink, z2 = (0, 1) safe.
// cos(z, [mu_s, mu_u, mu_r]): z0 -> [.8, .6, .96], z1 -> [1, 0, .6], z2 -> [0, 1, .8].
const PROTOS = [[1, 0], [0, 1], [0.6, 0.8]];
const Z = [[0.8, 0.6], [1, 0], [0, 1]];
const LABELS = [1, 2, 0];
// Views 2 (positives) and a one-entry queue of negatives.
const ZPOS = [[0.6, 0.8], [1, 0], [0, 1]];
const QUEUE = [[-1, 0]];
// Logits: row 0 uniform; row 1 [ln 2, 0, 0] -> p = [1/2, 1/4, 1/4]; row 2 [0, 0, ln 2] -> [1/4, 1/4, 1/2].
const LOGITS = [[0, 0, 0], [Math.LN2, 0, 0], [0, 0, Math.LN2]];
const PTEXT = [[1 / 3, 1 / 3, 1 / 3], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]];

// L_proto (other: unsafe->safe, rethink->unsafe, safe->unsafe), margin 0.2:
//   z0: relu(.2 - .6 + .8) = .4;  z1: relu(.2 - .6 + 0) = 0;  z2: relu(.2 - 0 + 1) = 1.2
const PROTO = (0.4 + 0 + 1.2) / 3;
// Ordering term relu(.2 - cs + cr) + relu(.2 - cr + cu):
//   z0: relu(.36) + relu(-.16) = .36;  z1: relu(-.2) + relu(-.4) = 0;  z2: relu(1) + relu(.4) = 1.4
const CONTR = PROTO + 0.5 * ((0.36 + 0 + 1.4) / 3);
// InfoNCE, t = 0.1, keys [zpos0, zpos1, zpos2, q]:
//   z0 . keys = [.96, .8, .6, -.8] -> /t [9.6, 8, 6, -8], positive 9.6
//   z1 . keys = [.6, 1, 0, -1]     -> [6, 10, 0, -10], positive 10
//   z2 . keys = [.8, 0, 1, 0]      -> [8, 0, 10, 0], positive 10
const INST = (Math.log(1 + Math.exp(-1.6) + Math.exp(-3.6) + Math.exp(-17.6)) +
  Math.log(1 + Math.exp(-4) + Math.exp(-10) + Math.exp(-20)) +
  Math.log(1 + Math.exp(-2) + 2 * Math.exp(-10))) / 3;
// CE: row 0 (label unsafe) log 3; row 1 (label rethink, p 1/4) log 4; row 2 (label safe, p 1/4) log 4.
const CE = (Math.log(3) + 2 * Math.log(4)) / 3;
// KL(p_lat || p_text): row 0: 0; row 1: .5 ln(.5/.25) + .25 ln(.25/.5) + 0 = .25 ln 2; row 2: 0.
const KL = (0.25 * Math.LN2) / 3;

function losses(withText: boolean, queue = true) {
  return tf.tidy(() => {
    const l = craftLosses({
      z: tf.tensor2d(Z),
      zPos: tf.tensor2d(ZPOS),
      logits: tf.tensor2d(LOGITS),
      labels: LABELS,
      prototypes: tf.tensor2d(PROTOS),
      queue: queue ? tf.tensor2d(QUEUE) : undefined,
      pText: withText ? tf.tensor2d(PTEXT) : undefined,
    });
    return Object.fromEntries(Object.entries(l).map(([k, v]) => [k, v.dataSync()[0]]));
  });
}

Deno.test("craftLosses equal the hand-computed terms on 2-D embeddings", () => {
  const before = tf.memory().numTensors;
  const l = losses(true);
  close(l.proto, PROTO, 1e-6, "L_proto");
  close(l.contr, CONTR, 1e-6, "L_contr");
  close(l.inst, INST, 1e-5, "L_inst");
  close(l.ce, CE, 1e-6, "CE");
  close(l.kl, KL, 1e-6, "KL");
  close(l.total, PROTO + 0.5 * INST + CE + 0.5 * KL + 0.3 * CONTR, 1e-5, "total");
  const noText = losses(false);
  assert.equal(noText.kl, 0);
  close(noText.total, PROTO + 0.5 * INST + CE + 0.3 * CONTR, 1e-5, "total without p_text");
  // Without the queue, each row's negatives are the other rows only.
  const noQueue = losses(false, false);
  close(
    noQueue.inst,
    (Math.log(1 + Math.exp(-1.6) + Math.exp(-3.6)) + Math.log(1 + Math.exp(-4) + Math.exp(-10)) +
      Math.log(1 + Math.exp(-2) + Math.exp(-10))) / 3,
    1e-5,
    "L_inst without queue",
  );
  assert.equal(tf.memory().numTensors, before, "craftLosses leaks nothing inside tidy");
});

Deno.test("craftLosses with binary p_text compares p_safe as a Bernoulli", () => {
  // Row 1: p_lat_safe = 1/2 vs p_text_safe = 1/4: KL = .5 ln 2 + .5 ln(.5/.75).
  const kl = tf.tidy(() =>
    craftLosses({
      z: tf.tensor2d([Z[1]]),
      zPos: tf.tensor2d([ZPOS[1]]),
      logits: tf.tensor2d([LOGITS[1]]),
      labels: [2],
      prototypes: tf.tensor2d(PROTOS),
      pText: tf.tensor2d([[0.25, 0.75]]),
    }).kl.dataSync()[0]
  );
  close(kl, 0.5 * Math.log(2) + 0.5 * Math.log(0.5 / 0.75), 1e-6, "Bernoulli KL");
});

Deno.test("updatePrototypes follows the EMA formula and initialises unseen classes", () => {
  const protos: Matrix = { rows: 3, cols: 2, data: Float32Array.of(1, 0, 0, 0, 0, 0) };
  const z = fromRows([[0, 1], [0.6, 0.8], [1, 0]]);
  const out = updatePrototypes(protos, [true, false, false], z, [0, 0, 1], 0.98);
  // safe: mean = (.3, .9); .98 (1, 0) + .02 (.3, .9) = (.986, .018), then normalised.
  const n = Math.hypot(0.986, 0.018);
  close(out.prototypes.data[0], 0.986 / n, 1e-6, "mu_safe x");
  close(out.prototypes.data[1], 0.018 / n, 1e-6, "mu_safe y");
  // unsafe: first time seen -> its batch mean (1, 0), normalised.
  assert.deepEqual(Array.from(out.prototypes.data.subarray(2, 4)), [1, 0]);
  // rethink: absent -> unchanged (zero) and still unseen.
  assert.deepEqual(Array.from(out.prototypes.data.subarray(4, 6)), [0, 0]);
  assert.deepEqual(out.seen, [true, true, false]);
  assert.deepEqual(Array.from(protos.data), [1, 0, 0, 0, 0, 0], "input not mutated");
});

/**
 * Three Gaussian clusters in d dims (centres N(0, spread^2 I), unit noise), n rows cycling
 * safe/unsafe/rethink.
 */
function clusters(seed: number, n: number, d: number, centreSeed = 5, spread = 0.6) {
  const c = makeRng(centreSeed);
  const centres = [0, 1, 2].map(() => Array.from({ length: d }, () => c.normal() * spread));
  const rng = makeRng(seed);
  const rows: number[][] = [], y: CraftClass[] = [];
  for (let i = 0; i < n; i++) {
    rows.push(centres[i % 3].map((m) => m + rng.normal()));
    y.push((["safe", "unsafe", "rethink"] as const)[i % 3]);
  }
  return { x: fromRows(rows), y };
}

function heldOutAuroc(head: CraftHead, test: ReturnType<typeof clusters>): number {
  const s = head.score(test.x);
  const idx = test.y.flatMap((l, i) => (l === "rethink" ? [] : [i]));
  return auroc(idx.map((i) => s[i]), idx.map((i) => test.y[i] === "safe"));
}

Deno.test("fitCraft with paper defaults separates held-out safe from unsafe (AUROC > 0.95)", () => {
  const train = clusters(1, 96, 32), test = clusters(2, 300, 32);
  const before = tf.memory().numTensors;
  const head = fitCraft(train.x, train.y, { seed: 1 });
  assert.equal(tf.memory().numTensors, before, "no tensors left after fitting");
  const a = heldOutAuroc(head, test);
  console.log(`CRAFT (defaults, pooled, n=96): held-out AUROC ${a.toFixed(4)}`);
  assert.ok(a > 0.95, `AUROC ${a}`);
  assert.equal(head.history.length, 3);
  assert.equal(head.history[0].steps, 6);
  for (const h of head.history) {
    for (const v of Object.values(h)) assert.ok(Number.isFinite(v), JSON.stringify(h));
  }
  assert.equal(head.info!.approximatedViews, true);
  assert.equal(head.info!.views, "feature-dropout");
  assert.equal(head.dModel, 32);
  assert.equal(head.hiddenDim, 1024);
  assert.equal(head.embedDim, 512);
  // z is unit length; probabilities sum to one; cosines agree with z . mu.
  const z = head.embed(test.x), p = head.probs(test.x), cos = head.cosines(test.x);
  for (const i of [0, 7, 299]) {
    close(Math.hypot(...z.data.subarray(i * 512, (i + 1) * 512)), 1, 1e-4, "|z|");
    close(p.data[i * 3] + p.data[i * 3 + 1] + p.data[i * 3 + 2], 1, 1e-5, "sum p");
    let d = 0;
    for (let j = 0; j < 512; j++) d += z.data[i * 512 + j] * head.prototypes.data[512 + j];
    close(cos.unsafe[i], d, 1e-4, "cos(z, mu_unsafe)");
  }
  // Safe test rows sit closer to mu_safe than unsafe rows do, on average.
  const avg = (v: Float32Array, cls: CraftClass) =>
    v.reduce((s, x, i) => s + (test.y[i] === cls ? x : 0), 0) / 100;
  assert.ok(avg(cos.safe, "safe") > avg(cos.safe, "unsafe"));
  assert.equal(tf.memory().numTensors, before, "no tensors left after inference");
});

Deno.test("fitCraft on per-token inputs uses token-drop views and learns", () => {
  const d = 16, rng = makeRng(11);
  const train = clusters(3, 90, d, 6, 1), test = clusters(4, 150, d, 6, 1);
  // Each example becomes 4-12 tokens scattered around its row.
  const tokens = Array.from({ length: train.x.rows }, (_, i) => {
    const t = 4 + rng.int(9);
    return fromRows(
      Array.from(
        { length: t },
        () => Array.from(train.x.data.subarray(i * d, (i + 1) * d), (v) => v + 0.5 * rng.normal()),
      ),
    );
  });
  const head = fitCraft(tokens, train.y, {
    seed: 2,
    hiddenDim: 64,
    embedDim: 32,
    lr: 1e-3,
    epochs: 10,
  });
  assert.equal(head.info!.views, "token-drop");
  assert.equal(head.info!.approximatedViews, false);
  const a = heldOutAuroc(head, test);
  console.log(`CRAFT (token views, small head): held-out AUROC ${a.toFixed(4)}`);
  assert.ok(a > 0.95, `AUROC ${a}`);
  // The pooled mean of an example's tokens is what embed() expects.
  assert.equal(head.score(fromRows([Array.from(mean(tokens[0]))])).length, 1);
});

Deno.test("fitCraft is deterministic per seed, and weights round-trip through fromWeights", () => {
  const train = clusters(5, 48, 8);
  const opts = { hiddenDim: 32, embedDim: 16, epochs: 2 };
  const a = fitCraft(train.x, train.y, { ...opts, seed: 3 });
  const b = fitCraft(train.x, train.y, { ...opts, seed: 3 });
  const c = fitCraft(train.x, train.y, { ...opts, seed: 4 });
  assert.deepEqual(a.weights(), b.weights());
  assert.notDeepEqual(a.weights()["fc1.w"].data, c.weights()["fc1.w"].data);
  const w = a.weights();
  assert.deepEqual(Object.keys(w).sort(), [
    "fc1.b",
    "fc1.w",
    "fc2.b",
    "fc2.w",
    "head.b",
    "head.w",
    "prototypes",
  ]);
  assert.deepEqual(w["fc1.w"].shape, [8, 32]);
  assert.deepEqual(w.prototypes.shape, [3, 16]);
  const back = CraftHead.fromWeights(w);
  assert.deepEqual(back.score(train.x), a.score(train.x));
  assert.deepEqual(back.cosines(train.x), a.cosines(train.x));
  const broken = { ...w, "fc2.b": { shape: [15], data: new Float32Array(15) } };
  assert.throws(() => CraftHead.fromWeights(broken), /'fc2.b' has shape \[15\], expected \[16\]/);
  assert.throws(() => fitCraft(train.x, train.y.slice(1)), /47 labels for 48 inputs/);
  assert.throws(
    () => fitCraft(train.x, train.y.map((l, i) => (i === 2 ? "harmful" : l)) as CraftClass[]),
    /label 2 is 'harmful'/,
  );
});

Deno.test("fitCraft with p_text adds the KL term and leaks nothing", () => {
  const train = clusters(6, 32, 8);
  const pSafe = Float32Array.from(train.y, (l) => (l === "safe" ? 0.9 : 0.1));
  const before = tf.memory().numTensors;
  const head = fitCraft(train.x, train.y, {
    seed: 1,
    hiddenDim: 16,
    embedDim: 8,
    epochs: 1,
    pText: pSafe,
  });
  assert.ok(head.history[0].kl > 0, "KL recorded");
  const none = fitCraft(train.x, train.y, { seed: 1, hiddenDim: 16, embedDim: 8, epochs: 1 });
  assert.equal(none.history[0].kl, 0);
  assert.equal(tf.memory().numTensors, before);
});
