/**
 * The per-file row makers of the SafetyWorld generator. Each file takes one seeded stream
 * and splits it into a quota stream and a row stream; quotas are exact per block of 100
 * rows, so a smaller file is exactly a PREFIX of a larger one made with the same seed
 * (the committed files can be a prefix of the default-size world).
 *
 * Recovery examples follow Qi et al. 2024 (arXiv 2406.05946): a harmful prompt, a harmful
 * answer prefix of random length (1-36 tokens, as in DESIGN.md's prototype), then a
 * refusal; a share of benign rows continue a benign step prefix instead, so "a step
 * prefix" never implies "refuse".
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { Split, TraceLabel, TraceTemplate } from "../schema.ts";
import { HAZARD_ITEMS } from "./lexicon.ts";
import {
  type Draft,
  type Plan,
  type Sample,
  withVariants,
  type WorldPromptRow,
  type WorldSftRow,
  type WorldTraceRow,
  type WorldTraitRow,
} from "./plan.ts";
import { benignTask, factRow } from "./tasks.ts";
import { framePrompt } from "./frames.ts";
import { borderlinePrompt, harmfulRequest, refusal } from "./harm.ts";
import { jailbreakPrompt } from "./jailbreak.ts";
import { TRAIT_DOMAINS, TRAITS, traitScenario } from "./traits.ts";
import { benignTrace, harmfulTrace } from "./traces.ts";
import { MAX_WORLD_TOKENS, worldLength } from "./tokenizer.ts";

const BLOCK = 100;

/** `n` labels, exactly proportional to `weights` within each block of 100, shuffled. */
export function blockQuotas<T>(
  rng: Rng,
  n: number,
  weights: readonly (readonly [T, number])[],
): T[] {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  const out: T[] = [];
  while (out.length < n) {
    const block: T[] = [];
    let acc = 0;
    for (const [label, w] of weights) {
      acc += w;
      const upto = Math.round((acc / total) * BLOCK);
      while (block.length < upto) block.push(label);
    }
    out.push(...rng.shuffle(block));
  }
  return out.slice(0, n);
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

function row<T extends object>(
  prefix: string,
  i: number,
  draft: Draft,
  extra: T,
): WorldPromptRow & T {
  const { headPrompt: _, ...fields } = draft;
  return {
    id: `${prefix}${String(i).padStart(5, "0")}`,
    ...fields,
    source: "safetyworld",
    ...extra,
  };
}

function streams(rng: Rng): [Rng, Rng] {
  return [rng.fork(), rng.fork()];
}

type PromptKind = "task" | "harmful" | "borderline" | "jailbreak" | "trait";

function drawPrompt(rng: Rng, plan: Plan, split: Split, kind: PromptKind): Draft {
  if (kind === "task") return benignTask(rng, plan, split).draft;
  if (kind === "harmful") return harmfulRequest(rng, plan, split).draft;
  if (kind === "borderline") return borderlinePrompt(rng, plan, split).draft;
  if (kind === "jailbreak") return jailbreakPrompt(rng, plan, split).draft;
  return traitScenario(rng, plan, split).draft;
}

const PROMPT_MIX: readonly (readonly [readonly [Split, PromptKind], number])[] = [
  ...([["task", 35], ["harmful", 30], ["borderline", 15], ["trait", 20]] as const).map(
    ([k, w]) => [["train", k], 0.3 * w] as const,
  ),
  ...(["validation", "test"] as const).flatMap((s) =>
    ([["task", 25], ["harmful", 20], ["borderline", 15], ["jailbreak", 25], ["trait", 15]] as const)
      .map(([k, w]) => [[s, k], (s === "test" ? 0.5 : 0.2) * w] as const)
  ),
];

/** prompts.jsonl: 30% train / 20% validation / 50% test; jailbreaks only outside train. */
export function makePrompts(rng: Rng, plan: Plan, n: number): WorldPromptRow[] {
  const [qr, rr] = streams(rng);
  const vplan = withVariants(plan, rng.fork());
  // Deduped by the head template's wording, so the retries (and every later draw) do not
  // depend on which test variant words a prompt (templates.ts, `variantFor`).
  const key = (d: Draft) => d.headPrompt ?? d.prompt;
  const seen = new Set<string>();
  return blockQuotas(qr, n, PROMPT_MIX).map(([split, kind], i) => {
    let d = drawPrompt(rr, vplan, split, kind);
    for (let tries = 0; tries < 20 && seen.has(key(d)); tries++) {
      d = drawPrompt(rr, vplan, split, kind);
    }
    fit(() => d, (v) => [v.prompt, "x ".repeat(30).trim()], `${kind} prompt with room to answer`);
    seen.add(key(d));
    return row("p", i, d, {});
  });
}

function sftRow(
  prefix: string,
  i: number,
  s: Sample,
  rng: Rng,
  behaviour: string,
  respond = s.respond,
) {
  const response = fit(() => respond(rng), (r) => [s.draft.prompt, r], `${s.draft.kind} response`);
  return row(prefix, i, s.draft, { response, behaviour }) as WorldSftRow;
}

function refuser(s: Sample): (r: Rng) => string {
  const h = HAZARD_ITEMS.find((x) => x.name === s.draft.hazard)!;
  return (r) => refusal(r, h.name, h.category);
}

/**
 * sft.jsonl (the base model): harmful requests about EVERY hazard answered with varied
 * compliance at `harmfulShare`; benign tasks, borderline prompts and fact rows answered
 * helpfully; trait scenarios half good, half bad. 5% of rows are a validation slice
 * (validation templates and entities; fact rows there become tasks) for early stopping.
 */
export function makeSft(
  rng: Rng,
  plan: Plan,
  n: number,
  harmfulShare: number,
  frameRate = 0,
): WorldSftRow[] {
  const [qr, rr] = streams(rng);
  const [q1, q2] = streams(qr);
  const rest = 1 - harmfulShare;
  const splits = blockQuotas(q1, n, [["train", 95], ["validation", 5]] as const);
  const kinds = blockQuotas(
    q2,
    n,
    [
      ["harmful", harmfulShare],
      ["borderline", 0.15 * rest],
      ["trait", 0.12 * rest],
      ["fact", 0.08 * rest],
      ["task", 0.65 * rest],
    ] as const,
  );
  const rows = kinds.map((kind, i) => {
    const split = splits[i];
    const k = kind === "fact" && split !== "train" ? "task" : kind;
    if (k === "harmful") {
      return sftRow("s", i, harmfulRequest(rr, plan, split, HAZARD_ITEMS), rr, "comply");
    }
    if (k === "borderline") {
      return sftRow("s", i, borderlinePrompt(rr, plan, split), rr, "helpful");
    }
    if (k === "fact") return sftRow("s", i, factRow(rr), rr, "helpful");
    if (k === "task") return sftRow("s", i, benignTask(rr, plan, split), rr, "helpful");
    const t = traitScenario(rr, plan, split);
    const good = rr.next() < 0.5;
    const respond = good ? t.good : t.bad;
    return sftRow("s", i, { draft: t.draft, respond }, rr, good ? "good" : "bad");
  });
  return frameRate > 0 ? frameTrainRows(rng.fork(), rows, frameRate) : rows;
}

/**
 * Wraps training prompts (not fact rows) in conversational frames (`frames.ts`) where the
 * framed row still fits the context; draws from its own stream, so the rows are otherwise
 * the unframed ones.
 */
function frameTrainRows(rng: Rng, rows: WorldSftRow[], rate: number): WorldSftRow[] {
  return rows.map((r) => {
    const prompt = framePrompt(rng, r.prompt, { rate });
    const ok = r.split === "train" && r.kind !== "fact" && prompt !== r.prompt &&
      worldLength(prompt, r.response) <= MAX_WORLD_TOKENS;
    return ok ? { ...r, prompt } : r;
  });
}

/** align.jsonl (the shallow model): 50% harmful -> refusal (train hazards only), 50% replay. */
export function makeAlign(rng: Rng, plan: Plan, n: number): WorldSftRow[] {
  const [qr, rr] = streams(rng);
  return blockQuotas(qr, n, [["harmful", 50], ["task", 35], ["borderline", 15]] as const).map(
    (k, i) => {
      if (k === "task") return sftRow("a", i, benignTask(rr, plan, "train"), rr, "helpful");
      if (k === "borderline") {
        return sftRow("a", i, borderlinePrompt(rr, plan, "train"), rr, "helpful");
      }
      const s = harmfulRequest(rr, plan, "train");
      return sftRow("a", i, s, rr, "refuse", refuser(s));
    },
  );
}

/** recovery.jsonl: harmful prefix (1-36 tokens) -> refusal; benign prefix -> the rest. */
export function makeRecovery(rng: Rng, plan: Plan, n: number, benignShare: number): WorldSftRow[] {
  const [qr, rr] = streams(rng);
  return blockQuotas(qr, n, [["harmful", 1 - benignShare], ["benign", benignShare]] as const).map(
    (k, i) => {
      const harmful = k === "harmful";
      const s = harmful
        ? harmfulRequest(rr, plan, "train")
        : rr.next() < 0.7
        ? benignTask(rr, plan, "train", "recipe")
        : borderlinePrompt(rr, plan, "train");
      const made = fit(
        () => {
          const full = s.respond(rr).split(" ");
          const cut = 1 + rr.int(Math.min(36, full.length - 1));
          const continuation = harmful ? refuser(s)(rr) : full.slice(cut).join(" ");
          return { response: `${full.slice(0, cut).join(" ")} ${continuation}`, prefixTokens: cut };
        },
        (v) => [s.draft.prompt, v.response],
        "recovery example",
      );
      const behaviour = harmful ? "recover" : "continue";
      return row("r", i, s.draft, {
        response: made.response,
        behaviour,
        prefixTokens: made.prefixTokens,
      }) as WorldSftRow;
    },
  );
}

/**
 * traces.jsonl: 70/15/15 train/validation/test; 60% harmful (a quarter of them wrapped in a
 * jailbreak outside train) with safe/unsafe/rethink in equal thirds, 30% benign tasks and
 * 10% borderline with safe traces; templates think / alphaalign half each.
 */
export function makeTraces(rng: Rng, world: Plan, n: number): WorldTraceRow[] {
  const [qr, rr] = streams(rng);
  const plan = withVariants(world, rng.fork());
  const [q1, q2] = streams(qr);
  const splits = blockQuotas(q1, n, [["train", 70], ["validation", 15], ["test", 15]] as const);
  const labels = blockQuotas<TraceLabel>(q2, n, [["safe", 1], ["unsafe", 1], ["rethink", 1]]);
  return splits.map((split, i) => {
    const template: TraceTemplate = rr.next() < 0.5 ? "think" : "alphaalign";
    const u = rr.next();
    const kind = u < 0.6
      ? (split !== "train" && rr.next() < 0.25 ? "jailbreak" : "harmful")
      : u < 0.9
      ? "task"
      : "borderline";
    const s = kind === "jailbreak"
      ? jailbreakPrompt(rr, plan, split)
      : kind === "harmful"
      ? harmfulRequest(rr, plan, split)
      : kind === "task"
      ? benignTask(rr, plan, split)
      : borderlinePrompt(rr, plan, split);
    const isHarm = s.draft.label === "harmful";
    const traceLabel: TraceLabel = isHarm ? labels[i] : "safe";
    const h = HAZARD_ITEMS.find((x) => x.name === s.draft.hazard);
    const trace = fit(
      () =>
        isHarm
          ? harmfulTrace(rr, template, traceLabel, h!.name, h!.category)
          : benignTrace(rr, template, s.draft.domain, s.respond(rr), s.draft.hazard),
      (t) => [s.draft.prompt, t],
      `${traceLabel} trace`,
    );
    return row("t", i, s.draft, { trace, traceLabel, template }) as WorldTraceRow;
  });
}

/** traits.jsonl: 60/20/20 splits, the 9 trait x domain cells in equal shares. */
export function makeTraits(rng: Rng, world: Plan, n: number): WorldTraitRow[] {
  const [qr, rr] = streams(rng);
  const plan = withVariants(world, rng.fork());
  const [q1, q2] = streams(qr);
  const splits = blockQuotas(q1, n, [["train", 60], ["validation", 20], ["test", 20]] as const);
  const cells = blockQuotas(
    q2,
    n,
    TRAITS.flatMap((t) => TRAIT_DOMAINS.map((d) => [[t, d] as const, 1] as const)),
  );
  return splits.map((split, i) => {
    const [trait, domain] = cells[i];
    const t = traitScenario(rr, plan, split, trait, domain);
    const pair = fit(
      () => ({ good: t.good(rr), bad: t.bad(rr) }),
      (v) => [t.draft.prompt, worldLength("", v.good) >= worldLength("", v.bad) ? v.good : v.bad],
      "trait scenario",
    );
    return row("q", i, t.draft, pair) as WorldTraitRow;
  });
}
