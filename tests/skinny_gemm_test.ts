/**
 * The few-rows library (lib/engine/skinny_gemm.ts: the native kernel, else BLIS): which products
 * go there (large models' decoding steps; never SafetyWorld's shapes, whose numbers stay
 * OpenBLAS's), that they do go there when a library is loaded, and that their numbers are right:
 * against a float64 product, and a cached decoding step of a model wide enough to use it against
 * the full forward (OpenBLAS) within float32 rounding. Tests that need the library skip with a
 * message where neither is available (no C compiler and no libblis4-pthread). The native
 * kernel's own properties are in tests/few_rows_gemm_test.ts.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { useTestBackend } from "./_helpers.ts";
import { float64MatMul, numberTokenizer, relErr } from "./_helpers.ts";
import { blasInfo } from "../lib/engine/blas.ts";
import {
  isSkinny,
  SKINNY_MAX_ROWS,
  SKINNY_MIN_WEIGHTS,
  skinnyCalls,
} from "../lib/engine/skinny_gemm.ts";
import { createModel } from "../lib/model/create.ts";
import { externalMatrix } from "../lib/engine/external_matrix.ts";
import { externalMatMul, externalWeightsInfo } from "../lib/engine/external_weights.ts";
import { disposeCache } from "../lib/model/transformer.ts";
import { makeRng } from "../lib/data/rng.ts";

await useTestBackend();
const blis = tf.getBackend() === "wasm" && blasInfo().skinny !== undefined;
const native = blasInfo().skinnyKind === "native";
if (!blis) {
  console.log(
    `  skinny_gemm_test: no few-rows library in use (${blasInfo().reason}); its tests skip`,
  );
}

Deno.test("isSkinny: large models' decoding products, never SafetyWorld's", () => {
  assert.ok(isSkinny(8, 768, 3072) && isSkinny(1, 768, 50257) && isSkinny(16, 768, 768));
  assert.ok(!isSkinny(SKINNY_MAX_ROWS + 1, 768, 3072), "prefill and training stay on OpenBLAS");
  // SafetyWorld (d 128, MLP 512, vocab 640) and the tiny test models: below the size limit.
  for (const [k, n] of [[128, 384], [128, 512], [512, 128], [128, 640]]) {
    assert.ok(k * n < SKINNY_MIN_WEIGHTS && !isSkinny(8, k, n), `${k} x ${n}`);
  }
});

Deno.test({
  name: "products with few rows go to the few-rows library and match a float64 product",
  ignore: !blis,
  fn() {
    const rng = makeRng(3);
    for (
      const [m, k, n, tB] of [[8, 1024, 1024, false], [1, 768, 1000, true], [
        5,
        777,
        900,
        true,
      ]] as const
    ) {
      const a = Float32Array.from({ length: m * k }, () => rng.normal());
      const b = Float32Array.from({ length: k * n }, () => rng.normal());
      const before = skinnyCalls();
      const c = tf.tidy(() =>
        tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, tB ? [n, k] : [k, n]), false, tB)
      );
      const got = c.dataSync();
      c.dispose();
      assert.equal(skinnyCalls() - before, 1, `${m}x${k}x${n}: one product there`);
      const e = relErr(got, float64MatMul(a, b, m, n, k, tB));
      assert.ok(e < 1e-5, `${m}x${k}x${n} transposeB=${tB}: relative error ${e}`);
    }
  },
});

Deno.test({
  name: "a cached decoding step through the few-rows library matches the full forward (OpenBLAS)",
  ignore: !blis,
  async fn() {
    // d 512 with a 2048-wide MLP: its products of 6 rows go to the few-rows library, the full
    // forward's to OpenBLAS.
    const spec = {
      arch: "gpt2" as const,
      vocabSize: 1200,
      nLayer: 2,
      dModel: 512,
      nHead: 8,
      maxPositions: 64,
    };
    const m = await createModel(spec, {
      tokenizer: numberTokenizer(1200),
      backend: "wasm",
      seed: 4,
    });
    const ids = Array.from(
      { length: 6 },
      (_, i) => Array.from({ length: 9 }, (_, j) => (i * 37 + j * 11) % 1200),
    );
    const full = m.forward(ids);
    const want = tf.tidy(() => tf.slice(full.logits!, [0, 8, 0], [6, 1, 1200]).dataSync());
    full.logits!.dispose();
    const pre = m.forward(ids.map((r) => r.slice(0, 8)), { useCache: true, logits: "none" });
    const before = skinnyCalls();
    const step = m.forward(ids.map((r) => r.slice(8)), { cache: pre.cache, logits: "last" });
    assert.ok(skinnyCalls() - before >= 4, "the step's MLP and q|k|v products ran there");
    const got = await step.logits!.data();
    const e = relErr(got, want);
    assert.ok(e < 1e-5, `cached step vs full forward: relative error ${e}`);
    step.logits!.dispose();
    disposeCache(step.cache);
    disposeCache(pre.cache);
    m.dispose();
  },
});

Deno.test({
  name: "external float32 weights: products of few rows go there; all match a float64 product",
  ignore: !blis || !externalWeightsInfo().native,
  fn() {
    const rng = makeRng(9);
    const [n, k] = [700, 768]; // an nn.Linear(768, 700).weight, [out, in]: 537,600 entries
    const w = Float32Array.from({ length: n * k }, () => rng.normal());
    const ext = externalMatrix(w, [n, k], { name: "proj" });
    for (const m of [1, 3, 16]) {
      const x = Float32Array.from({ length: m * k }, () => rng.normal());
      const before = skinnyCalls();
      const y = tf.tidy(() => externalMatMul(tf.tensor2d(x, [m, k]), ext));
      const got = y.dataSync();
      y.dispose();
      // With BLIS, one row stays on OpenBLAS's two-threaded sgemv; the native kernel takes it.
      const there = m === 1 && !native ? 0 : 1;
      assert.equal(skinnyCalls() - before, there, `m=${m}: products on the few-rows library`);
      const e = relErr(got, float64MatMul(x, w, m, n, k, true)); // w is [out, in]
      assert.ok(e < 1e-5, `m=${m}: relative error ${e}`);
    }
  },
});
