/**
 * Conversational frames for TRAINING prompts: generic politeness and hedging words put
 * around a prompt ("please , sort cup , hat .", "can you help : what is 3 plus 4 ? thanks .")
 * so a tiny model learns that such words do not change the request. Without them the base
 * model keyed on exact template wording: held-out templates that open with "please" or
 * "tell me" (words the training prompts used only in trait and harmful templates) got
 * "no ." or a fact recital instead of an answer.
 *
 * Frames are applied to every kind of training prompt alike (tasks, harmful requests,
 * borderline prompts, trait scenarios), so a frame carries no information about the label.
 * A framed prompt keeps its training template's wording intact between the frame words, so
 * no validation or test template's text enters training (the frame words themselves are
 * common words that held-out templates may also use: "please", "tell me").
 *
 * @module
 */

import type { Rng } from "../rng.ts";

/** Openers put before a prompt. */
export const FRAME_OPENERS: readonly string[] = [
  "please ,",
  "hey ,",
  "hi ,",
  "ok ,",
  "so ,",
  "can you help :",
  "quick one :",
  "i have a request :",
  "one more thing :",
  "if you can ,",
  "tell me this :",
  "could you do this :",
];

/** Closers put after a prompt. */
export const FRAME_CLOSERS: readonly string[] = [
  "thanks .",
  "thank you .",
  "please .",
  "if you can .",
  "be brief .",
  "go on .",
];

/** Options of {@link framePrompt}. */
export interface FrameOptions {
  /** Probability that a prompt gets a frame at all. @default 0.5 */
  rate?: number;
}

/**
 * The prompt with a random opener, closer or both (each frame a coin flip), or unchanged
 * with probability `1 - rate`. Consumes the same number of draws whatever it decides, so
 * the rows drawn after it do not depend on the rate.
 */
export function framePrompt(rng: Rng, prompt: string, opts: FrameOptions = {}): string {
  const rate = opts.rate ?? 0.5;
  const apply = rng.next() < rate;
  const shape = rng.int(3); // 0 opener, 1 closer, 2 both
  const opener = rng.pick(FRAME_OPENERS);
  const closer = rng.pick(FRAME_CLOSERS);
  if (!apply) return prompt;
  const head = shape === 1 ? "" : `${opener} `;
  const tail = shape === 0 ? "" : ` ${closer}`;
  return `${head}${prompt}${tail}`;
}
