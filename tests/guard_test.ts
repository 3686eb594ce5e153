import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { reverseTask, tinyModel, useTestBackend } from "./_helpers.ts";
import { runSupervised, trainSft } from "../lib/train/sft.ts";
import { trainTokenwise } from "../lib/train/tokenwise.ts";
import { trainRL } from "../lib/train/rl/train.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";
import { encodeExamples } from "../lib/train/sft.ts";
import type { Model } from "../lib/model/model.ts";
import { numberPrompts } from "./_rl_fixtures.ts";
import { WorkerPool } from "../lib/parallel/pool.ts";
import type { Reward } from "../lib/train/rewards.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const task = (n: number, seed: number) => reverseTask(n, seed);

/** Non-finite values in every tensor of `dir`'s model and optimiser files (0 when clean). */
async function nonFiniteOnDisk(dir: string): Promise<number> {
  let bad = 0;
  for (const f of ["model/model.safetensors", "optimizer.safetensors"]) {
    const file = await readSafetensors(join(dir, f)).catch(() => undefined);
    for (const t of file?.tensors.values() ?? []) {
      for (const x of t.data) if (!Number.isFinite(x)) bad++;
    }
  }
  return bad;
}

async function weightsOf(m: Model): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [n, v] of m.params) out.set(n, Array.from(await v.data()));
  return out;
}

Deno.test("AdamW refuses non-finite or absurd numbers with a clear error", () => {
  for (const lr of [NaN, Infinity, -1e-3, 1e30, 2]) {
    assert.throws(() => new AdamW({ lr }), /AdamW: lr is .*; use a learning rate in \[0, 1\]/);
  }
  assert.throws(() => new AdamW({ lr: 1e-3, weightDecay: NaN }), /weightDecay is NaN/);
  assert.throws(() => new AdamW({ lr: 1e-3, weightDecay: -1 }), /weightDecay is -1/);
  assert.throws(() => new AdamW({ lr: 1e-3, beta1: 1 }), /beta1 is 1/);
  assert.throws(() => new AdamW({ lr: 1e-3, beta2: NaN }), /beta2 is NaN/);
  assert.throws(() => new AdamW({ lr: 1e-3, eps: 0 }), /eps is 0/);
  new AdamW({ lr: 0 }).dispose(); // lr 0 is allowed (a frozen run)
});

for (const lr of [NaN, Infinity, 1e30]) {
  Deno.test(`SFT, token-wise and RL refuse lr ${lr} before any work; nothing is saved`, async () => {
    const dir = await Deno.makeTempDir();
    const m = await tinyModel("gpt2", 7);
    const opts = { steps: 4, batchSize: 8, checkpointDir: dir, checkpointEvery: 1, lr };
    await assert.rejects(() => trainSft(m, task(32, 1), opts), /lr is .*\[0, 1\]/);
    await assert.rejects(() => trainTokenwise(m, task(32, 1), opts), /lr is .*\[0, 1\]/);
    await assert.rejects(() => trainSft(m, task(32, 1), { ...opts, lr: 1e-3, clip: NaN }), /clip/);
    const rl = {
      algorithm: "grpo" as const,
      prompts: numberPrompts(),
      rewards: [{ name: "one", weight: 1, fn: () => 1 }],
      steps: 2,
      promptsPerStep: 2,
      groupSize: 2,
      maxNewTokens: 3,
      checkpointDir: dir,
      checkpointEvery: 1,
    };
    await assert.rejects(() => trainRL(m, { ...rl, lr }), /lr is .*\[0, 1\]/);
    await assert.rejects(() => trainRL(m, { ...rl, valueLr: lr, algorithm: "ppo" }), /valueLr is/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
    m.dispose();
    await Deno.remove(dir, { recursive: true });
  });
}

/** Identity whose gradient is NaN: a finite loss with a poisoned gradient. */
const nanGrad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.mul(dy, NaN),
}));

/** SFT on `m` through runSupervised whose loss keeps its value but has a NaN gradient from `from` on. */
function poisonedFrom(m: Model, from: number, opts: Parameters<typeof runSupervised>[2]) {
  const enc = encodeExamples(m, task(64, 3));
  const pad = m.tokenizer.padId ?? 0;
  let current = 0;
  return runSupervised(m, {
    name: "SFT",
    steps: 6,
    examples: (s) => {
      current = s;
      return [0, 1, 2, 3, 4, 5, 6, 7].map((k) => (8 * s + k) % enc.length);
    },
    collate: (idx) => padBatch(idx.map((i) => enc[i].seq), idx.map((i) => enc[i].lossFrom), pad),
    loss: (b) => {
      const l = lmLoss(m.config, m.params, b);
      return (current + 1 >= from ? nanGrad(l) : l) as tf.Scalar;
    },
    stateOptions: {},
  }, opts);
}

for (const stateLocation of ["heap", "host"] as const) {
  Deno.test(`SFT (${stateLocation}) stops when an update leaves non-finite weights, never saves them, restores the last good checkpoint`, async () => {
    const dir = await Deno.makeTempDir();
    const m = await tinyModel("llama", 8);
    const opts = { lr: 1e-3, checkpointDir: dir, checkpointEvery: 2, stateLocation };
    let good: Map<string, number[]> | undefined;
    await assert.rejects(
      () =>
        poisonedFrom(m, 3, {
          ...opts,
          onStep: async (r) => {
            if (r.step === 2) good = await weightsOf(m);
          },
        }),
      /SFT stopped at step 3: after the update, the (weights|AdamW first moment) of '.*' (are|is) not finite \(loss [0-9.]+, gradient norm NaN\)\. Nothing was saved; the model was restored from the last good checkpoint \(step 2\) in /,
    );
    assert.equal(await nonFiniteOnDisk(dir), 0, "no non-finite value saved");
    const st = JSON.parse(await Deno.readTextFile(join(dir, "trainer_state.json")));
    assert.equal(st.step, 2, "the step-2 checkpoint is kept");
    assert.deepEqual(await weightsOf(m), good, "the model holds the last good checkpoint");
    // Without a checkpoint of the run, the message says the weights in memory are not usable.
    const n = await tinyModel("llama", 8);
    await assert.rejects(
      () => poisonedFrom(n, 1, { lr: 1e-3, stateLocation }),
      /stopped at step 1: after the update, .* not finite .*Nothing was saved; the model in memory keeps the failed update: reload the model/,
    );
    [m, n].forEach((x) => x.dispose());
    await removeCheckpoint(dir);
  });

  Deno.test(`SFT (${stateLocation}) stops when the optimiser state overflows though weights and loss are finite`, async () => {
    const dir = await Deno.makeTempDir();
    const m = await tinyModel("gpt2", 9);
    const enc = encodeExamples(m, task(32, 4));
    const pad = m.tokenizer.padId ?? 0;
    // A loss scaled by 1e25 with clipping off: its gradient squared overflows AdamW's v.
    const run = () =>
      runSupervised(m, {
        name: "SFT",
        steps: 3,
        examples: (s) => [0, 1, 2, 3].map((k) => (4 * s + k) % enc.length),
        collate: (idx) =>
          padBatch(idx.map((i) => enc[i].seq), idx.map((i) => enc[i].lossFrom), pad),
        loss: (b) => tf.mul(lmLoss(m.config, m.params, b), 1e25) as tf.Scalar,
        stateOptions: {},
      }, { checkpointDir: dir, checkpointEvery: 1, clip: 0, stateLocation, lr: 1e-3 });
    await assert.rejects(
      run,
      /stopped at step 1: after the update, the AdamW second moment of 'wte.weight' is not finite/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing saved");
    m.dispose();
    await Deno.remove(dir, { recursive: true });
  });
}

/** FNV-1a over the bytes of every weight, in the model's order. */
async function digest(m: Model): Promise<string> {
  let h = 0x811c9dc5;
  for (const v of m.params.values()) {
    const bytes = new Uint8Array(((await v.data()) as Float32Array).slice().buffer);
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return h.toString(16);
}

// The check's claim, shown in one process: the same seeded runs with AdamW.nonFinite made a
// no-op (as before the check existed) give the same losses and weights bit for bit. (Golden
// values recorded on one machine need not hold on another: OpenBLAS and XNNPACK pick their
// kernels by CPU; this test failed on an AMD EPYC with the values of an earlier machine.)
Deno.test("the finiteness check changes no number: seeded runs stay bit-identical", async () => {
  const data = task(64, 5);
  const run = async (stateLocation: "heap" | "host") => {
    const a = await tinyModel("gpt2", 12);
    const r = await trainSft(a, data, { steps: 5, batchSize: 8, lr: 3e-3, seed: 1, stateLocation });
    const got = `${r.history.map((x) => x.loss).join(",")} ${await digest(a)}`;
    a.dispose();
    return got;
  };
  for (const stateLocation of ["heap", "host"] as const) {
    const checked = await run(stateLocation);
    const orig = AdamW.prototype.nonFinite;
    AdamW.prototype.nonFinite = () => Promise.resolve(undefined);
    let unchecked: string;
    try {
      unchecked = await run(stateLocation);
    } finally {
      AdamW.prototype.nonFinite = orig;
    }
    console.log(`  ${stateLocation}: ${checked}`);
    assert.equal(checked, unchecked, stateLocation);
    assert.notEqual(checked.split(" ")[0].split(",")[0], checked.split(" ")[0].split(",")[4]);
  }
});

/** Runs `fn` with AdamW.step poisoning the first variable of every call matching `which`. */
async function withPoisonedStep<T>(
  which: (vars: tf.Variable[]) => boolean,
  what: "weights" | "state",
  fn: () => Promise<T>,
): Promise<T> {
  const orig = AdamW.prototype.step;
  AdamW.prototype.step = function (this: AdamW, vars, grads, lrScale, decay) {
    orig.call(this, vars, grads, lrScale, decay);
    if (!which(vars)) return;
    if (what === "weights") {
      tf.tidy(() => vars[0].assign(tf.fill(vars[0].shape, NaN)));
    } else {
      const m = (this as unknown as { m: tf.Variable[] }).m;
      tf.tidy(() => m[0].assign(tf.fill(m[0].shape, Infinity)));
    }
  };
  try {
    return await fn();
  } finally {
    AdamW.prototype.step = orig;
  }
}

const ONE: Reward = { name: "len", weight: 1, fn: (ctx) => ctx.completionIds.length / 4 };

for (const algorithm of ["grpo", "ppo"] as const) {
  const cases = algorithm === "ppo"
    ? [["policy", "weights"], ["value head", "weights"], ["value head", "state"]] as const
    : [["policy", "weights"], ["policy", "state"]] as const;
  for (const [target, what] of cases) {
    Deno.test(`RL ${algorithm} stops when the update leaves non-finite ${target} ${what}; the last good checkpoint stays`, async () => {
      const dir = await Deno.makeTempDir();
      const m = await tinyModel("gpt2", 13);
      const opts = {
        algorithm,
        prompts: numberPrompts(),
        rewards: [ONE],
        steps: 4,
        promptsPerStep: 2,
        groupSize: 2,
        maxNewTokens: 3,
        checkpointDir: dir,
        checkpointEvery: 1,
        lr: 1e-3,
      };
      await trainRL(m, { ...opts, stopAfter: 2 });
      const good = await weightsOf(m);
      const isHead = (vars: tf.Variable[]) => vars.length === 2 && vars[0].shape[1] === 1;
      await assert.rejects(
        () =>
          withPoisonedStep(
            (vars) => (target === "policy") !== isHead(vars),
            what,
            () => trainRL(m, { ...opts, resume: true }),
          ),
        what === "weights"
          ? /RL stopped at step 3: after the update, the weights of '.*' are not finite.*restored from the last good checkpoint \(step 2\) in /
          : /RL stopped at step 3: before saving, the AdamW first moment of '.*' is not finite.*restored from the last good checkpoint \(step 2\) in /,
      );
      assert.equal(await nonFiniteOnDisk(dir), 0);
      const st = JSON.parse(await Deno.readTextFile(join(dir, "trainer_state.json")));
      assert.equal(st.step, 2);
      assert.deepEqual(await weightsOf(m), good);
      m.dispose();
      await Deno.remove(dir, { recursive: true });
    });
  }
}

/** A llama model (untied embeddings) whose embedding row of token 30 (never used) is NaN. */
async function poisonedRowModel(): Promise<Model> {
  const m = await tinyModel("llama", 8);
  const e = m.params.get("model.embed_tokens.weight")!;
  const [v, d] = e.shape as [number, number];
  tf.tidy(() => {
    const rows = tf.range(0, v).reshape([-1, 1]);
    e.assign(tf.where(tf.equal(rows, 30).tile([1, d]), tf.fill(e.shape, NaN), e));
  });
  return m;
}

Deno.test("data-parallel SFT checks every replica after each update; the model keeps its last good weights", async () => {
  await using pool = await WorkerPool.start({ workers: 1, blas: false });
  const dir = await Deno.makeTempDir();
  const m = await poisonedRowModel();
  const before = await weightsOf(m);
  const opts = { steps: 4, batchSize: 8, lr: 1e-3, workers: pool, checkpointDir: dir };
  await assert.rejects(() => trainSft(m, task(32, 1), { ...opts, lr: NaN }), /SFT: lr is NaN/);
  await assert.rejects(
    () => trainSft(m, task(32, 1), { ...opts, checkpointEvery: 1 }),
    /SFT stopped at step 1: after the update, the weights of 'model.embed_tokens.weight' are not finite .*Nothing was saved; the model keeps the weights it had before this run/,
  );
  assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing saved");
  assert.deepEqual(await weightsOf(m), before, "the replicas' weights were not pulled");
  assert.ok(!pool.holds(m), "the pool ships the weights again on its next use");
  m.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SFT checks every value it saves: a moment poisoned outside the update is never written", async () => {
  const dir = await Deno.makeTempDir();
  const m = await tinyModel("gpt2", 14);
  const opts = { steps: 6, batchSize: 8, lr: 1e-3, checkpointDir: dir, checkpointEvery: 2 };
  let calls = 0;
  await assert.rejects(
    () => withPoisonedStep(() => ++calls === 4, "state", () => trainSft(m, task(64, 6), opts)),
    /SFT stopped at step 4: before saving, the AdamW first moment of '.*' is not finite.*Nothing was saved; the model was restored from the last good checkpoint \(step 2\) in /,
  );
  assert.equal(await nonFiniteOnDisk(dir), 0);
  assert.equal(JSON.parse(await Deno.readTextFile(join(dir, "trainer_state.json"))).step, 2);
  m.dispose();
  await removeCheckpoint(dir);
});
