/**
 * Bounded echoes of untrusted input in error messages: a value read from a file is shown as
 * JSON cut to a fixed number of characters, so a 200 KB header or field never ends up in a
 * message (or a log line) whole.
 *
 * @module
 */

/** The most characters of one echoed value in an error message. */
export const ECHO_CHARS = 120;

/**
 * `value` as JSON (strings quoted), cut to `max` characters with "..." and the full length.
 *
 * @example
 * ```ts
 * shown("abc"); // '"abc"'
 * shown("x".repeat(1000), 10); // '"xxxxxxxx... (1002 chars)'
 * ```
 */
export function shown(value: unknown, max: number = ECHO_CHARS): string {
  let text: string;
  try {
    text = typeof value === "bigint" ? `${value}n` : JSON.stringify(value) ?? String(value);
  } catch {
    // Cycles and too-deep values: name the type instead of the content.
    text = `<${Array.isArray(value) ? "array" : typeof value}>`;
  }
  return text.length <= max ? text : `${text.slice(0, max - 1)}... (${text.length} chars)`;
}

/**
 * A name read from a file (a tensor or column name) cut to `max` characters, unquoted.
 *
 * @example
 * ```ts
 * clipName("model.layers.0.mlp.up_proj.weight"); // unchanged
 * clipName("a".repeat(500), 8); // "aaaaaaa... (500 chars)"
 * ```
 */
export function clipName(name: string, max: number = ECHO_CHARS): string {
  return name.length <= max ? name : `${name.slice(0, max - 1)}... (${name.length} chars)`;
}
