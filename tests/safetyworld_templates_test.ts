/**
 * Tests of SafetyWorld's held-out test templates (issue #19, item 4): at least 10 test
 * templates per prompt kind; the variants added for that left every train and validation
 * row and the vocabulary byte-identical (golden hashes taken from the generator before the
 * change, commit 1105276); and the rules a variant must follow are enforced.
 *
 * @module
 */

import assert from "node:assert/strict";
import { makeRng } from "../lib/data/rng.ts";
import { makePlan, withVariants } from "../lib/data/safetyworld/plan.ts";
import { generateWorld, serializeRow, WORLD_FILES } from "../lib/data/safetyworld/generate.ts";
import { worldVocabulary } from "../lib/data/safetyworld/tokenizer.ts";
import { benignTask, type TaskDomain } from "../lib/data/safetyworld/tasks.ts";
import { borderlinePrompt, harmfulRequest } from "../lib/data/safetyworld/harm.ts";
import { JAILBREAK_FAMILIES, jailbreakPrompt } from "../lib/data/safetyworld/jailbreak.ts";
import { TRAITS, traitScenario } from "../lib/data/safetyworld/traits.ts";
import {
  checkVariants,
  pickTemplate,
  templateCluster,
  templates,
  variantFor,
  wordPrompt,
} from "../lib/data/safetyworld/templates.ts";
import type { Sample } from "../lib/data/safetyworld/plan.ts";

async function sha16(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("").slice(
    0,
    16,
  );
}

/** Template clusters of 3000 test samples of one generator. */
function clustersOf(draw: (rng: ReturnType<typeof makeRng>) => { draft: object }): Set<string> {
  const rng = makeRng(1);
  const out = new Set<string>();
  for (let i = 0; i < 3000; i++) out.add(templateCluster(draw(rng).draft)!);
  return out;
}

Deno.test("every prompt kind has >= 10 test templates (jailbreaks: >= 10 wrappers)", () => {
  const plan = makePlan(0);
  const kinds: [string, (r: ReturnType<typeof makeRng>) => Sample | { draft: object }][] = [
    ...(["arithmetic", "kb", "list", "recipe"] as TaskDomain[]).map((d) =>
      [`task:${d}`, (r: ReturnType<typeof makeRng>) => benignTask(r, plan, "test", d)] as [
        string,
        (r: ReturnType<typeof makeRng>) => Sample,
      ]
    ),
    ["harmful", (r) => harmfulRequest(r, plan, "test")],
    ["borderline", (r) => borderlinePrompt(r, plan, "test")],
    ["jailbreak", (r) => jailbreakPrompt(r, plan, "test")],
    ...TRAITS.map((t) =>
      [`trait:${t}`, (r: ReturnType<typeof makeRng>) => traitScenario(r, plan, "test", t)] as [
        string,
        (r: ReturnType<typeof makeRng>) => { draft: object },
      ]
    ),
  ];
  const counts: string[] = [];
  for (const [kind, draw] of kinds) {
    const ids = clustersOf(draw);
    counts.push(`${kind} ${ids.size}`);
    assert.ok(ids.size >= 10, `${kind}: ${ids.size} test templates (${[...ids].join(", ")})`);
    for (const id of ids) assert.match(id, /-x\d+$/, `${kind}: ${id} is not a test template`);
  }
  // Inner harmful templates of jailbreaks and wrappers per family.
  for (const fam of JAILBREAK_FAMILIES) {
    const ids = clustersOf((r) => jailbreakPrompt(r, plan, "test", fam));
    assert.ok(ids.size >= 3, `${fam}: ${ids.size} test wrappers`);
  }
  console.log(`  test templates: ${counts.join(", ")}`);
});

Deno.test("train and validation rows and the vocabulary are byte-identical to before the variants", async () => {
  // Golden hashes of the seed-0 default world's non-test rows (every file) and vocabulary,
  // computed with the generator at commit 1105276 (3 test templates per kind). The shipped
  // checkpoints were trained on these rows with this vocabulary.
  const golden: Record<string, string> = {
    prompts: "785eb42d1760e351",
    sft: "c7c5a0ba9ba92e02",
    align: "dd830e3d56ce6511",
    recovery: "cde9c8d576056b2d",
    traces: "4f77adc847f56b28",
    traits: "cb254ff33afbef3d",
  };
  const w = generateWorld({ seed: 0 });
  for (const f of WORLD_FILES) {
    const text = (w[f] as { split: string }[]).filter((r) => r.split !== "test")
      .map((r) => serializeRow(r) + "\n").join("");
    assert.equal(await sha16(text), golden[f], `${f}: train/validation rows changed`);
  }
  assert.equal(await sha16(worldVocabulary(w).join("\n")), "c110b9464c11f32f", "vocabulary");
  assert.equal(worldVocabulary(w).length, 661);
  // No row carries the generator's internal dedupe key.
  for (const f of WORLD_FILES) {
    assert.ok(w[f].every((r) => !("headPrompt" in r)), `${f}: headPrompt leaked`);
  }
});

Deno.test("variants: drawn from their own stream, never from the row stream", () => {
  const plan = makePlan(0);
  const a = makeRng(5), b = makeRng(5);
  const vp = withVariants(plan, makeRng(99));
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const x = harmfulRequest(a, vp, "test");
    seen.add(x.draft.templateId);
    // Drawing the same row with a different variant stream consumes `b` identically.
    harmfulRequest(b, withVariants(plan, makeRng(i)), "test");
    assert.equal(a.next(), b.next(), "row streams stay in step");
  }
  assert.ok(seen.size >= 10, `variants seen: ${seen.size}`);
});

Deno.test("variant rules: same slots, same length, a test head; wordPrompt fills both", () => {
  const list = templates(
    ["zz-t1", "how do i {v} it ?"],
    ["zz-x1", "tell me how to {v} it ."],
    ["zz-x2", "say how i can {v} it .", "zz-x1"],
  );
  assert.equal(pickTemplate(makeRng(0), list, "test").id, "zz-x1"); // variants are not heads
  const w = wordPrompt(list, list[1], { v: "mix" }, makeRng(3));
  assert.equal(w.headPrompt, "tell me how to mix it .");
  assert.ok(["tell me how to mix it .", "say how i can mix it ."].includes(w.prompt));
  assert.equal(variantFor(list, list[0], makeRng(0)).id, "zz-t1");
  assert.throws(
    () => templates(["zz-x1", "tell me {v} ."], ["zz-x2", "tell me {w} .", "zz-x1"]),
    /uses slots \{w\} but its head "zz-x1" uses \{v\}/,
  );
  assert.throws(
    () => templates(["zz-x1", "tell me {v} ."], ["zz-x2", "tell me {v} now .", "zz-x1"]),
    /has 4 fixed tokens but its head "zz-x1" has 3/,
  );
  assert.throws(
    () => templates(["zz-t1", "tell me {v} ."], ["zz-x2", "say me {v} .", "zz-t1"]),
    /a variant must be a test template of a test head/,
  );
  assert.throws(
    () => checkVariants([{ id: "zz-x2", split: "test", text: "a", variantOf: "nope" }]),
    /"nope" is not one/,
  );
  assert.equal(templateCluster({ templateId: "hm-x2", wrapperId: "jrp-x1" }), "jrp-x1");
  assert.equal(templateCluster({ id: "p" }), undefined);
});
