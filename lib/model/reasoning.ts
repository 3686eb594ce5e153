/**
 * Reasoning traces of "thinking" models (Qwen3, DeepSeek-R1, SafetyWorld): a generation is
 * `<think> REASONING </think> ANSWER`. This file splits one into its reasoning and answer,
 * the way vLLM's reasoning parsers and the Qwen3 model card do, with the cases they cover:
 *
 * - the chat template may already open `<think>` in the prompt (DeepSeek-R1, Qwen3-Thinking):
 *   the generation then starts inside the reasoning (`startsInside`), and a `</think>` with
 *   no `<think>` before it is read the same way;
 * - a generation cut at `maxNewTokens` inside the reasoning has an unclosed `<think>`: all of
 *   it is reasoning, the answer is empty and `closed` is false;
 * - a prompt that closes the block itself (Qwen3 with `enable_thinking: false` renders
 *   `<think>\n\n</think>\n\n`) leaves a generation with no tags: all of it is answer.
 *
 * Choices made here: the first `</think>` after the opening ends the reasoning; text before
 * an opening `<think>` is kept as answer; both parts are trimmed of surrounding whitespace.
 *
 * @module
 */

import type { TextTokenizer } from "./tokenizer.ts";

/** A generation cut into reasoning and answer. */
export interface ReasoningSplit {
  /** Text inside the think block ("" when there is none), trimmed. */
  reasoning: string;
  /** Text outside it (everything, when there is no think block), trimmed. */
  answer: string;
  /** False when a think block was opened and never closed (cut at the token limit). */
  closed: boolean;
}

/** Options of {@linkcode splitReasoning}. */
export interface SplitReasoningOptions {
  /** The text starts inside a think block the prompt opened. @default false */
  startsInside?: boolean;
  /** Opening tag. @default "<think>" */
  open?: string;
  /** Closing tag. @default "</think>" */
  close?: string;
}

/**
 * Splits a generation into the reasoning inside `<think>...</think>` and the answer after it.
 *
 * @example
 * ```ts
 * import { splitReasoning } from "./reasoning.ts";
 * splitReasoning("<think>\nIt is 4.\n</think>\n\nFour.");
 * // { reasoning: "It is 4.", answer: "Four.", closed: true }
 * splitReasoning("It is 4.</think>Four.", { startsInside: true }).answer; // "Four."
 * splitReasoning("<think>Still thinking").closed; // false
 * ```
 */
export function splitReasoning(text: string, opts: SplitReasoningOptions = {}): ReasoningSplit {
  const open = opts.open ?? "<think>";
  const close = opts.close ?? "</think>";
  let before = "";
  let inside = text;
  if (!opts.startsInside) {
    const o = text.indexOf(open);
    const c = text.indexOf(close);
    if (o < 0 && c < 0) return { reasoning: "", answer: text.trim(), closed: true };
    if (o >= 0 && (c < 0 || o < c)) {
      before = text.slice(0, o);
      inside = text.slice(o + open.length);
    } // else: a close with no open before it, so the prompt opened the block
  }
  const end = inside.indexOf(close);
  if (end < 0) return { reasoning: inside.trim(), answer: before.trim(), closed: false };
  return {
    reasoning: inside.slice(0, end).trim(),
    answer: (before + inside.slice(end + close.length)).trim(),
    closed: true,
  };
}

/**
 * Whether a prompt leaves a think block open for the generation (the last think tag in it
 * is an opening one), read from its text with special tokens kept.
 *
 * @example
 * ```ts
 * import { promptOpensReasoning } from "./reasoning.ts";
 * promptOpensReasoning("<|im_start|>assistant\n<think>\n"); // true
 * promptOpensReasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"); // false
 * ```
 */
export function promptOpensReasoning(
  prompt: string,
  open = "<think>",
  close = "</think>",
): boolean {
  const o = prompt.lastIndexOf(open);
  return o >= 0 && o > prompt.lastIndexOf(close);
}

/**
 * Splits generated token ids into reasoning and answer. When the think tags are single
 * tokens (added tokens, special or not), the ids are cut at them and each part decoded with
 * special tokens skipped, so special tags and end-of-turn tokens never leak into the text;
 * otherwise the decoded text is split with {@linkcode splitReasoning}. `promptIds` tell
 * whether the template opened the block already.
 *
 * @example
 * ```ts ignore
 * const { reasoning, answer } = splitReasoningIds(tok, out.tokenIds[0], out.promptIds[0]);
 * ```
 */
export function splitReasoningIds(
  tokenizer: Pick<TextTokenizer, "decode">,
  ids: readonly number[],
  promptIds: readonly number[] = [],
  tags: { open?: string; close?: string } = {},
): ReasoningSplit {
  const open = tags.open ?? "<think>";
  const close = tags.close ?? "</think>";
  const tagCache = new Map<number, string>();
  const tagOf = (id: number): string => {
    let t = tagCache.get(id);
    if (t === undefined) {
      t = tokenizer.decode([id], { skipSpecialTokens: false }).trim();
      tagCache.set(id, t);
    }
    return t;
  };
  const isTag = (id: number) => {
    const t = tagOf(id);
    return t === open || t === close;
  };
  const startsInside = promptOpensReasoning(
    tokenizer.decode([...promptIds], { skipSpecialTokens: false }),
    open,
    close,
  );
  if (!ids.some(isTag)) {
    // Multi-token tags (or none): split the text.
    return splitReasoning(tokenizer.decode([...ids], { skipSpecialTokens: true }), {
      startsInside,
      open,
      close,
    });
  }
  const text = (part: readonly number[]) =>
    tokenizer.decode([...part], { skipSpecialTokens: true }).trim();
  let from = 0;
  let before: readonly number[] = [];
  if (!startsInside) {
    const o = ids.findIndex((id) => tagOf(id) === open);
    const c = ids.findIndex((id) => tagOf(id) === close);
    if (o >= 0 && (c < 0 || o < c)) {
      before = ids.slice(0, o);
      from = o + 1;
    }
  }
  const end = ids.findIndex((id, k) => k >= from && tagOf(id) === close);
  if (end < 0) return { reasoning: text(ids.slice(from)), answer: text(before), closed: false };
  return {
    reasoning: text(ids.slice(from, end)),
    answer: text([...before, ...ids.slice(end + 1)]),
    closed: true,
  };
}
