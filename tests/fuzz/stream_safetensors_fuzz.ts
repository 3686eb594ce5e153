/**
 * Fuzz target: the streaming safetensors reader of models larger than the wasm heap
 * (lib/model/external_load.ts `openCheckpoint` + `readExternalMatrix` / `readTensorF32`), on
 * the same mutated files as the in-memory parser, written to a temporary file per case. A
 * read that succeeds must give every tensor exactly shape-product values, all of them read.
 *
 * @module
 */

import { join } from "node:path";
import { serializeSafetensors } from "../../lib/io/safetensors.ts";
import {
  openCheckpoint,
  readExternalMatrix,
  readTensorF32,
} from "../../lib/model/external_load.ts";
import { mutateBytes, type Rng } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const f32 = (n: number) => Float32Array.from({ length: n }, (_, i) => i / 7 - 1);
const SEEDS: Uint8Array[] = [
  serializeSafetensors({ "a.weight": { shape: [2, 3], data: f32(6) } }),
  serializeSafetensors({
    "model.embed_tokens.weight": { shape: [4, 2], data: f32(8), dtype: "BF16" },
    "model.norm.weight": { shape: [2], data: f32(2), dtype: "F16" },
    empty: { shape: [0, 3], data: f32(0) },
  }, { format: "pt" }),
];

let dir: string | undefined;

/** The streaming-reader target. */
export const target: FuzzTarget = {
  name: "stream_safetensors",
  source: "fuzz.safetensors",
  make: (rng: Rng) => mutateBytes(rng, rng.pick(SEEDS)),
  async run(input) {
    dir ??= await Deno.makeTempDir({ prefix: "sc-fuzz-" });
    const path = join(dir, "fuzz.safetensors");
    await Deno.writeFile(path, input);
    const ckpt = await openCheckpoint(path);
    for (const [name, t] of ckpt.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (t.shape.length === 2) {
        const m = await readExternalMatrix(ckpt, name);
        if (m.data.length !== n) {
          return `tensor ${name.slice(0, 40)}: ${m.data.length} for [${t.shape}]`;
        }
      } else {
        const v = await readTensorF32(ckpt, name);
        if (v.data.length !== n) {
          return `tensor ${name.slice(0, 40)}: ${v.data.length} for [${t.shape}]`;
        }
      }
    }
    return undefined;
  },
};
