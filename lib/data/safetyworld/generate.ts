/**
 * SafetyWorld generator (DESIGN.md, "SafetyWorld"): a pure, seeded function from a seed to
 * every file of the world (prompts, base SFT, refusal SFT, safety-recovery examples after
 * Qi et al. 2024 (arXiv 2406.05946), compass traces, trait scenarios), and the atomic JSONL
 * writer. Same seed -> byte-identical files; each file draws from its own forked stream.
 *
 * @module
 */

import { join } from "node:path";
import { makeRng, type Rng } from "../rng.ts";
import type { Split, TraceLabel, TraceTemplate } from "../schema.ts";
import { writeTextFileAtomic } from "../../io/atomic.ts";
import { HAZARD_ITEMS } from "./lexicon.ts";
import {
  type Draft,
  KEY_ORDER,
  makePlan,
  type Plan,
  type Sample,
  type World,
  type WorldPromptRow,
  type WorldSftRow,
  type WorldTraceRow,
  type WorldTraitRow,
} from "./plan.ts";
import { benignTask, factRow } from "./tasks.ts";
import { borderlinePrompt, harmfulRequest, refusal } from "./harm.ts";
import { jailbreakPrompt } from "./jailbreak.ts";
import { type TraitSample, traitScenario, TRAIT_DOMAINS, TRAITS } from "./traits.ts";
import { benignTrace, harmfulTrace } from "./traces.ts";
import { MAX_WORLD_TOKENS, worldLength } from "./tokenizer.ts";

/** Row counts per file. */
export interface WorldSizes {
  /** prompts.jsonl. @default 3000 */
  prompts: number;
  /** sft.jsonl. @default 20000 */
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
  sft: 20000,
  align: 4000,
  recovery: 2000,
  traces: 3000,
  traits: 3000,
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
}

/** The world's file names (without ".jsonl"), in writing order. */
export const WORLD_FILES = ["prompts", "sft", "align", "recovery", "traces", "traits"] as const;

/** Deterministic quotas: `n` labels in proportion to `weights`, shuffled by `rng`. */
function quotas<T>(rng: Rng, n: number, weights: readonly (readonly [T, number])[]): T[] {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  const out: T[] = [];
  let acc = 0;
  for (const [label, w] of weights) {
    acc += w;
    const upto = Math.round((acc / total) * n);
    while (out.length < upto) out.push(label);
  }
  return rng.shuffle(out);
}

/** Retries `make` until its text fits the context; throws naming the example otherwise. */
function fit<T>(make: () => T, text: (v: T) => [string, string?], what: string): T {
  let last = "";
  for (let i = 0; i < 50; i++) {
    const v = make();
    const [p, r] = text(v);
    if (worldLength(p, r) <= MAX_WORLD_TOKENS) return v;
    last = `${p} || ${r ?? ""}`;
  }
  throw new Error(`Cannot fit a ${what} in ${MAX_WORLD_TOKENS} tokens; last try: ${last}`);
}

function row<T extends object>(prefix: string, i: number, draft: Draft, extra: T): WorldPromptRow & T {
  return { id: `${prefix}${String(i).padStart(5, "0")}`, ...draft, source: "safetyworld", ...extra };
}

type PromptKind = "task" | "harmful" | "borderline" | "jailbreak" | "trait";

function drawPrompt(rng: Rng, plan: Plan, split: Split, kind: PromptKind): Draft {
  if (kind === "task") return benignTask(rng, plan, split).draft;
  if (kind === "harmful") return harmfulRequest(rng, plan, split).draft;
  if (kind === "borderline") return borderlinePrompt(rng, plan, split).draft;
  if (kind === "jailbreak") return jailbreakPrompt(rng, plan, split).draft;
  return traitScenario(rng, plan, split).draft;
}

function makePrompts(rng: Rng, plan: Plan, n: number): WorldPromptRow[] {
  const out: WorldPromptRow[] = [];
  const seen = new Set<string>();
  const splits = quotas<Split>(rng, n, [["train", 0.3], ["validation", 0.2], ["test", 0.5]]).sort();
  const bySplit = (s: Split) => splits.filter((x) => x === s).length;
  for (const split of ["train", "validation", "test"] as const) {
    const weights: [PromptKind, number][] = split === "train"
      ? [["task", 0.35], ["harmful", 0.3], ["borderline", 0.15], ["trait", 0.2]]
      : [["task", 0.25], ["harmful", 0.2], ["borderline", 0.15], ["jailbreak", 0.25], ["trait", 0.15]];
    for (const kind of quotas(rng, bySplit(split), weights)) {
      let d = drawPrompt(rng, plan, split, kind);
      for (let tries = 0; tries < 20 && seen.has(d.prompt); tries++) d = drawPrompt(rng, plan, split, kind);
      d = fit(() => d, (v) => [v.prompt, "x ".repeat(30).trim()], `${kind} prompt`);
      seen.add(d.prompt);
      out.push(row("p", out.length, d, {}));
    }
  }
  return out;
}

function sftRow(prefix: string, i: number, s: Sample, rng: Rng, behaviour: string, respond?: (r: Rng) => string) {
  const write = respond ?? s.respond;
  const response = fit(() => write(rng), (r) => [s.draft.prompt, r], `${s.draft.kind} response`);
  return row(prefix, i, s.draft, { response, behaviour }) as WorldSftRow;
}

function refuser(s: Sample): (r: Rng) => string {
  const h = HAZARD_ITEMS.find((x) => x.name === s.draft.hazard)!;
  return (r) => refusal(r, h.name, h.category);
}

function makeSft(rng: Rng, plan: Plan, n: number, harmfulShare: number): WorldSftRow[] {
  const rest = 1 - harmfulShare;
  const kinds = quotas(rng, n, [
    ["harmful", harmfulShare],
    ["borderline", 0.15 * rest],
    ["trait", 0.12 * rest],
    ["fact", 0.08 * rest],
    ["task", 0.65 * rest],
  ]);
  return kinds.map((k, i) => {
    if (k === "harmful") return sftRow("s", i, harmfulRequest(rng, plan, "train", HAZARD_ITEMS), rng, "comply");
    if (k === "borderline") return sftRow("s", i, borderlinePrompt(rng, plan, "train"), rng, "helpful");
    if (k === "fact") return sftRow("s", i, factRow(rng), rng, "helpful");
    if (k === "task") return sftRow("s", i, benignTask(rng, plan, "train"), rng, "helpful");
    const t = traitScenario(rng, plan, "train");
    const good = rng.next() < 0.5;
    return sftRow("s", i, { draft: t.draft, respond: good ? t.good : t.bad }, rng, good ? "good" : "bad");
  });
}

function makeAlign(rng: Rng, plan: Plan, n: number): WorldSftRow[] {
  const kinds = quotas(rng, n, [["harmful", 0.5], ["task", 0.35], ["borderline", 0.15]]);
  return kinds.map((k, i) => {
    if (k === "task") return sftRow("a", i, benignTask(rng, plan, "train"), rng, "helpful");
    if (k === "borderline") return sftRow("a", i, borderlinePrompt(rng, plan, "train"), rng, "helpful");
    const s = harmfulRequest(rng, plan, "train");
    return sftRow("a", i, s, rng, "refuse", refuser(s));
  });
}

function makeRecovery(rng: Rng, plan: Plan, n: number, benignShare: number): WorldSftRow[] {
  const kinds = quotas(rng, n, [["harmful", 1 - benignShare], ["benign", benignShare]]);
  return kinds.map((k, i) => {
    const harmful = k === "harmful";
    const s = harmful
      ? harmfulRequest(rng, plan, "train")
      : rng.next() < 0.7
      ? benignTask(rng, plan, "train", "recipe")
      : borderlinePrompt(rng, plan, "train");
    const made = fit(() => {
      const full = s.respond(rng).split(" ");
      const k = 1 + rng.int(Math.min(36, full.length - 1));
      const continuation = harmful ? refuser(s)(rng) : full.slice(k).join(" ");
      return { response: `${full.slice(0, k).join(" ")} ${continuation}`, prefixTokens: k };
    }, (v) => [s.draft.prompt, v.response], "recovery example");
    const behaviour = harmful ? "recover" : "continue";
    return row("r", i, s.draft, { response: made.response, behaviour, prefixTokens: made.prefixTokens }) as WorldSftRow;
  });
}

function makeTraces(rng: Rng, plan: Plan, n: number): WorldTraceRow[] {
  const out: WorldTraceRow[] = [];
  const splits = quotas<Split>(rng, n, [["train", 0.7], ["validation", 0.15], ["test", 0.15]]);
  const labels = quotas<TraceLabel>(rng, n, [["safe", 1], ["unsafe", 1], ["rethink", 1]]);
  for (let i = 0; i < n; i++) {
    const split = splits[i];
    const template: TraceTemplate = rng.next() < 0.5 ? "think" : "alphaalign";
    const u = rng.next();
    const kind = u < 0.6 ? (split !== "train" && rng.next() < 0.25 ? "jailbreak" : "harmful") : u < 0.9 ? "task" : "borderline";
    const s = kind === "jailbreak"
      ? jailbreakPrompt(rng, plan, split)
      : kind === "harmful"
      ? harmfulRequest(rng, plan, split)
      : kind === "task"
      ? benignTask(rng, plan, split)
      : borderlinePrompt(rng, plan, split);
    const traceLabel: TraceLabel = kind === "harmful" || kind === "jailbreak" ? labels[i] : "safe";
    const h = HAZARD_ITEMS.find((x) => x.name === s.draft.hazard);
    const trace = fit(
      () =>
        traceLabel !== "safe" || s.draft.label === "harmful"
          ? harmfulTrace(rng, template, traceLabel, h!.name, h!.category)
          : benignTrace(rng, template, s.draft.domain, s.respond(rng), s.draft.hazard),
      (t) => [s.draft.prompt, t],
      `${traceLabel} trace`,
    );
    out.push(row("t", i, s.draft, { trace, traceLabel, template }) as WorldTraceRow);
  }
  return out;
}

function makeTraits(rng: Rng, plan: Plan, n: number): WorldTraitRow[] {
  const splits = quotas<Split>(rng, n, [["train", 0.6], ["validation", 0.2], ["test", 0.2]]);
  const cells = quotas(rng, n, TRAITS.flatMap((t) => TRAIT_DOMAINS.map((d) => [[t, d] as const, 1] as const)));
  return splits.map((split, i) => {
    const [trait, domain] = cells[i];
    const t: TraitSample = traitScenario(rng, plan, split, trait, domain);
    const pair = fit(
      () => ({ good: t.good(rng), bad: t.bad(rng) }),
      (v) => [t.draft.prompt, v.good.length > v.bad.length ? v.good : v.bad],
      "trait scenario",
    );
    return row("q", i, t.draft, pair) as WorldTraitRow;
  });
}

/** Generates the whole world for a seed (pure and deterministic: no I/O, no clock). */
export function generateWorld(opts: WorldOptions = {}): World {
  const seed = opts.seed ?? 0;
  const sizes: WorldSizes = { ...DEFAULT_SIZES, ...opts.sizes };
  for (const [k, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`sizes.${k} must be a non-negative integer, got ${v}`);
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
    sft: makeSft(r[1], plan, sizes.sft, share),
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
