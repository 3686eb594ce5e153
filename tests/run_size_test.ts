import assert from "node:assert/strict";
import { runSize, sizeBanner } from "../lib/experiments/size.ts";

/** Runs `f` with the two size variables set as given (undefined: unset), then restores them. */
function withEnv(vars: { size?: string; quick?: string }, f: () => void): void {
  const names = { size: "SAFETY_COMPASS_SIZE", quick: "SAFETY_COMPASS_QUICK" } as const;
  const saved = { size: Deno.env.get(names.size), quick: Deno.env.get(names.quick) };
  const set = (k: keyof typeof names, v: string | undefined) =>
    v === undefined ? Deno.env.delete(names[k]) : Deno.env.set(names[k], v);
  try {
    set("size", vars.size);
    set("quick", vars.quick);
    f();
  } finally {
    set("size", saved.size);
    set("quick", saved.quick);
  }
}

Deno.test("runSize: code beats SAFETY_COMPASS_SIZE beats SAFETY_COMPASS_QUICK beats default", () => {
  withEnv({}, () => assert.equal(runSize(), "default"));
  withEnv({ quick: "1" }, () => assert.equal(runSize(), "quick"));
  withEnv({ quick: "0" }, () => assert.equal(runSize(), "default"));
  withEnv({ quick: "1", size: "full" }, () => assert.equal(runSize(), "full"));
  withEnv({ size: "" }, () => assert.equal(runSize(), "default"));
  withEnv({ quick: "1", size: "quick" }, () => assert.equal(runSize("full"), "full"));
});

Deno.test("runSize: a value that names no tier is an error naming it", () => {
  withEnv(
    { size: "ful" },
    () =>
      assert.throws(
        () => runSize(),
        /SAFETY_COMPASS_SIZE=ful: expected one of quick, default, full/,
      ),
  );
  assert.throws(() => runSize("large"), /runSize\("large"\): expected one of/);
});

Deno.test("sizeBanner says how to reach the full size from the default", () => {
  const b = sizeBanner("default", "2 min", "30 min");
  assert.match(b, /2 min/);
  assert.match(b, /runSize\("full"\)/);
  assert.match(b, /SAFETY_COMPASS_SIZE=full/);
  assert.match(sizeBanner("quick", "", ""), /noise/);
  assert.match(sizeBanner("full", "2 min", "30 min"), /30 min/);
});
