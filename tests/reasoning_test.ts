/**
 * Tests of splitReasoning / promptOpensReasoning / splitReasoningIds (lib/model/reasoning.ts):
 * closed, absent, unclosed and prompt-opened think blocks, custom tags, and the id-level
 * split that keeps special tags and end-of-turn tokens out of the text.
 *
 * @module
 */

import assert from "node:assert/strict";
import { promptOpensReasoning, splitReasoning, splitReasoningIds } from "../lib/model/reasoning.ts";

Deno.test("splitReasoning: a closed block, no block, an unclosed block", () => {
  assert.deepEqual(splitReasoning("<think>\nIt is 4.\n</think>\n\nFour."), {
    reasoning: "It is 4.",
    answer: "Four.",
    closed: true,
  });
  assert.deepEqual(splitReasoning("  Just an answer.\n"), {
    reasoning: "",
    answer: "Just an answer.",
    closed: true,
  });
  assert.deepEqual(splitReasoning("<think>\nStill going"), {
    reasoning: "Still going",
    answer: "",
    closed: false,
  });
  assert.deepEqual(splitReasoning(""), { reasoning: "", answer: "", closed: true });
  // Text before the opening tag is answer; only the first </think> closes.
  assert.deepEqual(splitReasoning("Hm. <think>a</think>b</think>c"), {
    reasoning: "a",
    answer: "Hm. b</think>c",
    closed: true,
  });
});

Deno.test("splitReasoning: a block the prompt opened", () => {
  assert.deepEqual(splitReasoning("a\n</think>\n\nb", { startsInside: true }), {
    reasoning: "a",
    answer: "b",
    closed: true,
  });
  assert.deepEqual(splitReasoning("still thinking", { startsInside: true }), {
    reasoning: "still thinking",
    answer: "",
    closed: false,
  });
  // A close with no open before it is read as an opened-in-the-prompt block.
  assert.deepEqual(splitReasoning("a</think>b"), { reasoning: "a", answer: "b", closed: true });
  // Custom tags.
  assert.deepEqual(
    splitReasoning("<safety_reasoning>x</safety_reasoning> y", {
      open: "<safety_reasoning>",
      close: "</safety_reasoning>",
    }),
    { reasoning: "x", answer: "y", closed: true },
  );
});

Deno.test("promptOpensReasoning reads the last think tag of a prompt", () => {
  assert.equal(promptOpensReasoning("<|im_start|>assistant\n<think>\n"), true);
  assert.equal(promptOpensReasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"), false);
  assert.equal(promptOpensReasoning("<|im_start|>assistant\n"), false);
});

Deno.test("splitReasoningIds cuts at tag tokens and skips special tokens in both parts", () => {
  // A toy tokenizer: ids index WORDS; ids >= 10 are special (skipped unless asked).
  const WORDS = ["a", "b", "c", "x", "y", "", "", "", "", "", "<think>", "</think>", "<eos>"];
  const tok = {
    decode: (ids: number[], opts?: { skipSpecialTokens?: boolean }) =>
      ids.filter((i) => !(opts?.skipSpecialTokens ?? true) || i < 10).map((i) => WORDS[i])
        .join(" "),
  };
  assert.deepEqual(splitReasoningIds(tok, [10, 0, 1, 11, 2, 12]), {
    reasoning: "a b",
    answer: "c",
    closed: true,
  });
  assert.deepEqual(splitReasoningIds(tok, [0, 1, 11, 2, 12], [3, 10]), {
    reasoning: "a b",
    answer: "c",
    closed: true,
  });
  assert.deepEqual(splitReasoningIds(tok, [10, 0, 1]), {
    reasoning: "a b",
    answer: "",
    closed: false,
  });
  assert.deepEqual(splitReasoningIds(tok, [3, 4, 12]), {
    reasoning: "",
    answer: "x y",
    closed: true,
  });
  assert.deepEqual(splitReasoningIds(tok, []), { reasoning: "", answer: "", closed: true });
});
