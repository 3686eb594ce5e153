/**
 * Atomic file writes: write to a temporary sibling, then rename over the target, so a
 * crash mid-write never leaves a truncated checkpoint, report or cache entry behind.
 *
 * @module
 */

import { dirname } from "node:path";

function tempName(path: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return `${path}.${Deno.pid}.${rand}.tmp`;
}

/** Writes bytes to `path` atomically (temporary file in the same folder, then rename). */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = tempName(path);
  try {
    await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => undefined);
    throw new Error(`Cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes text to `path` atomically. */
export function writeTextFileAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}

/** Writes a JSON value (pretty-printed) to `path` atomically. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeTextFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/**
 * Replaces the folder `dir` with the contents produced by `fill(tmpDir)`: the files are
 * written into a temporary sibling folder, which is then renamed into place. A crash while
 * writing leaves `dir` as it was. Replacing an existing `dir` is not atomic: it is moved
 * aside first and removed only after the new one is in place, so a crash between the two
 * renames leaves both under temporary names (`*.tmp`, `*.tmp.old`) and no `dir`. Training
 * checkpoints use `writeCheckpointDir` (checkpoint_dir.ts) instead, which never has such an
 * instant; this suits outputs written once (a saved model, a compass, a report).
 */
export async function writeDirAtomic(
  dir: string,
  fill: (tmpDir: string) => Promise<void>,
): Promise<void> {
  const tmp = tempName(dir);
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => undefined);
    throw err;
  }
  let old: string | undefined;
  try {
    await Deno.stat(dir);
    old = tempName(dir) + ".old";
    await Deno.rename(dir, old);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.rename(tmp, dir);
  if (old) await Deno.remove(old, { recursive: true });
}
