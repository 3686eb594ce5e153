/**
 * The host-state SIMD passes (lib/engine/host_passes.ts over lib/engine/host_state_wasm.ts)
 * against the JavaScript loops they replace, bit for bit: gradient accumulation into host
 * arrays, their sum of squares, and AdamW's host update with its finiteness flags, on values
 * that exercise rounding (odd sizes for the one-element tail, subnormals, zeros of both signs,
 * float32 overflow, NaN), then a whole micro-batched GPT-2 training step with host state. The
 * loops run with the SIMD kernels off (`useSimdKernels(false)`), the passes with them on.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { useSimdKernels } from "../lib/engine/simd_kernels.ts";
import { hostArrays, hostMemoryOf } from "../lib/engine/host_memory.ts";
import { accumulateOnHost, adamwOnHost, sumSquaresOnHost } from "../lib/engine/host_passes.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { chunk, GradientAccumulator, targetTokens } from "../lib/optim/accumulate.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";
import { makeRng } from "../lib/data/rng.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

/** Values that exercise rounding: magnitudes from subnormal to near float32's limit, both zeros. */
function awkward(n: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  const special = [0, -0, 1e-42, -3e-39, 1e-30, 3e38, -2.5e38, 1, -1, 0.1];
  return Float32Array.from(
    { length: n },
    (_, j) =>
      j < special.length
        ? special[(j + seed) % special.length]
        : rng.normal() * 10 ** (rng.next() * 12 - 6),
  );
}

function assertSameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      assert.fail(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
    }
  }
}

Deno.test("hostArrays: zeroed Float32Arrays, each group in one memory, plain arrays past the cap", () => {
  const [[a, b], [c]] = hostArrays([[5, 3], [7]]);
  assert.deepEqual([a.length, b.length, c.length], [5, 3, 7]);
  assert.ok([a, b, c].every((x) => x.every((v) => v === 0)));
  assert.ok(hostMemoryOf(a) !== undefined && hostMemoryOf(a) === hostMemoryOf(b));
  a.fill(1);
  assert.ok(b.every((v) => v === 0), "arrays of a group do not overlap");
  assert.equal(hostMemoryOf(new Float32Array(3)), undefined);
  assert.throws(() => hostArrays([[1.5]]), /1.5 is not a whole number/);
});

Deno.test("accumulateOnHost and sumSquaresOnHost: the loops' bits", { ignore: !onWasm }, () => {
  for (const n of [1, 2, 3, 17, 1001]) {
    const [[fast], [loop]] = hostArrays([[n], [n]]);
    const shares = [0.3, 1 / 3, 1];
    shares.forEach((share, k) => {
      const d = awkward(n, 11 + k);
      const g = tf.tensor(d);
      const first = k === 0;
      assert.ok(accumulateOnHost(fast, g, share, first), `the pass applies (n=${n})`);
      if (first) { for (let j = 0; j < n; j++) loop[j] = share * d[j]; }
      else for (let j = 0; j < n; j++) loop[j] += share * d[j];
      g.dispose();
      assertSameBits(fast, loop, `accumulate n=${n} part ${k}`);
    });
    let sq = 0;
    for (const a of [loop, fast]) for (let j = 0; j < a.length; j++) sq += a[j] * a[j];
    assert.ok(Object.is(sumSquaresOnHost([fast, loop]), sq), `sum of squares n=${n}`);
  }
  // Not a host array, or the kernels off: the caller's loop runs.
  const g = tf.tensor([1, 2]);
  assert.equal(accumulateOnHost(new Float32Array(2), g, 1, true), false);
  const before = useSimdKernels(false);
  assert.equal(accumulateOnHost(hostArrays([[2]])[0][0], g, 1, true), false);
  assert.equal(sumSquaresOnHost(hostArrays([[2]])[0]), undefined);
  useSimdKernels(before);
  g.dispose();
});

Deno.test(
  "adamwOnHost: updateHost's weights, moments and flags, bit for bit",
  { ignore: !onWasm },
  async () => {
    for (const n of [1, 2, 5, 1003]) {
      const w0 = awkward(n, 3).map((v) => Math.abs(v) > 1e30 ? v / 1e30 : v);
      for (const [decay, gs, gradScale] of [[true, 1, 1], [false, 0.7, 1e20]] as const) {
        const runs: { w: Float32Array; m: Float32Array; v: Float32Array; bad: unknown }[] = [];
        for (const simd of [false, true]) {
          const before = useSimdKernels(simd);
          const x = tf.variable(tf.tensor(w0));
          const opt = new AdamW({ lr: 1e-2, weightDecay: 0.1, stateLocation: "host" });
          const [[g]] = hostArrays([[n]]);
          let bad: unknown;
          for (let step = 0; step < 3; step++) {
            g.set(awkward(n, 20 + step).map((v) => v * gradScale));
            await opt.stepFromHost([x], [g], 0.5 + step / 4, [decay], gs);
            bad = await opt.nonFinite([x]);
          }
          const st = await opt.getState();
          runs.push({ w: x.dataSync() as Float32Array, m: st.m[0], v: st.v[0], bad });
          x.dispose();
          opt.dispose();
          useSimdKernels(before);
        }
        const what = `n=${n} decay=${decay} gs=${gs} scale=${gradScale}`;
        assertSameBits(runs[1].w, runs[0].w, `${what}: weights`);
        assertSameBits(runs[1].m, runs[0].m, `${what}: first moment`);
        assertSameBits(runs[1].v, runs[0].v, `${what}: second moment`);
        assert.deepEqual(runs[1].bad, runs[0].bad, `${what}: finiteness`);
        if (gradScale > 1 && n > 10) {
          assert.ok(
            runs[0].bad !== undefined,
            "huge gradients overflow a moment",
          );
        }
      }
    }
    // The pass itself applies to host arrays of one memory, and refuses anything else.
    const x = tf.variable(tf.tensor([1, 2, 3]));
    const [[g], [m, v]] = hostArrays([[3], [3, 3]]);
    const k = {
      gs: 1,
      beta1: 0.9,
      c1: 0.1,
      beta2: 0.999,
      c2: 0.001,
      keep: 1,
      step: 0.1,
      ib2: 1000,
      eps: 1e-8,
    };
    g.set([1, -1, Number.NaN]);
    const r = adamwOnHost(x, g, m, v, k);
    assert.ok(r, "the pass applies");
    assert.equal(r.flags, 7, "a NaN gradient: weights and both moments flagged");
    r.weights.dispose();
    assert.equal(adamwOnHost(x, g, new Float32Array(3), v, k), undefined);
    assert.equal(adamwOnHost(x, g, m, hostArrays([[3]])[0][0], k), undefined);
    x.dispose();
  },
);

Deno.test(
  "a micro-batched host-state GPT-2 step: the same weights with the passes as with the loops",
  { ignore: !onWasm },
  async () => {
    const rows = Array.from(
      { length: 6 },
      (_, i) => Array.from({ length: 9 }, (_, j) => 1 + ((i * 7 + j * 3) % 30)),
    );
    const parts = chunk(rows, 2).map((r) => {
      const batch = padBatch(r, new Array(r.length).fill(1));
      return { batch, weight: targetTokens(batch) };
    });
    const out: Float32Array[][] = [];
    const norms: number[] = [];
    for (const simd of [false, true]) {
      const before = useSimdKernels(simd);
      const m = await tinyModel("gpt2", 5);
      const vars = [...m.params.values()];
      const opt = new AdamW({ lr: 3e-3, stateLocation: "host" });
      const acc = new GradientAccumulator(vars, "host");
      for (let step = 0; step < 3; step++) {
        await acc.accumulate(parts, (b) => lmLoss(m.config, m.params, b));
        norms.push(await acc.apply(opt, { clip: 0.5 }));
      }
      out.push(vars.map((x) => x.dataSync() as Float32Array));
      acc.dispose();
      opt.dispose();
      m.dispose();
      useSimdKernels(before);
    }
    assert.deepEqual(norms.slice(3), norms.slice(0, 3), "the clip norms");
    out[0].forEach((a, i) => assertSameBits(out[1][i], a, `variable ${i}`));
  },
);
