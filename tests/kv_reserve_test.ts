/**
 * KV caches with reserved slots (ForwardOptions.reserve): each decoding step writes its keys
 * and values into the cache in place (lib/engine/layout_kernels.ts's writeSlots) and attention
 * reads the filled slots where they lie (lib/engine/blas.ts's slotMatMul; the fused kernel with
 * a slot stride), instead of concatenating the whole cache every step. The numbers must not
 * change: logits of every cached step, and sampled generations with their log-probs, are
 * compared bit for bit with the concatenating cache, for GPT-2, Llama with GQA and Gemma 2
 * (soft-capping, sliding window), at batch sizes that take the fused attention (B = 1) and the
 * composed one with BLAS (B = 6, fused kernels off), with and without BLAS, and when the reserve
 * runs out.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { TINY_GEMMA2_CONFIG, tinyModel, tinyModelFromConfig, useTestBackend } from "./_helpers.ts";
import { slotWritesAvailable, writeSlots } from "../lib/engine/layout_kernels.ts";
import { BIASED_MAX_ELEMENTS, biasedMatMul, slotMatMul } from "../lib/engine/blas.ts";
import { blasInfo, disableBlas, enableBlas } from "../lib/engine/blas.ts";
import { disposeCache, RESERVE_CHUNK } from "../lib/model/transformer.ts";
import { useFusedKernels } from "../lib/engine/fused.ts";
import { useSimdKernels } from "../lib/engine/simd_kernels.ts";
import type { Model } from "../lib/model/model.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

/** Rows of `b` prompts (row 1 left-padded), then `steps` cached single-token steps. */
async function cachedSteps(m: Model, b: number, steps: number, reserve?: number) {
  const v = m.config.vocabSize;
  const ids = Array.from({ length: b }, (_, i) => [3, 1, 4, 1, 5].map((x) => (x + 7 * i) % v));
  const mask = ids.map((r, i) => r.map((_, j) => (i === 1 && j < 2 ? 0 : 1)));
  const pre = m.forward(ids, { attentionMask: mask, useCache: true, reserve, logits: "last" });
  const logits: number[] = [...await pre.logits!.data()];
  pre.logits!.dispose();
  let cache = pre.cache!;
  const slots = [cache.k[0].shape[2]];
  for (let s = 0; s < steps; s++) {
    for (const row of mask) row.push(1);
    const next = ids.map((_, i) => [(11 + 5 * s + 3 * i) % v]);
    const f = m.forward(next, { attentionMask: mask, cache, reserve, logits: "last" });
    logits.push(...await f.logits!.data());
    f.logits!.dispose();
    disposeCache(cache);
    cache = f.cache!;
    slots.push(cache.k[0].shape[2]);
  }
  disposeCache(cache);
  return { logits, slots };
}

const same = (a: number[], b: number[]) =>
  a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

const models = async () => [
  await tinyModel("gpt2", 3),
  await tinyModel("llama", 4),
  tinyModelFromConfig(TINY_GEMMA2_CONFIG, 5, 10),
];

Deno.test({
  name: "reserved KV slots: cached steps' logits bit for bit the concatenating cache's",
  ignore: !onWasm,
  fn: async () => {
    assert.ok(slotWritesAvailable(), "the slot kernels are compiled on wasm");
    const blasOn = blasInfo().enabled;
    for (const m of await models()) {
      // B = 1 with the fused attention (slot stride), B = 6 with it off: the BLAS products over
      // the filled slots
      for (const [b, fused] of [[1, true], [6, false]] as const) {
        const was = useFusedKernels(fused);
        const plain = await cachedSteps(m, b, 6);
        const reserved = await cachedSteps(m, b, 6, 5 + 6);
        assert.deepEqual(plain.slots, [5, 6, 7, 8, 9, 10, 11], "the plain cache grows");
        assert.deepEqual(reserved.slots, new Array(7).fill(11), "written in place, no growth");
        assert.ok(same(reserved.logits, plain.logits), `${m.source} B=${b}`);
        // a reserve that runs out after two steps: concatenation takes over, same numbers
        const short = await cachedSteps(m, b, 6, 5 + 2);
        assert.deepEqual(short.slots, [7, 7, 7, 8, 9, 10, 11]);
        assert.ok(same(short.logits, plain.logits), `${m.source} B=${b}, reserve used up`);
        useFusedKernels(was);
      }
      if (blasOn) {
        // without BLAS, attention slices the filled slots out: still the same numbers
        disableBlas();
        const was = useFusedKernels(false);
        try {
          const plain = await cachedSteps(m, 6, 4);
          const reserved = await cachedSteps(m, 6, 4, 9);
          assert.ok(same(reserved.logits, plain.logits), `${m.source} without BLAS`);
        } finally {
          enableBlas();
          useFusedKernels(was);
        }
      }
      m.dispose();
    }
  },
});

Deno.test({
  name: "reserved KV slots: a long generation's cache grows a chunk at a time, same logits",
  ignore: !onWasm,
  fn: async () => {
    const m = await tinyModel("llama", 4); // RoPE: no position limit to run past
    const steps = RESERVE_CHUNK + 3, limit = 5 + RESERVE_CHUNK + 10;
    const plain = await cachedSteps(m, 2, steps);
    const reserved = await cachedSteps(m, 2, steps, limit);
    assert.equal(reserved.slots[0], 5 + RESERVE_CHUNK, "one chunk of room, not the whole reserve");
    assert.equal(reserved.slots.at(-1), limit, "the next chunk, up to the limit");
    assert.deepEqual([...new Set(reserved.slots)], [5 + RESERVE_CHUNK, limit], "grown once");
    assert.ok(same(reserved.logits, plain.logits));
    m.dispose();
  },
});

Deno.test({
  name: "decoding's exact kernels (reserved slots, biased products): generate unchanged, no leak",
  ignore: !onWasm,
  fn: async () => {
    for (const m of await models()) {
      const opts = {
        inputIds: [[3, 1, 4], [2, 6], [5, 3, 5, 8], [9, 7], [1, 1, 2], [4]],
        maxNewTokens: 9,
        stopAtEos: false,
        temperature: 1,
        seed: 7,
      };
      const before = tf.memory().numTensors;
      const buffers = (tf.memory() as { numDataBuffers: number }).numDataBuffers;
      const on = await m.generate(opts);
      assert.equal(tf.memory().numTensors, before, `${m.source}: tensors leaked`);
      // shared cache buffers are freed with their last tensor, not kept by a stale count
      const after = (tf.memory() as { numDataBuffers: number }).numDataBuffers;
      assert.equal(after, buffers, `${m.source}: buffers leaked`);
      // the same run with the cache growing by concatenation and every product and bias add
      // composed: with the SIMD kernels off no slots are reserved and biasedMatMul steps aside
      // (the other SIMD kernels are bit for bit the stock ones)
      const before2 = useSimdKernels(false);
      let off;
      try {
        assert.equal(slotWritesAvailable(), false);
        off = await m.generate(opts);
      } finally {
        useSimdKernels(before2);
      }
      assert.deepEqual(on.tokenIds, off.tokenIds, `${m.source} tokens`);
      assert.ok(same(on.logprobs.flat(), off.logprobs.flat()), `${m.source} log-probs`);
      m.dispose();
    }
  },
});

Deno.test({
  name: "writeSlots and slotMatMul: in place, shared buffer, clear refusals",
  ignore: !onWasm,
  fn: () => {
    const cache = tf.zeros([2, 3, 5, 4]) as tf.Tensor4D;
    const x = tf.randomNormal([2, 3, 1, 4], 0, 1, "float32", 1) as tf.Tensor4D;
    const w = writeSlots(cache, x, 2)!;
    assert.ok(w, "writeSlots ran");
    assert.deepEqual(w.shape, [2, 3, 5, 4]);
    const want = tf.concat([tf.zeros([2, 3, 2, 4]), x, tf.zeros([2, 3, 2, 4])], 2);
    assert.deepEqual(Array.from(w.dataSync()), Array.from(want.dataSync()));
    // in place: the cache passed in sees the write; disposing it keeps the buffer alive
    assert.deepEqual(Array.from(cache.dataSync()), Array.from(want.dataSync()));
    cache.dispose();
    assert.deepEqual(Array.from(w.dataSync()), Array.from(want.dataSync()));
    assert.equal(writeSlots(w, x, 5), undefined, "no room past the last slot");
    assert.equal(writeSlots(w, tf.zeros([2, 3, 1, 8]) as tf.Tensor4D, 0), undefined, "head size");
    if (blasInfo().enabled) {
      const q = tf.randomNormal([2, 3, 1, 4], 0, 1, "float32", 2);
      const s = slotMatMul(q, w, 3, true)!;
      const ref = tf.matMul(q, tf.slice(w, [0, 0, 0, 0], [-1, -1, 3, -1]), false, true);
      assert.deepEqual(s.shape, [2, 3, 1, 3]);
      assert.ok(same(Array.from(s.dataSync()), Array.from(ref.dataSync())), "q k^T");
      const p = tf.randomNormal([2, 3, 1, 3], 0, 1, "float32", 3);
      const pv = slotMatMul(p, w, 3, false)!;
      const ref2 = tf.matMul(p, tf.slice(w, [0, 0, 0, 0], [-1, -1, 3, -1]));
      assert.ok(same(Array.from(pv.dataSync()), Array.from(ref2.dataSync())), "p v");
      assert.equal(slotMatMul(q, w, 6, true), undefined, "more slots than the cache holds");
      tf.dispose([q, s, ref, p, pv, ref2]);
    }
    tf.dispose([x, w, want]);
  },
});

Deno.test({
  name: "biasedMatMul: bit for bit tf.add(tf.matMul(a, b), bias), on the stock and BLAS paths",
  ignore: !onWasm || !blasInfo().enabled,
  fn: () => {
    // below 2^21 multiply-adds the stock kernel takes an untransposed product, above it BLAS
    const shapes = [[1, 128, 384], [8, 128, 128], [8, 128, 512], [8, 768, 512], [4, 3072, 256]];
    // decoding's outputs at B = 16-32 (up to the size limit), and rows whose length leaves a
    // remainder after the bias add's four lanes
    shapes.push([3, 5, 7], [32, 128, 512], [32, 512, 128], [16, 128, 384], [7, 13, 1023]);
    shapes.push([BIASED_MAX_ELEMENTS / 1024, 128, 1024]);
    for (const [m, k, n] of shapes) {
      tf.tidy(() => {
        const a = tf.randomNormal([m, k], 0, 1, "float32", m + n);
        const w = tf.randomNormal([k, n], 0, 1, "float32", k);
        const bias = tf.randomNormal([n], 0, 1, "float32", n);
        const got = biasedMatMul(a, w, bias)!;
        assert.ok(got, `[${m}, ${k}] x [${k}, ${n}] ran`);
        assert.deepEqual(got.shape, [m, n]);
        const want = tf.add(tf.matMul(a, w), bias);
        assert.ok(
          same(Array.from(got.dataSync()), Array.from(want.dataSync())),
          `[${m},${k},${n}]`,
        );
      });
    }
    const a = tf.zeros([2, 3]), w = tf.zeros([3, 4]);
    assert.equal(biasedMatMul(a, w, tf.zeros([5])), undefined, "bias of the wrong length");
    const big = tf.zeros([BIASED_MAX_ELEMENTS / 64 + 1, 3]);
    const wide = tf.zeros([3, 64]);
    assert.equal(biasedMatMul(big, wide, tf.zeros([64])), undefined, "above its size limit");
    tf.dispose([big, wide]);
    const before = useSimdKernels(false);
    assert.equal(biasedMatMul(a, w, tf.zeros([4])), undefined, "off with the SIMD kernels");
    useSimdKernels(before);
    let inside: tf.Tensor | undefined = tf.zeros([1]);
    const x = tf.variable(tf.ones([2, 3]));
    const { value, grads } = tf.variableGrads(() => {
      inside = biasedMatMul(x, w, tf.zeros([4]));
      return tf.sum(tf.matMul(x, w)) as tf.Scalar;
    }, [x]);
    assert.equal(inside, undefined, "no fused product under a gradient tape");
    tf.dispose([a, w, x, value, ...Object.values(grads)]);
  },
});
