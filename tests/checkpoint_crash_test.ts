import assert from "node:assert/strict";
import { join } from "node:path";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { loadCheckpoint, trainSft } from "../lib/train/sft.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { CRASH_OPTS, crashTask } from "./_checkpoint_task.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const CHILD = new URL("./_checkpoint_child.ts", import.meta.url).pathname;

/** Busy-waits `ms` milliseconds (timers are too coarse to aim inside a swap). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* wait */ }
}

/** Names in `root` that are temporary folders of a save in progress. */
function temporaries(root: string): string[] {
  return [...Deno.readDirSync(root)].map((e) => e.name).filter((n) => n.includes(".tmp"));
}

/**
 * Starts the child, waits until it has saved `after` checkpoints of this run and a new
 * temporary folder appears, waits `delay` ms more and kills it with SIGKILL.
 */
async function killDuringSave(root: string, after: number, delay: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, join(root, "ckpt"), JSON.stringify(CRASH_OPTS)],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let lines = 0;
  const read = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      lines += value.split("\n").filter((l) => l.startsWith("step ")).length;
    }
  })();
  const deadline = performance.now() + 20_000;
  // onStep of step k + 1 is printed after checkpoint k is complete.
  while (lines <= after && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  // Poll without yielding to timers, so the kill lands within a fraction of a millisecond.
  const before = new Set(temporaries(root));
  while (performance.now() < deadline) {
    if (temporaries(root).some((n) => !before.has(n))) break;
  }
  spin(delay);
  child.kill("SIGKILL");
  await child.status;
  await read.catch(() => undefined);
}

Deno.test("a checkpoint survives SIGKILL at any moment of its save, and resume continues from it", async () => {
  const root = await Deno.makeTempDir();
  const dir = join(root, "ckpt");
  const m = await tinyModel("gpt2", 11);
  let last = 0;
  let survived = 0;
  let midSave = 0; // kills that left a save's leftovers behind (they landed inside a save)
  const trials = 20;
  const failures: string[] = [];
  for (let i = 0; i < trials; i++) {
    await killDuringSave(root, 1 + (i % 3), (i % 10) * 0.6);
    if ([...Deno.readDirSync(root)].length > 2) midSave++;
    try {
      // Under the final name itself (not through the fallback of a missing link).
      const state = JSON.parse(await Deno.readTextFile(join(dir, "trainer_state.json")));
      const opt = new AdamW({ lr: 1e-3 });
      const st = await loadCheckpoint(m, dir, opt);
      if (st?.step !== state.step) {
        throw new Error(`read step ${st?.step}, the file says ${state.step}`);
      }
      opt.dispose();
      if (!st) throw new Error("no checkpoint under the final name");
      if (st.step < last) throw new Error(`went back from step ${last} to ${st.step}`);
      last = st.step;
      survived++;
    } catch (err) {
      failures.push(`kill ${i}: ${(err as Error).message}`);
    }
  }
  const orphans = [...Deno.readDirSync(root)].map((e) => e.name).filter((n) => n !== "ckpt");
  console.log(
    `  kills survived ${survived}/${trials} (${midSave} left a save's leftovers); ` +
      `last step ${last}; entries beside the checkpoint: ${orphans.length}`,
  );
  for (const f of failures) console.log(`  ${f}`);
  assert.deepEqual(failures, []);
  // Resume continues from the surviving step.
  const r = await trainSft(m, crashTask(), {
    ...CRASH_OPTS,
    checkpointDir: dir,
    resume: true,
    stopAfter: 1,
  });
  assert.equal(r.history.length, last + 1);
  assert.equal(r.steps, last + 1);
  // That save removed every leftover: only the link and its generation remain.
  assert.equal([...Deno.readDirSync(root)].length, 2);
  m.dispose();
  await removeCheckpoint(dir);
  await Deno.remove(root, { recursive: true });
});

/** A step-4 SFT checkpoint in a fresh folder, and the options that wrote it. */
async function stepFour(): Promise<{ root: string; dir: string }> {
  const root = await Deno.makeTempDir();
  const dir = join(root, "ckpt");
  const m = await tinyModel("gpt2", 11);
  await trainSft(m, crashTask(), {
    ...CRASH_OPTS,
    steps: 8,
    checkpointDir: dir,
    checkpointEvery: 2,
    stopAfter: 4,
  });
  m.dispose();
  return { root, dir };
}

const resume = async (dir: string, arch: "gpt2" | "llama" = "gpt2") => {
  const m = await tinyModel(arch, 11);
  try {
    return await trainSft(m, crashTask(), {
      ...CRASH_OPTS,
      steps: 8,
      checkpointDir: dir,
      resume: true,
    });
  } finally {
    m.dispose();
  }
};

Deno.test("resume refuses a damaged checkpoint with an error naming the file, and leaves it as it was", async () => {
  const { root, dir } = await stepFour();
  const state = join(dir, "trainer_state.json");
  const text = await Deno.readTextFile(state);
  const damage: [string, () => Promise<void>, RegExp][] = [
    [
      "truncated trainer_state.json",
      () => Deno.writeTextFile(state, text.slice(0, text.length >> 1)),
      /Cannot resume from .*ckpt\/trainer_state\.json: it is not valid JSON/,
    ],
    [
      "a step beyond the recorded history",
      () => Deno.writeTextFile(state, JSON.stringify({ ...JSON.parse(text), step: 6 })),
      /trainer_state\.json: its 'step' is 6 but its history records 4 steps/,
    ],
    [
      "a step beyond the run",
      () =>
        Deno.writeTextFile(
          state,
          JSON.stringify({ ...JSON.parse(text), step: 9, history: Array(9).fill({}) }),
        ),
      /trainer_state\.json: it is at step 9, beyond this run's 8 steps/,
    ],
    [
      "missing weights",
      () => Deno.remove(join(dir, "model", "model.safetensors")),
      /Cannot resume from .*model\/model\.safetensors: it is missing or unreadable/,
    ],
    ["a truncated optimiser file", async () => {
      const p = join(dir, "optimizer.safetensors");
      const b = await Deno.readFile(p);
      await Deno.writeFile(p, b.slice(0, b.length - 100));
    }, /optimizer\.safetensors: it is missing or unreadable/],
  ];
  for (const [what, hurt, expected] of damage) {
    const backup = join(root, "backup");
    await Deno.mkdir(backup);
    for (const f of ["trainer_state.json", "optimizer.safetensors", "model/model.safetensors"]) {
      await Deno.mkdir(join(backup, "model"), { recursive: true });
      await Deno.copyFile(join(dir, f), join(backup, f));
    }
    await hurt();
    await assert.rejects(() => resume(dir), expected, what);
    for (const f of ["trainer_state.json", "optimizer.safetensors", "model/model.safetensors"]) {
      await Deno.copyFile(join(backup, f), join(dir, f));
    }
    await Deno.remove(backup, { recursive: true });
  }
  // Another model's shapes.
  await assert.rejects(() => resume(dir, "llama"), /ckpt\/model: the weights lack tensor/);
  // Intact again: resume continues at step 4.
  const r = await resume(dir);
  assert.equal(r.history.length, 8);
  assert.equal(JSON.parse(await Deno.readTextFile(state)).step, 8);
  await removeCheckpoint(dir);
  await Deno.remove(root, { recursive: true });
});

Deno.test("resume with no checkpoint starts at step 0 and says so once", async () => {
  const root = await Deno.makeTempDir();
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...a: unknown[]) => warnings.push(a.join(" "));
  try {
    const r = await resume(join(root, "ckpt"));
    assert.equal(r.history.length, 8);
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(warnings, [
    `SFT: resume is set but ${join(root, "ckpt")} holds no checkpoint; starting at step 0`,
  ]);
  await removeCheckpoint(join(root, "ckpt"));
  await Deno.remove(root, { recursive: true });
});
