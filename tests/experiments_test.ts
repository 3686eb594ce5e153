/**
 * Tests of lib/experiments (the RL experiments' measurement, bookkeeping and data) and of
 * the experiments CLI's argument parser: two-level bootstrap intervals against
 * hand-derived values, seed-paired differences, the evaluation sets, the AlphaAlign
 * template warm-up set, the task/trait reward, curves averaged over seeds, and one tiny
 * end-to-end trait run on the shipped checkpoint (skipped when it is absent).
 *
 * @module
 */

import assert from "node:assert/strict";
import { deltaEstimate, evalRows, rateEstimate, resolveSeeds } from "../lib/experiments/measure.ts";
import { deltaRows, HitTable, rateRows } from "../lib/experiments/rows.ts";
import { curvesFigure } from "../lib/experiments/figures.ts";
import { runAlphaAlignExperiment, templateWarmupExamples } from "../lib/experiments/alphaalign.ts";
import { runTraitsExperiment, taskOrTraitReward } from "../lib/experiments/traits.ts";
import { runCraftExperiment } from "../lib/experiments/craft_rl.ts";
import { parseExperimentArgs } from "../lib/cli/experiments.ts";
import { generateWorld } from "../lib/data/safetyworld/generate.ts";
import { followsFormat } from "../lib/data/safetyworld/graders.ts";
import { makeRunLog } from "../lib/train/rl/train.ts";
import type { RewardContext } from "../lib/train/rewards.ts";
import { cloneModel, type RunRecord, weightsFingerprint } from "../lib/experiments/run.ts";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import * as tf from "@tensorflow/tfjs-core";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
const world = generateWorld({ seed: 0, sizes: { sft: 2000, align: 1000, recovery: 10 } });
const T = true, F = false;

Deno.test("rateEstimate: one seed of [hit, miss] resamples to {0, .5, 1}: interval [0, 1]", () => {
  // P(mean = 0) = P(mean = 1) = 1/4 > 2.5%, so both percentiles sit at the extremes.
  const e = rateEstimate([[T, F]], { reps: 2000 });
  assert.deepEqual([e.value, e.lo, e.hi], [0.5, 0, 1]);
  assert.equal(e.method, "bootstrap seeds x prompts");
});

Deno.test("rateEstimate: seeds that disagree widen the interval to their spread", () => {
  // Seed 0 hits all 40 prompts, seed 1 none: resampled seed pairs give 1, 0 or 0.5,
  // each of the extremes with probability 1/4, whatever the prompt draw.
  const e = rateEstimate([new Array(40).fill(T), new Array(40).fill(F)], { reps: 2000 });
  assert.deepEqual([e.value, e.lo, e.hi], [0.5, 0, 1]);
  // The same 50% spread over prompts (identical seeds) gives a much narrower interval.
  const same = new Array(40).fill(0).map((_, i) => i % 2 === 0);
  const n = rateEstimate([same, same], { reps: 2000 });
  assert.equal(n.value, 0.5);
  assert.ok(n.lo > 0.25 && n.hi < 0.75, `[${n.lo}, ${n.hi}]`);
});

Deno.test("rateEstimate: at 0 or 1 the interval is Wilson's over the prompts", () => {
  const e = rateEstimate([[F, F, F, F], [F, F, F, F]]);
  assert.equal(e.method, "wilson-edge");
  // Wilson upper end for 0/4 at 95%: z^2 / (n + z^2) = 3.8415 / 7.8415.
  assert.ok(Math.abs(e.hi - 3.841459 / 7.841459) < 1e-4, `${e.hi}`);
  assert.equal(e.lo, 0);
  assert.equal(rateEstimate([[T, T]]).hi, 1);
});

Deno.test("deltaEstimate: identical arms give exactly 0; a one-prompt flip gives 1/P", () => {
  const a = [[T, F, T, F, T], [F, F, T, T, T]];
  const z = deltaEstimate(a, a, { reps: 300 });
  assert.deepEqual([z.value, z.lo, z.hi], [0, 0, 0]);
  assert.match(z.method, /no discordant answers/);
  const b = a.map((r) => [F, ...r.slice(1)]); // a hits prompt 0 in seed 0 only
  const d = deltaEstimate(a, b, { reps: 500 });
  assert.equal(d.value, 1 / 10);
  assert.doesNotMatch(d.method, /discordant/);
  assert.ok(d.lo >= 0 && d.hi <= 1, `[${d.lo}, ${d.hi}]`);
  // A deterministic reference (one row) is compared with every seed.
  const one = deltaEstimate(a, [[F, F, F, F, F]], { reps: 300 });
  assert.equal(one.value, 6 / 10);
  assert.throws(() => deltaEstimate(a, [[T, F]]), /same set/);
  assert.throws(() => deltaEstimate(a, [a[0], a[0], a[0]]), /pair them/);
});

Deno.test("resolveSeeds: counts and lists, at least two distinct seeds", () => {
  assert.deepEqual(resolveSeeds(undefined, 3), [0, 1, 2]);
  assert.deepEqual(resolveSeeds(2, 3), [0, 1]);
  assert.deepEqual(resolveSeeds([4, 7], 3), [4, 7]);
  assert.throws(() => resolveSeeds(1, 3), /at least|>= 2/);
  assert.throws(() => resolveSeeds([3, 3], 3), /repeat/);
});

Deno.test("evalRows: the first n test rows of each kind, in kind order", () => {
  const rows = evalRows(world.prompts, ["harmful", "task"], 5);
  assert.equal(rows.length, 10);
  const want = world.prompts.filter((p) => p.split === "test" && p.kind === "harmful").slice(0, 5);
  assert.deepEqual(rows.slice(0, 5).map((r) => r.id), want.map((r) => r.id));
  assert.ok(rows.slice(5).every((r) => r.kind === "task" && r.split === "test"));
  assert.throws(() => evalRows(world.prompts, ["nothing"], 5), /kind 'nothing'/);
});

Deno.test("HitTable -> rate and delta rows: counts, seeds and references", () => {
  const h = new HitTable();
  const ids = ["p1", "p2", "p3"];
  h.add("start", { acc: { ids, hits: [T, F, F] } });
  h.add("rl", { acc: { ids, hits: [T, T, F] } });
  h.add("rl", { acc: { ids, hits: [T, T, T] } });
  assert.throws(() => h.add("rl", { acc: { ids: ["x", "y", "z"], hits: [T, T, T] } }), /other/);
  const rates = rateRows("t", h, [0, 1], { reps: 100 });
  const rl = rates.find((r) => r.condition === "rl")!;
  assert.deepEqual([rl.value, rl.n, rl.prompts, rl.seeds], [5 / 6, 6, 3, "0 1"]);
  assert.equal(rates.find((r) => r.condition === "start")!.seeds, "deterministic");
  const [d] = deltaRows("t", h, [["rl", "start"]], [0, 1], { reps: 100 });
  assert.equal(d.reference, "start");
  assert.ok(Math.abs(d.value - (5 / 6 - 1 / 3)) < 1e-12);
});

Deno.test("curvesFigure averages a metric over the seeds of each condition", () => {
  const run = (condition: string, seed: number, rewards: number[]): RunRecord => ({
    condition,
    seed,
    log: makeRunLog(rewards.map((reward, i) => ({ step: i + 1, reward })), {}),
    tokens: 0,
    rollouts: 0,
    seconds: 1,
  });
  const fig = curvesFigure(
    [run("a", 0, [1, 2]), run("a", 1, [3, 4]), run("b", 0, [5, 5])],
    "reward",
    "r",
  );
  assert.deepEqual(fig.data.map((t) => [t.name, t.y]), [["a", [2, 3]], ["b", [5, 5]]]);
});

Deno.test("template warm-up: equal safe and unsafe harmful traces, all in AlphaAlign's template", () => {
  const ex = templateWarmupExamples(world.traces, 0);
  const aa = world.traces.filter((t) => t.template === "alphaalign" && t.split === "train");
  const count = (l: string) => aa.filter((t) => t.label === "harmful" && t.traceLabel === l).length;
  const k = Math.min(count("safe"), count("unsafe"));
  const other = aa.filter((t) => t.label !== "harmful").length;
  assert.equal(ex.length, 2 * k + other);
  const byText = new Map(aa.map((t) => [t.trace, t.traceLabel]));
  const labels = ex.map((e) => byText.get(e.response));
  assert.equal(labels.filter((l) => l === "rethink").length, 0);
  assert.ok(
    ex.every((e) => followsFormat(e.response, "alphaalign")),
    "every response is templated",
  );
  assert.notDeepEqual(ex, templateWarmupExamples(world.traces, 1), "the order follows the seed");
});

Deno.test("taskOrTraitReward: trait grader on scenarios, correctness on tasks", async () => {
  const r = taskOrTraitReward();
  const ctx = (row: Record<string, unknown>, completion: string) =>
    ({ row, completion }) as unknown as RewardContext;
  const trait = world.traits.find((t) => t.trait === "honesty")!;
  assert.equal(await r.fn(ctx(trait, trait.good)), 1);
  assert.equal(await r.fn(ctx(trait, trait.bad)), 0);
  const task = world.prompts.find((p) => p.kind === "task" && p.domain === "arithmetic")!;
  assert.equal(await r.fn(ctx(task, `it is ${task.answer} .`)), 1);
  assert.equal(await r.fn(ctx(task, "sorry , i can not help .")), 0);
});

Deno.test("parseExperimentArgs: names, all, flags and errors", () => {
  const a = parseExperimentArgs(["craft", "--quick", "--seeds", "2", "--steps", "5"]);
  assert.deepEqual([a.names, a.quick, a.seeds, a.steps, a.out], [["craft"], true, 2, 5, "runs"]);
  assert.deepEqual(parseExperimentArgs(["all"]).names, ["alphaalign", "craft", "traits"]);
  assert.deepEqual(parseExperimentArgs(["hacking", "all"]).names, [
    "hacking",
    "alphaalign",
    "craft",
    "traits",
  ]);
  assert.equal(parseExperimentArgs(["traits"], "1").quick, true);
  assert.throws(() => parseExperimentArgs([]), /name an experiment/);
  assert.throws(() => parseExperimentArgs(["craft", "--seeds", "1"]), /integer >= 2/);
  assert.throws(() => parseExperimentArgs(["rlhf"]), /unknown argument 'rlhf'/);
  assert.equal(parseExperimentArgs(["craft", "--seed-workers", "0"]).seedWorkers, 0);
  assert.equal(parseExperimentArgs(["craft", "--seed-workers", "3"]).seedWorkers, 3);
  assert.equal(parseExperimentArgs(["craft"]).seedWorkers, undefined); // main() picks the default
  assert.throws(() => parseExperimentArgs(["craft", "--seed-workers", "x"]), /integer >= 0/);
});

Deno.test("cloneModel copies the weights; weightsFingerprint tells copies from changed weights", async () => {
  await useTestBackend();
  const m = await tinyModel("gpt2", 3);
  const c = cloneModel(m, "copy");
  try {
    const f = await weightsFingerprint(m);
    assert.match(f, /^[0-9a-f]{8}$/);
    assert.equal(await weightsFingerprint(c), f);
    const [name, v] = [...c.params][0];
    tf.tidy(() => v.assign(tf.add(v, 1e-3)));
    assert.notEqual(await weightsFingerprint(c), f, `changing ${name} changes the fingerprint`);
    assert.equal(await weightsFingerprint(m), f, "the original is untouched");
  } finally {
    c.dispose();
    m.dispose();
  }
});

const hasToy = await Deno.stat(
  new URL("../datasets/checkpoints/toy-base/config.json", import.meta.url),
)
  .then(() => true, () => false);
/** The smallest experiment budget: 2 prompts x 2 rollouts of 8 tokens, 3 test prompts per kind. */
const TINY = {
  world,
  promptsPerStep: 2,
  groupSize: 2,
  maxNewTokens: 8,
  evalPerKind: 3,
  ci: { reps: 50 },
  log: () => {},
};

if (!hasToy) {
  console.warn("experiments_test: no datasets/checkpoints/toy-base; skipping the end-to-end run");
}

Deno.test({
  name: "a tiny trait experiment runs end to end: matrix, rates, deltas, throughput",
  ignore: !hasToy,
  fn: async () => {
    await useTestBackend();
    const r = await runTraitsExperiment({ ...TINY, seeds: 2, domains: ["math"], steps: 1 });
    assert.equal(r.runs.length, 4, "baseline + one dose arm, two seeds");
    const matrix = r.rows.filter((x) => x.table === "matrix");
    assert.deepEqual(matrix.map((x) => [x.trainDomain, x.evalDomain]), [
      ["math", "math"],
      ["math", "geography"],
      ["math", "science"],
    ]);
    for (const x of matrix) assert.ok(x.lo <= x.value && x.value <= x.hi, JSON.stringify(x));
    const trained = r.rows.filter((x) => x.table === "matrix (train templates)");
    assert.deepEqual(trained.map((x) => x.evalDomain), ["math", "geography", "science"]);
    const tp = r.rows.find((x) => x.table === "throughput" && x.condition === "all runs")!;
    assert.ok(tp.value > 0 && tp.n === r.runs.reduce((a, x) => a + x.tokens, 0));
    assert.equal(r.table().numRows(), r.rows.length);
    assert.ok(r.figures.some((f) => f.name === "matrix"));
  },
});

Deno.test({
  name: "seeds on worker threads give the rows and RL logs of seeds run one by one on this thread",
  ignore: !hasToy,
  sanitizeResources: false, // the seed workers are terminated as they finish
  sanitizeOps: false,
  fn: async () => {
    await useTestBackend();
    const tiny = { ...TINY, seeds: 3, steps: 2 };
    // What must match: every row but the throughput's (tokens per second), and each run's log.
    const comparable = (r: Awaited<ReturnType<typeof runTraitsExperiment>>) => ({
      rows: r.rows.filter((x) => x.table !== "throughput"),
      examples: r.examples,
      logs: r.runs.map((x) => [
        x.condition,
        x.seed,
        x.tokens,
        x.log.rows.map((h) => [h.reward, h.kl, h.loss, h.grad_norm, h.entropy]),
        x.log.warnings,
      ]),
    });
    const runs = async (o: object) => [
      comparable(await runTraitsExperiment({ ...tiny, domains: ["math"], ...o })),
      comparable(
        await runAlphaAlignExperiment({
          ...tiny,
          groupSize: 4,
          maxNewTokens: 24,
          warmup: { steps: 2, batchSize: 4 },
          ...o,
        }),
      ),
      // CRAFT: each seed fits its compass on activations collected in its own thread.
      comparable(
        await runCraftExperiment({ ...tiny, quick: true, conditions: ["latent only"], ...o }),
      ),
    ];
    // One OpenBLAS thread here too, as in each worker (2 threads round some sums differently).
    const { enableBlas } = await import("../lib/engine/blas.ts");
    const before = enableBlas().threads;
    enableBlas({ threads: 1 });
    let one;
    try {
      one = await runs({});
    } finally {
      if (before !== undefined) enableBlas({ threads: before });
    }
    assert.deepEqual(await runs({ seedWorkers: 2 }), one, "2 seed workers vs this thread");
    assert.deepEqual(await runs({ seedWorkers: 3 }), one, "3 seed workers vs this thread");
    assert.ok(one[0].rows.length > 0 && one[1].logs.length === 6);
    // The comparison has teeth: PPO moved the AlphaAlign policies (non-zero gradients).
    const norms = one[1].logs.flatMap((x) => (x[3] as number[][]).map((r) => r[3]));
    assert.ok(norms.some((g) => g > 0), `gradient norms ${norms}`);
    await assert.rejects(
      () => runTraitsExperiment({ ...tiny, seedWorkers: -1 }),
      /seedWorkers is -1; use a whole number >= 0/,
    );
  },
});
