/**
 * Saving a model in the Hugging Face layout (config.json, model.safetensors, tokenizer
 * files), atomically: everything is written into a temporary folder that is renamed into
 * place, so a crash never leaves a half-written checkpoint.
 *
 * @module
 */

import { join } from "node:path";
import type { Model } from "./model.ts";
import { checkpointName, paramSpecs, transpose2d } from "./weights.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { writeDirAtomic } from "../io/atomic.ts";

/** Reads the weights back into HF layout (Llama linear weights transposed to [out, in]). */
export async function exportWeights(
  model: Model,
): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  if (model.external) {
    throw new Error(
      `Cannot save ${model.source} whole: its ${model.external.size} large weight matrices live ` +
        "outside the wasm heap and are frozen, so they equal the checkpoint it was loaded from. " +
        "Save the trained LoRA adapters with saveLora(model, dir) (PEFT layout) instead.",
    );
  }
  for (const spec of paramSpecs(model.config)) {
    const v = model.params.get(spec.name);
    if (!v) throw new Error(`Cannot save: parameter '${spec.name}' missing`);
    let data = (await v.data()) as Float32Array;
    let shape = spec.shape;
    if (spec.transposed) {
      data = transpose2d(data, shape[0], shape[1]);
      shape = [shape[1], shape[0]];
    }
    out[checkpointName(model.config, spec.name)] = { shape, data };
  }
  return out;
}

/** Options of {@link saveModel}. */
export interface SaveModelOptions {
  /** Weight dtype on disk. @default "F32" */
  dtype?: "F32" | "F16" | "BF16";
  /** Extra safetensors header metadata. */
  metadata?: Record<string, string>;
  /** Extra files (name -> text or bytes) written into the folder in the same atomic write. */
  extraFiles?: Record<string, string | Uint8Array>;
}

/** Writes `model` to `dir` (replacing it atomically). */
export async function saveModel(
  model: Model,
  dir: string,
  opts: SaveModelOptions = {},
): Promise<void> {
  const weights = await exportWeights(model);
  const dtype = opts.dtype ?? "F32";
  for (const w of Object.values(weights)) (w as { dtype?: string }).dtype = dtype;
  await writeDirAtomic(dir, async (tmp) => {
    const raw = {
      ...model.config.raw,
      torch_dtype: dtype === "F32" ? "float32" : dtype === "F16" ? "float16" : "bfloat16",
    };
    await Deno.writeTextFile(join(tmp, "config.json"), JSON.stringify(raw, null, 2) + "\n");
    await writeSafetensors(join(tmp, "model.safetensors"), weights, {
      format: "pt",
      ...opts.metadata,
    });
    for (const [name, bytes] of model.assets) await Deno.writeFile(join(tmp, name), bytes);
    for (const [name, body] of Object.entries(opts.extraFiles ?? {})) {
      if (!/^[\w.-]+$/.test(name) || name === "config.json" || name === "model.safetensors") {
        throw new Error(
          `Cannot save extra file '${name}': use a plain file name other than config.json ` +
            "and model.safetensors",
        );
      }
      const path = join(tmp, name);
      if (typeof body === "string") await Deno.writeTextFile(path, body);
      else await Deno.writeFile(path, body);
    }
  });
}
