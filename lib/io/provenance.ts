/**
 * Provenance of a run: what a reader needs to reproduce a number or to tell two runs apart.
 * The git commit (and whether the checkout had uncommitted changes), each model's name and a
 * sha256 fingerprint of its weights and config files, the command line, the seeds, the
 * runtime and library versions, and the date.
 *
 * This file is in lib/io (the bottom of the stack), so it imports nothing from other lib
 * folders: callers pass what only they know (the model folder, library versions, backend).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";

/** A model to fingerprint: its name and the folder its files are read from. */
export interface ProvenanceModelInput {
  /** The name the run used (`toy-base`, `Qwen/Qwen3-0.6B`, a folder path...). */
  name: string;
  /** Folder holding `config.json` and the `*.safetensors` weights. */
  dir: string;
}

/** One fingerprinted file. */
export interface FileFingerprint {
  /** File name inside the model folder. */
  file: string;
  /** Size in bytes. */
  bytes: number;
  /** sha256 of the file's bytes, hex. */
  sha256: string;
}

/** A model's provenance: the files hashed and one fingerprint over all of them. */
export interface ModelProvenance {
  /** The name the run used. */
  name: string;
  /** The folder read, absolute. */
  dir: string;
  /** sha256 over the sorted `file\tsha256` lines of {@link ModelProvenance.files}, hex. */
  fingerprint: string;
  /** The files fingerprinted: config and generation config, weights, tokenizer files. */
  files: FileFingerprint[];
}

/** Where the code came from: git commit and dirty flag, when the run is in a git checkout. */
export interface GitProvenance {
  /** Full commit hash of HEAD. */
  commit: string;
  /** The branch HEAD points at, or null for a detached HEAD. */
  branch: string | null;
  /**
   * Whether tracked or untracked files differ from the commit (`git status --porcelain`);
   * null when it could not be checked (no permission to run `git`, or git missing).
   */
  dirty: boolean | null;
  /** Why `dirty` is null, when it is. */
  dirtyUnknownBecause?: string;
}

/** Everything {@link provenance} records. */
export interface Provenance {
  /** When the record was made (ISO 8601, UTC). */
  date: string;
  /** The command line that ran (as passed, else `deno run <main module> <args>`). */
  command: string;
  /** The seed or seeds of the run, as passed. */
  seed: unknown;
  /** Git commit and dirty flag, or null outside a git checkout. */
  git: GitProvenance | null;
  /** The fingerprinted models. */
  models: ModelProvenance[];
  /** Runtime and library versions: deno, v8, typescript, then what the caller passed. */
  versions: Record<string, string>;
  /** The compute backend, as the caller described it. */
  backend?: string;
  /** Operating system and architecture. */
  platform: string;
}

/** Options of {@link provenance}. */
export interface ProvenanceOptions {
  /** Model(s) to fingerprint. */
  model?: ProvenanceModelInput | ProvenanceModelInput[];
  /** The seed(s) of the run (a number, a list, or named seeds). */
  seed?: number | number[] | Record<string, number>;
  /** The command line; default `deno run <main module> <Deno.args>`. */
  command?: string;
  /** Library versions to record beside deno's (e.g. `{ "tfjs-core": tf.version_core }`). */
  versions?: Record<string, string>;
  /** The compute backend in words. */
  backend?: string;
  /** Folder whose git checkout is recorded. @default Deno.cwd() */
  cwd?: string;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
}

const MODEL_FILE =
  /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|tokenizer\.model|vocab\.json|merges\.txt|.*\.safetensors|.*\.safetensors\.index\.json)$/;

/** sha256 of a file, streamed (weights can be many GB). */
async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  let bytes = 0;
  try {
    const buf = new Uint8Array(1 << 20);
    while (true) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    file.close();
  }
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * Fingerprints a model folder: sha256 of every config, tokenizer and safetensors file in it,
 * and one sha256 over the sorted `file\thash` lines. Changing any byte of a weight file
 * changes the fingerprint.
 *
 * @example
 * ```ts
 * const m = await fingerprintModel({ name: "toy-base", dir: "datasets/checkpoints/toy-base" });
 * m.fingerprint; // 64 hex digits
 * m.files.map((f) => f.file); // ["config.json", "model.safetensors", "tokenizer.json", ...]
 * ```
 * @throws Error naming the folder when it cannot be read or holds no config.json and no
 * `.safetensors` file.
 */
export async function fingerprintModel(model: ProvenanceModelInput): Promise<ModelProvenance> {
  const dir = resolve(model.dir);
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if ((e.isFile || e.isSymlink) && MODEL_FILE.test(e.name)) names.push(e.name);
    }
  } catch (err) {
    throw new Error(
      `provenance: cannot read the folder of model ${JSON.stringify(model.name)} (${dir}): ` +
        `${(err as Error).message}; pass the folder holding its config.json and weights.`,
      { cause: err },
    );
  }
  if (!names.includes("config.json") && !names.some((n) => n.endsWith(".safetensors"))) {
    throw new Error(
      `provenance: ${dir} (model ${JSON.stringify(model.name)}) holds no config.json and no ` +
        `.safetensors file; pass the folder holding the model's config and weights.`,
    );
  }
  names.sort();
  const files: FileFingerprint[] = [];
  for (const file of names) files.push({ file, ...(await sha256File(join(dir, file))) });
  const all = createHash("sha256");
  for (const f of files) all.update(`${f.file}\t${f.sha256}\n`);
  return { name: model.name, dir, fingerprint: all.digest("hex"), files };
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

/** The .git folder (or a worktree's gitdir) above `start`, and the common dir holding refs. */
async function findGitDir(start: string): Promise<{ gitDir: string; commonDir: string } | null> {
  let dir = resolve(start);
  while (true) {
    const dotGit = join(dir, ".git");
    let gitDir: string | null = null;
    try {
      const st = await Deno.stat(dotGit);
      if (st.isDirectory) gitDir = dotGit;
      else {
        const m = /^gitdir:\s*(.+)\s*$/m.exec((await readText(dotGit)) ?? "");
        if (m) gitDir = isAbsolute(m[1]) ? m[1] : resolve(dir, m[1]);
      }
    } catch {
      // no .git here
    }
    if (gitDir) {
      const common = (await readText(join(gitDir, "commondir")))?.trim();
      return { gitDir, commonDir: common ? resolve(gitDir, common) : gitDir };
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

async function resolveRef(gitDir: string, commonDir: string, ref: string): Promise<string | null> {
  for (const d of [gitDir, commonDir]) {
    const loose = (await readText(join(d, ref)))?.trim();
    if (loose && /^[0-9a-f]{40,64}$/.test(loose)) return loose;
  }
  const packed = (await readText(join(commonDir, "packed-refs"))) ?? "";
  for (const line of packed.split("\n")) {
    const [hash, name] = line.trim().split(" ");
    if (name === ref && /^[0-9a-f]{40,64}$/.test(hash)) return hash;
  }
  return null;
}

async function gitDirty(cwd: string): Promise<{ dirty: boolean | null; why?: string }> {
  const perm = await Deno.permissions.query({ name: "run", command: "git" });
  if (perm.state !== "granted") {
    return { dirty: null, why: "no permission to run git (grant --allow-run=git to record it)" };
  }
  try {
    const out = await new Deno.Command("git", {
      args: ["status", "--porcelain"],
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      return { dirty: null, why: `git status failed: ${new TextDecoder().decode(out.stderr)}` };
    }
    return { dirty: new TextDecoder().decode(out.stdout).trim() !== "" };
  } catch (err) {
    return { dirty: null, why: `cannot run git: ${(err as Error).message}` };
  }
}

/**
 * The git commit of the checkout holding `cwd` (read from the .git files, so it needs only
 * read permission), its branch, and whether it has uncommitted changes (needs permission to
 * run `git`; null otherwise, with the reason). Null outside a git checkout.
 *
 * @example
 * ```ts
 * const g = await gitProvenance();
 * if (g) console.log(g.commit.slice(0, 7), g.dirty ? "(dirty)" : "");
 * ```
 */
export async function gitProvenance(cwd: string = Deno.cwd()): Promise<GitProvenance | null> {
  const found = await findGitDir(cwd);
  if (!found) return null;
  const head = (await readText(join(found.gitDir, "HEAD")))?.trim();
  if (!head) return null;
  let commit: string | null;
  let branch: string | null = null;
  const m = /^ref:\s*(\S+)$/.exec(head);
  if (m) {
    branch = m[1].replace(/^refs\/heads\//, "");
    commit = await resolveRef(found.gitDir, found.commonDir, m[1]);
  } else {
    commit = /^[0-9a-f]{40,64}$/.test(head) ? head : null;
  }
  if (!commit) return null;
  const d = await gitDirty(cwd);
  return {
    commit,
    branch,
    dirty: d.dirty,
    ...(d.why ? { dirtyUnknownBecause: d.why.trim() } : {}),
  };
}

function defaultCommand(): string {
  let main = Deno.mainModule;
  try {
    const url = new URL(main);
    if (url.protocol === "file:") {
      const p = decodeURIComponent(url.pathname);
      main = p.startsWith(Deno.cwd() + "/") ? p.slice(Deno.cwd().length + 1) : basename(p);
    }
  } catch {
    // keep as is
  }
  return ["deno", "run", main, ...Deno.args].map(shellQuote).join(" ");
}

/** Quotes one argument for a POSIX shell when it needs it. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/**
 * Records the provenance of a run: date, command line, seeds, git commit and dirty flag,
 * each model's sha256 fingerprint, deno/v8/typescript versions plus the libraries the caller
 * names, backend and platform. Write it into the run's JSON beside its results.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { writeJsonAtomic } from "./atomic.ts";
 * const p = await provenance({
 *   model: { name: "toy-base", dir: "datasets/checkpoints/toy-base" },
 *   seed: 0,
 *   command: "deno task demo --quick",
 *   versions: { "tfjs-core": tf.version_core },
 * });
 * await writeJsonAtomic("runs/x/metrics.json", { provenance: p, auroc: 0.93 });
 * ```
 * @throws Error naming the model and folder when a model folder cannot be fingerprinted.
 */
export async function provenance(opts: ProvenanceOptions = {}): Promise<Provenance> {
  const models = opts.model === undefined ? [] : Array.isArray(opts.model) ? opts.model : [
    opts.model,
  ];
  const fingerprints: ModelProvenance[] = [];
  for (const m of models) fingerprints.push(await fingerprintModel(m));
  return {
    date: (opts.now ?? (() => new Date()))().toISOString(),
    command: opts.command ?? defaultCommand(),
    seed: opts.seed ?? null,
    git: await gitProvenance(opts.cwd ?? Deno.cwd()),
    models: fingerprints,
    versions: {
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      typescript: Deno.version.typescript,
      ...(opts.versions ?? {}),
    },
    ...(opts.backend !== undefined ? { backend: opts.backend } : {}),
    platform: `${Deno.build.os} ${Deno.build.arch}`,
  };
}

/**
 * Provenance as label/value rows for a report table (the commit shortened with its dirty
 * flag, one row per model with its fingerprint's first 16 hex digits).
 *
 * @example
 * ```ts
 * const rows = provenanceRows(await provenance({ seed: 0 }));
 * rows[0]; // { field: "date", value: "2026-..." }
 * ```
 */
export function provenanceRows(p: Provenance): { field: string; value: string }[] {
  const rows: { field: string; value: string }[] = [
    { field: "date", value: p.date },
    { field: "command", value: p.command },
    { field: "seed", value: JSON.stringify(p.seed) },
  ];
  if (p.git) {
    const dirty = p.git.dirty === null
      ? ` (uncommitted changes unknown: ${p.git.dirtyUnknownBecause ?? "not checked"})`
      : p.git.dirty
      ? " (with uncommitted changes)"
      : " (clean)";
    rows.push({
      field: "git commit",
      value: `${p.git.commit}${p.git.branch ? ` on ${p.git.branch}` : ""}${dirty}`,
    });
  } else rows.push({ field: "git commit", value: "not a git checkout" });
  for (const m of p.models) {
    rows.push({
      field: `model ${m.name}`,
      value: `sha256 ${m.fingerprint.slice(0, 16)}… over ${
        m.files.map((f) => f.file).join(", ")
      } (${m.dir})`,
    });
  }
  rows.push({
    field: "versions",
    value: Object.entries(p.versions).map(([k, v]) => `${k} ${v}`).join(", "),
  });
  if (p.backend !== undefined) rows.push({ field: "backend", value: p.backend });
  rows.push({ field: "platform", value: p.platform });
  return rows;
}
