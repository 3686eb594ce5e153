/**
 * Prompts as token ids, the way Hugging Face `transformers` builds them:
 *
 * - a chat-templated conversation is `apply_chat_template(messages, tokenize=True)`: the
 *   template is rendered, then tokenized with `add_special_tokens=False`, because the
 *   template already writes the BOS text (`{{ bos_token }}`) where the model expects it;
 * - plain text is `tokenizer(text)`: the post-processor adds its special tokens (Llama's BOS).
 *
 * Everything that turns a user prompt into model input (generation, activation collection,
 * SFT, diagnostics) goes through {@linkcode encodePrompt}, so a prompt gets exactly one BOS.
 *
 * @module
 */

import type { ChatMessage, ChatTemplateOptions, TextTokenizer } from "./tokenizer.ts";

/**
 * A conversation's prompt ids as HF's `apply_chat_template(messages, tokenize=True,
 * add_generation_prompt=..., **templateKwargs)`: the rendered template, encoded without
 * adding special tokens. `addGenerationPrompt` @default true.
 *
 * @example
 * ```ts ignore
 * const ids = encodeChat(model.tokenizer, [{ role: "user", content: "Hi" }], {
 *   templateKwargs: { enable_thinking: false },
 * });
 * ```
 */
export function encodeChat(
  tokenizer: TextTokenizer,
  messages: ChatMessage[],
  opts: ChatTemplateOptions = {},
): number[] {
  return tokenizer.encode(tokenizer.applyChatTemplate(messages, opts), {
    addSpecialTokens: false,
  });
}

/** Options of {@linkcode encodePrompt}. */
export interface PromptOptions {
  /** Apply the chat template ("auto": when the tokenizer has one). @default "auto" */
  chat?: boolean | "auto";
  /** Extra chat-template variables (e.g. `{ enable_thinking: false }`). @default {} */
  templateKwargs?: Record<string, unknown>;
}

/**
 * One user prompt as the model's input ids: the chat template with a generation prompt
 * ({@linkcode encodeChat}) when `chat` allows, else `tokenizer(prompt)` with its special
 * tokens, as HF encodes plain text.
 *
 * @example
 * ```ts ignore
 * const ids = encodePrompt(model.tokenizer, "How do I pick a lock?");
 * ```
 */
export function encodePrompt(
  tokenizer: TextTokenizer,
  prompt: string,
  opts: PromptOptions = {},
): number[] {
  const chat = opts.chat ?? "auto";
  const useChat = chat === true || (chat === "auto" && tokenizer.hasChatTemplate);
  return useChat
    ? encodeChat(tokenizer, [{ role: "user", content: prompt }], {
      addGenerationPrompt: true,
      templateKwargs: opts.templateKwargs,
    })
    : tokenizer.encode(prompt);
}
