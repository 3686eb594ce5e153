/**
 * Remote models behind an OpenAI-compatible HTTP API (vLLM, SGLang, llama.cpp's server,
 * TGI's Messages API, OpenAI): `loadRemoteModel("openai:<baseURL>#<model>")`. They generate
 * with the same {@linkcode GenerateResult} shape as local models, but have no hidden states
 * and cannot be trained, so `forward()` and anything that needs hidden states fail at once.
 *
 * Endpoints (appended to the base URL; a base URL that does not end in `/v1` gets `/v1`):
 * - `/v1/completions` with a raw prompt when a local tokenizer is given (its chat template
 *   is applied here, exactly as the local model would) or when `chat: false`;
 * - `/v1/chat/completions` otherwise (the server applies its own template).
 * Each row is its own request (`n = 1`), seeded with `(seed * 1000003 + row) >>> 0`, sent with
 * `temperature` (0 = greedy), `top_p`, `top_k` (only when > 0: a vLLM/SGLang extension),
 * `max_tokens`, `stop`, and `ignore_eos` (only when `stopAtEos: false`: vLLM).
 *
 * Attacks: a prefill (forced tokens at step 0) is appended to the raw prompt; an injection at
 * step t > 0 is two calls: generate t tokens, append the injected text, continue. Both need
 * the completions endpoint. Token ids come from the local tokenizer (each segment encoded
 * separately; they match the server's only when both tokenizers agree); without one they are
 * `[]`, `forced` counts the server's tokens, and a forced text counts as one entry.
 * `logprobs` are the server's, with NaN at forced entries, or `[]` when it returns none.
 * `inputIds` (with a local tokenizer) are sent as their decoded text, as given.
 *
 * Failures, row by row: every request is retried on 408, 429 (honouring `Retry-After`), 5xx,
 * timeouts, network errors and malformed 200 replies (not JSON, no `choices[0]` text), with
 * equal-jitter exponential backoff (lib/net/http.ts); the knobs are {@linkcode RetryOptions}.
 * A row whose retries run out does not sink the others: `generate` waits for every row, then
 * by default (`onRowError: "throw"`) throws a {@linkcode RemoteGenerateError} whose `result`
 * holds the rows that succeeded and one error per row; with `onRowError: "keep"` it returns
 * that result, failed rows left empty (`text` "", no tokens) and named in `errors`, so
 * failures are never mixed into rates unseen. `generateResumable` journals each finished row
 * and asks only for the others on a rerun.
 *
 * Also here: {@linkcode requireCapability} (fail early on a missing capability) and, from
 * lib/model/remote_journal.ts, `generateResumable` (a JSONL-journaled, restartable evaluation).
 *
 * @module
 */

import type { ModelCapabilities } from "./model.ts";
import type { GenerateOptions, GenerateResult } from "./generate.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
import { promptOpensReasoning, splitReasoning } from "./reasoning.ts";
import {
  DiskCache,
  type FetchLike,
  postJson,
  type PostJsonOptions,
  type RetryInfo,
  Semaphore,
} from "../net/http.ts";
import {
  apiRoot,
  type Completion,
  completionRequest,
  parseCompletion,
  parseRemoteSource,
} from "../net/openai.ts";
import { Progress, type ProgressMode } from "../viz/progress.ts";

/**
 * How failed requests are retried (lib/net/http.ts): attempt `a` (0-based) waits
 * `cap/2 + U(0, cap/2)` ms with `cap = min(maxDelayMs, baseDelayMs * 2^a)`, or what a
 * `Retry-After` header asks, capped at `maxRetryAfterMs`.
 */
export interface RetryOptions {
  /** Per request attempt, for the whole exchange (a stalled reply counts). @default 120000 */
  timeoutMs?: number;
  /** Extra attempts after the first, per request, on retryable failures. @default 4 */
  retries?: number;
  /** First backoff cap in ms. @default 500 */
  baseDelayMs?: number;
  /** Largest backoff cap in ms. @default 30000 */
  maxDelayMs?: number;
  /** Largest wait a `Retry-After` header may impose, in ms. @default 120000 */
  maxRetryAfterMs?: number;
  /** Called before each wait between attempts (row index included). @default undefined */
  onRetry?: (info: RetryInfo & { row: number }) => void;
}

/** Options of {@linkcode loadRemoteModel}. */
export interface RemoteModelOptions extends RetryOptions {
  /** Server root or its `/v1` URL, e.g. `http://127.0.0.1:8000/v1`. */
  baseUrl: string;
  /** The model name the server knows. */
  model: string;
  /** Environment variable holding the API key (none sent when unset). @default "OPENAI_API_KEY" */
  apiKeyEnv?: string;
  /** A Hugging Face folder whose tokenizer (and chat template) is used locally. */
  tokenizerDir?: string;
  /** Or an already loaded tokenizer (wins over `tokenizerDir`). */
  tokenizer?: TextTokenizer;
  /** Requests in flight at most. @default 8 */
  concurrency?: number;
  /** Cache replies here (keyed by SHA-256 of endpoint + request body). @default undefined (off) */
  cacheDir?: string;
  /** Ask for per-token log-probs. @default true */
  logprobs?: boolean;
  /** The fetch to use (tests). @default globalThis.fetch */
  fetch?: FetchLike;
}

/** A text forced into a row's answer from generation step `step` on. */
export interface ForcedText {
  /** Generation step the text is forced at (0 = prefill). */
  step: number;
  /** The text, appended to the raw prompt as it is. */
  text: string;
}

/** {@linkcode GenerateOptions} plus what only a remote model takes. */
export interface RemoteGenerateOptions extends GenerateOptions {
  /** Forced texts per row (prefill = step 0, injection = step t); no tokenizer needed. */
  forceText?: (ForcedText[] | undefined)[];
  /** Stop strings. @default [] */
  stop?: string[];
  /** Progress bar mode. @default "auto" */
  progress?: ProgressMode;
  /**
   * What a row whose retries ran out does: `"throw"` (after every row has finished, a
   * {@linkcode RemoteGenerateError} whose `result` keeps the rows that succeeded) or
   * `"keep"` (return the result: failed rows empty and named in `errors`; check them before
   * computing rates). @default "throw"
   */
  onRowError?: "throw" | "keep";
}

/** A remote generation: {@linkcode GenerateResult} plus what failed, row by row. */
export interface RemoteGenerateResult extends GenerateResult {
  /** Per row, null when it succeeded, else why it failed (its text is then ""). */
  errors: (string | null)[];
  /** Rows that failed. */
  failed: number;
}

/**
 * Rows whose retries ran out; `result` holds every row, the ones that succeeded included.
 *
 * @example
 * ```ts
 * import { type RemoteGenerateError, type RemoteModel } from "./remote.ts";
 * async function run(model: RemoteModel) {
 *   try {
 *     return await model.generate({ prompts: ["hi"], maxNewTokens: 8 });
 *   } catch (err) {
 *     if (err && (err as Error).name === "RemoteGenerateError") {
 *       const { result } = err as RemoteGenerateError; // rows kept, errors per row
 *       return result;
 *     }
 *     throw err;
 *   }
 * }
 * ```
 */
export class RemoteGenerateError extends Error {
  /** Creates the error. */
  constructor(message: string, readonly result: RemoteGenerateResult, options?: ErrorOptions) {
    super(message, options);
    this.name = "RemoteGenerateError";
  }
}

const HIDDEN_FIX = "use a local model for the compass and the CRAFT latent reward";

/** Anything that states its capabilities (local `Model`s and {@linkcode RemoteModel}s). */
export interface HasCapabilities {
  /** What the model can do. */
  capabilities: ModelCapabilities;
  /** Where it comes from (names it in errors). */
  source?: string;
}

/**
 * Fails early when a model lacks a capability, e.g. `requireCapability(model, "hiddenStates")`
 * before a compass fit or a CRAFT latent reward.
 */
export function requireCapability(model: HasCapabilities, cap: keyof ModelCapabilities): void {
  if (model.capabilities[cap]) return;
  const what = { hiddenStates: "read hidden states", training: "train", logprobs: "read logprobs" };
  const fix = {
    hiddenStates: HIDDEN_FIX,
    training: "fine-tune a local copy of the weights instead",
    logprobs: "use a server that returns logprobs (vLLM, OpenAI) or a local model",
  };
  throw new Error(
    `Cannot ${what[cap]}: ${model.source ?? "this model"} is a remote model ` +
      `(capabilities.${cap} is false); ${fix[cap]}`,
  );
}

/** A forced span: token ids (decoded in context) and/or its text. */
interface Span {
  step: number;
  ids?: number[];
  text?: string;
}

interface Row {
  text: string;
  tokenIds: number[];
  logprobs: number[];
  forced: boolean[];
}

const EMPTY_ROW: Row = { text: "", tokenIds: [], logprobs: [], forced: [] };

/** A language model served over an OpenAI-compatible API: generation only. */
export class RemoteModel {
  /** `openai:<baseURL>#<model>`. */
  readonly source: string;
  /** No hidden states, no training; logprobs once the server has returned them. */
  readonly capabilities: ModelCapabilities = {
    hiddenStates: false,
    training: false,
    logprobs: false,
  };
  /** The local tokenizer, when one was given. */
  readonly tokenizer?: TextTokenizer;
  /** Requests in flight at most. */
  readonly concurrency: number;
  /** The reply cache, when `cacheDir` was given. */
  readonly cache?: DiskCache;
  /** Number of HTTP requests sent (cache hits excluded). */
  requests = 0;
  readonly #opts: RemoteModelOptions;
  readonly #root: string;
  readonly #sem: Semaphore;
  readonly #apiKey?: string;
  readonly #retry: PostJsonOptions;

  /** Use {@linkcode loadRemoteModel}. */
  constructor(opts: RemoteModelOptions) {
    this.#opts = opts;
    this.#root = apiRoot(opts.baseUrl);
    this.source = `openai:${opts.baseUrl.replace(/\/+$/, "")}#${opts.model}`;
    this.tokenizer = opts.tokenizer;
    this.concurrency = opts.concurrency ?? 8;
    this.#sem = new Semaphore(this.concurrency);
    this.#retry = {
      timeoutMs: opts.timeoutMs ?? 120000,
      retries: opts.retries ?? 4,
      baseDelayMs: opts.baseDelayMs ?? 500,
      maxDelayMs: opts.maxDelayMs ?? 30000,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 120000,
      fetch: opts.fetch,
    };
    if (opts.cacheDir) this.cache = new DiskCache(opts.cacheDir);
    try {
      this.#apiKey = Deno.env.get(opts.apiKeyEnv ?? "OPENAI_API_KEY") || undefined;
    } catch {
      this.#apiKey = undefined; // no --allow-env: send no key, as for a local server
    }
  }

  /** Remote models have no hidden states: always throws. */
  forward(..._args: unknown[]): never {
    requireCapability(this, "hiddenStates");
    throw new Error("unreachable");
  }

  /**
   * Generates one answer per prompt; see the module doc for the protocol and for failures.
   *
   * @throws RemoteGenerateError when rows failed and `onRowError` is "throw" (its `result`
   *   keeps the rows that succeeded).
   */
  async generate(opts: RemoteGenerateOptions): Promise<RemoteGenerateResult> {
    if (opts.returnHiddenStates || opts.interventions?.length || opts.steer) {
      requireCapability(this, "hiddenStates");
    }
    const tok = this.tokenizer;
    if (!opts.prompts && !(opts.inputIds && tok)) {
      throw new Error(
        `Cannot generate with ${this.source}: pass text \`prompts\` (token \`inputIds\` need ` +
          `a local tokenizer: pass tokenizerDir to loadRemoteModel)`,
      );
    }
    const raw = tok !== undefined || opts.chat === false;
    const chatted = tok !== undefined && (opts.chat ?? "auto") !== false;
    // Token ids are sent as their decoded text, used as given (as local generation does).
    const prompts =
      opts.prompts?.map((p) =>
        chatted
          ? tok.applyChatTemplate([{ role: "user", content: p }], {
            addGenerationPrompt: true,
            templateKwargs: {
              ...(opts.thinking === undefined ? {} : { enable_thinking: opts.thinking }),
              ...opts.chatTemplateKwargs,
            },
          })
          : p
      ) ?? opts.inputIds!.map((ids) => tok!.decode(ids, { skipSpecialTokens: false }));
    const forced = prompts.map((_, i) => this.#forcedOf(opts, i, raw));
    const bar = new Progress({ total: prompts.length, label: this.source, mode: opts.progress });
    let done = 0;
    const settled = await Promise.allSettled(prompts.map(async (prompt, i) => {
      try {
        return await this.#row(prompt, forced[i], opts, i, raw);
      } finally {
        bar.tick(); // a failed row is finished too (its error is reported below)
        opts.onProgress?.(++done, prompts.length);
      }
    }));
    bar.done();
    const errors = settled.map((s) =>
      s.status === "fulfilled" ? null : (s.reason as Error)?.message ?? String(s.reason)
    );
    const rows = settled.map((s) => s.status === "fulfilled" ? s.value : EMPTY_ROW);
    // A rendered template holds its own BOS; plain text gets the special tokens the server's
    // tokenizer adds (as HF's tokenizer(text) does).
    const ids = (t: string) => tok ? tok.encode(t, { addSpecialTokens: !chatted }) : [];
    const parts = rows.map((r, i) =>
      splitReasoning(r.text, { startsInside: promptOpensReasoning(prompts[i]) })
    );
    const result: RemoteGenerateResult = {
      promptIds: opts.prompts ? prompts.map(ids) : opts.inputIds!.map((r) => r.slice()),
      tokenIds: rows.map((r) => r.tokenIds.slice()),
      text: rows.map((r) => r.text),
      reasoning: parts.map((s) => s.reasoning),
      answer: parts.map((s) => s.answer),
      logprobs: rows.map((r) => r.logprobs.slice()),
      forced: rows.map((r) => r.forced.slice()),
      errors,
      failed: errors.filter((e) => e !== null).length,
    };
    if (result.failed === 0) return result;
    const first = errors.findIndex((e) => e !== null);
    const what = `${result.failed} of ${rows.length} rows failed (up to ` +
      `${this.#retry.retries} retries per request; first: row ${first}: ${errors[first]})`;
    if ((opts.onRowError ?? "throw") === "keep") {
      console.warn(`${this.source}: ${what}; they are empty and named in result.errors`);
      return result;
    }
    throw new RemoteGenerateError(
      `Cannot generate with ${this.source}: ${what}; the ${rows.length - result.failed} ` +
        `rows that succeeded are in error.result (errors per row in error.result.errors); ` +
        `raise retries, or pass onRowError: "keep" to get them back as the result`,
      result,
      { cause: (settled[first] as PromiseRejectedResult).reason },
    );
  }

  /** The forced spans of row i, sorted by step; checks they can be sent. */
  #forcedOf(opts: RemoteGenerateOptions, i: number, raw: boolean) {
    const spans: Span[] = [];
    for (const s of opts.force?.[i] ?? []) {
      if (!this.tokenizer) {
        throw new Error(
          `Cannot force token ids into ${this.source}: it has no local tokenizer to decode ` +
            `them; pass tokenizerDir to loadRemoteModel, or use \`forceText\``,
        );
      }
      spans.push({ step: s.step, ids: s.tokens });
    }
    for (const s of opts.forceText?.[i] ?? []) {
      spans.push({
        step: s.step,
        text: s.text,
        ids: this.tokenizer?.encode(s.text, { addSpecialTokens: false }),
      });
    }
    if (spans.length && !raw) {
      throw new Error(
        `Cannot prefill or inject into ${this.source} over /v1/chat/completions: forced text ` +
          `needs the raw-prompt /v1/completions endpoint; pass tokenizerDir (the chat template ` +
          `is then applied locally) or chat: false`,
      );
    }
    return spans.sort((a, b) => a.step - b.step);
  }

  /** One row: alternate generated segments and forced spans. */
  async #row(
    prompt: string,
    spans: Span[],
    opts: RemoteGenerateOptions,
    i: number,
    raw: boolean,
  ): Promise<Row> {
    const maxNew = opts.maxNewTokens ?? 32;
    const tok = this.tokenizer;
    const out: Row = { text: "", tokenIds: [], logprobs: [], forced: [] };
    let steps = 0, anyLogprobs = false, finished = false;
    const generateUpTo = async (limit: number) => {
      if (limit <= steps || finished) return;
      const seg = await this.#call(prompt + out.text, limit - steps, opts, i, raw);
      const ids = tok ? tok.encode(seg.text, { addSpecialTokens: false }) : [];
      const n = tok ? ids.length : seg.tokens;
      out.text += seg.text;
      out.tokenIds.push(...ids);
      out.forced.push(...new Array(n).fill(false));
      if (seg.logprobs) anyLogprobs = true;
      out.logprobs.push(...Array.from({ length: n }, (_, k) => seg.logprobs?.[k] ?? NaN));
      steps += seg.finish === "length" ? limit - steps : seg.tokens;
      finished = seg.finish !== "length";
    };
    for (const span of spans) {
      await generateUpTo(Math.min(span.step, maxNew));
      if (finished || steps >= maxNew) break;
      const n = span.ids?.length ?? 1;
      out.text += span.text ?? this.#textOf(span.ids!, prompt + out.text);
      out.tokenIds.push(...(span.ids ?? []));
      out.forced.push(...new Array(n).fill(true));
      out.logprobs.push(...new Array(n).fill(NaN));
      steps += n;
    }
    await generateUpTo(maxNew);
    if (!anyLogprobs) out.logprobs = [];
    return out;
  }

  /**
   * The text forced ids add after `context`: decode(tail + ids) minus decode(tail), with the
   * context's last 8 tokens as tail, so word-boundary spaces that decoders strip from a
   * sequence's first token (SentencePiece, WordLevel) are kept.
   */
  #textOf(ids: number[], context: string): string {
    const tok = this.tokenizer!;
    const tail = tok.encode(context, { addSpecialTokens: false }).slice(-8);
    const before = tok.decode(tail, { skipSpecialTokens: false });
    const full = tok.decode([...tail, ...ids], { skipSpecialTokens: false });
    return full.startsWith(before)
      ? full.slice(before.length)
      : tok.decode(ids, { skipSpecialTokens: false });
  }

  /** One HTTP request (cached, concurrency-limited). */
  async #call(
    prompt: string,
    maxTokens: number,
    opts: RemoteGenerateOptions,
    i: number,
    raw: boolean,
  ): Promise<Completion & { tokens: number }> {
    const { url, body } = completionRequest(this.#root, {
      model: this.#opts.model,
      prompt,
      raw,
      maxTokens,
      temperature: opts.temperature,
      topP: opts.topP,
      topK: opts.topK,
      seed: ((opts.seed ?? 0) * 1_000_003 + i) >>> 0,
      stop: opts.stop,
      logprobs: this.#opts.logprobs ?? true,
      ignoreEos: opts.stopAtEos === false,
    });
    const onRetry = this.#opts.onRetry;
    const send = () =>
      this.#sem.run(() => {
        this.requests++;
        return postJson(url, body, {
          ...this.#retry,
          apiKey: this.#apiKey,
          seed: i,
          validate: (reply) => void parseCompletion(reply, raw, url),
          onRetry: onRetry && ((info) => onRetry({ ...info, row: i })),
        });
      });
    const c = parseCompletion(await this.#cached({ url, body }, raw, send), raw, url);
    if (c.logprobs) this.capabilities.logprobs = true;
    return {
      ...c,
      tokens: c.tokens ?? this.tokenizer?.encode(c.text, { addSpecialTokens: false }).length ?? 0,
    };
  }

  /** The reply from the cache when it holds a well-formed one, else from `send` (then stored). */
  async #cached(
    request: { url: string; body: unknown },
    raw: boolean,
    send: () => Promise<unknown>,
  ): Promise<unknown> {
    const cache = this.cache;
    if (!cache) return send();
    const key = await cache.key(request);
    const hit = await cache.get(key);
    if (hit !== undefined) {
      try {
        parseCompletion(hit, raw, request.url);
        return hit;
      } catch {
        console.warn(`DiskCache: a malformed reply is cached for ${request.url}; asking again`);
      }
    }
    const reply = await send();
    await cache.set(key, reply);
    return reply;
  }

  /** A one-line description. */
  toString(): string {
    return `RemoteModel(${this.source}, concurrency ${this.concurrency}` +
      `${this.tokenizer ? ", local tokenizer" : ""}${this.cache ? ", cached" : ""})`;
  }
}

/** Creates a remote model from `openai:<baseURL>#<model>` or from options. */
export async function loadRemoteModel(
  source: string | RemoteModelOptions,
  opts: Partial<RemoteModelOptions> = {},
): Promise<RemoteModel> {
  const o = typeof source === "string" ? { ...opts, ...parseRemoteSource(source) } : source;
  const tokenizer = o.tokenizer ??
    (o.tokenizerDir ? await loadTokenizer(o.tokenizerDir) : undefined);
  return new RemoteModel({ ...o, tokenizer });
}

export { parseRemoteSource };
export {
  generateResumable,
  type GenerationFailure,
  type GenerationRecord,
  ResumableGenerationError,
  type ResumableOptions,
  type ResumableRow,
  type TextGenerator,
} from "./remote_journal.ts";
