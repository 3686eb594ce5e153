import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { policyMask, type RLOptions, trainRL } from "../lib/train/rl/train.ts";
import { perturbRollout } from "../lib/train/perturb.ts";
import { padBatch } from "../lib/optim/loss.ts";
import type { Reward } from "../lib/train/rewards.ts";
import type { PromptRow } from "../lib/data/schema.ts";
import type { Model } from "../lib/model/model.ts";

import { alternating, numberPrompts, trainCollecting } from "./_rl_fixtures.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

/** Alternately harmful and benign prompts of number words. */
const PROMPTS: PromptRow[] = numberPrompts(alternating);
const HARM = "20 21 22 23 24 25";
/** Rewards differ within every group (the rollout's index), so advantages are never all 0. */
const BY_INDEX: Reward = { name: "by_index", weight: 1, fn: (ctx) => ctx.groupIndex / 4 };

const collect = trainCollecting;

const weightsOf = (m: Model) => [...m.params.values()].map((v) => v.dataSync().slice());

Deno.test("policyMask gives forced tokens zero loss weight, on the shifted completion grid", () => {
  // Rollout 0: prompt [1, 2, 3] + completion [7, 8, 9]; rollout 1: prompt [4, 5] + [6, 10].
  const seqs = [[1, 2, 3, 7, 8, 9], [4, 5, 6, 10]];
  const starts = [2, 1]; // index of the first completion log-prob in the [T-1] axis
  const b = padBatch(seqs, starts.map((s) => s + 1), 0);
  const forced = [[false, true, false], [true, false]];
  const mask = policyMask(b.lossMask, [0, 1], starts, forced);
  // log-prob t predicts ids[t + 1]: rollout 0's completion is t = 2, 3, 4 (ids 7, 8, 9).
  assert.deepEqual(mask, [[0, 0, 1, 0, 1], [0, 0, 1, 0, 0]]);
  assert.equal(b.ids[0][3 + 1], 8, "rollout 0's masked log-prob (t = 3) predicts the forced 8");
  assert.equal(b.ids[1][1 + 1], 6, "rollout 1's masked log-prob (t = 1) predicts the forced 6");
  // A minibatch in another order: rows follow idx, flags and starts are per rollout.
  const b2 = padBatch([seqs[1], seqs[0]], [starts[1] + 1, starts[0] + 1], 0);
  assert.deepEqual(policyMask(b2.lossMask, [1, 0], starts, forced), [
    [0, 0, 1, 0, 0],
    [0, 0, 1, 0, 1],
  ]);
  // Without forced flags the mask is the completion mask.
  assert.deepEqual(policyMask(b.lossMask, [0, 1], starts), b.lossMask.map((r) => r.slice(1)));
});

for (const algorithm of ["grpo", "ppo"] as const) {
  Deno.test(`${algorithm}: fully forced rollouts give the policy no gradient (no loss, no KL)`, async () => {
    const base: RLOptions = {
      algorithm,
      prompts: PROMPTS,
      steps: 2,
      promptsPerStep: 2,
      groupSize: 4,
      maxNewTokens: 2,
      lr: 1e-2,
      seed: 3,
      rewards: [BY_INDEX],
    };
    const perturb = {
      rate: 1,
      positions: [0],
      length: [2, 2] as const,
      source: "affirmative" as const,
      affirmative: "7 8",
      labels: ["harmful", "benign"],
    };
    const m = await tinyModel("gpt2", 13);
    const w0 = weightsOf(m);
    const before = tf.memory().numTensors;
    const { log, steps } = await collect(m, { ...base, perturb });
    assert.equal(tf.memory().numTensors, before, "leaks no tensors");
    for (const r of steps.flatMap((s) => s.rollouts)) {
      assert.deepEqual(r.completionIds, [7, 8]);
      assert.deepEqual(r.forced, [true, true]);
      assert.deepEqual(r.perturbation, [{ step: 0, tokens: [7, 8] }]);
    }
    assert.ok(steps[0].rollouts.some((r) => r.advantages.some((a) => a !== 0)), "non-zero adv");
    assert.deepEqual(weightsOf(m), w0, "the policy was not credited for forced text");
    for (const row of log.rows) {
      assert.equal(row["perturb/rate"], 1);
      assert.equal(row["perturb/forced_share"], 1);
      assert.equal(row.kl, 0);
      assert.equal(row.clip_ratio, 0);
    }
    // Control: the same run with only the first token forced does train the policy.
    const { steps: half } = await collect(m, {
      ...base,
      perturb: { ...perturb, length: [1, 1] },
    });
    assert.ok(half[0].rollouts.every((r) => r.forced![0] && !r.forced![1]));
    assert.notDeepEqual(weightsOf(m), w0, "chosen tokens still carry the loss");
    m.dispose();
  });
}

Deno.test("the perturbation schedule of a run is the configured one, seeded by the run", async () => {
  const m = await tinyModel("gpt2", 17);
  const harmfulTexts = () => [HARM];
  const perturb = { rate: 0.5, length: [1, 3] as const, harmfulTexts, maxStep: 4 };
  let rewarded = 0;
  const seesAll: Reward = {
    name: "sees_all",
    weight: 1,
    fn: (ctx) => {
      assert.equal(ctx.forced!.length, ctx.completionIds.length, "forced flags per token");
      assert.equal(ctx.group[ctx.groupIndex].forced, ctx.forced);
      const forcedIds = ctx.completionIds.filter((_, t) => ctx.forced![t]);
      assert.ok(forcedIds.every((id) => HARM.split(" ").map(Number).includes(id)));
      assert.equal(ctx.completion, m.tokenizer.decode(ctx.completionIds), "full text");
      rewarded++;
      return ctx.completionIds.length / 8;
    },
  };
  const opts: RLOptions = {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 3,
    promptsPerStep: 4,
    groupSize: 4,
    maxNewTokens: 6,
    lr: 1e-3,
    seed: 7,
    rewards: [seesAll],
    perturb,
  };
  const before = tf.memory().numTensors;
  const { log, steps } = await collect(m, opts);
  assert.equal(tf.memory().numTensors, before, "leaks no tensors");
  assert.equal(rewarded, 3 * 16);
  // The same schedule, drawn independently: seed = the run's seed, maxStep as configured.
  const expect = perturbRollout<PromptRow>(m.tokenizer, { ...perturb, seed: 7 });
  const byId = new Map(PROMPTS.map((p) => [p.id, p]));
  let perturbed = 0;
  steps.forEach(({ row, rollouts }, step) => {
    const want = expect(rollouts.map((r) => byId.get(r.promptId)!), step);
    rollouts.forEach((r, i) => {
      assert.deepEqual(r.perturbation, want[i], `step ${step} rollout ${i}`);
      if (byId.get(r.promptId)!.label !== "harmful") assert.equal(want[i], undefined);
      const span = want[i]?.[0];
      const n = r.completionIds.length;
      const flags = Array.from(
        { length: n },
        (_, t) => !!span && t >= span.step && t < span.step + span.tokens.length,
      );
      assert.deepEqual(r.forced, flags, `forced flags of step ${step} rollout ${i}`);
      flags.forEach((f, t) => f && assert.equal(r.completionIds[t], span!.tokens[t - span!.step]));
      assert.ok(!span || span.step <= 4, "positions within maxStep");
    });
    const got = rollouts.filter((r) => r.forced!.some(Boolean)).length;
    perturbed += got;
    assert.equal(row["perturb/rate"], got / rollouts.length);
  });
  assert.ok(perturbed > 0, "some rollouts were perturbed");
  assert.deepEqual(log.options.perturb, {
    rate: 0.5,
    positions: "uniform",
    length: [1, 3],
    source: "harmful",
    labels: ["harmful"],
    seed: 7,
    maxStep: 4,
    harmfulOffset: "start",
  });
  // Another perturbation seed draws other spans; the sampling seed is unchanged.
  const other = await collect(m, { ...opts, steps: 1, perturb: { ...perturb, seed: 8 } });
  assert.notDeepEqual(
    other.steps[0].rollouts.map((r) => r.perturbation),
    steps[0].rollouts.map((r) => r.perturbation),
  );
  m.dispose();
});

Deno.test("bad perturbation settings fail before any work", async () => {
  const m = await tinyModel("gpt2", 2);
  const base: RLOptions = {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 1,
    groupSize: 2,
    rewards: [BY_INDEX],
  };
  await assert.rejects(() => trainRL(m, { ...base, perturb: { rate: 1 } }), /pass harmfulTexts/);
  await assert.rejects(
    () => trainRL(m, { ...base, perturb: { source: "random", rate: 2 } }),
    /rate=2; pass a share in \[0, 1\]/,
  );
  await assert.rejects(
    () => trainRL(m, { ...base, perturb: { source: "random", maxStep: -1 } }),
    /perturb.maxStep is -1/,
  );
  m.dispose();
});

Deno.test("log rows keep the documented metric namespace (perturbation metrics only with perturb)", async () => {
  const m = await tinyModel("gpt2", 5);
  const common = [
    "step",
    "reward",
    "reward_std",
    "rewards/by_index/mean",
    "entropy",
    "clip_ratio",
    "completion_length",
    "refusal_rate",
    "frac_reward_zero_std",
    "loss",
    "grad_norm",
    "learning_rate",
    "seconds",
  ];
  const base: RLOptions = {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 1,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: 3,
    rewards: [BY_INDEX],
  };
  const keys = async (o: RLOptions) => Object.keys((await trainRL(m, o)).rows[0]).sort();
  assert.deepEqual(await keys(base), [...common, "kl"].sort());
  assert.deepEqual(
    await keys({ ...base, perturb: { source: "random", rate: 1, labels: ["harmful", "benign"] } }),
    [...common, "kl", "perturb/rate", "perturb/forced_share"].sort(),
  );
  assert.deepEqual(
    await keys({ ...base, algorithm: "ppo", reference: "none" }),
    [...common, "value_loss"].sort(),
  );
  m.dispose();
});
