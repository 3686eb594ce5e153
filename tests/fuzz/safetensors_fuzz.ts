/**
 * Fuzz target: lib/io/safetensors.ts `parseSafetensors` on mutated files (header JSON mutated
 * structurally, or any byte mutated). A parse that succeeds must give every tensor exactly
 * shape-product values.
 *
 * @module
 */

import { parseSafetensors, serializeSafetensors } from "../../lib/io/safetensors.ts";
import { type Json, mutateBytes, mutateJson, type Rng } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const f32 = (n: number) => Float32Array.from({ length: n }, (_, i) => i / 7 - 1);
const SEEDS: Uint8Array[] = [
  serializeSafetensors({ a: { shape: [2, 3], data: f32(6) } }),
  serializeSafetensors({
    "model.embed_tokens.weight": { shape: [4, 2], data: f32(8), dtype: "BF16" },
    "model.norm.weight": { shape: [2], data: f32(2), dtype: "F16" },
    scalar: { shape: [], data: f32(1) },
    empty: { shape: [0, 3], data: f32(0) },
  }, { format: "pt" }),
];

function withHeader(rng: Rng, file: Uint8Array): Uint8Array {
  const n = Number(new DataView(file.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Json;
  const text = new TextEncoder().encode(JSON.stringify(mutateJson(rng, header)));
  const out = new Uint8Array(8 + text.length + file.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(file.subarray(8 + n), 8 + text.length);
  return out;
}

/** The safetensors target. */
export const target: FuzzTarget = {
  name: "safetensors",
  source: "fuzz.safetensors",
  make(rng) {
    const seed = rng.pick(SEEDS);
    return rng.int(2) ? withHeader(rng, seed) : mutateBytes(rng, seed);
  },
  run(input) {
    const file = parseSafetensors(input, "fuzz.safetensors");
    for (const [name, t] of file.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (t.data.length !== n) {
        return `tensor ${name.slice(0, 40)}: ${t.data.length} values for [${t.shape}]`;
      }
    }
    return undefined;
  },
};
