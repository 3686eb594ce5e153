import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { reverseTask, tinyModel, useTestBackend } from "./_helpers.ts";
import { evalLoss, trainSft } from "../lib/train/sft.ts";
import { makeRng } from "../lib/data/rng.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const task = (n: number, seed: number) => reverseTask(n, seed);

Deno.test("sft lowers the validation loss on a small run", async () => {
  const m = await tinyModel("gpt2", 5);
  const val = task(32, 99);
  const before = evalLoss(m, val);
  const tensors = tf.memory().numTensors;
  const r = await trainSft(m, task(256, 1), {
    steps: 60,
    batchSize: 16,
    lr: 5e-3,
    validation: val,
    evalEvery: 60,
  });
  const after = r.history.at(-1)!.valLoss!;
  console.log(`  validation loss ${before.toFixed(3)} -> ${after.toFixed(3)}`);
  assert.ok(after < before - 0.5, `validation loss ${before} -> ${after}`);
  assert.equal(tf.memory().numTensors, tensors, "trainSft leaked tensors");
  m.dispose();
});

Deno.test("sft resumes exactly from a checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const data = task(128, 2);
  const opts = { steps: 12, batchSize: 8, lr: 3e-3, seed: 3, checkpointEvery: 6 };
  const a = await tinyModel("llama", 6);
  const full = await trainSft(a, data, opts);
  const b = await tinyModel("llama", 6);
  await trainSft(b, data, { ...opts, checkpointDir: dir, stopAfter: 6 });
  const c = await tinyModel("llama", 6);
  const resumed = await trainSft(c, data, { ...opts, checkpointDir: dir, resume: true });
  assert.deepEqual(resumed.history.map((r) => r.loss), full.history.map((r) => r.loss));
  for (const [name, v] of a.params) {
    assert.deepEqual(Array.from(c.params.get(name)!.dataSync()), Array.from(v.dataSync()), name);
  }
  [a, b, c].forEach((m) => m.dispose());
  await removeCheckpoint(dir);
});

Deno.test("sft refuses a NaN loss with a clear error and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const m = await tinyModel("gpt2", 7);
  const data = task(64, 4);
  await trainSft(m, data, { steps: 4, batchSize: 8, checkpointDir: dir, checkpointEvery: 2 });
  const good = await Deno.readFile(`${dir}/model/model.safetensors`);
  const w = m.params.get("h.0.mlp.c_fc.weight")!;
  w.assign(tf.fill(w.shape, NaN));
  await assert.rejects(
    () => trainSft(m, data, { steps: 4, batchSize: 8, checkpointDir: dir }),
    /loss is NaN.*No update was applied.*last good checkpoint/,
  );
  assert.deepEqual(await Deno.readFile(`${dir}/model/model.safetensors`), good);
  m.dispose();
  await removeCheckpoint(dir);
});

Deno.test("length-bucketed batch order covers each example once per epoch and cuts padding", async () => {
  const { batchOrder } = await import("../lib/train/sft.ts");
  const rng = makeRng(5);
  const lengths = Array.from({ length: 640 }, () => 5 + rng.int(60));
  const order = batchOrder(640, 16, 1, lengths);
  const seen = Array.from({ length: 40 }, (_, s) => order(s)).flat();
  assert.deepEqual(seen.slice().sort((a, b) => a - b), Array.from({ length: 640 }, (_, i) => i));
  const padded = (o: (s: number) => number[]) =>
    Array.from({ length: 40 }, (_, s) => o(s)).reduce(
      (a, b) => a + 16 * Math.max(...b.map((i) => lengths[i])),
      0,
    );
  const plain = batchOrder(640, 16, 1);
  assert.ok(
    padded(order) < 0.7 * padded(plain),
    `${padded(order)} vs ${padded(plain)} padded tokens`,
  );
  assert.deepEqual(batchOrder(640, 16, 1, lengths)(41), order(41), "deterministic for a seed");
  assert.notDeepEqual(order(40), order(0), "a new epoch reshuffles");
});
