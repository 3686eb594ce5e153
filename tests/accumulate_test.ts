import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { reverseTask, tinyModel, useTestBackend } from "./_helpers.ts";
import { lmLoss, padBatch, type TokenBatch } from "../lib/optim/loss.ts";
import { AdamW, type StateLocation } from "../lib/optim/adamw.ts";
import { chunk, GradientAccumulator, targetTokens } from "../lib/optim/accumulate.ts";
import { trainSft } from "../lib/train/sft.ts";
import { padMasked, tokenwiseLoss, trainTokenwise } from "../lib/train/tokenwise.ts";
import { tokenLogprobs } from "../lib/optim/loss.ts";
import { makeRng } from "../lib/data/rng.ts";
import type { Arch } from "../lib/model/config.ts";
import type { Model } from "../lib/model/model.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const task = (n: number, seed: number) => reverseTask(n, seed, 5);

/** Five sequences of different lengths and loss starts (so micro-batches differ in tokens). */
const SEQS = [[1, 5, 9, 2, 7, 3, 8], [4, 4, 8], [6, 2, 3, 9, 1], [7, 7, 1, 2, 3, 4, 5, 6, 9], [
  3,
  2,
]];
const FROM = [2, 1, 3, 5, 1];

/** The micro-batches of SEQS in chunks of `size`, each padded to its own longest sequence. */
function parts(size: number): { batch: TokenBatch; weight: number }[] {
  return chunk(SEQS.map((_, i) => i), size).map((idx) => {
    const batch = padBatch(idx.map((i) => SEQS[i]), idx.map((i) => FROM[i]));
    return { batch, weight: targetTokens(batch) };
  });
}

function flat(xs: Float32Array[]): Float32Array {
  const out = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
  let o = 0;
  for (const x of xs) (out.set(x, o), o += x.length);
  return out;
}

/** max |a - b| / max |b|, and max |a - b|. */
function relDiff(a: Float32Array, b: Float32Array): { rel: number; abs: number } {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return { rel: d / s, abs: d };
}

async function fullGrads(m: Model, loss: () => tf.Scalar): Promise<Float32Array[]> {
  const vars = [...m.params.values()];
  const { value, grads } = tf.variableGrads(loss, vars);
  const out = await Promise.all(
    vars.map(async (v) => (await grads[v.name].data()) as Float32Array),
  );
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

for (const arch of ["gpt2", "llama"] as Arch[]) {
  Deno.test(`${arch}: gradients accumulated over micro-batches equal the full batch's`, async () => {
    const m = await tinyModel(arch, 11);
    const vars = [...m.params.values()];
    const full = padBatch(SEQS, FROM);
    const ref = flat(await fullGrads(m, () => lmLoss(m.config, m.params, full)));
    const fullLoss = tf.tidy(() => lmLoss(m.config, m.params, full).dataSync()[0]);
    const before = tf.memory().numTensors;
    for (const where of ["heap", "host"] as StateLocation[]) {
      const acc = new GradientAccumulator(vars, where);
      for (const size of [1, 2, 3]) {
        const loss = await acc.accumulate(parts(size), (b) => lmLoss(m.config, m.params, b));
        const { rel, abs } = relDiff(flat(await acc.values()), ref);
        console.log(
          `  ${arch} ${where} micro-batch ${size}: max |grad diff| ${abs.toExponential(2)} ` +
            `(relative ${rel.toExponential(2)}), loss diff ${
              Math.abs(loss - fullLoss).toExponential(2)
            }`,
        );
        assert.ok(rel < 2e-6, `relative gradient difference ${rel}`);
        assert.ok(
          Math.abs(loss - fullLoss) < 1e-6 * Math.abs(fullLoss),
          `loss ${loss} vs ${fullLoss}`,
        );
      }
      acc.dispose();
    }
    assert.equal(tf.memory().numTensors, before, "accumulation leaked tensors");
    m.dispose();
  });
}

Deno.test("the token-wise loss accumulates to its full-batch gradient too", async () => {
  const m = await tinyModel("llama", 12);
  const r = await tinyModel("llama", 13); // a different reference, so log-ratios are not 0
  const enc = SEQS.map((seq, i) => ({
    seq,
    mask: seq.map((_, j) => (j >= FROM[i] ? 1 : 0)),
    respPos: seq.map((_, j) => Math.max(0, j - FROM[i] + 1)),
  }));
  const loss = (b: ReturnType<typeof padMasked>) => {
    const lp = tokenLogprobs(m.config, m.params, b);
    const refLp = tokenLogprobs(r.config, r.params, b);
    return tokenwiseLoss(
      lp,
      refLp,
      b.lossMask.map((x) => x.slice(1)),
      b.respPos.map((x) => x.slice(1)),
    );
  };
  const ref = flat(await fullGrads(m, () => loss(padMasked(enc))));
  const acc = new GradientAccumulator([...m.params.values()], "host");
  const micro = chunk(enc, 2).map((e) => {
    const batch = padMasked(e);
    return { batch, weight: targetTokens(batch) };
  });
  await acc.accumulate(micro, loss);
  const { rel, abs } = relDiff(flat(await acc.values()), ref);
  console.log(
    `  token-wise, micro-batch 2: max |grad diff| ${abs.toExponential(2)} (rel ${
      rel.toExponential(2)
    })`,
  );
  assert.ok(rel < 2e-6, `relative gradient difference ${rel}`);
  acc.dispose();
  m.dispose();
  r.dispose();
});

async function weights(m: Model): Promise<Float32Array> {
  return flat(
    await Promise.all([...m.params.values()].map(async (v) => (await v.data()) as Float32Array)),
  );
}

Deno.test("SFT with micro-batches (heap or host state) follows the full-batch run", async () => {
  const data = task(64, 3);
  const opts = { steps: 5, batchSize: 8, lr: 3e-3, seed: 2 };
  const a = await tinyModel("gpt2", 14);
  const full = await trainSft(a, data, opts);
  const wa = await weights(a);
  for (const [microBatch, stateLocation] of [[3, "heap"], [1, "host"], [8, "host"]] as const) {
    const b = await tinyModel("gpt2", 14);
    const before = tf.memory().numTensors;
    const r = await trainSft(b, data, { ...opts, microBatch, stateLocation });
    assert.equal(tf.memory().numTensors, before, "trainSft with micro-batches leaked tensors");
    const dl = Math.max(...r.history.map((row, i) => Math.abs(row.loss - full.history[i].loss)));
    const { abs } = relDiff(await weights(b), wa);
    console.log(
      `  micro-batch ${microBatch}, ${stateLocation} state: max |loss diff| ${
        dl.toExponential(2)
      }, ` +
        `max |weight diff| after ${opts.steps} steps ${abs.toExponential(2)}`,
    );
    assert.ok(dl < 1e-5, `loss trajectories differ by ${dl}`);
    assert.ok(abs < 1e-5, `weights differ by ${abs}`);
    assert.equal(r.history.at(-1)!.tokens, full.history.at(-1)!.tokens);
    b.dispose();
  }
  a.dispose();
});

Deno.test("token-wise training with micro-batches follows the full-batch run", async () => {
  const data = task(48, 4);
  const opts = { steps: 4, batchSize: 8, lr: 3e-3, seed: 1 };
  const a = await tinyModel("llama", 15);
  const full = await trainTokenwise(a, data, opts);
  const b = await tinyModel("llama", 15);
  const r = await trainTokenwise(b, data, { ...opts, microBatch: 3, stateLocation: "host" });
  const dl = Math.max(...r.history.map((row, i) => Math.abs(row.loss - full.history[i].loss)));
  const { abs } = relDiff(await weights(b), await weights(a));
  console.log(
    `  token-wise micro-batch 3 host: max |loss diff| ${dl.toExponential(2)}, |weight diff| ${
      abs.toExponential(2)
    }`,
  );
  assert.ok(dl < 1e-5 && abs < 1e-5, `loss diff ${dl}, weight diff ${abs}`);
  a.dispose();
  b.dispose();
});

Deno.test("host-state AdamW matches heap AdamW, and its state round-trips exactly", async () => {
  const rng = makeRng(7);
  const shapes = [[6, 5], [5], [3, 4]];
  const init = shapes.map((s) =>
    Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rng.normal())
  );
  const grads = Array.from(
    { length: 8 },
    () => init.map((x) => Float32Array.from(x, () => rng.normal())),
  );
  const decay = [true, false, true];
  const make = () => shapes.map((s, i) => tf.tidy(() => tf.variable(tf.tensor(init[i], s))));
  const run = async (
    where: StateLocation,
    vars: tf.Variable[],
    opt: AdamW,
    from: number,
    to: number,
  ) => {
    for (let k = from; k < to; k++) {
      if (where === "host") await opt.stepFromHost(vars, grads[k], 0.5 + k / 10, decay, 0.9);
      else {
        const g = grads[k].map((x, i) => tf.tidy(() => tf.mul(tf.tensor(x, shapes[i]), 0.9)));
        opt.step(vars, g, 0.5 + k / 10, decay);
        tf.dispose(g);
      }
    }
  };
  const before = tf.memory().numTensors;
  const heapVars = make();
  const heap = new AdamW({ lr: 1e-2, weightDecay: 0.1 });
  await run("heap", heapVars, heap, 0, 8);
  const hostVars = make();
  const host = new AdamW({ lr: 1e-2, weightDecay: 0.1, stateLocation: "host" });
  await run("host", hostVars, host, 0, 8);
  const wd = relDiff(
    flat(hostVars.map((v) => v.dataSync() as Float32Array)),
    flat(heapVars.map((v) => v.dataSync() as Float32Array)),
  );
  const [sh, sg] = [await heap.getState(), await host.getState()];
  const md = relDiff(flat(sg.m), flat(sh.m));
  const vd = relDiff(flat(sg.v), flat(sh.v));
  console.log(
    `  host vs heap AdamW over 8 steps: max |weight diff| ${wd.abs.toExponential(2)}, ` +
      `|m diff| ${md.abs.toExponential(2)}, |v diff| ${vd.abs.toExponential(2)}`,
  );
  assert.ok(wd.abs < 1e-6 && md.rel < 1e-6 && vd.rel < 1e-6, JSON.stringify({ wd, md, vd }));
  assert.equal(sg.step, 8);
  // The other two entry points: heap AdamW fed host gradients (uploaded, then the same kernels:
  // bit for bit), and host AdamW fed tensors (read with dataSync).
  const viaHostVars = make();
  const viaHost = new AdamW({ lr: 1e-2, weightDecay: 0.1 });
  await run("host", viaHostVars, viaHost, 0, 8);
  viaHostVars.forEach((v, i) => assert.deepEqual(v.dataSync(), heapVars[i].dataSync()));
  const tensorFedVars = make();
  const tensorFed = new AdamW({ lr: 1e-2, weightDecay: 0.1, stateLocation: "host" });
  await run("heap", tensorFedVars, tensorFed, 0, 8);
  const td = relDiff(
    flat(tensorFedVars.map((v) => v.dataSync() as Float32Array)),
    flat(heapVars.map((v) => v.dataSync() as Float32Array)),
  );
  assert.ok(td.abs < 1e-6, `host AdamW fed tensors differs by ${td.abs}`);
  [viaHost, tensorFed].forEach((o) => o.dispose());
  tf.dispose([...viaHostVars, ...tensorFedVars]);

  // Exact resume: 4 steps, save, restore into a fresh optimiser (host from host and host from
  // heap state), 4 more, must equal the uninterrupted host run bit for bit.
  const resumedVars = make();
  const first = new AdamW({ lr: 1e-2, weightDecay: 0.1, stateLocation: "host" });
  await run("host", resumedVars, first, 0, 4);
  const saved = await first.getState();
  first.dispose();
  const second = new AdamW({ lr: 1e-2, weightDecay: 0.1, stateLocation: "host" });
  second.setState(resumedVars, saved);
  saved.m[0][0] = 123; // the optimiser holds copies
  await run("host", resumedVars, second, 4, 8);
  for (let i = 0; i < shapes.length; i++) {
    assert.deepEqual(
      resumedVars[i].dataSync(),
      hostVars[i].dataSync(),
      `variable ${i} after resume`,
    );
  }
  assert.deepEqual(await second.getState(), sg);

  // A heap state restores on the host (checkpoints are interchangeable).
  const cross = new AdamW({ lr: 1e-2, weightDecay: 0.1, stateLocation: "host" });
  cross.setState(heapVars, sh);
  assert.deepEqual(await cross.getState(), sh);
  assert.throws(() => cross.setState(heapVars.slice(1), sh), /holds 3 moments for 2 variables/);
  [heap, host, second, cross].forEach((o) => o.dispose());
  tf.dispose([...heapVars, ...hostVars, ...resumedVars]);
  assert.equal(tf.memory().numTensors, before, "AdamW leaked tensors");
});

Deno.test("an accumulated step leaks no tensors (heap and host)", async () => {
  const m = await tinyModel("gpt2", 16);
  const vars = [...m.params.values()];
  for (const where of ["heap", "host"] as StateLocation[]) {
    const opt = new AdamW({ lr: 1e-3, stateLocation: where });
    const acc = new GradientAccumulator(vars, where);
    const step = async () => {
      await acc.accumulate(parts(2), (b) => lmLoss(m.config, m.params, b));
      return await acc.apply(opt, { clip: 0.5 });
    };
    await step(); // the heap optimiser allocates its moments on the first step
    const before = tf.memory().numTensors;
    for (let k = 0; k < 3; k++) await step();
    assert.equal(tf.memory().numTensors, before, `${where}: tensor count grew across steps`);
    acc.dispose();
    opt.dispose();
  }
  m.dispose();
});

Deno.test("a non-finite micro-batch loss applies no update", async () => {
  const m = await tinyModel("gpt2", 17);
  const vars = [...m.params.values()];
  const w0 = await weights(m);
  const ps = parts(2);
  const before = tf.memory().numTensors;
  for (const where of ["heap", "host"] as StateLocation[]) {
    const opt = new AdamW({ lr: 1e-2, stateLocation: where });
    const acc = new GradientAccumulator(vars, where);
    // Only the second micro-batch is poisoned: the first one's gradient must not be applied.
    const loss = await acc.accumulate(ps, (b) => {
      const l = lmLoss(m.config, m.params, b);
      return b === ps[1].batch ? tf.mul(l, NaN) as tf.Scalar : l;
    });
    assert.ok(Number.isNaN(loss));
    await assert.rejects(() => acc.apply(opt), /none are held/);
    assert.equal(opt.t, 0);
    acc.dispose();
    opt.dispose();
  }
  assert.deepEqual(await weights(m), w0);
  assert.equal(tf.memory().numTensors, before, "the NaN path leaked tensors");

  // Through trainSft: a NaN weight stops the run with the usual message, weights untouched.
  const w = m.params.get("h.0.mlp.c_fc.weight")!;
  w.assign(tf.fill(w.shape, NaN));
  const poisoned = await weights(m);
  await assert.rejects(
    () =>
      trainSft(m, task(32, 5), { steps: 2, batchSize: 8, microBatch: 2, stateLocation: "host" }),
    /loss is NaN.*No update was applied/,
  );
  assert.deepEqual(await weights(m), poisoned);
  m.dispose();
});

Deno.test("SFT with micro-batches and host state resumes exactly", async () => {
  const dir = await Deno.makeTempDir();
  const data = task(96, 6);
  const opts = {
    steps: 8,
    batchSize: 8,
    lr: 3e-3,
    seed: 3,
    checkpointEvery: 4,
    microBatch: 3,
    stateLocation: "host" as const,
  };
  const a = await tinyModel("llama", 18);
  const full = await trainSft(a, data, opts);
  const b = await tinyModel("llama", 18);
  await trainSft(b, data, { ...opts, checkpointDir: dir, stopAfter: 4 });
  const c = await tinyModel("llama", 18);
  const resumed = await trainSft(c, data, { ...opts, checkpointDir: dir, resume: true });
  assert.deepEqual(resumed.history.map((r) => r.loss), full.history.map((r) => r.loss));
  assert.deepEqual(await weights(c), await weights(a));
  [a, b, c].forEach((m) => m.dispose());
  await removeCheckpoint(dir);
});

Deno.test("microBatch must be a whole number >= 1", async () => {
  const m = await tinyModel("gpt2", 19);
  await assert.rejects(
    () => trainSft(m, task(16, 1), { steps: 1, batchSize: 8, microBatch: 0 }),
    /microBatch must be a whole number >= 1, got 0/,
  );
  m.dispose();
});
