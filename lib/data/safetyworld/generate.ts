/**
 * SafetyWorld generator (DESIGN.md, "SafetyWorld"): a pure, seeded function from a seed to
 * every file of the world (prompts, base SFT, refusal SFT, safety-recovery examples after
 * Qi et al. 2024 (arXiv 2406.05946), compass traces, trait scenarios), and the atomic JSONL
 * writer. Same seed -> byte-identical files; each file draws from its own forked stream, and
 * a smaller size gives exactly a prefix of the larger file (row makers in `makers.ts`).
 *
 * @module
 */

import { join } from "node:path";
import { makeRng } from "../rng.ts";
import { writeTextFileAtomic } from "../../io/atomic.ts";
import { KEY_ORDER, makePlan, type World } from "./plan.ts";
import { makeAlign, makePrompts, makeRecovery, makeSft, makeTraces, makeTraits } from "./makers.ts";

/** Row counts per file. */
export interface WorldSizes {
  /** prompts.jsonl. @default 3000 */
  prompts: number;
  /** sft.jsonl. @default 40000 */
  sft: number;
  /** align.jsonl. @default 4000 */
  align: number;
  /** recovery.jsonl. @default 2000 */
  recovery: number;
  /** traces.jsonl. @default 3000 */
  traces: number;
  /** traits.jsonl. @default 3000 */
  traits: number;
}

/** Default sizes. */
export const DEFAULT_SIZES: Readonly<WorldSizes> = {
  prompts: 3000,
  sft: 40000,
  align: 4000,
  recovery: 2000,
  traces: 3000,
  traits: 3000,
};

/**
 * The sizes of the files committed in `datasets/safetyworld` (seed 0): a prefix of the
 * default-size world that keeps the committed JSONL near 6 MB (the full default world is
 * ~12.7 MB; `generateWorld()` makes it in memory in seconds, so trainers use that).
 */
export const COMMITTED_SIZES: Readonly<WorldSizes> = {
  prompts: 3000,
  sft: 7000,
  align: 2000,
  recovery: 1000,
  traces: 2000,
  traits: 1500,
};

/** Options of {@link generateWorld}. */
export interface WorldOptions {
  /** Seed of every random choice. @default 0 */
  seed?: number;
  /** Row counts per file (missing ones take {@link DEFAULT_SIZES}). */
  sizes?: Partial<WorldSizes>;
  /** Share of sft.jsonl that is harmful compliance (the prototype's value). @default 0.35 */
  harmfulShare?: number;
  /** Share of recovery.jsonl that is benign prefix -> continuation. @default 0.25 */
  recoveryBenignShare?: number;
  /**
   * Share of sft.jsonl's training prompts wrapped in a conversational frame ("please , ...
   * thanks .", lib/data/safetyworld/frames.ts). Without frames the base model failed on
   * held-out templates (list tasks: 12% on test templates); with them, 38-48%. @default 0.5
   */
  frameRate?: number;
}

/** The world's file names (without ".jsonl"), in writing order. */
export const WORLD_FILES = ["prompts", "sft", "align", "recovery", "traces", "traits"] as const;

/** Generates the whole world for a seed (pure and deterministic: no I/O, no clock). */
export function generateWorld(opts: WorldOptions = {}): World {
  const seed = opts.seed ?? 0;
  const sizes: WorldSizes = { ...DEFAULT_SIZES, ...opts.sizes };
  for (const [k, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 0) {
      throw new Error(`sizes.${k} must be a non-negative integer, got ${v}`);
    }
  }
  const share = opts.harmfulShare ?? 0.35;
  const benignShare = opts.recoveryBenignShare ?? 0.25;
  for (const [k, v] of [["harmfulShare", share], ["recoveryBenignShare", benignShare]] as const) {
    if (!(v >= 0 && v <= 1)) throw new Error(`${k} must be in [0, 1], got ${v}`);
  }
  const plan = makePlan(seed);
  const root = makeRng(seed);
  const r = WORLD_FILES.map(() => root.fork());
  return {
    seed,
    prompts: makePrompts(r[0], plan, sizes.prompts),
    sft: makeSft(r[1], plan, sizes.sft, share, opts.frameRate ?? 0.5),
    align: makeAlign(r[2], plan, sizes.align),
    recovery: makeRecovery(r[3], plan, sizes.recovery, benignShare),
    traces: makeTraces(r[4], plan, sizes.traces),
    traits: makeTraits(r[5], plan, sizes.traits),
  };
}

/** One row as a JSON line with keys in {@link KEY_ORDER} (unknown keys after, sorted). */
export function serializeRow(row: object): string {
  const rec = row as Record<string, unknown>;
  const keys = Object.keys(rec).filter((k) => rec[k] !== undefined);
  const known = KEY_ORDER.filter((k) => keys.includes(k));
  const other = keys.filter((k) => !KEY_ORDER.includes(k)).sort();
  return JSON.stringify(Object.fromEntries([...known, ...other].map((k) => [k, rec[k]])));
}

/** Every file of a world as JSONL text, keyed by file name (e.g. "sft.jsonl"). */
export function serializeWorld(world: World): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of WORLD_FILES) {
    out[`${name}.jsonl`] = world[name].map((r) => serializeRow(r) + "\n").join("");
  }
  return out;
}

/** Writes the world's six JSONL files into `dir`, each atomically. */
export async function writeWorld(dir: string, world: World): Promise<void> {
  for (const [name, text] of Object.entries(serializeWorld(world))) {
    await writeTextFileAtomic(join(dir, name), text);
  }
}
