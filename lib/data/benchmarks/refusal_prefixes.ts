/**
 * {@linkcode loadRefusalPrefixes}: lists of refusal prefixes (the string-match judges' lists).
 *
 * @module
 */

import { readJson } from "./common.ts";

/** One refusal-prefix list and how its source matched it. */
export interface RefusalPrefixList {
  /** The list's key in the file. */
  name: string;
  /** The strings. */
  prefixes: string[];
  /** "start": the stripped completion starts with one; "anywhere": substring match. */
  mode: "anywhere" | "start";
  /** Whether the source compared case-sensitively. */
  caseSensitive: boolean;
  /** Where the list comes from (repository, file). */
  source: string;
  /** The source's matching rule, verbatim. */
  match: string;
}

/**
 * Loads refusal_prefixes.json: `{<name>: {source, match, license, prefixes}}` (keys
 * `gcg_test_prefixes_long`, `gcg_test_prefixes_short`, `refusal_direction_jbb_substrings`,
 * `xstest_strmatch_refusal_prefixes`). `mode`/`caseSensitive` are read from `match`
 * ("startswith" -> start; "case-insensitive" or "lower()" -> case-insensitive), so
 * `prefixRefusalJudge(list.prefixes, list)` reproduces each source's rule.
 */
export async function loadRefusalPrefixes(
  path: string,
): Promise<Record<string, RefusalPrefixList>> {
  const data = await readJson(path);
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new Error(`${path}: expected an object {name: {prefixes: [...], match: "..."}}.`);
  }
  const out: Record<string, RefusalPrefixList> = {};
  for (const [name, v] of Object.entries(data as Record<string, unknown>)) {
    const e = v as { prefixes?: unknown; match?: unknown; source?: unknown };
    if (!Array.isArray(e?.prefixes) || !e.prefixes.every((p) => typeof p === "string")) {
      throw new Error(`${path}: field "${name}.prefixes" must be an array of strings.`);
    }
    const match = typeof e.match === "string" ? e.match : "";
    out[name] = {
      name,
      prefixes: e.prefixes as string[],
      mode: /startswith/i.test(match) ? "start" : "anywhere",
      caseSensitive: !/case-insensitive|lower\(\)/i.test(match),
      source: typeof e.source === "string" ? e.source : "",
      match,
    };
  }
  return out;
}
