/**
 * Loads a SafetyWorld JSONL file (written by `writeWorld`) as an arquero table of its rows
 * (PromptRow / TraceRow shapes from `lib/data/schema.ts`), optionally one split only.
 *
 * @module
 */

import * as aq from "arquero";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Split } from "../schema.ts";
import { shown } from "../../io/bounded.ts";
import { jsonDepthExceeded, MAX_JSON_DEPTH, readUtf8 } from "../../io/text.ts";

/** Fields of the SafetyWorld rows (PromptRow / TraceRow) that must be strings when present. */
const STRING_FIELDS = ["category", "source", "target", "answer", "trace", "traceLabel", "template"];

/** The SafetyWorld files. */
export type WorldFile = "prompts" | "sft" | "align" | "recovery" | "traces" | "traits";

const FILES: readonly WorldFile[] = ["prompts", "sft", "align", "recovery", "traces", "traits"];
const SPLITS: readonly Split[] = ["train", "validation", "test"];

/** Options of {@link loadSafetyWorld}. */
export interface LoadWorldOptions {
  /** Folder holding the JSONL files. @default the repository's `datasets/safetyworld` */
  dir?: string;
  /** Keep only rows of this split. @default all splits */
  split?: Split;
}

/** The repository's committed SafetyWorld folder (resolved from this module's location). */
export function defaultWorldDir(): string {
  return fileURLToPath(new URL("../../../datasets/safetyworld/", import.meta.url));
}

/** Parses JSONL text; errors name `file:line` and the field at fault. */
export function parseWorldJsonl(text: string, file: string): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    let value: unknown;
    if (jsonDepthExceeded(line)) {
      throw new Error(`${file}:${i + 1}: JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    }
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(
        `${file}:${i + 1}: not valid JSON (${
          (err as Error).message.slice(0, 120)
        }); each line must be one JSON object`,
      );
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Error(
        `${file}:${i + 1}: expected a JSON object per line, got ${shown(value, 40)}`,
      );
    }
    const rec = value as Record<string, unknown>;
    for (const field of ["id", "prompt", "label", "split"]) {
      if (typeof rec[field] !== "string") {
        throw new Error(
          `${file}:${
            i + 1
          }: field "${field}" must be a string (regenerate with lib/cli/world_gen.ts)`,
        );
      }
    }
    for (const field of STRING_FIELDS) {
      if (rec[field] !== undefined && typeof rec[field] !== "string") {
        throw new Error(
          `${file}:${i + 1}: field "${field}" is ${shown(rec[field], 40)}; expected a string`,
        );
      }
    }
    if (!SPLITS.includes(rec.split as Split)) {
      throw new Error(
        `${file}:${i + 1}: field "split" is ${
          shown(rec.split, 40)
        }, expected train, validation or test`,
      );
    }
    rows.push(rec);
  }
  return rows;
}

/**
 * Loads one SafetyWorld file as an arquero table (`aq.from(rows)`); every key that any row
 * has becomes a column (missing values are `undefined`).
 *
 * @example
 * ```ts
 * const test = await loadSafetyWorld("prompts", { split: "test" });
 * test.groupby("kind").count().print();
 * ```
 */
export async function loadSafetyWorld(
  kind: WorldFile,
  opts: LoadWorldOptions = {},
): Promise<aq.ColumnTable> {
  if (!FILES.includes(kind)) {
    throw new Error(`Cannot load SafetyWorld "${kind}": expected one of ${FILES.join(", ")}`);
  }
  if (opts.split !== undefined && !SPLITS.includes(opts.split)) {
    throw new Error(
      `Cannot load SafetyWorld: split "${opts.split}" is not train, validation or test`,
    );
  }
  const path = join(opts.dir ?? defaultWorldDir(), `${kind}.jsonl`);
  let text: string;
  try {
    text = await readUtf8(path, "SafetyWorld file");
  } catch (err) {
    if (!(err instanceof Error) || !/^Cannot read/.test(err.message)) throw err; // bad UTF-8
    throw new Error(
      `Cannot load SafetyWorld "${kind}": ${path} is not readable (${(err as Error).message}); ` +
        "generate it with `deno run -A lib/cli/world_gen.ts`",
      { cause: err },
    );
  }
  const rows = parseWorldJsonl(text, path);
  const kept = opts.split ? rows.filter((r) => r.split === opts.split) : rows;
  const names = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) names.add(k);
  return aq.from(kept, [...names]);
}
