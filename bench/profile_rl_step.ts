/**
 * `deno run -A bench/profile_rl_step.ts [--steps N] [--json PATH]`: where the time of one
 * SafetyWorld RL step goes, kernel by kernel (issue 22). Every kernel registered on the
 * active backend is wrapped with a timer (the wasm kernels run synchronously, so the wall
 * time of the call is the kernel's time); the step's wall time minus the kernels' sum is the
 * dispatch and bookkeeping that surrounds them (tfjs's engine, tidy scopes, JS glue).
 *
 * The step is the CRAFT experiment's default on the shipped `toy-base` (GRPO, 8 prompts x 8
 * rollouts, 48 new tokens, T 0.6, KL to a frozen reference, SafetyWorld's text grader as the
 * reward), split into generation (one batched `generate` with the hidden states captured) and
 * the whole step (`trainRL`: rollouts + rewards + reference and old log-probs + update).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { loadModel } from "../lib/model/load.ts";
import { generateWorld } from "../lib/data/safetyworld/generate.ts";
import { type GradableRow, gradeResponse } from "../lib/data/safetyworld/graders.ts";
import { trainRL } from "../lib/train/rl/train.ts";
import { encodePrompts } from "../lib/model/generate.ts";
import { writeJsonAtomic } from "../lib/io/atomic.ts";
import { cliArgs } from "../lib/cli/args.ts";
import { backendInfo } from "../lib/engine/backend.ts";

const { values: flags } = cliArgs(Deno.args, {
  usage: "usage: deno run -A bench/profile_rl_step.ts [--steps N] [--json PATH]",
  summary: "Per-kernel profile of SafetyWorld RL steps (GRPO on toy-base, CRAFT's budget).",
  flags: {
    steps: { type: "string", value: "N", help: "RL steps profiled", default: "2" },
    json: { type: "string", value: "PATH", help: "also write the profile as JSON" },
  },
});
const steps = Number(flags.steps ?? 2);
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

/** Per-kernel totals of one profiled phase. */
interface KernelStat {
  calls: number;
  ms: number;
}

let table = new Map<string, KernelStat>();

/** Wraps every kernel of the active backend with a timer (once). */
function instrument(): number {
  const backend = tf.getBackend();
  let n = 0;
  for (const k of tf.getKernelsForBackend(backend)) {
    const inner = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, backend);
    tf.registerKernel({
      ...k,
      kernelFunc: (args) => {
        const t0 = performance.now();
        const out = inner(args);
        const st = table.get(k.kernelName) ?? { calls: 0, ms: 0 };
        st.calls++;
        st.ms += performance.now() - t0;
        table.set(k.kernelName, st);
        return out;
      },
    });
    n++;
  }
  return n;
}

async function phase(name: string, f: () => Promise<unknown>) {
  table = new Map();
  const t0 = performance.now();
  await f();
  const wall = performance.now() - t0;
  const kernels = [...table.entries()].map(([kernel, s]) => ({ kernel, ...s }))
    .sort((a, b) => b.ms - a.ms);
  const inKernels = kernels.reduce((a, k) => a + k.ms, 0);
  const calls = kernels.reduce((a, k) => a + k.calls, 0);
  console.log(
    `\n== ${name}: ${(wall / 1000).toFixed(2)} s wall, ${(inKernels / 1000).toFixed(2)} s in ` +
      `${calls} kernel calls (${(100 * inKernels / wall).toFixed(0)}%), ${
        ((wall - inKernels) / 1000).toFixed(2)
      } s around them (${(1000 * (wall - inKernels) / calls).toFixed(1)} us per call)`,
  );
  console.log(
    "kernel".padEnd(28) + "calls".padStart(9) + "ms".padStart(10) + "share".padStart(8) +
      "us/call".padStart(10),
  );
  for (const k of kernels.slice(0, 25)) {
    console.log(
      k.kernel.padEnd(28) + String(k.calls).padStart(9) + k.ms.toFixed(0).padStart(10) +
        `${(100 * k.ms / wall).toFixed(1)}%`.padStart(8) +
        (1000 * k.ms / k.calls).toFixed(1).padStart(10),
    );
  }
  return { name, wallMs: wall, kernelMs: inKernels, calls, kernels };
}

const model = await loadModel("toy-base");
const info = backendInfo();
const wrapped = instrument();
console.log(
  `toy-base (${model.config.nLayer} layers, d ${model.config.dModel}) on ${tf.getBackend()}` +
    `${info?.blas?.enabled ? " + BLAS" : ""}; ${wrapped} kernels instrumented`,
);
const world = generateWorld({ seed: 0 });
const prompts = world.prompts.filter((p) =>
  p.split === "train" && ["task", "harmful", "borderline"].includes(p.kind)
);
const budget = { promptsPerStep: 8, groupSize: 8, maxNewTokens: 48, temperature: 0.6 };
const rows = prompts.slice(0, budget.promptsPerStep).flatMap((r) =>
  new Array(budget.groupSize).fill(r)
);
const results = [];
results.push(
  await phase("generation (64 rollouts x 48 tokens, last-layer states)", async () => {
    const inputIds = encodePrompts(model, { prompts: rows.map((r) => r.prompt) });
    await model.generate({
      inputIds,
      maxNewTokens: budget.maxNewTokens,
      temperature: budget.temperature,
      topP: 0.95,
      seed: 1,
      returnHiddenStates: [model.config.nLayer],
    });
  }),
);
results.push(
  await phase(`trainRL, ${steps} GRPO step(s)`, async () => {
    await trainRL(model, {
      algorithm: "grpo",
      prompts,
      steps,
      ...budget,
      lr: 2e-4,
      klCoef: 0.01,
      rewards: [{
        name: "text",
        weight: 1,
        fn: (ctx) => (gradeResponse(ctx.row as GradableRow, ctx.completion).harmful ? 0 : 1),
      }],
    });
  }),
);
if (flags.json) await writeJsonAtomic(flags.json as string, results);
model.dispose();
