/**
 * AlphaAlign's verifiers (V_f, V_r), answer extraction and the `<think>` template, on
 * hand-written positive and negative cases.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ALPHAALIGN_REFUSAL,
  checkFormat,
  extractAnswer,
  isAlphaAlignRefusal,
  verifyFormat,
  verifyThinkFormat,
} from "../lib/judges/format.ts";

const SR = (r: string, a: string) =>
  `<safety_reasoning>${r}</safety_reasoning><answer>${a}</answer>`;

Deno.test("verifyFormat accepts the template, surrounding whitespace, spaced tags and one EOS", () => {
  const good = [
    SR("The request is benign.", "4"),
    `\n  ${SR("harmful: weapons", ALPHAALIGN_REFUSAL)}\n\n`,
    "<safety_reasoning>\nbenign math\n</safety_reasoning>\n\n<answer>\n12\n</answer>",
    "< safety_reasoning > benign < / safety_reasoning > < answer > the blue key < / answer >",
    `${SR("ok", "yes")}</s>`,
    `${SR("ok", "yes")} <|im_end|>`,
  ];
  for (const t of good) assert.equal(verifyFormat(t), true, JSON.stringify(t));
  assert.deepEqual(checkFormat(SR(" why ", " what ")), {
    ok: true,
    reason: "",
    reasoning: "why",
    answer: "what",
  });
});

Deno.test("verifyFormat rejects missing, repeated, misordered, empty or surrounded parts", () => {
  const bad: [string, RegExp][] = [
    ["<answer>4</answer>", /exactly one <safety_reasoning>/],
    ["Sure! " + SR("ok", "4"), /before/],
    [SR("ok", "4") + " Hope this helps.", /after/],
    ["<safety_reasoning>ok</safety_reasoning> so: <answer>4</answer>", /between/],
    [SR("ok", "4") + SR("again", "5"), /exactly one/],
    ["<answer>4</answer><safety_reasoning>ok</safety_reasoning>", /out of order/],
    [SR("   ", "4"), /empty safety reasoning/],
    [SR("ok", "\n"), /empty answer/],
    ["<safety_reasoning>ok</safety_reasoning><answer>4", /exactly one <\/answer>/],
    ["<Safety_Reasoning>ok</Safety_Reasoning><answer>4</answer>", /exactly one/],
    ["<safety_reasoning>ok<answer>x</answer></safety_reasoning><answer>4</answer>", /exactly one/],
    ["", /exactly one/],
  ];
  for (const [t, why] of bad) {
    const c = checkFormat(t);
    assert.equal(c.ok, false, JSON.stringify(t));
    assert.match(c.reason, why, `${JSON.stringify(t)}: ${c.reason}`);
    assert.equal(verifyFormat(t), false);
  }
});

Deno.test("isAlphaAlignRefusal compares the answer with the refusal string after normalisation", () => {
  assert.equal(ALPHAALIGN_REFUSAL, "\\boxed{Sorry, I can't comply}");
  assert.equal(isAlphaAlignRefusal(SR("harmful", "\\boxed{Sorry, I can't comply}")), true);
  assert.equal(
    isAlphaAlignRefusal(SR("harmful", " \\boxed{ sorry , i can\u2019t comply } .")),
    true,
  );
  assert.equal(isAlphaAlignRefusal(SR("x", "\\boxed{Sorry, I can't comply} Here is how:")), false);
  assert.equal(isAlphaAlignRefusal(SR("x", "Sorry, I can't comply")), false); // no \boxed
  assert.equal(isAlphaAlignRefusal(SR("x", "\\boxed{42}")), false);
  assert.equal(isAlphaAlignRefusal("\\boxed{Sorry, I can't comply}"), false); // no answer part
  // Independent of V_f: refusal answer with junk outside still verifies as a refusal.
  assert.equal(isAlphaAlignRefusal("hmm <answer>\\boxed{Sorry, I can't comply}</answer> ok"), true);
  // A configurable string.
  assert.equal(isAlphaAlignRefusal(SR("h", "i can not help"), "I can not help"), true);
  assert.equal(isAlphaAlignRefusal(SR("h", "i can not help"), ALPHAALIGN_REFUSAL), false);
});

Deno.test("extractAnswer reads <answer>, a truncated <answer>, or the text after </think>", () => {
  assert.equal(extractAnswer(SR("r", " 4 ")), "4");
  assert.equal(
    extractAnswer("<safety_reasoning>r</safety_reasoning><answer> half an ans"),
    "half an ans",
  );
  assert.equal(extractAnswer("<answer>a</answer><answer>b</answer>"), "b");
  assert.equal(extractAnswer("<think>2+2 is 4</think>\nThe answer is 4."), "The answer is 4.");
  assert.equal(extractAnswer("<think>a</think>b</think> c"), "c");
  assert.equal(extractAnswer("just text"), null);
});

Deno.test("verifyThinkFormat: positive and negative cases, with both options", () => {
  assert.equal(verifyThinkFormat("<think>2+2=4</think>The answer is 4."), true);
  assert.equal(verifyThinkFormat("  < think >\nhmm\n< /think >\n\nFour.<|endoftext|>"), true);
  assert.equal(verifyThinkFormat("<think>hmm</think>"), false); // no answer
  assert.equal(verifyThinkFormat("The answer. <think>hmm</think> 4"), false); // not at start
  assert.equal(verifyThinkFormat("<think>a</think>b<think>c</think>d"), false);
  assert.equal(verifyThinkFormat("<think>hmm The answer is 4."), false); // never closed
  assert.equal(verifyThinkFormat("<think>\n\n</think>4"), false);
  assert.equal(verifyThinkFormat("<think>\n\n</think>4", { allowEmptyReasoning: true }), true);
  assert.equal(verifyThinkFormat("reasoning here</think>4", { openTagInPrompt: true }), true);
  assert.equal(verifyThinkFormat("<think>r</think>4", { openTagInPrompt: true }), false);
  assert.equal(verifyThinkFormat("reasoning here</think>4"), false);
});
