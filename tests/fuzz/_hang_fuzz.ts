/**
 * A target that hangs on case 1 and throws a bare TypeError on case 2 (seed 1): checks that
 * the harness's watchdog kills a hung case and resumes at the next one, and that a bare
 * TypeError is a failure.
 *
 * @module
 */

import { caseRng } from "./_mutate.ts";
import type { FuzzTarget } from "./_target.ts";

const key = (i: number) => caseRng(1, i).int(1 << 30);

/** The self-test target. */
export const target: FuzzTarget = {
  name: "hang",
  source: "",
  make: (rng) => new Uint8Array(new Uint32Array([rng.int(1 << 30)]).buffer),
  run(input) {
    const k = new Uint32Array(input.buffer)[0];
    if (k === key(1)) { while (k === key(1)) { /* hang */ } }
    if (k === key(2)) throw new TypeError("bare");
    return undefined;
  },
};
