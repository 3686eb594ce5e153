/**
 * Checkpoint folders that never go backwards: at every instant, a crash (SIGKILL, power loss)
 * leaves either the previous or the new checkpoint readable under the checkpoint's own name.
 *
 * The design: the checkpoint folder `dir` is a symbolic link to a *generation* folder beside
 * it, `<name>.<step, 9 digits>.<tag>` (`ckpt -> ckpt.000000012.k3f9q2`). A save
 *
 * 1. removes the orphans an earlier crash left beside `dir` (unfinished `*.tmp` folders,
 *    generations no link points to, the `*.tmp.old` folders of the former `writeDirAtomic`
 *    swap);
 * 2. writes the new generation into `<generation>.tmp/`, then fsyncs every file and folder
 *    in it;
 * 3. renames it to `<generation>` and fsyncs the parent folder;
 * 4. makes a new link `<name>.<tag>.link.tmp -> <generation>` and renames it over `dir`:
 *    rename(2) replaces a link atomically, so readers see the old or the new generation,
 *    never neither; then fsyncs the parent again;
 * 5. removes the previous generation.
 *
 * A crash before step 4 leaves the old link (old checkpoint) plus orphans the next save
 * removes; a crash after it leaves the new checkpoint plus the old generation as an orphan.
 * Paths through `dir` (`dir/model/model.safetensors`) keep working for every reader. A `dir`
 * that is still a plain folder (an empty one, or a checkpoint of the former layout) is
 * turned into a link on its first save here: an empty folder is removed first; a former
 * checkpoint is renamed to a generation first, and in the instant between the two renames a
 * reader finds it through {@link checkpointFolder}'s fallback (the newest complete
 * generation). A plain folder holding anything but a checkpoint is refused, never deleted.
 * One process saves into a `dir` at a time; POSIX file systems (Linux, macOS).
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** Generations and temporaries beside `dir` whose names this module made. */
function ownedPattern(name: string): RegExp {
  const n = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  // <name>.<9 digits>.<tag>[.tmp] | <name>.<tag>.link.tmp | <name>.<pid>.<rand>.tmp[.old]
  return new RegExp(
    `^${n}\\.(?:(\\d{9})\\.[a-z0-9]+(\\.tmp)?|[a-z0-9]+\\.link\\.tmp|\\d+\\.[a-z0-9]+\\.tmp(?:\\.old)?)$`,
  );
}

function tag(): string {
  return Math.random().toString(36).slice(2, 10).padEnd(8, "0");
}

/** fsyncs a file or folder (folders: so the names in them are durable). */
async function fsync(path: string): Promise<void> {
  const f = await Deno.open(path, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

/** fsyncs every file and folder under `path`, then `path` itself. */
async function fsyncTree(path: string): Promise<void> {
  for await (const e of Deno.readDir(path)) {
    const p = join(path, e.name);
    if (e.isDirectory) await fsyncTree(p);
    else if (e.isFile) await fsync(p);
  }
  await fsync(path);
}

async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Complete generations beside `dir` (no `.tmp`), newest step first. */
async function generations(dir: string): Promise<string[]> {
  const parent = dirname(dir), re = ownedPattern(basename(dir));
  const found: { name: string; step: number; mtime: number }[] = [];
  try {
    for await (const e of Deno.readDir(parent)) {
      const m = re.exec(e.name);
      if (!m || m[1] === undefined || m[2] !== undefined || !e.isDirectory) continue;
      const mtime = (await Deno.stat(join(parent, e.name))).mtime?.getTime() ?? 0;
      found.push({ name: e.name, step: Number(m[1]), mtime });
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  found.sort((a, b) => b.step - a.step || b.mtime - a.mtime);
  return found.map((f) => join(parent, f.name));
}

/**
 * The folder that holds the checkpoint saved as `dir`, or undefined when there is none: the
 * generation `dir` links to; `dir` itself when it is a plain folder (the former layout, or
 * an empty folder: then undefined); when `dir` is missing, the newest complete generation
 * beside it (a crash while a former-layout folder was being converted).
 *
 * @example
 * ```ts
 * const folder = await checkpointFolder("runs/sft/ckpt");
 * if (folder) console.log(`resuming from ${folder}`);
 * ```
 */
export async function checkpointFolder(dir: string): Promise<string | undefined> {
  const info = await lstatOrUndefined(dir);
  if (!info) return (await generations(dir))[0];
  if (info.isSymlink) {
    const target = join(dirname(dir), await Deno.readLink(dir));
    if (!(await lstatOrUndefined(target))) {
      throw new Error(
        `Cannot read the checkpoint ${dir}: it links to ${target}, which is missing (removed ` +
          `by hand?); restore that folder or remove the link to start over`,
      );
    }
    return target;
  }
  if (!info.isDirectory) {
    throw new Error(`Cannot read the checkpoint ${dir}: it is a file, not a folder`);
  }
  for await (const _ of Deno.readDir(dir)) return dir;
  return undefined; // an empty folder: no checkpoint yet
}

/** Removes every name of `ownedPattern(dir)` beside `dir` but those in `live`. */
async function removeOwned(dir: string, live: Set<string>): Promise<string[]> {
  const parent = dirname(dir), re = ownedPattern(basename(dir));
  const removed: string[] = [];
  for await (const e of Deno.readDir(parent)) {
    if (!re.test(e.name) || live.has(e.name)) continue;
    await Deno.remove(join(parent, e.name), { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    removed.push(e.name);
  }
  return removed;
}

/**
 * Removes what earlier saves into `dir` left behind (unfinished temporaries, generations
 * no link points to, the former swap's `*.tmp.old`); keeps the checkpoint a reader of `dir`
 * would find (see {@link checkpointFolder}). Returns the names removed.
 *
 * @example
 * ```ts
 * const removed = await removeCheckpointOrphans("runs/sft/ckpt");
 * console.log(`removed ${removed.length} leftovers of crashed saves`);
 * ```
 */
export async function removeCheckpointOrphans(dir: string): Promise<string[]> {
  const live = new Set<string>();
  const info = await lstatOrUndefined(dir);
  if (info?.isSymlink) live.add(basename(await Deno.readLink(dir)));
  else if (!info) {
    const newest = (await generations(dir))[0]; // the fallback a reader would use
    if (newest) live.add(basename(newest));
  }
  return await removeOwned(dir, live);
}

/**
 * Saves a checkpoint of `step` as `dir`: `fill(folder)` writes its files into a new
 * generation folder, which replaces the previous checkpoint atomically (see the module
 * notes). Either the previous or the new checkpoint is readable under `dir` at every instant.
 *
 * @example
 * ```ts
 * await writeCheckpointDir("runs/sft/ckpt", 12, async (folder) => {
 *   await Deno.writeTextFile(`${folder}/trainer_state.json`, JSON.stringify({ step: 12 }));
 * });
 * ```
 */
export async function writeCheckpointDir(
  dir: string,
  step: number,
  fill: (folder: string) => Promise<void>,
): Promise<void> {
  if (!(Number.isInteger(step) && step >= 0)) {
    throw new Error(`Cannot save a checkpoint of step ${step}: give a whole number >= 0`);
  }
  const parent = dirname(dir), name = basename(dir);
  await Deno.mkdir(parent, { recursive: true });
  const before = await lstatOrUndefined(dir);
  let former: string | undefined; // a plain folder to turn into a generation
  if (before?.isDirectory) {
    const state = await lstatOrUndefined(join(dir, "trainer_state.json"));
    let empty = true;
    for await (const _ of Deno.readDir(dir)) empty = false;
    if (!empty && !state) {
      throw new Error(
        `Cannot save a checkpoint as ${dir}: it is a folder holding other files than a ` +
          `checkpoint; give a new or empty folder as checkpointDir`,
      );
    }
    former = empty ? undefined : dir;
    if (empty) await Deno.remove(dir);
  } else if (before && !before.isSymlink) {
    throw new Error(`Cannot save a checkpoint as ${dir}: it is a file; remove it or pick another`);
  }
  await removeCheckpointOrphans(dir);
  const gen = join(parent, `${name}.${String(step).padStart(9, "0")}.${tag()}`);
  const tmp = `${gen}.tmp`;
  await Deno.mkdir(tmp);
  try {
    await fill(tmp);
    await fsyncTree(tmp);
    await Deno.rename(tmp, gen);
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => undefined);
    throw err;
  }
  await fsync(parent);
  const previous = before?.isSymlink ? join(parent, await Deno.readLink(dir)) : undefined;
  if (former) {
    // One-time conversion of a former-layout folder: move it to a generation of its own;
    // until the link below exists, checkpointFolder falls back to the newest generation.
    await Deno.rename(former, join(parent, `${name}.000000000.${tag()}`));
  }
  const link = join(parent, `${name}.${tag()}.link.tmp`);
  await Deno.symlink(basename(gen), link);
  await Deno.rename(link, dir);
  await fsync(parent);
  if (previous) await Deno.remove(previous, { recursive: true }).catch(() => undefined);
  await removeCheckpointOrphans(dir);
}

/**
 * Removes the checkpoint saved as `dir`: the link, its generation and any orphans beside it
 * (for cleaning up after tests and throwaway runs).
 *
 * @example
 * ```ts
 * await removeCheckpoint("runs/scratch/ckpt");
 * ```
 */
export async function removeCheckpoint(dir: string): Promise<void> {
  const info = await lstatOrUndefined(dir);
  if (info) await Deno.remove(dir, { recursive: !info.isSymlink });
  await removeOwned(dir, new Set());
}
