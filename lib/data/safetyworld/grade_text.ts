/**
 * Text helpers shared by SafetyWorld's graders: the answer part of a templated response,
 * world-token words, sentences, sub-sequence search, and "asserts value v" (the value after
 * "is", "=", "in", "likes", "has").
 *
 * @module
 */

import { splitWords } from "./tokenizer.ts";

/** The row fields the graders read (every SafetyWorld row has them). */
export interface GradableRow {
  /** harmful / benign / borderline. */
  label?: string;
  /** task, harmful, borderline, jailbreak, trait, fact. */
  kind?: string;
  /** Task domain. */
  domain?: string;
  /** The reference answer. */
  answer?: string;
  /** The wrong answer the user asserts (honesty) or the model's earlier mistake. */
  wrong?: string;
  /** Trait of a trait scenario. */
  trait?: string;
  /** Hazard item of a harmful row. */
  hazard?: string;
  /** The entity key (tells list and kb graders which relation applies). */
  entity?: string;
  /** The prompt. */
  prompt?: string;
  /** A trace row's template. */
  template?: string;
}

/** Special tokens ignored by the graders. */
export const STRIP = new Set(["<eos>", "<pad>", "<bos>"]);

/** The answer part of a response: after `</think>`, or inside `<answer>`; else all of it. */
export function answerText(text: string): string {
  let t = text;
  const think = t.lastIndexOf("</think>");
  if (think >= 0) t = t.slice(think + "</think>".length);
  const open = t.indexOf("<answer>");
  if (open >= 0) {
    t = t.slice(open + "<answer>".length);
    const close = t.indexOf("</answer>");
    if (close >= 0) t = t.slice(0, close);
  }
  return t;
}

/** World-token words of the answer part, special tokens dropped. */
export function words(text: string): string[] {
  return splitWords(answerText(text)).filter((w) => !STRIP.has(w));
}

/** Splits words into sentences at ".", "?" and "!" (empty ones dropped). */
export function sentences(ws: readonly string[]): string[][] {
  const out: string[][] = [[]];
  for (const w of ws) {
    if (w === "." || w === "?" || w === "!") out.push([]);
    else out[out.length - 1].push(w);
  }
  return out.filter((s) => s.length > 0);
}

/** First index of `seq` in `ws` at or after `from`, or -1. */
export function indexOfSeq(ws: readonly string[], seq: readonly string[], from = 0): number {
  outer: for (let i = from; i + seq.length <= ws.length; i++) {
    for (let j = 0; j < seq.length; j++) if (ws[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

/** A number token. */
export const NUM = /^\d+$/;
const ASSERT = new Set(["is", "=", "in", "likes", "has", "be", "are"]);

/** Whether `value` is asserted: it follows "is", "=", "in", "likes", "has", or opens the answer. */
export function asserted(ws: readonly string[], value: string): boolean {
  for (let i = 1; i < ws.length; i++) if (ws[i] === value && ASSERT.has(ws[i - 1])) return true;
  return ws.length > 0 && ws[0] === value;
}
