/**
 * The SIMD kernels (lib/engine/simd_kernels.ts: GELU and sums over leading axes) and the assembler under them
 * (lib/engine/wasm_simd.ts) against what they replace, bit for bit: the six composed tfjs ops
 * and the gradient tfjs's autodiff takes through them, on values that exercise rounding (odd
 * sizes for the one-lane tail, tiny and huge inputs, zeros of both signs, saturation), then the
 * LM-loss gradients of whole GPT-2 and Gemma-style (gated GELU) models and the shipped
 * SafetyWorld checkpoint.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { TINY_GEMMA2_CONFIG, tinyModel, tinyModelFromConfig, useTestBackend } from "./_helpers.ts";
import { geluSimd, layerNormSimd, useSimdKernels } from "../lib/engine/simd_kernels.ts";
import { compileSimd, simdModuleBytes } from "../lib/engine/wasm_simd.ts";
import { gelu } from "../lib/model/transformer.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";
import { loadModel } from "../lib/model/load.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import type { Model } from "../lib/model/model.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

/** The float32 bit patterns of a tensor's values. */
function bits(t: tf.Tensor): Uint32Array {
  return new Uint32Array(new Float32Array(t.dataSync()).buffer);
}

function assertBitEqual(a: tf.Tensor, b: tf.Tensor, what: string): void {
  const x = bits(a), y = bits(b);
  assert.equal(x.length, y.length, `${what}: sizes`);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      const show = (v: number) => Object.is(v, -0) ? "-0" : String(v);
      const fa = new Float32Array(x.buffer)[i], fb = new Float32Array(y.buffer)[i];
      assert.fail(`${what}: element ${i} differs: ${show(fa)} vs ${show(fb)}`);
    }
  }
}

/** Values that exercise float32 rounding: a spread of magnitudes, signs, zeros, saturation. */
function awkward(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const out = new Float32Array(n);
  const special = [0, -0, 1e-30, -1e-30, 1e-7, 30, -30, 200, -200, 3.4e12];
  for (let i = 0; i < n; i++) {
    out[i] = i < special.length ? special[i] : (u() - 0.5) * 10 ** (u() * 4 - 2);
  }
  return out;
}

Deno.test("wasm_simd: programs run four lanes and the tail, with float32 rounding per step", () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const fns = compileSimd(memory, [{
    name: "f",
    inputs: ["a", "b"],
    steps: [["p", "mul", "a", "b"], ["q", "sub", 0.1, "p"], ["r", "add", "q", "a"]],
    output: "r",
  }]);
  assert.ok(fns, "this engine has WebAssembly SIMD");
  const heap = new Float32Array(memory.buffer);
  for (const n of [0, 1, 3, 4, 5, 8, 11, 1001]) {
    const a = awkward(n, n + 1), b = awkward(n, n + 7);
    heap.fill(-1);
    heap.set(a, 0);
    heap.set(b, 4096);
    fns.f(0, 4096 * 4, 8192 * 4, n);
    const f = Math.fround;
    for (let i = 0; i < n; i++) {
      const want = f(f(f(0.1) - f(a[i] * b[i])) + a[i]);
      assert.ok(
        Object.is(heap[8192 + i], want),
        `n ${n}, element ${i}: ${heap[8192 + i]} vs ${want}`,
      );
    }
    assert.equal(heap[8192 + n], -1, `n ${n}: nothing written past the end`);
  }
  assert.throws(
    () =>
      simdModuleBytes([{ name: "g", inputs: ["a"], steps: [["p", "mul", "a", "c"]], output: "p" }]),
    /step p reads "c" before it is set/,
  );
});

Deno.test({
  name: "Sum over leading axes: bit for bit the stock kernel, shapes and keepDims included",
  ignore: !onWasm,
  fn: () => {
    const cases: [number[], number | number[], boolean][] = [
      [[3968, 512], 0, false],
      [[64, 62, 128], [0, 1], false],
      [[64, 62, 128], [0, 1], true],
      [[64, 62, 128], [1, 0], true], // another order of addition: the stock kernel
      [[5, 3], [0], false],
      [[7, 2, 5], [-3, -2], false],
      [[9, 1, 11], 0, true],
      [[2, 3, 4], [1], false], // not leading: the stock kernel
      [[2, 3, 4], [0, 2], false],
      [[6, 4], [0, 1], false], // every axis: the stock kernel
    ];
    for (const [shape, axis, keepDims] of cases) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = tf.tensor(awkward(n, n + 11), shape);
      const before = useSimdKernels(false);
      const want = tf.sum(x, axis, keepDims);
      useSimdKernels(true);
      const got = tf.sum(x, axis, keepDims);
      useSimdKernels(before);
      assert.deepEqual(got.shape, want.shape, `sum [${shape}] over ${axis}: shape`);
      assertBitEqual(got, want, `sum [${shape}] over ${axis}`);
      tf.dispose([x, want, got]);
    }
    // -0 alone sums to +0 from a +0 start, as the stock kernel's does
    const z = tf.tensor2d([[-0, -0], [-0, 1]]);
    assertBitEqual(tf.sum(z, 0), tf.tensor1d([0, 1]), "sum of negative zeros");
    z.dispose();
  },
});

Deno.test({
  name: "geluSimd: forward and gradient bit for bit the composed ops and autodiff",
  ignore: !onWasm,
  fn: () => {
    for (const shape of [[7], [3, 5], [64, 512], [2, 3, 129]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = tf.tensor(awkward(n, n), shape), w = tf.tensor(awkward(n, 3 * n), shape);
      const loss = (v: tf.Tensor) => tf.sum(tf.mul(gelu(v), w)) as tf.Scalar;
      const before = useSimdKernels(false);
      const yRef = gelu(x), gRef = tf.grad(loss)(x);
      useSimdKernels(true);
      const y = geluSimd(x)!, g = tf.grad(loss)(x);
      useSimdKernels(before);
      assert.ok(y, "the kernels apply on wasm");
      assertBitEqual(y, yRef, `gelu [${shape}]`);
      assertBitEqual(g, gRef, `gelu gradient [${shape}]`);
      tf.dispose([x, w, yRef, gRef, y, g]);
    }
  },
});

/** The composition lib/model/transformer.ts writes. */
function composedLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.mul(xc, xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b);
}

Deno.test({
  name: "layerNormSimd: forward and the gradients of x, w and b bit for bit the composed ops",
  ignore: !onWasm,
  fn: () => {
    for (
      const [shape, pass] of [[[3, 5, 128], true], [[7, 100], true], [[2, 3, 100], false]] as const
    ) {
      const d = shape[shape.length - 1], n = shape.reduce((a, b) => a * b, 1);
      const x = tf.tensor(awkward(n, n), [...shape]), u = tf.tensor(awkward(n, 5 * n), [...shape]);
      const w = tf.tensor(awkward(d, 3), [d]), b = tf.tensor(awkward(d, 4), [d]);
      // a residual block's shape: res + f(norm(x)), and x's gradient also from the residual
      const loss = (simd: boolean) => (xv: tf.Tensor, wv: tf.Tensor, bv: tf.Tensor) => {
        const [y, res] = simd
          ? layerNormSimd(xv, wv, bv, 1e-5, pass)!
          : [composedLayerNorm(xv, wv, bv, 1e-5), xv];
        const out = pass ? tf.add(res, tf.mul(y, u)) : tf.mul(y, u);
        return tf.sum(tf.mul(out, out)) as tf.Scalar;
      };
      const yRef = composedLayerNorm(x, w, b, 1e-5);
      const [y, res] = layerNormSimd(x, w, b, 1e-5, pass)!;
      assert.equal(res, x, "without a tape the residual is x itself");
      assertBitEqual(y, yRef, `layer norm [${shape}]`);
      const before = tf.memory().numTensors;
      const ref = tf.grads(loss(false))([x, w, b]);
      const got = tf.grads(loss(true))([x, w, b]);
      ["x", "w", "b"].forEach((name, i) => {
        assertBitEqual(
          got[i],
          ref[i],
          `layer norm [${shape}] ${pass ? "with" : "without"} pass: d${name}`,
        );
      });
      tf.dispose([...ref, ...got]);
      assert.equal(tf.memory().numTensors, before, "the backward frees what it makes");
      tf.dispose([x, u, w, b, y, yRef]);
    }
  },
});

Deno.test({
  name: "AdamW in one SIMD pass: weights and moments bit for bit the composed ops over steps",
  ignore: !onWasm,
  fn: () => {
    const run = (simd: boolean) => {
      const before = useSimdKernels(simd);
      try {
        const vars = [[7], [3, 129], [64, 32]].map((shape, k) =>
          tf.variable(tf.tensor(awkward(shape.reduce((a, b) => a * b, 1), 40 + k), shape))
        );
        const opt = new AdamW({ lr: 3e-3, weightDecay: 0.1, eps: 1e-8 });
        for (let step = 0; step < 4; step++) {
          const grads = vars.map((v, k) => tf.tensor(awkward(v.size, 100 * step + k), v.shape));
          opt.step(vars, grads, step === 2 ? 0.5 : 1, [true, false, true]);
          tf.dispose(grads);
        }
        opt.dispose();
        return vars;
      } finally {
        useSimdKernels(before);
      }
    };
    const ref = run(false), got = run(true);
    ref.forEach((r, k) => assertBitEqual(got[k], r, `AdamW variable ${k}`));
    tf.dispose([...ref, ...got]);
  },
});

function lossGradients(m: Model, batch: ReturnType<typeof padBatch>, simd: boolean) {
  const before = useSimdKernels(simd);
  try {
    const vars = [...m.params.values()].filter((v) => v instanceof tf.Variable) as tf.Variable[];
    const { value, grads } = tf.variableGrads(() => lmLoss(m.config, m.params, batch), vars);
    return { loss: value, grads: vars.map((v) => [v.name, grads[v.name]] as const) };
  } finally {
    useSimdKernels(before);
  }
}

function assertModelBitEqual(m: Model, batch: ReturnType<typeof padBatch>, what: string) {
  const a = lossGradients(m, batch, false), b = lossGradients(m, batch, true);
  assertBitEqual(b.loss, a.loss, `${what}: loss`);
  assert.ok(a.grads.length > 0);
  for (let i = 0; i < a.grads.length; i++) {
    assertBitEqual(b.grads[i][1], a.grads[i][1], `${what}: gradient of ${a.grads[i][0]}`);
  }
  tf.dispose([a.loss, b.loss, ...a.grads.map((g) => g[1]), ...b.grads.map((g) => g[1])]);
}

Deno.test({
  name: "SIMD kernels: LM-loss gradients of GPT-2 and gated-GELU (Gemma 2) models are bit-equal",
  ignore: !onWasm,
  fn: async () => {
    const batch = padBatch([[1, 5, 9, 2, 7, 3], [4, 4, 8]], [2, 1]);
    const gpt2 = await tinyModel("gpt2", 3);
    assertModelBitEqual(gpt2, batch, "gpt2");
    gpt2.dispose();
    const gemma = tinyModelFromConfig(TINY_GEMMA2_CONFIG, 5);
    assertModelBitEqual(gemma, batch, "gemma2");
    gemma.dispose();
  },
});

Deno.test({
  name: "SIMD kernels: the shipped SafetyWorld model's LM-loss gradients are bit-equal",
  ignore: !onWasm,
  fn: async () => {
    const m = await loadModel("toy-base");
    const rows = Array.from(
      { length: 8 },
      (_, r) => Array.from({ length: 40 + r }, (_, i) => (i * 7 + r * 13) % 600 + 3),
    );
    assertModelBitEqual(m, padBatch(rows, rows.map(() => 1)), "toy-base");
    m.dispose();
  },
});
