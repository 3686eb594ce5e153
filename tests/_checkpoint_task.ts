/**
 * The SFT task of the checkpoint crash test, shared by the test and its child process.
 *
 * @module
 */

import type { SftExample } from "../lib/train/sft.ts";
import { makeRng } from "../lib/data/rng.ts";

/** 64 examples of "numbers plus one, reversed" (seeded). */
export function crashTask(): SftExample[] {
  const rng = makeRng(21);
  return Array.from({ length: 64 }, () => {
    const xs = Array.from({ length: 3 + rng.int(3) }, () => 1 + rng.int(20));
    return { prompt: xs.join(" "), response: xs.map((x) => x + 1).reverse().join(" ") };
  });
}

/** The options of every run (child and parent), so a resume continues the same schedule. */
export const CRASH_OPTS = { steps: 100000, batchSize: 8, lr: 3e-3, seed: 5, warmup: 0 };
