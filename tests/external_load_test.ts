/**
 * Round trips of lib/model/external_load.ts against the project's own safetensors writer
 * and reader (lib/io/safetensors.ts): F32, F16 and BF16 tensors of one file and of a
 * sharded checkpoint read into external storage by byte range; storage conversions; errors
 * for a missing tensor, a missing shard and a truncated file.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readModelWeights, readSafetensors, writeSafetensors } from "../lib/io/safetensors.ts";
import { openCheckpoint, readExternalMatrix, readTensorF32 } from "../lib/model/external_load.ts";
import { bf16ToF32Array, f32ToBf16Array } from "../lib/engine/bf16_convert.ts";
import { makeRng } from "../lib/data/rng.ts";

function randomF32(n: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

const tensors = {
  "embed.weight": { shape: [11, 6], data: randomF32(66, 1), dtype: "BF16" as const },
  "layers.0.q.weight": { shape: [5, 6], data: randomF32(30, 2), dtype: "F32" as const },
  "layers.0.k.weight": { shape: [3, 6], data: randomF32(18, 3), dtype: "F16" as const },
  "layers.0.norm.weight": { shape: [6], data: randomF32(6, 4), dtype: "BF16" as const },
  "conv.weight": { shape: [2, 3, 4], data: randomF32(24, 5), dtype: "F32" as const },
};

Deno.test("a single safetensors file round-trips into external storage", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, tensors, { format: "pt" });
    const ref = await readSafetensors(path);
    for (const source of [path, dir]) {
      const ckpt = await openCheckpoint(source);
      assert.deepEqual(ckpt.metadata, { format: "pt" });
      assert.equal(ckpt.tensors.size, 5);
      for (const [name, t] of Object.entries(tensors)) {
        const m = await readExternalMatrix(ckpt, name);
        const want = ref.tensors.get(name)!.data; // values as stored (rounded to the dtype)
        assert.equal(m.dtype, t.dtype === "BF16" ? "bfloat16" : "float32", name);
        assert.equal(m.rows * m.cols, want.length);
        assert.equal(m.rows, t.shape.length >= 2 ? t.shape[0] : 1);
        const got = m.data instanceof Float32Array ? m.data : bf16ToF32Array(m.data as Uint16Array);
        assert.deepEqual(got, want, name);
        assert.deepEqual((await readTensorF32(ckpt, name)).data, want, name);
      }
      // Forced storage: F32 -> bf16 rounds as the writer does; BF16 -> f32 is exact.
      const q = await readExternalMatrix(ckpt, "layers.0.q.weight", { storage: "bfloat16" });
      assert.deepEqual(q.data, f32ToBf16Array(tensors["layers.0.q.weight"].data));
      const e = await readExternalMatrix(ckpt, "embed.weight", { storage: "float32" });
      assert.deepEqual(e.data, ref.tensors.get("embed.weight")!.data);
      const k16 = await readExternalMatrix(ckpt, "layers.0.k.weight", { storage: "bfloat16" });
      assert.deepEqual(k16.data, f32ToBf16Array(ref.tensors.get("layers.0.k.weight")!.data));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sharded checkpoint (model.safetensors.index.json) round-trips", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const names = Object.keys(tensors) as (keyof typeof tensors)[];
    const shards = [names.slice(0, 2), names.slice(2)];
    const weightMap: Record<string, string> = {};
    for (const [i, part] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(join(dir, file), Object.fromEntries(part.map((n) => [n, tensors[n]])));
      for (const n of part) weightMap[n] = file;
    }
    await Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const ref = await readModelWeights(dir);
    const ckpt = await openCheckpoint(dir);
    assert.equal(ckpt.tensors.size, names.length);
    for (const name of names) {
      assert.equal(ckpt.tensors.get(name)!.path, join(dir, weightMap[name]));
      assert.deepEqual((await readTensorF32(ckpt, name)).data, ref.tensors.get(name)!.data);
    }
    await assert.rejects(
      readExternalMatrix(ckpt, "lm_head.weight"),
      /Cannot read tensor 'lm_head.weight': .* lacks it \(it holds 5 tensors/,
    );
    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    await assert.rejects(
      openCheckpoint(dir),
      /lists shard model-00002-of-00002.safetensors, which is missing/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a truncated safetensors file is rejected with its size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, tensors);
    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length - 10));
    await assert.rejects(openCheckpoint(path), /past the end of the file/);
    await Deno.writeFile(path, bytes.subarray(0, 5));
    await assert.rejects(openCheckpoint(path), /shorter than the 8-byte header length/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the streaming reader refuses an index whose shard names leave the folder", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ weight_map: { "a.weight": "../../etc/model.safetensors" } }),
  );
  await assert.rejects(() => openCheckpoint(dir), /expected a file name in the same folder/);
});
