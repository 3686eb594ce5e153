/**
 * Test helpers for SafetyWorld-shaped tiny models: a small seeded world and 1-layer GPTs
 * over its tokenizer that carry the tokenizer files as assets, so they save to a folder
 * that `loadModel` opens again.
 *
 * @module
 */

import { generateWorld } from "../lib/data/safetyworld/generate.ts";
import type { World } from "../lib/data/safetyworld/plan.ts";
import { buildWorldTokenizer } from "../lib/data/safetyworld/tokenizer.ts";
import { tokenizerFromJson } from "../lib/model/tokenizer.ts";
import { createModel } from "../lib/model/create.ts";
import type { Model } from "../lib/model/model.ts";
import { TEST_BACKEND } from "./_helpers.ts";

/** A small world (seed 0): enough rows for every test split and the attacks' examples. */
export function smallWorld(): World {
  return generateWorld({
    seed: 0,
    sizes: { prompts: 400, sft: 400, align: 10, recovery: 10, traces: 10, traits: 10 },
  });
}

/** A random 1-layer, d=16 GPT over the world's tokenizer, with tokenizer assets. */
export async function tinyWorldModel(world: World, seed = 1, name = "tiny-world"): Promise<Model> {
  const { tokenizerJson, tokenizerConfig } = buildWorldTokenizer(world);
  const tokenizer = tokenizerFromJson(tokenizerJson, tokenizerConfig, "small world");
  const enc = new TextEncoder();
  const assets = new Map<string, Uint8Array>([
    ["tokenizer.json", enc.encode(JSON.stringify(tokenizerJson))],
    ["tokenizer_config.json", enc.encode(JSON.stringify(tokenizerConfig))],
  ]);
  return await createModel(
    {
      arch: "gpt2",
      vocabSize: Math.ceil(tokenizer.vocabSize / 8) * 8,
      nLayer: 1,
      dModel: 16,
      nHead: 2,
      maxPositions: 128,
      eosTokenId: tokenizer.eosId,
      padTokenId: tokenizer.padId,
      bosTokenId: tokenizer.bosId,
    },
    { tokenizer, assets, seed, backend: TEST_BACKEND, name },
  );
}
