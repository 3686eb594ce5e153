/**
 * The interpretability primitives (lib/interp) on tiny random GPT-2, Llama, Gemma 2 and
 * Phi-3 models, against independent computations: the logit lens's last layer IS the
 * model's logits (bit for bit) and its first layer equals a hand-written LayerNorm + head;
 * direct logit attribution adds up to the (pre-soft-cap) metric and per-head terms to their
 * block's; patching position j of the embeddings when a pair differs only there restores the
 * clean metric (normalised effect 1) and patching elsewhere does nothing; a head patch equals
 * the same patch written by hand; attribution patching matches real patching as fraction -> 0.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  TINY_GEMMA2_CONFIG,
  TINY_RAW_CONFIG,
  tinyModel,
  tinyModelFromConfig,
  useTestBackend,
} from "./_helpers.ts";
import type { Model } from "../lib/model/model.ts";
import { lensLogits, logitLens } from "../lib/interp/logit_lens.ts";
import { directLogitAttribution, residualDirection } from "../lib/interp/dla.ts";
import { activationPatching } from "../lib/interp/patching.ts";
import { attributionPatching, patchingAgreement } from "../lib/interp/attribution.ts";
import { metricOf, metricWeights } from "../lib/interp/metric.ts";
import { plotDla, plotDlaHeads, plotLogitLens, plotPatching } from "../lib/interp/plots.ts";
import { plotPatchingHeatmap } from "../lib/viz/plots/patching_heatmap.ts";
import { plotBandLine } from "../lib/viz/plots/band_line.ts";

await useTestBackend();

async function scaled(arch: "gpt2" | "llama", seed: number, scale: number): Promise<Model> {
  const m = await tinyModel(arch, seed);
  for (const [, v] of m.params) if (v.shape.length === 2) v.assign(tf.mul(v, scale));
  return m;
}

async function models(): Promise<Model[]> {
  return [
    await scaled("gpt2", 3, 10),
    await scaled("llama", 4, 10),
    tinyModelFromConfig(
      TINY_GEMMA2_CONFIG,
      5,
      10,
    ),
    tinyModelFromConfig(
      { ...TINY_RAW_CONFIG, model_type: "phi3", partial_rotary_factor: 0.5 },
      6,
      10,
    ),
  ];
}

const METRIC = { plus: [7], minus: [11, 12] };
const PROMPTS = [[3, 1, 4, 1, 5, 9], [2, 6, 5, 3], [8, 9, 7, 9, 3, 2, 3]];

Deno.test("logit lens: the last layer is the model's logits bit for bit; layer 0 is LN + head by hand", async () => {
  for (const m of await models()) {
    const c = m.config;
    const before = tf.memory().numTensors;
    const ids = [PROMPTS[0]];
    const lens = lensLogits(m, ids);
    const f = m.forward(ids, { logits: "all" });
    assert.equal(lens.length, c.nLayer + 1);
    const a = lens[c.nLayer].dataSync(), b = f.logits!.dataSync();
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) {
        assert.fail(`${m.source}: lens[last] differs from logits at ${i}: ${a[i]} vs ${b[i]}`);
      }
    }
    if (c.arch === "gpt2") {
      // Layer 0 by hand: (tok + pos) -> LayerNorm -> wte^T, in float64.
      const wte = m.params.get("wte.weight")!.arraySync() as number[][];
      const wpe = m.params.get("wpe.weight")!.arraySync() as number[][];
      const g = m.params.get("ln_f.weight")!.arraySync() as number[];
      const beta = m.params.get("ln_f.bias")!.arraySync() as number[];
      const l0 = lens[0].arraySync()[0];
      let worst = 0;
      ids[0].forEach((tok, t) => {
        const x = wte[tok].map((v, j) => v + wpe[t][j]);
        const mu = x.reduce((s, v) => s + v, 0) / x.length;
        const sd = Math.sqrt(x.reduce((s, v) => s + (v - mu) ** 2, 0) / x.length + c.normEps);
        const y = x.map((v, j) => ((v - mu) / sd) * g[j] + beta[j]);
        wte.forEach((row, v) => {
          const logit = row.reduce((s, w, j) => s + w * y[j], 0);
          worst = Math.max(worst, Math.abs(logit - l0[t][v]));
        });
      });
      assert.ok(worst < 1e-3, `GPT-2 lens at the embeddings vs by hand: ${worst}`);
    }
    tf.dispose([...lens, f.logits!]);
    assert.equal(tf.memory().numTensors, before, `${m.source}: lensLogits leaks nothing`);
    const r = logitLens(m, PROMPTS, { metric: METRIC, reps: 200 });
    assert.deepEqual(r.values.map((v) => v[c.nLayer]), r.output, "last column = the output metric");
    assert.equal(r.summary.length, c.nLayer + 1);
    for (const s of r.summary) assert.ok(s.lo <= s.value && s.value <= s.hi);
    assert.equal(plotLogitLens(r).data.length, 2);
    m.dispose();
  }
});

Deno.test("DLA: components add up to the pre-soft-cap metric; heads + bias add up to their block", async () => {
  for (const m of await models()) {
    const c = m.config;
    const before = tf.memory().numTensors;
    const r = directLogitAttribution(m, PROMPTS, { metric: METRIC, reps: 200 });
    assert.equal(tf.memory().numTensors, before, `${m.source}: DLA leaks nothing`);
    assert.equal(r.components.length, 1 + 2 * c.nLayer + (c.arch === "gpt2" ? 1 : 0));
    r.total.forEach((tot, k) => {
      const scale = Math.max(1, Math.abs(r.preCapMetric[k]));
      assert.ok(
        Math.abs(tot - r.preCapMetric[k]) < 1e-4 * scale,
        `${m.source} prompt ${k}: sum of DLA ${tot} vs metric ${r.preCapMetric[k]}`,
      );
    });
    // Without a soft-cap the pre-cap metric is the model's own.
    if (c.finalSoftcap === undefined) {
      PROMPTS.forEach((ids, k) => {
        const f = m.forward([ids], { logits: "last" });
        const own = metricOf(f.logits!.dataSync(), METRIC);
        f.logits!.dispose();
        assert.ok(Math.abs(own - r.preCapMetric[k]) < 1e-4 * Math.max(1, Math.abs(own)));
      });
    }
    if (c.sandwichNorms) {
      assert.equal(r.heads, undefined, "Gemma: no per-head terms by default");
      assert.throws(
        () => directLogitAttribution(m, PROMPTS, { metric: METRIC, perHead: true }),
        /per-head attribution is not linear for gemma2/,
      );
    } else {
      r.heads!.forEach((blocks, k) =>
        blocks.forEach((hs, i) => {
          const sum = hs.reduce((a, b) => a + b, 0) + r.headBias![k][i];
          const attn = r.values[k][1 + 2 * i];
          assert.ok(
            Math.abs(sum - attn) < 1e-4 * Math.max(1, Math.abs(attn)),
            `${m.source} prompt ${k} block ${i}: heads + bias ${sum} vs attention ${attn}`,
          );
        })
      );
      assert.equal(plotDlaHeads(r).data[0].type, "heatmap");
    }
    assert.equal(plotDla(r).data.length, 2);
    m.dispose();
  }
});

Deno.test("DLA: the residual direction is W_U^T w (tied GPT-2 head by hand)", async () => {
  const m = await scaled("gpt2", 8, 5);
  const u = residualDirection(m, METRIC);
  const wte = m.params.get("wte.weight")!.arraySync() as number[][];
  const w = metricWeights(METRIC, 40);
  u.forEach((v, j) => {
    const want = wte.reduce((s, row, t) => s + w[t] * row[j], 0);
    assert.ok(Math.abs(v - want) < 1e-5, `u[${j}] = ${v}, by hand ${want}`);
  });
  m.dispose();
});

/** Pairs differing only at one position j (token swapped). */
const PAIRS = [
  { clean: [3, 1, 4, 1, 5, 9], corrupted: [3, 1, 20, 1, 5, 9] },
  { clean: [2, 6, 5, 3, 5, 8], corrupted: [2, 6, 30, 3, 5, 8] },
  { clean: [9, 9, 8, 7, 1, 2], corrupted: [9, 9, 33, 7, 1, 2] },
];

Deno.test("activation patching: the embedding at the swapped position restores the clean metric; elsewhere nothing", async () => {
  const m = await scaled("gpt2", 3, 10);
  const before = tf.memory().numTensors;
  const r = activationPatching(m, PAIRS, { metric: METRIC, reps: 200 });
  assert.equal(tf.memory().numTensors, before, "patching leaks nothing");
  assert.deepEqual(r.rows, ["L0", "L1"]);
  assert.equal(r.columns.length, 6);
  r.effects.forEach((e, k) => {
    const gap = r.clean[k] - r.corrupted[k];
    assert.ok(Math.abs(gap) > 1e-3, "the pairs differ in the metric");
    // resid_pre of block 0 at position j is the token embedding + position: the clean token.
    assert.ok(
      Math.abs(e[0][2] - gap) < 1e-4 * Math.max(1, Math.abs(gap)),
      `pair ${k}: ${e[0][2]} vs ${gap}`,
    );
    for (const j of [0, 1, 3, 4, 5]) assert.ok(Math.abs(e[0][j]) < 1e-5, `pair ${k} pos ${j}`);
    // Before position 2, no layer sees the difference (causal attention).
    for (let l = 0; l < 2; l++) for (const j of [0, 1]) assert.ok(Math.abs(e[l][j]) < 1e-5);
  });
  assert.ok(Math.abs(r.summary[0][2].value - 1) < 1e-4, "normalised effect 1");
  assert.equal(plotPatching(r).data[0].type, "heatmap");
  assert.throws(
    () => activationPatching(m, [{ clean: [1, 2, 3], corrupted: [1, 2] }], { metric: METRIC }),
    /pair 0: clean has 3 tokens, corrupted 2/,
  );
  m.dispose();
});

Deno.test("activation patching per head equals the same z patch written by hand", async () => {
  const m = await scaled("llama", 4, 10);
  const r = activationPatching(m, PAIRS.slice(0, 1), { metric: METRIC, target: "heads", reps: 50 });
  assert.deepEqual(r.columns, ["H0", "H1", "H2", "H3"]);
  const { clean, corrupted } = PAIRS[0];
  using cache = m.runWithCache(clean, { names: ["blocks.1.attn.hook_z"] });
  const zc = cache.get("blocks.1.attn.hook_z").arraySync() as number[][][][];
  for (const h of [0, 3]) {
    const f = m.runWithHooks([corrupted], {
      logits: "last",
      hooks: {
        "blocks.1.attn.hook_z": (x) => {
          const z = (x.arraySync() as number[][][][]).map((b, bi) =>
            b.map((t, ti) => t.map((head, hi) => (hi === h ? zc[bi][ti][hi] : head)))
          );
          return tf.tensor4d(z);
        },
      },
    });
    const got = metricOf(f.logits!.dataSync(), METRIC) - r.corrupted[0];
    f.logits!.dispose();
    assert.ok(
      Math.abs(got - r.effects[0][1][h]) < 1e-4,
      `head ${h}: ${got} vs ${r.effects[0][1][h]}`,
    );
  }
  m.dispose();
});

Deno.test("attribution patching: the first-order term of real patching (fraction -> 0), and its agreement at fraction = 1", async () => {
  for (const m of [await scaled("gpt2", 3, 10), await scaled("llama", 4, 10)]) {
    for (const target of ["resid_pre", "attn_out", "heads"] as const) {
      const before = tf.memory().numTensors;
      const small = { metric: METRIC, target, fraction: 1e-2, reps: 50 };
      const approx = attributionPatching(m, PAIRS, small);
      const real = activationPatching(m, PAIRS, small);
      assert.equal(tf.memory().numTensors, before, `${m.source} ${target}: no leaks`);
      approx.clean.forEach((v, k) => assert.ok(Math.abs(v - real.clean[k]) < 1e-4));
      approx.corrupted.forEach((v, k) => assert.ok(Math.abs(v - real.corrupted[k]) < 1e-4));
      const small_ = patchingAgreement(approx, real);
      const full = patchingAgreement(
        attributionPatching(m, PAIRS, { ...small, fraction: 1 }),
        activationPatching(m, PAIRS, { ...small, fraction: 1 }),
      );
      console.log(
        `${m.source} ${target}: Pearson r attribution vs patching, fraction 0.01: ` +
          `${small_.cellR.toFixed(4)} (cells), fraction 1: ${full.cellR.toFixed(4)}`,
      );
      assert.ok(small_.cellR > 0.99, `${m.source} ${target}: r = ${small_.cellR} at fraction 0.01`);
    }
    m.dispose();
  }
});

Deno.test("plot builders: patching heatmap centred at 0 with intervals on hover; band line with its band", () => {
  const fig = plotPatchingHeatmap([[0.5, -0.0001], [-2, 1]], ["L0", "L1"], ["a", "a"], {
    lo: [[0.4, -0.1], [-2.5, 0.9]],
    hi: [[0.6, 0.1], [-1.5, 1.1]],
  });
  const tr = fig.data[0] as Record<string, unknown>;
  assert.equal(tr.zmin, -2);
  assert.equal(tr.zmax, 2);
  assert.equal(tr.zmid, 0);
  assert.deepEqual(tr.x, [0, 1], "repeated column labels stay separate columns");
  assert.equal((tr.text as string[][])[1][0], "L1, a: -2.000 [-2.500, -1.500]");
  const notes = (fig.layout.annotations as { text: string }[]).map((a) => a.text);
  assert.deepEqual(notes, ["0.50", "0.00", "-2.00", "1.00"], "tiny negatives print as 0.00");
  assert.throws(
    () => plotPatchingHeatmap([[1, 2]], ["L0"], ["a"]),
    /1x2 but got 1 row labels and 1 column/,
  );
  assert.throws(
    () => plotPatchingHeatmap([[1]], ["L0"], ["a"], { lo: [[1, 2]] }),
    /opts\.lo must have the matrix's shape/,
  );
  const band = plotBandLine([
    { x: "b", value: 2, lo: 1, hi: 3 },
    { x: "a", value: 1, lo: 0, hi: 2 },
    { x: "a", value: 5, series: "other" },
  ]);
  assert.equal(band.data.length, 3, "one band (only the first series has intervals) and two lines");
  const poly = band.data[0] as Record<string, unknown>;
  assert.deepEqual(poly.x, ["b", "a", "a", "b"]);
  assert.deepEqual(poly.y, [3, 2, 0, 1], "upper edge forward, lower edge back");
  assert.deepEqual((band.layout.xaxis as Record<string, unknown>).categoryarray, ["b", "a"]);
});
