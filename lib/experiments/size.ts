/**
 * Run sizes of the notebooks (and of any script that wants the same three tiers):
 * - `quick`: CI's size, a few steps that run every code path; the numbers are noise;
 * - `default`: what a notebook does when nobody asks: a few minutes on two CPU cores, the
 *   intervals still reported (they are wide: the point estimates move less than at full size);
 * - `full`: the sizes behind the README's tables (tens of minutes for the RL experiments).
 *
 * The tier comes from the code first (`runSize("full")`, one word to change in a notebook's
 * first cell), then from the environment (`SAFETY_COMPASS_SIZE=quick|default|full`, or CI's
 * `SAFETY_COMPASS_QUICK=1`), then `default`.
 *
 * @module
 */

import { envVar } from "../io/env.ts";

/** A run's size tier; see the module documentation. */
export type RunSize = "quick" | "default" | "full";

/** The tiers, smallest first. */
export const RUN_SIZES: readonly RunSize[] = ["quick", "default", "full"];

/** Whether `s` names a tier. */
export function isRunSize(s: unknown): s is RunSize {
  return typeof s === "string" && (RUN_SIZES as readonly string[]).includes(s);
}

/**
 * The run size: `choice` when given, else `SAFETY_COMPASS_SIZE`, else `quick` when
 * `SAFETY_COMPASS_QUICK=1`, else `default`. A value that names no tier is an error (a typo
 * must not silently start a 30-minute run, nor a noise-sized one).
 *
 * @example
 * ```ts
 * import { runSize } from "./size.ts";
 * const SIZE = runSize(); // or runSize("full") for the README's sizes
 * const sizes = { quick: { steps: 3 }, default: { steps: 20 }, full: { steps: 60 } }[SIZE];
 * console.log(`${SIZE} run: ${JSON.stringify(sizes)}`);
 * ```
 */
export function runSize(choice?: RunSize | string): RunSize {
  if (choice !== undefined) {
    if (!isRunSize(choice)) {
      throw new Error(`runSize("${choice}"): expected one of ${RUN_SIZES.join(", ")}`);
    }
    return choice;
  }
  const named = envVar("SAFETY_COMPASS_SIZE");
  if (named !== undefined) {
    if (!isRunSize(named)) {
      throw new Error(
        `SAFETY_COMPASS_SIZE=${named}: expected one of ${RUN_SIZES.join(", ")} (or unset it)`,
      );
    }
    return named;
  }
  return envVar("SAFETY_COMPASS_QUICK") === "1" ? "quick" : "default";
}

/**
 * One line that says which tier runs and how to get another, for a notebook's first output.
 *
 * @example
 * ```ts
 * import { sizeBanner } from "./size.ts";
 * console.log(sizeBanner("default", "about 2 minutes", "about 30 minutes"));
 * ```
 */
export function sizeBanner(size: RunSize, defaultTime: string, fullTime: string): string {
  switch (size) {
    case "quick":
      return "QUICK run (CI): a few steps so that every code path runs; the numbers are noise.";
    case "default":
      return `DEFAULT size (${defaultTime} on two CPU cores): small sets, wide intervals. ` +
        `For the README's sizes (${fullTime}) write runSize("full") above, or start Jupyter ` +
        "with SAFETY_COMPASS_SIZE=full.";
    case "full":
      return `FULL size (${fullTime} on two CPU cores): the README's sizes.`;
  }
}
