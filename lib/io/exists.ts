/**
 * Whether a path exists, without racing a separate permission or type check: `NotFound` is
 * false, every other error (permission denied, I/O) is thrown.
 *
 * @module
 */

/**
 * True when `path` exists (file, folder or link target); false on `NotFound`; rethrows any
 * other error so that a permission problem is never mistaken for a missing file.
 *
 * @example
 * ```ts
 * if (!(await exists("config.json"))) console.log("no config.json here");
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
