import * as tf from "@tensorflow/tfjs-core";
import { createModel } from "../lib/model/create.ts";
import { numberTokenizer, TEST_BACKEND } from "./_helpers.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import { makeRng } from "../lib/data/rng.ts";
Deno.env.set("SAFETY_COMPASS_QUIET", "1");
const spec = { arch: "gpt2", vocabSize: 256, nLayer: 4, dModel: 128, nHead: 4, maxPositions: 128 } as const;
const m = await createModel(spec, { tokenizer: numberTokenizer(256), backend: TEST_BACKEND });
const rng = makeRng(1);
const ids = (k: number) => Array.from({ length: k }, () => 1 + rng.int(200)).join(" ");
const rows = Array.from({ length: 64 }, (_, i) => ({ prompt: ids(16 + (i % 16)), trace: ids(32 + (i % 16)) }));
for (const pooling of ["none", "mean", "none", "mean", "last"] as const) {
  const a = await collectActivations(m, rows, { pooling, batchSize: 16 });
  console.log(`pooling=${pooling}: ${a.tokensPerSecond.toFixed(0)} tok/s, ${a.seconds.toFixed(2)} s`);
}
// components
const B = 16, T = 63;
const batch = Array.from({ length: B }, () => Array.from({ length: T }, () => 1 + rng.int(200)));
let t0 = performance.now();
const f = m.forward(batch, { hiddenStates: "all", logits: "none" });
await f.hiddenStates[4].data();
console.log("forward", (performance.now() - t0).toFixed(0), "ms");
t0 = performance.now();
for (const h of f.hiddenStates) {
  const p = tf.tidy(() => tf.sum(tf.mul(h, tf.ones([B, T, 1])), 1));
  await p.data(); p.dispose();
}
console.log("pool mul+sum x5", (performance.now() - t0).toFixed(0), "ms");
t0 = performance.now();
for (const h of f.hiddenStates) {
  const p = tf.tidy(() => tf.matMul(tf.ones([B, 1, T]) as tf.Tensor3D, h));
  await p.data(); p.dispose();
}
console.log("pool matMul x5", (performance.now() - t0).toFixed(0), "ms");
t0 = performance.now();
for (const h of f.hiddenStates) { await h.data(); }
console.log("download x5", (performance.now() - t0).toFixed(0), "ms");
