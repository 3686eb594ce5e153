/**
 * The fused decoding kernels (lib/engine/fused.ts) against the composed tfjs ops they replace:
 * layer norm, GELU and attention (multi-head, GQA, soft-capping, masked slots) on random
 * inputs; then whole models (GPT-2, Llama with GQA, Gemma 2 with soft-capping and a sliding
 * window): logits of cached decoding steps and greedy generations agree to float32 rounding
 * with the kernels on and off, and a full forward (no cache: training, prefill, hooks) never
 * uses them, so it is bit-equal; under a gradient tape and above their size limits the
 * kernels step aside.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  maxAbsDiff,
  TINY_GEMMA2_CONFIG,
  tinyModel,
  tinyModelFromConfig,
  useTestBackend,
} from "./_helpers.ts";
import {
  FUSED_MAX_GELU_ELEMENTS,
  fusedAttention,
  fusedGelu,
  fusedLayerNorm,
  useFusedKernels,
} from "../lib/engine/fused.ts";
import { gelu } from "../lib/model/transformer.ts";
import type { Model } from "../lib/model/model.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

function composedLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number) {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.mul(xc, xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b);
}

function composedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D,
  scale: number,
  cap: number,
) {
  const [b, h, t, d] = q.shape, hkv = k.shape[1], s = k.shape[2], rep = h / hkv;
  let scores = tf.mul(tf.matMul(tf.reshape(q, [b, hkv, rep * t, d]), k, false, true), scale);
  if (cap > 0) scores = tf.mul(tf.tanh(tf.div(scores, cap)), cap);
  scores = tf.add(tf.reshape(scores, [b, h, t, s]), bias);
  const probs = tf.reshape(tf.softmax(scores), [b, hkv, rep * t, s]);
  const out = tf.reshape(tf.matMul(probs, v), [b, h, t, d]);
  return tf.transpose(out, [0, 2, 1, 3]);
}

const rnd = (shape: number[], seed: number, scale = 1) =>
  tf.mul(tf.randomNormal(shape, 0, 1, "float32", seed), scale);

Deno.test({
  name: "fused layer norm, GELU and attention equal the composed ops",
  ignore: !onWasm,
  fn: () => {
    tf.tidy(() => {
      const x = rnd([3, 5, 16], 1, 3), w = rnd([16], 2), b = rnd([16], 3);
      const ln = fusedLayerNorm(x, w, b, 1e-5)!;
      assert.ok(ln, "fused layer norm ran");
      assert.ok(
        maxAbsDiff(
          Array.from(ln.dataSync()),
          Array.from(composedLayerNorm(x, w, b, 1e-5).dataSync()),
        ) < 2e-6,
      );
      const g = fusedGelu(x)!;
      assert.ok(g, "fused GELU ran");
      const before = useFusedKernels(false);
      const composedGelu = gelu(x);
      useFusedKernels(before);
      assert.ok(maxAbsDiff(Array.from(g.dataSync()), Array.from(composedGelu.dataSync())) < 2e-6);
      for (const [h, hkv, cap] of [[4, 4, 0], [4, 2, 0], [6, 2, 5]]) {
        const [B, T, S, D] = [2, 3, 7, 8];
        const q = rnd([B, h, T, D], 4) as tf.Tensor4D;
        const k = rnd([B, hkv, S, D], 5) as tf.Tensor4D, v = rnd([B, hkv, S, D], 6) as tf.Tensor4D;
        // causal over the last T slots, and row 1's first two slots padded
        const mask = new Float32Array(B * T * S).map((_, i) => {
          const bb = Math.floor(i / (T * S)), t = Math.floor(i / S) % T, s = i % S;
          return s > S - T + t || (bb === 1 && s < 2) ? -1e9 : 0;
        });
        const bias = tf.tensor4d(mask, [B, 1, T, S]);
        const z = fusedAttention(q, k, v, bias, 1 / Math.sqrt(D), cap)!;
        assert.ok(z, "fused attention ran");
        const want = composedAttention(q, k, v, bias, 1 / Math.sqrt(D), cap);
        assert.deepEqual(z.shape, want.shape);
        assert.ok(
          maxAbsDiff(Array.from(z.dataSync()), Array.from(want.dataSync())) < 2e-6,
          `H ${h} Hkv ${hkv} cap ${cap}`,
        );
      }
    });
  },
});

Deno.test({
  name: "fused kernels step aside under a gradient tape and above their size limit",
  ignore: !onWasm,
  fn: () => {
    const x = tf.variable(rnd([2, 8], 7));
    let inside: tf.Tensor | undefined = tf.zeros([1]);
    const { grads, value } = tf.variableGrads(() => {
      inside = fusedGelu(x);
      return tf.sum(gelu(x)) as tf.Scalar;
    }, [x]);
    assert.equal(inside, undefined, "no fused kernel while a gradient is recorded");
    assert.ok(Number.isFinite(grads[x.name].dataSync()[0]));
    const big = tf.zeros([FUSED_MAX_GELU_ELEMENTS + 1]);
    assert.equal(fusedGelu(big), undefined);
    tf.dispose([x, value, big, ...Object.values(grads)]);
  },
});

async function logitsOf(m: Model, fused: boolean) {
  const before = useFusedKernels(fused);
  try {
    const ids = [[3, 1, 4, 1, 5, 9, 2], [2, 6, 5, 3, 5, 8, 9]];
    const mask = [[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]];
    const full = m.forward(ids, { attentionMask: mask });
    const logits = Array.from(await full.logits!.data());
    full.logits!.dispose();
    // a cached decode: prefix of 5, then two single steps
    const pre = m.forward(ids.map((r) => r.slice(0, 5)), {
      attentionMask: mask.map((r) => r.slice(0, 5)),
      useCache: true,
    });
    let cache = pre.cache!;
    const steps: number[] = [];
    tf.dispose(pre.logits!);
    for (let s = 5; s < 7; s++) {
      const f = m.forward(ids.map((r) => [r[s]]), {
        attentionMask: mask.map((r) => r.slice(0, s + 1)),
        cache,
      });
      steps.push(...(await f.logits!.data()));
      f.logits!.dispose();
      tf.dispose([...cache.k, ...cache.v]);
      cache = f.cache!;
    }
    tf.dispose([...cache.k, ...cache.v]);
    const gen = await m.generate({
      inputIds: [[3, 1, 4], [2, 6]],
      maxNewTokens: 6,
      stopAtEos: false,
    });
    return { logits, steps, tokens: gen.tokenIds };
  } finally {
    useFusedKernels(before);
  }
}

Deno.test({
  name: "models: forward, cached decoding and greedy generation agree with the kernels on and off",
  ignore: !onWasm,
  fn: async () => {
    const models = [
      await tinyModel("gpt2", 3),
      await tinyModel("llama", 4),
      tinyModelFromConfig(
        TINY_GEMMA2_CONFIG,
        5,
        10,
      ),
    ];
    for (const m of models) {
      const on = await logitsOf(m, true), off = await logitsOf(m, false);
      const where = m.source;
      // full forwards never use the fused kernels: bit-equal
      assert.equal(maxAbsDiff(on.logits, off.logits), 0, `${where} forward`);
      const diff = maxAbsDiff(on.steps, off.steps);
      assert.ok(diff < 1e-4, `${where} cached steps: ${diff}`);
      assert.ok(diff > 0, `${where}: the fused kernels ran in the cached steps`);
      assert.deepEqual(on.tokens, off.tokens, `${where} greedy tokens`);
      m.dispose();
    }
  },
});
