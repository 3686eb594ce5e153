/**
 * Fuzz target: lib/model/tokenizer.ts `tokenizerFromJson` on mutated tokenizer.json and
 * tokenizer_config.json files (SafetyWorld's WordLevel tokenizer and a small BPE one; chat
 * templates replaced by hostile Jinja), then encode, decode and the chat template. Accepted
 * files must give integer ids inside the vocabulary, strings from decode and the template.
 *
 * @module
 */

import { tokenizerFromJson } from "../../lib/model/tokenizer.ts";
import { type Json, mutateBytes, mutateJson } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const TOY = new URL("../../datasets/checkpoints/toy-base/", import.meta.url);
const toyJson = JSON.parse(Deno.readTextFileSync(new URL("tokenizer.json", TOY))) as Json;
const toyConfig = JSON.parse(Deno.readTextFileSync(new URL("tokenizer_config.json", TOY))) as Json;
const bpe: Json = {
  version: "1.0",
  added_tokens: [{ id: 5, content: "<s>", special: true, normalized: false }],
  normalizer: null,
  pre_tokenizer: {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<s>": { id: "<s>", ids: [5], tokens: ["<s>"] } },
  },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: "BPE",
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    vocab: { h: 0, i: 1, hi: 2, "\u0120": 3, "\u0120hi": 4 },
    merges: ["h i", "\u0120 hi"],
  },
};
const SOURCE = "fuzz/tokenizer.json";
const TEXTS = ["user : hello world", "hi hi", "", "\u2603 zz <eos> <think>", "x".repeat(2000)];

/** The tokenizer.json / tokenizer_config.json target. */
export const target: FuzzTarget = {
  name: "tokenizer",
  source: SOURCE,
  make(rng) {
    const json = rng.pick([toyJson, bpe]);
    const config = json === toyJson
      ? toyConfig
      : { bos_token: "<s>", chat_template: "{{ messages[0].content }}" };
    const which = rng.int(3);
    const pair = [
      which !== 1 ? mutateJson(rng, json) : json,
      which !== 0 ? mutateJson(rng, config) : config,
    ];
    const text = JSON.stringify(pair);
    return rng.int(6)
      ? new TextEncoder().encode(text)
      : mutateBytes(rng, new TextEncoder().encode(text));
  },
  run(input) {
    let pair: unknown;
    try {
      pair = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(input));
    } catch {
      throw new Error(`Cannot parse ${SOURCE}: not valid JSON`); // loadTokenizer's own wrapper
    }
    if (!Array.isArray(pair)) throw new Error(`${SOURCE}: not a [tokenizer, config] pair`);
    const tok = tokenizerFromJson(pair[0], pair[1] ?? undefined, SOURCE);
    if (!Number.isInteger(tok.vocabSize) || tok.vocabSize < 0) return `vocabSize ${tok.vocabSize}`;
    for (const t of TEXTS) {
      const ids = tok.encode(t);
      if (!ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize)) {
        return `encode gave ${ids.slice(0, 8)}`;
      }
      if (typeof tok.decode(ids) !== "string") return "decode did not give a string";
    }
    const chat = tok.applyChatTemplate([{ role: "user", content: "hello" }]);
    if (typeof chat !== "string") return "chat template did not give a string";
    return undefined;
  },
};
