/**
 * AdamW's finiteness check after each update reads the weights and moments straight off the
 * wasm heap (lib/engine/simd_kernels.ts `nonFiniteFlags`, lib/engine/reduce_wasm.ts
 * `nonFiniteBits`): each tensor's flag must be "holds a NaN or an infinity", for every length
 * around the four-lane loop's edge and every position of the bad value, and must not be raised
 * by finite extremes (the largest floats, subnormals, zeros of both signs). `AdamW.nonFinite`
 * must name the same place with the scan as with the composed sums.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { useTestBackend } from "./_helpers.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { nonFiniteFlags, useSimdKernels } from "../lib/engine/simd_kernels.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

Deno.test({
  name: "nonFiniteFlags: a NaN or an infinity anywhere, and nothing else, raises a tensor's flag",
  ignore: !onWasm,
  fn: () => {
    const extremes = [3.4028234663852886e38, -3.4028234663852886e38, 1.4e-45, -1.4e-45, 0, -0];
    for (let n = 1; n <= 13; n++) {
      const base = Float32Array.from({ length: n }, (_, j) => extremes[j % extremes.length]);
      const clean = tf.tensor(base, [n]);
      assert.deepEqual(nonFiniteFlags([clean]), [false], `n=${n}: finite extremes`);
      for (let at = 0; at < n; at++) {
        for (const bad of [NaN, Infinity, -Infinity]) {
          const a = base.slice();
          a[at] = bad;
          const t = tf.tensor(a, [n]);
          assert.deepEqual(
            nonFiniteFlags([clean, t, clean]),
            [false, true, false],
            `n=${n}: ${bad} at ${at}`,
          );
          t.dispose();
        }
      }
      clean.dispose();
    }
    // finite values whose sum overflows are finite (a sum check would have flagged them)
    const big = tf.tensor([3e38, 3e38, 3e38], [3]);
    assert.equal(tf.sum(big).dataSync()[0], Infinity);
    assert.deepEqual(nonFiniteFlags([big]), [false]);
    big.dispose();
    // a NaN with a payload and the sign bit set is still a NaN
    const bits = new Uint32Array([0xffc00001, 0x3f800000]);
    const t = tf.tensor(new Float32Array(bits.buffer), [2]);
    assert.deepEqual(nonFiniteFlags([t]), [true]);
    // steps aside with the kernels off, for another dtype, for a disposed tensor
    const before = useSimdKernels(false);
    assert.equal(nonFiniteFlags([t]), undefined);
    useSimdKernels(before);
    const ints = tf.tensor([1, 2], [2], "int32");
    assert.equal(nonFiniteFlags([ints]), undefined);
    tf.dispose([t, ints]);
    assert.equal(nonFiniteFlags([t]), undefined);
  },
});

/** AdamW.nonFinite after a step whose gradient or state holds `bad` at `where`. */
async function located(where: "grad" | "m" | "v", bad: number, simd: boolean) {
  const before = useSimdKernels(simd);
  try {
    const vars = [tf.variable(tf.ones([3, 5])), tf.variable(tf.ones([7]))];
    const opt = new AdamW({ lr: 1e-2 });
    opt.step(vars, vars.map((x) => tf.onesLike(x)));
    const state = await opt.getState();
    if (where === "m") state.m[1][4] = bad;
    if (where === "v") state.v[1][4] = bad;
    opt.setState(vars, state);
    const g = vars.map((x) => tf.onesLike(x));
    const gb = where === "grad" ? tf.tensor([1, 1, bad, 1, 1, 1, 1], [7]) : g[1];
    opt.step(vars, [g[0], gb]);
    const r = await opt.nonFinite(vars);
    tf.dispose([...vars, ...g, gb]);
    opt.dispose();
    return r;
  } finally {
    useSimdKernels(before);
  }
}

Deno.test({
  name: "AdamW.nonFinite: the heap scan names the place the composed sums name",
  ignore: !onWasm,
  fn: async () => {
    for (const where of ["grad", "m", "v"] as const) {
      for (const bad of [NaN, Infinity]) {
        const scan = await located(where, bad, true);
        const sums = await located(where, bad, false);
        assert.ok(scan, `${where} ${bad}: found`);
        assert.deepEqual(scan, sums, `${where} ${bad}`);
        assert.equal(scan.index, 1, `${where} ${bad}: the second variable`);
      }
    }
    assert.equal(await located("grad", 1, true), undefined, "a finite update passes");
  },
});
