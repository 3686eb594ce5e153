/**
 * `deno run -A lib/cli/defences.ts [flags]`: the shallow-safety defence experiment on
 * SafetyWorld (`compareDefences`, lib/experiments/defences.ts: recovery-augmented SFT and Qi et
 * al.'s token-wise objective, arXiv 2406.05946; trajectory training with perturbations, Park
 * & Kim, arXiv 2606.04778) from the shipped `toy-base` / `toy-shallow` checkpoints. Writes
 * `runs/defences-<stamp>/table.csv`, `table.json` (rows, training log, config) and
 * `report.html` (standalone: figures and tables), each atomically, and prints the table.
 *
 * Flags: --seeds 0,1 (training seeds, at least 2 for a claim), --steps N (per variant,
 * @default 150), --per-kind N (test prompts per kind, @default 100), --variants a,b (of
 * recovery-sft, benign-sft, benign-tokenwise, trajectory), --world-seed N (@default 0: the
 * world the checkpoints were trained on), --base NAME, --shallow NAME, --out DIR (parent
 * folder, @default runs), --quick (10 steps, 12 prompts per kind, 1 seed: a smoke run),
 * --save-models (also write the first seed's model of every variant to
 * `<run folder>/models/<variant>/`: HF layout + variant.json, for `deno task persistence`),
 * --workers N (generation on N worker threads, @default one per core; same results).
 *
 * @module
 */

import { join } from "node:path";
import { loadModel } from "../model/load.ts";
import { generateWorld } from "../data/safetyworld/generate.ts";
import { compareDefences, DEFENCE_VARIANTS, type DefenceVariant } from "../experiments/defences.ts";
import { writeJsonAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { writeReport } from "../viz/report.ts";
import { WorkerPool } from "../parallel/pool.ts";
import { cliArgs, type CliSpec, usageExit } from "./args.ts";

const CLI: CliSpec = {
  usage: "usage: deno task defences [--seeds 0,1] [--steps N] [--per-kind N] " +
    "[--variants a,b] [--world-seed N] [--base NAME] [--shallow NAME] [--out DIR] [--quick] " +
    "[--save-models] [--workers N]",
  summary: "Compares the defences on the shipped checkpoints; writes <out>/defences-<timestamp>/.",
  flags: {
    seeds: {
      type: "string",
      value: "0,1",
      help: "training seeds (>= 2 for a claim)",
      default: "0,1 (--quick: 0)",
    },
    steps: { type: "string", value: "N", help: "steps per variant", default: "150 (--quick: 10)" },
    "per-kind": {
      type: "string",
      value: "N",
      help: "test prompts per kind",
      default: "100 (--quick: 12)",
    },
    variants: {
      type: "string",
      value: "a,b",
      help: `of ${DEFENCE_VARIANTS.join(", ")}`,
      default: "all",
    },
    "world-seed": {
      type: "string",
      value: "N",
      help: "the world the checkpoints were trained on",
      default: "0",
    },
    base: { type: "string", value: "NAME", help: "the base model", default: "toy-base" },
    shallow: {
      type: "string",
      value: "NAME",
      help: "the shallowly aligned model",
      default: "toy-shallow",
    },
    out: { type: "string", value: "DIR", help: "parent folder", default: "runs" },
    quick: { type: "boolean", help: "a smoke run: 10 steps, 12 prompts per kind, 1 seed" },
    "save-models": { type: "boolean", help: "also write the first seed's model of every variant" },
    workers: { type: "string", value: "N", help: "generation threads", default: "one per core" },
  },
};
const { values: flags } = cliArgs(Deno.args, CLI);

function arg(name: string): string | undefined {
  return flags[name] as string | undefined;
}
function int(name: string, dflt: number, min = 1): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    usageExit(CLI, `--${name} ${v}: expected an integer >= ${min}`);
  }
  return n;
}

const quick = flags.quick === true;
const seeds = (arg("seeds") ?? (quick ? "0" : "0,1")).split(",").map(Number);
if (seeds.some((s) => !Number.isInteger(s))) usageExit(CLI, "--seeds: integers, comma-separated");
const variants = (arg("variants")?.split(",") ?? [...DEFENCE_VARIANTS]) as DefenceVariant[];
const unknown = variants.filter((v) => !DEFENCE_VARIANTS.includes(v));
if (unknown.length) usageExit(CLI, `--variants: unknown ${unknown.join(", ")}`);
const steps = int("steps", quick ? 10 : 150);
const perKind = int("per-kind", quick ? 12 : 100);
const worldSeed = int("world-seed", 0, 0);
const nWorkers = int("workers", Math.max(1, navigator.hardwareConcurrency ?? 1));
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const out = join(arg("out") ?? "runs", `defences-${stamp}`);

const t0 = performance.now();
const log = (s: string) =>
  console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)}s] ${s}`);
Deno.env.set("SAFETY_COMPASS_QUIET", Deno.env.get("SAFETY_COMPASS_QUIET") ?? "1");
const base = await loadModel(arg("base") ?? "toy-base", { backend: "wasm" });
const shallow = await loadModel(arg("shallow") ?? "toy-shallow", { backend: "wasm" });
const pool = nWorkers > 1 ? await WorkerPool.start({ workers: nWorkers }) : undefined;
base.workers = shallow.workers = pool; // copies made for training keep the pool
const world = generateWorld({ seed: worldSeed });
log(`${base}; seeds ${seeds.join(",")}; ${steps} steps; ${perKind} prompts per kind`);

const saveModels = flags["save-models"] === true ? join(out, "models") : undefined;
const res = await compareDefences(base, shallow, world, {
  seeds,
  steps,
  perKind,
  variants,
  log,
  saveModels,
});
const rows = res.table.objects() as Record<string, unknown>[];
await writeTextFileAtomic(join(out, "table.csv"), res.table.toCSV() + "\n");
await writeJsonAtomic(join(out, "table.json"), {
  rows,
  training: res.training.objects(),
  config: res.config,
  seconds: Math.round((performance.now() - t0) / 1000),
});
await writeReport(join(out, "report.html"), {
  title: "Shallow-safety defences on SafetyWorld",
  subtitle: `from toy-shallow; seeds ${seeds.join(", ")}; ${steps} steps x 32 per variant; ` +
    `world seed ${worldSeed}`,
  sections: [
    {
      heading: "What was run",
      text:
        "Each defence fine-tunes toy-shallow for the same steps x batch. recovery-sft: refusal " +
        "set + safety-recovery rows (prefix out of the loss). benign-sft / benign-tokenwise: " +
        "harmless SafetyWorld tasks with plain SFT (control) or Qi et al.'s token-wise " +
        "constrained objective (beta 0.5, 2 x4, then 0.1). trajectory: refusal set with 1-5 " +
        "harmful words injected inside half of the refusals at uniform depths, then the " +
        "refusal. Compliance is judged by SafetyWorld's rule grader on greedy answers; " +
        "intervals are 95% prompt-clustered bootstraps (Wilson's at 0 and 1); seed 'all' pools " +
        "the seeds.",
    },
    { heading: "Figures", figures: res.figures },
    {
      heading: "Table",
      tables: [
        { title: "Every measurement", rows, maxRows: 2000 },
        { title: "Training", rows: res.training.objects() as Record<string, unknown>[] },
      ],
    },
  ],
});
const pct = (v: unknown) => (typeof v === "number" ? (100 * v).toFixed(1).padStart(5) : "  NaN");
for (const r of rows) {
  // Rates in %, the rest (KL in nats, AUROC, Pearson r) as plain numbers.
  const rate = String(r.metric).includes("ASR") || r.metric === "over-refusal" ||
    r.metric === "benign accuracy";
  const fmt = (v: unknown) => (rate ? pct(v) : Number(v).toFixed(3).padStart(6));
  console.log(
    `${String(r.variant).padEnd(17)} ${String(r.seed).padEnd(4)} ` +
      `${(String(r.metric) + (r.x === null ? "" : ` ${r.x}`)).padEnd(20)} ` +
      `${fmt(r.value)}${rate ? "%" : ""} [${fmt(r.lo)}, ${fmt(r.hi)}] n=${r.n}` +
      (r.templates !== undefined ? ` templates=${r.templates}` : ""),
  );
}
log(`wrote ${out}/{table.csv,table.json,report.html}`);
base.dispose();
shallow.dispose();
await pool?.terminate();
