/**
 * judgeAgreement: Cohen's kappa against hand-derived values, raw agreement, per-class recall
 * against labels, intervals that bracket their estimates, and errors on bad input.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cohenKappa, judgeAgreement } from "../lib/eval/judge_agreement.ts";

Deno.test("Cohen's kappa: hand-derived values", () => {
  // a and b agree on 4 of 6 (p_o = 2/3); each says true 3 times (p_e = 1/2): kappa = 1/3.
  const a = [true, true, false, false, true, false];
  const b = [true, false, false, false, true, true];
  assert.ok(Math.abs(cohenKappa(a, b) - 1 / 3) < 1e-12);
  // Three classes: they agree on items 0, 2, 3, 4 (p_o = 4/5); marginals a: x2 y2 z1,
  // b: x1 y3 z1 -> p_e = (2*1 + 2*3 + 1*1) / 25 = 9/25; kappa = (20/25 - 9/25) / (16/25) = 11/16.
  const c = ["x", "x", "y", "y", "z"];
  const d = ["x", "y", "y", "y", "z"];
  assert.ok(Math.abs(cohenKappa(c, d) - 11 / 16) < 1e-12);
  assert.equal(cohenKappa([true, true], [true, true]), 1); // one class, full agreement
  assert.ok(Math.abs(cohenKappa([true, false], [false, true]) - -1) < 1e-12);
});

Deno.test("judgeAgreement: pairs, matrices, labels, per-class recall with intervals", () => {
  const items = [0, 1, 2, 3, 4, 5];
  const A = [true, true, false, false, true, false];
  const B = [true, false, false, false, true, true];
  const labels = [true, true, false, false, false, false];
  const r = judgeAgreement({ a: (_x, i) => A[i], b: (_x, i) => B[i] }, items, labels, {
    reps: 300,
  });
  assert.deepEqual(r.judges, ["a", "b"]);
  assert.equal(r.pairs.length, 1);
  assert.ok(Math.abs(r.pairs[0].agreement.value - 4 / 6) < 1e-12);
  assert.ok(Math.abs(r.pairs[0].kappa.value - 1 / 3) < 1e-12);
  assert.deepEqual(r.agreementMatrix, [[1, 4 / 6], [4 / 6, 1]]);
  const va = r.vsLabels[0];
  assert.ok(Math.abs(va.accuracy.value - 5 / 6) < 1e-12); // a is wrong on item 4 only
  assert.equal(va.recall["true"].value.value, 1); // both true items
  assert.equal(va.recall["false"].value.value, 3 / 4);
  assert.equal(va.recall["false"].n, 4);
  for (const x of [r.pairs[0].agreement, r.pairs[0].kappa, va.accuracy]) {
    assert.ok(x.lo <= x.value + 1e-12 && x.value <= x.hi + 1e-12, JSON.stringify(x));
  }
});

Deno.test("judgeAgreement: errors name what is wrong", () => {
  assert.throws(() => judgeAgreement({}, [1]), /none given/);
  assert.throws(() => judgeAgreement({ a: () => true }, []), /no items/);
  assert.throws(() => judgeAgreement({ a: () => true }, [1, 2], [true]), /1 labels for 2 items/);
  assert.throws(
    () => judgeAgreement({ a: () => 3 as unknown as boolean }, [1]),
    /Judge "a" returned 3 for item 0/,
  );
});
