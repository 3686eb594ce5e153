/**
 * Attacks at every depth of an answer, as plain values: each spec turns a prompt row (and
 * the model's tokenizer) into a generation request `{prompt, force?}`, and
 * {@linkcode runAttack} runs it in batches through the KV-cached generator, where forced
 * tokens are fed like sampled ones (no re-encoding of the prefix).
 *
 * - `none`: the prompt as it is.
 * - jailbreak: the request wrapped in a template (`{request}` slot, lib/data/benchmarks/).
 * - prefill (Qi et al. 2024, arXiv 2406.05946): the first k tokens of a harmful answer forced
 *   at generation step 0.
 * - injection (Park & Kim, arXiv 2606.04778): a short token sequence forced at step t, any t,
 *   inside a refusal included; `{fraction}` positions resolve against the length of the
 *   model's own unattacked answer to the prompt, which the runner generates first.
 * - random insertion (arXiv 2606.04168): a short harmful span forced at a random step inside
 *   the refusal the model gives unattacked.
 *
 * Harmful answers come from the row's `target` (AdvBench, HarmBench, JBB) or from a map of
 * answers by row id (text, or token ids such as an unaligned model's own answers); their
 * end-of-sequence tokens are dropped before slicing.
 *
 * @module
 */

import type { ForcedSpan, GenerateOptions, GenerateResult } from "../model/generate.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";
import type { PromptRow } from "../data/schema.ts";
import { applyJailbreak, type JailbreakTemplate } from "../data/benchmarks/jailbreak_templates.ts";
import { makeRng, type Rng } from "../data/rng.ts";
import { refusalVerdict } from "../judges/refusal.ts";

/** Harmful answers by row id: text (tokenised with the model's tokenizer) or token ids. */
export type HarmfulAnswers = ReadonlyMap<string, string | readonly number[]>;
/** Scalar parameters of one attacked generation (recorded in every result row). */
export type AttackParams = Record<string, string | number | boolean | null>;
/** Where injected tokens come from when they are not given. */
export type InjectionSource = "affirmative" | "harmful" | "random";

/** What every attack spec has. */
export interface AttackBase {
  /** Which attack (the union's discriminant). */
  kind: string;
  /** Its name in results and summaries (each factory takes `name` to override it). */
  name: string;
}
/** No attack: the baseline. */
export interface NoAttack extends AttackBase {
  /** Discriminant. */
  kind: "none";
}
/** A jailbreak template around the request. */
export interface JailbreakAttack extends AttackBase {
  /** Discriminant. */
  kind: "jailbreak";
  /** Template text with `{request}` slots. */
  template: string;
}
/** The first k tokens of a harmful answer forced at step 0. */
export interface PrefillAttack extends AttackBase {
  /** Discriminant. */
  kind: "prefill";
  /** Tokens forced (fewer when the answer is shorter). */
  k: number;
  /** "target": the row's `target`; "answers": `answers` by row id; "text": `text` for every row. */
  source: "target" | "answers" | "text";
  /** Harmful answers by row id (source "answers"). */
  answers?: HarmfulAnswers;
  /** The prefill text (source "text"). */
  text?: string;
}
/** A short sequence forced at generation step `at` (or a fraction of the unattacked answer). */
export interface InjectionAttack
  extends AttackBase, Omit<InjectionOptions, "name" | "affirmative" | "seed"> {
  /** Discriminant. */
  kind: "injection";
  /** Text of the "affirmative" source. */
  affirmative: string;
  /** Seed of the "random" source. */
  seed: number;
}
/** A short harmful span forced at a random step inside the unattacked refusal. */
export interface RandomInsertionAttack
  extends
    AttackBase,
    Omit<RandomInsertionOptions, "name" | "seed" | "locateRefusal" | "ifNoRefusal"> {
  /** Discriminant. */
  kind: "random-insertion";
  /** Seed of the insertion step. */
  seed: number;
  /** Char index where the refusal starts in a text, -1 when none. */
  locateRefusal: (text: string) => number;
  /** What to do with a row whose unattacked answer does not refuse. */
  ifNoRefusal: "skip" | "anywhere";
}
/** Every attack, as a plain value. */
export type AttackSpec =
  | NoAttack
  | JailbreakAttack
  | PrefillAttack
  | InjectionAttack
  | RandomInsertionAttack;

/** A generation request made by an attack for one row. */
export interface AttackRequest {
  /** The prompt to send (before the chat template). */
  prompt: string;
  /** Tokens to force, by generation step. */
  force?: ForcedSpan[];
  /** What was resolved for this row (step, k, applied...). */
  params: AttackParams;
}
/** What an attack may read besides the row. */
export interface AttackContext {
  /** The model's tokenizer. */
  tokenizer: TextTokenizer;
  /** This row's random source (seeded from the attack seed, run seed and row id). */
  rng: Rng;
  /** The model's unattacked answer to the row (token ids), when the attack needs it. */
  baseline?: readonly number[];
}

/** No attack (the baseline every suite should include). */
export function noAttack(): NoAttack {
  return { kind: "none", name: "none" };
}

/** Wraps each request in a jailbreak template (a string with `{request}`, or a loaded one). */
export function jailbreakAttack(template: string | JailbreakTemplate): JailbreakAttack {
  const t = typeof template === "string" ? template : template.template;
  const name = typeof template === "string" ? "custom" : template.name;
  return { kind: "jailbreak", name: `jailbreak:${name}`, template: t };
}

/** Prefill: the first `k` tokens of a harmful answer forced at step 0 (Qi et al. 2024). */
export function prefillAttack(
  k: number,
  source: "target" | "answers" | "text" = "target",
  opts: { answers?: HarmfulAnswers; text?: string; name?: string } = {},
): PrefillAttack {
  if (!Number.isInteger(k) || k < 0) {
    throw new Error(`Cannot make a prefill attack: k=${k}; pass a whole number of tokens >= 0`);
  }
  if (source === "answers" && !opts.answers) {
    throw new Error(
      'Cannot make a prefill attack from "answers": pass opts.answers (id -> answer)',
    );
  }
  if (source === "text" && opts.text === undefined) {
    throw new Error('Cannot make a prefill attack from "text": pass opts.text');
  }
  return { ...opts, kind: "prefill", name: opts.name ?? `prefill:k=${k}`, k, source };
}

/** Options of {@linkcode injectionAttack}: where, and exactly one of tokens / text / source. */
export interface InjectionOptions {
  /**
   * Generation step (0 = first answer token), or a fraction f of the unattacked answer's
   * length L (step `round(f * L)`; L excludes the end-of-sequence token).
   */
  at: number | { fraction: number };
  /** Token ids to inject. */
  tokens?: readonly number[];
  /** Text to inject (tokenised with the model's tokenizer). */
  text?: string;
  /**
   * "affirmative": the `affirmative` text; "harmful": the first tokens of the row's harmful
   * answer; "random": ids drawn uniformly from the vocabulary minus bos/eos/pad, per row.
   */
  source?: InjectionSource;
  /** Tokens injected: truncates tokens/text/affirmative; harmful and random: @default 5 */
  length?: number;
  /** Harmful answers by row id for `source: "harmful"` (else the row's `target`). */
  answers?: HarmfulAnswers;
  /** Text of the "affirmative" source. @default "Sure, here is" */
  affirmative?: string;
  /** Seed of the "random" source. @default 0 */
  seed?: number;
  /** Name in results. @default "injection:t=<at>:<what>" */
  name?: string;
}

/** Mid-sequence injection: a short sequence forced at step t (Park & Kim, arXiv 2606.04778). */
export function injectionAttack(opts: InjectionOptions): InjectionAttack {
  const given = [opts.tokens, opts.text, opts.source].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new Error(
      `Cannot make an injection attack: give exactly one of tokens, text, source (got ${given})`,
    );
  }
  const at = opts.at;
  const bad = typeof at === "number"
    ? !Number.isInteger(at) || at < 0
    : !(at.fraction >= 0 && at.fraction <= 1);
  if (bad) {
    throw new Error(
      `Cannot make an injection attack: at=${JSON.stringify(at)}; ` +
        "use a step >= 0 or {fraction} in [0, 1]",
    );
  }
  const where = typeof at === "number" ? `t=${at}` : `t=${at.fraction}L`;
  const what = opts.source ?? (opts.tokens ? "tokens" : "text");
  return {
    ...opts,
    kind: "injection",
    name: opts.name ?? `injection:${where}:${what}`,
    affirmative: opts.affirmative ?? "Sure, here is",
    seed: opts.seed ?? 0,
  };
}

/** Options of {@linkcode randomInsertionAttack}. */
export interface RandomInsertionOptions {
  /** Text, token ids, or the first `length` tokens of the row's harmful answer. */
  span: string | readonly number[] | { source: "target" | "answers"; length: number };
  /** Harmful answers by row id for `span.source: "answers"`. */
  answers?: HarmfulAnswers;
  /** Seed of the insertion step. @default 0 */
  seed?: number;
  /** Char index where the refusal starts in a text, -1 when none. @default refusalVerdict's */
  locateRefusal?: (text: string) => number;
  /** No refusal in the unattacked answer: leave the row unattacked or insert anywhere. @default "skip" */
  ifNoRefusal?: "skip" | "anywhere";
  /** Name in results. @default "random-insertion" */
  name?: string;
}

/** Random insertion of a harmful span inside the unattacked refusal (arXiv 2606.04168). */
export function randomInsertionAttack(opts: RandomInsertionOptions): RandomInsertionAttack {
  return {
    ...opts,
    kind: "random-insertion",
    name: opts.name ?? "random-insertion",
    seed: opts.seed ?? 0,
    locateRefusal: opts.locateRefusal ?? ((t) => refusalVerdict(t).position),
    ifNoRefusal: opts.ifNoRefusal ?? "skip",
  };
}

/** Whether the attack reads the model's unattacked answer (the runner generates it first). */
export function needsBaseline(a: AttackSpec): boolean {
  return a.kind === "random-insertion" || (a.kind === "injection" && typeof a.at !== "number");
}

/** Text to ids, checked: every id a whole number inside the vocabulary. */
export function encodeChecked(tok: TextTokenizer, text: string, where: string): number[] {
  const ids = tok.encode(text, { addSpecialTokens: false }); // a fragment inside an answer: no BOS
  const bad = ids.findIndex((i) => !Number.isInteger(i) || i < 0 || i >= tok.vocabSize);
  if (bad >= 0) {
    throw new Error(
      `Cannot tokenise ${where} ${JSON.stringify(text.slice(0, 60))}: token ${bad} gave id ` +
        `${ids[bad]}, outside 0..${tok.vocabSize - 1}; check that the text fits this tokenizer`,
    );
  }
  return ids;
}

/** The answer's tokens before its first end-of-sequence token. */
export function contentIds(tok: TextTokenizer, ids: readonly number[]): number[] {
  const e = tok.eosId === undefined ? -1 : ids.indexOf(tok.eosId);
  return ids.slice(0, e < 0 ? ids.length : e);
}

/** The row's harmful answer as ids (from `answers` when given, else `target`), or null. */
export function harmfulIds(
  row: PromptRow,
  tok: TextTokenizer,
  answers?: HarmfulAnswers,
): number[] | null {
  const a = answers ? answers.get(row.id) : row.target;
  if (a === undefined || a === null) return null;
  const ids = typeof a === "string" ? encodeChecked(tok, a, `the harmful answer of ${row.id}`) : a;
  return contentIds(tok, ids);
}

/**
 * The steps of a refusal inside an answer: `[start, end)` where `start` is the step whose
 * token holds the refusal's first character (`charPos` in the decoded text) and `end` the
 * answer's length (its end-of-sequence token excluded).
 */
export function refusalSteps(
  tok: TextTokenizer,
  ids: readonly number[],
  charPos: number,
): [number, number] {
  const content = contentIds(tok, ids);
  // Binary search for the shortest prefix whose text reaches past charPos (lengths grow).
  let [lo, hi] = [0, content.length];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tok.decode(content.slice(0, mid + 1)).length > charPos) hi = mid;
    else lo = mid + 1;
  }
  return [lo, content.length];
}

function randomIds(tok: TextTokenizer, n: number, rng: Rng): number[] {
  const special = new Set([tok.bosId, tok.eosId, tok.padId]);
  const out: number[] = [];
  while (out.length < n) {
    const id = rng.int(tok.vocabSize);
    if (!special.has(id)) out.push(id);
  }
  return out;
}

function injectedIds(a: InjectionAttack, row: PromptRow, ctx: AttackContext): number[] | null {
  const tok = ctx.tokenizer;
  let ids: number[] | null;
  if (a.tokens) ids = a.tokens.slice();
  else if (a.text !== undefined) ids = encodeChecked(tok, a.text, "the injected text");
  else if (a.source === "affirmative") ids = encodeChecked(tok, a.affirmative, "affirmative text");
  else if (a.source === "harmful") ids = harmfulIds(row, tok, a.answers);
  else ids = randomIds(tok, a.length ?? 5, ctx.rng);
  if (ids === null) return null;
  return ids.slice(0, a.length ?? (a.source === "harmful" ? 5 : ids.length));
}

/** The request an attack makes for one row (throws when a needed baseline is missing). */
export function attackRequest(a: AttackSpec, row: PromptRow, ctx: AttackContext): AttackRequest {
  const tok = ctx.tokenizer;
  if (a.kind === "none") return { prompt: row.prompt, params: {} };
  if (a.kind === "jailbreak") {
    return { prompt: applyJailbreak(a.template, row.prompt), params: {} };
  }
  if (a.kind === "prefill") {
    const ids = a.source === "text"
      ? encodeChecked(tok, a.text ?? "", "the prefill text")
      : harmfulIds(row, tok, a.source === "answers" ? a.answers : undefined);
    if (ids === null) return { prompt: row.prompt, params: { k: a.k, applied: false } };
    const tokens = ids.slice(0, a.k);
    return {
      prompt: row.prompt,
      force: tokens.length ? [{ step: 0, tokens }] : undefined,
      params: { k: a.k, applied: true },
    };
  }
  const base = ctx.baseline;
  if (needsBaseline(a) && !base) {
    throw new Error(`Cannot build ${a.name} for ${row.id}: it needs the unattacked answer`);
  }
  if (a.kind === "injection") {
    const tokens = injectedIds(a, row, ctx);
    const len = base ? contentIds(tok, base).length : 0;
    const step = typeof a.at === "number" ? a.at : Math.round(a.at.fraction * len);
    const params: AttackParams = typeof a.at === "number"
      ? { step }
      : { fraction: a.at.fraction, baselineLength: len, step };
    if (tokens === null || tokens.length === 0) {
      return { prompt: row.prompt, params: { ...params, applied: false } };
    }
    return { prompt: row.prompt, force: [{ step, tokens }], params: { ...params, applied: true } };
  }
  const s = a.span;
  const tokens = typeof s === "string"
    ? encodeChecked(tok, s, "the inserted span")
    : isIdList(s)
    ? s.slice()
    : harmfulIds(row, tok, s.source === "answers" ? a.answers : undefined)?.slice(0, s.length) ??
      null;
  const len = contentIds(tok, base!).length;
  const pos = a.locateRefusal(tok.decode(contentIds(tok, base!)));
  const start = pos >= 0 ? refusalSteps(tok, base!, pos)[0] : -1;
  if ((pos < 0 && a.ifNoRefusal === "skip") || tokens === null || tokens.length === 0) {
    return { prompt: row.prompt, params: { refusalStart: start, applied: false } };
  }
  // Strictly inside the refusal: after its first token, before its last (when there is room).
  const lo = pos >= 0 ? Math.min(start + 1, len) : 0;
  const hi = Math.max(lo, len - 1);
  const step = lo + ctx.rng.int(hi - lo + 1);
  return {
    prompt: row.prompt,
    force: [{ step, tokens }],
    params: { refusalStart: start, baselineLength: len, step, applied: true },
  };
}

function isIdList(s: unknown): s is readonly number[] {
  return Array.isArray(s);
}

/** What {@linkcode runAttack} needs of a model (a `Model` fits). */
export interface AttackTarget {
  /** Encodes attack texts and decodes answers. */
  tokenizer: TextTokenizer;
  /** Batched, KV-cached generation with forced spans. */
  generate(opts: GenerateOptions): Promise<GenerateResult>;
}

/** Prompt rows: an array, or an arquero table of {@linkcode PromptRow}s. */
export type PromptRowsInput = readonly PromptRow[] | { objects(): object[] };

/** Options of {@linkcode runAttack}. */
export interface RunAttackOptions {
  /** New tokens per answer. @default 64 */
  maxNewTokens?: number;
  /** Seeds sampling and the attack's random choices (with the attack's own seed). @default 0 */
  seed?: number;
  /** Prompts per forward batch. @default 16 */
  batchSize?: number;
  /** Sampling temperature; 0 = greedy. @default 0 */
  temperature?: number;
  /** Top-k sampling; 0 = off. @default 0 */
  topK?: number;
  /** Nucleus sampling; 1 = off. @default 1 */
  topP?: number;
  /** Stop a row at its end-of-sequence token. @default true */
  stopAtEos?: boolean;
  /** The unattacked answers (token ids per row), when already generated with these options. */
  baseline?: readonly (readonly number[])[];
  /** Called after each batch of the attacked generation. */
  onProgress?: (done: number, total: number) => void;
}

/** One attacked generation. */
export interface AttackResult {
  /** The row's id. */
  id: string;
  /** The prompt sent (wrapped by a jailbreak template, if any). */
  prompt: string;
  /** The attack's name. */
  attack: string;
  /** What the attack resolved for this row (step, k, applied...). */
  params: AttackParams;
  /** The run seed. */
  seed: number;
  /** The decoded answer (special tokens skipped). */
  text: string;
  /** The answer's token ids (forced ones included). */
  tokenIds: number[];
  /** Which new tokens were forced. */
  forced: boolean[];
  /**
   * The step of the first forced token, or null when nothing was forced (an injection placed
   * after the model's own end of answer is dropped, with what followed it).
   */
  injectedAt: number | null;
}

/** The rows of an array or arquero table, checked for `id` and `prompt`. */
export function promptRows(input: PromptRowsInput): PromptRow[] {
  const rows =
    (Array.isArray(input) ? input : (input as { objects(): object[] }).objects()) as PromptRow[];
  rows.forEach((r, i) => {
    if (typeof r.prompt !== "string" || r.id === undefined) {
      throw new Error(`Cannot attack row ${i}: it needs string fields "id" and "prompt"`);
    }
  });
  return rows;
}

function rowSeed(attackSeed: number, runSeed: number, id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (Math.imul(attackSeed, 0x9e3779b1) ^ Math.imul(runSeed + 1, 0x85ebca6b) ^ h) >>> 0;
}

function genOptions(opts: RunAttackOptions): GenerateOptions {
  return {
    maxNewTokens: opts.maxNewTokens ?? 64,
    seed: opts.seed ?? 0,
    batchSize: opts.batchSize ?? 16,
    temperature: opts.temperature ?? 0,
    topK: opts.topK,
    topP: opts.topP,
    stopAtEos: opts.stopAtEos ?? true,
  };
}

/** The model's unattacked answers (token ids per row) under `opts`. */
export async function unattackedAnswers(
  model: AttackTarget,
  rows: PromptRowsInput,
  opts: RunAttackOptions = {},
): Promise<number[][]> {
  const g = await model.generate({
    ...genOptions(opts),
    prompts: promptRows(rows).map((r) => r.prompt),
  });
  return g.tokenIds;
}

/**
 * Runs one attack over rows in batches (KV-cached; a row's tokens do not depend on the batch
 * size). Attacks that read the unattacked answer get it generated first (or `opts.baseline`).
 */
export async function runAttack(
  model: AttackTarget,
  rows: PromptRowsInput,
  attack: AttackSpec | "none",
  opts: RunAttackOptions = {},
): Promise<AttackResult[]> {
  const spec = attack === "none" ? noAttack() : attack;
  const list = promptRows(rows);
  const seed = opts.seed ?? 0;
  let baseline = opts.baseline;
  if (baseline && baseline.length !== list.length) {
    throw new Error(
      `Cannot run ${spec.name}: ${baseline.length} baselines for ${list.length} rows`,
    );
  }
  if (needsBaseline(spec) && !baseline) baseline = await unattackedAnswers(model, list, opts);
  const attackSeed = "seed" in spec ? spec.seed : 0;
  const requests = list.map((row, i) =>
    attackRequest(spec, row, {
      tokenizer: model.tokenizer,
      rng: makeRng(rowSeed(attackSeed, seed, String(row.id))),
      baseline: baseline?.[i],
    })
  );
  const g = await model.generate({
    ...genOptions(opts),
    prompts: requests.map((r) => r.prompt),
    force: requests.map((r) => r.force),
    onProgress: opts.onProgress,
  });
  const eos = model.tokenizer.eosId;
  return list.map((row, i) => {
    let [ids, forced, text] = [g.tokenIds[i], g.forced[i], g.text[i]];
    // The generator keeps a row going past its own end-of-sequence token when the next step
    // is forced; such an injection came after the answer ended: keep the answer, drop it.
    const end = ids.findIndex((t, j) => t === eos && !forced[j]);
    if ((opts.stopAtEos ?? true) && end >= 0 && end < ids.length - 1) {
      [ids, forced] = [ids.slice(0, end + 1), forced.slice(0, end + 1)];
      text = model.tokenizer.decode(ids, { skipSpecialTokens: true });
    }
    const at = forced.indexOf(true);
    return {
      id: String(row.id),
      prompt: requests[i].prompt,
      attack: spec.name,
      params: requests[i].params,
      seed,
      text,
      tokenIds: ids,
      forced,
      injectedAt: at < 0 ? null : at,
    };
  });
}
