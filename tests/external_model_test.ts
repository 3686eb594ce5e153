/**
 * Models whose 2-D weights live outside the wasm heap (`loadModel(dir, { weights:
 * "external" })`) compute what the same checkpoint computes on the heap: logits, every
 * hidden state, KV-cache greedy decoding, and LoRA gradients through the frozen base, for
 * GPT-2 (Conv1D [in, out] layout, tied head) and a Llama-family model (HF Linear [out, in],
 * untied head, GQA), from F32 and BF16 files. What cannot work with frozen host weights is a
 * clear error: full fine-tuning, saving the whole model, merging LoRA, a worker pool.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import { loadModel } from "../lib/model/load.ts";
import { addLora, mergeLora } from "../lib/model/lora.ts";
import type { Model } from "../lib/model/model.ts";
import type { Arch } from "../lib/model/config.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";
import { trainSft } from "../lib/train/sft.ts";
import { externalWeightsInfo } from "../lib/engine/external_weights.ts";
import { WorkerPool } from "../lib/parallel/pool.ts";
import { trainRL } from "../lib/train/rl/train.ts";
import { numberPrompts, TOKEN1 } from "./_rl_fixtures.ts";

await useTestBackend();
console.log(`external weights: ${externalWeightsInfo().reason}`);

function forwardAll(m: Model, ids: number[][]) {
  const f = m.forward(ids, { hiddenStates: "all" });
  const out = {
    logits: f.logits!.arraySync(),
    hidden: f.hiddenStates.map((h) => h.arraySync()),
  };
  tf.dispose([f.logits!, ...f.hiddenStates]);
  return out;
}

for (const arch of ["gpt2", "llama"] as Arch[]) {
  for (const dtype of ["F32", "BF16"] as const) {
    Deno.test(`${arch} ${dtype}: external weights equal heap weights (logits, hidden states, greedy)`, async () => {
      const src = await tinyModel(arch, 31);
      const dir = join(await Deno.makeTempDir(), "m");
      await src.save(dir, { dtype });
      const heap = await loadModel(dir, { tokenizer: src.tokenizer, weights: "heap" });
      const ext = await loadModel(dir, { tokenizer: src.tokenizer, weights: "external" });
      try {
        assert.equal(heap.external, undefined);
        assert.ok(ext.external && ext.external.size > 0, "2-D weights are external");
        assert.ok(
          [...ext.params].every(([n, v]) => v.shape.length === 1 || n === "wpe.weight"),
          "only 1-D tensors (norms, biases) and GPT-2 positions stay on the heap",
        );
        assert.equal(ext.numParams, heap.numParams);
        if (dtype === "BF16") {
          assert.ok([...ext.external.values()].every((m) => m.dtype === "bfloat16"));
        }
        const ids = [[1, 5, 9, 13, 2, 7], [3, 4, 8, 1, 1, 6]];
        const a = forwardAll(heap, ids), b = forwardAll(ext, ids);
        const dl = maxAbsDiff(a.logits, b.logits);
        const dh = Math.max(...a.hidden.map((h, i) => maxAbsDiff(h, b.hidden[i])));
        console.log(
          `${arch} ${dtype}: max |logits diff| ${dl.toExponential(2)}, hidden ${
            dh.toExponential(2)
          }`,
        );
        assert.ok(dl < 1e-5 && dh < 1e-5, `logits ${dl}, hidden ${dh}`);
        const prompts = ["1 2 3", "4 5"];
        const g1 = await heap.generate({ prompts, maxNewTokens: 8, temperature: 0, chat: false });
        const g2 = await ext.generate({ prompts, maxNewTokens: 8, temperature: 0, chat: false });
        assert.deepEqual(g2.tokenIds, g1.tokenIds);
      } finally {
        heap.dispose();
        ext.dispose();
        src.dispose();
      }
    });
  }
}

Deno.test("LoRA gradients flow through external weights as through heap weights", async () => {
  const src = await tinyModel("llama", 32);
  const dir = join(await Deno.makeTempDir(), "m");
  await src.save(dir);
  const heap = await loadModel(dir, { tokenizer: src.tokenizer, weights: "heap" });
  const ext = await loadModel(dir, { tokenizer: src.tokenizer, weights: "external" });
  try {
    for (const m of [heap, ext]) addLora(m, { rank: 4, seed: 3 });
    // Make B non-zero so that A's gradient is not trivially zero.
    for (const m of [heap, ext]) {
      for (const [n, v] of m.params) if (n.endsWith(".lora_B")) v.assign(tf.onesLike(v).mul(0.01));
    }
    const batch = padBatch([[1, 5, 9, 13, 2, 7, 3]], [1]);
    const grads = (m: Model) => {
      const names = [...m.params.keys()].filter((n) =>
        n.endsWith(".lora_A") || n.endsWith(".lora_B")
      );
      const { grads } = tf.variableGrads(
        () => lmLoss(m.config, m.params, batch),
        names.map((n) => m.params.get(n)!),
      );
      const out = names.map((n, i) => {
        const key = m.params.get(n)!.name;
        return { n, g: grads[key].arraySync(), i };
      });
      tf.dispose(Object.values(grads));
      return out;
    };
    const gh = grads(heap), ge = grads(ext);
    assert.equal(gh.length, ge.length);
    let worst = 0;
    for (let i = 0; i < gh.length; i++) worst = Math.max(worst, maxAbsDiff(gh[i].g, ge[i].g));
    console.log(`LoRA grads heap vs external: max |diff| ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-5, `${worst}`);
    const r = await trainSft(ext, [{ prompt: "1 2", response: "3 4" }], {
      steps: 2,
      batchSize: 1,
      lr: 1e-2,
      warmup: 0,
    });
    assert.equal(r.history.length, 2);
    assert.ok(r.history.every((h) => Number.isFinite(h.loss)));
  } finally {
    heap.dispose();
    ext.dispose();
    src.dispose();
  }
});

Deno.test("what frozen host weights cannot do is a clear error", async () => {
  const src = await tinyModel("llama", 33);
  const dir = join(await Deno.makeTempDir(), "m");
  await src.save(dir);
  const ext = await loadModel(dir, { tokenizer: src.tokenizer, weights: "external" });
  try {
    await assert.rejects(
      () => trainSft(ext, [{ prompt: "1 2", response: "3 4" }], { steps: 1 }),
      /frozen\. Add LoRA adapters first/,
    );
    await assert.rejects(() => ext.save(join(dir, "copy")), /saveLora/);
    await assert.rejects(
      () => loadModel(dir, { tokenizer: src.tokenizer, weights: "everywhere" as "heap" }),
      /weights is 'everywhere'/,
    );
    addLora(ext, { rank: 2 });
    assert.throws(() => mergeLora(ext), /Cannot merge LoRA adapters/);
    await using pool = await WorkerPool.start({ workers: 1 });
    await assert.rejects(
      () => ext.generate({ prompts: ["1 2"], maxNewTokens: 2, workers: pool }),
      /worker pool/,
    );
    // A copy shares the frozen matrices and computes the same logits.
    const copy = ext.copy("copy");
    assert.equal(copy.external, ext.external);
    const ids = [[1, 2, 3]];
    assert.equal(maxAbsDiff(forwardAll(copy, ids).logits, forwardAll(ext, ids).logits), 0);
    copy.dispose();
  } finally {
    ext.dispose();
    src.dispose();
  }
});

Deno.test("a GRPO step with LoRA on a model with external weights (the reference shares them)", async () => {
  const src = await tinyModel("llama", 34);
  const dir = join(await Deno.makeTempDir(), "m");
  await src.save(dir);
  const ext = await loadModel(dir, { tokenizer: src.tokenizer, weights: "external" });
  try {
    addLora(ext, { rank: 2, seed: 1 });
    const log = await trainRL(ext, {
      algorithm: "grpo",
      prompts: numberPrompts(),
      rewards: [TOKEN1],
      steps: 2,
      promptsPerStep: 2,
      groupSize: 2,
      maxNewTokens: 4,
      lr: 1e-3,
    });
    assert.equal(log.rows.length, 2);
    assert.ok(log.rows.every((r) => Number.isFinite(r.reward) && Number.isFinite(r.kl)));
  } finally {
    ext.dispose();
    src.dispose();
  }
});
