/**
 * Tests of steering in two calls (lib/compass/steer.ts `steeringVector(model, rows, { layer })`
 * and lib/model/generate.ts `steer`): the vector equals the difference of the class means of
 * independently computed hidden states; two-call steering and ablation give the same tokens
 * and log-probs as the five-call path (collect -> fitCompass -> steeringVector(compass) ->
 * steerIntervention / ablationInterventions -> generate({ interventions })); negative layers
 * equal their positive index everywhere; the deprecated forms still work; vectors round-trip
 * through JSON.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import type { Model } from "../lib/model/model.ts";
import {
  ablationInterventions,
  type ContrastPair,
  loadSteeringVector,
  SteeringVector,
  steeringVector,
  steerIntervention,
} from "../lib/compass/steer.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import { fitCompass } from "../lib/compass/fit.ts";
import { resolveLayer, steerInterventions } from "../lib/model/steering.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();

const PAIRS: ContrastPair[] = [
  { positive: "3 4 5 6", negative: "20 21 22" },
  { positive: "5 6 7", negative: "22 23 24 25" },
  { positive: "4 8 9 10", negative: "30 31" },
  { positive: "6 7", negative: "26 27 28" },
];
const PROMPTS = ["1 2 3", "9 8 7 6", "11 12"];
const GEN = { prompts: PROMPTS, maxNewTokens: 6, stopAtEos: false };

/** Mean over positions of hidden state `layer` of one prompt, from its own forward pass. */
async function meanState(m: Model, text: string, layer: number): Promise<number[]> {
  const ids = m.tokenizer.encode(text);
  const f = m.forward([ids], { hiddenStates: [layer], logits: "none" });
  const h = (await f.hiddenStates[layer].array() as number[][][])[0];
  tf.dispose(f.hiddenStates.filter(Boolean));
  return h[0].map((_, j) => h.reduce((s, row) => s + row[j], 0) / h.length);
}

/** mean(positive states) - mean(negative states), computed row by row. */
async function referenceMeanDiff(m: Model, layer: number): Promise<number[]> {
  const pos = await Promise.all(PAIRS.map((p) => meanState(m, p.positive, layer)));
  const neg = await Promise.all(PAIRS.map((p) => meanState(m, p.negative, layer)));
  const mean = (rows: number[][]) =>
    rows[0].map((_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);
  const a = mean(pos), b = mean(neg);
  return a.map((v, j) => v - b[j]);
}

const worstLogprob = (a: number[][], b: number[][]) => maxAbsDiff(a, b);

Deno.test("steeringVector(model, pairs): the unit direction and scale of mean(pos) - mean(neg)", async () => {
  const m = await tinyModel("gpt2", 7);
  const v = await steeringVector(m, PAIRS, { layer: 1 });
  const ref = await referenceMeanDiff(m, 1);
  const refNorm = Math.hypot(...ref);
  assert.equal(v.layer, 1);
  assert.equal(v.method, "diffmean");
  assert.ok(Math.abs(v.scale - refNorm) < 1e-4 * refNorm, `scale ${v.scale} vs |r| ${refNorm}`);
  assert.ok(maxAbsDiff(Array.from(v.vector), ref) < 1e-4, "scale * direction = r");
  assert.ok(Math.abs(Math.hypot(...v.direction) - 1) < 1e-6, "unit direction");
  assert.deepEqual(v.source, { model: m.source, positive: 4, negative: 4 });
});

Deno.test("two-call steering equals the five-call path (tokens and log-probs)", async () => {
  const m = await tinyModel("llama", 3);
  const strength = 4;
  // Five calls: collect -> fit -> vector -> intervention -> generate.
  const rows = PAIRS.flatMap((p) => [
    { prompt: p.positive, traceLabel: "safe" },
    { prompt: p.negative, traceLabel: "unsafe" },
  ]);
  const acts = await collectActivations(m, rows, { layers: [1], pooling: "mean" });
  const r = steeringVector(fitCompass(acts, { method: "diffmean", layer: 1 }));
  const five = await m.generate({ ...GEN, interventions: [steerIntervention(1, r, strength)] });
  // Two calls.
  const v = await steeringVector(m, PAIRS, { layer: 1 });
  const two = await m.generate({ ...GEN, steer: { vector: v, strength } });
  assert.deepEqual(two.tokenIds, five.tokenIds);
  const d = worstLogprob(two.logprobs, five.logprobs);
  console.log(`  two-call vs five-call steering: max |log-prob diff| = ${d.toExponential(2)}`);
  assert.ok(d < 1e-4, `log-prob diff ${d}`);
  // The same vector given as collect rows (traceLabel) instead of pairs.
  const fromRows = await steeringVector(m, rows, { layer: 1 });
  assert.ok(maxAbsDiff(Array.from(fromRows.vector), Array.from(v.vector)) < 1e-6);
  // Steering did something: the unsteered log-probs differ.
  const plain = await m.generate(GEN);
  assert.ok(worstLogprob(plain.logprobs, two.logprobs) > 1e-3, "strength 4 changes the model");
  // strength 0 is no steering at all.
  const zero = await m.generate({ ...GEN, steer: { vector: v, strength: 0 } });
  assert.ok(worstLogprob(plain.logprobs, zero.logprobs) < 1e-5);
});

Deno.test("steer: { vector, ablate: true } equals ablationInterventions(r, nLayer)", async () => {
  const m = await tinyModel("gpt2", 5);
  const v = await steeringVector(m, PAIRS, { layer: -1 });
  const a = await m.generate({ ...GEN, steer: { vector: v, ablate: true } });
  const b = await m.generate({
    ...GEN,
    interventions: ablationInterventions(v.vector, m.config.nLayer),
  });
  assert.deepEqual(a.tokenIds, b.tokenIds);
  assert.ok(worstLogprob(a.logprobs, b.logprobs) < 1e-5);
  assert.throws(
    () => steerInterventions({ vector: v, ablate: true, strength: 2 }, 2),
    /strength.*no meaning.*ablate/,
  );
});

Deno.test("negative layers equal their positive index; out of range is a clear error", async () => {
  const m = await tinyModel("gpt2", 9);
  const n = m.config.nLayer; // 2: hidden states 0..2
  assert.equal(resolveLayer(-1, n), 2);
  assert.equal(resolveLayer(-3, n), 0);
  const neg = await steeringVector(m, PAIRS, { layer: -2 });
  const pos = await steeringVector(m, PAIRS, { layer: 1 });
  assert.equal(neg.layer, 1);
  assert.deepEqual(Array.from(neg.direction), Array.from(pos.direction));
  assert.equal(neg.scale, pos.scale);
  // A plain { layer: -2 } vector in generate, and steerIntervention with nLayer.
  const raw = { layer: -2, direction: pos.direction, scale: pos.scale };
  const viaRaw = await m.generate({ ...GEN, steer: { vector: raw, strength: 3 } });
  const viaPos = await m.generate({ ...GEN, steer: { vector: pos, strength: 3 } });
  const viaIv = await m.generate({
    ...GEN,
    interventions: [steerIntervention(-2, pos.vector, 3, n)],
  });
  assert.deepEqual(viaRaw.logprobs, viaPos.logprobs);
  assert.deepEqual(viaIv.tokenIds, viaPos.tokenIds);
  assert.ok(worstLogprob(viaIv.logprobs, viaPos.logprobs) < 1e-5);
  await assert.rejects(() => steeringVector(m, PAIRS, { layer: 3 }), /hidden states 0\.\.2/);
  await assert.rejects(() => steeringVector(m, PAIRS, { layer: -4 }), /-3\.\.-1 from the end/);
  assert.throws(() => steerIntervention(-1, [1, 2], 1), /pass model\.config\.nLayer/);
  await assert.rejects(
    () => m.generate({ ...GEN, steer: { vector: { ...raw, layer: 5 }, strength: 1 } }),
    /Cannot steer at layer 5/,
  );
});

Deno.test("PCA and logistic vectors: scale is the class-mean gap along the unit direction", async () => {
  const m = await tinyModel("gpt2", 11);
  const ref = await referenceMeanDiff(m, 2);
  for (const method of ["pca", "logistic"] as const) {
    const v = await steeringVector(m, PAIRS, { layer: 2, method });
    const gap = ref.reduce((s, x, j) => s + x * v.direction[j], 0);
    assert.ok(Math.abs(v.scale - gap) < 1e-4, `${method}: scale ${v.scale} vs gap ${gap}`);
    assert.ok(v.scale > 0, `${method}: the positive class projects higher`);
  }
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => steeringVector(m, PAIRS, { layer: 2, method: "craft" as any }),
    /no single direction/,
  );
});

Deno.test("deprecated forms still work: steeringVector(compass) and steerIntervention", async () => {
  const m = await tinyModel("gpt2", 2);
  const rows = PAIRS.flatMap((p) => [
    { prompt: p.positive, traceLabel: "safe" },
    { prompt: p.negative, traceLabel: "unsafe" },
  ]);
  const acts = await collectActivations(m, rows, { layers: [1] });
  const compass = fitCompass(acts, { method: "diffmean", layer: 1 });
  const r = steeringVector(compass);
  assert.ok(r instanceof Float32Array);
  assert.deepEqual(Array.from(r), Array.from(compass.probe!.meanDiff!));
  const iv = steerIntervention(1, r, 2);
  assert.equal(iv.layer, 1);
});

Deno.test("SteeringVector: JSON round trip, save/load, clear errors", async () => {
  const v = new SteeringVector({
    layer: -1,
    nLayer: 4,
    direction: [3, 4],
    scale: 2.5,
    method: "pca",
    pooling: "last",
    source: { model: "x" },
  });
  assert.equal(v.layer, 4);
  assert.deepEqual(Array.from(v.direction), [Math.fround(0.6), Math.fround(0.8)]);
  assert.deepEqual(
    Array.from(v.vector),
    [Math.fround(0.6) * 2.5, Math.fround(0.8) * 2.5].map(Math.fround),
  );
  const back = SteeringVector.fromJSON(JSON.parse(JSON.stringify(v)));
  assert.deepEqual(back.toJSON(), v.toJSON());
  const dir = await Deno.makeTempDir();
  try {
    await v.save(`${dir}/v.json`);
    const loaded = await loadSteeringVector(`${dir}/v.json`);
    assert.deepEqual(Array.from(loaded.direction), Array.from(v.direction));
    assert.equal(loaded.scale, 2.5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(() => SteeringVector.fromJSON({ format: "other" }), /"format" must be/);
  assert.throws(
    () => new SteeringVector({ layer: 0, nLayer: 2, direction: [0, 0], scale: 1 }),
    /norm 0/,
  );
  assert.throws(
    () => new SteeringVector({ layer: 3, nLayer: 2, direction: [1], scale: 1 }),
    /hidden states 0\.\.2/,
  );
});
