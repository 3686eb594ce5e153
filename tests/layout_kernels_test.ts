/**
 * The layout kernels (lib/engine/layout_kernels.ts: Concat, Transpose and Slice as SIMD block
 * copies) against the kernels they replace, bit for bit, on shapes that reach every path (one to
 * four collapsed loops, size-1 axes, blocks with and without a four-float remainder, int32
 * copies, the stock kernel's cases) and on values with IEEE corner cases (zeros of both signs,
 * infinities, NaN, subnormals); then a whole decoding run and an LM-loss gradient with and
 * without them.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { useSimdKernels } from "../lib/engine/simd_kernels.ts";
import { collapse, splitHeads } from "../lib/engine/layout_kernels.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";

await useTestBackend();
const onWasm = tf.getBackend() === "wasm";

/** Values with IEEE corner cases first, then a spread of magnitudes and signs. */
function awkward(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const special = [0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-40, 3e38, -3e38, 1, -1];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const j = (i * 7 + seed) % (special.length * 3);
    out[i] = j < special.length ? special[j] : (u() - 0.5) * 10 ** (u() * 8 - 4);
  }
  return out;
}

/** Runs `f` with the layout kernels on and off; their results' bits must be equal. */
function assertSame(f: () => tf.Tensor, what: string): void {
  // Bits of float32 results read through Int32Array views: the heap's bytes as they are.
  const run = (on: boolean) => {
    const before = useSimdKernels(on);
    try {
      const t = tf.tidy(f);
      const v = t.dataSync();
      t.dispose();
      const bits = v instanceof Float32Array
        ? new Uint32Array(v.buffer, v.byteOffset, v.length).slice()
        : Uint32Array.from(v as Int32Array);
      return { bits, shape: t.shape, dtype: t.dtype };
    } finally {
      useSimdKernels(before);
    }
  };
  const fast = run(true), stock = run(false);
  assert.deepEqual(fast.shape, stock.shape, `${what}: shape`);
  assert.equal(fast.dtype, stock.dtype, `${what}: dtype`);
  for (let i = 0; i < fast.bits.length; i++) {
    if (fast.bits[i] === stock.bits[i]) continue;
    const f32 = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];
    // Two NaNs may carry different payloads; anything else must match to the bit.
    if (Number.isNaN(f32(fast.bits[i])) && Number.isNaN(f32(stock.bits[i]))) continue;
    assert.fail(`${what}: element ${i}: ${f32(fast.bits[i])} vs ${f32(stock.bits[i])}`);
  }
}

const rand = (shape: number[], seed: number) =>
  tf.tensor(awkward(tf.util.sizeFromShape(shape), seed), shape, "float32");

Deno.test("layout kernels: collapse merges contiguous axes and drops size-1 ones", () => {
  assert.deepEqual(collapse([4, 3, 2], [[6, 2, 1], [0, 0, 1]]), [
    { n: 12, strides: [2, 0] },
    { n: 2, strides: [1, 1] },
  ]);
  assert.deepEqual(collapse([1, 5, 1], [[5, 1, 1]]), [{ n: 5, strides: [1] }]);
  // a transposed order cannot merge
  assert.deepEqual(collapse([3, 4], [[1, 3]]), [{ n: 3, strides: [1] }, { n: 4, strides: [3] }]);
  assert.deepEqual(collapse([], []), []);
});

Deno.test({
  name: "layout kernels: Transpose, Slice and Concat equal the stock kernels bit for bit",
  ignore: !onWasm,
  fn() {
    const shapes = [[2, 5, 3, 8], [4, 7, 2, 5], [3, 1, 4, 32], [1, 6, 1, 3]];
    for (const [k, s] of shapes.entries()) {
      for (const perm of [[0, 2, 1, 3], [2, 0, 1, 3], [1, 2, 0, 3], [3, 1, 2, 0], [0, 1, 3, 2]]) {
        assertSame(() => tf.transpose(rand(s, k), perm), `transpose ${s} ${perm}`);
      }
      assertSame(
        () =>
          tf.transpose(
            tf.tensor(
              Array.from({ length: tf.util.sizeFromShape(s) }, (_, i) => i - 9),
              s,
              "int32",
            ),
            [0, 2, 1, 3],
          ),
        `int32 transpose ${s}`,
      );
    }
    assertSame(() => tf.transpose(rand([2, 3, 4, 5, 6], 3), [1, 0, 3, 2, 4]), "rank 5 transpose");
    const x = rand([6, 9, 7, 5], 11);
    const slices: [number[], number[]][] = [
      [[0, 0, 0, 0], [6, 9, 7, 5]],
      [[1, 0, 0, 0], [2, 9, 7, 5]], // contiguous
      [[0, 2, 0, 0], [6, 3, 7, 5]],
      [[0, 0, 0, 1], [6, 9, 7, 3]], // columns
      [[1, 2, 3, 1], [4, 5, 2, 4]], // four loops
      [[2, 4, 6, 4], [1, 1, 1, 1]],
    ];
    for (const [b, s] of slices) assertSame(() => tf.slice(x, b, s), `slice ${b} ${s}`);
    const m = rand([896, 384], 5);
    for (const j of [0, 1, 2]) assertSame(() => tf.slice(m, [0, j * 128], [-1, 128]), `qkv ${j}`);
    assertSame(() => tf.slice(m, [3, 5], [17, 9]), "2-D window");
    const ints = tf.tensor2d(Array.from({ length: 40 }, (_, i) => i * 3 - 50), [5, 8], "int32");
    assertSame(() => tf.slice(ints, [1, 2], [3, 5]), "int32 slice");
    const cache = rand([3, 4, 9, 32], 21), step = rand([3, 4, 1, 32], 22);
    assertSame(() => tf.concat([cache, step], 2), "KV-cache concat");
    for (const axis of [0, 1, 2, 3]) {
      const s1 = [3, 4, 5, 6], s2 = [...s1];
      s2[axis] = 2;
      assertSame(
        () => tf.concat([rand(s1, axis), rand(s2, axis + 9), rand(s1, 3)], axis),
        `concat ${axis}`,
      );
    }
    assertSame(
      () => tf.concat([rand([0, 3], 1), rand([2, 3], 2)], 0),
      "concat with an empty input",
    );
    assertSame(() => tf.concat([rand([2, 3], 1)], 0), "concat of one");
    assertSame(
      () => tf.concat([tf.tensor1d([1, 2], "int32"), tf.tensor1d([3], "int32")]),
      "int32 concat",
    );
    assertSame(
      () => tf.concat([tf.tensor1d([1, 0], "bool"), tf.tensor1d([1], "bool")]),
      "bool concat: stock",
    );
  },
});

Deno.test({
  name: "layout kernels: a model's greedy decoding and LM-loss gradient are unchanged bit for bit",
  ignore: !onWasm,
  async fn() {
    const m = await tinyModel("gpt2", 3);
    try {
      const gen = async (on: boolean) => {
        const before = useSimdKernels(on);
        try {
          return await m.generate({
            inputIds: [[1, 2, 3], [4, 5, 6, 7]],
            maxNewTokens: 12,
            stopAtEos: false,
          });
        } finally {
          useSimdKernels(before);
        }
      };
      const [fast, stock] = [await gen(true), await gen(false)];
      assert.deepEqual(fast.tokenIds, stock.tokenIds);
      assert.deepEqual(fast.logprobs, stock.logprobs, "log-probs to the bit");
      const batch = padBatch([[1, 2, 3, 4, 5, 6], [7, 8, 9]], [1, 1]);
      const vars = [...m.params.values()].filter((v) => v instanceof tf.Variable) as tf.Variable[];
      for (const v of vars) {
        assertSame(() => {
          const { grads } = tf.variableGrads(() => lmLoss(m.config, m.params, batch), [v]);
          return grads[v.name];
        }, `gradient of ${v.name}`);
      }
    } finally {
      m.dispose();
    }
  },
});

Deno.test({
  name:
    "splitHeads: the blocks' heads and their gradient, bit for bit the composed ops' (zeros of both signs)",
  ignore: !onWasm,
  fn() {
    for (const [b, t, heads, d] of [[2, 3, 4, 5], [3, 1, 2, 8], [1, 7, 1, 3]]) {
      const w = 3 * heads * d;
      const x = tf.tensor2d(awkward(b * t * w, b + t), [b * t, w]);
      // weights with -0 and +0, so some gradients are -0 (the slices' zero pads make them +0)
      const u = [0, 1, 2].map((j) =>
        tf.tensor4d(
          awkward(b * heads * t * d, 20 + j).map((v, i) => (i % 7 === 0 ? -0 : v)),
          [b, heads, t, d],
        )
      );
      const composed = (xv: tf.Tensor) =>
        [0, 1, 2].map((j) =>
          tf.transpose(
            tf.reshape(tf.slice(xv, [0, j * heads * d], [b * t, heads * d]), [b, t, heads, d]),
            [0, 2, 1, 3],
          )
        );
      const loss = (fast: boolean) => (xv: tf.Tensor) => {
        const parts = fast ? splitHeads(xv as tf.Tensor2D, b, t, 3, heads)! : composed(xv);
        assert.equal(parts.length, 3);
        // k's gradient never comes when only q and v are used: zeros, as the slices give
        return tf.addN([0, 2].map((j) => tf.sum(tf.mul(parts[j], u[j])))) as tf.Scalar;
      };
      const fast = splitHeads(x, b, t, 3, heads)!; // no tape: the forward kernel alone
      const want = composed(x);
      const bitsOf = (g: tf.Tensor) => new Uint32Array(new Float32Array(g.dataSync()).buffer);
      fast.forEach((p, j) => {
        assert.deepEqual(p.shape, want[j].shape);
        assert.deepEqual(bitsOf(p), bitsOf(want[j]), `block ${j}`);
      });
      const gWant = tf.grad(loss(false))(x), gGot = tf.grad(loss(true))(x);
      assert.deepEqual(bitsOf(gGot), bitsOf(gWant), `gradient, ${[b, t, heads, d]}`);
      assert.ok(Array.from(gWant.dataSync()).some((v) => v === 0), "the case has zero gradients");
      tf.dispose([x, ...u, ...fast, ...want, gWant, gGot]);
    }
    assert.equal(splitHeads(tf.zeros([4, 6]) as tf.Tensor2D, 2, 3, 3, 1), undefined, "rows != b t");
  },
});
