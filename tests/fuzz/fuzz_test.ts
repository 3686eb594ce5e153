/**
 * The seeded slice of the fuzz suite that `deno task test` runs (60 cases per parser, a
 * fixed seed); `deno task fuzz` runs thousands (tests/fuzz/run.ts).
 */
import assert from "node:assert/strict";
import { formatReports, runFuzz } from "./_harness.ts";

Deno.test("fuzz slice: every parser gives a clean error or a correct result, never a hang", async () => {
  const seed = 7;
  const reports = await runFuzz({ seed, cases: 60 });
  const failures = reports.flatMap((r) => r.failures);
  assert.equal(failures.length, 0, formatReports(reports, seed));
  for (const r of reports) assert.equal(r.cases, 60, r.name);
});

Deno.test("fuzz harness: a hung case is killed by the watchdog and the run resumes", async () => {
  const [r] = await runFuzz({ seed: 1, cases: 4, timeoutMs: 1000 }, ["_hang_fuzz.ts"]);
  assert.equal(r.cases, 4);
  assert.deepEqual(r.failures.map((f) => f.i), [1, 2]);
  assert.match(r.failures[0].detail, /hang/);
  assert.match(r.failures[1].detail, /bare TypeError/);
});
