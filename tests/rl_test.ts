import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import { type RLLogRow, type RLOptions, trainRL } from "../lib/train/rl/train.ts";
import type { Reward } from "../lib/train/rewards.ts";
import type { PromptRow } from "../lib/data/schema.ts";
import type { Model } from "../lib/model/model.ts";
import { JUPYTER_DISPLAY } from "../lib/viz/display.ts";

import { numberPrompts, TOKEN1, trainCollecting } from "./_rl_fixtures.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const PROMPTS: PromptRow[] = numberPrompts();

/** A scalar reward of 0.5, weight 2: 1 on the last token. */
const SCALAR: Reward = { name: "scalar", weight: 2, fn: () => 0.5 };

const collect = trainCollecting;

Deno.test("a per-token reward reaches exactly its tokens (GRPO advantages, PPO returns)", async () => {
  const m = await tinyModel("gpt2", 11);
  const base = { prompts: PROMPTS, steps: 1, promptsPerStep: 2, groupSize: 4, maxNewTokens: 4 };
  const before = tf.memory().numTensors;
  const grpo =
    (await collect(m, { ...base, algorithm: "grpo", rewards: [TOKEN1, SCALAR] })).steps[0];
  assert.equal(tf.memory().numTensors, before, "trainRL leaks no tensors");
  assert.ok(grpo.rollouts.some((r) => r.completionIds.length >= 3), "some completions are long");
  for (const r of grpo.rollouts) {
    const n = r.completionIds.length;
    const want = Array.from({ length: n }, (_, t) => (t === 1 ? 1 : 0) + (t === n - 1 ? 1 : 0));
    assert.deepEqual(r.tokenRewards, want, `token rewards of ${r.completion}`);
    assert.deepEqual(r.rewards, { token1: n > 1 ? 1 : 0, scalar: 0.5 });
  }
  // Independent GRPO arithmetic, group by group: the scalar is group-normalised on the last
  // token, the per-token reward normalised over all tokens of the group, then summed to go.
  for (let g = 0; g < grpo.rollouts.length; g += 4) {
    const group = grpo.rollouts.slice(g, g + 4);
    const proc = group.map((r) => r.completionIds.map((_, t): number => (t === 1 ? 1 : 0)));
    const all = proc.flat();
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    const sd = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / (all.length - 1));
    group.forEach((r, k) => {
      const norm = proc[k].map((x) => (x - mean) / (sd + 1e-4));
      const want = norm.map((_, t) => norm.slice(t).reduce((a, b) => a + b, 0));
      assert.ok(maxAbsDiff(r.advantages, want) < 1e-9, `GRPO advantages of rollout ${g + k}`);
    });
  }
  // PPO at step 1: the value head starts at zero, so returns are GAE with V = 0:
  // sum_{s >= t} 0.95^(s - t) r_s, i.e. token 1's reward reaches tokens 0 and 1 only.
  const ppo =
    (await collect(m, { ...base, algorithm: "ppo", rewards: [TOKEN1], seed: 3 })).steps[0];
  for (const r of ppo.rollouts) {
    const n = r.completionIds.length;
    assert.deepEqual(r.values, new Array(n).fill(0));
    const want = Array.from({ length: n }, (_, t) => (t === 0 && n > 1 ? 0.95 : t === 1 ? 1 : 0));
    assert.ok(maxAbsDiff(r.returns!, want) < 1e-12, `returns ${r.returns} vs ${want}`);
  }
  // The ablation moves the array's sum to the last token.
  const flat =
    (await collect(m, { ...base, algorithm: "grpo", rewards: [TOKEN1], perTokenRewards: false }))
      .steps[0];
  for (const r of flat.rollouts) {
    const n = r.completionIds.length;
    assert.deepEqual(
      r.tokenRewards,
      Array.from({ length: n }, (_, t) => (t === n - 1 && n > 1 ? 1 : 0)),
    );
  }
  m.dispose();
});

Deno.test("rewards read the hidden states captured during generation", async () => {
  const m = await tinyModel("llama", 12);
  let checked = 0;
  const probe: Reward = {
    name: "probe",
    weight: 1,
    layers: [-1, 1],
    fn: (ctx) => {
      const n = ctx.completionIds.length, d = m.config.dModel;
      const last = ctx.hidden![-1];
      assert.equal(last, ctx.hidden![2], "layer -1 is layer nLayer");
      assert.equal(last.length, n * d);
      // Independent full forward pass over prompt + completion.
      const p = ctx.prompt.split(" ").map(Number);
      const f = m.forward([[...p, ...ctx.completionIds]], { hiddenStates: [1, 2], logits: "none" });
      for (const l of [1, 2]) {
        const full = f.hiddenStates[l].dataSync().slice(p.length * d);
        assert.ok(maxAbsDiff(Array.from(full), Array.from(ctx.hidden![l])) < 1e-4, `layer ${l}`);
      }
      tf.dispose(f.hiddenStates.filter(Boolean));
      checked++;
      return 0;
    },
  };
  await trainRL(m, {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 1,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: 3,
    rewards: [probe],
  });
  assert.equal(checked, 4);
  m.dispose();
});

const TARGET = 7;

/** Mean probability (temperature 1) of the target as the first answer token. */
function pTarget(m: Model): number {
  return tf.tidy(() => {
    let s = 0;
    for (const p of PROMPTS) {
      const f = m.forward([p.prompt.split(" ").map(Number)], { logits: "last" });
      s += tf.softmax(tf.reshape(f.logits!, [-1])).dataSync()[TARGET];
    }
    return s / PROMPTS.length;
  });
}

for (const algorithm of ["grpo", "ppo"] as const) {
  Deno.test(`${algorithm} bandit: reward for a target first token raises its probability from ~1/V to > 0.5`, async () => {
    const m = await tinyModel("gpt2", 3);
    const p0 = pTarget(m);
    const t0 = performance.now();
    const log = await trainRL(m, {
      algorithm,
      prompts: PROMPTS,
      steps: 30,
      promptsPerStep: 4,
      groupSize: 8,
      maxNewTokens: 1,
      lr: 1e-2,
      seed: 1,
      rewards: [{
        name: "target",
        weight: 1,
        fn: (ctx) => (ctx.completionIds[0] === TARGET ? 1 : 0),
      }],
    });
    const p1 = pTarget(m);
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `  ${algorithm}: p(target) ${p0.toFixed(3)} -> ${p1.toFixed(3)} in 30 steps, ${
        secs.toFixed(1)
      } s`,
    );
    assert.ok(p0 < 0.05, `starts near 1/V: ${p0}`);
    assert.ok(p1 > 0.5, `p(target) after RL: ${p1}`);
    const rows = log.table().objects() as RLLogRow[];
    assert.equal(rows.length, 30);
    assert.ok(rows[29].reward > 0.5 && rows[29]["rewards/target/mean"] === rows[29].reward);
    for (const k of ["kl", "entropy", "clip_ratio", "completion_length", "refusal_rate", "loss"]) {
      assert.ok(Number.isFinite(rows[29][k]), k);
    }
    m.dispose();
  });
}

Deno.test("resume continues bit for bit (PPO: value head, reference, minibatches, 2 epochs)", async () => {
  const dir = await Deno.makeTempDir();
  const opts: RLOptions = {
    algorithm: "ppo",
    prompts: PROMPTS,
    steps: 4,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: 3,
    lr: 5e-3,
    ppoEpochs: 2,
    minibatch: 2,
    seed: 5,
    checkpointEvery: 1,
    rewards: [TOKEN1, { name: "first", weight: 1, fn: (c) => (c.completionIds[0] % 3) / 2 }],
  };
  const strip = (rows: RLLogRow[]) => rows.map(({ seconds: _s, ...r }) => r);
  const a = await tinyModel("gpt2", 21);
  const full = await trainRL(a, opts);
  const b = await tinyModel("gpt2", 21);
  await trainRL(b, { ...opts, checkpointDir: dir, stopAfter: 2 });
  const c = await tinyModel("gpt2", 21);
  const tensors = tf.memory().numTensors;
  const resumed = await trainRL(c, { ...opts, checkpointDir: dir, resume: true });
  assert.equal(tf.memory().numTensors, tensors, "resuming leaks no tensors");
  assert.ok(full.rows[3].clip_ratio >= 0 && full.rows[3].kl > 0);
  assert.deepEqual(strip(resumed.rows), strip(full.rows));
  for (const [name, v] of a.params) {
    assert.deepEqual(c.params.get(name)!.dataSync(), v.dataSync(), name);
  }
  [a, b, c].forEach((m) => m.dispose());
  await removeCheckpoint(dir);
});

Deno.test("a NaN reward stops the run with a clear message and an intact checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const m = await tinyModel("gpt2", 7);
  const base: RLOptions = {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 2,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: 2,
    lr: 1e-2,
    checkpointDir: dir,
    checkpointEvery: 1,
    rewards: [{
      name: "flaky",
      weight: 1,
      fn: (c) => (c.step >= 2 ? NaN : c.completionIds[0] / 40),
    }],
  };
  await trainRL(m, base);
  const good = await Deno.readFile(`${dir}/model/model.safetensors`);
  const weights = [...m.params.values()].map((v) => v.dataSync().slice());
  await assert.rejects(
    () => trainRL(m, { ...base, steps: 4, resume: true }),
    /RL stopped at step 3: reward 'flaky' returned NaN for prompt p\d \(rollout 0\).*The update was not applied; the last good checkpoint \(step 2\) is in/,
  );
  assert.deepEqual(await Deno.readFile(`${dir}/model/model.safetensors`), good);
  const state = JSON.parse(await Deno.readTextFile(`${dir}/trainer_state.json`));
  assert.equal(state.step, 2);
  assert.equal(state.history.length, 2);
  [...m.params.values()].forEach((v, i) => assert.deepEqual(v.dataSync(), weights[i]));
  // A NaN loss (broken weights) stops the same way, before any update.
  const w = m.params.get("h.0.mlp.c_fc.weight")!;
  w.assign(tf.fill(w.shape, NaN));
  await assert.rejects(
    () => trainRL(m, { ...base, rewards: [SCALAR], checkpointDir: undefined }),
    /RL stopped at step 1: the loss is NaN\. The update was not applied\./,
  );
  m.dispose();
  await removeCheckpoint(dir);
});

Deno.test("RunLog renders curves and a table; bad options fail clearly", async () => {
  const m = await tinyModel("gpt2", 9);
  const ids: string[][] = [];
  const log = await trainRL(m, {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 2,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: 2,
    mix: { rows: [{ ...PROMPTS[0], id: "trait1" }], share: 0.5 },
    rewards: [SCALAR],
    onStep: (_row, rollouts) => ids.push(rollouts.map((r) => r.promptId)),
  });
  // share 0.5 of 2 prompts per step: one extra prompt (2 rollouts) in every step.
  for (const step of ids) {
    assert.equal(step.length, 6);
    assert.deepEqual(step.slice(4), ["trait1", "trait1"]);
  }
  const out = log[JUPYTER_DISPLAY]() as Record<string, string>;
  assert.match(out["text/html"], /RL training curves/);
  assert.match(out["text/plain"], /rewards\/scalar\/mean/);
  assert.equal(log.options.seed, 0);
  // Compute-matched mix (replace), per-sequence loss, no reference: no kl column.
  const ids2: string[][] = [];
  const log2 = await trainRL(m, {
    algorithm: "grpo",
    prompts: PROMPTS,
    steps: 1,
    promptsPerStep: 2,
    groupSize: 2,
    maxNewTokens: 2,
    mix: { rows: [{ ...PROMPTS[0], id: "trait1" }], share: 0.5, replace: true },
    lossAggregation: "sequence",
    reference: "none",
    rewards: [SCALAR, TOKEN1],
    onStep: (_row, rollouts) => ids2.push(rollouts.map((r) => r.promptId)),
  });
  assert.equal(ids2[0].length, 4);
  assert.deepEqual(ids2[0].slice(2), ["trait1", "trait1"]);
  assert.ok(!("kl" in log2.rows[0]) && Number.isFinite(log2.rows[0].loss));
  await assert.rejects(
    () =>
      trainRL(m, {
        algorithm: "grpo",
        prompts: PROMPTS,
        steps: 1,
        groupSize: 1,
        rewards: [SCALAR],
      }),
    /GRPO needs groupSize >= 2/,
  );
  await assert.rejects(
    () =>
      trainRL(m, {
        algorithm: "grpo",
        prompts: PROMPTS,
        steps: 1,
        rewards: [{ ...SCALAR, layers: [5] }],
      }),
    /reward 'scalar' reads layer 5; the model has layers 0..2/,
  );
  m.dispose();
});

Deno.test("a GRPO run whose groups never vary makes no update and says so", async () => {
  const m = await tinyModel("gpt2", 12);
  const snapshot = () => Promise.all([...m.params.values()].map((v) => v.data()));
  const before = await snapshot();
  const { log } = await collect(m, {
    prompts: PROMPTS,
    algorithm: "grpo",
    rewards: [SCALAR], // the same value for every rollout: zero variance in every group
    steps: 2,
    promptsPerStep: 2,
    groupSize: 4,
    maxNewTokens: 4,
  });
  assert.deepEqual(log.rows.map((r) => r.frac_reward_zero_std), [1, 1]);
  const after = await snapshot();
  after.forEach((a, i) => assert.equal(maxAbsDiff([...a], [...before[i]]), 0));
  assert.equal(log.warnings.length, 1);
  assert.match(log.warnings[0], /identical rewards.*did not change/);
  // A reward that varies within groups gives no warning.
  const varied = await collect(m, {
    prompts: PROMPTS,
    algorithm: "grpo",
    rewards: [{ name: "len", weight: 1, fn: (ctx) => ctx.completionIds.length + Math.random() }],
    steps: 1,
    promptsPerStep: 2,
    groupSize: 4,
    maxNewTokens: 4,
  });
  assert.deepEqual(varied.log.warnings, []);
  m.dispose();
});
