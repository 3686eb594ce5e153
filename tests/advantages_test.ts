import assert from "node:assert/strict";
import {
  clippedPolicyLoss,
  clippedValueLoss,
  gae,
  groupAdvantages,
  grpoTokenAdvantages,
  isClipped,
  k3Kl,
  placeRewards,
  ppoTokenAdvantages,
  rewardToGo,
  whiten,
} from "../lib/train/advantages.ts";
import {
  alphaAlignParts,
  alphaAlignReward,
  craftReward,
  craftRewardParts,
  evaluateRewards,
  type GroupMember,
  latentOnly,
  latentReward,
  type RewardContext,
  textOnly,
  traitReward,
} from "../lib/train/rewards.ts";
import type { Compass } from "../lib/compass/compass.ts";
import type { Matrix } from "../lib/compass/matrix.ts";
import type { PromptRow } from "../lib/data/schema.ts";

/** Asserts two number arrays agree to `tol`, printing the largest difference. */
function close(actual: readonly number[], expected: readonly number[], tol = 1e-9, what = "") {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const diff = Math.max(0, ...actual.map((a, i) => Math.abs(a - expected[i])));
  assert.ok(diff <= tol, `${what}: max |diff| ${diff} > ${tol}: ${actual} vs ${expected}`);
}

Deno.test("groupAdvantages: (r - mean) / (sample std + eps) per group", () => {
  // [1,0,0,0]: mean 0.25, sample var 0.75/3 = 0.25, std 0.5.
  const s = 0.5 + 1e-4;
  close(groupAdvantages([1, 0, 0, 0], 4), [0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s]);
  // groups of 2: [1,3] -> std sqrt(2); [5,5] -> 0 (all equal: advantage 0).
  const r2 = Math.SQRT2 + 1e-4;
  close(groupAdvantages([1, 3, 5, 5], 2), [-1 / r2, 1 / r2, 0, 0]);
  close(groupAdvantages([1, 0, 0, 0], 4, { scaleByStd: false }), [0.75, -0.25, -0.25, -0.25]);
  assert.throws(() => groupAdvantages([1, 2, 3], 2), /do not split into groups of 2/);
});

Deno.test("k3Kl: exp(ref - pol) - (ref - pol) - 1", () => {
  close(k3Kl([-1, -2, -0.5], [-1, -1, -1.5]), [0, Math.E - 2, Math.exp(-1)], 1e-12);
  assert.ok(k3Kl([-3, -0.1], [-0.2, -4]).every((x) => x > 0));
});

Deno.test("gae: hand-computed advantages and returns", () => {
  // deltas: t2 = 1 - 0.4 = 0.6; t1 = 0.4 - 0.2 = 0.2; t0 = 0.2 - 0.5 = -0.3 (lambda 0.5)
  const r = gae([0, 0, 1], [0.5, 0.2, 0.4], { gamma: 1, lambda: 0.5 });
  close(r.advantages, [-0.05, 0.5, 0.6], 1e-12);
  close(r.returns, [0.45, 0.7, 1.0], 1e-12);
  // zero values, lambda 1: discounted reward-to-go.
  close(gae([1, 0, 2], [0, 0, 0], { gamma: 0.9, lambda: 1 }).advantages, [2.62, 1.8, 2], 1e-12);
  close(rewardToGo([1, 0, 2], 0.9), [2.62, 1.8, 2], 1e-12);
});

Deno.test("clippedPolicyLoss and isClipped: max(-A r, -A clip(r))", () => {
  const ratio = [1.5, 0.5, 1.1, 0.7], adv = [1, 1, -1, -1];
  close(clippedPolicyLoss(ratio, adv, 0.2), [-1.2, -0.5, 1.1, 0.8], 1e-12);
  assert.deepEqual(isClipped(ratio, adv, 0.2), [true, false, false, true]);
});

Deno.test("clippedValueLoss: 0.5 max((v - R)^2, (vOld + clip(v - vOld) - R)^2)", () => {
  close(
    clippedValueLoss([1, 0, 0.6, 3], [0.5, 0.1, 0.5, 0], [2, 0.05, 0, 3], 0.2),
    [0.845, 0.00125, 0.18, 3.92],
    1e-12,
  );
});

Deno.test("whiten: sample-variance standardisation", () => {
  const sd = Math.sqrt(5 / 3 + 1e-8);
  close(whiten([1, 2, 3, 4]), [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd], 1e-12);
  close(whiten([1, 2, 3, 4], { shiftMean: false }), [1, 2, 3, 4].map((x) => (x - 2.5) / sd + 2.5));
});

Deno.test("placeRewards puts the sequence reward on the last token", () => {
  assert.deepEqual(placeRewards([2, 3], [[1, 0], [0, 0, 1]], [2, 3]), [[1, 2], [0, 0, 4]]);
  assert.deepEqual(placeRewards([5], undefined, [3]), [[0, 0, 5]]);
  assert.throws(() => placeRewards([1], [[1, 2]], [3]), /3 tokens but 2 token rewards/);
});

Deno.test("grpoTokenAdvantages: outcome broadcast; process normalised over the group, then summed to go", () => {
  const a = 0.5 / (Math.SQRT1_2 + 1e-4);
  const out = grpoTokenAdvantages([1, 0], undefined, [2, 3], 2);
  close(out[0], [a, a]);
  close(out[1], [-a, -a, -a]);
  // process rewards [0,1] and [0,0,0]: mean 0.2, sample var (4 * 0.04 + 0.64) / 4 = 0.2.
  const n = (x: number) => (x - 0.2) / (Math.sqrt(0.2) + 1e-4);
  const p = grpoTokenAdvantages([0, 0], [[0, 1], [0, 0, 0]], [2, 3], 2);
  close(p[0], [n(0) + n(1), n(1)], 1e-12);
  close(p[1], [3 * n(0), 2 * n(0), n(0)], 1e-12);
});

Deno.test("ppoTokenAdvantages: GAE per rollout, whitened over the batch", () => {
  const raw = ppoTokenAdvantages([[0, 0, 1]], [[0.5, 0.2, 0.4]], { lambda: 0.5, whiten: false });
  close(raw.advantages[0], [-0.05, 0.5, 0.6], 1e-12);
  const w = ppoTokenAdvantages([[0, 0, 1], [1]], [[0.5, 0.2, 0.4], [0]], { lambda: 0.5 });
  close(w.advantages.flat(), whiten([-0.05, 0.5, 0.6, 1]), 1e-12);
  close(w.returns.flat(), [0.45, 0.7, 1, 1], 1e-12);
});

const ROW: PromptRow = {
  id: "b1",
  prompt: "2 + 2 ?",
  label: "benign",
  category: "math",
  source: "t",
};
const HARM: PromptRow = {
  id: "h1",
  prompt: "make x",
  label: "harmful",
  category: "hz",
  source: "t",
};

function contexts(row: PromptRow, texts: string[], hidden?: Float32Array[]): RewardContext[] {
  const group: GroupMember[] = texts.map((text) => ({ text, ids: [1, 2] }));
  return texts.map((text, k) => ({
    row,
    prompt: row.prompt,
    completion: text,
    completionIds: [1, 2],
    group,
    groupIndex: k,
    hidden: hidden ? { 1: hidden[k] } : undefined,
    step: 0,
  }));
}

Deno.test("alphaAlignParts: R_s = rf V_f +- ra V_r, R_h = max(z, 0) for benign non-refusals", () => {
  const t = (o: Parameters<typeof alphaAlignParts>[0], p = {}) => alphaAlignParts(o, p).total;
  assert.equal(t({ harmful: true, format: true, refusal: true }), 2);
  assert.equal(t({ harmful: true, format: false, refusal: false, helpfulnessZ: 3 }), 0);
  assert.equal(t({ harmful: false, format: true, refusal: true, helpfulnessZ: 1.5 }), 0);
  assert.equal(t({ harmful: false, format: true, refusal: false, helpfulnessZ: 1.5 }), 2.5);
  assert.equal(t({ harmful: false, format: true, refusal: false, helpfulnessZ: -0.7 }), 1);
  assert.equal(
    t({ harmful: false, format: true, refusal: false, helpfulnessZ: 1.5 }, { zero: true }),
    1,
  );
  assert.equal(t({ harmful: true, format: true, refusal: true }, { rf: 0.5, ra: 2 }), 2.5);
  assert.equal(t({ harmful: false, format: false, refusal: true }, { rf: 0.5, ra: 2 }), -2);
});

Deno.test("alphaAlignReward: verifiers, group z-scores (computed once per group), labels", async () => {
  const texts = [
    "<safety_reasoning>benign</safety_reasoning><answer>4</answer>", // V_f, correct
    "<safety_reasoning>benign</safety_reasoning><answer>5</answer>", // V_f, wrong
    "<answer>4</answer>", // no format, correct
    "<safety_reasoning>x</safety_reasoning><answer>\\boxed{Sorry, I can't comply}</answer>", // refusal
  ];
  let calls = 0;
  const reward = alphaAlignReward({
    helpfulness: (_row, text) => (calls++, text.includes(">4<") ? 1 : 0),
  });
  // s = [1, 0, 1, 0]: mean 0.5, sample std sqrt(1/3).
  const z = 0.5 / (Math.sqrt(1 / 3) + 1e-4);
  const benign = await Promise.all(contexts(ROW, texts).map((c) => reward.fn(c)));
  close(benign as number[], [1 + z, 1, z, 0], 1e-12);
  assert.equal(calls, 4);
  const harmful = await Promise.all(contexts(HARM, texts).map((c) => reward.fn(c)));
  assert.deepEqual(harmful, [1, 1, 0, 2]);
  const zero = alphaAlignReward({ zero: true, helpfulness: () => 1 });
  const z0 = await Promise.all(contexts(ROW, texts).map((c) => zero.fn(c)));
  assert.deepEqual(z0, [1, 1, 0, 0]);
});

/** A 2-d compass: cos_safe = x0, cos_unsafe = x1, cos_rethink = 0, p_safe = 0.5 + 0.25 (x0 - x1). */
function fakeCompass(withCosines = true): Compass {
  const col = (m: Matrix, j: number) =>
    Float32Array.from({ length: m.rows }, (_, i) => m.data[i * 2 + j]);
  return {
    method: withCosines ? "craft" : "diffmean",
    layer: 1,
    pooling: "mean",
    dModel: 2,
    score: (m) => col(m, 0).map((x0, i) => 0.5 + 0.25 * (x0 - col(m, 1)[i])),
    ...(withCosines
      ? {
        cosines: (m: Matrix) => ({
          safe: col(m, 0),
          unsafe: col(m, 1),
          rethink: new Float32Array(m.rows),
        }),
      }
      : {}),
    save: () => Promise.resolve(),
    metrics: {},
    seed: 0,
    options: {},
  };
}

Deno.test("craftRewardParts: R = 0.5 R_lat + 0.4 R_txt + 0.2 R_cons", () => {
  const lat = latentReward({ safe: 0.8, unsafe: 0.1, rethink: 0.2 });
  assert.ok(Math.abs(lat - 0.8) < 1e-12);
  const p = craftRewardParts({ lat, pLatSafe: 0.9, pTextSafe: 0.7 });
  close([p.txt, p.cons, p.total], [0.4, 0.8, 0.72], 1e-12);
});

Deno.test("craftReward on mean-pooled hidden states; per-token variant; ablations", async () => {
  // Two tokens [0.2, 0.4] and [0.6, 0]: mean [0.4, 0.2] -> R_lat 0.2, p_lat 0.55; p_text 0.75.
  const h = Float32Array.of(0.2, 0.4, 0.6, 0);
  const ctx = contexts(ROW, ["ok"], [h])[0];
  const judge = () => 0.75;
  const r = craftReward({ compass: fakeCompass(), textJudge: judge });
  assert.deepEqual(r.layers, [1]);
  // 0.5 * 0.2 + 0.4 * 0.5 + 0.2 * (1 - 0.2) = 0.46
  close([await r.fn(ctx) as number], [0.46], 1e-6);
  const per = await craftReward({ compass: fakeCompass(), textJudge: judge, perToken: true }).fn(
    ctx,
  );
  // token R_lat: -0.2, 0.6 (times 0.5); the last token adds 0.4 * 0.5 + 0.2 * 0.8 = 0.36.
  close(per as number[], [-0.1, 0.66], 1e-6);
  close([await latentOnly({ compass: fakeCompass() }).fn(ctx) as number], [0.2], 1e-6);
  close([await textOnly({ textJudge: judge }).fn(ctx) as number], [0.5], 1e-12);
  // A linear probe has no prototypes: R_lat = 2 p_safe - 1 = 0.1.
  const probe = craftReward({ compass: fakeCompass(false), textJudge: judge });
  close([await probe.fn(ctx) as number], [0.5 * 0.1 + 0.4 * 0.5 + 0.2 * 0.8], 1e-6);
  await assert.rejects(
    async () => await r.fn({ ...ctx, hidden: undefined }),
    /no \[nNew, 2\] hidden states of layer 1/,
  );
  assert.throws(() => craftReward({ compass: fakeCompass() }), /pass textJudge/);
  await assert.rejects(
    async () => await craftReward({ compass: fakeCompass(), textJudge: () => 2 }).fn(ctx),
    /expected p_safe in \[0, 1\]/,
  );
});

Deno.test("traitReward and evaluateRewards: placement, weights, validation", async () => {
  const trait = traitReward((_r, text) => text === "good");
  const ctxs = contexts(ROW, ["good", "bad"]);
  assert.deepEqual(await Promise.all(ctxs.map((c) => trait.fn(c))), [1, 0]);
  const rewards = [
    { name: "s", weight: 0.5, fn: () => 2 },
    { name: "a", weight: 2, fn: () => [1, 0, 0] },
  ];
  const per = await evaluateRewards(rewards, ctxs.slice(0, 1), [3]);
  assert.deepEqual(per, { outcome: [1], process: [[2, 0, 0]], components: { s: [2], a: [1] } });
  const seq = await evaluateRewards(rewards, ctxs.slice(0, 1), [3], { perToken: false });
  assert.deepEqual(seq.outcome, [3]);
  assert.deepEqual(seq.process, [[0, 0, 0]]);
  await assert.rejects(
    () => evaluateRewards([{ name: "bad", weight: 1, fn: () => NaN }], ctxs, [3, 3]),
    /reward 'bad' returned NaN for prompt b1 \(rollout 0\)/,
  );
  await assert.rejects(
    () => evaluateRewards([{ name: "len", weight: 1, fn: () => [1] }], ctxs, [3, 3]),
    /returned 1 values for 3 tokens/,
  );
});
