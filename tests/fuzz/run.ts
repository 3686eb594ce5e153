/**
 * `deno task fuzz [--seed N] [--cases N]`: the full fuzz run, every parser (safetensors,
 * config.json, tokenizer.json + tokenizer_config.json, CSV, JSONL, the reward body), each
 * case in a worker under a 5 s watchdog. Prints counts per parser, the seed, and the time;
 * exits 1 when any case failed (a bare RangeError/TypeError, an unbounded or anonymous
 * message, silent garbage, a hang). Replay one case with `--seed S --only NAME --from I`.
 *
 * @module
 */

import { cliArgs } from "../../lib/cli/args.ts";
import { formatReports, runFuzz, TARGETS } from "./_harness.ts";

const { values } = cliArgs(Deno.args, {
  usage: "usage: deno task fuzz [--seed N] [--cases N] [--only NAME]",
  summary: "Seeded fuzz of every untrusted-input parser; exits 1 when any case failed.",
  flags: {
    seed: { type: "string", value: "N", help: "the fuzz seed", default: "20261207" },
    cases: { type: "string", value: "N", help: "cases per parser", default: "3000" },
    only: {
      type: "string",
      value: "NAME",
      help: `parsers whose name starts with NAME: ${TARGETS.join(", ")}`,
    },
  },
});
const seed = Number(values.seed ?? "20261207");
const cases = Number(values.cases ?? "3000");
const only = values.only as string | undefined;
const modules = only ? TARGETS.filter((t) => t.startsWith(only)) : TARGETS;
console.log(`fuzz: seed ${seed}, ${cases} cases per parser, ${modules.length} parsers`);
const t0 = performance.now();
const reports = await runFuzz({ seed, cases }, modules);
console.log(formatReports(reports, seed));
const failed = reports.reduce((n, r) => n + r.failures.length, 0);
const total = reports.reduce((n, r) => n + r.cases, 0);
console.log(
  `fuzz: ${total} cases, ${failed} failures, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
if (failed) Deno.exit(1);
