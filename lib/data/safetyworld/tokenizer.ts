/**
 * SafetyWorld's word-level tokenizer in the Hugging Face `tokenizer.json` format
 * (model "WordLevel", Lowercase normalizer, whitespace + single-punctuation pre-tokenizer,
 * a WordPiece decoder without cleanup, which joins tokens with spaces), plus a
 * `tokenizer_config.json` whose Jinja `chat_template` renders the world's training format
 * `<bos> user : PROMPT bot : RESPONSE <eos>`. Loads in `@huggingface/tokenizers` and in
 * the Rust `tokenizers` crate.
 *
 * @module
 */

import type { World } from "./plan.ts";

/** Special tokens, with fixed ids 0..3. */
export const SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"] as const;

/** Template tags kept whole by the tokenizer (added, non-special tokens). */
export const TAG_TOKENS = [
  "<think>",
  "</think>",
  "<safety_reasoning>",
  "</safety_reasoning>",
  "<answer>",
  "</answer>",
] as const;

/** The longest training string (in tokens) the world allows, for a context of 96. */
export const MAX_WORLD_TOKENS = 90;

const WHOLE = new Set<string>([...SPECIAL_TOKENS, ...TAG_TOKENS]);

/**
 * Splits text the way the world tokenizer does: lowercase, whitespace, each punctuation
 * character alone, special and tag tokens kept whole.
 */
export function splitWords(text: string): string[] {
  const out: string[] = [];
  for (const chunk of text.toLowerCase().split(/\s+/)) {
    if (chunk === "") continue;
    if (WHOLE.has(chunk)) {
      out.push(chunk);
      continue;
    }
    for (const piece of chunk.split(/(<\/?[a-z_]+>)/)) {
      if (piece === "") continue;
      if (WHOLE.has(piece)) out.push(piece);
      else out.push(...(piece.match(/\w+|[^\w\s]/g) ?? []));
    }
  }
  return out;
}

/**
 * The exact training string of one example: `<bos> user : PROMPT bot :` and, when a
 * response is given, ` RESPONSE <eos>` (what the chat template renders).
 */
export function worldText(prompt: string, response?: string): string {
  const head = `<bos> user : ${prompt} bot :`;
  return response === undefined ? head : `${head} ${response} <eos>`;
}

/** Number of tokens of `worldText(prompt, response)`. */
export function worldLength(prompt: string, response?: string): number {
  return splitWords(worldText(prompt, response)).length;
}

/** The Jinja chat template: `<bos> user : {content} bot :` / `bot : {content} <eos>`. */
export const CHAT_TEMPLATE = "{%- for message in messages -%}" +
  "{%- if not loop.first %} {% endif -%}" +
  "{%- if message['role'] == 'user' -%}" +
  "{%- if loop.first %}{{ bos_token }} {% endif -%}" +
  "user : {{ message['content'] }}" +
  "{%- elif message['role'] == 'assistant' -%}" +
  "bot : {{ message['content'] }} {{ eos_token }}" +
  "{%- endif -%}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt %} bot :{% endif -%}";

/** Every text field of every row of a world, in file order (for the vocabulary). */
export function worldStrings(world: World): string[] {
  const out: string[] = [];
  const fields = ["prompt", "response", "trace", "good", "bad"];
  for (
    const rows of [
      world.prompts,
      world.sft,
      world.align,
      world.recovery,
      world.traces,
      world.traits,
    ]
  ) {
    for (const row of rows) {
      for (const f of fields) {
        const v = (row as Record<string, unknown>)[f];
        if (typeof v === "string") out.push(v);
      }
    }
  }
  return out;
}

/** The sorted vocabulary of a world: specials (ids 0-3), tags, then every word, sorted. */
export function worldVocabulary(world: World): string[] {
  const words = new Set<string>(["user", "bot", ":"]);
  for (const s of worldStrings(world)) for (const w of splitWords(s)) words.add(w);
  for (const w of [...SPECIAL_TOKENS, ...TAG_TOKENS]) words.delete(w);
  const sorted = [...words].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [...SPECIAL_TOKENS, ...TAG_TOKENS, ...sorted];
}

/**
 * Builds the world's `tokenizer.json` and `tokenizer_config.json` (as plain JSON values;
 * write them with `writeJsonAtomic`). Vocabulary: every word the world's rows use, sorted.
 */
export function buildWorldTokenizer(
  world: World,
): { tokenizerJson: unknown; tokenizerConfig: unknown } {
  const vocabList = worldVocabulary(world);
  const vocab: Record<string, number> = {};
  vocabList.forEach((w, i) => (vocab[w] = i));
  const special = new Set<string>(SPECIAL_TOKENS);
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [...SPECIAL_TOKENS, ...TAG_TOKENS].map((content) => ({
      id: vocab[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: special.has(content),
    })),
    normalizer: { type: "Lowercase" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "WhitespaceSplit" },
        { type: "Split", pattern: { Regex: "[^\\w\\s]" }, behavior: "Isolated", invert: false },
      ],
    },
    post_processor: null,
    decoder: { type: "WordPiece", prefix: "##", cleanup: false },
    model: { type: "WordLevel", vocab, unk_token: "<unk>" },
  };
  const tokenizerConfig = {
    bos_token: "<bos>",
    eos_token: "<eos>",
    pad_token: "<pad>",
    unk_token: "<unk>",
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 96,
    padding_side: "left",
    tokenizer_class: "PreTrainedTokenizerFast",
    chat_template: CHAT_TEMPLATE,
  };
  return { tokenizerJson, tokenizerConfig };
}
