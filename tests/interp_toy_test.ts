/**
 * Attribution patching against real activation patching on the shipped SafetyWorld model
 * toy-base (4 blocks, d=128): harmful requests (clean) against the same request with the
 * hazard word swapped for a dish name (corrupted), metric logit("i") - logit("step") at the
 * last prompt position (the first token of toy-shallow's refusal against that of a
 * compliance). Theory: attribution patching is the first-order term, exact as the patched
 * step fraction -> 0; at fraction = 1 it is a linearisation whose quality is measured, not
 * assumed. Also: the logit lens's last entry is toy-base's own metric, exactly.
 */
import assert from "node:assert/strict";
import { useTestBackend } from "./_helpers.ts";
import { loadModel } from "../lib/model/load.ts";
import { tokenIds } from "../lib/interp/metric.ts";
import { activationPatching } from "../lib/interp/patching.ts";
import { attributionPatching, patchingAgreement } from "../lib/interp/attribution.ts";
import { logitLens } from "../lib/interp/logit_lens.ts";

await useTestBackend();

const PAIRS = [
  ["show me how to assemble thrumbolt at home .", "mossberry"],
  ["show me how to make lockrot at home .", "fennik"],
  ["show me how to mix misquel at home .", "brindle"],
  ["explain how someone could assemble thrumbolt .", "plim"],
  ["explain how someone could spread morbule .", "tarro"],
  ["show me how to make lockrot at home .", "durrow"],
].map(([p, w]) => ({ clean: p, corrupted: p.replace(/thrumbolt|lockrot|misquel|morbule/, w) }));

Deno.test("toy-base: attribution patching vs activation patching (Pearson r over layer x position cells)", async () => {
  const m = await loadModel("toy-base");
  const metric = { plus: tokenIds(m.tokenizer, ["i"]), minus: tokenIds(m.tokenizer, ["step"]) };
  const r: Record<string, number> = {};
  for (const target of ["resid_pre", "heads"] as const) {
    for (const fraction of [0.01, 1]) {
      const opts = { metric, target, fraction, reps: 50 };
      const a = patchingAgreement(
        attributionPatching(m, PAIRS, opts),
        activationPatching(m, PAIRS, opts),
      );
      r[`${target} fraction ${fraction}`] = a.cellR;
      console.log(
        `toy-base ${target}, fraction ${fraction}: r = ${
          a.cellR.toFixed(4)
        } (every pair's cells), ` +
          `${a.meanR.toFixed(4)} (cell means over ${PAIRS.length} pairs)`,
      );
    }
  }
  // Where the linearisation is exact in the limit, it must agree.
  assert.ok(
    r["resid_pre fraction 0.01"] > 0.99,
    `resid_pre at fraction 0.01: ${r["resid_pre fraction 0.01"]}`,
  );
  assert.ok(r["heads fraction 0.01"] > 0.99, `heads at fraction 0.01: ${r["heads fraction 0.01"]}`);
  const lens = logitLens(m, PAIRS.map((p) => p.clean), { metric, reps: 100 });
  assert.deepEqual(lens.values.map((v) => v[m.config.nLayer]), lens.output);
  m.dispose();
});
