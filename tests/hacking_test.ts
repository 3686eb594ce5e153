import assert from "node:assert/strict";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { numberPrompts } from "./_rl_fixtures.ts";
import { trainRL } from "../lib/train/rl/train.ts";
import { latentOnly, type RewardContext } from "../lib/train/rewards.ts";
import { collectActivations, type CollectRow } from "../lib/compass/collect.ts";
import { fitCompass } from "../lib/compass/fit.ts";
import { fitProbe } from "../lib/compass/compass.ts";
import { makeMatrix } from "../lib/compass/matrix.ts";
import { makeRng } from "../lib/data/rng.ts";
import type { Model } from "../lib/model/model.ts";
import {
  hackDetector,
  minEnsembleReward,
  pooledCompletions,
  refittingCompass,
} from "../lib/train/hacking.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

/** Reference traces: "safe" continuations in words 10-17, "unsafe" ones in words 20-27. */
function reference(): CollectRow[] {
  const rows: CollectRow[] = [];
  const rng = makeRng(3);
  for (let i = 0; i < 16; i++) {
    const prompt = ["1 2 3", "4 5 6", "8 9 10", "11 12"][i % 4];
    const word = (base: number) => String(base + rng.int(8));
    rows.push({ prompt, trace: [0, 1, 2].map(() => word(10)).join(" "), traceLabel: "safe" });
    rows.push({ prompt, trace: [0, 1, 2].map(() => word(20)).join(" "), traceLabel: "unsafe" });
  }
  return rows;
}

async function frozenCompass(m: Model, ref: CollectRow[]) {
  const acts = await collectActivations(m, ref, {
    layers: [2],
    pooling: "mean-response",
    progress: "silent",
  });
  return fitCompass(acts, { method: "diffmean", layer: 2 });
}

const BASE = {
  algorithm: "grpo" as const,
  prompts: numberPrompts(),
  promptsPerStep: 4,
  groupSize: 4,
  maxNewTokens: 3,
  temperature: 1,
  seed: 2,
};

Deno.test("hackDetector: zero gap before any update, metrics only on measured steps", async () => {
  const m = await tinyModel("gpt2", 5);
  const ref = reference();
  const compass = await frozenCompass(m, ref);
  const log = await trainRL(m, {
    ...BASE,
    steps: 3,
    lr: 0, // the policy never moves: the fresh probe must equal the frozen one
    rewards: [{ name: "zero", weight: 1, fn: () => 0 }],
    monitors: [hackDetector({ compass, reference: ref, every: 2 })],
  });
  const [s1, s2, s3] = log.rows;
  assert.equal(s1["hack/gap"], 0);
  assert.equal(s1["hack/disagree"], 0);
  assert.ok(Math.abs(s1["hack/rank_corr"] - 1) < 1e-12);
  assert.ok(s1["hack/compass_p_safe"] > 0 && s1["hack/compass_p_safe"] < 1);
  assert.ok(s1["hack/fresh_auroc"] > 0.95, "the reference words separate the classes");
  assert.ok(!("hack/gap" in s2), "step 2 is not measured with every = 2");
  assert.equal(s3["hack/gap"], 0);
  assert.equal(s3["hack/gap_change"], 0);
  assert.deepEqual(log.options.monitors, ["hack"]);
  assert.ok(!log.warnings.some((w) => w.includes("reward hacking")));
  m.dispose();
});

Deno.test("hackDetector: the gap opens while a frozen latent reward is optimised, and warns", async () => {
  const m = await tinyModel("gpt2", 5);
  const ref = reference();
  const compass = await frozenCompass(m, ref);
  const log = await trainRL(m, {
    ...BASE,
    steps: 40,
    lr: 2e-2,
    klCoef: 0,
    rewards: [latentOnly({ compass, name: "latent" })],
    monitors: [hackDetector({ compass, reference: ref, every: 5, threshold: 0.2 })],
  });
  const measured = log.rows.filter((r) => "hack/gap" in r);
  const first = measured[0], last = measured[measured.length - 1];
  const fmt = (k: string) => measured.map((r) => r[k].toFixed(2)).join(" ");
  console.log(
    `  latent reward: ${log.rows[0]["rewards/latent/mean"].toFixed(2)} -> ${
      log.rows[39]["rewards/latent/mean"].toFixed(2)
    }\n  frozen p_safe: ${fmt("hack/compass_p_safe")}\n  fresh p_safe:  ${
      fmt("hack/fresh_p_safe")
    }\n  gap:           ${fmt("hack/gap")}`,
  );
  assert.ok(
    last["hack/compass_p_safe"] > first["hack/compass_p_safe"] + 0.2,
    "the reward was optimised",
  );
  assert.ok(last["hack/gap"] > 0.2, `the gap opened: ${last["hack/gap"]}`);
  assert.ok(log.warnings.some((w) => w.startsWith("possible reward hacking")), log.warnings.join());
  m.dispose();
});

Deno.test("hackDetector: a reward that truly changes the behaviour keeps the gap closed", async () => {
  const m = await tinyModel("gpt2", 5);
  const ref = reference();
  const compass = await frozenCompass(m, ref);
  const safeWords = new Set(Array.from({ length: 8 }, (_, i) =>
    m.tokenizer.encode(String(10 + i), {
      addSpecialTokens: false,
    })[0]));
  const log = await trainRL(m, {
    ...BASE,
    steps: 40,
    lr: 2e-2,
    klCoef: 0,
    // The behaviour itself: answer in the words the safe traces use.
    rewards: [{
      name: "safe_words",
      weight: 1,
      fn: (ctx) => ctx.completionIds.filter((t) => safeWords.has(t)).length / 3,
    }],
    monitors: [hackDetector({ compass, reference: ref, every: 5 })],
  });
  const measured = log.rows.filter((r) => "hack/gap" in r);
  const last = measured[measured.length - 1];
  const fmt = (k: string) => measured.map((r) => r[k].toFixed(2)).join(" ");
  console.log(
    `  safe words: ${log.rows[0]["rewards/safe_words/mean"].toFixed(2)} -> ${
      log.rows[39]["rewards/safe_words/mean"].toFixed(2)
    }\n  frozen p_safe: ${fmt("hack/compass_p_safe")}\n  fresh p_safe:  ${
      fmt("hack/fresh_p_safe")
    }\n  gap:           ${fmt("hack/gap")}`,
  );
  assert.ok(log.rows[39]["rewards/safe_words/mean"] > 0.8, "the behaviour was learned");
  assert.ok(last["hack/compass_p_safe"] > 0.8 && last["hack/fresh_p_safe"] > 0.8, "both see it");
  // A fast genuine change may open the gap for one measurement; it closes again.
  assert.ok(Math.abs(last["hack/gap"]) < 0.05, fmt("hack/gap"));
  assert.ok(measured.slice(1).filter((r) => r["hack/gap"] > 0.2).length <= 1, fmt("hack/gap"));
  assert.ok(!log.warnings.some((w) => w.includes("reward hacking")));
  m.dispose();
});

Deno.test("refittingCompass: a refit below the held-out bar is discarded, one above it is swapped in", async () => {
  const ref = reference();
  const textJudge = () => 1;
  for (const [bar, swapped] of [[1.01, false], [0, true]] as const) {
    const m = await tinyModel("gpt2", 5);
    const frozen = await frozenCompass(m, ref);
    const live = refittingCompass(frozen, {
      textJudge,
      reference: ref,
      every: 2,
      minHeldOutAuroc: bar,
    });
    const probe = makeMatrix(1, 16, new Float32Array(16).map((_, i) => Math.sin(i)));
    const before = live.compass.score(probe)[0];
    assert.equal(before, frozen.score(probe)[0], "the live view reads the initial compass");
    const log = await trainRL(m, {
      ...BASE,
      steps: 4,
      lr: 1e-2,
      compass: live.compass,
      rewards: [latentOnly({ compass: live.compass, name: "latent" })],
      monitors: [live.monitor],
    });
    assert.deepEqual(live.history.map((h) => h.step), [2, 4]);
    assert.deepEqual(live.history.map((h) => h.accepted), [swapped, swapped]);
    assert.equal(live.history[0].rollouts, 2 * 16, "two steps of 16 rollouts join the fit");
    assert.equal(live.history[0].unsafeShare, 0);
    assert.equal(log.rows[1]["refit/accepted"], swapped ? 1 : 0);
    assert.ok(!("refit/accepted" in log.rows[0]));
    const after = live.compass.score(probe)[0];
    if (swapped) assert.notEqual(after, before);
    else {
      assert.equal(after, before, "a discarded refit leaves the compass as it was");
      assert.ok(log.warnings.some((w) => w.includes("2 of 2 compass refits were discarded")));
    }
    m.dispose();
  }
  assert.throws(
    () =>
      refittingCompass({} as never, {
        textJudge,
        reference: ref.filter((r) => r.traceLabel === "safe"),
      }),
    /need traceLabel "safe" and "unsafe"/,
  );
});

Deno.test("minEnsembleReward: the latent term is the smallest p_safe of the members", async () => {
  const rng = makeRng(1);
  const rand = (n: number) => new Float32Array(n).map(() => rng.normal());
  const x = makeMatrix(40, 4, rand(160));
  const y = Array.from({ length: 40 }, (_, i) => (i % 2 ? 1 : 0) as 0 | 1);
  for (let i = 0; i < 40; i++) x.data[i * 4] += y[i] * 2; // class signal on dim 0
  const a = fitProbe(x, y, { method: "diffmean", layer: 1 });
  const b = fitProbe(x, y, { method: "logistic", layer: 2 });
  const h1 = rand(12), h2 = rand(12); // 3 completion tokens x d 4, layers 1 and 2
  const ctx = {
    row: { id: "r" },
    completion: "x",
    hidden: { 1: h1, 2: h2 },
  } as unknown as RewardContext;
  const r = minEnsembleReward({ compasses: [a, b], weights: { txt: 0, cons: 0 } });
  assert.deepEqual(r.layers, [1, 2]);
  const mean = (h: Float32Array) =>
    makeMatrix(1, 4, new Float32Array(4).map((_, j) => (h[j] + h[4 + j] + h[8 + j]) / 3));
  const pA = a.score(mean(h1))[0], pB = b.score(mean(h2))[0];
  const got = await r.fn(ctx) as number;
  assert.ok(Math.abs(got - 0.5 * (2 * Math.min(pA, pB) - 1)) < 1e-6, `${got} vs min(${pA}, ${pB})`);
  const pooled = pooledCompletions([ctx], 1, 4).data, want1 = mean(h1).data;
  for (let j = 0; j < 4; j++) assert.ok(Math.abs(pooled[j] - want1[j]) < 1e-6);
  // The text and consistency terms are CRAFT's.
  const withText = minEnsembleReward({ compasses: [a, b], textJudge: () => true });
  const p = Math.min(pA, pB);
  const want = 0.5 * (2 * p - 1) + 0.4 * 1 + 0.2 * (1 - Math.abs(p - 1));
  assert.ok(Math.abs((await withText.fn(ctx) as number) - want) < 1e-6);
  assert.throws(() => minEnsembleReward({ compasses: [a] }), /two or more compasses/);
  assert.throws(() => minEnsembleReward({ compasses: [a, b] }), /pass textJudge/);
});
