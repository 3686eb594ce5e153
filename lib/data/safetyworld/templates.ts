/**
 * Template plumbing for SafetyWorld: a template is an id, a fixed split and a text with
 * `{slot}` holes. Templates are held out by split (train / validation / test), so a test
 * prompt's wording never appears in any training file.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { Split } from "../schema.ts";

/** One prompt (or wrapper) template with its fixed split. */
export interface Template {
  /** Stable id, e.g. "ar-t1" (t = train, v = validation, x = test by convention). */
  id: string;
  /** The split this template belongs to. */
  split: Split;
  /** Text with `{slot}` holes. */
  text: string;
}

/** Shorthand: builds templates from [id, text]; the split follows the id's "-t/-v/-x" tag. */
export function templates(...defs: readonly (readonly [string, string])[]): Template[] {
  return defs.map(([id, text]) => {
    const tag = id.match(/-([tvx])\d+$/)?.[1];
    if (!tag) throw new Error(`Template id "${id}" must end in -t<n>, -v<n> or -x<n>`);
    const split: Split = tag === "t" ? "train" : tag === "v" ? "validation" : "test";
    return { id, split, text };
  });
}

/** Picks a template of `split` (throws naming the template family when there is none). */
export function pickTemplate(rng: Rng, list: readonly Template[], split: Split): Template {
  const ok = list.filter((t) => t.split === split);
  if (ok.length === 0) {
    throw new Error(`No ${split} template among ${list.map((t) => t.id).join(", ")}`);
  }
  return rng.pick(ok);
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
