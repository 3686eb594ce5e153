import assert from "node:assert/strict";
import { timeIt } from "../bench/timing.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

Deno.test("bench timing: a short measure is warmed up and repeated until the time budget", async () => {
  let calls = 0;
  const s = await timeIt(2, async () => {
    calls++;
    await sleep(5);
  }, { warmSeconds: 0.05, minSeconds: 0.1, maxReps: 100 });
  // >= 0.05 s of ~5 ms warm-up runs (>= 5 runs, at most 10) + >= 0.1 s of timed runs (~20).
  assert.ok(calls >= 5 + 10, `only ${calls} calls`);
  assert.ok(calls <= 10 + 100, `${calls} calls`);
  assert.ok(s >= 0.004 && s < 0.1, `median ${s}`);
});

Deno.test("bench timing: a long measure gets one warm-up and exactly `reps` timed runs", async () => {
  let calls = 0;
  await timeIt(3, async () => {
    calls++;
    await sleep(30);
  }, { warmSeconds: 0.01, minSeconds: 0.01 });
  assert.equal(calls, 1 + 3);
});

Deno.test("bench timing: maxReps caps the timed runs and the median is of the timed runs only", async () => {
  const durations = [50, 1, 1, 1, 1, 1]; // the slow first call is the warm-up
  let i = 0;
  const s = await timeIt(1, async () => {
    await sleep(durations[Math.min(i++, durations.length - 1)]);
  }, { warmSeconds: 0, minSeconds: 100, maxReps: 5 });
  assert.equal(i, 1 + 5);
  assert.ok(s < 0.03, `median ${s} includes the warm-up`);
});
