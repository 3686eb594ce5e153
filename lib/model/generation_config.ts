/**
 * The end-of-sequence ids of a Hugging Face model folder: `generation_config.json`'s
 * `eos_token_id` (an int or a list; what HF `generate` stops at) and `config.json`'s (the
 * same forms). Chat models list several (Llama 3: `<|end_of_text|>`, `<|eom_id|>`,
 * `<|eot_id|>`; Qwen3: `<|im_end|>`, `<|endoftext|>`), and any of them ends a turn.
 *
 * @module
 */

import { join } from "node:path";

/**
 * An `eos_token_id` value (int, list of ints, null or absent) as a list of ids; `where`
 * names the file in the error for anything else.
 *
 * @example
 * ```ts
 * import { eosIdList } from "./generation_config.ts";
 * eosIdList([151645, 151643], "generation_config.json"); // [151645, 151643]
 * eosIdList(2, "config.json"); // [2]
 * eosIdList(null, "config.json"); // []
 * ```
 */
export function eosIdList(value: unknown, where: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const v of list) {
    if (!Number.isInteger(v) || (v as number) < 0) {
      throw new Error(
        `Cannot read ${where}: 'eos_token_id' must be a non-negative integer or a list of them, ` +
          `got ${JSON.stringify(value)}`,
      );
    }
  }
  return list as number[];
}

/**
 * The stop ids of a model folder: generation_config.json's `eos_token_id` followed by
 * config.json's (`config`, already parsed), without repeats; [] when neither names one.
 *
 * @example
 * ```ts ignore
 * const ids = await readEosTokenIds("models/qwen3-0.6b", rawConfig); // [151645, 151643]
 * ```
 */
export async function readEosTokenIds(
  dir: string,
  config: Record<string, unknown>,
): Promise<number[]> {
  const path = join(dir, "generation_config.json");
  let gen: unknown;
  try {
    gen = JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) gen = {};
    else throw new Error(`Cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const fromGen = typeof gen === "object" && gen !== null
    ? eosIdList((gen as Record<string, unknown>).eos_token_id, path)
    : [];
  const fromConfig = eosIdList(config.eos_token_id, join(dir, "config.json"));
  return [...new Set([...fromGen, ...fromConfig])];
}
