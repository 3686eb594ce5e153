/**
 * Tests of lib/compass/monitor.ts. The compass is a stub reading layer 0 (the embedding
 * output wte[tok] + wpe[pos]) with p_safe = sigmoid(h[0]); the tiny model's weights are set
 * so that h[0] = wte[tok][0] (wpe[:, 0] = 0), i.e. each token carries a planted score.
 * Forcing token sequences plants score sequences (crossing points derived by hand for
 * several windows and thresholds); a "trigger" token given a low score plants a crossing in
 * a free generation, for stop and steer: tokens up to the crossing stay as they were, stop
 * writes exactly the refusal, steer changes later tokens, and other rows of the batch are
 * untouched. The audit HTML is standalone and escaped; the JSON round-trips.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { firstCoordinateCompass, tinyModel, useTestBackend } from "./_helpers.ts";
import type { Model } from "../lib/model/model.ts";
import type { Compass } from "../lib/compass/compass.ts";
import type { Matrix } from "../lib/compass/matrix.ts";
import { auditHtml } from "../lib/viz/audit_page.ts";
import {
  generateMonitored,
  type MonitorAction,
  type MonitoredGenerateOptions,
  runningMean,
  saveAudit,
} from "../lib/compass/monitor.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();

const V = 40, D = 16, EOS = V - 1;
const logit = (p: number) => Math.log(p / (1 - p));

/** p_safe = sigmoid(h[0]) at layer 0; steering direction e1 (orthogonal to the score). */
function stubCompass(d = D): Compass {
  const direction = new Float32Array(d);
  direction[1] = 1;
  return firstCoordinateCompass(d, direction);
}

/** Sets wte[:, 0] to logit(score of each token) and wpe[:, 0] to 0. */
function plantScores(m: Model, score: (tok: number) => number): void {
  const wte = m.params.get("wte.weight")!, wpe = m.params.get("wpe.weight")!;
  const e = wte.arraySync() as number[][], p = wpe.arraySync() as number[][];
  e.forEach((row, tok) => (row[0] = logit(score(tok))));
  p.forEach((row) => (row[0] = 0));
  wte.assign(tf.tensor2d(e));
  wpe.assign(tf.tensor2d(p));
}

const PLANTED: Record<number, number> = {
  5: 0.9,
  6: 0.8,
  7: 0.6,
  8: 0.35,
  9: 0.75,
  10: 0.32,
  11: 0.1,
};
const SEQS = [
  [5, 6, 7, 8, 9, 10, 11, 11], // 0.9 0.8 0.6 0.35 0.75 0.32 0.1 0.1
  [5, 5, 5, 5, 5, 5, 5, 5], // never below 0.9
  [11, 5, 5, 5, 5, 5, 5, 5], // 0.1 first
  [9, 8, 9, 8, 9, 8, 9, 8], // 0.75 0.35 alternating
];
const PROMPTS = [[3, 7, 1, 12], [2, 30, 31, 4, 8, 6], [14, 15], [20, 21, 22]];

Deno.test("runningMean: mean of the last `window` scores (fewer at the start)", () => {
  assert.equal(runningMean([0.9], 3), 0.9);
  assert.equal(runningMean([0.9, 0.3], 3), 0.6);
  assert.ok(Math.abs(runningMean([0.9, 0.3, 0.6, 0.0], 3) - 0.3) < 1e-12);
  assert.equal(runningMean([0.2, 0.4], 1), 0.4);
});

Deno.test("flag: crossing points on planted score sequences match hand-derived ones", async () => {
  const m = await tinyModel("gpt2", 2, V);
  plantScores(m, (t) => PLANTED[t] ?? 0.95);
  const cases: { window: number; threshold: number; want: (number | null)[] }[] = [
    { window: 1, threshold: 0.5, want: [3, null, 0, 1] },
    { window: 2, threshold: 0.5, want: [3, null, 0, null] }, // row 3: 0.75, 0.55, 0.55, ...
    { window: 3, threshold: 0.5, want: [5, null, 0, 3] }, // row 0: .9 .85 .767 .583 .567 .473
    { window: 1, threshold: 0.3, want: [6, null, 0, null] }, // 0.32 is not below 0.3
  ];
  for (const c of cases) {
    const run = await generateMonitored(m, {
      inputIds: PROMPTS,
      maxNewTokens: 8,
      stopAtEos: false,
      force: SEQS.map((s) => [{ step: 0, tokens: s }]),
      monitor: { compass: stubCompass(), action: "flag", window: c.window, threshold: c.threshold },
    });
    assert.deepEqual(run.trails.map((t) => t.crossing), c.want, JSON.stringify(c));
    assert.deepEqual(run.trails.map((t) => t.actionStep), [null, null, null, null]);
    run.trails.forEach((t, i) => {
      assert.deepEqual(t.tokenIds, SEQS[i]);
      t.scores.forEach((s, k) => assert.ok(Math.abs(s - (PLANTED[SEQS[i][k]] ?? 0.95)) < 1e-6));
    });
  }
  const w3 = await generateMonitored(m, {
    inputIds: [PROMPTS[0]],
    maxNewTokens: 8,
    force: [[{ step: 0, tokens: SEQS[0] }]],
    monitor: { compass: stubCompass(), action: "flag", window: 3 },
  });
  const want = [0.9, 0.85, 2.3 / 3, 1.75 / 3, 1.7 / 3, 1.42 / 3, 1.17 / 3, 0.52 / 3];
  w3.trails[0].running.forEach((r, k) => assert.ok(Math.abs(r - want[k]) < 1e-6, `running[${k}]`));
});

/** Sets wpe[:, 0] to 0, so layer 0's h[0] is wte[tok][0]: a value of the token alone. */
function zeroPositionsAt0(m: Model): number[] {
  const wpe = m.params.get("wpe.weight")!;
  const p = wpe.arraySync() as number[][];
  p.forEach((row) => (row[0] = 0));
  wpe.assign(tf.tensor2d(p));
  return (m.params.get("wte.weight")!.arraySync() as number[][]).map((row) => row[0]);
}

/**
 * A model and a stub compass scoring every token 0.95 except one trigger token (0.05),
 * which row 1 samples at step k >= 2 and rows 0, 2 never do. The weights are not touched
 * after the baseline (the head is tied to wte), so tokens are those of the baseline.
 */
async function triggerSetup() {
  const m = await tinyModel("gpt2", 3, V);
  const h0 = zeroPositionsAt0(m);
  const opts = {
    inputIds: PROMPTS.slice(0, 3),
    maxNewTokens: 12,
    stopAtEos: false,
    temperature: 1,
    seed: 3,
  };
  const base = await m.generate(opts);
  const others = new Set([...base.tokenIds[0], ...base.tokenIds[2]]);
  const g = base.tokenIds[1];
  const k = g.findIndex((t, i) =>
    i >= 2 && i <= 8 && t !== EOS && !others.has(t) && !g.slice(0, i).includes(t) &&
    h0.every((v, j) => j === t || Math.abs(v - h0[t]) > 1e-4)
  );
  assert.ok(k >= 2, `no usable trigger in ${g}`);
  const trigger = h0[g[k]];
  const compass = stubCompass();
  compass.score = (h: Matrix) =>
    Float32Array.from(
      { length: h.rows },
      (_, i) => Math.abs(h.data[i * h.cols] - trigger) < 1e-5 ? 0.05 : 0.95,
    );
  return { m, opts, k, compass };
}

async function monitored(
  m: Model,
  compass: Compass,
  base: Omit<MonitoredGenerateOptions, "monitor">,
  action: MonitorAction,
) {
  return await generateMonitored(m, {
    ...base,
    monitor: { compass, action, refusal: "7 8 9", strength: 30 },
  });
}

Deno.test("flag equals model.generate token for token (same seeds), and crosses at the planted trigger", async () => {
  const { m, opts, k, compass } = await triggerSetup();
  const plain = await m.generate(opts);
  const flag = await monitored(m, compass, opts, "flag");
  assert.deepEqual(flag.tokenIds, plain.tokenIds);
  assert.deepEqual(flag.logprobs, plain.logprobs);
  assert.deepEqual(flag.trails.map((t) => t.crossing), [null, k, null]);
});

Deno.test("stop: tokens up to the crossing unchanged, then exactly the refusal and eos; other rows untouched", async () => {
  const { m, opts, k, compass } = await triggerSetup();
  const flag = await monitored(m, compass, opts, "flag");
  const stop = await monitored(m, compass, opts, "stop");
  const t = stop.trails[1];
  assert.equal(t.crossing, k);
  assert.equal(t.actionStep, k + 1);
  assert.deepEqual(t.tokenIds, [...flag.tokenIds[1].slice(0, k + 1), 7, 8, 9, EOS]);
  assert.deepEqual(t.forced, [...new Array(k + 1).fill(false), true, true, true, true]);
  assert.equal(t.scores.length, t.tokenIds.length);
  assert.deepEqual(stop.tokenIds[0], flag.tokenIds[0]);
  assert.deepEqual(stop.tokenIds[2], flag.tokenIds[2]);
  assert.deepEqual(stop.trails[0].actionStep, null);
});

Deno.test("steer: tokens up to the crossing unchanged, later ones change; other rows bit-identical", async () => {
  const { m, opts, k, compass } = await triggerSetup();
  const flag = await monitored(m, compass, opts, "flag");
  const before = tf.memory().numTensors;
  const steer = await monitored(m, compass, opts, "steer");
  assert.equal(tf.memory().numTensors, before, "no tensor leaked across a steered generation");
  const t = steer.trails[1];
  assert.equal(t.crossing, k);
  assert.equal(t.actionStep, k + 1);
  assert.deepEqual(t.tokenIds.slice(0, k + 1), flag.tokenIds[1].slice(0, k + 1));
  assert.deepEqual(t.scores.slice(0, k + 1), flag.trails[1].scores.slice(0, k + 1));
  assert.deepEqual(steer.logprobs[1].slice(0, k + 1), flag.logprobs[1].slice(0, k + 1));
  // The step that revealed the crossing is redone with the steer on: token k + 1 already
  // comes from steered logits (a different token, or the same one at another log-prob).
  assert.ok(
    t.tokenIds[k + 1] !== flag.tokenIds[1][k + 1] ||
      steer.logprobs[1][k + 1] !== flag.logprobs[1][k + 1],
    "token k + 1 is drawn from steered logits",
  );
  assert.ok(
    t.tokenIds.slice(k + 1).some((tok, j) => tok !== flag.tokenIds[1][k + 1 + j]),
    "a strength-30 steer changes some later token",
  );
  for (const i of [0, 2]) {
    assert.deepEqual(steer.tokenIds[i], flag.tokenIds[i]);
    assert.deepEqual(steer.logprobs[i], flag.logprobs[i]);
    assert.deepEqual(steer.trails[i].scores, flag.trails[i].scores);
  }
});

Deno.test("rows are independent of batching: batch size 1 gives each row's batched tokens", async () => {
  const { m, opts, compass } = await triggerSetup();
  for (const action of ["stop", "steer"] as const) {
    const together = await monitored(m, compass, opts, action);
    const apart = await monitored(m, compass, { ...opts, batchSize: 1 }, action);
    assert.deepEqual(apart.tokenIds, together.tokenIds, action);
    assert.deepEqual(apart.trails.map((t) => t.crossing), together.trails.map((t) => t.crossing));
  }
});

Deno.test("bad settings fail with clear errors", async () => {
  const m = await tinyModel("gpt2", 2, V);
  const base = { inputIds: [[1, 2]], maxNewTokens: 2 };
  await assert.rejects(
    () => generateMonitored(m, { ...base, monitor: { compass: stubCompass(8), action: "flag" } }),
    /d=8.*d_model is 16/,
  );
  await assert.rejects(
    () =>
      generateMonitored(m, {
        ...base,
        monitor: { compass: stubCompass(), action: "flag", window: 0 },
      }),
    /window 0/,
  );
  await assert.rejects(
    () =>
      generateMonitored(m, {
        ...base,
        monitor: { compass: stubCompass(), action: "steer", direction: [1, 2] },
      }),
    /2 entries/,
  );
});

Deno.test("audit export: standalone HTML with escaped text; JSON round-trips", async () => {
  const trail = {
    prompt: `<script>alert("x")</script> & co`,
    tokenIds: [1, 2, 3],
    tokens: ["<b>", " ok", " &"],
    scores: [0.9, 0.2, 0.8],
    running: [0.9, 0.2, 0.8],
    crossing: 1,
    action: "stop" as const,
    actionStep: 2,
    forced: [false, false, true],
    text: "<b> ok &",
    layer: 2,
    threshold: 0.5,
    window: 1,
  };
  const html = auditHtml({ trails: [trail] });
  assert.ok(html.startsWith("<!doctype html>"));
  assert.ok(
    !/<script|<link|<img|<iframe|src=|https?:\/\//i.test(html),
    "no scripts or external resources",
  );
  assert.ok(html.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"));
  assert.ok(html.includes("&lt;b&gt;"));
  assert.ok(
    html.includes(
      "crossing at token 1 (running p_safe 0.200 &lt; 0.5, window 1); action stop from token 2",
    ),
  );
  const dir = await Deno.makeTempDir();
  try {
    await saveAudit([trail], `${dir}/audit.json`);
    const back = JSON.parse(await Deno.readTextFile(`${dir}/audit.json`));
    assert.equal(back.format, "safety-compass.monitor-audit");
    assert.deepEqual(back.trails, [trail]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
