/**
 * Template plumbing for SafetyWorld: a template is an id, a fixed split and a text with
 * `{slot}` holes. Templates are held out by split (train / validation / test), so a test
 * prompt's wording never appears in any training file.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { Split } from "../schema.ts";
import { splitWords } from "./tokenizer.ts";

/** One prompt (or wrapper) template with its fixed split. */
export interface Template {
  /** Stable id, e.g. "ar-t1" (t = train, v = validation, x = test by convention). */
  id: string;
  /** The split this template belongs to. */
  split: Split;
  /** Text with `{slot}` holes. */
  text: string;
  /**
   * Test variants only: the id of the test template ("head") whose random draw this
   * template shares (see {@link variantFor}). Absent on heads and on train/validation
   * templates.
   */
  variantOf?: string;
}

/** The `{slot}` names of a template text, sorted and deduplicated. */
export function slotNames(text: string): string[] {
  return [...new Set([...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]))].sort();
}

/**
 * Shorthand: builds templates from [id, text] or [id, text, headId]; the split follows the
 * id's "-t/-v/-x" tag. A third element makes a test VARIANT of the test template `headId`
 * of the same list: it must use exactly the head's slots (so its prompt is a one-to-one
 * function of the head's prompt; see {@link variantFor}) and exactly as many fixed tokens
 * ({@link checkVariants}). Throws naming the template on a bad id or a bad variant.
 */
export function templates(
  ...defs: readonly (readonly [string, string] | readonly [string, string, string])[]
): Template[] {
  const out = defs.map(([id, text, head]) => {
    const tag = id.match(/-([tvx])\d+$/)?.[1];
    if (!tag) throw new Error(`Template id "${id}" must end in -t<n>, -v<n> or -x<n>`);
    const split: Split = tag === "t" ? "train" : tag === "v" ? "validation" : "test";
    return head === undefined ? { id, split, text } : { id, split, text, variantOf: head };
  });
  return checkVariants(out);
}

/** Tokens of a template's fixed text (its slots left out), as the world tokenizer splits. */
function fixedTokens(text: string): number {
  return splitWords(text.replace(/\{\w+\}/g, " ")).length;
}

/**
 * Checks a template list's test variants and returns it: each variant must be a test
 * template whose head is a test template (not itself a variant) of the same list, with
 * exactly the head's slots and exactly as many fixed tokens. Same slots make a variant's
 * prompt a one-to-one function of its head's prompt; same length keeps every "does it fit
 * the context" retry of the generator as it was. Throws naming the template otherwise.
 */
export function checkVariants<T extends Template>(list: T[]): T[] {
  for (const t of list) {
    if (t.variantOf === undefined) continue;
    const head = list.find((h) => h.id === t.variantOf);
    if (!head || head.split !== "test" || head.variantOf !== undefined || t.split !== "test") {
      throw new Error(
        `Template "${t.id}": a variant must be a test template of a test head in its list; ` +
          `"${t.variantOf}" is not one`,
      );
    }
    const a = slotNames(t.text).join(","), b = slotNames(head.text).join(",");
    if (a !== b) {
      throw new Error(
        `Template "${t.id}" uses slots {${a}} but its head "${head.id}" uses {${b}}: ` +
          "a variant must use exactly its head's slots",
      );
    }
    const n = fixedTokens(t.text), m = fixedTokens(head.text);
    if (n !== m) {
      throw new Error(
        `Template "${t.id}" has ${n} fixed tokens but its head "${head.id}" has ${m}: ` +
          "a variant must be exactly as long as its head",
      );
    }
  }
  return list;
}

/**
 * Picks a template of `split` with one draw of `rng` (throws naming the template family
 * when there is none). Test variants are never picked here: {@link variantFor} chooses
 * among a head and its variants afterwards without drawing.
 */
export function pickTemplate(rng: Rng, list: readonly Template[], split: Split): Template {
  const ok = list.filter((t) => t.split === split && t.variantOf === undefined);
  if (ok.length === 0) {
    throw new Error(`No ${split} template among ${list.map((t) => t.id).join(", ")}`);
  }
  return rng.pick(ok);
}

/**
 * The template that words a prompt drawn with `head`: the head itself when it has no
 * variants (no draw), else the head or one of its test variants drawn uniformly from
 * `variants` (the world's makers pass a stream of its own, `Plan.variants`).
 *
 * Why: the test split gained variants (issue #19: >= 10 held-out templates per kind) after
 * the checkpoints were trained. Drawing the variant from a separate stream keeps every draw
 * of the row streams, so every train and validation row stays byte-identical; since a
 * variant has its head's slots and length, the context-fit retries stay as they were, and
 * the generator dedupes prompts by their head wording (`Draft.headPrompt`).
 */
export function variantFor(list: readonly Template[], head: Template, variants: Rng): Template {
  const group = list.filter((t) => t.id === head.id || t.variantOf === head.id);
  return group.length === 1 ? head : variants.pick(group);
}

/**
 * Words a prompt drawn with `head` ({@link variantFor}) and fills it: the template that
 * words it, the prompt, and the head's wording of the same slots (what the generator
 * dedupes on, so its retries do not depend on the variant drawn).
 */
export function wordPrompt<T extends Template>(
  list: readonly T[],
  head: T,
  slots: Readonly<Record<string, string | number>>,
  variants: Rng,
): { template: T; prompt: string; headPrompt: string } {
  const template = variantFor(list, head, variants) as T;
  return { template, prompt: fill(template.text, slots), headPrompt: fill(head.text, slots) };
}

/** Fills `{slot}` holes; throws naming the template and slot when a value is missing. */
export function fill(text: string, slots: Readonly<Record<string, string | number>>): string {
  return text.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = slots[name];
    if (v === undefined) throw new Error(`Template "${text}" needs slot {${name}}`);
    return String(v);
  });
}

/** Draws values until `key(value)` falls in `split` (bounded; throws when none does). */
export function drawInSplit<T>(
  draw: () => T,
  key: (value: T) => string,
  splitOf: (key: string) => Split,
  split: Split,
  what: string,
): T {
  for (let i = 0; i < 5000; i++) {
    const v = draw();
    if (splitOf(key(v)) === split) return v;
  }
  throw new Error(
    `Cannot draw a ${split} ${what}: the seed's hold-out left none (try another seed)`,
  );
}

/** Numbers the steps of a procedure: "step 1 : a . step 2 : b ." */
export function numberSteps(steps: readonly string[]): string {
  return steps.map((s, i) => `step ${i + 1} : ${s} .`).join(" ");
}

/** Joins list words as the world writes lists: "cup , hat , lamp". */
export function listText(items: readonly string[]): string {
  return items.join(" , ");
}

/**
 * The template cluster of a SafetyWorld row for intervals: the jailbreak wrapper's id for
 * jailbreak rows (the wrapper is what a jailbreak row is measured for), else the prompt
 * template's id; undefined for rows without either (prompts from other sources).
 *
 * @example
 * ```ts
 * templateCluster({ templateId: "hm-x2", wrapperId: "jrp-x1" }); // "jrp-x1"
 * templateCluster({ templateId: "hm-x2" }); // "hm-x2"
 * ```
 */
export function templateCluster(row: object): string | undefined {
  const r = row as { templateId?: unknown; wrapperId?: unknown };
  if (typeof r.wrapperId === "string") return r.wrapperId;
  return typeof r.templateId === "string" ? r.templateId : undefined;
}

/**
 * Each row's {@link templateCluster}, or undefined when any row has none (then intervals
 * fall back to resampling prompts).
 *
 * @example
 * ```ts
 * templateClusters([{ templateId: "hm-x1" }, { templateId: "hm-x4" }]); // ["hm-x1", "hm-x4"]
 * templateClusters([{ templateId: "hm-x1" }, {}]); // undefined
 * ```
 */
export function templateClusters(rows: readonly object[]): string[] | undefined {
  const t = rows.map((r) => templateCluster(r));
  return t.every((x) => x !== undefined) ? (t as string[]) : undefined;
}
