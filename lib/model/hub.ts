/**
 * `hf:owner/name[@revision]` model sources: downloads a model's files from the Hugging Face
 * Hub (or any server with the same URL layout) into the standard Hugging Face cache, so the
 * files are shared with Python's `huggingface_hub` and reused offline:
 * `<cache>/models--owner--name/{blobs/<etag>, snapshots/<commit>/<file> -> blob, refs/<revision>}`.
 * Endpoints: `GET {endpoint}/api/models/{repo}/revision/{revision}` lists the files
 * (`sha`, `siblings[].rfilename`); `GET {endpoint}/{repo}/resolve/{commit}/{file}` serves one.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { exists } from "../io/exists.ts";
import { envVar } from "../io/env.ts";

/** A parsed `hf:` source. */
export interface HfSource {
  /** `owner/name` (or a bare legacy `name`). */
  repo: string;
  /** Branch, tag or commit. @default "main" */
  revision: string;
}

/** Options of {@linkcode downloadHfModel}. */
export interface DownloadHfOptions {
  /** Branch, tag or commit hash. @default "main" */
  revision?: string;
  /** Hub URL. @default env HF_ENDPOINT, else "https://huggingface.co" */
  endpoint?: string;
  /**
   * The hub cache folder (the one holding `models--*`). @default env HF_HUB_CACHE, else
   * `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`
   */
  cacheDir?: string;
  /** Access token, sent as `Authorization: Bearer`. @default env HF_TOKEN */
  token?: string;
  /**
   * Files to fetch. @default config.json, generation_config.json, tokenizer.json,
   * tokenizer_config.json, special_tokens_map.json, chat_template.jinja (those the repo
   * has), and model.safetensors, or model.safetensors.index.json and its shards
   */
  files?: string[];
  /** Called as bytes of `file` arrive: bytes so far and its size (0 when unknown). */
  onProgress?: (done: number, total: number, file: string) => void;
  /** The fetch to use (tests, proxies). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Use only the cache, never the network. @default env HF_HUB_OFFLINE is "1" or "true" */
  offline?: boolean;
}

const REPO_RE = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;
const COMMIT_RE = /^[0-9a-f]{40}$/;
const SIDE_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
];

/** Whether `src` is an `hf:` source. */
export function isHfSource(src: string): boolean {
  return src.startsWith("hf:");
}

/** Parses `hf:owner/name[@revision]`; throws on any other form. */
export function parseHfSource(src: string): HfSource {
  const m = /^hf:([^@]+)(?:@(.+))?$/.exec(src.trim());
  const repo = m?.[1] ?? "";
  if (!m || !REPO_RE.test(repo) || repo.includes("--") || repo.includes("..")) {
    throw new Error(
      `Cannot parse model source '${src}': expected hf:owner/name or hf:owner/name@revision ` +
        `(e.g. hf:openai-community/gpt2@main)`,
    );
  }
  if (m[2] !== undefined && /\s/.test(m[2])) {
    throw new Error(`Cannot parse model source '${src}': the revision contains whitespace`);
  }
  return { repo, revision: m[2] ?? "main" };
}

/** The default hub cache folder (see {@linkcode DownloadHfOptions.cacheDir}). */
export function defaultHubCache(): string {
  const hub = envVar("HF_HUB_CACHE");
  if (hub) return hub;
  const home = envVar("HF_HOME");
  if (home) return join(home, "hub");
  const xdg = envVar("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "huggingface", "hub");
  const user = envVar("HOME") ?? envVar("USERPROFILE");
  if (!user) {
    throw new Error(
      "Cannot locate the Hugging Face cache: HOME is not readable; pass cacheDir or run with --allow-env",
    );
  }
  return join(user, ".cache", "huggingface", "hub");
}

/** Thrown when the Hub cannot be reached (network error, 5xx): the cache is used instead. */
class Unreachable extends Error {}

interface Ctx {
  repo: string;
  endpoint: string;
  storage: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
  onProgress?: (done: number, total: number, file: string) => void;
}

/** GETs `url`, following redirects by hand so the endpoint's own headers can be read. */
async function get(ctx: Ctx, url: string): Promise<{ first: Response; last: Response }> {
  const origin = new URL(ctx.endpoint).origin;
  let first: Response | undefined;
  for (let hop = 0; hop < 10; hop++) {
    let res: Response;
    try {
      const sameOrigin = new URL(url).origin === origin;
      res = await ctx.fetch(url, { headers: sameOrigin ? ctx.headers : {}, redirect: "manual" });
    } catch (err) {
      throw new Unreachable(`${url}: ${(err as Error).message}`, { cause: err });
    }
    first ??= res;
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !location) {
      if (res.status >= 500) {
        await res.body?.cancel();
        throw new Unreachable(`${url}: HTTP ${res.status}`);
      }
      return { first, last: res };
    }
    await res.body?.cancel();
    url = new URL(location, url).href;
  }
  throw new Error(`Cannot download ${url}: more than 10 redirects`);
}

async function httpError(ctx: Ctx, res: Response, what: string): Promise<Error> {
  await res.body?.cancel();
  const hint = res.status === 401 || res.status === 403
    ? "; the repo may be private or gated: accept its terms on the Hub and set HF_TOKEN (or pass token)"
    : res.status === 404
    ? "; check the repo name, the revision and the file name"
    : "";
  return new Error(`Cannot download hf:${ctx.repo}: ${what} failed with HTTP ${res.status}${hint}`);
}

/** Downloads `file` of `commit` into blobs/ and links it from snapshots/, unless present. */
async function fetchFile(ctx: Ctx, commit: string, file: string): Promise<void> {
  if (file.startsWith("/") || file.split(/[\\/]/).some((p) => p === ".." || p === "")) {
    throw new Error(`Cannot download hf:${ctx.repo}: unsafe file name '${file}'`);
  }
  const snapPath = join(ctx.storage, "snapshots", commit, file);
  if (await exists(snapPath)) return;
  const path = file.split("/").map(encodeURIComponent).join("/");
  const { first, last } = await get(ctx, `${ctx.endpoint}/${ctx.repo}/resolve/${commit}/${path}`);
  if (!last.ok || !last.body) throw await httpError(ctx, last, `GET ${file}`);
  const tag = (first.headers.get("x-linked-etag") ?? first.headers.get("etag") ?? "")
    .replace(/^W\//, "").replaceAll('"', "");
  const blobs = join(ctx.storage, "blobs");
  await Deno.mkdir(blobs, { recursive: true });
  let blobPath = tag && /^[\w.-]+$/.test(tag) ? join(blobs, tag) : "";
  if (blobPath && await exists(blobPath)) await last.body.cancel();
  else {
    const total = Number(
      last.headers.get("content-length") ?? first.headers.get("x-linked-size") ?? 0,
    );
    const tmp = join(blobs, `${tag || "download"}.${Deno.pid}.${crypto.randomUUID()}.incomplete`);
    const hash = createHash("sha256");
    let done = 0;
    try {
      const out = await Deno.open(tmp, { write: true, createNew: true });
      try {
        for await (const chunk of last.body) {
          for (let off = 0; off < chunk.length;) off += await out.write(chunk.subarray(off));
          hash.update(chunk);
          done += chunk.length;
          ctx.onProgress?.(done, total, file);
        }
      } finally {
        out.close();
      }
      if (total && done !== total) throw new Error(`got ${done} of ${total} bytes`);
      const sha256 = hash.digest("hex");
      if (/^[0-9a-f]{64}$/.test(tag) && tag !== sha256) {
        throw new Error(`content sha256 ${sha256} differs from the Hub's ${tag}`);
      }
      blobPath ||= join(blobs, sha256);
      await Deno.rename(tmp, blobPath);
    } catch (err) {
      await Deno.remove(tmp).catch(() => undefined);
      throw new Error(`Cannot download ${file} of hf:${ctx.repo}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    ctx.onProgress?.(done, total || done, file);
  }
  await Deno.mkdir(dirname(snapPath), { recursive: true });
  const tmpLink = `${snapPath}.${Deno.pid}.${crypto.randomUUID()}.incomplete`;
  try {
    await Deno.symlink(relative(dirname(snapPath), blobPath), tmpLink);
  } catch {
    await Deno.copyFile(blobPath, tmpLink); // no symlinks here (e.g. Windows without rights)
  }
  await Deno.rename(tmpLink, snapPath);
}

/** The shard files named by a model.safetensors.index.json. */
async function shardsOf(indexPath: string): Promise<string[]> {
  const index = JSON.parse(await Deno.readTextFile(indexPath));
  const map = index?.weight_map;
  if (typeof map !== "object" || map === null) {
    throw new Error(`Cannot read ${indexPath}: it has no 'weight_map' object`);
  }
  return [...new Set(Object.values(map).map(String))];
}

/** `<storage>/snapshots/<commit>` of a revision (a commit, or a ref read from `refs/`); undefined when the ref is absent. */
async function snapshotOf(storage: string, revision: string): Promise<string | undefined> {
  let commit = revision;
  if (!COMMIT_RE.test(revision)) {
    const ref = join(storage, "refs", revision);
    commit = (await exists(ref)) ? (await Deno.readTextFile(ref)).trim() : "";
    if (!commit) return undefined;
  }
  return join(storage, "snapshots", commit);
}

/**
 * The snapshot folder of `repo` (`owner/name`) at `revision` in the local Hugging Face cache
 * (`<cache>/models--owner--name/snapshots/<commit from refs/revision>/`), or undefined when the
 * cache has no such ref or folder. Looks only; never downloads, never checks the files.
 *
 * @example
 * ```ts
 * const dir = await cachedSnapshot("acme/absent", { cacheDir: await Deno.makeTempDir() });
 * console.log(dir); // undefined
 * ```
 */
export async function cachedSnapshot(
  repo: string,
  opts: { revision?: string; cacheDir?: string } = {},
): Promise<string | undefined> {
  parseHfSource(`hf:${repo}`);
  const storage = join(opts.cacheDir ?? defaultHubCache(), `models--${repo.replaceAll("/", "--")}`);
  const snap = await snapshotOf(storage, opts.revision ?? "main");
  return snap !== undefined && (await exists(snap)) ? snap : undefined;
}

/** Checks a cached snapshot holds what a model needs; returns its folder. */
async function fromCache(ctx: Ctx, revision: string, files: string[] | undefined, why: string) {
  const fail = (what: string): never => {
    throw new Error(
      `Cannot download hf:${ctx.repo}@${revision}: ${why}, and ${what}; connect once to fill ` +
        `the cache, or load a local model folder instead`,
    );
  };
  const snap = await snapshotOf(ctx.storage, revision) ??
    fail(`the cache ${ctx.storage} has no refs/${revision}`);
  const need = files ?? ["config.json"];
  if (!files) {
    if (await exists(join(snap, "model.safetensors"))) need.push("model.safetensors");
    else if (await exists(join(snap, "model.safetensors.index.json"))) {
      need.push(...await shardsOf(join(snap, "model.safetensors.index.json")));
    } else need.push("model.safetensors");
  }
  for (const f of need) if (!(await exists(join(snap, f)))) fail(`the cached snapshot lacks ${f}`);
  return snap;
}

/**
 * Downloads a model repo's files (see {@linkcode DownloadHfOptions.files}) into the
 * Hugging Face cache and returns the local snapshot folder. Files already cached are not
 * fetched again; when the Hub is unreachable (or `offline`), the cached snapshot of the
 * revision is returned if it is complete. Each file is written to a temporary name and
 * renamed, so an interrupted download leaves no partial file; LFS files are checked
 * against the Hub's sha256.
 */
export async function downloadHfModel(repo: string, opts: DownloadHfOptions = {}): Promise<string> {
  parseHfSource(`hf:${repo}`);
  const revision = opts.revision ?? "main";
  const token = opts.token ?? envVar("HF_TOKEN") ?? envVar("HUGGING_FACE_HUB_TOKEN");
  const ctx: Ctx = {
    repo,
    endpoint: (opts.endpoint ?? envVar("HF_ENDPOINT") ?? "https://huggingface.co").replace(
      /\/+$/,
      "",
    ),
    storage: join(opts.cacheDir ?? defaultHubCache(), `models--${repo.replaceAll("/", "--")}`),
    headers: token ? { authorization: `Bearer ${token}` } : {},
    fetch: opts.fetch ?? fetch,
    onProgress: opts.onProgress,
  };
  const offline = opts.offline ?? /^(1|true|yes|on)$/i.test(envVar("HF_HUB_OFFLINE") ?? "");
  if (offline) return fromCache(ctx, revision, opts.files, "offline mode is on");
  let res: Response;
  try {
    const api = `${ctx.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    res = (await get(ctx, api)).last;
  } catch (err) {
    if (!(err instanceof Unreachable)) throw err;
    return fromCache(ctx, revision, opts.files, `the Hub is unreachable (${err.message})`);
  }
  if (!res.ok) throw await httpError(ctx, res, `listing revision ${revision}`);
  const info = await res.json();
  const commit = info?.sha;
  if (typeof commit !== "string" || !Array.isArray(info?.siblings)) {
    throw new Error(`Cannot download hf:${repo}: the Hub's answer lacks 'sha' or 'siblings'`);
  }
  const listed = new Set<string>(
    info.siblings.map((s: { rfilename?: unknown }) => String(s?.rfilename)),
  );
  if (revision !== commit) {
    const ref = join(ctx.storage, "refs", revision);
    if (!(await exists(ref)) || (await Deno.readTextFile(ref)) !== commit) {
      await writeTextFileAtomic(ref, commit);
    }
  }
  const absent = (files: string[]) => files.filter((f) => !listed.has(f));
  const missing = (files: string[], what: string): Error =>
    new Error(
      `Cannot download hf:${repo}@${revision}: the repo has no ${absent(files).join(", ")} ` +
        `(${what}); it lists ${[...listed].slice(0, 12).join(", ")}`,
    );
  if (opts.files) {
    if (absent(opts.files).length) throw missing(opts.files, "requested in files");
    for (const f of opts.files) await fetchFile(ctx, commit, f);
    return join(ctx.storage, "snapshots", commit);
  }
  if (!listed.has("config.json")) throw missing(["config.json"], "needed for a model");
  const sharded = !listed.has("model.safetensors");
  if (sharded && !listed.has("model.safetensors.index.json")) {
    throw missing(["model.safetensors"], "only safetensors weights are read");
  }
  for (const f of SIDE_FILES.filter((f) => listed.has(f))) await fetchFile(ctx, commit, f);
  const snap = join(ctx.storage, "snapshots", commit);
  if (!sharded) await fetchFile(ctx, commit, "model.safetensors");
  else {
    await fetchFile(ctx, commit, "model.safetensors.index.json");
    const shards = await shardsOf(join(snap, "model.safetensors.index.json"));
    if (absent(shards).length) {
      throw missing(shards, "shards named by model.safetensors.index.json");
    }
    for (const f of shards) await fetchFile(ctx, commit, f);
  }
  return snap;
}
