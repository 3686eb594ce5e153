/**
 * Tests of lib/compass/steer.ts and lib/compass/audit.ts: activation addition shifts the
 * hidden state of its layer by exactly alpha * r and nothing upstream; directional
 * ablation leaves no component along r at any layer; interventions are scoped to one call;
 * steering changes greedy generations; the audit's per-token scores equal the compass
 * applied to the hidden states of an independent forward pass.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import type { Model } from "../lib/model/model.ts";
import type { Arch } from "../lib/model/config.ts";
import type { ForwardOptions } from "../lib/model/transformer.ts";
import { ablationInterventions, steeringVector, steerIntervention } from "../lib/compass/steer.ts";
import { auditGeneration, tokenTexts } from "../lib/compass/audit.ts";
import { fitProbe } from "../lib/compass/compass.ts";
import { fromRows, makeMatrix, normalize } from "../lib/compass/matrix.ts";
import { makeRng } from "../lib/data/rng.ts";
import { JUPYTER_DISPLAY } from "../lib/viz/display.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();

const IDS = [[3, 7, 1, 12, 5, 9], [2, 30, 31, 4, 8, 6]];

/**
 * Every layer's hidden states [B][T][d] (HF numbering: the last after the final norm), the
 * residual streams (embeddings, every block's output; the last before the final norm) and the
 * logits [B][T][V] of one forward pass.
 */
async function run(m: Model, opts: ForwardOptions = {}) {
  const f = m.forward(IDS, { ...opts, hiddenStates: "all", finalResidual: true });
  const hidden = await Promise.all(f.hiddenStates.map((h) => h.array()));
  const residuals = [...hidden.slice(0, -1), await f.finalResidual!.array()];
  const logits = await f.logits!.array();
  tf.dispose([f.logits!, ...f.hiddenStates, f.finalResidual!]);
  return { hidden, residuals, logits };
}

function randomDirection(seed: number, d: number): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: d }, () => rng.normal());
}

for (const arch of ["gpt2", "llama"] as Arch[]) {
  Deno.test(`${arch}: steering adds exactly alpha * r at its layer, nothing upstream, changes downstream`, async () => {
    const m = await tinyModel(arch);
    const r = randomDirection(1, m.config.dModel), alpha = 0.7;
    const base = await run(m);
    const steered = await run(m, { interventions: [steerIntervention(1, r, alpha)] });
    assert.equal(maxAbsDiff(steered.hidden[0], base.hidden[0]), 0, "layer 0 untouched");
    let worst = 0;
    base.hidden[1].forEach((rows, b) =>
      rows.forEach((h, t) => {
        const diff = steered.hidden[1][b][t].map((v, j) => v - h[j]);
        worst = Math.max(worst, maxAbsDiff(diff, Array.from(r, (v) => alpha * v)));
      })
    );
    console.log(
      `  ${arch} steered - base at layer 1 vs alpha*r: max |diff| = ${
        worst.toExponential(2)
      } (tol 1e-5)`,
    );
    assert.ok(worst < 1e-5);
    assert.ok(maxAbsDiff(steered.hidden[2], base.hidden[2]) > 1e-3, "downstream layer changed");
    assert.ok(maxAbsDiff(steered.logits, base.logits) > 1e-4, "logits changed");
    const again = await run(m);
    assert.equal(maxAbsDiff(again.logits, base.logits), 0, "nothing is left on the model");
    m.dispose();
  });

  Deno.test(`${arch}: directional ablation leaves no component along r in any residual stream`, async () => {
    const m = await tinyModel(arch, 2);
    // A direction the states actually use: the mean final residual (pre-norm) plus noise.
    const base = await run(m);
    const d = m.config.dModel;
    const mean = Array.from(
      { length: d },
      (_, j) => base.residuals[2][0].reduce((s, h) => s + h[j], 0),
    );
    const r = Float32Array.from(mean, (v, j) => v + 0.1 * randomDirection(3, d)[j]);
    const u = normalize(r);
    const proj = (h: number[]) => h.reduce((s, v, j) => s + v * u[j], 0);
    const before = Math.max(
      ...base.residuals.flatMap((l) => l.flat().map((h) => Math.abs(proj(h)))),
    );
    const ivs = ablationInterventions(r, m.config.nLayer);
    assert.deepEqual(ivs.map((iv) => iv.layer), [0, 1, 2]);
    assert.deepEqual(ivs.map((iv) => iv.beforeFinalNorm), [false, false, true]);
    const abl = await run(m, { interventions: ivs });
    let worst = 0;
    for (const layer of abl.residuals) {
      for (const h of layer.flat()) worst = Math.max(worst, Math.abs(proj(h)));
    }
    console.log(
      `  ${arch} max |h . r_hat|: ${before.toExponential(2)} before, ${
        worst.toExponential(2)
      } after (tol 1e-5)`,
    );
    assert.ok(before > 1e-2, "the direction carried signal before ablation");
    assert.ok(worst < 1e-5);
    // Layer 0 is the embedding, identical in both runs: ablated = h - (h . u) u, computed here.
    const want = base.hidden[0].map((rows) => rows.map((h) => h.map((v, j) => v - proj(h) * u[j])));
    assert.ok(maxAbsDiff(abl.hidden[0], want) < 1e-6);
    assert.ok(maxAbsDiff(abl.logits, base.logits) > 1e-5, "ablation changes the output");
    m.dispose();
  });
}

Deno.test("steering changes greedy generations and leaks nothing", async () => {
  const m = await tinyModel("gpt2", 4);
  const wte = await m.params.get("wte.weight")!.array() as number[][];
  const opts = { inputIds: [[1, 2, 3], [5, 6]], maxNewTokens: 8, stopAtEos: false };
  const plain = await m.generate(opts);
  const before = tf.memory().numTensors;
  const r = Float32Array.from(wte[17]);
  const steered = await m.generate({ ...opts, interventions: [steerIntervention(2, r, 400)] });
  const ablated = await m.generate({ ...opts, interventions: ablationInterventions(r, 2) });
  assert.equal(tf.memory().numTensors, before, "generate with interventions leaked tensors");
  const again = await m.generate(opts);
  assert.deepEqual(
    again.tokenIds,
    plain.tokenIds,
    "plain generation is deterministic and unaffected",
  );
  console.log(
    `  plain ${JSON.stringify(plain.tokenIds)}\n  steered ${JSON.stringify(steered.tokenIds)}`,
  );
  assert.notDeepEqual(steered.tokenIds, plain.tokenIds);
  // Pushed hard along token 17's (tied) embedding, the greedy choice becomes token 17.
  assert.ok(steered.tokenIds.flat().filter((t) => t === 17).length >= 12, "steered towards 17");
  assert.equal(ablated.tokenIds[0].length, 8);
  m.dispose();
});

Deno.test("steeringVector: diffmean gives the unnormalised mean difference; errors are clear", () => {
  const x = fromRows([[2, 0], [4, 0], [0, 1], [0, 3]]);
  const c = fitProbe(x, ["safe", "safe", "unsafe", "unsafe"], { method: "diffmean", layer: 1 });
  assert.deepEqual(Array.from(steeringVector(c)), [3, -2]);
  assert.throws(() => steerIntervention(0, [1, NaN], 1), /entry 1 is NaN/);
  assert.throws(() => ablationInterventions([0, 0], 2), /norm 0/);
  const iv = steerIntervention(0, [1, 2, 3], 1);
  assert.throws(
    () => tf.tidy(() => iv.fn(tf.zeros([1, 2, 16]) as tf.Tensor3D)),
    /3 entries but the hidden states are 16 wide/,
  );
});

Deno.test("auditGeneration scores every new token's hidden state like an independent forward pass", async () => {
  const m = await tinyModel("llama", 6);
  const rng = makeRng(9);
  const x = makeMatrix(40, 16, Float32Array.from({ length: 640 }, () => rng.normal()));
  const labels = Array.from(
    { length: 40 },
    (_, i) => (i % 2 ? "safe" : "unsafe") as "safe" | "unsafe",
  );
  const compass = fitProbe(x, labels, { method: "logistic", layer: 1 });
  const before = tf.memory().numTensors;
  const a = await auditGeneration(m, compass, { prompt: "4 5 6", maxNewTokens: 6 });
  assert.equal(tf.memory().numTensors, before, "audit leaked tensors");
  assert.equal(a.layer, 1);
  assert.equal(a.tokens.length, a.tokenIds.length);
  assert.equal(a.scores.length, a.tokenIds.length);
  assert.ok(a.tokenIds.length >= 1 && a.scores.every((s) => s > 0 && s < 1));
  // Reference: the layer-1 states at the new tokens' positions of prompt + generation.
  const seq = [4, 5, 6, ...a.tokenIds];
  const f = m.forward([seq], { hiddenStates: [1], logits: "none" });
  const h = (await f.hiddenStates[1].array())[0].slice(3);
  tf.dispose(f.hiddenStates.filter(Boolean));
  const want = compass.score(fromRows(h));
  const diff = maxAbsDiff(a.scores, Array.from(want));
  console.log(
    `  audit scores vs forward reference: max |diff| = ${diff.toExponential(2)} (tol 1e-5)`,
  );
  assert.ok(diff < 1e-5);
  assert.equal(tokenTexts(m, [4, 5, 6]).join(""), "4 5 6");
  const html = a.html();
  assert.ok(html.includes("sc-audit") && html.includes("layer 1"));
  assert.equal(a[JUPYTER_DISPLAY]()["text/html"], html);
  m.dispose();
});
