/**
 * An HTTP reward service (Deno.serve, bound to 127.0.0.1 unless told otherwise) speaking the
 * JSON protocol of OpenRLHF's remote reward model option (`--remote_rm_url`), serving the
 * rewards of lib/serve/catalog.ts: AlphaAlign R_s with its format and refusal verifiers, the
 * SafetyWorld graders, the default refusal judge, and CRAFT's text term.
 *
 * Protocol, as found in OpenRLHF (github.com/OpenRLHF/OpenRLHF): the trainer POSTs
 * `{"query": [...], "prompts": [...], "labels": [...]}` (openrlhf/utils/remote_rm_utils.py,
 * `remote_rm_fn`: `query` = prompt + response as decoded text, `prompts` = the prompts,
 * `labels` = the dataset's `--label_key` column) and reads `rewards` from the JSON reply; its
 * reward server (openrlhf/cli/serve_rm.py, route `/get_reward`) and custom reward functions
 * (examples/python/reward_func.py) return `{"rewards": [...], "scores": [...],
 * "extra_logs": {name: [...]}}`, where `rewards` drive the advantages, `scores` in [0, 1]
 * drive dynamic filtering, and `extra_logs` are logged to wandb. Additions here: an optional
 * `responses` list (the response alone, so `query` may be omitted), labels that are a prompt
 * label (`harmful`, `benign`, `borderline`) or a JSON object of row fields (as a string or an
 * object), and a log per item only when every item has it.
 *
 * Routes: `POST /get_reward` (the default reward, or `?reward=<name>`), `POST /reward/<name>`,
 * `GET /rewards` (the list), `GET /health`. Every client error is a JSON `{"error": "..."}`
 * with a 4xx: 400 (malformed body, a field of the wrong type, a label outside its vocabulary
 * such as `"trait": 7`, a bad %-escape in the path; any content type is read as JSON, so
 * `curl -d` works), 401 (missing or wrong bearer token, when one is set), 404 (unknown route
 * or reward), 405, 408 (the body did not arrive within `bodyTimeoutMs`: a stalled upload),
 * 413 (body over `maxBodyBytes`). Only a scorer failing on valid input answers 500, and the
 * server keeps serving.
 *
 * Exposure: it binds 127.0.0.1 by default. With `token` set every request needs
 * `Authorization: Bearer <token>`; binding any other address without a token is refused
 * unless `allowUnauthenticated` is set, which prints a warning.
 *
 * Pointing other trainers at it (a few lines of Python each):
 *
 * ```python
 * # OpenRLHF: --remote_rm_url http://127.0.0.1:5000/get_reward --label_key label
 *
 * # verl: custom_reward_function.path=sc_reward.py custom_reward_function.name=compute_score
 * import requests
 * def compute_score(data_source, solution_str, ground_truth, extra_info=None):
 *     r = requests.post("http://127.0.0.1:5000/reward/alphaalign", timeout=60,
 *                       json={"responses": [solution_str], "labels": [ground_truth]})
 *     r.raise_for_status()
 *     return r.json()["rewards"][0]
 *
 * # TRL (GRPOTrainer(reward_funcs=[safety_reward]); dataset columns arrive as kwargs):
 * import requests
 * def safety_reward(prompts, completions, label, **kwargs):
 *     texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
 *     r = requests.post("http://127.0.0.1:5000/reward/alphaalign", timeout=60,
 *                       json={"responses": texts, "labels": label})
 *     r.raise_for_status()
 *     return r.json()["rewards"]
 * ```
 *
 * @module
 */

import {
  type BuiltinRewardOptions,
  builtinRewards,
  type ItemReward,
  parseLabel,
  RequestError,
  type RewardItem,
  type ServedReward,
} from "./catalog.ts";
import { shown } from "../io/bounded.ts";

export { builtinRewards, RequestError };
export type { BuiltinRewardOptions, ItemReward, RewardItem, ServedReward };

/** The reply of a reward request (OpenRLHF's shape). */
export interface RewardReply {
  /** One reward per item (OpenRLHF: used for the advantages). */
  rewards: number[];
  /** One score in [0, 1] per item (OpenRLHF: dynamic filtering). */
  scores: number[];
  /** Named per-item values (OpenRLHF: logged to wandb). */
  extra_logs: Record<string, number[]>;
}

/** Options of {@linkcode createRewardHandler}. */
export interface RewardServiceOptions extends BuiltinRewardOptions {
  /** The rewards served. @default builtinRewards(options) */
  rewards?: ServedReward[];
  /** What `POST /get_reward` computes. @default "alphaalign" */
  defaultReward?: string;
  /** Largest request body in bytes (413 above). @default 8 MiB */
  maxBodyBytes?: number;
  /** Most items in one request. @default 65536 */
  maxItems?: number;
  /** Time allowed to receive a request body, in ms (408 after it). @default 30000 */
  bodyTimeoutMs?: number;
  /** When set, every request needs `Authorization: Bearer <token>` (401 otherwise). */
  token?: string;
}

const json = (value: unknown, status = 200) => Response.json(value, { status });
const fail = (status: number, message: string) => json({ error: message }, status);

/**
 * Reads the body as UTF-8 text, refusing more than `limit` bytes (413) and bodies not
 * received within `timeoutMs` (408).
 */
async function readBody(req: Request, limit: number, timeoutMs: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  const tooBig = (n: number) =>
    new RequestError(
      `request body of ${n} bytes exceeds the limit of ${limit} bytes; send fewer items per ` +
        `request or raise --max-body-mb`,
      413,
    );
  if (declared > limit) {
    await req.body?.cancel();
    throw tooBig(declared);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (req.body) {
    const reader = req.body.getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() =>
        reject(
          new RequestError(
            `the request body did not arrive within ${timeoutMs} ms (${total} bytes ` +
              `received); send it at once, or raise --body-timeout-s`,
            408,
          ),
        ), timeoutMs);
    });
    try {
      while (true) {
        const { done, value } = await Promise.race([reader.read(), expired]);
        if (done) break;
        total += value.length;
        if (total > limit) throw tooBig(total);
        chunks.push(value);
      }
    } catch (err) {
      reader.cancel().catch(() => {}); // the client is gone or misbehaving: stop reading
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) (bytes.set(c, off), off += c.length);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RequestError("request body is not valid UTF-8");
  }
}

/** Equal strings, compared in time independent of where they differ. */
async function sameSecret(a: string, b: string): Promise<boolean> {
  const hash = async (s: string) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  const [x, y] = await Promise.all([hash(a), hash(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** The 401 answer when `token` is set and the request lacks it, else undefined. */
async function unauthorized(req: Request, token?: string): Promise<Response | undefined> {
  if (token === undefined) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization") ?? "");
  if (m && await sameSecret(m[1].trim(), token)) return undefined;
  await req.body?.cancel().catch(() => {});
  return Response.json(
    {
      error: m
        ? "wrong bearer token"
        : "this service needs 'Authorization: Bearer <token>' (the token it was started with)",
    },
    { status: 401, headers: { "www-authenticate": 'Bearer realm="safety-compass rewards"' } },
  );
}

function stringList(
  body: Record<string, unknown>,
  field: string,
  n?: number,
): string[] | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new RequestError(`field '${field}' must be a list of strings`);
  const bad = v.findIndex((s) => typeof s !== "string");
  if (bad >= 0) {
    throw new RequestError(`${field}[${bad}] is ${shown(v[bad])}: expected a string`);
  }
  if (n !== undefined && v.length !== n) {
    throw new RequestError(`field '${field}' has ${v.length} entries, 'query' has ${n}`);
  }
  return v;
}

/** Validates a request body and turns it into items; errors name the field and index. */
export function parseRewardRequest(body: unknown, maxItems = 65536): RewardItem[] {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new RequestError(
      `the body must be a JSON object such as {"query": [...], "labels": [...]}`,
    );
  }
  const b = body as Record<string, unknown>;
  const query = stringList(b, "query");
  const responses = stringList(b, "responses", query?.length);
  const n = query?.length ?? responses?.length;
  if (n === undefined) {
    throw new RequestError(`field 'query' (prompt + response texts) or 'responses' is required`);
  }
  if (n > maxItems) throw new RequestError(`${n} items in one request; the limit is ${maxItems}`);
  const prompts = stringList(b, "prompts", n);
  const labels = b.labels;
  if (labels !== undefined && labels !== null) {
    if (!Array.isArray(labels)) throw new RequestError(`field 'labels' must be a list`);
    if (labels.length !== n) {
      throw new RequestError(`field 'labels' has ${labels.length} entries, 'query' has ${n}`);
    }
  }
  return Array.from({ length: n }, (_, i) => {
    const prompt = prompts?.[i] ?? "";
    let response = responses?.[i];
    if (response === undefined) {
      const q = query![i];
      const at = prompt === "" ? 0 : q.indexOf(prompt);
      if (at < 0) {
        throw new RequestError(
          `query[${i}] does not contain prompts[${i}]; send the response alone in 'responses'`,
        );
      }
      response = q.slice(at + prompt.length);
    }
    return { index: i, prompt, response, row: parseLabel((labels as unknown[])?.[i], i) };
  });
}

/** Scores items with one reward and assembles OpenRLHF's reply. */
export async function scoreItems(reward: ServedReward, items: RewardItem[]): Promise<RewardReply> {
  const out: ItemReward[] = await Promise.all(items.map((it) => reward.score(it)));
  out.forEach((r, i) => {
    if (!Number.isFinite(r.reward) || !Number.isFinite(r.score)) {
      throw new Error(`reward '${reward.name}' gave a non-finite value for item ${i}`);
    }
  });
  const keys = Object.keys(out[0]?.logs ?? {}).filter((k) =>
    out.every((r) => r.logs?.[k] !== undefined)
  );
  return {
    rewards: out.map((r) => r.reward),
    scores: out.map((r) => r.score),
    extra_logs: Object.fromEntries(keys.map((k) => [k, out.map((r) => r.logs![k])])),
  };
}

/** A %-decoded path segment; a malformed escape is the client's error (400). */
function decodePath(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RequestError(
      `the path segment '${segment}' has a malformed %-escape; encode the reward name with ` +
        `encodeURIComponent`,
    );
  }
}

/** The service as a `Request -> Response` function (what {@linkcode serveRewards} serves). */
export function createRewardHandler(
  opts: RewardServiceOptions = {},
): (req: Request) => Promise<Response> {
  const rewards = new Map((opts.rewards ?? builtinRewards(opts)).map((r) => [r.name, r]));
  const defaultName = opts.defaultReward ?? "alphaalign";
  if (!rewards.has(defaultName)) {
    throw new Error(
      `Cannot serve rewards: default reward '${defaultName}' is not one of ${[...rewards.keys()]}`,
    );
  }
  const limit = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const bodyTimeoutMs = opts.bodyTimeoutMs ?? 30000;
  if (opts.token !== undefined && opts.token.trim() === "") {
    throw new Error("Cannot serve rewards with an empty token: pass a real secret or none");
  }
  return async (req) => {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    try {
      const denied = await unauthorized(req, opts.token);
      if (denied) return denied;
      if (path === "/health" || path === "/rewards") {
        if (req.method !== "GET") return fail(405, `${path} answers GET only`);
        return path === "/health"
          ? json({ status: "ok", default: defaultName, rewards: [...rewards.keys()] })
          : json([...rewards.values()].map(({ name, description }) => ({ name, description })));
      }
      const name = path === "/get_reward"
        ? url.searchParams.get("reward") ?? defaultName
        : path.startsWith("/reward/")
        ? decodePath(path.slice("/reward/".length))
        : undefined;
      if (name === undefined) {
        return fail(
          404,
          `no route ${path}; use POST /get_reward, POST /reward/<name>, GET /health`,
        );
      }
      const reward = rewards.get(name);
      if (!reward) return fail(404, `unknown reward '${name}'; served: ${[...rewards.keys()]}`);
      if (req.method !== "POST") return fail(405, `${path} answers POST only`);
      const text = await readBody(req, limit, bodyTimeoutMs);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        return fail(400, `the body is not valid JSON: ${(err as Error).message}`);
      }
      return json(await scoreItems(reward, parseRewardRequest(body, opts.maxItems)));
    } catch (err) {
      if (err instanceof RequestError) return fail(err.status, err.message);
      return fail(500, `reward failed: ${(err as Error)?.message ?? String(err)}`);
    }
  };
}

/** A running service. */
export interface RewardServer {
  /** `http://host:port`. */
  url: string;
  /** The port bound (useful with port 0). */
  port: number;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** Stops accepting requests and finishes the ones in flight. */
  shutdown(): Promise<void>;
}

/** Options of {@linkcode serveRewards}. */
export interface ServeRewardsOptions extends RewardServiceOptions {
  /** Interface to bind; anything but loopback exposes the service. @default "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @default 5000 */
  port?: number;
  /** Called once listening. @default a line on stderr */
  onListen?: (url: string) => void;
  /**
   * Serve a non-loopback address without a `token` (a warning is printed). Without it, that
   * is refused: anyone who reaches the port could use the service. @default false
   */
  allowUnauthenticated?: boolean;
}

/** True for addresses that only this machine reaches (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) ||
    /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Starts the reward service.
 *
 * @throws Error when `host` is not a loopback address and neither `token` nor
 *   `allowUnauthenticated` is set.
 */
export function serveRewards(opts: ServeRewardsOptions = {}): RewardServer {
  const host = opts.host ?? "127.0.0.1";
  if (!isLoopback(host) && opts.token === undefined) {
    if (!opts.allowUnauthenticated) {
      throw new Error(
        `Cannot serve rewards on ${host} without a token: every host that reaches it could ` +
          `use it; set a bearer token (--token, or SAFETY_COMPASS_REWARD_TOKEN), bind ` +
          `127.0.0.1, or pass --allow-unauthenticated if the network is yours alone`,
      );
    }
    console.error(
      `WARNING: the reward service on ${host} accepts requests from any host that can reach ` +
        `it, without authentication (--allow-unauthenticated). Set a token unless this ` +
        `network is yours alone.`,
    );
  }
  const handler = createRewardHandler(opts);
  const server = Deno.serve({
    hostname: host,
    port: opts.port ?? 5000,
    onListen: () => {},
    onError: (err) => fail(500, `internal error: ${(err as Error)?.message ?? String(err)}`),
  }, handler);
  const shown = host.includes(":") ? `[${host}]` : host;
  const url = `http://${shown}:${server.addr.port}`;
  (opts.onListen ?? ((u) => console.error(`reward service listening on ${u}`)))(url);
  return {
    url,
    port: server.addr.port,
    finished: server.finished,
    shutdown: () => server.shutdown(),
  };
}
