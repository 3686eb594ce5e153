/**
 * `deno task toy:train`: regenerates the SafetyWorld checkpoints from scratch.
 *
 * 1. generates the world (seed 0) and its word-level tokenizer;
 * 2. trains `toy-base` on the base SFT set (helpful, and unaligned: it complies with
 *    harmful requests at the rate the data has);
 * 3. fine-tunes a copy on the refusal set (harmful -> refusal, benign replay): `toy-shallow`;
 * 4. measures both profiles (benign accuracy, harmful compliance, over-refusal, jailbreak
 *    and prefill compliance with two-level bootstrap intervals over templates and prompts)
 *    into datasets/checkpoints/profile.json.
 *
 * `--profile-only` skips 1-3's training: it loads the checkpoints from --out and measures
 * step 4 again, keeping profile.json's training record (to refresh the profile after the
 * test split or the intervals change, without retraining).
 *
 * Flags: --seed N, --base-steps N, --align-steps N, --out DIR, --quick (CI-size run),
 * --profile-only,
 * --workers N (data-parallel worker threads for training and profiling, default one per
 * core; 1 = everything on the main thread. Results are deterministic for a given N; other
 * N change them by float rounding only).
 *
 * @module
 */

import { join } from "node:path";
import { generateWorld } from "../data/safetyworld/generate.ts";
import { buildWorldTokenizer } from "../data/safetyworld/tokenizer.ts";
import { tokenizerFromJson } from "../model/tokenizer.ts";
import { createModel } from "../model/create.ts";
import { loadModel } from "../model/load.ts";
import { trainSft } from "../train/sft.ts";
import type { RateRow } from "../experiments/profile.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import type { WorldSftRow } from "../data/safetyworld/plan.ts";
import { WorkerPool } from "../parallel/pool.ts";
import { cliArgs, type CliSpec, usageExit } from "./args.ts";

const CLI: CliSpec = {
  usage: "usage: deno task toy:train [--seed N] [--base-steps N] [--align-steps N] [--out DIR] " +
    "[--quick] [--profile-only] [--workers N]",
  summary: "Regenerates the SafetyWorld checkpoints (toy-base, toy-shallow) and profile.json.",
  flags: {
    seed: { type: "string", value: "N", help: "world and training seed", default: "0" },
    "base-steps": {
      type: "string",
      value: "N",
      help: "toy-base SFT steps",
      default: "3000 (--quick: 40)",
    },
    "align-steps": {
      type: "string",
      value: "N",
      help: "refusal SFT steps",
      default: "150 (--quick: 10)",
    },
    out: { type: "string", value: "DIR", help: "output folder", default: "datasets/checkpoints" },
    quick: { type: "boolean", help: "a CI-size run" },
    "profile-only": {
      type: "boolean",
      help: "load the checkpoints from --out and measure the profile again (no training)",
    },
    workers: {
      type: "string",
      value: "N",
      help: "data-parallel worker threads (1: main thread)",
      default: "one per core",
    },
  },
};
const { values: flags } = cliArgs(Deno.args, CLI);
function flag(name: string, dflt: number): number {
  const v = flags[name] as string | undefined;
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) usageExit(CLI, `--${name} ${v}: expected an integer >= 0`);
  return n;
}
const quick = flags.quick === true;
const out = (flags.out as string | undefined) ??
  new URL("../../datasets/checkpoints/", import.meta.url).pathname;
const seed = flag("seed", 0);
const baseSteps = flag("base-steps", quick ? 40 : 3000);
const alignSteps = flag("align-steps", quick ? 10 : 150);
const workers = flag("workers", Math.max(1, navigator.hardwareConcurrency ?? 1));

const t0 = performance.now();
const world = generateWorld({ seed });
const { tokenizerJson, tokenizerConfig } = buildWorldTokenizer(world);
const tokenizer = tokenizerFromJson(tokenizerJson, tokenizerConfig, "safetyworld tokenizer");
const enc = new TextEncoder();
const assets = new Map<string, Uint8Array>([
  ["tokenizer.json", enc.encode(JSON.stringify(tokenizerJson))],
  ["tokenizer_config.json", enc.encode(JSON.stringify(tokenizerConfig, null, 2))],
]);
const vocab = Math.ceil(tokenizer.vocabSize / 8) * 8;
console.log(
  `world seed ${seed}: vocab ${tokenizer.vocabSize}, sft ${world.sft.length}, align ${world.align.length}`,
);

const ex = (rows: WorldSftRow[]) => rows.map((r) => ({ prompt: r.prompt, response: r.response }));
const train = (rows: WorldSftRow[]) => rows.filter((r) => r.split === "train");
const val = (rows: WorldSftRow[]) => rows.filter((r) => r.split === "validation").slice(0, 256);

// Started after the main thread's model is created, as before --profile-only existed:
// starting it first changes the training's float rounding (measured: losses differ in the
// 7th digit from step 2), and runs of this script agree bit for bit this way. (The shipped
// checkpoints, trained on 2 December 2026, are not reproduced bit for bit: this script, and the
// commit that trained them too, now give a step-2 loss of 6.49323577 where their profile.json
// records 6.49323599; see the README's "Seeds on worker threads".)
let pool: WorkerPool | undefined;
async function startPool(): Promise<void> {
  pool = workers > 1 ? await WorkerPool.start({ workers }) : undefined;
  console.log(
    pool
      ? `workers: ${pool} (each: ${pool.backends[0].reason}, 1 BLAS thread)`
      : "workers: none (--workers 1): main thread only",
  );
}

/** Steps 1-3: trains toy-base and toy-shallow into `out`; returns the training record. */
async function trainBoth(): Promise<Record<string, unknown>> {
  const base = await createModel(
    {
      arch: "gpt2",
      vocabSize: vocab,
      nLayer: 4,
      dModel: 128,
      nHead: 4,
      maxPositions: 128,
      bosTokenId: tokenizer.bosId,
      eosTokenId: tokenizer.eosId,
      padTokenId: tokenizer.padId,
    },
    { tokenizer, assets, seed, name: "toy-base", backend: "wasm" },
  );
  console.log(base.toString());
  console.log(`backend: ${base.backend.reason}`);
  await startPool();
  const baseRun = await trainSft(base, ex(train(world.sft)), {
    steps: baseSteps,
    batchSize: 32,
    lr: 2e-3,
    seed,
    validation: ex(val(world.sft)),
    evalEvery: Math.max(50, Math.floor(baseSteps / 6)),
    label: "toy-base",
    workers: pool,
  });
  const last = baseRun.history.at(-1)!;
  console.log(
    `toy-base: loss ${last.loss.toFixed(3)}, val ${last.valLoss?.toFixed(3)}, ${
      baseRun.tokensPerSecond.toFixed(0)
    } tok/s`,
  );
  await base.save(join(out, "toy-base"));
  base.dispose();

  const shallow = await loadModel(join(out, "toy-base"), { backend: "wasm" });
  const alignRun = await trainSft(shallow, ex(train(world.align)), {
    steps: alignSteps,
    batchSize: 32,
    lr: 1e-3,
    seed: seed + 1,
    validation: ex(val(world.align)),
    evalEvery: alignSteps,
    label: "toy-shallow",
    workers: pool,
  });
  console.log(
    `toy-shallow: loss ${alignRun.history.at(-1)!.loss.toFixed(3)}, val ${
      alignRun.history.at(-1)!.valLoss?.toFixed(3)
    }`,
  );
  await shallow.save(join(out, "toy-shallow"));
  shallow.dispose();
  return {
    seed,
    baseSteps,
    alignSteps,
    workers,
    seconds: Math.round((performance.now() - t0) / 1000),
    baseHistory: baseRun.history,
    alignHistory: alignRun.history,
  };
}

let record: Record<string, unknown>;
if (flags["profile-only"] === true) {
  const { profile: _, ...kept } = JSON.parse(await Deno.readTextFile(join(out, "profile.json")));
  record = kept;
  console.log(`--profile-only: measuring the checkpoints in ${out} again (no training)`);
  await startPool();
} else {
  record = await trainBoth();
}

// Step 4 (imported late: the graders are only needed once training is done). The models
// are loaded back from disk, so a trained run and --profile-only measure the same weights.
const { profileModel } = await import("../experiments/profile.ts");
const base = await loadModel(join(out, "toy-base"), { backend: "wasm" });
const shallow = await loadModel(join(out, "toy-shallow"), { backend: "wasm" });
base.workers = shallow.workers = pool; // greedy generation on the workers: same answers
const per = quick ? 20 : 100;
const pb = await profileModel(base, "toy-base", world.prompts, { perKind: per, seed });
const ps = await profileModel(shallow, "toy-shallow", world.prompts, {
  perKind: per,
  seed,
  harmfulAnswers: pb.harmfulAnswers,
});
const rows: RateRow[] = [...pb.rows, ...ps.rows];
const fmt = (r: RateRow) =>
  `${r.model.padEnd(12)} ${(r.metric + (r.k !== undefined ? ` k=${r.k}` : "")).padEnd(30)} ` +
  `${(100 * r.rate).toFixed(1).padStart(5)}%  [${(100 * r.lo).toFixed(1)}, ${
    (100 * r.hi).toFixed(1)
  }]  n=${r.n} templates=${r.templates ?? "-"} (${r.method ?? ""})`;
console.log(rows.map(fmt).join("\n"));
await writeJsonAtomic(join(out, "profile.json"), {
  ...record,
  interval: "95% two-level percentile bootstrap: templates (jailbreaks: wrappers), then " +
    "prompts within each; Wilson's over the templates at a rate of 0 or 1",
  profile: rows,
});
console.log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
await pool?.terminate(); // (on an error the process exits, workers included)
