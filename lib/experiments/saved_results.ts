/**
 * Saved results of the experiments, read back for the claims ledger: the newest run folder per
 * experiment under a runs folder (`runs/<name>-<stamp>/`, as `deno task experiments`,
 * `deno task defences` and `deno task persistence` write them) or a committed copy of one
 * (`datasets/results/<name>/`, which `collectResults` fills), each turned into the long
 * {@link ResultRow} format of lib/experiments/rows.ts whatever file it came from:
 *
 * - `rows.json` (alphaalign, craft, traits, hacking): the rows as written;
 * - `table.json` (defences): one "rates" row per variant and metric, pooled over seeds where a
 *   variant has several; depth-indexed metrics get their depth in the name
 *   (`prefill ASR (k=5)`, `injection ASR (t=2)`, `KL to toy-base (position 0)`);
 * - `tables.json` (persistence): one row per model, test and metric (table = the test), and
 *   one "deltas" row per attacked test (reference `<model> (no attack)`, metric
 *   `<test>: <metric>`) with its paired interval; the monitor's held-out false flags (table
 *   "monitor calibration") and each action's rates (table `monitor: <action>`).
 *
 * Whether a result is CI-sized ("quick") is read from what the run wrote, never guessed from
 * its numbers: `config.json`'s `quick` (experiments), else the report's subtitle ("quick (CI)
 * sizes" / "full sizes"); `settings.quick` (persistence); fewer than 2 training seeds or fewer
 * than 50 test prompts per kind (defences, whose --quick runs 1 seed and 12 prompts per kind).
 *
 * @module
 */

import { basename, join } from "node:path";
import { writeJsonAtomic } from "../io/atomic.ts";
import { type ResultRow, resultRow } from "./rows.ts";
import { PREDICT_METRICS } from "./defence_metrics.ts";

/** The experiments whose saved results the ledger reads, with the file each writes. */
export const SAVED_EXPERIMENTS = {
  alphaalign: "rows.json",
  craft: "rows.json",
  traits: "rows.json",
  hacking: "rows.json",
  defences: "table.json",
  persistence: "tables.json",
} as const;

/** An experiment the ledger reads. */
export type SavedExperiment = keyof typeof SAVED_EXPERIMENTS;

/** One saved result, normalised to result rows. */
export interface SavedResult {
  /** Which experiment. */
  experiment: SavedExperiment;
  /** The run folder's name, e.g. "craft-2026-12-07T02-26-51". */
  run: string;
  /** When the run started, from its folder name (ISO 8601, UTC). */
  date: string;
  /** True for CI ("quick") sizes: such a result never decides a claim. */
  quick: boolean;
  /** The folder it was read from. */
  path: string;
  /** The run's settings as it saved them ({} when it saved none). */
  config: Record<string, unknown>;
  /** Its rows in the long format. */
  rows: ResultRow[];
}

/** Saved results by experiment (an experiment is absent when nothing was found). */
export type SavedResults = Partial<Record<SavedExperiment, SavedResult>>;

const RUN_RE = new RegExp(
  `^(${Object.keys(SAVED_EXPERIMENTS).join("|")})-(\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d)`,
);

/** The experiment and start time of a run folder's name, or undefined when it is not one. */
export function parseRunName(
  name: string,
): { experiment: SavedExperiment; date: string } | undefined {
  const m = RUN_RE.exec(name);
  if (!m) return undefined;
  const [d, t] = m[2].split("T");
  return { experiment: m[1] as SavedExperiment, date: `${d}T${t.replaceAll("-", ":")}Z` };
}

async function readJson(path: string): Promise<unknown> {
  const text = await Deno.readTextFile(path);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

async function readJsonIfAny(path: string): Promise<unknown> {
  try {
    return await readJson(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

const num = (v: unknown) => (typeof v === "number" ? v : NaN); // JSON null = NaN

function asObject(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new Error(`${where}: expected a JSON object`);
  }
  return v as Record<string, unknown>;
}

function asArray(v: unknown, where: string): Record<string, unknown>[] {
  if (!Array.isArray(v)) throw new Error(`${where}: expected a JSON array of rows`);
  return v as Record<string, unknown>[];
}

/** rows.json rows (NaN written as null) back to result rows. */
function experimentRows(raw: unknown, where: string): ResultRow[] {
  return asArray(raw, where).map((r, i) => {
    if (typeof r.experiment !== "string" || typeof r.table !== "string") {
      throw new Error(`${where}: row ${i} has no experiment/table (not a rows.json)`);
    }
    return resultRow({
      ...(r as unknown as ResultRow),
      value: num(r.value),
      lo: num(r.lo),
      hi: num(r.hi),
    });
  });
}

const DEPTH_NAME: Record<string, string> = {
  "prefill ASR": "k",
  "injection ASR": "t",
  "KL to toy-base": "position",
  [PREDICT_METRICS.auroc]: "layer",
  [PREDICT_METRICS.across]: "layer",
  [PREDICT_METRICS.within]: "layer",
};

/** The name a defences row gets in the ledger, e.g. `prefill ASR (k=5)`. */
export function defenceMetricName(metric: string, x: number | null): string {
  if (x === null || x === undefined) return metric;
  const d = DEPTH_NAME[metric] ?? "x";
  return d === "position" ? `${metric} (position ${x})` : `${metric} (${d}=${x})`;
}

/** defences' table.json to result rows: pooled ("all") rows where a variant has them. */
function defenceRows(raw: unknown, where: string): ResultRow[] {
  const o = asObject(raw, where);
  const rows = asArray(o.rows, `${where} .rows`);
  const cfg = asObject(o.config ?? {}, `${where} .config`);
  const seeds = Array.isArray(cfg.seeds) ? cfg.seeds.join(" ") : "";
  const pooled = new Set(rows.filter((r) => r.seed === "all").map((r) => String(r.variant)));
  return rows.filter((r) => !pooled.has(String(r.variant)) || r.seed === "all").map((r) =>
    resultRow({
      experiment: "defences",
      table: "rates",
      condition: String(r.variant),
      metric: defenceMetricName(String(r.metric), r.x as number | null),
      value: num(r.value),
      lo: num(r.lo),
      hi: num(r.hi),
      n: num(r.n),
      seeds: r.seed === "all" ? seeds : String(r.seed),
      method: r.metric === "KL to toy-base"
        ? "bootstrap over prompts"
        : String(r.metric).startsWith(PREDICT_METRICS.across)
        ? "Fisher-z"
        : String(r.metric) === PREDICT_METRICS.auroc
        ? "held-out prompts"
        : "prompt-clustered bootstrap (Wilson at 0 and 1)",
    })
  );
}

/** persistence's tables.json to result rows: rates per test, and the paired deltas. */
function persistenceRows(raw: unknown, where: string): ResultRow[] {
  const o = asObject(raw, where);
  const rows = asArray(o.persistence, `${where} .persistence`);
  const settings = asObject(o.settings ?? {}, `${where} .settings`);
  const seeds = String(settings.seed ?? "");
  const rateRows = rows.flatMap((r) => {
    const base = {
      experiment: "persistence",
      condition: String(r.model),
      n: num(r.n),
      prompts: num(r.prompts),
      seeds,
    };
    const rate = resultRow({
      ...base,
      table: String(r.test),
      metric: String(r.metric),
      value: num(r.rate),
      lo: num(r.lo),
      hi: num(r.hi),
      method: String(r.interval ?? ""),
    });
    if (r.test === "no attack" || !Number.isFinite(num(r.delta))) return [rate];
    return [
      rate,
      resultRow({
        ...base,
        table: "deltas",
        reference: `${r.model} (no attack)`,
        metric: `${r.test}: ${r.metric}`,
        value: num(r.delta),
        lo: num(r.deltaLo),
        hi: num(r.deltaHi),
        method: "paired bootstrap over prompts",
      }),
    ];
  });
  // The monitor: held-out false flags of the calibrated threshold, and every action's rates.
  const calibration = Array.isArray(o.calibration)
    ? o.calibration as Record<string, unknown>[]
    : [];
  const actions = Array.isArray(o.monitorActions)
    ? o.monitorActions as Record<string, unknown>[]
    : [];
  return [
    ...rateRows,
    ...calibration.map((r) =>
      resultRow({
        experiment: "persistence",
        table: "monitor calibration",
        condition: String(r.model),
        metric: "held-out false flags",
        value: num(r["held-out rate"]),
        lo: num(r["held-out lo"]),
        hi: num(r["held-out hi"]),
        n: num(r["held-out n"]),
        seeds,
        method: "Wilson",
      })
    ),
    ...actions.map((r) =>
      resultRow({
        experiment: "persistence",
        table: `monitor: ${r.action}`,
        condition: String(r.model),
        metric: String(r.metric),
        value: num(r.rate),
        lo: num(r.lo),
        hi: num(r.hi),
        n: num(r.n),
        prompts: num(r.prompts),
        seeds,
        method: String(r.interval ?? ""),
      })
    ),
  ];
}

/** Reads one saved result folder (a run folder or a collected copy); undefined when it holds none. */
export async function readSavedResult(dir: string): Promise<SavedResult | undefined> {
  const prov = await readJsonIfAny(join(dir, "provenance.json")) as
    | Record<string, unknown>
    | undefined;
  const run = typeof prov?.run === "string" ? prov.run : basename(dir);
  const parsed = parseRunName(run);
  if (!parsed) return undefined;
  const { experiment, date } = parsed;
  const file = join(dir, SAVED_EXPERIMENTS[experiment]);
  const raw = await readJsonIfAny(file);
  if (raw === undefined) return undefined; // a run still in progress, or one that failed
  let config: Record<string, unknown> = {};
  let quick: boolean;
  let rows: ResultRow[];
  if (experiment === "defences") {
    rows = defenceRows(raw, file);
    config = asObject((raw as Record<string, unknown>).config ?? {}, file);
    const seeds = Array.isArray(config.seeds) ? config.seeds.length : 0;
    quick = seeds < 2 || num(config.perKind) < 50;
  } else if (experiment === "persistence") {
    rows = persistenceRows(raw, file);
    config = asObject((raw as Record<string, unknown>).settings ?? {}, file);
    quick = config.quick === true;
  } else {
    rows = experimentRows(raw, file);
    const saved = await readJsonIfAny(join(dir, "config.json"));
    if (typeof prov?.quick === "boolean") quick = prov.quick;
    else if (saved !== undefined) {
      quick = asObject(saved, join(dir, "config.json")).quick === true;
    } else {
      // Runs from before config.json: the report's subtitle says which sizes ran.
      const report = await Deno.readTextFile(join(dir, "report.html")).catch(() => "");
      if (report.includes("quick (CI) sizes")) quick = true;
      else if (report.includes("full sizes")) quick = false;
      else {
        throw new Error(
          `${dir}: cannot tell whether this run is quick or full-size (no config.json, and ` +
            "report.html says neither 'quick (CI) sizes' nor 'full sizes')",
        );
      }
    }
    if (saved !== undefined) config = asObject(saved, join(dir, "config.json"));
  }
  if (typeof prov?.quick === "boolean") quick = prov.quick;
  return { experiment, run, date, quick, path: dir, config, rows };
}

/** `a` is preferred over `b`: full-size over quick, then the newer. */
function better(a: SavedResult, b: SavedResult | undefined): boolean {
  if (!b) return true;
  if (a.quick !== b.quick) return !a.quick;
  return a.date > b.date;
}

/**
 * The newest saved result per experiment under the given folders (each may hold run folders
 * `<name>-<stamp>/` and collected copies `<name>/` with a provenance.json). A full-size result
 * always wins over a quick one, whatever their dates; among equals the newer wins. Missing
 * folders are skipped.
 *
 * @example
 * ```ts
 * import { loadSavedResults } from "./saved_results.ts";
 * const results = await loadSavedResults("datasets/results", "runs");
 * console.log(results.craft?.run ?? "no craft run yet");
 * ```
 */
export async function loadSavedResults(...dirs: string[]): Promise<SavedResults> {
  const out: SavedResults = {};
  for (const dir of dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (!e.isDirectory) continue;
      const r = await readSavedResult(join(dir, e.name));
      if (r && better(r, out[r.experiment])) out[r.experiment] = r;
    }
  }
  return out;
}

/**
 * Copies the newest FULL-size result of each experiment under `runsDir` into `intoDir/<name>/`
 * (its result file, its config.json when it has one, and a provenance.json naming the run
 * folder, its date, where it was copied from and when). Quick results are never copied. Returns
 * what was copied; experiments with no full-size run are left as they are.
 *
 * @example
 * ```ts
 * import { collectResults } from "./saved_results.ts";
 * const copied = await collectResults("runs", "datasets/results");
 * console.log(copied.map((r) => r.run));
 * ```
 */
export async function collectResults(runsDir: string, intoDir: string): Promise<SavedResult[]> {
  const found = await loadSavedResults(runsDir);
  const copied: SavedResult[] = [];
  for (const r of Object.values(found)) {
    if (r.quick) continue;
    const dest = join(intoDir, r.experiment);
    await Deno.mkdir(dest, { recursive: true });
    const file = SAVED_EXPERIMENTS[r.experiment];
    await Deno.copyFile(join(r.path, file), join(dest, file));
    const cfg = join(r.path, "config.json");
    const hasCfg = await Deno.stat(cfg).then(() => true, () => false);
    if (hasCfg) await Deno.copyFile(cfg, join(dest, "config.json"));
    await writeJsonAtomic(join(dest, "provenance.json"), {
      experiment: r.experiment,
      run: r.run,
      date: r.date,
      quick: false,
      copiedFrom: r.path,
      copiedAt: new Date().toISOString(),
      file,
    });
    copied.push({ ...r, path: dest });
  }
  return copied;
}
