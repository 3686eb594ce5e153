/**
 * Reading environment variables where the program may lack `--allow-env`.
 *
 * @module
 */

/**
 * The value of environment variable `name`, or undefined when it is unset, empty, or the
 * program has no permission to read it (other errors, such as an invalid name, are thrown).
 *
 * @example
 * ```ts
 * import { envVar } from "./env.ts";
 * const size = envVar("SAFETY_COMPASS_SIZE") ?? "default";
 * ```
 */
export function envVar(name: string): string | undefined {
  // Asked first, so that a program without the permission gets undefined, not a prompt.
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  try {
    return Deno.env.get(name) || undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    throw err;
  }
}
