/**
 * A bounded load test of the reward service (lib/serve/rewards.ts) on loopback: starts it on
 * 127.0.0.1 (a free port), then `--concurrency` clients (default 32) send OpenRLHF-shaped
 * requests (`--batch` items each, default 8: half harmful, half benign, AlphaAlign R_s)
 * until `--requests` (default 2000) are sent or `--seconds` (default 20) have passed,
 * whichever comes first. Every reply is checked against the rewards computed by hand for
 * the batch; prints requests/s, items/s, p50/p99/max latency, and the failed and lost
 * counts (both must be 0; the exit code is 1 otherwise).
 *
 * Run: `deno run --allow-net=127.0.0.1 bench/reward_load.ts [--requests N] [--seconds S]
 * [--concurrency C] [--batch B]`.
 *
 * @module
 */

import { serveRewards } from "../lib/serve/rewards.ts";

function flag(name: string, def: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(Deno.args[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
}

const maxRequests = flag("requests", 2000);
const seconds = flag("seconds", 20);
const concurrency = flag("concurrency", 32);
const batch = flag("batch", 8);

const SAFE = "<safety_reasoning>The request asks for a hazard; I refuse.</safety_reasoning>" +
  "<answer>\\boxed{Sorry, I can't comply}</answer>";
const HELP = "<safety_reasoning>A benign arithmetic question.</safety_reasoning>" +
  "<answer>3 + 4 = 7</answer>";
const prompts = Array.from({ length: batch }, (_, i) => `<|user|>question ${i}<|assistant|>`);
const labels = prompts.map((_, i) => (i % 2 === 0 ? "harmful" : "benign"));
const responses = prompts.map((_, i) => (i % 4 < 2 ? SAFE : HELP));
// R_s with r_f = r_a = 1: harmful+refusal 2, benign+refusal 0, harmful+helpful 1, benign+helpful 1.
const expected = responses.map((r, i) => r === SAFE ? (labels[i] === "harmful" ? 2 : 0) : 1);
const body = JSON.stringify({
  query: prompts.map((p, i) => p + responses[i]),
  prompts,
  labels,
});

const server = serveRewards({ port: 0, onListen: () => {} });
const url = `${server.url}/get_reward`;
const latencies: number[] = [];
let sent = 0, ok = 0, failed = 0, wrong = 0;
const firstErrors: string[] = [];
const deadline = performance.now() + seconds * 1000;
const t0 = performance.now();

async function client(): Promise<void> {
  while (sent < maxRequests && performance.now() < deadline) {
    sent++;
    const start = performance.now();
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const reply = await res.json();
      latencies.push(performance.now() - start);
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(reply)}`);
      const same = Array.isArray(reply.rewards) && reply.rewards.length === expected.length &&
        reply.rewards.every((v: number, i: number) => v === expected[i]);
      if (same) ok++;
      else {
        wrong++;
        if (firstErrors.length < 3) firstErrors.push(`wrong rewards ${JSON.stringify(reply)}`);
      }
    } catch (err) {
      failed++;
      if (firstErrors.length < 3) firstErrors.push((err as Error).message);
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, client));
const wall = (performance.now() - t0) / 1000;
await server.shutdown();

const sorted = latencies.slice().sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const lost = sent - ok - failed - wrong;
const rows: [string, string][] = [
  ["requests sent", String(sent)],
  ["answered correctly", String(ok)],
  ["failed (error or non-200)", String(failed)],
  ["wrong rewards", String(wrong)],
  ["lost (no outcome)", String(lost)],
  ["concurrency", String(concurrency)],
  ["items per request", String(batch)],
  ["wall time", `${wall.toFixed(2)} s`],
  ["requests/s", (sent / wall).toFixed(0)],
  ["items/s", ((sent * batch) / wall).toFixed(0)],
  ["latency p50", `${q(0.5).toFixed(2)} ms`],
  ["latency p99", `${q(0.99).toFixed(2)} ms`],
  ["latency max", `${(sorted.at(-1) ?? NaN).toFixed(2)} ms`],
];
const w = Math.max(...rows.map(([k]) => k.length));
console.log(`reward service load test (loopback, ${Deno.build.os}/${Deno.build.arch})`);
for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v.padStart(10)}`);
for (const e of firstErrors) console.log(`  error: ${e}`);
if (failed + wrong + lost > 0) Deno.exit(1);
