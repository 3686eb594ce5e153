/**
 * The kernels lib/engine/kernels.ts registers on the wasm backend: the gradient of `gather`
 * (UnsortedSegmentSum), an `Identity` that shares its input's data instead of copying it, and
 * `Slice` and `GatherV2` that copy only what they take (checked against index arithmetic).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/engine/backend.ts";
import { wasmHeapView } from "../lib/engine/kernels.ts";

await initBackend("wasm");

Deno.test("wasm Identity shares data: clone adds no buffer and outlives its source", () => {
  const a = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
  const buffers = tf.memory().numDataBuffers;
  const b = tf.clone(a);
  assert.equal(tf.memory().numDataBuffers, buffers, "no new data buffer");
  a.dispose();
  assert.deepEqual(Array.from(b.dataSync()), [1, 2, 3, 4, 5, 6]);
  const c = tf.add(b, 1); // a kernel reading the shared buffer after its first owner is gone
  assert.deepEqual(Array.from(c.dataSync()), [2, 3, 4, 5, 6, 7]);
  tf.dispose([b, c]);
  assert.equal(tf.memory().numDataBuffers, buffers - 1, "the buffer is freed with its last user");
});

Deno.test("wasm Cast to the same type shares data; a real cast still converts, to bool as x != 0", () => {
  const a = tf.tensor2d([[1.5, -2.25], [3, 4]]);
  const buffers = tf.memory().numDataBuffers;
  const b = tf.cast(a, "float32");
  assert.equal(tf.memory().numDataBuffers, buffers, "no new data buffer");
  a.dispose();
  assert.deepEqual(Array.from(b.dataSync()), [1.5, -2.25, 3, 4]);
  const i = tf.cast(b, "int32"), f = tf.cast(i, "float32"), bool = tf.cast(b, "bool");
  assert.equal(i.dtype, "int32");
  assert.deepEqual(Array.from(i.dataSync()), [1, -2, 3, 4]);
  assert.deepEqual(Array.from(f.dataSync()), [1, -2, 3, 4]);
  assert.deepEqual(Array.from(bool.dataSync()), [1, 1, 1, 1]);
  const odd = tf.tensor1d([0, -0, 0.5, 256, -2.25, NaN]), oddBool = tf.cast(odd, "bool");
  assert.deepEqual(
    Array.from(oddBool.dataSync()),
    [0, 0, 1, 1, 1, 1],
    "x != 0 (the stock kernel gave 0.5 -> 0, 256 -> 0)",
  );
  tf.dispose([odd, oddBool]);
  // the gradient of mul casts its saved inputs: the same values, no copies
  const x = tf.tensor1d([0.5, -3, 7]);
  const g = tf.grad((v: tf.Tensor) => tf.mul(v, v))(x);
  assert.deepEqual(Array.from(g.dataSync()), [1, -6, 14]);
  tf.dispose([b, i, f, bool, x, g]);
  assert.equal(tf.memory().numDataBuffers, buffers - 1, "every buffer is freed with its last user");
});

Deno.test("wasm gather gradient (UnsortedSegmentSum) scatters into the right rows", () => {
  const table = tf.variable(tf.tensor2d([[1, 1], [2, 2], [3, 3]]));
  const ids = tf.tensor1d([2, 0, 2], "int32");
  const { grads, value } = tf.variableGrads(() => tf.sum(tf.gather(table, ids)), [table]);
  assert.deepEqual(Array.from(grads[table.name].dataSync()), [1, 1, 0, 0, 2, 2]);
  tf.dispose([table, ids, value, ...Object.values(grads)]);
});

/** The slice of a row-major array by index arithmetic alone (the reference). */
function sliceReference(
  vals: ArrayLike<number>,
  shape: number[],
  begin: number[],
  size: number[],
): number[] {
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const n = size.reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let o = 0; o < n; o++) {
    let rest = o, off = 0;
    for (let d = shape.length - 1; d >= 0; d--) {
      off += (begin[d] + (rest % size[d])) * strides[d];
      rest = Math.floor(rest / size[d]);
    }
    out.push(vals[off]);
  }
  return out;
}

Deno.test("wasm Slice equals index arithmetic for every rank, dtype and block layout", () => {
  let seed = 7;
  const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % k);
  const cases: { shape: number[]; begin: number[]; size: number[] }[] = [
    { shape: [6], begin: [2], size: [3] },
    { shape: [4, 9], begin: [0, 3], size: [4, 3] }, // a column block (the q|k|v cut)
    { shape: [4, 9], begin: [1, 0], size: [2, 9] }, // whole rows: one contiguous block
    { shape: [3, 1024, 8], begin: [1, 0, 0], size: [1, 1024, 8] },
    { shape: [2, 3, 4, 8], begin: [0, 0, 0, 4], size: [2, 3, 4, 4] }, // RoPE's halves
    { shape: [2, 3, 4, 5, 2], begin: [1, 1, 0, 2, 0], size: [1, 2, 4, 3, 2] },
    { shape: [2, 3], begin: [0, 0], size: [2, 3] }, // the whole tensor
    { shape: [3, 4], begin: [1, 2], size: [0, 2] }, // empty
  ];
  for (let r = 0; r < 30; r++) { // random layouts, ranks 1..4
    const shape = Array.from({ length: 1 + rand(4) }, () => 1 + rand(5));
    const begin = shape.map((s) => rand(s));
    cases.push({ shape, begin, size: shape.map((s, d) => 1 + rand(s - begin[d])) });
  }
  for (const { shape, begin, size } of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const dtype of ["float32", "int32", "bool"] as const) {
      const vals = Array.from({ length: n }, (_, i) => dtype === "bool" ? i % 3 === 0 ? 1 : 0 : i);
      const x = tf.tensor(vals, shape, dtype);
      const y = tf.slice(x, begin, size);
      assert.deepEqual(y.shape, size);
      assert.equal(y.dtype, dtype);
      assert.deepEqual(
        Array.from(y.dataSync()),
        sliceReference(vals, shape, begin, size),
        `slice of [${shape}] at [${begin}] size [${size}] (${dtype})`,
      );
      tf.dispose([x, y]);
    }
  }
  // size -1 = "to the end"; a string tensor goes to the stock kernel.
  const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(tf.slice(x, [0, 1], [-1, -1]).arraySync(), [[2, 3], [5, 6]]);
  assert.deepEqual(tf.slice(tf.tensor1d(["a", "b", "c"], "string"), [1], [2]).arraySync(), [
    "b",
    "c",
  ]);
});

Deno.test("wasm GatherV2 equals index arithmetic on every axis, batchDims and dtype; bad indices are an error", () => {
  let seed = 11;
  const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % k);
  const prod = (d: number[]) => d.reduce((a, b) => a * b, 1);
  for (let r = 0; r < 60; r++) {
    const shape = Array.from({ length: 1 + rand(4) }, () => 1 + rand(5));
    const axis = rand(shape.length);
    const batchDims = rand(axis + 1); // 0..axis
    // indices: the batch dims of x, then 0-2 dims of their own (empty ones too)
    const own = rand(3) === 0 ? [2, 1 + rand(3)] : [rand(5)];
    const idxShape = [...shape.slice(0, batchDims), ...own];
    const idx = Array.from({ length: prod(idxShape) }, () => rand(shape[axis]));
    const [batch, outer] = [prod(shape.slice(0, batchDims)), prod(shape.slice(batchDims, axis))];
    const inner = prod(shape.slice(axis + 1)), m = prod(own);
    for (const dtype of ["float32", "int32", "bool"] as const) {
      const vals = Array.from(
        { length: prod(shape) },
        (_, i) => dtype === "bool" ? i % 3 === 0 ? 1 : 0 : i,
      );
      const x = tf.tensor(vals, shape, dtype);
      const ids = tf.tensor(idx, idxShape, "int32");
      const y = tf.gather(x, ids, axis, batchDims);
      const want: number[] = [];
      for (let b = 0; b < batch; b++) {
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < m; i++) {
            const at = ((b * outer + o) * shape[axis] + idx[b * m + i]) * inner;
            for (let j = 0; j < inner; j++) want.push(vals[at + j]);
          }
        }
      }
      const where = `gather [${shape}] axis ${axis} batchDims ${batchDims} (${dtype})`;
      assert.deepEqual(y.shape, [...shape.slice(0, axis), ...own, ...shape.slice(axis + 1)], where);
      assert.equal(y.dtype, dtype);
      assert.deepEqual(Array.from(y.dataSync()), want, where);
      tf.dispose([x, ids, y]);
    }
  }
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  assert.throws(
    () => tf.gather(x, tf.tensor1d([0, 2], "int32")),
    /index value 2 is not in \[0, 1\]/,
  );
  assert.throws(() => tf.gather(x, tf.tensor1d([-1], "int32")), /index value -1/);
  assert.deepEqual(tf.gather(x, tf.tensor1d([1], "int32"), -1).arraySync(), [[2], [4]]);
  // the case the stock wasm kernel got wrong ([[2], [2.4e-44]])
  const b = tf.gather(x, tf.tensor2d([[1], [0]], [2, 1], "int32"), 1, 1);
  assert.deepEqual(b.arraySync(), [[2], [3]]);
  tf.dispose([x, b]);
});

Deno.test("wasm Slice's gradient pads back into place", () => {
  const x = tf.variable(tf.tensor2d([[1, 2, 3, 4], [5, 6, 7, 8]]));
  const { grads, value } = tf.variableGrads(
    () => tf.sum(tf.mul(tf.slice(x, [0, 1], [2, 2]), tf.tensor2d([[1, 2], [3, 4]]))),
    [x],
  );
  assert.deepEqual(Array.from(grads[x.name].dataSync()), [0, 1, 2, 0, 0, 3, 4, 0]);
  tf.dispose([x, value, ...Object.values(grads)]);
});

Deno.test("wasmHeapView reads a float32 tensor in place, and declines what it cannot view", () => {
  const x = tf.tensor2d([[1.5, -2], [3, 4.25]]);
  const view = wasmHeapView(x)!;
  assert.ok(view instanceof Float32Array);
  assert.deepEqual(Array.from(view), Array.from(x.dataSync()));
  const ints = tf.tensor1d([1, 2], "int32");
  assert.equal(wasmHeapView(ints), undefined, "int32 is not viewed as float32");
  x.dispose();
  assert.equal(wasmHeapView(x), undefined, "a disposed tensor has no view");
  ints.dispose();
});
