/**
 * lib/io/provenance.ts: every field recorded, the model fingerprint is sha256 over the files
 * (checked against an independent hash) and changes when one weight byte changes, the git
 * commit is read from the .git files, and errors name the folder.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  fingerprintModel,
  gitProvenance,
  provenance,
  provenanceRows,
  shellQuote,
} from "../lib/io/provenance.ts";

function gitInstalled(): boolean {
  try {
    return new Deno.Command("git", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

async function fakeModel(dir: string, weights: Uint8Array): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), '{"n_layer":2}');
  await Deno.writeFile(join(dir, "model.safetensors"), weights);
  await Deno.writeTextFile(join(dir, "README.md"), "not part of the fingerprint");
}

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

Deno.test("provenance records date, command, seed, git, models, versions, platform", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const weights = new Uint8Array(3000).map((_, i) => (i * 7) & 255);
    await fakeModel(join(dir, "m"), weights);
    const p = await provenance({
      model: { name: "tiny", dir: join(dir, "m") },
      seed: [0, 1],
      command: "deno task demo --quick",
      versions: { "tfjs-core": "4.22.0" },
      backend: "wasm",
      now: () => new Date("2026-01-02T03:04:05Z"),
    });
    assert.equal(p.date, "2026-01-02T03:04:05.000Z");
    assert.equal(p.command, "deno task demo --quick");
    assert.deepEqual(p.seed, [0, 1]);
    assert.equal(p.versions.deno, Deno.version.deno);
    assert.equal(p.versions["tfjs-core"], "4.22.0");
    assert.equal(p.backend, "wasm");
    assert.equal(p.platform, `${Deno.build.os} ${Deno.build.arch}`);
    assert.equal(p.models.length, 1);
    const m = p.models[0];
    assert.deepEqual(m.files.map((f) => f.file), ["config.json", "model.safetensors"]);
    assert.equal(m.files[1].sha256, sha(weights), "sha256 of the weights file");
    assert.equal(m.files[1].bytes, 3000);
    const lines = `config.json\t${sha('{"n_layer":2}')}\nmodel.safetensors\t${sha(weights)}\n`;
    assert.equal(m.fingerprint, sha(lines), "fingerprint = sha256 of the file\\thash lines");
    // This test runs in a git checkout (the repository), so the commit is known.
    if (p.git) {
      assert.match(p.git.commit, /^[0-9a-f]{40}$/);
      if (gitInstalled()) {
        assert.equal(typeof p.git.dirty, "boolean", "-A grants git, so dirty is known");
      } else assert.match(p.git.dirtyUnknownBecause ?? "", /cannot run git/);
    }
    const rows = provenanceRows(p);
    const fields = rows.map((r) => r.field);
    for (const f of ["date", "command", "seed", "git commit", "model tiny", "versions"]) {
      assert.ok(fields.includes(f), `${f} in ${fields.join(", ")}`);
    }
    assert.match(rows.find((r) => r.field === "model tiny")!.value, /^sha256 [0-9a-f]{16}/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the model fingerprint changes when one weight byte changes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const weights = new Uint8Array(2 << 20).map((_, i) => (i * 31) & 255); // > one read buffer
    await fakeModel(dir, weights);
    const a = await fingerprintModel({ name: "x", dir });
    assert.equal(a.files[1].sha256, sha(weights), "streamed hash over several 1 MiB reads");
    weights[1_500_000] ^= 1;
    await Deno.writeFile(join(dir, "model.safetensors"), weights);
    const b = await fingerprintModel({ name: "x", dir });
    assert.notEqual(b.fingerprint, a.fingerprint);
    assert.equal(b.files[0].sha256, a.files[0].sha256, "config unchanged");
    weights[1_500_000] ^= 1;
    await Deno.writeFile(join(dir, "model.safetensors"), weights);
    assert.equal((await fingerprintModel({ name: "x", dir })).fingerprint, a.fingerprint);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fingerprintModel names the folder that is missing or holds no model", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      fingerprintModel({ name: "ghost", dir: join(dir, "nope") }),
      /cannot read the folder of model "ghost" \(.*nope\)/,
    );
    await assert.rejects(
      fingerprintModel({ name: "empty", dir }),
      /holds no config\.json and no \.safetensors file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gitProvenance reads HEAD, loose and packed refs, and the dirty flag", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const git = (...args: string[]) =>
      new Deno.Command("git", { args, cwd: dir, stdout: "piped", stderr: "piped" }).outputSync();
    if (!gitInstalled()) {
      console.log("skipped: git is not installed");
      return;
    }
    git("init", "-q", "-b", "main");
    await Deno.writeTextFile(join(dir, "a.txt"), "a");
    git("add", "a.txt");
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one");
    const head = new TextDecoder().decode(git("rev-parse", "HEAD").stdout).trim();
    const g = await gitProvenance(dir);
    assert.deepEqual(g, { commit: head, branch: "main", dirty: false });
    await Deno.writeTextFile(join(dir, "a.txt"), "changed");
    assert.equal((await gitProvenance(dir))?.dirty, true);
    git("pack-refs", "--all");
    assert.equal((await gitProvenance(dir))?.commit, head, "packed refs");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shellQuote leaves plain words and quotes the rest", () => {
  assert.equal(shellQuote("--out"), "--out");
  assert.equal(shellQuote("/tmp/a b"), "'/tmp/a b'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
});
