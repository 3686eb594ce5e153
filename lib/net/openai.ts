/**
 * The wire protocol of OpenAI-compatible text generation servers (OpenAI's legacy
 * Completions and Chat Completions APIs, as vLLM, SGLang, llama.cpp's server and TGI speak
 * them): source strings, endpoint URLs, request bodies, and reading one choice back.
 *
 * - `POST {root}/completions` `{model, prompt, max_tokens, temperature, top_p, seed, n, stop,
 *   logprobs: 1}` -> `choices[0].text`, `choices[0].logprobs.token_logprobs`;
 * - `POST {root}/chat/completions` `{model, messages, ..., logprobs: true}` ->
 *   `choices[0].message.content`, `choices[0].logprobs.content[].logprob`;
 * - both: `choices[0].finish_reason` ("length" when `max_tokens` ran out),
 *   `usage.completion_tokens`. `top_k` and `ignore_eos` are vLLM/SGLang extensions, sent
 *   only when asked for.
 *
 * @module
 */

/** The parts of `openai:<baseURL>#<model>`. */
export interface RemoteSource {
  /** Server root or its `/v1` URL. */
  baseUrl: string;
  /** The model name the server knows. */
  model: string;
}

/** Splits `openai:<baseURL>#<model>` into its parts. */
export function parseRemoteSource(source: string): RemoteSource {
  const m = /^openai:(https?:\/\/[^#\s]+)#(.+)$/.exec(source.trim());
  if (!m) {
    throw new Error(
      `Cannot parse remote model source '${source}': expected openai:<baseURL>#<model>, ` +
        `e.g. openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-0.5B-Instruct`,
    );
  }
  return { baseUrl: m[1], model: m[2] };
}

/** The API root: the base URL without trailing slashes, with `/v1` appended unless present. */
export function apiRoot(baseUrl: string): string {
  const base = baseUrl.replace(/\/+$/, "");
  return /\/v1$/.test(base) ? base : `${base}/v1`;
}

/** One generation request, endpoint-independent. */
export interface CompletionParams {
  /** The model name the server knows. */
  model: string;
  /** Raw prompt (completions) or the user message (chat). */
  prompt: string;
  /** true: `/completions` with a raw prompt; false: `/chat/completions`. */
  raw: boolean;
  /** Sent as `max_tokens`. */
  maxTokens: number;
  /** 0 = greedy. @default 0 */
  temperature?: number;
  /** Nucleus sampling mass (1 = off). @default 1 */
  topP?: number;
  /** Sent as `top_k` only when > 0. @default 0 */
  topK?: number;
  /** Sampling seed of this request. */
  seed: number;
  /** Stop strings. @default [] */
  stop?: string[];
  /** Ask for per-token log-probs. @default true */
  logprobs?: boolean;
  /** Sent as `ignore_eos: true` when true. @default false */
  ignoreEos?: boolean;
}

/** The endpoint URL and JSON body of a request. */
export function completionRequest(
  root: string,
  p: CompletionParams,
): { url: string; body: Record<string, unknown> } {
  const body: Record<string, unknown> = {
    model: p.model,
    max_tokens: p.maxTokens,
    temperature: p.temperature ?? 0,
    top_p: p.topP ?? 1,
    seed: p.seed,
    n: 1,
  };
  if (p.raw) body.prompt = p.prompt;
  else body.messages = [{ role: "user", content: p.prompt }];
  if (p.logprobs ?? true) body.logprobs = p.raw ? 1 : true;
  if (p.stop?.length) body.stop = p.stop;
  if ((p.topK ?? 0) > 0) body.top_k = p.topK;
  if (p.ignoreEos) body.ignore_eos = true;
  return { url: `${root}/${p.raw ? "completions" : "chat/completions"}`, body };
}

/** What one choice of a reply holds. */
export interface Completion {
  /** The generated text. */
  text: string;
  /** Per-token log-probs, when the server returned them. */
  logprobs?: number[];
  /** Tokens generated: log-probs count, else `usage.completion_tokens`, else undefined. */
  tokens?: number;
  /** "length" when `max_tokens` ran out; "stop" (or another reason) otherwise. */
  finish: string;
}

interface Choice {
  text?: string;
  message?: { content?: string | null };
  finish_reason?: string | null;
  logprobs?: { token_logprobs?: (number | null)[]; content?: { logprob: number }[] | null } | null;
}

/** Reads `choices[0]` of a reply; errors say what was missing and from which URL. */
export function parseCompletion(reply: unknown, raw: boolean, url: string): Completion {
  const r = reply as { choices?: Choice[]; usage?: { completion_tokens?: number } } | null;
  const c = r?.choices?.[0];
  const text = raw ? c?.text : c?.message?.content;
  if (!c || typeof text !== "string") {
    throw new Error(
      `Cannot read the reply of ${url}: no choices[0].${raw ? "text" : "message.content"} in ` +
        `${JSON.stringify(reply).slice(0, 200)}; is it an OpenAI-compatible endpoint?`,
    );
  }
  const logprobs = raw
    ? c.logprobs?.token_logprobs?.map((v) => v ?? NaN)
    : c.logprobs?.content?.map((t) => t.logprob);
  const tokens = logprobs?.length ?? r?.usage?.completion_tokens;
  return { text, logprobs, tokens, finish: c.finish_reason ?? "stop" };
}
