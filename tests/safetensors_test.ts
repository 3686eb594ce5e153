/**
 * Tests of the safetensors reader/writer: half-precision codecs against known bit patterns
 * and an independent brute-force rounding, round trips, a hand-built file, every corruption
 * error, sharded checkpoints, and the GPT-2 fixture.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { makeRng } from "../lib/data/rng.ts";
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  parseSafetensors,
  readModelWeights,
  readSafetensors,
  requireTensors,
  serializeSafetensors,
  writeSafetensors,
} from "../lib/io/safetensors.ts";

const shared = new URL("../../shared/", import.meta.url);
const fixture = new URL("fixtures/hf-fake-gpt2/", shared);
const hasFixture = (() => {
  try {
    return Deno.statSync(fixture).isDirectory;
  } catch {
    return false;
  }
})();
if (!hasFixture) console.warn(`skipping GPT-2 fixture test: ${fixture.pathname} not found`);

/** Builds a safetensors file from a header (object or raw string) and data bytes. */
function build(header: unknown, data: number[] | Uint8Array = []): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: Error) => {
    for (const p of parts) assert.ok(err.message.includes(p), `"${err.message}" lacks "${p}"`);
    return true;
  });
}

Deno.test("f16 codec matches known bit patterns", () => {
  const cases: [number, number][] = [
    [1.0, 0x3c00],
    [-2.5, 0xc100],
    [65504, 0x7bff],
    [2 ** -24, 0x0001], // smallest subnormal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -14, 0x0400], // smallest normal
    [0.1, 0x2e66],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [-0, 0x8000],
  ];
  for (const [x, bits] of cases) {
    assert.equal(f32ToF16(x), bits, `f32ToF16(${x})`);
    if (x !== 0.1) assert.equal(f16ToF32(bits), x, `f16ToF32(0x${bits.toString(16)})`);
  }
  assert.ok(Object.is(f16ToF32(0x8000), -0));
  // Rounding: ties go to even, overflow goes to infinity, underflow to (signed) zero.
  assert.equal(f32ToF16(65520), 0x7c00); // halfway between 65504 and 65536
  assert.equal(f32ToF16(65519), 0x7bff);
  assert.equal(f32ToF16(1e6), 0x7c00);
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie -> even mantissa 0
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie -> even mantissa 2
  assert.equal(f32ToF16(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal
  assert.equal(f32ToF16(1.5 * 2 ** -25), 0x0001);
  assert.equal(f32ToF16(-1e-9), 0x8000);
  const nan = f32ToF16(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  assert.ok(Number.isNaN(f16ToF32(0xfc01)));
});

Deno.test("bf16 codec matches known bit patterns", () => {
  assert.equal(f32ToBf16(1.0), 0x3f80);
  assert.equal(f32ToBf16(-2.5), 0xc020);
  assert.equal(f32ToBf16(65504), 0x4780); // rounds up to 65536
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie -> even
  assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80); // f32 max overflows to inf
  assert.equal(f32ToBf16(-Infinity), 0xff80);
  assert.equal(f32ToBf16(2 ** -133), 0x0001); // subnormal
  assert.equal(bf16ToF32(0x0001), 2 ** -133);
  assert.equal(bf16ToF32(0xc020), -2.5);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  assert.equal(f32ToBf16(NaN) & 0x7f80, 0x7f80);
});

Deno.test("every finite f16 and bf16 bit pattern survives decode then encode", () => {
  for (let b = 0; b < 65536; b++) {
    const f16 = f16ToF32(b);
    if (!Number.isNaN(f16)) assert.equal(f32ToF16(f16), b);
    const bf = bf16ToF32(b);
    if (!Number.isNaN(bf)) assert.equal(f32ToBf16(bf), b);
  }
});

Deno.test("f32ToF16 rounds like a brute-force nearest-even search", () => {
  const finite: number[] = [];
  for (let b = 0; b < 0x7c00; b++) finite.push(f16ToF32(b)); // non-negative, ascending
  const rng = makeRng(7);
  for (let i = 0; i < 20000; i++) {
    const x = Math.fround(2 ** (rng.next() * 44 - 28) * (1 + rng.next()));
    let lo = 0, hi = finite.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (finite[mid] <= x) lo = mid;
      else hi = mid;
    }
    let want: number;
    if (x >= 65520) want = 0x7c00;
    else if (x >= finite[hi]) want = hi;
    else {
      const dLo = x - finite[lo], dHi = finite[hi] - x;
      want = dLo < dHi ? lo : dHi < dLo ? hi : (lo % 2 === 0 ? lo : hi);
    }
    assert.equal(f32ToF16(x), want, `x=${x}`);
    assert.equal(f32ToF16(-x), want | 0x8000, `x=${-x}`);
  }
});

Deno.test("serialize then parse round-trips F32, F16 and BF16 with metadata", () => {
  const values = new Float32Array([1, -2.5, 65504, 2 ** -24, 0.1, -0, Infinity, NaN, 3.3]);
  const bytes = serializeSafetensors({
    "z.f32": { shape: [3, 3], data: values },
    "a.f16": { shape: [9], data: values, dtype: "F16" },
    "m.bf16": { shape: [1, 9], data: values, dtype: "BF16" },
    "empty": { shape: [0, 4], data: new Float32Array(0) },
  }, { format: "pt", note: "round trip" });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLen) % 8, 0, "data must start 8-byte aligned");
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  assert.deepEqual(
    Object.keys(JSON.parse(header)),
    ["__metadata__", "a.f16", "empty", "m.bf16", "z.f32"],
  );
  const file = parseSafetensors(bytes, "mem");
  assert.deepEqual(file.metadata, { format: "pt", note: "round trip" });
  const f32 = file.tensors.get("z.f32")!;
  assert.deepEqual(f32.shape, [3, 3]);
  assert.equal(f32.dtype, "F32");
  assert.deepEqual(Array.from(f32.data), Array.from(values));
  const f16 = file.tensors.get("a.f16")!;
  assert.equal(f16.dtype, "F16");
  assert.deepEqual(Array.from(f16.data), Array.from(values, (v) => f16ToF32(f32ToF16(v))));
  assert.equal(f16.data[4], f16ToF32(0x2e66));
  const bf = file.tensors.get("m.bf16")!;
  assert.deepEqual(Array.from(bf.data), Array.from(values, (v) => bf16ToF32(f32ToBf16(v))));
  assert.equal(bf.data[2], 65536);
  assert.deepEqual(file.tensors.get("empty")!.shape, [0, 4]);
  throwsWith(
    () => serializeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
    "'w'",
    "4 values",
    "3",
  );
});

Deno.test("a hand-written file parses to golden values", () => {
  const header = {
    __metadata__: { format: "pt" },
    h: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
    b: { dtype: "BF16", shape: [1], data_offsets: [4, 6] },
    u: { dtype: "U8", shape: [1, 1], data_offsets: [6, 7] },
    t: { dtype: "BOOL", shape: [1], data_offsets: [7, 8] },
    l: { dtype: "I64", shape: [2], data_offsets: [8, 24] },
    d: { dtype: "F64", shape: [], data_offsets: [24, 32] },
    i: { dtype: "I32", shape: [1], data_offsets: [32, 36] },
    s: { dtype: "I16", shape: [1], data_offsets: [36, 38] },
    c: { dtype: "I8", shape: [1], data_offsets: [38, 39] },
    f: { dtype: "F32", shape: [1], data_offsets: [39, 43] },
  };
  const data = [
    0x00,
    0x3c,
    0x00,
    0xc1, // F16 1.0, -2.5
    0xc0,
    0x3f, // BF16 1.5
    0xff, // U8 255
    0x01, // BOOL true
    0xfd,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff, // I64 -3
    0x00,
    0x00,
    0x00,
    0x00,
    0x01,
    0x00,
    0x00,
    0x00, // I64 2^32
    0x9a,
    0x99,
    0x99,
    0x99,
    0x99,
    0x99,
    0xb9,
    0x3f, // F64 0.1
    0x07,
    0x00,
    0x00,
    0x00, // I32 7
    0x00,
    0x80, // I16 -32768
    0x80, // I8 -128
    0x00,
    0x00,
    0x20,
    0xc0, // F32 -2.5 (unaligned offset 39)
  ];
  const file = parseSafetensors(build(header, data), "hand.safetensors");
  const got = (n: string) => Array.from(file.tensors.get(n)!.data);
  assert.deepEqual(file.metadata, { format: "pt" });
  assert.deepEqual(got("h"), [1, -2.5]);
  assert.deepEqual(got("b"), [1.5]);
  assert.deepEqual(got("u"), [255]);
  assert.deepEqual(got("t"), [1]);
  assert.deepEqual(got("l"), [-3, 4294967296]);
  assert.deepEqual(got("d"), [Math.fround(0.1)]);
  assert.deepEqual(file.tensors.get("d")!.shape, []);
  assert.deepEqual(got("i"), [7]);
  assert.deepEqual(got("s"), [-32768]);
  assert.deepEqual(got("c"), [-128]);
  assert.deepEqual(got("f"), [-2.5]);
  assert.equal(file.tensors.get("l")!.dtype, "I64");
});

Deno.test("corrupt files fail with errors that name the file and the tensor", () => {
  const src = "bad.safetensors";
  const ok = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  const eight = new Array(8).fill(0);
  throwsWith(() => parseSafetensors(new Uint8Array(5), src), src, "shorter than");
  const long = build(ok, eight);
  new DataView(long.buffer).setBigUint64(0, 1000n, true);
  throwsWith(() => parseSafetensors(long, src), src, "header length 1000", "past the end");
  throwsWith(() => parseSafetensors(build("{not json", eight), src), src, "not valid");
  throwsWith(() => parseSafetensors(build("[1,2]", eight), src), src, "not a JSON object");
  const bad = (entry: unknown, data = eight) => () =>
    parseSafetensors(build({ w: entry }, data), src);
  throwsWith(bad({ dtype: "Q4", shape: [2], data_offsets: [0, 8] }), src, "'w'", "Q4");
  throwsWith(bad({ dtype: "F32", shape: [2, -1], data_offsets: [0, 8] }), "'w'", "shape");
  throwsWith(bad({ dtype: "F32", shape: "2", data_offsets: [0, 8] }), "'w'", "shape");
  throwsWith(bad({ dtype: "F32", shape: [2], data_offsets: [0, 16] }), "'w'", "out of range");
  throwsWith(bad({ dtype: "F32", shape: [2], data_offsets: [8, 0] }), "'w'", "begin 8 > end 0");
  throwsWith(bad({ dtype: "F32", shape: [2], data_offsets: [0] }), "'w'", "data_offsets");
  throwsWith(
    bad({ dtype: "F32", shape: [3], data_offsets: [0, 8] }),
    src,
    "'w'",
    "needs 12 bytes",
    "span 8",
  );
  const overlap = build({
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  }, new Array(12).fill(0));
  throwsWith(() => parseSafetensors(overlap, src), src, "'a'", "'b'", "overlaps");
  throwsWith(
    () => parseSafetensors(build({ __metadata__: { n: 1 }, ...ok }, eight), src),
    "__metadata__",
    "'n'",
  );
});

Deno.test("writeSafetensors writes atomically and readSafetensors reads it back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "w.safetensors");
    await writeSafetensors(path, { x: { shape: [2], data: new Float32Array([3, 4]) } });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["w.safetensors"]);
    assert.deepEqual(Array.from((await readSafetensors(path)).tensors.get("x")!.data), [3, 4]);
    await assert.rejects(readSafetensors(join(dir, "none.safetensors")), /none\.safetensors/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readModelWeights loads sharded checkpoints and reports broken indexes", async () => {
  const dir = await Deno.makeTempDir();
  const writeIndex = (map: Record<string, string>) =>
    Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 16 }, weight_map: map }),
    );
  try {
    await assert.rejects(readModelWeights(dir), /neither model\.safetensors nor/);
    await writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), {
      a: { shape: [2], data: new Float32Array([1, 2]) },
    }, { format: "pt" });
    await writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), {
      b: { shape: [1, 2], data: new Float32Array([3, 4]), dtype: "BF16" },
    });
    await writeIndex({
      a: "model-00001-of-00002.safetensors",
      b: "model-00002-of-00002.safetensors",
    });
    const file = await readModelWeights(dir);
    assert.deepEqual([...file.tensors.keys()].sort(), ["a", "b"]);
    assert.deepEqual(Array.from(file.tensors.get("b")!.data), [3, 4]);
    assert.equal(file.tensors.get("b")!.dtype, "BF16");
    assert.deepEqual(file.metadata, { format: "pt" });
    requireTensors(file, ["a", "b"], "shards");
    throwsWith(
      () =>
        requireTensors(
          file,
          ["a", "h.3.w"],
          `model.safetensors in ${dir}`,
          "config.json (n_layer=4)",
        ),
      `model.safetensors in ${dir} lacks tensor 'h.3.w' required by config.json (n_layer=4)`,
    );
    await writeIndex({
      a: "model-00001-of-00002.safetensors",
      c: "model-00002-of-00002.safetensors",
    });
    await assert.rejects(readModelWeights(dir), /tensor 'c'.*model-00002-of-00002/);
    await writeIndex({ a: "model-00001-of-00003.safetensors" });
    await assert.rejects(readModelWeights(dir), /shard model-00001-of-00003\.safetensors.*missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "the GPT-2 fixture's weights parse to the values numpy reads",
  ignore: !hasFixture,
  fn: async () => {
    const file = await readModelWeights(fixture.pathname);
    assert.equal(file.tensors.size, 16);
    assert.deepEqual(file.metadata, { format: "pt" });
    const wte = file.tensors.get("transformer.wte.weight")!;
    assert.deepEqual(wte.shape, [50257, 2]);
    assert.deepEqual(file.tensors.get("transformer.wpe.weight")!.shape, [1024, 2]);
    assert.deepEqual(file.tensors.get("transformer.h.0.attn.c_attn.weight")!.shape, [2, 6]);
    // Golden values read independently with numpy.frombuffer(dtype="<f4").
    assert.deepEqual(Array.from(wte.data.subarray(0, 2)), [
      0.027433224022388458,
      0.011697583831846714,
    ]);
    assert.deepEqual(Array.from(wte.data.subarray(2 * 50256)), [
      0.029041538015007973,
      -0.007940802723169327,
    ]);
    let sum = 0;
    for (const v of wte.data) sum += v;
    assert.ok(Math.abs(sum - 0.577284033384899) < 1e-9, `sum ${sum}`);
  },
});
