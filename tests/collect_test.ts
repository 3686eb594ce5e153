/**
 * Tests of lib/compass/collect.ts and lib/compass/fit.ts: every pooling equals an
 * independent computation from single-row forward passes, batching does not change the
 * result, mean-response reads only trace tokens, truncation keeps the trace, save/load
 * round-trips, nothing leaks, and a compass fitted on a planted signal finds it.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import * as aq from "arquero";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import type { Model } from "../lib/model/model.ts";
import type { Arch } from "../lib/model/config.ts";
import { Activations } from "../lib/compass/activations.ts";
import { collectActivations, collectPairs } from "../lib/compass/collect.ts";
import { fitCompass, sweepLayers } from "../lib/compass/fit.ts";
import { auroc } from "../lib/compass/metrics.ts";
import { row } from "../lib/compass/matrix.ts";
import { makeRng } from "../lib/data/rng.ts";
import { JUPYTER_DISPLAY } from "../lib/viz/display.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();

/** Ragged rows: prompt lengths 2..6, trace lengths 1..5, ids in 1..38. */
function raggedRows(seed: number, n: number) {
  const rng = makeRng(seed);
  const ids = (k: number) => Array.from({ length: k }, () => 1 + rng.int(38)).join(" ");
  return Array.from({ length: n }, (_, i) => ({
    id: `r${i}`,
    prompt: ids(2 + (i % 5)),
    trace: ids(1 + ((i * 3) % 5)),
    traceLabel: i % 2 ? "safe" : "unsafe",
  }));
}

/** Hidden states [T, d] of one unpadded row at `layer`, from its own forward pass. */
async function statesAlone(m: Model, ids: number[], layer: number): Promise<number[][]> {
  const f = m.forward([ids], { hiddenStates: [layer], logits: "none" });
  const h = (await f.hiddenStates[layer].array())[0];
  tf.dispose(f.hiddenStates.filter(Boolean));
  return h;
}

const meanOf = (rows: number[][]) =>
  rows[0].map((_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);

for (const arch of ["gpt2", "llama"] as Arch[]) {
  Deno.test(`${arch}: every pooling equals the same reduction of a single-row forward`, async () => {
    const m = await tinyModel(arch);
    const rows = raggedRows(3, 7);
    const opts = { batchSize: 3, layers: "all" as const };
    const mean = await collectActivations(m, rows, { ...opts, pooling: "mean" });
    const last = await collectActivations(m, rows, { ...opts, pooling: "last" });
    const resp = await collectActivations(m, rows, { ...opts, pooling: "mean-response" });
    const none = await collectActivations(m, rows, { ...opts, pooling: "none" });
    assert.deepEqual(mean.layers, [0, 1, 2]);
    let worst = 0;
    for (const [i, r] of rows.entries()) {
      const p = r.prompt.split(" ").map(Number), t = r.trace.split(" ").map(Number);
      assert.equal(mean.responseStart[i], p.length);
      assert.equal(mean.tokenCounts[i], p.length + t.length);
      for (const l of mean.layers) {
        const h = await statesAlone(m, [...p, ...t], l);
        worst = Math.max(
          worst,
          maxAbsDiff(Array.from(row(mean.layer(l), i)), meanOf(h)),
          maxAbsDiff(Array.from(row(last.layer(l), i)), h[h.length - 1]),
          maxAbsDiff(Array.from(row(resp.layer(l), i)), meanOf(h.slice(p.length))),
          maxAbsDiff(Array.from(none.layerTokens(l)[i].data), h.flat()),
          maxAbsDiff(Array.from(row(none.layer(l), i)), meanOf(h)),
        );
      }
    }
    console.log(
      `  ${arch} pooled vs single-row reference: max |diff| = ${worst.toExponential(2)} (tol 1e-5)`,
    );
    assert.ok(worst < 1e-5, `max diff ${worst}`);
    m.dispose();
  });

  Deno.test(`${arch}: batched collection equals row-by-row collection`, async () => {
    const m = await tinyModel(arch, 2);
    const rows = raggedRows(4, 9);
    const one = await collectActivations(m, rows, { batchSize: 1, layers: [1, -1] });
    const many = await collectActivations(m, rows, { batchSize: 4, layers: [1, -1] });
    assert.deepEqual(many.layers, [1, 2]);
    const d = Math.max(
      ...many.layers.map((l) =>
        maxAbsDiff(Array.from(many.layer(l).data), Array.from(one.layer(l).data))
      ),
    );
    console.log(`  ${arch} batch 4 vs batch 1: max |diff| = ${d.toExponential(2)} (tol 1e-5)`);
    assert.ok(d < 1e-5);
    assert.deepEqual(many.meta, rows, "rows come back in input order with every column");
    m.dispose();
  });
}

Deno.test("mean-response at layer 0 of a llama is the mean of the trace embeddings alone", async () => {
  const m = await tinyModel("llama", 5);
  const emb = await m.params.get("model.embed_tokens.weight")!.array() as number[][];
  const rows = [
    { prompt: "1 2 3 4 5", trace: "7 8" },
    { prompt: "9", trace: "7 8" },
    { prompt: "20 21", trace: "30" },
  ];
  const acts = await collectActivations(m, rows, { pooling: "mean-response", layers: [0] });
  for (const [i, r] of rows.entries()) {
    const want = meanOf(r.trace.split(" ").map((t) => emb[Number(t)]));
    assert.ok(maxAbsDiff(Array.from(row(acts.layer(0), i)), want) < 1e-6, `row ${i}`);
  }
  // Rows 0 and 1 share the trace, so their layer-0 response means are identical.
  assert.deepEqual(row(acts.layer(0), 0), row(acts.layer(0), 1));
  m.dispose();
});

Deno.test("an arquero table works as input and maxLength cuts the prompt from the left", async () => {
  const m = await tinyModel("gpt2");
  const rows = [
    { prompt: "1 2 3 4 5", trace: "6 7", extra: 1 },
    { prompt: "1 2", trace: "9 10 11 12 13 14", extra: 2 },
  ];
  const acts = await collectActivations(m, aq.from(rows), { maxLength: 4, pooling: "none" });
  assert.deepEqual(acts.meta, rows);
  assert.deepEqual(acts.tokenCounts, [4, 4]);
  assert.deepEqual(acts.responseStart, [2, 0]);
  assert.deepEqual(acts.truncated, [3, 4]);
  const h0 = await statesAlone(m, [4, 5, 6, 7], 2), h1 = await statesAlone(m, [9, 10, 11, 12], 2);
  assert.ok(maxAbsDiff(Array.from(acts.layerTokens(2)[0].data), h0.flat()) < 1e-5);
  assert.ok(maxAbsDiff(Array.from(acts.layerTokens(2)[1].data), h1.flat()) < 1e-5);
  assert.equal(acts.table().numRows(), 2);
  assert.deepEqual(acts.table().array("extra"), [1, 2]);
  m.dispose();
});

Deno.test("collection leaks no tensors and reports progress and speed", async () => {
  const m = await tinyModel("llama");
  const rows = raggedRows(6, 10);
  await collectActivations(m, rows.slice(0, 2)); // warm-up: backend kernels, caches
  const before = tf.memory().numTensors;
  const seen: number[] = [];
  for (const pooling of ["mean", "last", "mean-response", "none"] as const) {
    const acts = await collectPairs(m, rows, {
      pooling,
      batchSize: 4,
      onProgress: (done) => seen.push(done),
    });
    assert.ok(acts.tokensPerSecond > 0 && Number.isFinite(acts.tokensPerSecond));
  }
  assert.equal(tf.memory().numTensors, before, "collectActivations leaked tensors");
  assert.deepEqual(seen.slice(0, 3), [4, 8, 10]);
  m.dispose();
});

Deno.test("bad input fails with errors naming the row and field", async () => {
  const m = await tinyModel("gpt2");
  await assert.rejects(
    collectActivations(m, [{ prompt: "1" }, { trace: "2" } as never]),
    /row 1 has no string field 'prompt'/,
  );
  await assert.rejects(
    collectActivations(m, [{ prompt: "1 2" }], { pooling: "mean-response" }),
    /Cannot pool row 0 with "mean-response": it has no trace tokens/,
  );
  await assert.rejects(
    collectActivations(m, [{ prompt: "1" }], { layers: [7] }),
    /layer 7 is outside 0..2/,
  );
  const acts = await collectActivations(m, [{ prompt: "1", trace: "2" }], { layers: [0] });
  assert.throws(() => acts.layer(1), /no layer 1: collected layers are 0/);
  assert.throws(() => acts.labels(), /row 0 has no 'traceLabel'/);
  m.dispose();
});

Deno.test("save/load round-trips every field bit for bit (pooled and per-token)", async () => {
  const m = await tinyModel("gpt2");
  const rows = raggedRows(7, 5);
  const dir = await Deno.makeTempDir();
  try {
    for (const pooling of ["mean", "none"] as const) {
      const acts = await collectActivations(m, rows, { pooling, layers: [0, 2] });
      await acts.save(`${dir}/acts`);
      const back = await Activations.load(`${dir}/acts`);
      assert.deepEqual(back.meta, acts.meta);
      assert.deepEqual(back.layers, [0, 2]);
      assert.equal(back.pooling, pooling);
      assert.deepEqual(back.tokenCounts, acts.tokenCounts);
      assert.deepEqual(back.responseStart, acts.responseStart);
      assert.equal(back.tokensPerSecond, acts.tokensPerSecond);
      for (const l of acts.layers) {
        assert.deepEqual(back.layer(l).data, acts.layer(l).data);
        if (pooling === "none") {
          assert.deepEqual(
            back.layerTokens(l).map((t) => Array.from(t.data)),
            acts.layerTokens(l).map((t) => Array.from(t.data)),
          );
        }
      }
      assert.deepEqual(back.labels(), rows.map((r) => r.traceLabel));
    }
    await Deno.writeTextFile(`${dir}/acts/meta.json`, `{"format": "other"}`);
    await assert.rejects(Activations.load(`${dir}/acts`), /field 'format' is other/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  m.dispose();
});

/** Rows whose trace carries token 30 (safe) or 31 (unsafe) three times among noise tokens. */
function plantedRows(seed: number, n: number) {
  const rng = makeRng(seed);
  const noise = (k: number) => Array.from({ length: k }, () => 1 + rng.int(20));
  return Array.from({ length: n }, (_, i) => {
    const safe = i % 2 === 0, mark = safe ? 30 : 31;
    const trace = rng.shuffle([...noise(5), mark, mark, mark]);
    return {
      prompt: noise(4).join(" "),
      trace: trace.join(" "),
      traceLabel: safe ? "safe" : "unsafe",
    };
  });
}

Deno.test("a diffmean compass finds a planted layer-0 signal on held-out rows (AUROC ~1)", async () => {
  const m = await tinyModel("gpt2", 3);
  const train = await collectActivations(m, plantedRows(1, 40), { layers: [0, 2] });
  const test = await collectActivations(m, plantedRows(2, 40), { layers: [0, 2] });
  const c = fitCompass(train, { method: "diffmean", layer: 0 });
  assert.equal(c.layer, 0);
  const y = test.labels().map((l) => (l === "safe" ? 1 : 0) as 0 | 1);
  const a = auroc(c.score(test.layer(0)), y);
  console.log(`  held-out AUROC at layer 0 = ${a.toFixed(4)}`);
  assert.ok(a >= 0.99, `AUROC ${a}`);
  assert.equal(fitCompass(train, { method: "logistic" }).layer, 2, "default layer is the last");
  // Label mapping: flipping `positive` flips the scores' orientation.
  const flipped = fitCompass(train, { method: "diffmean", layer: 0, positive: "unsafe" });
  assert.ok(auroc(flipped.score(test.layer(0)), y) <= 0.01);
  const sweep = sweepLayers(train, test, { methods: ["diffmean", "logistic"], reps: 200 });
  assert.deepEqual(sweep.map((r) => [r.layer, r.method]), [
    [0, "diffmean"],
    [0, "logistic"],
    [2, "diffmean"],
    [2, "logistic"],
  ]);
  assert.ok(sweep[0].auroc >= 0.99 && Math.abs(sweep[0].auroc - a) < 1e-9);
  m.dispose();
});

Deno.test("CRAFT gets real token-drop views from per-token activations", async () => {
  const m = await tinyModel("gpt2", 3);
  const rows = plantedRows(1, 32);
  rows[0].traceLabel = "rethink";
  const acts = await collectActivations(m, rows, { layers: [0], pooling: "none" });
  const craft = { hiddenDim: 32, embedDim: 16, epochs: 30, lr: 1e-2, batchSize: 8 };
  const c = fitCompass(acts, { method: "craft", craft, seed: 1 });
  assert.equal(c.head!.info!.views, "token-drop");
  assert.equal(c.head!.info!.nTrain, 32, "rethink kept as its own class for CRAFT");
  assert.equal(c.pooling, "mean");
  const test = await collectActivations(m, plantedRows(2, 32), { layers: [0] });
  const y = test.labels().map((l) => (l === "safe" ? 1 : 0) as 0 | 1);
  const a = auroc(c.score(test.layer(0)), y);
  console.log(`  CRAFT (token-drop) held-out AUROC at layer 0 = ${a.toFixed(4)}`);
  assert.ok(a > 0.9, `AUROC ${a}`);
  const pooled = fitCompass(test, { method: "craft", craft: { ...craft, epochs: 1 } });
  assert.equal(pooled.head!.info!.views, "feature-dropout");
  const probe = fitCompass(acts, { method: "diffmean" });
  assert.equal(probe.options.rowsUsed, 31, "binary probes drop rethink by default");
  m.dispose();
});

Deno.test("Activations render a Jupyter summary with rows, layers, pooling and label counts", async () => {
  const m = await tinyModel("gpt2");
  const acts = await collectActivations(m, raggedRows(8, 6), { layers: [0, 2], pooling: "last" });
  const b = acts[JUPYTER_DISPLAY]();
  const html = b["text/html"] as string;
  for (const s of ["<b>Activations</b>", ">6<", "0, 2 (2)", ">last<", "label: safe", "tokens/s"]) {
    assert.ok(html.includes(s), `html lacks ${s}`);
  }
  assert.match(b["text/plain"], /6 rows, layers 0,2, d=16, pooling last; unsafe 3, safe 3/);
  m.dispose();
});
