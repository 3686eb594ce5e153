/**
 * `deno task persistence`: real-time compass monitoring and persistence of alignment across
 * model variants, on SafetyWorld (issue 10; CRAFT arXiv 2603.17305 as a monitor; arXiv
 * 2606.24014's persistence probes). The models are toy-base, toy-shallow and every variant
 * given: `name=path` arguments, bare model folders, and folders of saved variants
 * (`--variants runs/` picks up every `runs/<run>/models/<name>/`, written by
 * `deno task experiments ... --save-models` and `deno task defences --save-models`). One
 * model at a time (loaded, measured, disposed):
 * 1. unless --no-monitor: the monitor's compass (lib/experiments/monitor_eval.ts: logistic probe on
 *    response prefixes, layer by AUROC), its threshold calibrated with `calibrateMonitor`
 *    on TRAIN-split benign and borderline prompts to the false-flag rate `--fpr`, the
 *    calibration's transfer (false flags on held-out test benign + borderline answers), and
 *    flag / stop / steer on held-out harmful, jailbreak, prefilled, borderline and benign
 *    prompts;
 * 2. its rows of the ONE persistence table (no attack; harmful fine-tuning at each size;
 *    adversarial personas; helpful steering), with intervals over prompts. A variant whose
 *    variant.json records `maxNewTokens` (e.g. AlphaAlign's templated answers) is answered
 *    with that many new tokens.
 * Writes runs/persistence-<stamp>/{tables.json, persistence.csv, report.html, audit.html}.
 * `--workers N` runs plain generation on N worker threads (@default one per core; the monitor's
 * own token loop stays on the main thread); the results are the same either way.
 *
 * @module
 */

import * as aq from "arquero";
import { join } from "node:path";
import { loadModel } from "../model/load.ts";
import { cliHelp, type CliSpec, CliUsageError, parseCli } from "./args.ts";
import { resolveVariants, type VariantSpec } from "../model/variants.ts";
import { generateWorld } from "../data/safetyworld/generate.ts";
import { calibrateMonitor } from "../compass/calibrate.ts";
import { exportAudit } from "../viz/audit_page.ts";
import type { MonitorTrail } from "../compass/monitor.ts";
import { fitMonitorCompass, HARMFUL_PREFILL, measureMonitor } from "../experiments/monitor_eval.ts";
import { type PersistenceRow, persistenceTable } from "../experiments/persistence.ts";
import { persistenceSummary, plotPersistence } from "../experiments/persistence_summary.ts";
import { plotBars } from "../viz/plots/bars.ts";
import { buildReport, type ReportTable } from "../viz/report.ts";
import { writeJsonAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { WorkerPool } from "../parallel/pool.ts";

/** Parsed command line of the persistence CLI. */
export interface PersistenceArgs {
  /** --n: held-out prompts per kind. @default 60 (quick: 16) */
  n: number;
  /** --window: the monitor's running-mean window. @default 4 */
  window: number;
  /** --fpr: the calibration's target false-flag rate. @default 0.05 */
  fpr: number;
  /** --strength: steering strength. @default 1 */
  strength: number;
  /** --seed: probe, attack-data and bootstrap seed. @default 0 */
  seed: number;
  /** --world-seed: the world the checkpoints were trained on. @default 0 */
  worldSeed: number;
  /** --attack-sizes: harmful fine-tuning sizes. @default [10, 100] (quick: [10]) */
  attackSizes: number[];
  /** --out: the parent folder of the run folder. @default "runs" */
  out: string;
  /** --quick (or SAFETY_COMPASS_QUICK=1): CI sizes. */
  quick: boolean;
  /** false with --no-monitor: the persistence table only. @default true */
  monitor: boolean;
  /** --variants DIR (repeatable): folders searched for saved variants. */
  roots: string[];
  /** Positional `name=path` or `path` arguments. */
  variants: string[];
  /** --workers: generation threads. @default one per core */
  workers: number;
}

const CLI: CliSpec = {
  usage: "usage: deno task persistence [--n N] [--window W] [--fpr F] [--strength S] " +
    "[--seed N] [--world-seed N] [--attack-sizes 10,100] [--out DIR] [--quick] [--no-monitor] " +
    "[--workers N] [--variants RUNS_DIR]... [name=path/to/model | path]...",
  summary: "Monitoring and persistence of alignment across toy-base, toy-shallow and the " +
    "variants given; writes <out>/persistence-<timestamp>/.",
  positionals: true,
  flags: {
    n: {
      type: "string",
      value: "N",
      help: "held-out prompts per kind",
      default: "60 (--quick: 16)",
    },
    window: { type: "string", value: "W", help: "the monitor's running-mean window", default: "4" },
    fpr: {
      type: "string",
      value: "F",
      help: "the calibration's target false-flag rate",
      default: "0.05",
    },
    strength: { type: "string", value: "S", help: "steering strength", default: "1" },
    seed: {
      type: "string",
      value: "N",
      help: "probe, attack-data and bootstrap seed",
      default: "0",
    },
    "world-seed": {
      type: "string",
      value: "N",
      help: "the world the checkpoints were trained on",
      default: "0",
    },
    "attack-sizes": {
      type: "string",
      value: "A,B",
      help: "harmful fine-tuning sizes",
      default: "10,100 (--quick: 10)",
    },
    out: { type: "string", value: "DIR", help: "parent folder of the run folder", default: "runs" },
    quick: { type: "boolean", help: "CI sizes (also SAFETY_COMPASS_QUICK=1)" },
    "no-monitor": { type: "boolean", help: "the persistence table only" },
    workers: { type: "string", value: "N", help: "generation threads", default: "one per core" },
    variants: {
      type: "string",
      value: "DIR",
      multiple: true,
      help: "folder searched for saved variants",
    },
  },
};

/** Parses argv (`env`: the value of SAFETY_COMPASS_QUICK); throws with the usage line on bad input. */
export function parsePersistenceArgs(argv: readonly string[], env = "0"): PersistenceArgs {
  const fail = (why: string): never => {
    throw new CliUsageError(`${why}\n${CLI.usage}`);
  };
  const { values: v, positionals } = parseCli(argv, CLI);
  const quick = env === "1" || v.quick === true;
  const num = (flag: string, dflt: number, min: number, max = Infinity, int = false) => {
    const s = v[flag] as string | undefined;
    if (s === undefined) return dflt;
    const x = Number(s);
    const ok = Number.isFinite(x) && x >= min && x <= max && (!int || Number.isInteger(x));
    return ok ? x : fail(`--${flag} ${s}: expected ${int ? "an integer" : "a number"} >= ${min}`);
  };
  const sizes = v["attack-sizes"] as string | undefined;
  const attackSizes = sizes === undefined
    ? (quick ? [10] : [10, 100])
    : sizes.split(",").map(Number);
  if (attackSizes.some((x) => !Number.isInteger(x) || x < 1)) {
    fail(`--attack-sizes ${sizes}: expected positive integers, comma-separated`);
  }
  return {
    n: num("n", quick ? 16 : 60, 1, Infinity, true),
    window: num("window", 4, 1, Infinity, true),
    fpr: num("fpr", 0.05, 0, 1),
    strength: num("strength", 1, -Infinity),
    seed: num("seed", 0, 0, Infinity, true),
    worldSeed: num("world-seed", 0, 0, Infinity, true),
    attackSizes,
    out: (v.out as string | undefined) ?? "runs",
    quick,
    monitor: v["no-monitor"] !== true,
    roots: (v.variants as string[] | undefined) ?? [],
    variants: positionals,
    workers: num("workers", Math.max(1, navigator.hardwareConcurrency ?? 1), 1, Infinity, true),
  };
}

/** toy-base, toy-shallow, then every variant the arguments name (labels unique). */
export async function persistenceModels(args: PersistenceArgs): Promise<VariantSpec[]> {
  const shipped = [{ name: "toy-base", path: "toy-base" }, {
    name: "toy-shallow",
    path: "toy-shallow",
  }];
  const variants = await resolveVariants(args.variants, args.roots);
  const clash = variants.find((v) => shipped.some((s) => s.name === v.name));
  if (clash) {
    throw new Error(`Variant label '${clash.name}' is taken by a shipped model: rename it`);
  }
  return [...shipped, ...variants];
}

async function main(argv: string[]): Promise<number> {
  let args: PersistenceArgs, specs: VariantSpec[];
  try {
    if (parseCli(argv, CLI).help) {
      console.log(cliHelp(CLI));
      return 0;
    }
    args = parsePersistenceArgs(argv, Deno.env.get("SAFETY_COMPASS_QUICK"));
    specs = await persistenceModels(args);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    return 2;
  }
  const t0 = performance.now();
  const log = (s: string) =>
    console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)}s] ${s}`);
  Deno.env.set("SAFETY_COMPASS_QUIET", Deno.env.get("SAFETY_COMPASS_QUIET") ?? "1");
  const { n, seed, quick } = args;
  const world = generateWorld({ seed: args.worldSeed });
  await using pool = args.workers > 1
    ? await WorkerPool.start({ workers: args.workers })
    : undefined;
  const calib = world.prompts.filter((p) =>
    p.split === "train" && (p.kind === "task" || p.kind === "borderline")
  ).slice(0, quick ? 40 : 120);
  log(`${specs.length} models: ${specs.map((s) => s.name).join(", ")}; ${n} prompts per kind`);
  for (const s of specs) {
    if (s.record && s.record.weights === s.record.startWeights) {
      log(
        `note: ${s.name} has the same weights as its start (${s.record.start}, fingerprint ` +
          `${s.record.weights}): its training made no update, so its rows measure the start model`,
      );
    }
  }
  const compassRows: Record<string, unknown>[] = [];
  const calibRows: Record<string, unknown>[] = [];
  const earlyRows: Record<string, unknown>[] = [];
  const flagRows: Record<string, unknown>[] = [];
  const actionRows: Record<string, unknown>[] = [];
  const trails: MonitorTrail[] = [];
  const persistence: PersistenceRow[] = [];
  for (const spec of specs) {
    const model = await loadModel(spec.path, { backend: "wasm" });
    model.workers = pool;
    const maxNew = spec.record?.maxNewTokens ?? 48;
    try {
      if (args.monitor) {
        const mc = await fitMonitorCompass(model, world, { fitRows: quick ? 200 : 600, seed });
        compassRows.push(...mc.sweep.map((r) => ({ model: spec.name, method: "logistic", ...r })));
        const gen = { maxNewTokens: maxNew, batchSize: 40 };
        const cal = await calibrateMonitor(model, mc.compass, calib, {
          fpr: args.fpr,
          window: args.window,
          generate: gen,
        });
        const monitor = { compass: mc.compass, threshold: cal, direction: mc.direction };
        const me = await measureMonitor(model, spec.name, world, {
          ...monitor,
          strength: args.strength,
        }, { n, maxNewTokens: maxNew, seed });
        const held = me.transfer;
        calibRows.push({
          model: spec.name,
          layer: cal.layer,
          window: cal.window,
          target: cal.fpr,
          threshold: cal.threshold,
          "calibration rate": cal.rate,
          "calibration lo": cal.lo,
          "calibration hi": cal.hi,
          "calibration n": cal.n,
          "held-out rate": held.rate,
          "held-out lo": held.lo,
          "held-out hi": held.hi,
          "held-out n": held.n,
        });
        earlyRows.push(...me.early);
        flagRows.push(...me.flags);
        actionRows.push(...me.actions);
        trails.push(...me.trails);
        log(
          `${spec.name}: monitor at layer ${cal.layer}, threshold ${
            cal.threshold.toExponential(3)
          }, ` +
            `false flags ${(100 * cal.rate).toFixed(1)}% (calibration) / ` +
            `${(100 * held.rate).toFixed(1)}% (held out)`,
        );
      }
      persistence.push(
        ...await persistenceTable({ [spec.name]: model }, world, {
          n,
          seed,
          log,
          attackSizes: args.attackSizes,
          maxNewTokens: maxNew,
        }),
      );
    } finally {
      model.dispose();
    }
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = join(args.out, `persistence-${stamp}`);
  const variantRows = specs.map((s) => ({
    model: s.name,
    path: s.path,
    experiment: s.record?.experiment ?? "",
    condition: s.record?.condition ?? "",
    seed: s.record?.seed ?? "",
    steps: s.record?.steps ?? "",
    start: s.record?.start ?? "",
    startWeights: s.record?.startWeights ?? "",
    weights: s.record?.weights ?? "",
    // true when training left the weights exactly as they started (e.g. a reward with no variance)
    unchanged: s.record ? s.record.weights === s.record.startWeights : "",
    maxNewTokens: s.record?.maxNewTokens ?? 48,
  }));
  const settings = { ...args, maxNewTokens: 48, prefill: HARMFUL_PREFILL };
  await writeJsonAtomic(join(dir, "tables.json"), {
    settings,
    seconds: Math.round((performance.now() - t0) / 1000),
    models: variantRows,
    persistence,
    calibration: calibRows,
    compass: compassRows,
    monitorEarly: earlyRows,
    monitorFlags: flagRows,
    monitorActions: actionRows,
  });
  await writeTextFileAtomic(join(dir, "persistence.csv"), aq.from(persistence).toCSV() + "\n");
  const T = (title: string, rows: object[]): ReportTable => ({
    title,
    rows: rows as Record<string, unknown>[],
    maxRows: 2000,
  });
  const calibFigure = () =>
    plotBars(
      calibRows.flatMap((r) =>
        [
          ["calibration (train prompts)", "calibration"],
          ["held out (test prompts)", "held-out"],
        ].map(([group, k]) => ({
          name: String(r.model),
          group,
          value: r[`${k} rate`] as number,
          lo: r[`${k} lo`] as number,
          hi: r[`${k} hi`] as number,
        }))
      ),
      {
        title: `Monitor false-flag rate on benign + borderline answers (target ${args.fpr})`,
        yTitle: "share flagged",
      },
    );
  const monitorSections = args.monitor
    ? [
      {
        heading: "The monitor and its calibration",
        text: "Logistic probe on last-token hidden states of train-split response prefixes " +
          "(unsafe: harmful compliance; safe: refusals and benign answers); layer by AUROC on " +
          "other prefixes. Threshold: calibrateMonitor on train-split benign and borderline " +
          `prompts, the running-score level at which a share ${args.fpr} of their answers is ` +
          "flagged; transfer: the share of held-out (test) benign and borderline answers " +
          "flagged at that threshold (Wilson 95% intervals).",
        figures: [calibFigure()],
        tables: [T("Calibration and transfer", calibRows), T("Prefix AUROC by layer", compassRows)],
      },
      {
        heading: "How early the monitor flags harmful answers",
        text: "Among the unmonitored model's harmful answers: share flagged, share flagged " +
          'before the first "step N :" and before the first hazard word, and median tokens ' +
          "between the flag and those points (Wilson intervals; bootstrap for medians).",
        tables: [T("Early warning", earlyRows), T("Flag rate by prompt kind", flagRows)],
      },
      {
        heading: "What stop and steer do",
        text: "Each action against the unmonitored generation on the same prompts (delta " +
          "with a paired bootstrap interval over prompts).",
        tables: [T("Monitor actions", actionRows)],
      },
    ]
    : [];
  await writeTextFileAtomic(
    join(dir, "report.html"),
    buildReport({
      title: "Persistence of alignment across model variants, and compass monitoring",
      subtitle: `${specs.length} models · ${n} held-out prompts per kind · harmful fine-tuning ` +
        `N = ${args.attackSizes.join(", ")} · seed ${seed}${quick ? " · QUICK sizes" : ""}`,
      sections: [
        {
          heading: "Persistence of alignment",
          text: "Per model: refusal of held-out harmful prompts with no attack and after " +
            "harmful fine-tuning on N examples (5 epochs), compliance inside held-out " +
            "adversarial personas, helpful steering instructions followed on benign tasks, " +
            "and over-refusal of borderline prompts; 95% intervals over prompts. A deep " +
            "alignment keeps its refusal under attack without losing helpfulness.",
          figures: [plotPersistence(persistence)],
          tables: [
            T("Summary", persistenceSummary(persistence)),
            T(
              "Every row (delta: paired change vs the same prompts without the attack)",
              persistence,
            ),
            T("Models", variantRows),
          ],
        },
        ...monitorSections,
      ],
    }),
  );
  if (trails.length) {
    await exportAudit({ trails }, join(dir, "audit.html"), {
      subtitle: "first 3 rows of each model, action and prompt kind",
    });
  }
  console.table(persistenceSummary(persistence));
  const pct = (r: Record<string, unknown>, k: string) =>
    `${(100 * (r[`${k} rate`] as number)).toFixed(1)}% [${
      (100 * (r[`${k} lo`] as number)).toFixed(1)
    }, ${(100 * (r[`${k} hi`] as number)).toFixed(1)}] n=${r[`${k} n`]}`;
  if (calibRows.length) {
    console.table(calibRows.map((r) => ({
      model: r.model,
      layer: r.layer,
      threshold: (r.threshold as number).toPrecision(3),
      [`false flags, calibration (target ${args.fpr})`]: pct(r, "calibration"),
      "false flags, held out": pct(r, "held-out"),
    })));
  }
  log(
    `wrote ${dir}/{tables.json, persistence.csv, report.html${
      trails.length ? ", audit.html" : ""
    }}`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
