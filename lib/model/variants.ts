/**
 * Trained model variants on disk. An experiment that trains a model (RL, a defence, a
 * fine-tune) can keep it as a Hugging Face folder plus `variant.json`, the record of how it
 * was made (experiment, condition, seed, optimiser steps, the starting checkpoint and its
 * weights fingerprint), both written in ONE atomic folder write. Later runs find every
 * saved variant under a runs folder (`<runs>/<run>/models/<condition>/`) or take labelled
 * `name=path` arguments, so a measurement can cover every aligned model at once.
 *
 * @module
 */

import { basename, join } from "node:path";
import type { Model } from "./model.ts";
import { externalOf } from "./weights.ts";
import { saveModel } from "./save.ts";

/** The format tag of {@link VARIANT_FILE}. */
export const VARIANT_FORMAT = "safety-compass.variant";
/** The record's file name inside a saved variant's folder. */
export const VARIANT_FILE = "variant.json";

/** One training stage of a variant (e.g. an SFT warm-up, then PPO). */
export interface VariantStage {
  /** What ran, e.g. "template warm-up (sft)" or "ppo". */
  name: string;
  /** Optimiser steps. */
  steps: number;
}

/** How a saved variant was made (the content of `variant.json`). */
export interface VariantRecord {
  /** {@link VARIANT_FORMAT}. */
  format: string;
  /** Record version (1). */
  version: number;
  /** The experiment, e.g. "alphaalign", "craft", "traits", "defences". */
  experiment: string;
  /** The condition (as named in the experiment's tables), e.g. "zero", "dose: math". */
  condition: string;
  /** The training seed. */
  seed: number;
  /** Optimiser steps from the starting checkpoint, all stages together. */
  steps: number;
  /** The stages, in order. */
  stages: VariantStage[];
  /** The starting checkpoint (name or folder). */
  start: string;
  /** {@link weightsFingerprint} of the starting checkpoint. */
  startWeights: string;
  /** {@link weightsFingerprint} of the saved weights. */
  weights: string;
  /** New tokens per answer the experiment measured with (templated models need more). */
  maxNewTokens?: number;
  /** When it was saved (ISO 8601). */
  savedAt: string;
}

/** What a caller supplies to {@link saveVariant} (the rest is filled in). */
export type VariantInfo = Omit<
  VariantRecord,
  "format" | "version" | "weights" | "savedAt" | "steps"
>;

/**
 * A short fingerprint of a model's weights (FNV-1a over the float bits of every parameter,
 * in name order), recorded with results so a rerun can tell whether the checkpoint it
 * started from was the same.
 */
export async function weightsFingerprint(model: Model): Promise<string> {
  let h = 0x811c9dc5;
  for (const name of [...model.params.keys()].sort()) {
    const bits = new Uint32Array((await model.params.get(name)!.data() as Float32Array).buffer);
    for (let i = 0; i < bits.length; i++) h = Math.imul(h ^ bits[i], 0x01000193) >>> 0;
  }
  // Weights outside the wasm heap (large models): their stored bits, in name order too.
  const ext = externalOf(model.params);
  for (const name of [...(ext?.keys() ?? [])].sort()) {
    const d = ext!.get(name)!.data;
    for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i], 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** A folder name for a condition: lower case, runs of other characters become "-". */
export function variantSlug(condition: string): string {
  const s = condition.toLowerCase().replace(/[^a-z0-9.]+/g, "-").replace(/^-+|-+$/g, "");
  if (!s) throw new Error(`Cannot name a folder after condition '${condition}': no letters`);
  return s;
}

/**
 * Saves `model` to `dir` in the HF layout with `variant.json` (atomically: a crash leaves
 * either the old folder or the complete new one). Returns the record written.
 */
export async function saveVariant(
  model: Model,
  dir: string,
  info: VariantInfo,
): Promise<VariantRecord> {
  if (info.stages.length === 0) throw new Error(`Cannot save variant ${dir}: no training stages`);
  const record: VariantRecord = {
    format: VARIANT_FORMAT,
    version: 1,
    experiment: info.experiment,
    condition: info.condition,
    seed: info.seed,
    steps: info.stages.reduce((a, s) => a + s.steps, 0),
    stages: info.stages,
    start: info.start,
    startWeights: info.startWeights,
    weights: await weightsFingerprint(model),
    ...(info.maxNewTokens !== undefined ? { maxNewTokens: info.maxNewTokens } : {}),
    savedAt: new Date().toISOString(),
  };
  await saveModel(model, dir, {
    extraFiles: { [VARIANT_FILE]: JSON.stringify(record, null, 2) + "\n" },
  });
  return record;
}

/** The record of a saved variant folder, or undefined when it has none (a plain model folder). */
export async function readVariantRecord(dir: string): Promise<VariantRecord | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, VARIANT_FILE));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const r = JSON.parse(text) as VariantRecord;
  if (r.format !== VARIANT_FORMAT || typeof r.condition !== "string") {
    throw new Error(
      `Cannot read ${join(dir, VARIANT_FILE)}: format is '${r.format}', expected ` +
        `'${VARIANT_FORMAT}' with experiment, condition, seed and steps`,
    );
  }
  return r;
}

/** A model to measure: a label, the folder, and its record when it has one. */
export interface VariantSpec {
  /** The label in tables and figures. */
  name: string;
  /** The model folder (or a checkpoint name such as toy-base). */
  path: string;
  /** `variant.json`, when present. */
  record?: VariantRecord;
}

/**
 * Parses one variant argument: `name=path` (split at the first "="), or a bare `path`
 * (no label: the caller picks one). Throws on an empty label or path.
 */
export function parseVariantArg(arg: string): { name?: string; path: string } {
  const i = arg.indexOf("=");
  if (i < 0) {
    if (!arg.trim()) throw new Error("Cannot parse an empty variant argument: use name=path");
    return { path: arg };
  }
  const name = arg.slice(0, i).trim(), path = arg.slice(i + 1).trim();
  if (!name || !path) {
    throw new Error(`Cannot parse variant '${arg}': use name=path/to/model (both non-empty)`);
  }
  return { name, path };
}

/** The default label of a saved variant: `<experiment>/<condition slug>`, else the folder name. */
export function variantLabel(path: string, record?: VariantRecord): string {
  return record
    ? `${record.experiment}/${variantSlug(record.condition)}`
    : basename(path.replace(/\/+$/, ""));
}

async function subdirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isDirectory) out.push(e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return out.sort();
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Every saved variant under `root`: each `<root>/<run>/models/<name>/config.json` (and
 * `<root>/models/<name>/config.json` when `root` is itself a run folder), sorted by run and
 * name, labelled by {@link variantLabel}; labels that repeat (two runs of one experiment)
 * get `@<run>` appended. Folders being written (`*.tmp`) are skipped.
 */
export async function discoverVariants(root: string): Promise<VariantSpec[]> {
  const found: (VariantSpec & { run: string })[] = [];
  const scan = async (modelsDir: string, run: string) => {
    for (const name of await subdirs(modelsDir)) {
      const path = join(modelsDir, name);
      if (/\.tmp(\.old)?$/.test(name) || !(await isFile(join(path, "config.json")))) continue;
      const record = await readVariantRecord(path);
      found.push({ name: variantLabel(path, record), path, record, run });
    }
  };
  await scan(join(root, "models"), basename(root.replace(/\/+$/, "")) || root);
  for (const run of await subdirs(root)) {
    if (run !== "models") await scan(join(root, run, "models"), run);
  }
  const count = new Map<string, number>();
  for (const f of found) count.set(f.name, (count.get(f.name) ?? 0) + 1);
  return found.map(({ run, ...f }) => ({
    ...f,
    name: count.get(f.name)! > 1 ? `${f.name}@${run}` : f.name,
  }));
}

/**
 * Resolves variant arguments into labelled models: `name=path`, a bare model folder
 * (labelled by {@link variantLabel}), or a folder holding saved variants (a runs folder or a
 * run folder: {@link discoverVariants}). Also takes `roots`, folders always searched. Labels
 * must be unique; a folder that is neither a model nor holds one is an error.
 */
export async function resolveVariants(
  args: readonly string[],
  roots: readonly string[] = [],
): Promise<VariantSpec[]> {
  const out: VariantSpec[] = [];
  for (const root of roots) {
    const found = await discoverVariants(root);
    if (found.length === 0) {
      throw new Error(
        `Cannot find saved variants under '${root}': no <run>/models/<name>/config.json there ` +
          "(save some with --save-models in deno task experiments / defences)",
      );
    }
    out.push(...found);
  }
  for (const arg of args) {
    const { name, path } = parseVariantArg(arg);
    const isModel = await isFile(join(path, "config.json"));
    if (isModel || !(await isDir(path))) {
      // A model folder, or a name loadModel resolves (toy-base, hf:owner/name).
      const record = isModel ? await readVariantRecord(path) : undefined;
      out.push({ name: name ?? variantLabel(path, record), path, record });
      continue;
    }
    const found = await discoverVariants(path);
    if (found.length === 0) {
      throw new Error(
        `Cannot use '${path}': it is not a model folder (no config.json) and holds no saved ` +
          "variants (<run>/models/<name>/config.json)",
      );
    }
    if (name) {
      throw new Error(`Cannot label '${arg}': '${path}' holds ${found.length} variants`);
    }
    out.push(...found);
  }
  const seen = new Set<string>();
  for (const v of out) {
    if (seen.has(v.name)) {
      throw new Error(
        `Two variants are labelled '${v.name}' (one is ${v.path}); label them: name=path`,
      );
    }
    seen.add(v.name);
  }
  return out;
}
