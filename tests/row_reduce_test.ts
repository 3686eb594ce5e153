/**
 * Sum and Max over trailing axes through the SIMD row kernels (lib/engine/reduce_wasm.ts
 * `rowSum`, `rowMax`: four rows in lanes) against the stock tfjs-wasm kernels, bit for bit:
 * row counts around multiples of four, one to many columns, NaNs (with their payloads),
 * infinities, zeros of both signs tied for the maximum, several trailing axes, keepDims; then a
 * log-softmax and its gradient over a GPT-2-sized vocabulary. And `Transpose` by the identity
 * permutation (lib/engine/kernels.ts), which now shares its input's data.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { useTestBackend } from "./_helpers.ts";
import { useSimdKernels } from "../lib/engine/simd_kernels.ts";
import { makeRng } from "../lib/data/rng.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

/** Values with NaNs, infinities and signed zeros planted in some rows. */
function awkward(rows: number, cols: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  const x = Float32Array.from({ length: rows * cols }, () => rng.normal() * 10);
  for (let r = 0; r < rows; r++) {
    const at = (c: number) => r * cols + Math.min(c, cols - 1);
    switch (r % 7) {
      case 1:
        x[at(0)] = NaN;
        break; // a NaN: the row's max is NaN
      case 2: // two NaNs: the row's max is the last, bits and all
        x[at(2)] = NaN;
        x[at(4)] = new Float32Array(new Uint32Array([0xffc00004]).buffer)[0];
        break;
      case 3:
        for (let c = 0; c < cols; c++) x[at(c)] = c % 2 ? 0 : -0;
        break; // tied zeros
      case 4:
        x[at(1)] = Infinity;
        x[at(3)] = -Infinity;
        break;
      case 5:
        for (let c = 0; c < cols; c++) x[at(c)] = -Math.abs(x[at(c)]) - 1;
        x[at(cols - 1)] = -0;
        break;
      case 6:
        x[at(cols >> 1)] = 3e38;
        x[at(0)] = 3e38;
        break; // the sum overflows
    }
  }
  return x;
}

function bitsOf(t: tf.Tensor): Uint32Array {
  return new Uint32Array(new Float32Array(t.dataSync()).buffer);
}

function sameBits(a: tf.Tensor, b: tf.Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shapes`);
  const x = bitsOf(a), y = bitsOf(b);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      assert.fail(`${what}: output ${i}: ${a.dataSync()[i]} vs ${b.dataSync()[i]} (stock)`);
    }
  }
}

/** `op` with the SIMD kernels on and off (off: the stock kernels). */
function both(op: () => tf.Tensor): [tf.Tensor, tf.Tensor] {
  const before = useSimdKernels(true);
  const fast = tf.tidy(op);
  useSimdKernels(false);
  const stock = tf.tidy(op);
  useSimdKernels(before);
  return [fast, stock];
}

Deno.test("rowSum and rowMax: the stock Sum and Max over trailing axes, bit for bit", {
  ignore: !onWasm,
}, () => {
  for (const rows of [1, 3, 4, 5, 8, 9, 14]) {
    for (const cols of [1, 2, 5, 64, 641]) {
      const x = tf.tensor2d(awkward(rows, cols, rows * 100 + cols), [rows, cols]);
      for (const keepDims of [false, true]) {
        const [fs, ss] = both(() => tf.sum(x, -1, keepDims));
        sameBits(fs, ss, `sum [${rows}, ${cols}] keepDims=${keepDims}`);
        const [fm, sm] = both(() => tf.max(x, -1, keepDims));
        sameBits(fm, sm, `max [${rows}, ${cols}] keepDims=${keepDims}`);
        tf.dispose([fs, ss, fm, sm]);
      }
      x.dispose();
    }
  }
  // Several trailing axes, and a 3-D input over its last one.
  const x = tf.tensor3d(awkward(6, 35, 5), [6, 5, 7]);
  for (const axes of [[1, 2], [2], -1]) {
    const [fs, ss] = both(() => tf.sum(x, axes));
    sameBits(fs, ss, `sum axes ${axes}`);
    const [fm, sm] = both(() => tf.max(x, axes, true));
    sameBits(fm, sm, `max axes ${axes}`);
    tf.dispose([fs, ss, fm, sm]);
  }
  x.dispose();
});

Deno.test("a log-softmax over 50,257 logits and its gradient: the stock kernels' bits", {
  ignore: !onWasm,
}, () => {
  const [rows, vocab] = [6, 50257];
  const rng = makeRng(8);
  const logits = tf.tensor2d(Float32Array.from({ length: rows * vocab }, () => rng.normal() * 4), [
    rows,
    vocab,
  ]);
  const dy = tf.tensor2d(Float32Array.from({ length: rows * vocab }, () => rng.normal()), [
    rows,
    vocab,
  ]);
  const grad = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.logSoftmax(x), dy)));
  const [fv, sv] = both(() => tf.logSoftmax(logits));
  sameBits(fv, sv, "log-softmax");
  const [fg, sg] = both(() => grad(logits));
  sameBits(fg, sg, "its gradient");
  tf.dispose([logits, dy, fv, sv, fg, sg]);
});

Deno.test("Transpose by the identity shares the data; other permutations still transpose", {
  ignore: !onWasm,
}, () => {
  const x = tf.tensor3d([1, 2, 3, 4, 5, 6], [1, 2, 3]);
  const same = tf.transpose(x, [0, 1, 2]);
  assert.equal(same.dataId, x.dataId, "no copy");
  assert.deepEqual([...same.dataSync()], [1, 2, 3, 4, 5, 6]);
  x.dispose();
  assert.deepEqual([...same.dataSync()], [1, 2, 3, 4, 5, 6], "outlives its input");
  const t = tf.transpose(same, [0, 2, 1]);
  assert.deepEqual([...t.dataSync()], [1, 4, 2, 5, 3, 6]);
  tf.dispose([same, t]);
});
