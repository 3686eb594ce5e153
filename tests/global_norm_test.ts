/**
 * Global-norm clipping (lib/optim/adamw.ts's clipByGlobalNorm) reads each gradient's sum of
 * squares straight off the wasm heap (lib/engine/reduce_wasm.ts) instead of composing
 * `tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.mul(g, g)))))`: the norm and the clipped gradients
 * must be those of the composed ops bit for bit (the composed path runs with the SIMD kernels
 * turned off), on random gradients of many shapes and scales, zeros of both signs, and
 * non-finite values.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { useTestBackend } from "./_helpers.ts";
import { clipByGlobalNorm } from "../lib/optim/adamw.ts";
import { sumsOfSquares, useSimdKernels } from "../lib/engine/simd_kernels.ts";
import { makeRng } from "../lib/data/rng.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

/** The norm and clipped values with the SIMD kernels on or off. */
function clip(arrays: Float32Array[], shapes: number[][], maxNorm: number, simd: boolean) {
  const before = useSimdKernels(simd);
  try {
    const ts = arrays.map((a, i) => tf.tensor(a, shapes[i], "float32"));
    const c = clipByGlobalNorm(ts, maxNorm);
    const values = c.grads.map((g) => Array.from(g.dataSync()));
    tf.dispose(c.grads === ts ? ts : [...ts, ...c.grads]);
    return { norm: c.norm, values };
  } finally {
    useSimdKernels(before);
  }
}

Deno.test({
  name: "clipByGlobalNorm: the heap sums give the composed ops' norm and clipping bit for bit",
  ignore: !onWasm,
  fn: () => {
    assert.ok(sumsOfSquares([tf.zeros([2])]), "the heap sums run on wasm");
    const rng = makeRng(7);
    const shapes = [[640, 128], [128], [1], [128, 384], [384], [512, 128], [3, 5, 7], [50001]];
    for (let trial = 0; trial < 12; trial++) {
      const scale = [1e-4, 1, 30, 1e3][trial % 4];
      const arrays = shapes.map((s) =>
        Float32Array.from(
          { length: s.reduce((a, b) => a * b, 1) },
          () => (rng.next() - 0.5) * scale,
        )
      );
      if (trial === 5) arrays[1].fill(-0); // a gradient of negative zeros
      const on = clip(arrays, shapes, 1, true), off = clip(arrays, shapes, 1, false);
      assert.ok(Object.is(on.norm, off.norm), `trial ${trial}: norm ${on.norm} vs ${off.norm}`);
      for (let i = 0; i < shapes.length; i++) {
        assert.ok(
          on.values[i].every((x, j) => Object.is(x, off.values[i][j])),
          `trial ${trial}, gradient ${i}`,
        );
      }
    }
    // non-finite: an infinity and a NaN give the composed ops' norm (and no clipping)
    for (const bad of [Infinity, NaN]) {
      const arrays = [new Float32Array([1, 2, bad]), new Float32Array([3])];
      const on = clip(arrays, [[3], [1]], 1, true), off = clip(arrays, [[3], [1]], 1, false);
      assert.ok(Object.is(on.norm, off.norm), `${bad}: ${on.norm} vs ${off.norm}`);
    }
    const before = useSimdKernels(false);
    assert.equal(sumsOfSquares([tf.zeros([2])]), undefined, "off with the SIMD kernels");
    useSimdKernels(before);
  },
});
