import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import { WorkerError, WorkerPool } from "../lib/parallel/pool.ts";
import { forwardOnWorkers, generateOnWorkers } from "../lib/parallel/generate.ts";
import type { GenerateOptions, GenerateResult } from "../lib/model/generate.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import { type SftExample, trainSft } from "../lib/train/sft.ts";
import { evalLoss } from "../lib/train/sft.ts";
import { evalLossOnWorkers, shardRoundRobin } from "../lib/parallel/sft.ts";
import type { Arch } from "../lib/model/config.ts";
import type { Model } from "../lib/model/model.ts";
import { trainRL } from "../lib/train/rl/train.ts";
import type { Reward } from "../lib/train/rewards.ts";
import type { PromptRow } from "../lib/data/schema.ts";

import { numberPrompts } from "./_rl_fixtures.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";

await useTestBackend();

function sameGeneration(a: GenerateResult, b: GenerateResult, what: string): number {
  assert.deepEqual(b.promptIds, a.promptIds, `${what}: prompt ids`);
  assert.deepEqual(b.tokenIds, a.tokenIds, `${what}: token ids`);
  assert.deepEqual(b.forced, a.forced, `${what}: forced flags`);
  assert.deepEqual(b.text, a.text, `${what}: text`);
  let worst = maxAbsDiff(a.logprobs, b.logprobs);
  assert.deepEqual(Object.keys(b.hiddenStates ?? {}), Object.keys(a.hiddenStates ?? {}));
  for (const [l, rows] of Object.entries(a.hiddenStates ?? {})) {
    rows.forEach((r, i) => {
      worst = Math.max(worst, maxAbsDiff(Array.from(r), Array.from(b.hiddenStates![+l][i])));
    });
  }
  assert.ok(worst < 1e-5, `${what}: logprobs / hidden states differ by ${worst}`);
  return worst;
}

/** Ragged prompts, one of them longer than the rest, for a vocabulary of 40. */
const PROMPTS = [
  "1 2 3",
  "4 5",
  "6 7 8 9 10 11 12",
  "3",
  "11 12 13",
  "20 21 22 23",
  "9 9",
  "30 31 32 33 34 35",
  "5 6 7",
];

function sftData(n: number, seed: number): SftExample[] {
  return Array.from({ length: n }, (_, i) => {
    const len = 2 + ((i * 7 + seed) % 5);
    const p = Array.from({ length: len }, (_, j) => 1 + ((i * 3 + j * 5 + seed) % 37));
    const r = Array.from({ length: 2 + (i % 4) }, (_, j) => 1 + ((i + j * 11) % 37));
    return { prompt: p.join(" "), response: r.join(" ") };
  });
}

async function paramsOf(m: Model): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, v] of m.params) out.set(n, (await v.data()) as Float32Array);
  return out;
}

Deno.test("worker pool: generation, forward, collection and training match one process", async (t) => {
  const pool = await WorkerPool.start({ workers: 2 });
  try {
    assert.equal(pool.size, 2);
    assert.equal(pool.backends.length, 2);
    console.log(`  ${pool} (${pool.backends[0].reason})`);

    for (const arch of ["gpt2", "llama"] as Arch[]) {
      await t.step(`${arch}: generation equals single-process token for token`, async () => {
        const m = await tinyModel(arch, 5);
        try {
          const force: GenerateOptions["force"] = [];
          force[1] = [{ step: 0, tokens: [7, 8] }];
          force[6] = [{ step: 3, tokens: [2] }, { step: 5, tokens: [39, 4] }];
          const cases: [string, GenerateOptions][] = [
            ["greedy", { prompts: PROMPTS, maxNewTokens: 10 }],
            [
              "sampled + forced + hidden",
              {
                prompts: PROMPTS,
                maxNewTokens: 9,
                temperature: 0.9,
                topK: 20,
                topP: 0.95,
                seed: 11,
                force,
                returnHiddenStates: [0, -1],
              },
            ],
            ["small batches", {
              prompts: PROMPTS,
              maxNewTokens: 6,
              temperature: 1,
              seed: 2,
              batchSize: 2,
            }],
          ];
          for (const [name, opts] of cases) {
            const single = await m.generate(opts);
            const par = await m.generate({ ...opts, workers: pool });
            const worst = sameGeneration(single, par, `${arch} ${name}`);
            console.log(
              `  ${arch} ${name}: identical tokens; max |diff| logprobs/hidden ${
                worst.toExponential(2)
              }`,
            );
          }
          // Attached: model.workers routes every call; seeds stay per global row.
          const progress: number[] = [];
          m.workers = pool;
          const att = await m.generate({
            inputIds: PROMPTS.map((p) => p.split(" ").map(Number)),
            maxNewTokens: 5,
            temperature: 0.7,
            seed: 4,
            onProgress: (done) => progress.push(done),
          });
          m.workers = undefined;
          const ref = await m.generate({
            inputIds: PROMPTS.map((p) => p.split(" ").map(Number)),
            maxNewTokens: 5,
            temperature: 0.7,
            seed: 4,
          });
          sameGeneration(ref, att, `${arch} attached`);
          assert.equal(progress.at(-1), PROMPTS.length);
        } finally {
          m.dispose();
        }
      });
    }

    await t.step("weights re-ship after the model changes; interventions are refused", async () => {
      const m = await tinyModel("gpt2", 6);
      try {
        const opts: GenerateOptions = { prompts: PROMPTS.slice(0, 4), maxNewTokens: 6 };
        await generateOnWorkers(pool, m, opts);
        assert.ok(pool.holds(m));
        assert.equal(await pool.sync(m), 0, "an unchanged model is not shipped again");
        const w = m.params.get("wte.weight")!;
        w.assign(tf.tidy(() => tf.mul(w, 3)));
        assert.ok(!pool.holds(m), "assign must be noticed");
        assert.equal(await pool.sync(m), 1, "only the changed parameter is shipped");
        const other = await tinyModel("gpt2", 6);
        assert.equal(await pool.sync(other), other.params.size, "another model: all of it");
        other.dispose();
        const single = await m.generate(opts);
        sameGeneration(single, await generateOnWorkers(pool, m, opts), "after assign");
        // Two models at once: each call syncs and runs in its own section.
        const twin = await tinyModel("llama", 3);
        const [x, y] = await Promise.all([
          generateOnWorkers(pool, m, opts),
          generateOnWorkers(pool, twin, opts),
        ]);
        sameGeneration(single, x, "concurrent, first model");
        sameGeneration(await twin.generate(opts), y, "concurrent, second model");
        twin.dispose();
        const iv = [{ layer: 1, fn: (h: tf.Tensor3D) => tf.mul(h, 2) as tf.Tensor3D }];
        await assert.rejects(
          () => m.generate({ ...opts, interventions: iv, workers: pool }),
          /interventions.*cannot be sent to worker threads/,
        );
        // Attached pools leave calls with interventions on this thread.
        m.workers = pool;
        const local = await m.generate({ ...opts, interventions: iv });
        m.workers = undefined;
        assert.deepEqual(
          local.tokenIds,
          (await m.generate({ ...opts, interventions: iv })).tokenIds,
        );
      } finally {
        m.dispose();
      }
    });

    await t.step("forward on workers equals one forward pass", async () => {
      const m = await tinyModel("llama", 8);
      try {
        const ids = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]];
        const f = m.forward(ids, { hiddenStates: [1] });
        const par = await forwardOnWorkers(pool, m, ids, { hiddenStates: [1] });
        const dl = maxAbsDiff(Array.from(await f.logits!.data()), Array.from(par.logits!));
        const dh = maxAbsDiff(
          Array.from(await f.hiddenStates[1].data()),
          Array.from(par.hiddenStates[1]),
        );
        tf.dispose([f.logits!, f.hiddenStates[1]]);
        console.log(
          `  forward: max |diff| logits ${dl.toExponential(2)}, hidden ${dh.toExponential(2)}`,
        );
        assert.ok(dl < 1e-5 && dh < 1e-5);
      } finally {
        m.dispose();
      }
    });

    await t.step("activation collection equals single-process within 1e-5", async () => {
      const m = await tinyModel("gpt2", 7);
      try {
        const rows = PROMPTS.map((p, i) => ({
          prompt: p,
          trace: i % 3 === 2 ? "" : PROMPTS[(i + 4) % PROMPTS.length],
          id: `r${i}`,
        }));
        for (
          const opts of [
            { pooling: "mean" as const, batchSize: 2 },
            { pooling: "last" as const, layers: [1, -1] },
            { pooling: "none" as const, batchSize: 3, maxLength: 7 },
          ]
        ) {
          const a = await collectActivations(m, rows, { ...opts, progress: "silent" });
          const b = await collectActivations(m, rows, {
            ...opts,
            progress: "silent",
            workers: pool,
          });
          assert.deepEqual(b.layers, a.layers);
          assert.deepEqual(b.meta, a.meta);
          assert.deepEqual(b.tokenCounts, a.tokenCounts);
          assert.deepEqual(b.responseStart, a.responseStart);
          assert.deepEqual(b.truncated, a.truncated);
          let worst = 0;
          for (const l of a.layers) {
            worst = Math.max(
              worst,
              maxAbsDiff(Array.from(a.layer(l).data), Array.from(b.layer(l).data)),
            );
            if (a.tokens) {
              a.layerTokens(l).forEach((x, i) => {
                assert.equal(b.layerTokens(l)[i].rows, x.rows);
                worst = Math.max(
                  worst,
                  maxAbsDiff(Array.from(x.data), Array.from(b.layerTokens(l)[i].data)),
                );
              });
            }
          }
          console.log(`  collect ${opts.pooling}: max |diff| ${worst.toExponential(2)}`);
          assert.ok(worst < 1e-5, `collect ${opts.pooling} differs by ${worst}`);
        }
      } finally {
        m.dispose();
      }
    });

    for (const arch of ["gpt2", "llama"] as Arch[]) {
      await t.step(`${arch}: 2-worker training steps equal single-process steps`, async () => {
        const a = await tinyModel(arch, 9);
        const b = await tinyModel(arch, 9);
        try {
          const data = sftData(24, 1);
          const val = sftData(10, 5);
          const opts = { steps: 5, batchSize: 8, lr: 3e-3, seed: 3, validation: val, evalEvery: 5 };
          const single = await trainSft(a, data, { ...opts, label: "single" });
          const samples: Promise<unknown>[] = [];
          const par = await trainSft(b, data, {
            ...opts,
            label: "2 workers",
            workers: pool,
            // Pool work from inside training runs in its section (no deadlock).
            onStep: (row) => {
              if (row.step === 2) {
                samples.push(evalLossOnWorkers(pool, b, val.slice(0, 2)));
              }
            },
          });
          assert.equal(samples.length, 1);
          await Promise.all(samples);
          const dLoss = maxAbsDiff(
            single.history.map((r) => r.loss),
            par.history.map((r) => r.loss),
          );
          const dNorm = maxAbsDiff(
            single.history.map((r) => r.gradNorm),
            par.history.map((r) => r.gradNorm),
          );
          const dVal = Math.abs(single.history.at(-1)!.valLoss! - par.history.at(-1)!.valLoss!);
          assert.deepEqual(par.history.map((r) => r.tokens), single.history.map((r) => r.tokens));
          const pa = await paramsOf(a), pb = await paramsOf(b);
          let dW = 0;
          for (const [n, x] of pa) {
            dW = Math.max(dW, maxAbsDiff(Array.from(x), Array.from(pb.get(n)!)));
          }
          console.log(
            `  ${arch} 5 steps: max |diff| loss ${dLoss.toExponential(2)}, grad norm ${
              dNorm.toExponential(2)
            }, val loss ${dVal.toExponential(2)}, weights ${dW.toExponential(2)}`,
          );
          assert.ok(dLoss < 1e-5, `loss differs by ${dLoss}`);
          assert.ok(dNorm < 1e-4, `grad norm differs by ${dNorm}`);
          assert.ok(dVal < 1e-5, `validation loss differs by ${dVal}`);
          assert.ok(dW < 1e-4, `weights differ by ${dW}`);
          // The trained model's replicas are the pool's: no re-shipping needed.
          assert.ok(pool.holds(b));
          const ev = await evalLossOnWorkers(pool, b, val);
          assert.ok(Math.abs(ev - evalLoss(b, val)) < 1e-5);
        } finally {
          a.dispose();
          b.dispose();
        }
      });
    }

    await t.step("micro-batched shards and checkpoints resume in one process", async () => {
      const a = await tinyModel("gpt2", 10);
      const b = await tinyModel("gpt2", 10);
      const dir = await Deno.makeTempDir();
      try {
        const data = sftData(16, 2);
        const opts = { steps: 4, batchSize: 8, lr: 2e-3, seed: 1, label: "ckpt" };
        const full = await trainSft(a, data, opts);
        await trainSft(b, data, {
          ...opts,
          workers: pool,
          microBatch: 3,
          checkpointDir: dir,
          checkpointEvery: 2,
          stopAfter: 2,
        });
        const rest = await trainSft(b, data, { ...opts, checkpointDir: dir, resume: true });
        const dLoss = maxAbsDiff(full.history.map((r) => r.loss), rest.history.map((r) => r.loss));
        const pa = await paramsOf(a), pb = await paramsOf(b);
        let dW = 0;
        for (const [n, x] of pa) {
          dW = Math.max(dW, maxAbsDiff(Array.from(x), Array.from(pb.get(n)!)));
        }
        console.log(
          `  2 parallel (micro-batched) + 2 resumed steps: max |diff| loss ${
            dLoss.toExponential(2)
          }, weights ${dW.toExponential(2)}`,
        );
        assert.equal(rest.history.length, 4);
        assert.ok(dLoss < 1e-5 && dW < 1e-4);
      } finally {
        a.dispose();
        b.dispose();
        await removeCheckpoint(dir);
      }
    });

    await t.step("host-side optimiser state on the workers matches the heap path", async () => {
      const a = await tinyModel("llama", 12);
      const b = await tinyModel("llama", 12);
      try {
        const data = sftData(12, 4);
        const opts = { steps: 3, batchSize: 6, lr: 2e-3, seed: 2, label: "host" };
        const heap = await trainSft(a, data, opts);
        const host = await trainSft(b, data, { ...opts, workers: pool, stateLocation: "host" });
        const dLoss = maxAbsDiff(heap.history.map((r) => r.loss), host.history.map((r) => r.loss));
        const pa = await paramsOf(a), pb = await paramsOf(b);
        let dW = 0;
        for (const [n, x] of pa) {
          dW = Math.max(dW, maxAbsDiff(Array.from(x), Array.from(pb.get(n)!)));
        }
        console.log(
          `  host state, 3 steps: max |diff| loss ${dLoss.toExponential(2)}, weights ${
            dW.toExponential(2)
          }`,
        );
        assert.ok(dLoss < 1e-5 && dW < 1e-4);
      } finally {
        a.dispose();
        b.dispose();
      }
    });
    await t.step("RL rollouts on an attached pool equal single-process RL", async () => {
      const rows: PromptRow[] = numberPrompts();
      const reward: Reward = {
        name: "len",
        weight: 1,
        fn: (ctx) => ctx.completionIds.length / 4,
      };
      const run = async (attach: boolean) => {
        const m = await tinyModel("gpt2", 13);
        if (attach) m.workers = pool;
        const rollouts: string[][] = [];
        const log = await trainRL(m, {
          prompts: rows,
          steps: 3,
          promptsPerStep: 2,
          groupSize: 4,
          maxNewTokens: 5,
          algorithm: "grpo",
          rewards: [reward],
          onStep: (_, r) => rollouts.push(r.map((x) => x.completion)),
        });
        const w = (await m.params.get("wte.weight")!.data()) as Float32Array;
        m.dispose();
        return { log, rollouts, w };
      };
      const single = await run(false);
      const par = await run(true);
      assert.deepEqual(par.rollouts, single.rollouts, "the same completions every step");
      const dW = maxAbsDiff(Array.from(single.w), Array.from(par.w));
      console.log(
        `  RL 3 GRPO steps, rollouts on workers: same completions; weights ${dW.toExponential(2)}`,
      );
      assert.ok(dW < 1e-5);
    });

    await t.step(
      "a failing operation names the worker and its error; the pool survives",
      async () => {
        const m = await tinyModel("gpt2", 11);
        try {
          const err = await generateOnWorkers(pool, m, { inputIds: [[1, 2], [3], [], [4]] }).then(
            () => undefined,
            (e) => e,
          );
          assert.ok(err instanceof WorkerError, `expected a WorkerError, got ${err}`);
          assert.match(err.message, /^worker 1 failed in generate: generate: empty prompt/);
          assert.equal(err.worker, 1);
          await assert.rejects(
            () => pool.call(0, "nope", {}),
            /worker 0 failed in nope: unknown operation 'nope'/,
          );
          await assert.rejects(() => pool.call(5, "generate", {}), /No worker 5: the pool has 2/);
          await assert.rejects(
            () => pool.call(0, "generate", { fn: () => 1 }),
            /Cannot send 'generate' to worker 0: .*only structured-clonable data/,
          );
          assert.ok(pool.alive);
          const g = await generateOnWorkers(pool, m, { inputIds: [[1, 2], [3]], maxNewTokens: 2 });
          assert.equal(g.tokenIds.length, 2);
        } finally {
          m.dispose();
        }
      },
    );
  } finally {
    await pool.terminate();
  }
});

Deno.test("worker pool: shuts down cleanly and refuses work afterwards", async () => {
  let closed: WorkerPool;
  {
    await using pool = await WorkerPool.start({ workers: 1, blas: false });
    assert.equal(pool.backends[0].blas?.enabled, false);
    closed = pool;
  }
  assert.equal(closed.alive, false);
  await assert.rejects(
    () => closed.call(0, "weights", { names: [] }),
    /worker pool was terminated/,
  );
  await closed.terminate(); // idempotent
  await assert.rejects(() => WorkerPool.start({ workers: 0 }), /pass a whole number >= 1/);
});

Deno.test("shardRoundRobin deals items into balanced shards", () => {
  assert.deepEqual(shardRoundRobin([1, 2, 3, 4, 5], 2), [[1, 3, 5], [2, 4]]);
  assert.deepEqual(shardRoundRobin([1], 3), [[1], [], []]);
});
