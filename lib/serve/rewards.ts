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
 * `GET /rewards` (the list), `GET /health`. Errors are JSON `{"error": "..."}` with 400
 * (malformed body; any content type is read as JSON, so `curl -d` works), 404 (unknown route
 * or reward), 405, 413 (body over `maxBodyBytes`); a failing scorer answers 500 and the
 * server keeps serving.
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
}

const json = (value: unknown, status = 200) => Response.json(value, { status });
const fail = (status: number, message: string) => json({ error: message }, status);

/** Reads the body as UTF-8 text, refusing more than `limit` bytes (413). */
async function readBody(req: Request, limit: number): Promise<string> {
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
    for await (const chunk of req.body) {
      total += chunk.length;
      if (total > limit) throw tooBig(total);
      chunks.push(chunk);
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
    throw new RequestError(`${field}[${bad}] is ${JSON.stringify(v[bad])}: expected a string`);
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
  return async (req) => {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    try {
      if (path === "/health" || path === "/rewards") {
        if (req.method !== "GET") return fail(405, `${path} answers GET only`);
        return path === "/health"
          ? json({ status: "ok", default: defaultName, rewards: [...rewards.keys()] })
          : json([...rewards.values()].map(({ name, description }) => ({ name, description })));
      }
      const name = path === "/get_reward"
        ? url.searchParams.get("reward") ?? defaultName
        : path.startsWith("/reward/")
        ? decodeURIComponent(path.slice("/reward/".length))
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
      const text = await readBody(req, limit);
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
}

/** Starts the reward service. */
export function serveRewards(opts: ServeRewardsOptions = {}): RewardServer {
  const handler = createRewardHandler(opts);
  const host = opts.host ?? "127.0.0.1";
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
