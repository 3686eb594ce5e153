/**
 * The toolkit's text tokenizer: a Hugging Face fast-tokenizer file (`tokenizer.json`, as
 * written by `tokenizer.save_pretrained`) run by `@huggingface/tokenizers`, with the
 * special tokens and the Jinja chat template of `tokenizer_config.json` (or
 * `chat_template.jinja`) rendered by `@huggingface/jinja`, as `apply_chat_template` does in
 * transformers.
 *
 * The calls mean what they mean in transformers: `encode(text)` is `tokenizer(text)` (special
 * tokens added by the post-processor), `decode(ids)` is `tokenizer.decode(ids,
 * skip_special_tokens=True)`, and lib/model/chat.ts's `encodeChat` is
 * `apply_chat_template(..., tokenize=True)`. tests/tokenizer_hf_test.ts checks them against
 * transformers; where the JavaScript port decodes differently from the Rust library,
 * lib/model/tokenizer_fixes.ts patches it.
 *
 * @module
 */

import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { patchDecoder } from "./tokenizer_fixes.ts";
import { checkTokenizerJson } from "./tokenizer_check.ts";
import { renderTemplate } from "./chat_template.ts";
import { clipName } from "../io/bounded.ts";
import { jsonDepthExceeded, MAX_JSON_DEPTH } from "../io/text.ts";

/** One turn of a conversation. */
export interface ChatMessage {
  /** Who speaks this turn. */
  role: "system" | "user" | "assistant";
  /** The turn's text. */
  content: string;
}

/** A loaded tokenizer. */
export interface TextTokenizer {
  /** Number of ids: the largest id in the vocabulary (added tokens included) plus one. */
  readonly vocabSize: number;
  /** Id of tokenizer_config.json's `bos_token`, when it names a vocabulary token. */
  readonly bosId?: number;
  /** Id of tokenizer_config.json's `eos_token`, when it names a vocabulary token. */
  readonly eosId?: number;
  /** Id of tokenizer_config.json's `pad_token`, when it names a vocabulary token. */
  readonly padId?: number;
  /** Whether the tokenizer has its own chat template (else the plain fallback is used). */
  readonly hasChatTemplate: boolean;
  /**
   * Text to ids, as Hugging Face's `tokenizer(text)["input_ids"]`: `addSpecialTokens`
   * (@default true) runs tokenizer.json's post-processor, which adds what it names (Llama's
   * `<s>`; nothing for GPT-2, Qwen or SafetyWorld). Pass `addSpecialTokens: false` for text
   * that continues a sequence (a response, a trace, a prefill) and for a rendered chat
   * template, which holds its own BOS text (see {@linkcode encodeChat} in lib/model/chat.ts).
   */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Ids to text. `skipSpecialTokens` @default true. */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The id of a vocabulary token, or undefined. */
  tokenToId(token: string): number | undefined;
  /** The vocabulary token of an id, or undefined. */
  idToToken(id: number): string | undefined;
  /**
   * Renders a conversation to prompt text with the chat template, or, without one, with
   * the plain fallback {@linkcode plainChatPrompt}. `addGenerationPrompt` @default true
   * (HF's default is false). `templateKwargs` reach the template as variables, as the
   * `**kwargs` of HF's `apply_chat_template` do (e.g. `{ enable_thinking: false }` for
   * Qwen3); they override the special-token variables of the same name.
   */
  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions): string;
}

/** Options of {@linkcode TextTokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the assistant header that starts a reply. @default true */
  addGenerationPrompt?: boolean;
  /** Extra template variables (HF `apply_chat_template(**kwargs)`). @default {} */
  templateKwargs?: Record<string, unknown>;
}

const ROLE_NAMES: Record<ChatMessage["role"], string> = {
  system: "System",
  user: "User",
  assistant: "Assistant",
};

/**
 * The plain chat format used when a tokenizer has no chat template: one line per message,
 * `System: ...`, `User: ...`, `Assistant: ...`, each ended by a newline, then `Assistant:`
 * when `addGenerationPrompt` is true. Example: `"User: Hi\nAssistant:"`.
 */
export function plainChatPrompt(messages: ChatMessage[], addGenerationPrompt = true): string {
  const lines = messages.map((m) => `${ROLE_NAMES[m.role] ?? m.role}: ${m.content}\n`).join("");
  return addGenerationPrompt ? `${lines}Assistant:` : lines;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A special-token entry (string or `{content}`) as text, else undefined. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v.content === "string") return v.content;
  return undefined;
}

/** The chat template of a tokenizer_config: a string, or the `default` of a named list. */
function chatTemplateOf(config: Record<string, unknown>, source: string): string | undefined {
  const t = config.chat_template;
  if (t === undefined || t === null) return undefined;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t.filter((e): e is { name: string; template: string } =>
      isObject(e) && typeof e.name === "string" && typeof e.template === "string"
    );
    return (named.find((e) => e.name === "default") ?? named[0])?.template;
  }
  throw new Error(
    `Cannot load tokenizer from ${source}: tokenizer_config.json field 'chat_template' ` +
      `must be a string or a list of {name, template}`,
  );
}

/**
 * Builds a tokenizer from parsed `tokenizer.json` and (optional) `tokenizer_config.json`
 * values. `source` names them in errors (@default "tokenizer.json").
 */
export function tokenizerFromJson(
  tokenizerJson: unknown,
  tokenizerConfig?: unknown,
  source = "tokenizer.json",
): TextTokenizer {
  // Ids, vocabulary type, unk and special tokens, before the port allocates anything by id.
  checkTokenizerJson(tokenizerJson, tokenizerConfig, source);
  if (tokenizerConfig !== undefined && !isObject(tokenizerConfig)) {
    throw new Error(`Cannot load tokenizer from ${source}: tokenizer_config.json is not an object`);
  }
  const config = tokenizerConfig ?? {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson as Record<string, unknown>, config);
    patchDecoder((tok as unknown as { decoder?: unknown }).decoder); // decode as Rust does
  } catch (err) {
    throw new Error(
      `Cannot load tokenizer from ${source}: ${clipName((err as Error).message, 200)}`,
      {
        cause: err,
      },
    );
  }
  let maxId = -1;
  const vocabIds = new Set<number>();
  for (const id of tok.get_vocab(true).values()) (vocabIds.add(id), id > maxId && (maxId = id));
  const special: Record<string, string | undefined> = {};
  for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
    special[key] = tokenText(config[key]);
  }
  const idOf = (text: string | undefined) => text === undefined ? undefined : tok.token_to_id(text);
  const templateSrc = chatTemplateOf(config, source);
  let template: Template | undefined;
  const render = (
    messages: ChatMessage[],
    addGenerationPrompt: boolean,
    kwargs: Record<string, unknown>,
  ): string => {
    try {
      template ??= new Template(templateSrc!);
      // As HF: the special tokens, then the caller's kwargs over them, then the conversation;
      // rendered under a step and size budget (lib/model/chat_template.ts).
      const chars = messages.reduce((n, m) => n + String(m.content).length, 0);
      return renderTemplate(template, {
        bos_token: special.bos_token ?? "",
        eos_token: special.eos_token ?? "",
        pad_token: special.pad_token ?? "",
        unk_token: special.unk_token ?? "",
        ...kwargs,
        messages,
        add_generation_prompt: addGenerationPrompt,
      }, { steps: 250_000 + 500 * messages.length, chars: 4_000_000 + 4 * chars });
    } catch (err) {
      throw new Error(
        `Cannot render the chat template of ${source}: "${
          clipName((err as Error).message, 200)
        }"; ` +
          `check the template's Jinja syntax and the message roles it accepts`,
        { cause: err },
      );
    }
  };
  const vocabSize = maxId + 1;
  // A malformed part of the file the port only reads when it runs (a post-processor entry of
  // the wrong shape) throws a bare TypeError there: name the file instead.
  const port = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw new Error(
        `Cannot ${what} with ${source}: ${clipName(String((err as Error)?.message ?? err), 200)}`,
        { cause: err },
      );
    }
  };
  // The port returns undefined ids where Rust would fail (no unk token): never hand those on.
  const checked = (ids: number[], text: string): number[] => {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize || !vocabIds.has(id)) {
        throw new Error(
          `Cannot encode with ${source}: the tokenizer produced id ${id} for ${
            JSON.stringify(clipName(text, 60))
          }, which is not in its vocabulary of ${vocabSize} ids; the file's model (or its ` +
            "unk_token) is broken",
        );
      }
    }
    return ids;
  };
  return {
    vocabSize,
    bosId: idOf(special.bos_token),
    eosId: idOf(special.eos_token),
    padId: idOf(special.pad_token),
    hasChatTemplate: templateSrc !== undefined,
    encode: (text, opts) =>
      checked(
        port("encode", () =>
          tok.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? true }).ids),
        text,
      ),
    // HF decodes [] to ""; @huggingface/tokenizers throws on an empty list.
    decode: (ids, opts) =>
      ids.length === 0
        ? ""
        : port("decode", () =>
          tok.decode(ids, { skip_special_tokens: opts?.skipSpecialTokens ?? true })),
    tokenToId: (token) => tok.token_to_id(token),
    idToToken: (id) => tok.id_to_token(id),
    applyChatTemplate: (messages, opts) => {
      const gen = opts?.addGenerationPrompt ?? true;
      return templateSrc === undefined
        ? plainChatPrompt(messages, gen)
        : render(messages, gen, opts?.templateKwargs ?? {});
    },
  };
}

/** Reads a JSON file; undefined when it does not exist, a clear error when it is not JSON. */
async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (jsonDepthExceeded(text)) {
    throw new Error(`Cannot parse ${path}: JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(
      `Cannot parse ${path}: not valid JSON (${clipName((err as Error).message, 160)})`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Loads the tokenizer of a Hugging Face model folder: `tokenizer.json` (required),
 * `tokenizer_config.json` (special tokens, chat template), `special_tokens_map.json`
 * (special tokens the config lacks) and `chat_template.jinja` (overrides the config's
 * template, as newer transformers versions save it), each optional.
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const path = join(dir, "tokenizer.json");
  const json = await readJson(path);
  if (json === undefined) {
    throw new Error(
      `Cannot load tokenizer: ${dir} has no tokenizer.json; expected a Hugging Face ` +
        `fast-tokenizer file (save one with AutoTokenizer.from_pretrained(...).save_pretrained(dir))`,
    );
  }
  const config = await readJson(join(dir, "tokenizer_config.json")) ?? {};
  if (!isObject(config)) {
    throw new Error(`Cannot load tokenizer: ${dir}/tokenizer_config.json is not an object`);
  }
  const map = await readJson(join(dir, "special_tokens_map.json"));
  if (isObject(map)) {
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      if (config[key] === undefined && map[key] !== undefined) config[key] = map[key];
    }
  }
  try {
    config.chat_template = await Deno.readTextFile(join(dir, "chat_template.jinja"));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return tokenizerFromJson(json, config, path);
}
