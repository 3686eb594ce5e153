import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { type RLLogRow, type RLOptions, trainRL } from "../lib/train/rl/train.ts";
import { addLora, isLoraParam, loadLora } from "../lib/model/lora.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import type { Reward } from "../lib/train/rewards.ts";
import type { PromptRow } from "../lib/data/schema.ts";
import type { Model } from "../lib/model/model.ts";

import { alternating, numberPrompts, TOKEN1 } from "./_rl_fixtures.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const PROMPTS: PromptRow[] = numberPrompts(alternating);
const FIRST: Reward = { name: "first", weight: 1, fn: (c) => (c.completionIds[0] % 3) / 2 };
const LORA = { rank: 2, alpha: 4, targets: ["c_attn", "c_fc"], seed: 3 };

/** The same random base model with the same adapters. */
async function loraModel(): Promise<Model> {
  const m = await tinyModel("gpt2", 21);
  addLora(m, LORA);
  return m;
}
const strip = (rows: RLLogRow[]) => rows.map(({ seconds: _s, ...r }) => r);

for (const algorithm of ["grpo", "ppo"] as const) {
  Deno.test(`${algorithm} with LoRA: resume continues bit for bit from an adapter checkpoint`, async () => {
    const dir = await Deno.makeTempDir();
    const opts: RLOptions = {
      algorithm,
      prompts: PROMPTS,
      steps: 4,
      promptsPerStep: 2,
      groupSize: 2,
      maxNewTokens: 3,
      lr: 5e-2,
      ppoEpochs: 2,
      minibatch: 2,
      seed: 5,
      checkpointEvery: 1,
      rewards: [TOKEN1, FIRST],
      // PPO also exercises trajectory training through a resume (seeded by step).
      ...(algorithm === "ppo"
        ? { perturb: { rate: 0.5, source: "random" as const, labels: ["harmful", "benign"] } }
        : {}),
    };
    const a = await loraModel();
    const full = await trainRL(a, opts);
    const b = await loraModel();
    await trainRL(b, { ...opts, checkpointDir: dir, stopAfter: 2 });
    // The checkpoint holds the adapters (PEFT layout), not the base model.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(
      names,
      ["adapter", "optimizer.safetensors", "reference.safetensors", "trainer_state.json"]
        .concat(algorithm === "ppo" ? ["value_head.safetensors"] : []).sort(),
    );
    const adapters = [...b.params.keys()].filter((n) => /lora_[AB]$/.test(n));
    const opt = await readSafetensors(join(dir, "optimizer.safetensors"));
    assert.deepEqual(
      [...opt.tensors.keys()].sort(),
      adapters.flatMap((n) => [`m.${n}`, `v.${n}`]).sort(),
      "optimizer state of the adapters only",
    );
    assert.equal(opt.metadata.step, "8", "2 steps x 2 epochs x 2 minibatches");
    const ref = await readSafetensors(join(dir, "reference.safetensors"));
    assert.deepEqual([...ref.tensors.keys()].sort(), adapters.slice().sort());
    const state = JSON.parse(await Deno.readTextFile(join(dir, "trainer_state.json")));
    assert.deepEqual(state.lora, { rank: 2, alpha: 4, targets: ["c_attn", "c_fc"] });
    // The adapter folder loads with loadLora into a fresh base model.
    const d = await tinyModel("gpt2", 21);
    await loadLora(d, join(dir, "adapter"));
    for (const n of adapters) {
      assert.deepEqual(d.params.get(n)!.dataSync(), b.params.get(n)!.dataSync(), n);
    }
    d.dispose();
    // Resume from step 2 on a fresh model with the same adapters: the same trajectory.
    const c = await loraModel();
    const tensors = tf.memory().numTensors;
    const resumed = await trainRL(c, { ...opts, checkpointDir: dir, resume: true });
    assert.equal(tf.memory().numTensors, tensors, "resuming leaks no tensors");
    assert.ok(full.rows[3].kl > 0, "the adapters moved away from the reference");
    assert.deepEqual(strip(resumed.rows), strip(full.rows));
    for (const [name, v] of a.params) {
      assert.deepEqual(c.params.get(name)!.dataSync(), v.dataSync(), name);
      if (!isLoraParam(name)) {
        assert.deepEqual(v.dataSync(), b.params.get(name)!.dataSync(), `base ${name} frozen`);
      }
    }
    [a, b, c].forEach((m) => m.dispose());
    await removeCheckpoint(dir);
  });
}

Deno.test("resuming with other adapters than the checkpoint's fails clearly", async () => {
  const dir = await Deno.makeTempDir();
  const opts: RLOptions = {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 1,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: 2,
    rewards: [FIRST],
    checkpointDir: dir,
  };
  const m = await loraModel();
  await trainRL(m, opts);
  const plain = await tinyModel("gpt2", 21);
  await assert.rejects(
    () => trainRL(plain, { ...opts, steps: 2, resume: true }),
    /trained with LoRA adapters .*"rank":2.*the model has no LoRA adapters.*addLora\(model, \{ rank: 2, alpha: 4/,
  );
  addLora(plain, { ...LORA, rank: 4 });
  await assert.rejects(
    () => trainRL(plain, { ...opts, steps: 2, resume: true }),
    /the model has LoRA adapters \{"rank":4/,
  );
  // A full fine-tuning checkpoint refuses a model with adapters.
  const fullDir = await Deno.makeTempDir();
  const f = await tinyModel("gpt2", 21);
  await trainRL(f, { ...opts, checkpointDir: fullDir });
  await assert.rejects(
    () => trainRL(m, { ...opts, checkpointDir: fullDir, steps: 2, resume: true }),
    /no LoRA adapters \(full fine-tuning\).*removeLora/,
  );
  [m, plain, f].forEach((x) => x.dispose());
  await removeCheckpoint(dir);
  await removeCheckpoint(fullDir);
});
