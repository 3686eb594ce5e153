/**
 * Tests of lib/compass/compass.ts and lib/compass/sweep.ts: fitProbe for every method,
 * save -> load -> identical scores, the files written, clear errors, and a layer sweep
 * that finds the one informative layer.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { makeRng } from "../lib/data/rng.ts";
import type { TraceLabel } from "../lib/data/schema.ts";
import { binaryLabels, type CompassMethod, fitProbe, loadCompass } from "../lib/compass/compass.ts";
import { fromRows, type Matrix } from "../lib/compass/matrix.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { layerSweep } from "../lib/compass/sweep.ts";

await tf.setBackend("cpu");

/** Rows cycling safe/unsafe/rethink: safe at +shift u, unsafe at -shift u, rethink at 0. */
function data(seed: number, n: number, d: number, shift: number) {
  const u = makeRng(77);
  const dir = Array.from({ length: d }, () => u.normal() / Math.sqrt(d));
  const rng = makeRng(seed);
  const rows: number[][] = [], labels: TraceLabel[] = [];
  for (let i = 0; i < n; i++) {
    const label = (["safe", "unsafe", "rethink"] as const)[i % 3];
    const s = label === "safe" ? shift : label === "unsafe" ? -shift : 0;
    rows.push(dir.map((v) => rng.normal() + s * v));
    labels.push(label);
  }
  return { x: fromRows(rows), labels };
}

const train = data(1, 120, 12, 3), test = data(2, 60, 12, 3);
const METHODS: CompassMethod[] = ["diffmean", "pca", "logistic", "craft"];

Deno.test("save -> load gives identical scores for every method", async () => {
  const dir = await Deno.makeTempDir({ prefix: "compass_io_" });
  try {
    for (const method of METHODS) {
      const compass = fitProbe(train.x, train.labels, {
        method,
        layer: 3,
        pooling: "mean",
        seed: 5,
        craft: { hiddenDim: 32, embedDim: 16, lr: 1e-3 },
      });
      assert.equal(compass.dModel, 12);
      assert.ok(
        compass.metrics.trainAuroc > 0.9,
        `${method} train AUROC ${compass.metrics.trainAuroc}`,
      );
      compass.metrics.testAuroc = 0.5; // user-added metrics are saved too
      const path = join(dir, method);
      await compass.save(path);
      assert.deepEqual([...Deno.readDirSync(path)].map((e) => e.name).sort(), [
        "compass.json",
        "compass.safetensors",
      ]);
      const loaded = await loadCompass(path);
      assert.equal(loaded.method, method);
      assert.equal(loaded.layer, 3);
      assert.equal(loaded.pooling, "mean");
      assert.equal(loaded.seed, 5);
      assert.equal(loaded.dModel, 12);
      assert.equal(loaded.metrics.testAuroc, 0.5);
      assert.deepEqual(loaded.score(test.x), compass.score(test.x), `${method} scores differ`);
      if (method === "craft") {
        assert.deepEqual(loaded.cosines!(test.x), compass.cosines!(test.x));
        assert.equal(loaded.direction, undefined);
      } else {
        assert.deepEqual(loaded.direction, compass.direction);
        assert.equal(loaded.cosines, undefined);
      }
      // Saving again over the folder replaces it atomically.
      await loaded.save(path);
      assert.deepEqual((await loadCompass(path)).score(test.x), compass.score(test.x));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compass.json and compass.safetensors hold the documented fields", async () => {
  const dir = await Deno.makeTempDir({ prefix: "compass_io_" });
  try {
    const craft = fitProbe(train.x, train.labels, {
      method: "craft",
      layer: -1,
      pooling: "last",
      craft: { hiddenDim: 32, embedDim: 16, epochs: 1 },
    });
    await craft.save(join(dir, "c"));
    const meta = JSON.parse(await Deno.readTextFile(join(dir, "c", "compass.json")));
    assert.equal(meta.format, "safety-compass.compass");
    assert.equal(meta.head.type, "craft");
    assert.equal(meta.head.hiddenDim, 32);
    assert.equal(meta.pooling, "last");
    assert.equal(meta.options.lr, 1e-4);
    assert.equal(meta.options.batchSize, 16);
    assert.equal(meta.info.approximatedViews, true);
    assert.equal(meta.history.length, 1);
    const st = await readSafetensors(join(dir, "c", "compass.safetensors"));
    assert.deepEqual(st.tensors.get("prototypes")!.shape, [3, 16]);
    assert.deepEqual(st.tensors.get("fc1.w")!.shape, [12, 32]);

    const logistic = fitProbe(train.x, train.labels, { method: "logistic", layer: 2 });
    await logistic.save(join(dir, "l"));
    const lt = await readSafetensors(join(dir, "l", "compass.safetensors"));
    for (
      const name of ["direction", "weights", "bias", "standardization.mean", "standardization.std"]
    ) {
      assert.ok(lt.tensors.has(name), `missing ${name}`);
    }
    const lm = JSON.parse(await Deno.readTextFile(join(dir, "l", "compass.json")));
    assert.equal(lm.options.rethinkAs, "drop");
    assert.equal(lm.metrics.nTrain, 80, "rethink rows are left out by default");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCompass and fitProbe explain bad input", async () => {
  const dir = await Deno.makeTempDir({ prefix: "compass_io_" });
  try {
    await assert.rejects(loadCompass(join(dir, "nothing")), /compass\.json/);
    await Deno.mkdir(join(dir, "bad"));
    await Deno.writeTextFile(join(dir, "bad", "compass.json"), JSON.stringify({ format: "x" }));
    await assert.rejects(loadCompass(join(dir, "bad")), /field 'format' is x/);
    const c = fitProbe(train.x, train.labels, { method: "diffmean", layer: 0 });
    assert.throws(() => c.score(fromRows([[1, 2, 3]])), /3 columns, expected 12/);
    assert.throws(
      () => fitProbe(train.x, train.labels.slice(1), { method: "pca", layer: 0 }),
      /119 labels for 120 rows/,
    );
    assert.throws(
      () => fitProbe(train.x, train.labels, { method: "svm" as CompassMethod, layer: 0 }),
      /Unknown compass method 'svm'/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("binaryLabels maps trace labels with rethink as asked", () => {
  assert.deepEqual(Array.from(binaryLabels(["safe", "unsafe", "rethink"])), [1, 0, -1]);
  assert.deepEqual(Array.from(binaryLabels(["safe", "unsafe", "rethink"], "safe")), [1, 0, 1]);
  assert.deepEqual(Array.from(binaryLabels([true, false])), [1, 0]);
  assert.deepEqual(Array.from(binaryLabels([1, 0])), [1, 0]);
});

Deno.test("layerSweep finds the informative layer and brackets chance on the noise layer", () => {
  // Layer 0: pure noise; layer 1: the planted safe/unsafe axis.
  const noise = (seed: number, n: number): Matrix => {
    const rng = makeRng(seed);
    return fromRows(
      Array.from({ length: n }, () => Array.from({ length: 12 }, () => rng.normal())),
    );
  };
  const rows = layerSweep(
    { layers: [noise(10, 120), train.x], labels: train.labels },
    { layers: [noise(11, 60), test.x], labels: test.labels },
    { methods: ["diffmean", "logistic"], seed: 1, reps: 300, layerIds: [4, 8] },
  );
  assert.equal(rows.length, 4);
  for (const r of rows) {
    assert.equal(r.nTest, 40);
    assert.ok(r.aurocLo <= r.auroc && r.auroc <= r.aurocHi);
    assert.ok(r.accLo <= r.accuracy && r.accuracy <= r.accHi);
    if (r.layer === 4) {
      assert.ok(r.aurocLo < 0.5 + 0.05 && r.aurocHi > 0.5 - 0.05, JSON.stringify(r));
    } else {
      assert.equal(r.layer, 8);
      assert.ok(r.auroc > 0.9 && r.accuracy > 0.8 && r.separation > 1.5, JSON.stringify(r));
    }
  }
});
