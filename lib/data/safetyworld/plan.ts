/**
 * SafetyWorld's hold-out plan: which templates, entities and hazard items belong to which
 * split, and the row types every SafetyWorld file shares.
 *
 * Splits are by prompt TEMPLATE (each template carries a fixed split) and by ENTITY (each
 * arithmetic pair, list, dish, knowledge-base question and hazard item is assigned a split
 * from the seed), so memorising strings cannot pass a test row: a test row uses a test
 * template AND a test entity. Hazard items held out for validation/test never enter the
 * safety data (align, recovery, training traces); the base model's SFT still contains them,
 * because an unaligned base must "know" every hazard for held-out refusal to be measurable.
 *
 * @module
 */

import type { PromptLabel, PromptRow, Split, TraceRow } from "../schema.ts";
import { makeRng, type Rng } from "../rng.ts";
import {
  DISH_FORMS,
  HAZARD_CATEGORIES,
  HAZARD_ITEMS,
  type HazardItem,
  INGREDIENTS,
  UNKNOWN,
} from "./lexicon.ts";
import { KB_FACTS } from "./facts.ts";

/** What a SafetyWorld prompt is. `jailbreak` = a harmful request in a wrapper. */
export type WorldKind = "task" | "harmful" | "borderline" | "jailbreak" | "trait" | "fact";

/** A prompt before it becomes a row (no id or source yet): every SafetyWorld field. */
export interface Draft {
  /** The user request. */
  prompt: string;
  /** harmful / benign / borderline. */
  label: PromptLabel;
  /** Hazard category for harmful rows, else the task domain (or "everyday"). */
  category: string;
  /** Split (train / validation / test). */
  split: Split;
  /** The verifiable reference answer, where one exists. */
  answer?: string;
  /** What the prompt is. */
  kind: WorldKind;
  /** Task domain: arithmetic, kb, list, recipe, borderline, harm, math, geography, science. */
  domain: string;
  /** The prompt template's id, e.g. "ar-t2"; its split is fixed. */
  templateId: string;
  /** The held-out unit this row is about, e.g. "3+4", "capital:velmora", "zorblat". */
  entity: string;
  /** What makes the row held out, e.g. "template+entity"; absent on train rows. */
  heldOut?: string;
  /** The hazard item of harmful, jailbreak and some borderline rows. */
  hazard?: string;
  /** Jailbreak family (validation/test only). */
  family?: string;
  /** Jailbreak wrapper template id. */
  wrapperId?: string;
  /** Trait of trait scenarios: honesty, corrigibility, humility. */
  trait?: string;
  /**
   * Test rows worded by a template variant: the same prompt as the variant's head template
   * words it (templates.ts, `variantFor`). The generator dedupes on it, then drops it: it
   * never reaches a file.
   */
  headPrompt?: string;
  /** The wrong answer a user asserts (honesty) or the bot's earlier mistake (corrigibility). */
  wrong?: string;
}

/** Fields shared by every SafetyWorld row (extends the toolkit's PromptRow). */
export interface WorldPromptRow extends PromptRow, Draft {
  /** Always "safetyworld". */
  source: "safetyworld";
  /** Split (train / validation / test). */
  split: Split;
  /** The verifiable reference answer, where one exists. */
  answer?: string;
}

/** A supervised example: prompt plus the target response (sft, align, recovery files). */
export interface WorldSftRow extends WorldPromptRow {
  /** Target response (full text after `bot :`). */
  response: string;
  /** What the response does: helpful, comply, refuse, good, bad, recover, continue. */
  behaviour: string;
  /**
   * Recovery rows: how many leading response tokens are the given (harmful or benign)
   * prefix, on which the loss should NOT be taken; the rest is the continuation to learn.
   */
  prefixTokens?: number;
}

/** A trace for fitting the safety compass (a TraceRow with the world's fields). */
export interface WorldTraceRow extends WorldPromptRow, TraceRow {
  /** Always "safetyworld". */
  source: "safetyworld";
  /** Split (train / validation / test). */
  split: Split;
}

/** A trait scenario with one good and one bad response. */
export interface WorldTraitRow extends WorldPromptRow {
  /** The response that shows the trait. */
  good: string;
  /** The response that fails it (sycophancy, resisting correction, confabulation). */
  bad: string;
}

/** Everything the generator produces, one array per file. */
export interface World {
  /** The seed that made it. */
  seed: number;
  /** prompts.jsonl: evaluation prompts of every kind, all splits. */
  prompts: WorldPromptRow[];
  /** sft.jsonl: the base model's supervised set. */
  sft: WorldSftRow[];
  /** align.jsonl: refusal SFT for the shallow model. */
  align: WorldSftRow[];
  /** recovery.jsonl: safety-recovery examples (Qi et al. 2024). */
  recovery: WorldSftRow[];
  /** traces.jsonl: safe / unsafe / rethink traces in both templates. */
  traces: WorldTraceRow[];
  /** traits.jsonl: trait scenarios with good and bad responses. */
  traits: WorldTraitRow[];
}

/** Key order of every serialised row (unknown keys follow, sorted). */
export const KEY_ORDER: readonly string[] = [
  "id",
  "prompt",
  "response",
  "prefixTokens",
  "trace",
  "traceLabel",
  "template",
  "good",
  "bad",
  "behaviour",
  "label",
  "category",
  "source",
  "split",
  "answer",
  "wrong",
  "kind",
  "domain",
  "hazard",
  "family",
  "wrapperId",
  "trait",
  "templateId",
  "entity",
  "heldOut",
];

/** A drafted prompt plus a writer of its helpful (benign) or compliant (harmful) answer. */
export interface Sample {
  /** The prompt's fields. */
  draft: Draft;
  /** Writes one (varied) answer: correct for benign rows, harmful compliance for harmful. */
  respond(rng: Rng): string;
}

/** The seeded assignment of entities and hazard items to splits. */
export interface Plan {
  /** The seed. */
  seed: number;
  /** Split of a combinatorial entity key (arithmetic pair, list, dish, kb question). */
  entitySplit(key: string): Split;
  /** Hazard items per split (one test and one validation item per category). */
  hazards: Readonly<Record<Split, readonly HazardItem[]>>;
  /** Unknown (not-in-kb) names per domain and split, for humility scenarios. */
  unknown(domain: keyof typeof UNKNOWN, split: Split): readonly string[];
  /**
   * The stream that draws test-template variants (templates.ts, `variantFor`). The world's
   * makers give each file a stream of its own ({@link withVariants}), so variant draws never
   * touch the row streams; without one the generators draw variants from the row's stream.
   */
  variants?: Rng;
}

/** The plan with its own stream for test-template variants ({@link Plan.variants}). */
export function withVariants(plan: Plan, variants: Rng): Plan {
  return { ...plan, variants };
}

/** FNV-1a hash of a string to a uniform number in [0, 1). */
export function hashUnit(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return (h >>> 0) / 4294967296;
}

/**
 * Builds the hold-out plan for a seed. Small entity sets get fixed quotas so every split
 * has some: per kb relation and per hazard category one test and one validation entity,
 * three test and three validation dishes; large combinatorial sets (sums, lists) are split
 * 80/10/10 by a seeded hash.
 */
export function makePlan(seed: number): Plan {
  const rng = makeRng(seed ^ 0x5a17);
  const fixed = new Map<string, Split>();
  const quota = (keys: readonly string[], n: number): void => {
    const s = rng.shuffle(keys);
    s.forEach((k, i) => fixed.set(k, i < n ? "test" : i < 2 * n ? "validation" : "train"));
  };
  for (const rel of [...new Set(KB_FACTS.map((f) => f.relation))]) {
    quota(KB_FACTS.filter((f) => f.relation === rel).map((f) => f.key), 1);
  }
  quota(INGREDIENTS.flatMap((i) => DISH_FORMS.map(([f]) => `dish:${i} ${f}`)), 3);
  const hazards: Record<Split, HazardItem[]> = { train: [], validation: [], test: [] };
  for (const c of HAZARD_CATEGORIES) {
    const items = rng.shuffle(HAZARD_ITEMS.filter((h) => h.category === c.name));
    hazards.test.push(items[0]);
    hazards.validation.push(items[1]);
    hazards.train.push(...items.slice(2));
  }
  const unknownSplits = new Map<string, Record<Split, string[]>>();
  for (const [domain, names] of Object.entries(UNKNOWN)) {
    const s = rng.shuffle(names);
    const third = Math.floor(s.length / 3);
    unknownSplits.set(domain, {
      train: s.slice(2 * third),
      validation: s.slice(third, 2 * third),
      test: s.slice(0, third),
    });
  }
  return {
    seed,
    entitySplit(key) {
      const f = fixed.get(key);
      if (f) return f;
      const u = hashUnit(`${seed}|${key}`);
      return u < 0.8 ? "train" : u < 0.9 ? "validation" : "test";
    },
    hazards,
    unknown: (domain, split) => unknownSplits.get(domain)![split],
  };
}

/** The `heldOut` note of a row in `split` (the template plus `parts`; none for train). */
export function heldOutNote(split: Split, ...parts: string[]): string | undefined {
  return split === "train" ? undefined : ["template", ...parts].join("+");
}
