/**
 * A small HTTP client core for the toolkit's remote calls (OpenAI-compatible model servers,
 * LLM judges, reward services): {@linkcode postJson} with retries and exponential backoff with
 * jitter on 429 (honouring `Retry-After`, RFC 9110 section 10.2.3), 408, 5xx, timeouts and
 * network errors; a {@linkcode Semaphore} that caps concurrent requests; and a
 * {@linkcode DiskCache} keyed by the SHA-256 of a canonical JSON of the request, written
 * atomically (lib/io/atomic.ts) so a crash never leaves a half-written entry.
 *
 * Backoff: attempt `a` (0-based) waits `cap/2 + U(0, cap/2)` ms with
 * `cap = min(maxDelayMs, baseDelayMs * 2^a)` ("equal jitter"), drawn from `makeRng(seed)`;
 * a `Retry-After` header (seconds or an HTTP date) replaces it, capped at `maxRetryAfterMs`.
 *
 * @module
 */

import { join } from "node:path";
import { makeRng } from "../data/rng.ts";
import { writeJsonAtomic } from "../io/atomic.ts";

/** The `fetch` signature the client calls (tests pass a fake one). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** What {@linkcode PostJsonOptions.onRetry} is told before each wait. */
export interface RetryInfo {
  /** 1-based number of the attempt that failed. */
  attempt: number;
  /** Milliseconds it will wait before the next attempt. */
  delayMs: number;
  /** Why it failed ("HTTP 503", "timeout after 1000 ms", "network error: ..."). */
  reason: string;
}

/** Options of {@linkcode postJson}. */
export interface PostJsonOptions {
  /** Sent as `Authorization: Bearer <apiKey>` when set. @default undefined */
  apiKey?: string;
  /** Per attempt, for the whole exchange (headers and body). @default 60000 */
  timeoutMs?: number;
  /** Extra attempts after the first on retryable failures. @default 4 */
  retries?: number;
  /** The fetch to call. @default globalThis.fetch */
  fetch?: FetchLike;
  /** First backoff cap in ms. @default 500 */
  baseDelayMs?: number;
  /** Largest backoff cap in ms. @default 30000 */
  maxDelayMs?: number;
  /** Largest wait a `Retry-After` header may impose, in ms. @default 120000 */
  maxRetryAfterMs?: number;
  /** Seeds the jitter. @default 0 */
  seed?: number;
  /** Extra request headers. @default {} */
  headers?: Record<string, string>;
  /** Called before each wait between attempts. */
  onRetry?: (info: RetryInfo) => void;
  /**
   * Checks a 2xx JSON reply; a throw makes it a malformed reply, retried like a 5xx (a
   * server under load can answer 200 with a truncated or empty body). @default undefined
   */
  validate?: (reply: unknown) => void;
}

/** A failed request: the status (0 for timeouts and network errors) and the reply body. */
export class HttpError extends Error {
  /** Creates the error. */
  constructor(
    message: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
    readonly attempts: number,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** True for statuses worth retrying: 408, 429 and every 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Milliseconds a `Retry-After` value asks for (delta-seconds or an HTTP date), else undefined. */
export function parseRetryAfter(
  value: string | null,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The equal-jitter backoff of attempt `attempt` (0-based); `u` is a uniform draw in [0, 1). */
export function backoffDelay(
  attempt: number,
  u: number,
  baseDelayMs = 500,
  maxDelayMs = 30000,
): number {
  const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
  return cap / 2 + u * (cap / 2);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function snippet(text: string, n = 300): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > n ? t.slice(0, n - 3) + "..." : t;
}

/**
 * POSTs `body` as JSON to `url` and returns the parsed JSON reply, retrying transient
 * failures (see the module doc). Other 4xx replies fail at once with the server's message.
 *
 * @throws HttpError naming the URL, the status and the reply, after the last attempt.
 */
export async function postJson<T = unknown>(
  url: string,
  body: unknown,
  opts: PostJsonOptions = {},
): Promise<T> {
  const retries = Math.max(0, opts.retries ?? 4);
  const timeoutMs = opts.timeoutMs ?? 60000;
  const doFetch = opts.fetch ?? fetch;
  const rng = makeRng(opts.seed ?? 0);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json",
    ...opts.headers,
  };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const payload = JSON.stringify(body);
  let last: HttpError | undefined;
  for (let attempt = 0; attempt <= retries; attempt++) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    let retryAfter: number | undefined;
    let reason: string;
    try {
      const res = await doFetch(url, {
        method: "POST",
        headers,
        body: payload,
        signal: ctl.signal,
      });
      const text = await res.text();
      if (res.ok) {
        const parsed = readReply(text, opts.validate);
        if (typeof parsed !== "string") return parsed.value as T;
        reason = `malformed reply: ${parsed}`;
        const hint = parsed === NOT_JSON ? "; is the URL an OpenAI-compatible API endpoint?" : "";
        last = new HttpError(
          `Cannot POST ${url}: HTTP ${res.status} but ${parsed} (attempt ${attempt + 1} of ` +
            `${retries + 1}): ${snippet(text, 120) || "(empty reply)"}${hint}`,
          url,
          res.status,
          text,
          attempt + 1,
        );
      } else {
        reason = `HTTP ${res.status}`;
        last = new HttpError(
          `Cannot POST ${url}: HTTP ${res.status} ${res.statusText} after ${attempt + 1} ` +
            `attempt(s): ${snippet(text) || "(empty reply)"}`,
          url,
          res.status,
          text,
          attempt + 1,
        );
        if (!isRetryableStatus(res.status)) throw last;
        retryAfter = parseRetryAfter(res.headers.get("retry-after"));
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      const timedOut = ctl.signal.aborted;
      reason = timedOut
        ? `timeout after ${timeoutMs} ms`
        : `network error: ${(err as Error).message}`;
      last = new HttpError(
        `Cannot POST ${url}: ${reason} (attempt ${attempt + 1} of ${retries + 1}); ` +
          (timedOut ? "raise timeoutMs or check the server's load" : "is the server running?"),
        url,
        0,
        "",
        attempt + 1,
      );
    } finally {
      clearTimeout(timer);
    }
    if (attempt === retries) break;
    const delayMs = retryAfter !== undefined
      ? Math.min(retryAfter, opts.maxRetryAfterMs ?? 120000)
      : backoffDelay(attempt, rng.next(), opts.baseDelayMs, opts.maxDelayMs);
    opts.onRetry?.({ attempt: attempt + 1, delayMs, reason });
    await sleep(delayMs);
  }
  throw last!;
}

const NOT_JSON = "the reply is not JSON";

/** The parsed reply, or why it is malformed (not JSON, or refused by `validate`). */
function readReply(
  text: string,
  validate?: (reply: unknown) => void,
): { value: unknown } | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
  try {
    validate?.(value);
  } catch (err) {
    return `the reply is malformed: ${(err as Error).message}`;
  }
  return { value };
}

/** A counting semaphore: at most `limit` holders at a time, served first come, first served. */
export class Semaphore {
  #active = 0;
  #queue: (() => void)[] = [];

  /** Creates a semaphore with `limit` (>= 1) slots. */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new Error(`Cannot create a Semaphore with limit ${limit}: use an integer >= 1`);
    }
  }

  /** Slots in use. */
  get active(): number {
    return this.#active;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Waits for a slot; call the returned function (once) to give it back. */
  async acquire(): Promise<() => void> {
    if (this.#active >= this.limit) await new Promise<void>((r) => this.#queue.push(r));
    else this.#active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      if (next) next();
      else this.#active--;
    };
  }

  /** Runs `fn` holding a slot. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** JSON with object keys sorted at every depth, so equal requests hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(
          Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
        : v,
  );
}

/** Lower-case hex SHA-256 of a UTF-8 string. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A folder of JSON replies keyed by the SHA-256 of the canonical request
 * (`dir/ab/abcdef….json`). Keep secrets out of the keyed request: the API key is a header,
 * never part of it.
 */
export class DiskCache {
  /** Lookups answered from disk. */
  hits = 0;
  /** Lookups that missed. */
  misses = 0;

  /** A cache in folder `dir` (created on the first write). */
  constructor(readonly dir: string) {}

  /** The key of a request value. */
  key(request: unknown): Promise<string> {
    return sha256Hex(canonicalJson(request));
  }

  #path(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  /** The stored value, or undefined (a missing or unreadable entry is a miss, and says so). */
  async get<T>(key: string): Promise<T | undefined> {
    const path = this.#path(key);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        console.warn(`DiskCache: cannot read ${path} (${(err as Error).message}); recomputing`);
      }
      this.misses++;
      return undefined;
    }
    try {
      const value = JSON.parse(text) as T;
      this.hits++;
      return value;
    } catch {
      console.warn(`DiskCache: ${path} is not valid JSON; recomputing and overwriting it`);
      this.misses++;
      return undefined;
    }
  }

  /** Stores a value atomically. */
  set(key: string, value: unknown): Promise<void> {
    return writeJsonAtomic(this.#path(key), value);
  }

  /** The cached value of `request`, or `compute()`'s, stored for next time. */
  async getOrCompute<T>(request: unknown, compute: () => Promise<T>): Promise<T> {
    const key = await this.key(request);
    const hit = await this.get<T>(key);
    if (hit !== undefined) return hit;
    const value = await compute();
    await this.set(key, value);
    return value;
  }
}
