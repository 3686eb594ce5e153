/**
 * Parity tests for lib/engine/external_weights.ts: `externalMatMul` with f32 and bf16 host
 * matrices in both layouts against `tf.matMul` on a dense tensor (the BLAS path) and a
 * float64 loop over the same (bf16-rounded) values; gradients against `tf.grad` of the dense
 * product and finite differences; `externalGather` against `tf.gather`; no tensor leaks; the
 * dense fallback on the cpu backend and its error for oversized matrices. The native cases
 * are skipped (with the reason printed) where OpenBLAS or --allow-ffi is absent.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs"; // registers the gradients
import { float64MatMul } from "./_helpers.ts";
import { detectBlas, enableBlas } from "../lib/engine/blas.ts";
import { registerWasmKernels } from "../lib/engine/kernels.ts";
import { bf16TileToF32, bf16ToF32Array, f32ToBf16Array } from "../lib/engine/bf16_convert.ts";
import {
  type ExternalLayout,
  type ExternalMatrix,
  externalMatrix,
  toExternalDType,
} from "../lib/engine/external_matrix.ts";
import {
  disableBf16Helper,
  enableBf16Helper,
  externalGather,
  externalMatMul,
  externalWeightsInfo,
} from "../lib/engine/external_weights.ts";
import { makeRng } from "../lib/data/rng.ts";

const found = detectBlas();
const ignore = found.path === undefined;
if (ignore) console.log(`external_weights_test: native cases skipped: ${found.reason}`);

async function useWasm(): Promise<void> {
  await tf.setBackend("wasm");
  registerWasmKernels();
  assert.equal(enableBlas().enabled, true);
  assert.equal(externalWeightsInfo().native, true, externalWeightsInfo().reason);
}

function randomF32(n: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** out = x op(W) in float64, with W the stored [rows, cols] values. */
function reference(
  x: Float32Array,
  m: number,
  w: Float32Array,
  rows: number,
  cols: number,
  layout: ExternalLayout,
): Float64Array {
  const [k, n] = layout === "out_in" ? [cols, rows] : [rows, cols];
  return float64MatMul(x, w, m, n, k, layout === "out_in");
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): { abs: number; rel: number } {
  assert.equal(a.length, b.length, "lengths differ");
  let abs = 0, scale = 1;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { abs, rel: abs / scale };
}

function read(t: tf.Tensor): Float32Array {
  const v = t.dataSync<"float32">().slice();
  t.dispose();
  return v;
}

interface Shape {
  lead: number[];
  k: number;
  n: number;
}
// M = 1 (decode), M = 8 x 128 (a batch), odd K/N, and sizes that make bf16 run several tiles
// (at M = 1 a tile is 512 KiB of f32: 131 rows of 1000; above 16 rows, 8 MiB: 1024 rows of 2048).
const SHAPES: Shape[] = [
  { lead: [1], k: 37, n: 29 },
  { lead: [8, 128], k: 70, n: 45 },
  { lead: [2, 3], k: 1, n: 5 },
  { lead: [1], k: 1000, n: 300 },
  { lead: [20], k: 2048, n: 2100 },
  { lead: [8], k: 1100, n: 600 }, // 2-16 rows: 2 MiB tiles, 476 (out_in) or 873 rows
];
const TOL = 1e-4;

Deno.test({
  name: "externalMatMul equals tf.matMul and a float64 loop for f32 and bf16 storage, both layouts",
  ignore,
  async fn() {
    await useWasm();
    let worst = 0, worstBf16 = 0;
    for (const [si, s] of SHAPES.entries()) {
      for (const layout of ["out_in", "in_out"] as ExternalLayout[]) {
        // bf16 cases run on the tiled path only where it matters (out_in for the big ones).
        const m = s.lead.reduce((a, b) => a * b, 1);
        const [rows, cols] = layout === "out_in" ? [s.n, s.k] : [s.k, s.n];
        const x = randomF32(m * s.k, 10 + si);
        const w32 = externalMatrix(randomF32(rows * cols, 20 + si), [rows, cols], { layout });
        const wbf = toExternalDType(w32, "bfloat16");
        const rounded = bf16ToF32Array(wbf.data as Uint16Array);
        for (const w of [w32, wbf]) {
          const values = w === w32 ? (w32.data as Float32Array) : rounded;
          const xt = tf.tensor(x, [...s.lead, s.k]);
          const y = externalMatMul(xt, w);
          assert.deepEqual(y.shape, [...s.lead, s.n]);
          const dense = tf.tensor2d(values, [rows, cols]);
          const yRef = tf.matMul(xt.reshape([m, s.k]), dense, false, layout === "out_in");
          const got = read(y);
          const d1 = maxDiff(got, read(yRef));
          const d2 = maxDiff(got, reference(x, m, values, rows, cols, layout));
          tf.dispose([xt, dense]);
          const what = `${w.dtype} ${layout} [${s.lead}, ${s.k}] -> ${s.n}`;
          assert.ok(d1.rel < TOL && d2.rel < TOL, `${what}: diff ${d1.rel} / ${d2.rel}`);
          if (w === w32) worst = Math.max(worst, d1.abs, d2.abs);
          else worstBf16 = Math.max(worstBf16, d1.abs, d2.abs);
        }
      }
    }
    console.log(
      `max abs diff vs tf.matMul / float64: f32 ${worst.toExponential(2)}, bf16 (vs the same ` +
        `bf16-rounded values) ${worstBf16.toExponential(2)} (rel tol ${TOL}) OK`,
    );
  },
});

function gradCase(w: ExternalMatrix, lead: number[], seed: number) {
  const { layout, rows, cols } = w;
  const k = layout === "out_in" ? cols : rows, n = layout === "out_in" ? rows : cols;
  const x = tf.tensor(randomF32(lead.reduce((a, b) => a * b, 1) * k, seed), [...lead, k]);
  const r = tf.tensor(randomF32(lead.reduce((a, b) => a * b, 1) * n, seed + 1), [...lead, n]);
  const dense = tf.tensor2d(
    w.data instanceof Float32Array ? w.data : bf16ToF32Array(w.data as Uint16Array),
    [rows, cols],
  );
  return { x, r, dense, k, n };
}

Deno.test({
  name: "externalMatMul's gradient wrt x equals tf.grad of the dense product, in both layouts",
  ignore,
  async fn() {
    await useWasm();
    let worst = 0;
    for (const layout of ["out_in", "in_out"] as ExternalLayout[]) {
      for (
        const [lead, shape] of [[[1], [29, 37]], [[4, 33], [45, 70]]] as [
          number[],
          [number, number],
        ][]
      ) {
        for (const dtype of ["float32", "bfloat16"] as const) {
          const w = toExternalDType(
            externalMatrix(randomF32(shape[0] * shape[1], 3), shape, { layout }),
            dtype,
          );
          const { x, r, dense, k } = gradCase(w, lead, 7);
          const g = tf.grad((xx: tf.Tensor) => externalMatMul(xx, w).mul(r).sum())(x);
          const gRef = tf.grad((xx: tf.Tensor) =>
            tf.matMul(xx.reshape([-1, k]), dense, false, layout === "out_in").reshape(r.shape)
              .mul(r).sum()
          )(x);
          assert.deepEqual(g.shape, x.shape);
          const d = maxDiff(read(g), read(gRef));
          assert.ok(d.rel < TOL, `${dtype} ${layout} [${lead}]: grad diff ${d.rel}`);
          worst = Math.max(worst, d.abs);
          tf.dispose([x, r, dense]);
        }
      }
    }
    console.log(`gradient max abs diff vs dense tf.grad ${worst.toExponential(2)} OK`);
  },
});

Deno.test({
  name: "externalMatMul's gradient matches central finite differences",
  ignore,
  async fn() {
    await useWasm();
    const w = externalMatrix(randomF32(3 * 5, 4), [3, 5]); // Linear(5, 3)
    const x0 = randomF32(2 * 5, 5);
    const r = tf.tensor2d(randomF32(2 * 3, 6), [2, 3]);
    const f = (x: Float32Array) =>
      tf.tidy(() => externalMatMul(tf.tensor2d(x, [2, 5]), w).mul(r).sum().dataSync()[0]);
    const g = read(
      tf.grad((x: tf.Tensor) => externalMatMul(x, w).mul(r).sum())(tf.tensor2d(x0, [2, 5])),
    );
    const eps = 1e-2;
    let worst = 0;
    for (let i = 0; i < x0.length; i++) {
      const plus = x0.slice(), minus = x0.slice();
      plus[i] += eps;
      minus[i] -= eps;
      const fd = (f(plus) - f(minus)) / (2 * eps);
      worst = Math.max(worst, Math.abs(fd - g[i]));
    }
    r.dispose();
    assert.ok(worst < 1e-3, `finite-difference diff ${worst}`);
    console.log(`finite differences: max abs diff ${worst.toExponential(2)} (tol 1e-3) OK`);
  },
});

Deno.test({
  name: "gradients flow through a frozen external matrix into a LoRA-style adapter",
  ignore,
  async fn() {
    await useWasm();
    const w = toExternalDType(externalMatrix(randomF32(24 * 16, 8), [24, 16]), "bfloat16");
    const dense = tf.tensor2d(bf16ToF32Array(w.data as Uint16Array), [24, 16]);
    const h = tf.tensor2d(randomF32(5 * 16, 9), [5, 16]);
    const a = tf.tensor2d(randomF32(16 * 4, 10), [16, 4]);
    const b = tf.tensor2d(randomF32(4 * 16, 11), [4, 16]);
    // loss = sum((h + h A B) W^T)^2: the adapter feeds the frozen product.
    const loss = (prod: (t: tf.Tensor) => tf.Tensor) => (aa: tf.Tensor) =>
      prod(h.add(h.matMul(aa).matMul(b))).square().sum();
    const g = tf.grad(loss((t) => externalMatMul(t, w)))(a);
    const gRef = tf.grad(loss((t) => tf.matMul(t, dense, false, true)))(a);
    const d = maxDiff(read(g), read(gRef));
    tf.dispose([dense, h, a, b]);
    assert.ok(d.rel < TOL, `adapter grad diff ${d.rel}`);
    console.log(`adapter gradient max rel diff ${d.rel.toExponential(2)} OK`);
  },
});

Deno.test({
  name: "externalMatMul and its gradient leak no tensors",
  ignore,
  async fn() {
    await useWasm();
    const w = toExternalDType(externalMatrix(randomF32(300 * 1000, 12), [300, 1000]), "bfloat16");
    const x = tf.tensor(randomF32(2 * 3 * 1000, 13), [2, 3, 1000]);
    const run = () =>
      tf.tidy(() => {
        const y = externalMatMul(x, w);
        const g = tf.grad((xx: tf.Tensor) => externalMatMul(xx, w).sum())(x);
        return y.sum().add(g.sum());
      }).dispose();
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
  },
});

Deno.test({
  name: "externalGather equals tf.gather for f32 and bf16 tables, and rejects bad ids",
  ignore,
  async fn() {
    await useWasm();
    const table = randomF32(50 * 7, 14);
    const ids = [0, 49, 3, 3, 17, 25];
    const ref = tf.tidy(() => tf.gather(tf.tensor2d(table, [50, 7]), tf.tensor1d(ids, "int32")));
    const refValues = read(ref);
    const w32 = externalMatrix(table, [50, 7], { name: "embed" });
    const idsT = tf.tensor2d(ids, [2, 3], "int32");
    const before = tf.memory().numTensors;
    const got = externalGather(w32, idsT);
    assert.deepEqual(got.shape, [2, 3, 7]);
    assert.deepEqual(read(got), refValues);
    const wbf = toExternalDType(w32, "bfloat16");
    const rounded = bf16ToF32Array(f32ToBf16Array(refValues));
    assert.deepEqual(read(externalGather(wbf, ids)), rounded);
    assert.equal(tf.memory().numTensors, before);
    idsT.dispose();
    assert.throws(() => externalGather(w32, [50]), /Cannot gather row 50 of embed/);
  },
});

Deno.test({
  name: "with the bf16 helper thread, decode-sized bf16 products and gradients are unchanged",
  ignore,
  async fn() {
    await useWasm();
    assert.equal((await enableBf16Helper()).native, true);
    try {
      let worst = 0;
      for (const layout of ["out_in", "in_out"] as ExternalLayout[]) {
        for (const [m, k, n] of [[1, 1000, 300], [5, 333, 517], [16, 64, 2000], [1, 30, 10]]) {
          const [rows, cols] = layout === "out_in" ? [n, k] : [k, n];
          const w = toExternalDType(
            externalMatrix(randomF32(rows * cols, m + k), [rows, cols], { layout }),
            "bfloat16",
          );
          const values = bf16ToF32Array(w.data as Uint16Array);
          const x = randomF32(m * k, n);
          const xt = tf.tensor2d(x, [m, k]);
          const before = tf.memory().numTensors;
          const d = maxDiff(
            read(externalMatMul(xt, w)),
            reference(x, m, values, rows, cols, layout),
          );
          const r = tf.tensor2d(randomF32(m * n, 3), [m, n]);
          const g = read(tf.grad((xx: tf.Tensor) => externalMatMul(xx, w).mul(r).sum())(xt));
          const dense = tf.tensor2d(values, [rows, cols]);
          const gRef = read(
            tf.grad((xx: tf.Tensor) =>
              tf.matMul(xx, dense, false, layout === "out_in").mul(r).sum()
            )(xt),
          );
          tf.dispose([r, dense]);
          assert.equal(tf.memory().numTensors, before);
          const dg = maxDiff(g, gRef);
          assert.ok(d.rel < TOL && dg.rel < TOL, `${layout} ${m}x${k}->${n}: ${d.rel} ${dg.rel}`);
          worst = Math.max(worst, d.abs, dg.abs);
          xt.dispose();
        }
      }
      console.log(`helper thread: max abs diff ${worst.toExponential(2)} OK`);
    } finally {
      disableBf16Helper();
    }
  },
});

Deno.test("bf16 conversion is exact and rounds to nearest even", () => {
  const bits = new Uint16Array(70000 % 65536 + 37);
  for (let i = 0; i < bits.length; i++) bits[i] = (i * 40503) & 0xffff;
  const f = bf16TileToF32(bits, 5, bits.length - 5);
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  for (let i = 0; i < f.length; i++) assert.equal(u[i], bits[i + 5] << 16 >>> 0);
  // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1).
  assert.deepEqual(
    f32ToBf16Array(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2, NaN])),
    new Uint16Array([0x3f80, 0x3f82, 0xc000, 0x7fc0]),
  );
});

Deno.test("on the cpu backend externalMatMul uploads the matrix and keeps its gradient", async () => {
  await tf.setBackend("cpu");
  try {
    const w = toExternalDType(externalMatrix(randomF32(6 * 4, 15), [6, 4]), "bfloat16");
    const dense = tf.tensor2d(bf16ToF32Array(w.data as Uint16Array), [6, 4]);
    const x = tf.tensor2d(randomF32(3 * 4, 16), [3, 4]);
    assert.equal(externalWeightsInfo().native, false);
    const d = maxDiff(read(externalMatMul(x, w)), read(tf.matMul(x, dense, false, true)));
    assert.ok(d.rel < TOL);
    const g = read(tf.grad((xx: tf.Tensor) => externalMatMul(xx, w).sum())(x));
    const gRef = read(tf.grad((xx: tf.Tensor) => tf.matMul(xx, dense, false, true).sum())(x));
    assert.ok(maxDiff(g, gRef).rel < TOL);
    // Too big to upload: the error names the matrix, its size and the fix.
    const huge: ExternalMatrix = {
      name: "model.embed_tokens.weight",
      rows: 151936,
      cols: 2560,
      dtype: "bfloat16",
      layout: "out_in",
      data: new Uint16Array(0),
    };
    assert.throws(
      () => externalMatMul(tf.zeros([1, 2560]), huge),
      /model\.embed_tokens\.weight \[151936, 2560\].*1\.45 GiB.*libopenblas0-pthread/,
    );
    tf.dispose([dense, x]);
  } finally {
    await tf.setBackend("wasm");
  }
});
