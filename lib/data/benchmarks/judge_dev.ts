/**
 * Loaders of the judges' development data (`../shared/datasets/judge_dev`):
 *
 * - {@linkcode loadXstestCompletions}: XSTest v2 model completions with human labels
 *   (`final_label` 1_full_compliance / 2_full_refusal / 3_partial_refusal), one CSV per model.
 * - {@linkcode loadJbbArtifacts}: JailbreakBench attack artifacts (`{parameters, jailbreaks:
 *   [{goal, response, jailbroken, ...}]}`), one JSON per attack and target model.
 *
 * @module
 */

import { basename, join } from "node:path";
import { readJson, readRecords } from "./common.ts";
import { lineOf } from "../csv.ts";

/** XSTest's three human-labelled response classes. */
export type XstestClass = "full_compliance" | "full_refusal" | "partial_refusal";

/** One human-labelled XSTest completion. */
export interface XstestCompletion {
  /** The prompt's id in XSTest. */
  id: string;
  /** XSTest prompt type, e.g. "homonyms" or "contrast_homonyms" (contrast = unsafe prompt). */
  type: string;
  /** The prompt. */
  prompt: string;
  /** The model's completion. */
  completion: string;
  /** The final human label. */
  label: XstestClass;
  /** The model's name, from the file name (`xstest_v2_completions_<model>.csv`). */
  model: string;
}

const CLASSES: Record<string, XstestClass> = {
  "1_full_compliance": "full_compliance",
  "2_full_refusal": "full_refusal",
  "3_partial_refusal": "partial_refusal",
};

/**
 * Reads one `xstest_v2_completions_<model>.csv` (columns id, type, prompt, completion,
 * final_label). Throws naming the file and line on a missing column or an unknown label.
 *
 * @example
 * ```ts
 * const rows = await loadXstestCompletions(
 *   "../shared/datasets/judge_dev/xstest_completions/xstest_v2_completions_gpt4.csv",
 * );
 * rows[0].label; // "full_compliance"
 * ```
 */
export async function loadXstestCompletions(path: string): Promise<XstestCompletion[]> {
  const recs = await readRecords(path, "XSTest completions", [
    "id",
    "type",
    "prompt",
    "completion",
    "final_label",
  ]);
  const m = /xstest_v2_completions_(.+)\.csv$/i.exec(basename(path));
  const model = m ? m[1] : basename(path).replace(/\.csv$/i, "");
  return recs.map((r) => {
    const label = CLASSES[r.final_label.trim()];
    if (!label) {
      throw new Error(
        `${path}:${lineOf(r)}: field "final_label" is ${JSON.stringify(r.final_label)}; ` +
          `expected one of ${Object.keys(CLASSES).join(", ")}.`,
      );
    }
    return {
      id: r.id,
      type: r.type,
      prompt: r.prompt,
      completion: r.completion,
      label,
      model,
    };
  });
}

/** One JailbreakBench artifact row: a goal, the attacked model's response and its label. */
export interface JbbArtifact {
  /** The behaviour's index in JBB-Behaviors. */
  index: number;
  /** The harmful goal. */
  goal: string;
  /** The behaviour's short name. */
  behavior: string;
  /** The JBB category. */
  category: string;
  /** The attack prompt sent. */
  prompt: string;
  /** The target model's response ("" when the attack produced none). */
  response: string;
  /** JailbreakBench's label (its judge: an on-topic harmful answer). */
  jailbroken: boolean;
  /** The attack (folder name: "JBC", "DSN", "prompt_with_random_search"). */
  attack: string;
  /** The target model (file name without .json). */
  target: string;
}

interface RawJbb {
  jailbreaks?: unknown;
}

/**
 * Reads one JailbreakBench artifact file (`<attack>/<box>/<target>.json`); the attack and
 * target come from the path unless given.
 *
 * @example
 * ```ts
 * const rows = await loadJbbArtifactFile(
 *   "../shared/datasets/judge_dev/jbb_artifacts/DSN/white_box/vicuna-13b-v1.5.json",
 * );
 * rows[0].attack; // "DSN"
 * ```
 */
export async function loadJbbArtifactFile(
  path: string,
  opts: { attack?: string; target?: string } = {},
): Promise<JbbArtifact[]> {
  const data = (await readJson(path)) as RawJbb;
  if (!data || !Array.isArray(data.jailbreaks)) {
    throw new Error(`${path}: expected {"jailbreaks": [...]} (a JailbreakBench artifact file).`);
  }
  const parts = path.split(/[\\/]/);
  const attack = opts.attack ?? parts[parts.length - 3] ?? "";
  const target = opts.target ?? basename(path).replace(/\.json$/i, "");
  return (data.jailbreaks as Record<string, unknown>[]).map((j, k) => {
    if (typeof j?.goal !== "string" || typeof j.jailbroken !== "boolean") {
      throw new Error(
        `${path}: jailbreaks[${k}] needs a "goal" string and a "jailbroken" boolean.`,
      );
    }
    const str = (v: unknown) => (typeof v === "string" ? v : "");
    return {
      index: typeof j.index === "number" ? j.index : k,
      goal: j.goal,
      behavior: str(j.behavior),
      category: str(j.category),
      prompt: str(j.prompt),
      response: str(j.response),
      jailbroken: j.jailbroken,
      attack,
      target,
    };
  });
}

/**
 * Reads every artifact file under a `jbb_artifacts` folder (`<attack>/<box>/<target>.json`),
 * in sorted path order.
 *
 * @example
 * ```ts
 * const rows = await loadJbbArtifacts("../shared/datasets/judge_dev/jbb_artifacts");
 * new Set(rows.map((r) => r.attack)); // {"DSN", "JBC", "prompt_with_random_search"}
 * ```
 */
export async function loadJbbArtifacts(dir: string): Promise<JbbArtifact[]> {
  const files: string[] = [];
  for await (const a of Deno.readDir(dir)) {
    if (!a.isDirectory) continue;
    for await (const b of Deno.readDir(join(dir, a.name))) {
      if (!b.isDirectory) continue;
      for await (const f of Deno.readDir(join(dir, a.name, b.name))) {
        if (f.isFile && f.name.endsWith(".json")) files.push(join(dir, a.name, b.name, f.name));
      }
    }
  }
  if (files.length === 0) {
    throw new Error(`${dir}: no <attack>/<box>/<target>.json artifact files found.`);
  }
  files.sort();
  const out: JbbArtifact[] = [];
  for (const f of files) out.push(...(await loadJbbArtifactFile(f)));
  return out;
}
