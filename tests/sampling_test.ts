/**
 * Token choice (lib/model/sampling.ts): top-k / top-p find their truncation on the row's likely
 * prefix instead of sorting the whole row; the chosen tokens must be the full sort's, for the
 * same seeded draws. The reference below is the straightforward algorithm (sort every id by
 * log-probability, stable, then truncate), run on random rows of several vocabulary sizes, with
 * ties, flat and peaked rows, and truncations that end outside the likely prefix (the fallback).
 */
import assert from "node:assert/strict";
import {
  chooseToken,
  logProbOf,
  logSoftmax,
  sampleToken,
  type SamplingOptions,
} from "../lib/model/sampling.ts";
import { makeRng, type Rng } from "../lib/data/rng.ts";

/** The straightforward algorithm: full stable sort, top-k, nucleus, draw. */
function reference(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const lp = logSoftmax(logits, opts.temperature);
  let ids = Array.from({ length: lp.length }, (_, i) => i);
  const topK = opts.topK ?? 0, topP = opts.topP ?? 1;
  if ((topK > 0 && topK < lp.length) || topP < 1) {
    ids.sort((a, b) => lp[b] - lp[a]);
    if (topK > 0) ids = ids.slice(0, topK);
    if (topP < 1) {
      let cum = 0, cut = ids.length;
      for (let i = 0; i < ids.length; i++) {
        cum += Math.exp(lp[ids[i]]);
        if (cum >= topP) {
          cut = i + 1;
          break;
        }
      }
      ids = ids.slice(0, cut);
    }
  }
  let total = 0;
  for (const i of ids) total += Math.exp(lp[i]);
  let u = rng.next() * total;
  for (const i of ids) {
    u -= Math.exp(lp[i]);
    if (u <= 0) return i;
  }
  return ids[ids.length - 1];
}

Deno.test("chooseToken picks the full sort's token for every truncation, row shape and seed", () => {
  const gen = makeRng(3);
  const settings: SamplingOptions[] = [
    { temperature: 0.6, topP: 0.95 },
    { temperature: 1, topP: 0.5 },
    { temperature: 1.3, topP: 0.999 },
    { temperature: 1, topP: 1 - 1e-12 }, // ends outside the likely prefix: the fallback
    { temperature: 0.8, topK: 5 },
    { temperature: 0.8, topK: 50, topP: 0.9 },
    { temperature: 1, topK: 3000, topP: 0.97 }, // k larger than the likely prefix
    { temperature: 0.7, topK: 2, topP: 0.999999 }, // top-k mass below p: keep the k
    { temperature: 0.9, topK: 100000, topP: 0.9 }, // k beyond the vocabulary: no top-k
    { temperature: 0.6 }, // no truncation: every id
    { temperature: 1.4, topK: 0, topP: 1 },
  ];
  let checked = 0, fallbacks = 0;
  for (const vocab of [7, 664, 5000]) {
    for (let r = 0; r < 30; r++) {
      const kind = r % 4;
      const row = new Float32Array(vocab).map(() =>
        kind === 0
          ? gen.next() * 4 // flat-ish
          : kind === 1
          ? (gen.next() - 0.5) * 60 // peaked, many far below the max
          : kind === 2
          ? Math.round(gen.next() * 3) // heavy ties
          : -30 + gen.next()
      );
      if (kind === 3) row[r % vocab] = 5; // one dominant token, the rest e^-35 below
      for (const opts of settings) {
        for (const seed of [0, 1, 2]) {
          const want = reference(row, opts, makeRng(seed));
          assert.equal(
            chooseToken(row, opts, makeRng(seed)),
            want,
            `vocab ${vocab} row ${r} ${JSON.stringify(opts)}`,
          );
          checked++;
        }
        const lp = logSoftmax(row, opts.temperature);
        const max = Math.max(...lp);
        const outside = lp.reduce((a, v) => (v < max - 16 ? a + Math.exp(v) : a), 0);
        if (opts.topP !== undefined && outside > 1 - opts.topP) fallbacks++;
      }
    }
  }
  assert.equal(checked, 3 * 30 * settings.length * 3);
  assert.ok(fallbacks > 0, "some rows exercise the full-sort fallback");
});

Deno.test("chooseToken: temperature 0 is argmax (the first of ties)", () => {
  assert.equal(chooseToken(Float32Array.of(1, 3, 3, 2), { temperature: 0 }, makeRng(0)), 1);
});

Deno.test("sampleToken: chooseToken's token and logProbOf's value, to the bit, in one pass", () => {
  const gen = makeRng(11);
  const settings: SamplingOptions[] = [
    { temperature: 0 },
    { temperature: 0.6 },
    { temperature: 1, topP: 0.9 },
    { temperature: 0.8, topK: 5 },
  ];
  for (const vocab of [5, 664]) {
    for (let r = 0; r < 20; r++) {
      const row = new Float32Array(vocab).map(() => (gen.next() - 0.5) * (r % 2 ? 40 : 4));
      for (const opts of settings) {
        for (const seed of [0, 1]) {
          const rng = makeRng(seed);
          const got = sampleToken(row, opts, rng);
          const want = reference(row, opts, makeRng(seed));
          if ((opts.temperature ?? 0) > 0) assert.equal(got.token, want);
          else assert.equal(got.token, chooseToken(row, opts, makeRng(seed)));
          assert.ok(Object.is(got.logprob, logProbOf(row, got.token, opts.temperature)));
          // A forced token draws nothing: the generator is where a fresh one would be.
          const forcedRng = makeRng(seed);
          const forced = sampleToken(row, opts, forcedRng, r % vocab);
          assert.equal(forced.token, r % vocab);
          assert.ok(Object.is(forced.logprob, logProbOf(row, r % vocab, opts.temperature)));
          assert.equal(forcedRng.next(), makeRng(seed).next());
        }
      }
    }
  }
});
