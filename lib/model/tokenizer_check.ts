/**
 * Limits on an untrusted Hugging Face `tokenizer.json` (the `tokenizers` library's
 * serialisation: `model` = BPE / WordLevel / WordPiece with a `{token: id}` vocabulary, or
 * Unigram with a `[[token, score]]` list and `unk_id`; `added_tokens`; a `post_processor`
 * whose special tokens carry ids), checked before the file reaches `@huggingface/tokenizers`:
 * the port builds arrays indexed by id, so an id of 2^31 hangs it, and a vocabulary of the
 * wrong type makes `encode` return null ids instead of failing.
 *
 * Rules: every id is an integer in [0, {@linkcode MAX_TOKEN_ID}]; `model.vocab` has the type
 * its model needs; `model.unk_token` / `unk_id`, the added tokens and the post-processor's
 * special tokens name ids the vocabulary has. Messages name the file and the field, and echo
 * a bounded slice of the value.
 *
 * @module
 */

import { shown } from "../io/bounded.ts";
import { CONFIG_LIMITS } from "./config_check.ts";

/** The largest token id accepted (config.json's vocab_size limit, minus one). */
export const MAX_TOKEN_ID = CONFIG_LIMITS.vocab - 1;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const isId = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_ID;

/**
 * Checks a parsed tokenizer.json (and optionally tokenizer_config.json) before it is built;
 * returns the set of ids the vocabulary defines (model vocabulary and added tokens).
 *
 * @example
 * ```ts
 * const ids = checkTokenizerJson({
 *   model: { type: "WordLevel", vocab: { "<unk>": 0, hi: 1 }, unk_token: "<unk>" },
 * }, undefined, "tokenizer.json");
 * ids.size; // 2
 * ```
 */
export function checkTokenizerJson(
  json: unknown,
  config: unknown,
  source: string,
): Set<number> {
  const fail = (field: string, what: string): never => {
    throw new Error(`Cannot load tokenizer from ${source}: field '${field}' ${what}`);
  };
  if (!isObject(json) || !isObject(json.model)) {
    throw new Error(
      `Cannot load tokenizer from ${source}: it has no 'model' field; expected a Hugging Face ` +
        "fast-tokenizer file (tokenizer.json written by tokenizer.save_pretrained)",
    );
  }
  const model = json.model;
  const type = model.type;
  if (type !== undefined && typeof type !== "string") {
    fail("model.type", `is ${shown(type, 40)}; expected a string such as "BPE"`);
  }
  const ids = new Set<number>();
  const tokens = new Map<string, number>();
  const vocab = model.vocab;
  if (type === "Unigram" || Array.isArray(vocab)) {
    if (!Array.isArray(vocab)) {
      return fail("model.vocab", `is ${shown(vocab, 40)}; a Unigram model needs [[token, score]]`);
    }
    if (vocab.length > MAX_TOKEN_ID + 1) fail("model.vocab", `has ${vocab.length} entries`);
    vocab.forEach((e, i) => {
      const ok = Array.isArray(e) && e.length === 2 && typeof e[0] === "string" &&
        typeof e[1] === "number" && Number.isFinite(e[1]);
      if (!ok) fail(`model.vocab[${i}]`, `is ${shown(e, 60)}; expected [token, score]`);
      ids.add(i), tokens.set(e[0], i);
    });
    const unk = model.unk_id;
    if (unk !== undefined && unk !== null && (!isId(unk) || unk >= vocab.length)) {
      fail("model.unk_id", `is ${shown(unk, 40)}; expected an index of model.vocab`);
    }
  } else {
    if (!isObject(vocab)) {
      return fail(
        "model.vocab",
        `is ${shown(vocab, 40)}; a ${shown(type ?? "BPE", 20)} model needs an object ` +
          "{token: id}",
      );
    }
    for (const [token, id] of Object.entries(vocab)) {
      if (!isId(id)) {
        fail(
          `model.vocab[${shown(token, 40)}]`,
          `is ${shown(id, 40)}; expected an integer id in [0, ${MAX_TOKEN_ID}]`,
        );
      }
      ids.add(id as number), tokens.set(token, id as number);
    }
  }
  const added = json.added_tokens;
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) fail("added_tokens", `is ${shown(added, 40)}; expected a list`);
    (added as unknown[]).forEach((t, i) => {
      if (!isObject(t) || !isId(t.id) || typeof t.content !== "string") {
        fail(
          `added_tokens[${i}]`,
          `is ${shown(t, 80)}; expected {id: integer in [0, ${MAX_TOKEN_ID}], content: string}`,
        );
      }
      const e = t as { id: number; content: string };
      ids.add(e.id), tokens.set(e.content, e.id);
    });
  }
  const unk = model.unk_token;
  if (unk !== undefined && unk !== null && type !== "Unigram") {
    if (typeof unk !== "string") fail("model.unk_token", `is ${shown(unk, 40)}; expected a string`);
    if (!tokens.has(unk as string)) {
      fail(
        "model.unk_token",
        `${shown(unk, 40)} is not in the vocabulary; unknown text would get no id`,
      );
    }
  }
  checkProcessor(json.post_processor, "post_processor", ids, fail, 0);
  if (isObject(config) && isObject(config.added_tokens_decoder)) {
    for (const [key, t] of Object.entries(config.added_tokens_decoder)) {
      const id = Number(key);
      if (!isId(id) || !isObject(t) || typeof t.content !== "string") {
        fail(
          `added_tokens_decoder[${shown(key, 20)}]`,
          `is ${shown(t, 60)}; expected an id key in [0, ${MAX_TOKEN_ID}] and {content: string}`,
        );
      }
    }
  }
  return ids;
}

/** Post-processor special-token ids (TemplateProcessing, Bert/Roberta, Sequence) in the vocabulary. */
function checkProcessor(
  p: unknown,
  field: string,
  ids: Set<number>,
  fail: (field: string, what: string) => never,
  depth: number,
): void {
  if (!isObject(p) || depth > 4) return;
  const known = (f: string, id: unknown) => {
    if (!isId(id) || !ids.has(id)) {
      fail(f, `names id ${shown(id, 40)}, which the vocabulary does not have`);
    }
  };
  if (isObject(p.special_tokens)) {
    for (const [name, t] of Object.entries(p.special_tokens)) {
      const f = `${field}.special_tokens[${shown(name, 40)}].ids`;
      if (!isObject(t) || !Array.isArray(t.ids)) fail(f, "is missing; expected a list of ids");
      for (const id of (t as { ids: unknown[] }).ids) known(f, id);
    }
  }
  for (const k of ["sep", "cls"]) {
    const pair = p[k];
    if (Array.isArray(pair)) known(`${field}.${k}`, pair[1]);
  }
  if (Array.isArray(p.processors)) {
    p.processors.forEach((q, i) =>
      checkProcessor(q, `${field}.processors[${i}]`, ids, fail, depth + 1)
    );
  }
}
