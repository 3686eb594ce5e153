import assert from "node:assert/strict";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { perturbExamples, perturbRollout, type PerturbRow } from "../lib/train/perturb.ts";
import { encodeMasked } from "../lib/train/tokenwise.ts";
import { makeRng } from "../lib/data/rng.ts";

await useTestBackend();

/** Number-word rows: harmful ones answer with a "refusal" 5 6 7 8, benign ones with 9 10 11. */
function rows(n: number, seed = 0): PerturbRow[] {
  const rng = makeRng(seed);
  return Array.from({ length: n }, (_, i) => {
    const harmful = i % 2 === 0;
    return {
      id: `r${i}`,
      prompt: `${1 + rng.int(4)} ${1 + rng.int(4)}`,
      response: harmful ? "5 6 7 8" : "9 10 11",
      label: harmful ? "harmful" : "benign",
    };
  });
}
const HARM = ["20 21 22 23 24 25"];
const harmfulTexts = () => HARM;

Deno.test("spans land at the given positions, from the start of a harmful answer", () => {
  const out = perturbExamples(rows(40), { rate: 1, positions: [2], length: [3, 3], harmfulTexts });
  out.forEach((ex, i) => {
    if (i % 2 === 1) {
      assert.equal(ex.injectedAt, undefined, "benign rows are not perturbed by default");
      assert.equal(ex.response, "9 10 11");
      return;
    }
    assert.equal(ex.injectedAt, 2);
    assert.equal(ex.injected, "20 21 22");
    // restart: the refusal before the span, the span, then the whole refusal again.
    assert.deepEqual(ex.segments, [
      { text: "5 6", loss: true },
      { text: "20 21 22", loss: false },
      { text: "5 6 7 8", loss: true },
    ]);
    assert.equal(ex.response, "5 6 20 21 22 5 6 7 8");
  });
  const half = perturbExamples(rows(10), {
    rate: 1,
    positions: { fraction: 0.5 },
    length: [2, 2],
    harmfulTexts,
    continuation: "resume",
  });
  assert.equal(half[0].injectedAt, 2, "fraction 0.5 of 4 words");
  assert.equal(half[0].response, "5 6 20 21 7 8", "resume continues the refusal after the span");
  const late = perturbExamples(rows(2), { rate: 1, positions: [99], harmfulTexts });
  assert.equal(late[0].injectedAt, 4, "positions past the end are clamped to the answer length");
});

Deno.test("uniform positions cover 0..n, lengths stay in range, rate is respected", () => {
  const out = perturbExamples(rows(2000, 1), { rate: 0.3, length: [2, 4], harmfulTexts, seed: 5 });
  const hit = out.filter((e) => e.injectedAt !== undefined);
  const share = hit.length / 1000; // 1000 harmful rows
  assert.ok(Math.abs(share - 0.3) < 0.05, `perturbed share ${share}`);
  const at = new Set(hit.map((e) => e.injectedAt));
  assert.deepEqual([...at].sort(), [0, 1, 2, 3, 4], "uniform over 0..4 for 4-word answers");
  const lens = new Set(hit.map((e) => e.injected!.split(" ").length));
  assert.deepEqual([...lens].sort(), [2, 3, 4]);
  assert.ok(hit.every((e) => HARM[0].startsWith(e.injected!)), "harmful spans cut from the start");
  const at0 = hit.find((e) => e.injectedAt === 0)!;
  assert.equal(at0.segments![0].loss, false, "at 0 the span comes first (a prefill recovery)");
});

Deno.test("affirmative and random sources", () => {
  const aff = perturbExamples(rows(4), {
    rate: 1,
    source: "affirmative",
    affirmative: "30 31 32 33",
    length: [2, 2],
    positions: [1],
  });
  assert.equal(aff[0].injected, "30 31");
  const vocab = ["40", "41"];
  const rnd = perturbExamples(rows(50), { rate: 1, source: "random", vocab, length: [5, 5] });
  for (const e of rnd.filter((x) => x.injected)) {
    assert.ok(e.injected!.split(" ").every((w) => vocab.includes(w)), e.injected);
  }
});

Deno.test("the injected span is excluded from the loss, the rest is learnt", async () => {
  const m = await tinyModel("gpt2", 1, 40);
  const [ex] = perturbExamples([rows(1)[0]], {
    rate: 1,
    positions: [2],
    length: [3, 3],
    harmfulTexts,
  });
  const [enc] = encodeMasked(m, [ex]);
  const p = enc.seq.length - 10; // prompt tokens: 2; response 9 + eos
  assert.equal(p, 2);
  assert.deepEqual(enc.seq.slice(p), [5, 6, 20, 21, 22, 5, 6, 7, 8, 39]);
  assert.deepEqual(enc.mask, [0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]);
  // A recovery row's given prefix is kept out of the loss as well.
  const rec = perturbExamples([{ prompt: "1", response: "20 21 5 6", prefixTokens: 2 }], {
    rate: 1,
    harmfulTexts,
  });
  assert.equal(rec[0].injectedAt, undefined, "recovery rows pass through unperturbed");
  assert.deepEqual(encodeMasked(m, rec)[0].mask, [0, 0, 0, 1, 1, 1]);
  m.dispose();
});

Deno.test("perturbation is seeded and row-independent", () => {
  const data = rows(60, 2);
  const opts = { rate: 0.5, length: [1, 5] as const, harmfulTexts, seed: 9 };
  const a = perturbExamples(data, opts);
  assert.deepEqual(perturbExamples(data, opts), a, "same seed, same examples");
  assert.notDeepEqual(perturbExamples(data, { ...opts, seed: 10 }), a, "another seed differs");
  assert.deepEqual(perturbExamples(data.slice(0, 20), opts), a.slice(0, 20), "a prefix of rows");
  assert.throws(() => perturbExamples(data, { rate: 1 }), /pass harmfulTexts/);
  assert.throws(() => perturbExamples(data, { harmfulTexts, length: [3, 1] }), /1 <= min <= max/);
  assert.throws(() => perturbExamples(data, { harmfulTexts, rate: 2 }), /rate=2/);
});

Deno.test("perturbRollout forces spans into generation at the drawn steps", async () => {
  const m = await tinyModel("gpt2", 3, 40);
  const batch = rows(8, 4);
  const hook = perturbRollout(m.tokenizer, {
    rate: 1,
    positions: [0, 3],
    length: [2, 2],
    harmfulTexts,
    seed: 1,
  });
  const force = hook(batch, 7);
  assert.deepEqual(hook(batch, 7), force, "seeded by (seed, step)");
  assert.notDeepEqual(hook(batch, 8), force, "another step draws again");
  force.forEach((f, i) => {
    if (i % 2 === 1) return assert.equal(f, undefined);
    assert.equal(f!.length, 1);
    assert.ok([0, 3].includes(f![0].step));
    assert.deepEqual(f![0].tokens, [20, 21]);
  });
  const g = await m.generate({
    prompts: batch.map((r) => r.prompt),
    force,
    maxNewTokens: 8,
    stopAtEos: false,
  });
  force.forEach((f, i) => {
    if (!f) return assert.ok(g.forced[i].every((x) => !x));
    const s = f[0].step;
    assert.deepEqual(g.tokenIds[i].slice(s, s + 2), [20, 21], `row ${i}`);
    assert.deepEqual(g.forced[i].slice(s, s + 2), [true, true]);
  });
  m.dispose();
});
