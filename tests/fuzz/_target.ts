/**
 * What one fuzz target (one parser) provides to the harness, and how a thrown value is
 * judged: a plain Error (or a named subclass such as the reward service's RequestError) with
 * a non-empty message of at most {@linkcode MAX_MESSAGE} characters that names the file is
 * clean; a bare RangeError / TypeError / SyntaxError, an empty or unbounded message, or a
 * thrown non-Error is a failure.
 *
 * @module
 */

import type { Rng } from "./_mutate.ts";

/** The longest error message accepted (the input's echo included). */
export const MAX_MESSAGE = 600;

/** One parser under fuzz. */
export interface FuzzTarget {
  /** Short name printed in the counts. */
  name: string;
  /** The file name every error message must contain ("" for none, e.g. an HTTP body). */
  source: string;
  /** Builds case input from the case's generator (seed corpus plus mutations). */
  make(rng: Rng): Uint8Array;
  /**
   * Parses the input; throws for a rejected input, returns a description of silent garbage
   * (null ids, NaN, wrong shapes) or undefined for a correct result.
   */
  run(input: Uint8Array): string | undefined | Promise<string | undefined>;
  /**
   * Failures already reported against code outside this branch's reach (matched on the
   * failure text): counted and printed as known, not as failures.
   */
  known?: RegExp;
}

const BARE = new Set([
  "RangeError",
  "TypeError",
  "SyntaxError",
  "ReferenceError",
  "EvalError",
  "URIError",
]);

/** Undefined for a clean error, else what is wrong with it. */
export function judgeError(err: unknown, source: string): string | undefined {
  if (!(err instanceof Error)) return `threw a non-Error: ${String(err).slice(0, 80)}`;
  const name = err.constructor?.name ?? "Error";
  if (BARE.has(name)) return `bare ${name}: ${err.message.slice(0, 160)}`;
  if (!err.message) return "an Error without a message";
  if (err.message.length > MAX_MESSAGE) {
    return `unbounded message (${err.message.length} chars): ${err.message.slice(0, 160)}`;
  }
  if (source && !err.message.includes(source)) {
    return `message does not name ${source}: ${err.message.slice(0, 160)}`;
  }
  return undefined;
}
