/**
 * The child process of tests/checkpoint_crash_test.ts: resumes SFT from `Deno.args[0]` and
 * trains a tiny model with a checkpoint after every step, until the parent kills it. Prints
 * "step N" after each checkpoint.
 *
 * @module
 */

import { tinyModel, useTestBackend } from "./_helpers.ts";
import { trainSft } from "../lib/train/sft.ts";
import { crashTask } from "./_checkpoint_task.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();
const dir = Deno.args[0];
const m = await tinyModel("gpt2", 11);
await trainSft(m, crashTask(), {
  ...JSON.parse(Deno.args[1] ?? "{}"),
  checkpointDir: dir,
  checkpointEvery: 1,
  resume: true,
  onStep: (r) => console.log(`step ${r.step}`),
});
