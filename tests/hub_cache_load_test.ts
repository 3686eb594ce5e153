/**
 * `loadModel("owner/name")` without the `hf:` prefix: found in a fake Hugging Face cache
 * (HF_HUB_CACHE, `models--owner--name/snapshots/<refs/main>/`) holding a tiny model saved by
 * the toolkit, never downloaded unless asked, the same resolution in `loadModelOrStandIn`,
 * and the three errors (missing folder or id, no config.json, no weights), each naming the fix.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel, resolveModelDir } from "../lib/model/load.ts";
import { loadModelOrStandIn } from "../lib/model/stand_in.ts";
import { cachedSnapshot } from "../lib/model/hub.ts";
import { TEST_BACKEND, tinyModel, useTestBackend } from "./_helpers.ts";

await useTestBackend();
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

/** A temp hub cache with `acme/tiny` (a saved tiny model) at refs/main; HF_HUB_CACHE set to it. */
async function withCache(fn: (cache: string, root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "sc-hub-cache-" });
  const cache = join(root, "hub");
  const storage = join(cache, "models--acme--tiny");
  const before = Deno.env.get("HF_HUB_CACHE");
  const m = await tinyModel("llama", 3);
  try {
    await m.save(join(storage, "snapshots", COMMIT));
    await Deno.mkdir(join(storage, "refs"), { recursive: true });
    await Deno.writeTextFile(join(storage, "refs", "main"), COMMIT);
    Deno.env.set("HF_HUB_CACHE", cache);
    await fn(cache, root);
  } finally {
    m.dispose();
    if (before === undefined) Deno.env.delete("HF_HUB_CACHE");
    else Deno.env.set("HF_HUB_CACHE", before);
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("loadModel('owner/name') loads the HF_HUB_CACHE snapshot of refs/main, no hf: prefix", async () => {
  await withCache(async (cache) => {
    const snap = join(cache, "models--acme--tiny", "snapshots", COMMIT);
    assert.equal(await cachedSnapshot("acme/tiny"), snap);
    assert.equal(await resolveModelDir("acme/tiny"), snap);
    const ref = await tinyModel("llama", 3);
    const m = await loadModel("acme/tiny", { tokenizer: ref.tokenizer, backend: TEST_BACKEND });
    try {
      assert.equal(m.config.nLayer, ref.config.nLayer);
      const [a, b] = [ref, m].map((x) => x.forward([[1, 2, 3]]).logits!);
      assert.deepEqual(await a.data(), await b.data(), "the cached weights, not new ones");
      a.dispose();
      b.dispose();
    } finally {
      m.dispose();
      ref.dispose();
    }
  });
});

Deno.test("loadModelOrStandIn resolves the same cache entry (one resolution, not a copy)", async () => {
  await withCache(async () => {
    const ref = await tinyModel("llama", 3);
    const r = await loadModelOrStandIn("acme/tiny", {
      tokenizer: ref.tokenizer,
      backend: TEST_BACKEND,
    });
    ref.dispose();
    assert.equal(r.standIn, false);
    assert.match(r.reason, /^Hugging Face cache: .*models--acme--tiny.*snapshots/);
    r.model.dispose();
  });
});

Deno.test("an id absent from the cache: one error naming hf:, download: true and HF_HUB_CACHE; no download unless asked", async () => {
  await withCache(async () => {
    await assert.rejects(
      () => loadModel("acme/absent"),
      /Cannot load model 'acme\/absent': no such folder, and not in the Hugging Face cache .*loadModel\("hf:acme\/absent"\) or \{ download: true \}.*HF_HUB_CACHE/,
    );
    // download: true goes through downloadHfModel; offline it keeps to the cache.
    const offline = Deno.env.get("HF_HUB_OFFLINE");
    Deno.env.set("HF_HUB_OFFLINE", "1");
    try {
      await assert.rejects(
        () => loadModel("acme/absent", { download: true }),
        /offline mode is on/,
      );
    } finally {
      if (offline === undefined) Deno.env.delete("HF_HUB_OFFLINE");
      else Deno.env.set("HF_HUB_OFFLINE", offline);
    }
  });
});

Deno.test("a folder without config.json, and one without weights: distinct errors naming the fix", async () => {
  await withCache(async (cache, root) => {
    const empty = join(root, "empty");
    await Deno.mkdir(empty);
    await assert.rejects(() => loadModel(empty), /has no config\.json; pass the folder that holds/);
    const noWeights = join(root, "no-weights");
    await Deno.mkdir(noWeights);
    const snap = join(cache, "models--acme--tiny", "snapshots", COMMIT);
    await Deno.copyFile(join(snap, "config.json"), join(noWeights, "config.json"));
    await assert.rejects(
      () => loadModel(noWeights),
      /has config\.json but no weights \(no \*\.safetensors, no model\.safetensors\.index\.json\); save them/,
    );
    // the same checks on a cached snapshot that lost its weights
    for await (const e of Deno.readDir(snap)) {
      if (e.name.endsWith(".safetensors")) await Deno.remove(join(snap, e.name));
    }
    await assert.rejects(
      () => loadModel("acme/tiny"),
      /'acme\/tiny': the folder .* has config\.json but no weights.*hf:acme\/tiny/,
    );
  });
});
