/**
 * Fuzz target: the reward service's request-body parser, `parseRewardRequest` of
 * lib/serve/rewards.ts (called only: the service itself is hardened elsewhere), on mutated
 * OpenRLHF-style bodies. Accepted bodies must give one item per query with string prompt and
 * response. The body is not a file, so messages need not name one.
 *
 * It found that a wrong-typed list entry or label was echoed whole (`query[1] is [[[[...` for
 * 200 KB); the service now echoes at most `ECHO_CHARS` of it (lib/io/bounded.ts `shown`).
 *
 * @module
 */

import { parseRewardRequest } from "../../lib/serve/rewards.ts";
import { type Json, mutateJsonText } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const SEEDS: Json[] = [
  {
    query: ["User: hi\nAssistant: hello", "User: x\nAssistant: no"],
    prompts: ["User: hi\n", "User: x\n"],
  },
  { responses: ["sure", "I can't help"], labels: ["harmful", "benign"] },
  { query: ["abc"], labels: [{ label: "harmful", category: "x" }] },
];

/** The reward body target. */
export const target: FuzzTarget = {
  name: "reward_body",
  source: "",
  make: (rng) => mutateJsonText(rng, rng.pick(SEEDS)),
  run(input) {
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(input));
    } catch {
      throw new Error("the body is not valid JSON"); // the handler answers 400
    }
    const items = parseRewardRequest(body, 1000);
    for (const [k, it] of items.entries()) {
      if (it.index !== k || typeof it.prompt !== "string" || typeof it.response !== "string") {
        return `item ${k}`;
      }
    }
    return undefined;
  },
};
