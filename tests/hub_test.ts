/**
 * Tests of the `hf:` downloader against a local `Deno.serve` on 127.0.0.1 that serves the
 * Hub's URL layout (API listing, resolve with LFS redirects); never the internet.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { downloadHfModel, parseHfSource } from "../lib/model/hub.ts";
import { readModelWeights, serializeSafetensors } from "../lib/io/safetensors.ts";

interface FakeRepo {
  sha: string;
  files: Record<string, Uint8Array>;
  /** Files served as LFS: a redirect to /cdn/ carrying X-Linked-Etag (sha256). */
  lfs?: string[];
  /** Bearer token the repo requires. */
  token?: string;
  /** LFS files whose bytes the CDN corrupts. */
  corrupt?: string[];
}

const text = (s: string) => new TextEncoder().encode(s);
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex");

/** Starts a fake Hub; `hits` counts requests per path. */
function startHub(repos: Record<string, FakeRepo>) {
  const hits = new Map<string, number>();
  const auths: (string | null)[] = [];
  const cdn = new Map<string, Uint8Array>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    hits.set(path, (hits.get(path) ?? 0) + 1);
    auths.push(req.headers.get("authorization"));
    if (path.startsWith("/cdn/")) {
      const body = cdn.get(path.slice(5));
      return body ? new Response(body.slice()) : new Response("no blob", { status: 404 });
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repo = repos[(api ?? resolve)?.[1] ?? ""];
    if (!repo) return new Response("Repository not found", { status: 404 });
    if (repo.token && req.headers.get("authorization") !== `Bearer ${repo.token}`) {
      return new Response("Unauthorized", { status: 401 });
    }
    if (api) {
      if (api[2] !== "main" && api[2] !== repo.sha) return new Response("bad rev", { status: 404 });
      const siblings = Object.keys(repo.files).map((rfilename) => ({ rfilename }));
      return Response.json({ sha: repo.sha, siblings });
    }
    const [, , rev, file] = resolve!;
    const body = repo.files[file];
    if (rev !== repo.sha || !body) return new Response("Entry not found", { status: 404 });
    if (repo.lfs?.includes(file)) {
      const hash = sha256(body);
      const served = repo.corrupt?.includes(file) ? body.map((b) => b ^ 1) : body;
      cdn.set(hash, served);
      return new Response(null, {
        status: 302,
        headers: {
          location: `/cdn/${hash}`,
          "x-linked-etag": `"${hash}"`,
          "x-linked-size": String(body.length),
          "x-repo-commit": repo.sha,
        },
      });
    }
    return new Response(body.slice(), {
      headers: { etag: `"${sha1(body)}"`, "x-repo-commit": repo.sha },
    });
  });
  const endpoint = `http://127.0.0.1:${server.addr.port}`;
  const resolves = () => [...hits].filter(([p]) => p.includes("/resolve/")).map(([p]) => p);
  return { server, endpoint, hits, auths, resolves };
}

const SHA = "0123456789abcdef0123456789abcdef01234567";
const weights = serializeSafetensors({
  "wte.weight": { shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
}, { format: "pt" });

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory) out.push(...await walk(p));
  }
  return out;
}

Deno.test("parseHfSource reads owner/name and an optional revision", () => {
  assert.deepEqual(parseHfSource("hf:openai-community/gpt2"), {
    repo: "openai-community/gpt2",
    revision: "main",
  });
  assert.deepEqual(parseHfSource("hf:Qwen/Qwen2.5-0.5B-Instruct@v1.0"), {
    repo: "Qwen/Qwen2.5-0.5B-Instruct",
    revision: "v1.0",
  });
  assert.deepEqual(parseHfSource("hf:gpt2"), { repo: "gpt2", revision: "main" });
  for (const bad of ["openai/gpt2", "hf:", "hf:a/b/c", "hf:a/../b", "hf:a--b/c", "hf:a/b@x y"]) {
    assert.throws(() => parseHfSource(bad), /Cannot parse model source/, bad);
  }
});

Deno.test("downloads into the HF cache layout, then serves repeats from the cache", async () => {
  const hub = startHub({
    "acme/tiny": {
      sha: SHA,
      lfs: ["model.safetensors"],
      files: {
        "config.json": text('{"model_type":"gpt2"}'),
        "tokenizer_config.json": text("{}"),
        "model.safetensors": weights,
        "pytorch_model.bin": text("not wanted"),
        "README.md": text("# tiny"),
      },
    },
  });
  const cacheDir = await Deno.makeTempDir();
  try {
    const progress: [number, number, string][] = [];
    const opts = {
      endpoint: hub.endpoint,
      cacheDir,
      token: "",
      onProgress: (d: number, t: number, f: string) => progress.push([d, t, f]),
    };
    const snap = await downloadHfModel("acme/tiny", opts);
    const storage = join(cacheDir, "models--acme--tiny");
    assert.equal(snap, join(storage, "snapshots", SHA));
    assert.equal(await Deno.readTextFile(join(storage, "refs", "main")), SHA);
    assert.deepEqual(hub.resolves().sort(), [
      `/acme/tiny/resolve/${SHA}/config.json`,
      `/acme/tiny/resolve/${SHA}/model.safetensors`,
      `/acme/tiny/resolve/${SHA}/tokenizer_config.json`,
    ]);
    // Snapshot entries are relative symlinks to blobs named by etag (sha256 for LFS).
    const link = join(snap, "model.safetensors");
    assert.ok((await Deno.lstat(link)).isSymlink);
    assert.equal(await Deno.readLink(link), join("..", "..", "blobs", sha256(weights)));
    assert.deepEqual(await Deno.readFile(join(storage, "blobs", sha256(weights))), weights);
    const cfg = text('{"model_type":"gpt2"}');
    assert.deepEqual(await Deno.readFile(join(storage, "blobs", sha1(cfg))), cfg);
    assert.deepEqual(progress.at(-1), [weights.length, weights.length, "model.safetensors"]);
    const file = await readModelWeights(snap);
    assert.deepEqual(Array.from(file.tensors.get("wte.weight")!.data), [1, 2, 3, 4, 5, 6]);
    assert.ok((await walk(cacheDir)).every((p) => !p.endsWith(".incomplete")));

    // Second call: one listing request, no file downloads.
    const apiPath = "/api/models/acme/tiny/revision/main";
    assert.equal(hub.hits.get(apiPath), 1);
    const before = hub.resolves().length;
    const total = [...hub.hits.values()].reduce((a, b) => a + b, 0);
    assert.equal(await downloadHfModel("acme/tiny", opts), snap);
    assert.equal(hub.hits.get(apiPath), 2);
    assert.equal([...hub.hits.values()].reduce((a, b) => a + b, 0), total + 1);
    assert.equal(hub.resolves().length, before);

    // Offline: the Hub is gone, the cache still answers; unknown revisions fail clearly.
    await hub.server.shutdown();
    assert.equal(await downloadHfModel("acme/tiny", opts), snap);
    assert.equal(await downloadHfModel("acme/tiny", { ...opts, offline: true }), snap);
    await assert.rejects(
      downloadHfModel("acme/tiny", { ...opts, revision: "v2" }),
      /hf:acme\/tiny@v2: the Hub is unreachable.*no refs\/v2/,
    );
    await Deno.remove(join(storage, "blobs", sha256(weights)));
    await assert.rejects(
      downloadHfModel("acme/tiny", { ...opts, offline: true }),
      /offline mode is on, and the cached snapshot lacks model\.safetensors/,
    );
  } finally {
    await hub.server.shutdown();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("sharded checkpoints, explicit files and tokens", async () => {
  const shard = (v: number) =>
    serializeSafetensors({ [`w${v}`]: { shape: [2], data: new Float32Array([v, -v]) } });
  const index = {
    metadata: {},
    weight_map: { w1: "model-1.safetensors", w2: "model-2.safetensors" },
  };
  const hub = startHub({
    "acme/sharded": {
      sha: SHA,
      token: "s3cret",
      lfs: ["model-1.safetensors", "model-2.safetensors"],
      files: {
        "config.json": text("{}"),
        "model.safetensors.index.json": text(JSON.stringify(index)),
        "model-1.safetensors": shard(1),
        "model-2.safetensors": shard(2),
      },
    },
    "acme/binonly": {
      sha: SHA,
      files: { "config.json": text("{}"), "pytorch_model.bin": text("x") },
    },
  });
  const cacheDir = await Deno.makeTempDir();
  const opts = { endpoint: hub.endpoint, cacheDir, token: "" };
  try {
    await assert.rejects(downloadHfModel("acme/sharded", opts), /HTTP 401.*HF_TOKEN/);
    const snap = await downloadHfModel("acme/sharded", { ...opts, token: "s3cret" });
    assert.ok(hub.auths.includes("Bearer s3cret"));
    const file = await readModelWeights(snap);
    assert.deepEqual(Array.from(file.tensors.get("w2")!.data), [2, -2]);
    await assert.rejects(
      downloadHfModel("acme/binonly", opts),
      /no model\.safetensors \(only safetensors weights are read\)/,
    );
    await assert.rejects(
      downloadHfModel("acme/binonly", { ...opts, files: ["config.json", "vocab.json"] }),
      /has no vocab\.json \(requested in files\)/,
    );
    const only = await downloadHfModel("acme/binonly", { ...opts, files: ["pytorch_model.bin"] });
    assert.deepEqual((await walk(only)).map((p) => p.slice(only.length + 1)), [
      "pytorch_model.bin",
    ]);
    await assert.rejects(downloadHfModel("acme/missing", opts), /HTTP 404/);
  } finally {
    await hub.server.shutdown();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a corrupted LFS download fails and leaves no file behind", async () => {
  const hub = startHub({
    "acme/bad": {
      sha: SHA,
      lfs: ["model.safetensors"],
      corrupt: ["model.safetensors"],
      files: { "config.json": text("{}"), "model.safetensors": weights },
    },
  });
  const cacheDir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      downloadHfModel("acme/bad", { endpoint: hub.endpoint, cacheDir, token: "" }),
      /Cannot download model\.safetensors of hf:acme\/bad: content sha256 .* differs/,
    );
    const left = (await walk(cacheDir)).map((p) => p.slice(cacheDir.length));
    assert.ok(left.every((p) => !p.endsWith(".incomplete")), left.join(", "));
    assert.ok(!left.some((p) => p.endsWith("model.safetensors")), left.join(", "));
    assert.ok(left.some((p) => p.endsWith("config.json")));
  } finally {
    await hub.server.shutdown();
    await Deno.remove(cacheDir, { recursive: true });
  }
});
