/**
 * Asking, without prompting, whether the program holds a Deno permission.
 *
 * @module
 */

/**
 * Whether `desc` is granted now (a query, never a prompt: an optional feature without its
 * permission falls back instead of stopping the program to ask).
 *
 * @example
 * ```ts
 * import { granted } from "./permissions.ts";
 * if (granted({ name: "ffi", path: "/usr/lib" })) console.log("native libraries allowed");
 * ```
 */
export function granted(desc: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(desc).state === "granted";
}
