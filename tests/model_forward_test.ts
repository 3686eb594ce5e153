import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import type { Arch } from "../lib/model/config.ts";

await useTestBackend();

for (const arch of ["gpt2", "llama"] as Arch[]) {
  Deno.test(`${arch}: KV-cache decoding equals the full forward pass (1e-4)`, async () => {
    const m = await tinyModel(arch);
    const ids = [3, 7, 1, 12, 5, 9, 2, 30];
    const full = m.forward([ids]);
    const ref = (await full.logits!.array())[0];
    let f = m.forward([ids.slice(0, 3)], { useCache: true });
    let worst = maxAbsDiff((await f.logits!.array())[0], ref.slice(0, 3));
    tf.dispose(f.logits!);
    for (let t = 3; t < ids.length; t++) {
      const prev = f.cache!;
      f = m.forward([[ids[t]]], { cache: prev, attentionMask: [new Array(t + 1).fill(1)] });
      worst = Math.max(worst, maxAbsDiff((await f.logits!.array())[0][0], ref[t]));
      tf.dispose([f.logits!, ...prev.k, ...prev.v]);
    }
    tf.dispose([full.logits!, ...f.cache!.k, ...f.cache!.v]);
    console.log(`  ${arch} kv-cache max |diff| = ${worst.toExponential(2)} (tol 1e-4)`);
    assert.ok(worst < 1e-4, `max diff ${worst}`);
    m.dispose();
  });

  Deno.test(`${arch}: a left-padded ragged batch equals each prompt alone`, async () => {
    const m = await tinyModel(arch);
    const a = [4, 8, 15, 16, 23, 2];
    const b = [11, 7, 5];
    const pad = [0, 0, 0];
    const batched = m.forward([a, [...pad, ...b]], {
      attentionMask: [a.map(() => 1), [...pad.map(() => 0), ...b.map(() => 1)]],
      hiddenStates: "all",
    });
    const alone = m.forward([b], { hiddenStates: "all" });
    const bl = (await batched.logits!.array())[1].slice(3);
    const al = (await alone.logits!.array())[0];
    const d = maxAbsDiff(bl, al);
    const hb = (await batched.hiddenStates[2].array())[1].slice(3);
    const ha = (await alone.hiddenStates[2].array())[0];
    console.log(
      `  ${arch} padded vs alone: logits ${d.toExponential(2)}, h2 ${
        maxAbsDiff(hb, ha).toExponential(2)
      }`,
    );
    assert.ok(d < 1e-4);
    assert.ok(maxAbsDiff(hb, ha) < 1e-4);
    tf.dispose([batched.logits!, alone.logits!, ...batched.hiddenStates, ...alone.hiddenStates]);
    m.dispose();
  });

  Deno.test(`${arch}: hidden states are indexed by layer and only requested ones are computed`, async () => {
    const m = await tinyModel(arch);
    const f = m.forward([[1, 2, 3]], { hiddenStates: [0, -1] });
    assert.equal(f.hiddenStates.filter(Boolean).length, 2);
    assert.deepEqual(f.hiddenStates[0].shape, [1, 3, 16]);
    assert.deepEqual(f.hiddenStates[m.config.nLayer].shape, [1, 3, 16]);
    assert.equal(f.hiddenStates[1], undefined);
    tf.dispose([f.logits!, ...f.hiddenStates.filter(Boolean)]);
    m.dispose();
  });

  Deno.test(`${arch}: generate returns tokens, logprobs and hidden states without leaking tensors`, async () => {
    const m = await tinyModel(arch);
    const before = tf.memory().numTensors;
    const g = await m.generate({
      inputIds: [[1, 2, 3], [5, 6]],
      maxNewTokens: 6,
      stopAtEos: false,
      returnHiddenStates: [1],
    });
    assert.equal(tf.memory().numTensors, before, "generate leaked tensors");
    assert.equal(g.tokenIds[0].length, 6);
    assert.equal(g.logprobs[1].length, 6);
    assert.equal(g.hiddenStates![1][0].length, 6 * m.config.dModel);
    const dup = await m.generate({
      inputIds: [[1, 2, 3], [5, 6]],
      maxNewTokens: 6,
      stopAtEos: false,
      returnHiddenStates: [1, 1, -1],
    });
    assert.deepEqual(Object.keys(dup.hiddenStates!).map(Number), [1, m.config.nLayer]);
    assert.deepEqual(
      dup.hiddenStates![1][1],
      g.hiddenStates![1][1],
      "repeated layers stay aligned",
    );
    // Greedy tokens equal the argmax of a full forward over prompt + generated tokens.
    const seq = [1, 2, 3, ...g.tokenIds[0]];
    const f = m.forward([seq.slice(0, -1)]);
    const logits = (await f.logits!.array())[0];
    for (let i = 0; i < 6; i++) {
      const row = logits[2 + i];
      const argmax = row.indexOf(Math.max(...row));
      assert.equal(g.tokenIds[0][i], argmax, `token ${i}`);
      const lse = Math.log(row.reduce((s, x) => s + Math.exp(x - Math.max(...row)), 0)) +
        Math.max(...row);
      assert.ok(Math.abs(g.logprobs[0][i] - (row[argmax] - lse)) < 1e-4, `logprob ${i}`);
    }
    // The hidden state of new token i is the residual after block 1 at its own position.
    const h = m.forward([seq], { hiddenStates: [1], logits: "none" });
    const hs = (await h.hiddenStates[1].array())[0];
    const got = Array.from(g.hiddenStates![1][0].slice(0, 16));
    assert.ok(maxAbsDiff(got, hs[3]) < 1e-4);
    tf.dispose([f.logits!, h.hiddenStates[1]]);
    m.dispose();
  });

  Deno.test(`${arch}: seeded sampling is reproducible and independent of batching`, async () => {
    const m = await tinyModel(arch);
    const opts = {
      maxNewTokens: 8,
      temperature: 1,
      topK: 10,
      topP: 0.9,
      seed: 7,
      stopAtEos: false,
    };
    const both = await m.generate({ inputIds: [[1, 2], [3, 4, 5]], ...opts });
    const again = await m.generate({ inputIds: [[1, 2], [3, 4, 5]], ...opts });
    const split = await m.generate({ inputIds: [[1, 2], [3, 4, 5]], ...opts, batchSize: 1 });
    assert.deepEqual(both.tokenIds, again.tokenIds);
    assert.deepEqual(both.tokenIds, split.tokenIds);
    const other = await m.generate({ inputIds: [[1, 2], [3, 4, 5]], ...opts, seed: 8 });
    assert.notDeepEqual(both.tokenIds, other.tokenIds);
    m.dispose();
  });

  Deno.test(`${arch}: forced tokens appear exactly at their steps, then generation continues`, async () => {
    const m = await tinyModel(arch);
    const g = await m.generate({
      inputIds: [[1, 2, 3], [4, 5]],
      maxNewTokens: 8,
      stopAtEos: false,
      force: [[{ step: 0, tokens: [30, 31] }], [{ step: 4, tokens: [33, 34, 35] }]],
    });
    assert.deepEqual(g.tokenIds[0].slice(0, 2), [30, 31]);
    assert.deepEqual(g.forced[0], [true, true, false, false, false, false, false, false]);
    assert.deepEqual(g.tokenIds[1].slice(4, 7), [33, 34, 35]);
    assert.deepEqual(g.forced[1].map(Number), [0, 0, 0, 0, 1, 1, 1, 0]);
    // The continuation equals greedy decoding from prompt + forced prefix.
    const ref = await m.generate({
      inputIds: [[1, 2, 3, 30, 31]],
      maxNewTokens: 6,
      stopAtEos: false,
    });
    assert.deepEqual(g.tokenIds[0].slice(2), ref.tokenIds[0]);
    m.dispose();
  });
}
