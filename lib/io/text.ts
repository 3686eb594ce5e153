/**
 * Strict text input: UTF-8 decoding that rejects malformed bytes (RFC 3629) instead of
 * turning them into U+FFFD, with the line and byte offset of the first bad sequence, and a
 * nesting-depth scan of JSON text run before `JSON.parse`, so a value nested ten thousand
 * levels deep is refused with its line instead of overflowing the stack of whatever walks it
 * later.
 *
 * @module
 */

const STRICT = new TextDecoder("utf-8", { fatal: true });

/**
 * Byte offset of the first malformed UTF-8 sequence in `bytes` (overlong forms, surrogates,
 * code points past U+10FFFF and truncated sequences included), or -1 when it is all valid.
 *
 * @example
 * ```ts
 * invalidUtf8Offset(new Uint8Array([0x61, 0xff, 0x62])); // 1
 * ```
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let len: number, min: number, max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2, min = 0x80;
    else if (b === 0xe0) len = 3, min = 0xa0;
    else if (b >= 0xe1 && b <= 0xef) len = 3, min = 0x80, max = b === 0xed ? 0x9f : 0xbf;
    else if (b === 0xf0) len = 4, min = 0x90;
    else if (b >= 0xf1 && b <= 0xf3) len = 4, min = 0x80;
    else if (b === 0xf4) len = 4, min = 0x80, max = 0x8f;
    else return i;
    if (i + len > n) return i;
    if (bytes[i + 1] < min || bytes[i + 1] > max) return i;
    for (let k = 2; k < len; k++) if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return i;
    i += len;
  }
  return -1;
}

/**
 * Decodes UTF-8 strictly; malformed bytes throw `source:line: invalid UTF-8 ...` naming the
 * byte and its offset. A leading byte-order mark is dropped (as TextDecoder does).
 *
 * @example
 * ```ts
 * decodeUtf8(new TextEncoder().encode("a,b\n"), "x.csv"); // "a,b\n"
 * ```
 */
export function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return STRICT.decode(bytes);
  } catch {
    const at = invalidUtf8Offset(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
    const hex = at >= 0 ? bytes[at].toString(16).padStart(2, "0") : "??";
    throw new Error(
      `${source}:${line}: invalid UTF-8 (byte 0x${hex} at byte offset ${at}); the file must be ` +
        "UTF-8 text: re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
    );
  }
}

/**
 * Reads a file as strict UTF-8 (see {@linkcode decodeUtf8}); `what` names the kind of file in
 * the error for an unreadable path.
 *
 * @example
 * ```ts ignore
 * const text = await readUtf8("prompts.csv", "CSV file");
 * ```
 */
export async function readUtf8(path: string, what: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw new Error(`Cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  return decodeUtf8(bytes, path);
}

/** The deepest nesting of JSON arrays and objects accepted in a data file. */
export const MAX_JSON_DEPTH = 64;

/**
 * The 1-based column where JSON `text` first nests deeper than `max` arrays/objects, or 0
 * (strings, escapes included, are skipped; the text need not be valid JSON).
 *
 * @example
 * ```ts
 * jsonDepthExceeded("[[[1]]]", 2); // 3
 * jsonDepthExceeded('{"a": "[[["}', 2); // 0
 * ```
 */
export function jsonDepthExceeded(text: string, max: number = MAX_JSON_DEPTH): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i + 1;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return 0;
}
