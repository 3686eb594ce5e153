/**
 * The template-clustered intervals where SafetyWorld rates are reported (issue #19): lib/eval
 * `rateCI` with template ids, lib/experiments `rateEstimate` / `deltaEstimate` and the
 * HitTable rows with templates. Checked against independent computations: the metrics
 * module's `clusterBootstrapCI` on hand-aggregated prompts, exact identities with the
 * prompt-level intervals when every template is one prompt, and Wilson's closed form at 0.
 *
 * @module
 */

import assert from "node:assert/strict";
import { makeRng } from "../lib/data/rng.ts";
import { clusterBootstrapCI } from "../lib/compass/metrics.ts";
import { rateCI } from "../lib/eval/evaluate.ts";
import { deltaEstimate, rateEstimate } from "../lib/experiments/measure.ts";
import { HitTable, rateRows } from "../lib/experiments/rows.ts";

const Z2 = 1.959963984540054 ** 2;

Deno.test("rateCI with templates = clusterBootstrapCI over prompts aggregated by hand", () => {
  // 3 templates x 4 prompts x 2 seeds; observations in seed-major order.
  const rng = makeRng(4);
  const prompts = Array.from({ length: 12 }, (_, i) => `p${i}`);
  const tplOf = (i: number) => `t${Math.floor(i / 4)}`;
  const hits: boolean[] = [], ids: string[] = [], tpl: string[] = [];
  for (let s = 0; s < 2; s++) {
    prompts.forEach((
      p,
      i,
    ) => (hits.push(rng.next() < 0.2 + 0.25 * (i >> 2)), ids.push(p), tpl.push(tplOf(i))));
  }
  const ci = rateCI(hits, ids, { templates: tpl, ciSeed: 3, reps: 800 });
  const k = prompts.map((_, i) => Number(hits[i]) + Number(hits[12 + i]));
  const ref = clusterBootstrapCI(k, prompts.map((_, i) => tplOf(i)), {
    trials: prompts.map(() => 2),
    seed: 3,
    reps: 800,
  });
  assert.equal(ci.method, "cluster bootstrap");
  assert.equal(ci.templates, 3);
  assert.equal(ci.prompts, 12);
  assert.equal(ci.n, 24);
  assert.equal(ci.rate, hits.filter(Boolean).length / 24);
  assert.equal(ci.lo, Math.min(ref.lo, ci.rate));
  assert.equal(ci.hi, Math.max(ref.hi, ci.rate));
  // clusterBy "prompt" restores the prompt-level bootstrap.
  const flat = rateCI(hits, ids, { templates: tpl, ciSeed: 3, reps: 800, clusterBy: "prompt" });
  const plain = rateCI(hits, ids, { ciSeed: 3, reps: 800 });
  assert.equal(flat.method, "bootstrap");
  assert.deepEqual([flat.lo, flat.hi], [plain.lo, plain.hi]);
});

Deno.test("rateCI: one prompt per template is exactly the prompt-level bootstrap", () => {
  const rng = makeRng(9);
  const hits = Array.from({ length: 30 }, () => rng.next() < 0.4);
  const ids = hits.map((_, i) => `p${i}`);
  const a = rateCI(hits, ids, { templates: ids.map((p) => `t-${p}`), ciSeed: 2 });
  const b = rateCI(hits, ids, { ciSeed: 2 });
  assert.equal(a.method, "cluster bootstrap");
  assert.equal(b.method, "bootstrap");
  assert.deepEqual([a.lo, a.hi], [b.lo, b.hi]);
});

Deno.test("rateCI at 0 with templates: Wilson over the templates, not the prompts", () => {
  const hits = new Array(40).fill(false);
  const ci = rateCI(hits, hits.map((_, i) => `p${i}`), {
    templates: hits.map((_, i) => `t${i % 4}`),
  });
  assert.equal(ci.method, "wilson-edge");
  assert.equal(ci.templates, 4);
  assert.ok(Math.abs(ci.hi - Z2 / (4 + Z2)) < 1e-9, `${ci.hi}`);
  assert.throws(
    () => rateCI([true, false], ["p", "p"], { templates: ["a", "b"] }),
    /prompt p has two templates/,
  );
});

Deno.test("rateEstimate / deltaEstimate: template draws; singleton templates change nothing", () => {
  const rng = makeRng(2);
  const grid = [0, 1, 2].map(() => Array.from({ length: 20 }, () => rng.next() < 0.5));
  const single = grid[0].map((_, i) => `t${i}`);
  const a = rateEstimate(grid, { templates: single, seed: 4 });
  const b = rateEstimate(grid, { seed: 4 });
  assert.equal(a.method, "bootstrap seeds x templates x prompts");
  assert.deepEqual([a.value, a.lo, a.hi], [b.value, b.lo, b.hi]);
  // Heterogeneous templates (all hits in 2 of 4, none in the others) widen the interval.
  const het = [
    Array.from({ length: 40 }, (_, i) => i < 20),
    Array.from({ length: 40 }, (_, i) => i < 20),
  ];
  const tpl = het[0].map((_, i) => `t${Math.floor(i / 10)}`);
  const wide = rateEstimate(het, { templates: tpl });
  const narrow = rateEstimate(het, { templates: tpl, clusterBy: "prompt" });
  assert.equal(narrow.method, "bootstrap seeds x prompts");
  assert.ok(wide.hi - wide.lo > 2 * (narrow.hi - narrow.lo), `${wide.lo}-${wide.hi}`);
  // Edge: Wilson over the 4 templates.
  const zero = rateEstimate([new Array(40).fill(false)], { templates: tpl });
  assert.equal(zero.method, "wilson-edge");
  assert.ok(Math.abs(zero.hi - Z2 / (4 + Z2)) < 1e-9);
  const d = deltaEstimate(het, [het[0].map((x) => !x)], { templates: tpl });
  assert.match(d.method, /^paired bootstrap seeds x templates x prompts/);
  assert.throws(() => rateEstimate(het, { templates: ["a"] }), /1 template ids for 40 prompts/);
});

Deno.test("HitTable rows carry the template count and the two-level method", () => {
  const h = new HitTable();
  const ids = ["a", "b", "c", "d"];
  h.add("m", { x: { ids, hits: [true, false, true, false], templates: ["t1", "t1", "t2", "t2"] } });
  h.add("m", { x: { ids, hits: [true, true, false, false], templates: ["t1", "t1", "t2", "t2"] } });
  const [row] = rateRows("e", h, [0, 1], { reps: 100 });
  assert.equal(row.templates, 2);
  assert.equal(row.method, "bootstrap seeds x templates x prompts");
  const [flat] = rateRows("e", h, [0, 1], { reps: 100, clusterBy: "prompt" });
  assert.equal(flat.templates, 0);
  assert.equal(flat.method, "bootstrap seeds x prompts");
});

Deno.test("bootstrapCI clusters and pairedRates templates: the same two-level draws", async () => {
  const { bootstrapCI } = await import("../lib/compass/metrics.ts");
  const { pairedRates } = await import("../lib/experiments/persistence.ts");
  const rng = makeRng(6);
  const tpl = Array.from({ length: 30 }, (_, i) => `t${i % 5}`);
  const hits = tpl.map((_, i) => rng.next() < 0.15 * (i % 5));
  const mean = (idx: Uint32Array) => idx.reduce((a, i) => a + Number(hits[i]), 0) / idx.length;
  const a = bootstrapCI(30, mean, { clusters: tpl, seed: 2 });
  const b = clusterBootstrapCI(hits, tpl, { seed: 2 });
  assert.deepEqual([a.lo, a.hi], [b.lo, b.hi]);
  assert.throws(() => bootstrapCI(2, mean, { clusters: ["a", "b"], stratify: [0, 1] }), /both/);
  // pairedRates: singleton templates reproduce the prompt-level intervals exactly.
  const after = hits.map((h) => [Number(h)]), before = hits.map(() => [0]);
  const single = pairedRates(after, before, { templates: tpl.map((_, i) => `s${i}`) });
  const flat = pairedRates(after, before);
  assert.equal(single.interval, "bootstrap (templates, prompts)");
  assert.equal(flat.interval, "bootstrap (prompts)");
  assert.deepEqual([single.lo, single.hi, single.deltaLo, single.deltaHi], [
    flat.lo,
    flat.hi,
    flat.deltaLo,
    flat.deltaHi,
  ]);
  const two = pairedRates(after, before, { templates: tpl });
  assert.equal(two.templates, 5);
  assert.ok(two.hi - two.lo > flat.hi - flat.lo, "templates that differ widen it");
  const zero = pairedRates(before, before, { templates: tpl });
  assert.equal(zero.interval, "wilson-edge");
  assert.ok(Math.abs(zero.hi - Z2 / (5 + Z2)) < 1e-9);
});
