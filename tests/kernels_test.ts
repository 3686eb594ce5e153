/**
 * The kernels lib/engine/kernels.ts registers on the wasm backend: the gradient of `gather`
 * (UnsortedSegmentSum) and an `Identity` that shares its input's data instead of copying it.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/engine/backend.ts";

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

Deno.test("wasm gather gradient (UnsortedSegmentSum) scatters into the right rows", () => {
  const table = tf.variable(tf.tensor2d([[1, 1], [2, 2], [3, 3]]));
  const ids = tf.tensor1d([2, 0, 2], "int32");
  const { grads, value } = tf.variableGrads(() => tf.sum(tf.gather(table, ids)), [table]);
  assert.deepEqual(Array.from(grads[table.name].dataSync()), [1, 1, 0, 0, 2, 2]);
  tf.dispose([table, ids, value, ...Object.values(grads)]);
});
