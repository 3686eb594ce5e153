/**
 * Attacks at every depth (lib/eval/attacks.ts): each attack forces exactly its tokens at the
 * right steps (checked on ids with a tiny random model), fraction positions resolve against
 * the unattacked answer's length, random insertion lands inside the refusal, and batching
 * does not change a row's tokens.
 *
 * @module
 */

import assert from "node:assert/strict";
import { numberTokenizer, tinyModel, useTestBackend } from "./_helpers.ts";
import {
  contentIds,
  injectionAttack,
  jailbreakAttack,
  prefillAttack,
  randomInsertionAttack,
  refusalSteps,
  runAttack,
} from "../lib/eval/attacks.ts";
import { refusalVerdict } from "../lib/judges/refusal.ts";
import type { PromptRow } from "../lib/data/schema.ts";
import type { TextTokenizer } from "../lib/model/tokenizer.ts";

await useTestBackend();

const EOS = 39;
const row = (id: string, prompt: string, target?: string): PromptRow => ({
  id,
  prompt,
  label: "harmful",
  category: "c",
  source: "test",
  ...(target === undefined ? {} : { target }),
});
const ROWS = [
  row("a", "1 2 3", "30 31 32 33 34"),
  row("b", "4 5", "20 21 22 23"),
  row("c", "6 7 8 9", "10 11 12"),
];
const flags = (n: number, on: [number, number]) =>
  Array.from({ length: n }, (_, i) => i >= on[0] && i < on[1]);

Deno.test("prefill forces the first k target tokens at step 0; the rest is greedy", async () => {
  const m = await tinyModel("gpt2");
  const res = await runAttack(m, ROWS, prefillAttack(3), { maxNewTokens: 8, stopAtEos: false });
  const want = [[30, 31, 32], [20, 21, 22], [10, 11, 12]];
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(res[i].tokenIds.slice(0, 3), want[i]);
    assert.deepEqual(res[i].forced, flags(8, [0, 3]));
    assert.equal(res[i].injectedAt, 0);
    assert.deepEqual(res[i].params, { k: 3, applied: true });
    // Independent: greedy decoding from prompt + prefix gives the same continuation.
    const ref = await m.generate({
      inputIds: [[...m.tokenizer.encode(ROWS[i].prompt), ...want[i]]],
      maxNewTokens: 5,
      stopAtEos: false,
    });
    assert.deepEqual(res[i].tokenIds.slice(3), ref.tokenIds[0]);
  }
  m.dispose();
});

Deno.test("prefill from an answers map drops eos; rows without an answer stay unattacked", async () => {
  const m = await tinyModel("llama");
  const answers = new Map<string, number[] | string>([["a", [25, 26, EOS]], ["b", "27 28"]]);
  const rows = [...ROWS, row("d", "3 3")];
  const res = await runAttack(m, rows, prefillAttack(5, "answers", { answers }), {
    maxNewTokens: 6,
    stopAtEos: false,
  });
  assert.deepEqual(res[0].tokenIds.slice(0, 2), [25, 26]);
  assert.deepEqual(res[0].forced, flags(6, [0, 2]));
  assert.deepEqual(res[1].tokenIds.slice(0, 2), [27, 28]);
  assert.equal(res[2].injectedAt, null); // no answer for "c" in the map
  assert.equal(res[3].params.applied, false);
  const plain = await m.generate({ prompts: ["3 3"], maxNewTokens: 6, stopAtEos: false });
  assert.deepEqual(res[3].tokenIds, plain.tokenIds[0]);
  m.dispose();
});

Deno.test("injection forces its tokens at step t; the prefix equals the unattacked answer", async () => {
  const m = await tinyModel("llama");
  const opts = { maxNewTokens: 10, stopAtEos: false };
  const base = await runAttack(m, ROWS, "none", opts);
  const res = await runAttack(m, ROWS, injectionAttack({ at: 4, tokens: [33, 34] }), opts);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(res[i].tokenIds.slice(0, 4), base[i].tokenIds.slice(0, 4));
    assert.deepEqual(res[i].tokenIds.slice(4, 6), [33, 34]);
    assert.deepEqual(res[i].forced, flags(10, [4, 6]));
    assert.equal(res[i].injectedAt, 4);
  }
  // Batching composes: one row per batch gives the same ids.
  const one = await runAttack(m, ROWS, injectionAttack({ at: 4, tokens: [33, 34] }), {
    ...opts,
    batchSize: 1,
  });
  assert.deepEqual(one.map((r) => r.tokenIds), res.map((r) => r.tokenIds));
  m.dispose();
});

Deno.test("injection inside a sampled answer keeps the sampled prefix (same seed)", async () => {
  const m = await tinyModel("gpt2", 3);
  const opts = { maxNewTokens: 9, stopAtEos: false, temperature: 1, seed: 7 };
  const base = await runAttack(m, ROWS, "none", opts);
  const res = await runAttack(m, ROWS, injectionAttack({ at: 6, text: "35" }), opts);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(res[i].tokenIds.slice(0, 6), base[i].tokenIds.slice(0, 6));
    assert.equal(res[i].tokenIds[6], 35);
  }
  m.dispose();
});

Deno.test("fraction positions resolve against the unattacked answer's length", async () => {
  const m = await tinyModel("gpt2");
  // Given baselines: lengths 3, 7 and 10 (eos ends the first two).
  const baseline = [[5, 6, 7, EOS], [1, 2, 3, 4, 5, 6, 7, EOS], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]];
  const atk = injectionAttack({ at: { fraction: 0.5 }, tokens: [36] });
  const res = await runAttack(m, ROWS, atk, { maxNewTokens: 12, stopAtEos: false, baseline });
  assert.deepEqual(res.map((r) => r.injectedAt), [2, 4, 5]); // round(1.5), round(3.5), 5
  assert.deepEqual(res.map((r) => r.params.baselineLength), [3, 7, 10]);
  res.forEach((r) => assert.equal(r.tokenIds[r.injectedAt!], 36));
  m.dispose();
});

/** Prompts on which tinyModel("llama", 3) ends its greedy answers at various lengths. */
const VARIED = Array.from(
  { length: 12 },
  (_, i) => row(`v${i}`, `${i + 1} ${((i * 7) % 30) + 1} ${((i * 3) % 20) + 2}`),
);

Deno.test("fractions resolve against the model's own answer, generated by the runner", async () => {
  const m = await tinyModel("llama", 3);
  const atk = injectionAttack({ at: { fraction: 0.75 }, tokens: [36] });
  const own = await runAttack(m, VARIED, atk, { maxNewTokens: 12 });
  const plain = await m.generate({ prompts: VARIED.map((r) => r.prompt), maxNewTokens: 12 });
  const lens = plain.tokenIds.map((ids) => contentIds(m.tokenizer, ids).length);
  assert.ok(new Set(lens).size >= 4, `answer lengths vary: ${lens}`);
  own.forEach((r, i) => {
    assert.equal(r.params.baselineLength, lens[i]);
    assert.equal(r.injectedAt, Math.round(0.75 * lens[i]));
    assert.equal(r.tokenIds[r.injectedAt!], 36);
  });
  m.dispose();
});

Deno.test("an injection after the model's own end of answer is dropped", async () => {
  const m = await tinyModel("llama", 3);
  const plain = await m.generate({ prompts: VARIED.map((r) => r.prompt), maxNewTokens: 12 });
  const lens = plain.tokenIds.map((ids) => contentIds(m.tokenizer, ids).length);
  const res = await runAttack(m, VARIED, injectionAttack({ at: 3, tokens: [36, 37] }), {
    maxNewTokens: 12,
  });
  assert.ok(lens.some((l) => l === 2), "a row ends right before the injection step");
  res.forEach((r, i) => {
    if (lens[i] >= 3) {
      assert.equal(r.injectedAt, 3);
      assert.deepEqual(r.tokenIds.slice(3, 5), [36, 37]);
    } else {
      assert.equal(r.injectedAt, null, `row ${i} ended at ${lens[i]}`);
      assert.deepEqual(r.tokenIds, plain.tokenIds[i]);
      assert.equal(r.text, plain.text[i]);
    }
  });
  m.dispose();
});

Deno.test("random injection tokens: seeded, never special, `length` long", async () => {
  const m = await tinyModel("gpt2");
  const atk = injectionAttack({ at: 2, source: "random", length: 3, seed: 5 });
  const a = await runAttack(m, ROWS, atk, { maxNewTokens: 6, stopAtEos: false });
  const b = await runAttack(m, ROWS, atk, { maxNewTokens: 6, stopAtEos: false });
  assert.deepEqual(a.map((r) => r.tokenIds), b.map((r) => r.tokenIds));
  for (const r of a) {
    const inj = r.tokenIds.slice(2, 5);
    assert.deepEqual(r.forced, flags(6, [2, 5]));
    assert.ok(inj.every((t) => t !== 0 && t !== EOS && t > 0 && t < 40), String(inj));
  }
  const distinct = new Set(a.map((r) => r.tokenIds.slice(2, 5).join(",")));
  assert.ok(distinct.size > 1, "rows draw their own random tokens");
  m.dispose();
});

Deno.test("harmful-source injection uses the row's target; jailbreak wraps the prompt", async () => {
  const m = await tinyModel("gpt2");
  const inj = await runAttack(m, ROWS, injectionAttack({ at: 3, source: "harmful", length: 2 }), {
    maxNewTokens: 6,
    stopAtEos: false,
  });
  assert.deepEqual(inj.map((r) => r.tokenIds.slice(3, 5)), [[30, 31], [20, 21], [10, 11]]);
  const jb = await runAttack(m, ROWS, jailbreakAttack("9 9 {request} 8"), { maxNewTokens: 2 });
  assert.deepEqual(jb.map((r) => r.prompt), ["9 9 1 2 3 8", "9 9 4 5 8", "9 9 6 7 8 9 8"]);
  assert.ok(jb.every((r) => r.injectedAt === null && r.forced.every((f) => !f)));
  m.dispose();
});

Deno.test("random insertion lands strictly inside the refusal of the unattacked answer", async () => {
  const m = await tinyModel("llama", 2);
  const rows = Array.from({ length: 12 }, (_, i) => row(`r${i}`, `${i + 1} ${i + 2} 3`));
  // The "refusal" starts at the third word of the decoded answer.
  const third = (text: string) => {
    const w = text.split(" ");
    return w.length < 3 ? -1 : w.slice(0, 2).join(" ").length + 1;
  };
  const steps = new Set<number>();
  for (const seed of [0, 1, 2]) {
    const atk = randomInsertionAttack({ span: [37, 38], seed, locateRefusal: third });
    const res = await runAttack(m, rows, atk, { maxNewTokens: 12, stopAtEos: false });
    for (const r of res) {
      assert.equal(r.params.refusalStart, 2);
      assert.equal(r.params.baselineLength, 12);
      const t = r.injectedAt!;
      assert.ok(t >= 3 && t <= 11, `step ${t} outside the refusal steps 3..11`);
      assert.deepEqual(r.tokenIds.slice(t, t + 2), [37, 38].slice(0, 12 - t));
      steps.add(t);
    }
  }
  assert.ok(steps.size >= 4, `insertion steps vary: ${[...steps]}`);
  m.dispose();
});

/** A word-level tokenizer: decode joins words with spaces. */
function wordTokenizer(words: string[]): TextTokenizer {
  const n = numberTokenizer(words.length + 1);
  return {
    ...n,
    eosId: words.length,
    encode: (t) => t.split(" ").map((w) => words.indexOf(w)),
    decode: (ids) => ids.filter((i) => i < words.length).map((i) => words[i]).join(" "),
  };
}

Deno.test("refusalSteps maps the default judge's refusal position onto answer steps", () => {
  const words = ["Here", "is", "a", "plan.", "Sorry,", "I", "can't", "help", "with", "that."];
  const tok = wordTokenizer(words);
  const ids = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, words.length];
  const pos = refusalVerdict(tok.decode(ids)).position;
  assert.deepEqual(refusalSteps(tok, ids, pos), [4, 10]);
  const lead = [4, 5, 6, 7, 8, 9];
  assert.deepEqual(refusalSteps(tok, lead, refusalVerdict(tok.decode(lead)).position), [0, 6]);
});

Deno.test("attack specs reject bad input with a clear message", async () => {
  assert.throws(() => prefillAttack(-1), /k=-1/);
  assert.throws(() => prefillAttack(3, "answers"), /opts\.answers/);
  assert.throws(() => injectionAttack({ at: { fraction: 1.5 }, tokens: [1] }), /fraction/);
  assert.throws(() => injectionAttack({ at: 2 }), /exactly one of tokens, text, source/);
  const m = await tinyModel("gpt2");
  await assert.rejects(
    runAttack(m, ROWS, injectionAttack({ at: 1, source: "affirmative" }), { maxNewTokens: 3 }),
    /Cannot tokenise affirmative text "Sure, here is".*outside 0\.\.39/,
  );
  m.dispose();
});
