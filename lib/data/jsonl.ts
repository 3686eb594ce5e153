/**
 * JSON Lines (https://jsonlines.org): one JSON value per line, UTF-8, LF or CRLF line
 * endings. Blank (whitespace-only) lines are skipped; a leading byte-order mark is dropped.
 * A line that is not valid JSON is reported as `file:line: ...` with the parser's reason; so
 * are a value nested deeper than {@linkcode MAX_JSON_DEPTH} levels and (when read from a file)
 * bytes that are not UTF-8. Messages echo at most 60 characters of the line.
 *
 * @module
 */

import { clipName } from "../io/bounded.ts";
import { jsonDepthExceeded, MAX_JSON_DEPTH, readUtf8 } from "../io/text.ts";

/** One parsed JSONL value with the 1-based line it was read from. */
export interface JsonlEntry<T = unknown> {
  /** 1-based line number in the source text. */
  line: number;
  /** The parsed value. */
  value: T;
}

/**
 * Parses JSONL text into values with their line numbers. `source` (a file name or label)
 * prefixes every error message.
 *
 * @throws Error `source:line: invalid JSON (...)` on the first line that does not parse.
 */
export function parseJsonlEntries(text: string, source: string): JsonlEntry[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lines = body.split("\n");
  const out: JsonlEntry[] = [];
  lines.forEach((raw, k) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "") return;
    const deep = jsonDepthExceeded(line);
    if (deep) {
      throw new Error(
        `${source}:${k + 1}: JSON nested deeper than ${MAX_JSON_DEPTH} levels (column ${deep}); ` +
          "flatten the value",
      );
    }
    try {
      out.push({ line: k + 1, value: JSON.parse(line) });
    } catch (err) {
      const shown = line.length > 60 ? line.slice(0, 57) + "..." : line;
      throw new Error(
        `${source}:${k + 1}: invalid JSON (${clipName((err as Error).message, 120)}) in ${
          JSON.stringify(shown)
        }; each line must hold exactly one JSON value (escape line breaks inside strings as \\n).`,
        { cause: err },
      );
    }
  });
  return out;
}

/**
 * Parses JSONL text into its values (blank lines skipped).
 *
 * @example
 * ```ts
 * parseJsonl('{"a":1}\n\n{"a":2}\n', "inline.jsonl"); // [{ a: 1 }, { a: 2 }]
 * ```
 */
export function parseJsonl(text: string, source: string): unknown[] {
  return parseJsonlEntries(text, source).map((e) => e.value);
}

/** Reads a JSONL file into values with their line numbers (see {@linkcode parseJsonlEntries}). */
export async function readJsonlEntries(path: string): Promise<JsonlEntry[]> {
  return parseJsonlEntries(await readUtf8(path, "JSONL file"), path);
}

/** Reads a JSONL file into its values; errors name the path and line. */
export async function readJsonl(path: string): Promise<unknown[]> {
  return (await readJsonlEntries(path)).map((e) => e.value);
}
