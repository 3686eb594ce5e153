import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import {
  addLora,
  loadLora,
  mergeLora,
  removeLora,
  saveLora,
  trainableVariables,
} from "../lib/model/lora.ts";
import { trainSft } from "../lib/train/sft.ts";
import { makeRng } from "../lib/data/rng.ts";
import type { Arch } from "../lib/model/config.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const logits = async (m: Awaited<ReturnType<typeof tinyModel>>) => {
  const f = m.forward([[3, 1, 4, 1, 5, 9, 2]]);
  const a = await f.logits!.array();
  f.logits!.dispose();
  return a;
};
const data = Array.from({ length: 64 }, (_, i) => {
  const r = makeRng(i);
  const xs = [1 + r.int(20), 1 + r.int(20), 1 + r.int(20)];
  return { prompt: xs.join(" "), response: xs.map((x) => x + 1).join(" ") };
});

for (const arch of ["gpt2", "llama"] as Arch[]) {
  Deno.test(`${arch}: LoRA starts as the identity, trains only the adapters, merges and reloads exactly`, async () => {
    const m = await tinyModel(arch, 41);
    const before = await logits(m);
    const base = new Map([...m.params].map(([n, v]) => [n, Array.from(v.dataSync())]));
    const adapted = addLora(m, {
      rank: 4,
      alpha: 8,
      targets: arch === "gpt2" ? ["c_attn", "c_fc"] : ["q_proj", "v_proj", "down_proj"],
    });
    assert.ok(adapted.length >= 4);
    assert.equal(maxAbsDiff(await logits(m), before), 0, "B = 0 at start: no change");
    const trainable = trainableVariables(m);
    const nLora = [...m.params.keys()].filter((n) => /lora_[AB]$/.test(n)).length;
    assert.equal(trainable.length, nLora);
    const r = await trainSft(m, data, { steps: 25, batchSize: 16, lr: 1e-2 });
    assert.ok(r.history.at(-1)!.loss < r.history[0].loss, "LoRA training lowers the loss");
    for (const [n, vals] of base) {
      assert.deepEqual(Array.from(m.params.get(n)!.dataSync()), vals, `${n} changed`);
    }
    const tuned = await logits(m);
    assert.ok(maxAbsDiff(tuned, before) > 1e-3, "the adapters changed the outputs");
    // save -> remove -> load gives the same outputs
    const dir = join(await Deno.makeTempDir(), "adapter");
    await saveLora(m, dir);
    const cfg = JSON.parse(await Deno.readTextFile(join(dir, "adapter_config.json")));
    assert.equal(cfg.r, 4);
    const withAdapters = tf.memory().numTensors; // the adapters are still on: loading replaces them
    await loadLora(m, dir);
    assert.equal(tf.memory().numTensors, withAdapters, "loadLora leaks no tensors");
    removeLora(m);
    assert.equal(maxAbsDiff(await logits(m), before), 0);
    await loadLora(m, dir);
    assert.ok(maxAbsDiff(await logits(m), tuned) < 1e-6);
    // merging folds the update into the weights
    const n0 = tf.memory().numTensors;
    mergeLora(m);
    assert.ok(tf.memory().numTensors < n0, "adapters freed");
    assert.ok(
      maxAbsDiff(await logits(m), tuned) < 1e-4,
      "merged weights reproduce the adapted model",
    );
    m.dispose();
  });
}
