/**
 * Writes a synthetic Hugging Face checkpoint (sharded bf16 safetensors +
 * `model.safetensors.index.json`) of a Qwen3 shape, streaming: tensor by tensor, in 16 MiB
 * chunks of repeated random bf16 values, so an 8 GB checkpoint is written without holding it
 * in memory (the project's writer, lib/io/safetensors.ts, serialises a file in memory).
 * Used by bench/big_model_memory.ts `--from DIR` to measure loading a real-sized checkpoint.
 *
 * @module
 */

import { join } from "node:path";
import { f32ToBf16Array } from "../lib/engine/bf16_convert.ts";
import { makeRng } from "../lib/data/rng.ts";

/** A Qwen3 shape. */
export interface QwenShape {
  layers: number;
  d: number;
  heads: number;
  kvHeads: number;
  ff: number;
  vocab: number;
}

/** The tensors of a Qwen3 checkpoint with tied embeddings: name and shape, in order. */
export function qwen3Tensors(s: QwenShape): [string, number[]][] {
  const hd = 128;
  const out: [string, number[]][] = [["model.embed_tokens.weight", [s.vocab, s.d]]];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      [`${p}.input_layernorm.weight`, [s.d]],
      [`${p}.self_attn.q_proj.weight`, [s.heads * hd, s.d]],
      [`${p}.self_attn.k_proj.weight`, [s.kvHeads * hd, s.d]],
      [`${p}.self_attn.v_proj.weight`, [s.kvHeads * hd, s.d]],
      [`${p}.self_attn.o_proj.weight`, [s.d, s.heads * hd]],
      [`${p}.self_attn.q_norm.weight`, [hd]],
      [`${p}.self_attn.k_norm.weight`, [hd]],
      [`${p}.post_attention_layernorm.weight`, [s.d]],
      [`${p}.mlp.gate_proj.weight`, [s.ff, s.d]],
      [`${p}.mlp.up_proj.weight`, [s.ff, s.d]],
      [`${p}.mlp.down_proj.weight`, [s.d, s.ff]],
    );
  }
  out.push(["model.norm.weight", [s.d]]);
  return out;
}

/** Writes the checkpoint into `dir` in shards of about `shardBytes`; returns bytes written. */
export async function writeSyntheticCheckpoint(
  dir: string,
  shape: QwenShape,
  shardBytes = 2 ** 31,
): Promise<number> {
  await Deno.mkdir(dir, { recursive: true });
  const rng = makeRng(3);
  const chunk = f32ToBf16Array(Float32Array.from({ length: 8 << 20 }, () => rng.normal() * 0.02));
  const bytes = new Uint8Array(chunk.buffer);
  const tensors = qwen3Tensors(shape);
  const shards: [string, number[]][][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const b = t[1].reduce((a, c) => a * c, 2);
    if (size + b > shardBytes && shards[shards.length - 1].length > 0) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += b;
  }
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [i, shard] of shards.entries()) {
    const file = `model-${String(i + 1).padStart(5, "0")}-of-${
      String(shards.length).padStart(5, "0")
    }.safetensors`;
    const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
    let offset = 0;
    for (const [name, dims] of shard) {
      const b = dims.reduce((a, c) => a * c, 2);
      header[name] = { dtype: "BF16", shape: dims, data_offsets: [offset, offset + b] };
      offset += b;
      weightMap[name] = file;
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
    const head = new TextEncoder().encode(json);
    const f = await Deno.open(join(dir, file), { write: true, create: true, truncate: true });
    try {
      const len = new Uint8Array(8);
      new DataView(len.buffer).setBigUint64(0, BigInt(head.length), true);
      await writeAll(f, len);
      await writeAll(f, head);
      for (const [, dims] of shard) {
        let left = dims.reduce((a, c) => a * c, 2);
        for (let s = 0; left > 0; s = (s + 4098) % 65536) {
          const n = Math.min(left, bytes.length - s);
          await writeAll(f, bytes.subarray(s, s + n));
          left -= n;
        }
      }
    } finally {
      f.close();
    }
    total += 8 + head.length + offset;
  }
  await Deno.writeTextFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }),
  );
  return total;
}

async function writeAll(f: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length;) done += await f.write(data.subarray(done));
}
