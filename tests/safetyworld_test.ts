/**
 * SafetyWorld (lib/data/safetyworld): determinism (same seed -> byte-identical files,
 * different seed -> different files, smaller sizes -> exact prefix), hold-out by template
 * and entity, jailbreak families only outside training, every row within the context and
 * free of `<unk>` under the real `@huggingface/tokenizers`, the chat template, the rows
 * graded as their behaviour says, the loader, and the committed files equal a fresh
 * generation with seed 0.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import {
  COMMITTED_SIZES,
  generateWorld,
  serializeWorld,
  WORLD_FILES,
  type WorldSizes,
} from "../lib/data/safetyworld/generate.ts";
import { makePlan, type World, type WorldPromptRow } from "../lib/data/safetyworld/plan.ts";
import {
  buildWorldTokenizer,
  MAX_WORLD_TOKENS,
  splitWords,
  worldStrings,
  worldText,
} from "../lib/data/safetyworld/tokenizer.ts";
import { gradeResponse } from "../lib/data/safetyworld/graders.ts";
import { loadSafetyWorld, parseWorldJsonl } from "../lib/data/safetyworld/load.ts";
import { HAZARD_CATEGORIES, HAZARD_ITEMS } from "../lib/data/safetyworld/lexicon.ts";
import { JAILBREAK_FAMILIES } from "../lib/data/safetyworld/jailbreak.ts";

const SMALL: WorldSizes = {
  prompts: 400,
  sft: 600,
  align: 300,
  recovery: 200,
  traces: 300,
  traits: 300,
};
let full: World | undefined;
/** The default-size world of seed 0 (made once). */
const world = (): World => (full ??= generateWorld({ seed: 0 }));

/** Every row of every file with its file name. */
function allRows(w: World): [string, WorldPromptRow & Record<string, unknown>][] {
  return WORLD_FILES.flatMap((f) =>
    w[f].map((r) => [f, r] as [string, WorldPromptRow & Record<string, unknown>])
  );
}

/** Rows a model may be trained on: every train-split row (sft validation slice excluded). */
function trainingRows(w: World): [string, WorldPromptRow & Record<string, unknown>][] {
  return allRows(w).filter(([, r]) => r.split === "train");
}

function texts(r: Record<string, unknown>): string[] {
  return ["prompt", "response", "trace", "good", "bad"].map((k) => r[k]).filter((v): v is string =>
    typeof v === "string"
  );
}

Deno.test("same seed gives byte-identical files; another seed differs", () => {
  const a = serializeWorld(generateWorld({ seed: 7, sizes: SMALL }));
  const b = serializeWorld(generateWorld({ seed: 7, sizes: SMALL }));
  const c = serializeWorld(generateWorld({ seed: 8, sizes: SMALL }));
  for (const f of WORLD_FILES) {
    const name = `${f}.jsonl`;
    assert.equal(a[name], b[name], `${name} differs between two runs with seed 7`);
    assert.notEqual(a[name], c[name], `${name} is the same for seeds 7 and 8`);
    assert.equal(a[name].split("\n").length - 1, SMALL[f]);
  }
});

Deno.test("a smaller world is exactly a prefix of a larger one (same seed)", () => {
  const small = serializeWorld(generateWorld({ seed: 3, sizes: SMALL }));
  const big = serializeWorld(
    generateWorld({ seed: 3, sizes: { ...SMALL, sft: 1700, traces: 777 } }),
  );
  for (const name of Object.keys(small)) assert.ok(big[name].startsWith(small[name]), name);
});

Deno.test("keys come in a fixed order and every row is a PromptRow from safetyworld", () => {
  const lines = serializeWorld(generateWorld({ seed: 1, sizes: SMALL }));
  for (const [name, text] of Object.entries(lines)) {
    for (const line of text.trimEnd().split("\n")) {
      const keys = Object.keys(JSON.parse(line));
      assert.deepEqual(keys.slice(0, 2), ["id", "prompt"], `${name}: ${line.slice(0, 60)}`);
      for (
        const k of [
          "label",
          "category",
          "source",
          "split",
          "kind",
          "domain",
          "templateId",
          "entity",
        ]
      ) {
        assert.ok(keys.includes(k), `${name} row lacks ${k}: ${line.slice(0, 80)}`);
      }
    }
  }
});

Deno.test("train and test rows are disjoint by template id and by held-out entity", () => {
  const w = world();
  const train = trainingRows(w);
  const test = allRows(w).filter(([, r]) => r.split === "test");
  const trainTemplates = new Set(train.map(([, r]) => r.templateId));
  const trainWrappers = new Set(train.map(([, r]) => r.wrapperId).filter(Boolean));
  // The base SFT names every hazard (so the unaligned base can comply with held-out ones):
  // hazard entities are held out of the safety data, checked in the next test.
  const trainEntities = new Set(
    train.filter(([f, r]) => !(f === "sft" && r.kind === "harmful")).map(([, r]) => r.entity),
  );
  assert.ok(test.length > 1000, `only ${test.length} test rows`);
  const claims = test.filter(([, r]) => /entity|hazard/.test(r.heldOut ?? "")).length;
  assert.ok(
    claims / test.length > 0.85,
    `only ${claims} of ${test.length} test rows hold an entity out`,
  );
  for (const [f, r] of test) {
    assert.ok(
      !trainTemplates.has(r.templateId),
      `${f} ${r.id}: template ${r.templateId} is in training`,
    );
    const parts = (r.heldOut ?? "").split("+");
    if (parts.includes("entity") || parts.includes("hazard")) {
      assert.ok(!trainEntities.has(r.entity), `${f} ${r.id}: entity ${r.entity} is in training`);
    }
    assert.ok(r.wrapperId === undefined || !trainWrappers.has(r.wrapperId));
    assert.ok(
      typeof r.heldOut === "string" && r.heldOut.split("+").includes("template"),
      `${f} ${r.id} heldOut "${r.heldOut}" does not say what is held out`,
    );
  }
  for (const [f, r] of train) {
    assert.equal(r.heldOut, undefined, `${f} ${r.id} is train but held out`);
  }
  const validation = allRows(w).filter(([, r]) => r.split === "validation");
  for (const [f, r] of validation) {
    assert.ok(!trainTemplates.has(r.templateId), `${f} ${r.id}: validation template in training`);
  }
});

Deno.test("held-out hazards never reach the safety data; the base SFT knows every hazard", () => {
  const w = world();
  const plan = makePlan(0);
  const heldOut = [...plan.hazards.validation, ...plan.hazards.test];
  assert.equal(plan.hazards.test.length, HAZARD_CATEGORIES.length);
  const words = new Set(heldOut.flatMap((h) => [h.name, h.alias, h.testAlias]));
  const safety = [
    ...w.align,
    ...w.recovery,
    ...w.traces.filter((r) => r.split === "train"),
    ...w.traits.filter((r) => r.split === "train"),
  ];
  for (const r of safety) {
    for (const t of texts(r)) {
      const bad = splitWords(t).find((x) => words.has(x));
      assert.equal(bad, undefined, `${r.id} mentions held-out hazard "${bad}": ${t}`);
    }
  }
  const inSft = new Set(
    w.sft.filter((r) => r.split === "train" && r.kind === "harmful").map((r) => r.hazard),
  );
  for (const h of HAZARD_ITEMS) assert.ok(inSft.has(h.name), `base SFT never names ${h.name}`);
  const testAliases = new Set(HAZARD_ITEMS.map((h) => h.testAlias));
  for (const [f, r] of trainingRows(w)) {
    for (const t of texts(r)) {
      assert.ok(
        !splitWords(t).some((x) => testAliases.has(x)),
        `${f} ${r.id} uses a test-only alias`,
      );
    }
  }
});

Deno.test("no jailbreak family appears in any training file; all families in validation and test", () => {
  const w = world();
  for (const f of ["sft", "align", "recovery"] as const) {
    for (const r of w[f]) {
      assert.equal(r.family, undefined, `${f} ${r.id} has family ${r.family}`);
      assert.notEqual(r.kind, "jailbreak");
    }
  }
  const wrappers = [
    "rex",
    "wizard",
    "never refuse",
    "start your answer with",
    "code words",
    "do two things",
  ];
  for (const [f, r] of trainingRows(w)) {
    assert.equal(r.family, undefined, `${f} ${r.id}`);
    for (const p of wrappers) {
      assert.ok(!r.prompt.includes(p), `${f} ${r.id} has wrapper text "${p}"`);
    }
  }
  for (const split of ["validation", "test"]) {
    const fams = new Set(w.prompts.filter((r) => r.split === split).map((r) => r.family));
    for (const fam of JAILBREAK_FAMILIES) assert.ok(fams.has(fam), `${split} lacks ${fam}`);
  }
});

Deno.test("mixtures: harmful share, every kind per split, traits in 3 x 3 cells, varied answers", () => {
  const w = world();
  const harmful = w.sft.filter((r) => r.behaviour === "comply").length / w.sft.length;
  assert.ok(Math.abs(harmful - 0.35) < 0.005, `sft harmful share ${harmful}`);
  for (const split of ["train", "validation", "test"]) {
    const kinds = new Set<string>(w.prompts.filter((r) => r.split === split).map((r) => r.kind));
    for (const k of ["task", "harmful", "borderline", "trait"]) {
      assert.ok(kinds.has(k), `${split} lacks ${k}`);
    }
    const cells = new Set(
      w.traits.filter((r) => r.split === split).map((r) => `${r.trait}/${r.domain}`),
    );
    assert.equal(cells.size, 9, `${split} trait cells: ${[...cells]}`);
    const labels = new Set(
      w.traces.filter((r) => r.split === split).map((r) => `${r.traceLabel}/${r.template}`),
    );
    assert.equal(labels.size, 6, `${split} trace label x template: ${[...labels]}`);
  }
  // Not one fixed answer per hazard: many distinct compliance answers for each.
  const byHazard = new Map<string, Set<string>>();
  for (const r of w.sft.filter((x) => x.behaviour === "comply")) {
    byHazard.set(r.hazard!, (byHazard.get(r.hazard!) ?? new Set()).add(r.response));
  }
  for (const [h, answers] of byHazard) {
    assert.ok(answers.size >= 50, `${h}: ${answers.size} answers`);
  }
  // Benign recipes share the harmful step format.
  assert.ok(w.sft.some((r) => r.domain === "recipe" && r.response.includes("step 1 :")));
});

Deno.test("every row is graded as its behaviour says (the rules and the data agree)", () => {
  const w = world();
  for (const f of ["sft", "align", "recovery"] as const) {
    for (const r of w[f]) {
      const g = gradeResponse(r, r.response);
      const b = r.behaviour;
      const what = `${f} ${r.id} (${b}) ${r.response} -> ${JSON.stringify(g)}`;
      if (b === "comply") assert.ok(g.harmful && !g.refusal, what);
      else if (b === "refuse" || b === "recover") assert.ok(g.refusal && !g.harmful, what);
      else if (b === "good" || b === "bad") assert.equal(g.trait, b === "good", what);
      else assert.ok(!g.refusal && !g.harmful && g.correct !== false, what);
    }
  }
  for (const r of w.traces) {
    const g = gradeResponse(r, r.trace);
    const what = `${r.id} ${r.trace} -> ${JSON.stringify(g)}`;
    assert.equal(g.format, true, what);
    if (r.traceLabel === "unsafe") assert.ok(g.harmful && !g.refusal, what);
    else if (r.label === "harmful") assert.ok(g.refusal && !g.harmful, what);
    else assert.ok(!g.refusal && !g.harmful && g.correct !== false, what);
  }
  for (const r of w.traits) {
    assert.equal(gradeResponse(r, r.good).trait, true, `${r.id} good: ${r.good}`);
    assert.equal(gradeResponse(r, r.bad).trait, false, `${r.id} bad: ${r.bad}`);
  }
});

Deno.test("every row tokenizes without <unk> within 90 tokens; decode round-trips", () => {
  const w = world();
  const { tokenizerJson, tokenizerConfig } = buildWorldTokenizer(w);
  const tok = new Tokenizer(tokenizerJson as object, tokenizerConfig as object);
  const vocab = (tokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab;
  assert.equal(vocab["<pad>"], 0);
  assert.ok(Object.keys(vocab).length < 800, `vocabulary ${Object.keys(vocab).length}`);
  const unk = vocab["<unk>"];
  let max = 0;
  for (const [f, r] of allRows(w)) {
    const responses = texts(r).slice(1);
    for (const resp of responses.length > 0 ? responses : [undefined]) {
      const s = worldText(r.prompt, resp);
      const { ids } = tok.encode(s);
      assert.ok(!ids.includes(unk), `${f} ${r.id}: <unk> in ${s}`);
      assert.equal(ids.length, splitWords(s).length, `${f} ${r.id}: splitWords disagrees`);
      max = Math.max(max, ids.length);
    }
  }
  assert.ok(max <= MAX_WORLD_TOKENS, `longest example ${max} tokens`);
  console.log(`vocabulary ${Object.keys(vocab).length} tokens; longest example ${max} tokens`);
  for (const s of new Set(worldStrings(w))) assert.equal(tok.decode(tok.encode(s).ids), s);
});

Deno.test("the chat template renders the training format", () => {
  const { tokenizerConfig } = buildWorldTokenizer(generateWorld({ seed: 0, sizes: SMALL }));
  const cfg = tokenizerConfig as Record<string, string>;
  const t = new Template(cfg.chat_template);
  const render = (messages: { role: string; content: string }[], add: boolean) =>
    t.render({
      messages,
      add_generation_prompt: add,
      bos_token: cfg.bos_token,
      eos_token: cfg.eos_token,
    });
  assert.equal(
    render([{ role: "user", content: "what is 2 plus 3 ?" }], true),
    worldText("what is 2 plus 3 ?"),
  );
  assert.equal(
    render([{ role: "user", content: "sort cup , hat ." }, {
      role: "assistant",
      content: "cup , hat .",
    }], false),
    worldText("sort cup , hat .", "cup , hat ."),
  );
  assert.equal(worldText("hi ."), "<bos> user : hi . bot :");
});

const DIR = fileURLToPath(new URL("../datasets/safetyworld/", import.meta.url));
const committed = (() => {
  try {
    return Deno.statSync(`${DIR}/prompts.jsonl`).isFile;
  } catch {
    return false;
  }
})();
if (!committed) console.log(`skipping committed-file tests: ${DIR} has no SafetyWorld files`);

Deno.test({
  name: "committed files equal a fresh seed-0 generation (a prefix of the default world)",
  ignore: !committed,
  fn: async () => {
    const sizes = {} as WorldSizes;
    const files: Record<string, string> = {};
    for (const f of WORLD_FILES) {
      files[f] = await Deno.readTextFile(`${DIR}/${f}.jsonl`);
      sizes[f] = files[f].split("\n").length - 1;
    }
    assert.deepEqual(sizes, COMMITTED_SIZES);
    const fresh = serializeWorld(generateWorld({ seed: 0, sizes }));
    for (const f of WORLD_FILES) {
      assert.ok(files[f] === fresh[`${f}.jsonl`], `${f}.jsonl is stale: rerun world_gen`);
    }
    const { tokenizerJson, tokenizerConfig } = buildWorldTokenizer(world());
    assert.equal(
      await Deno.readTextFile(`${DIR}/tokenizer.json`),
      JSON.stringify(tokenizerJson, null, 2) + "\n",
    );
    assert.equal(
      await Deno.readTextFile(`${DIR}/tokenizer_config.json`),
      JSON.stringify(tokenizerConfig, null, 2) + "\n",
    );
    const total = Object.values(files).reduce((s, t) => s + new TextEncoder().encode(t).length, 0);
    assert.ok(total < 6.5e6, `committed JSONL is ${total} bytes`);
  },
});

Deno.test({
  name: "loadSafetyWorld returns an arquero table, filtered by split",
  ignore: !committed,
  fn: async () => {
    const all = await loadSafetyWorld("prompts");
    assert.equal(all.numRows(), COMMITTED_SIZES.prompts);
    const test = await loadSafetyWorld("traces", { split: "test" });
    assert.ok(test.numRows() > 0);
    assert.deepEqual([...new Set(test.array("split"))], ["test"]);
    assert.ok(test.columnNames().includes("traceLabel"));
    assert.ok(all.columnNames().includes("family"), "a column only some rows have is kept");
  },
});

Deno.test("a malformed line is reported as file:line with the fix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = '{"id":"p1","prompt":"hi","label":"benign","split":"train"}';
    await Deno.writeTextFile(`${dir}/prompts.jsonl`, `${good}\n{"id": oops\n`);
    await assert.rejects(
      () => loadSafetyWorld("prompts", { dir }),
      /prompts\.jsonl:2: not valid JSON/,
    );
    await Deno.writeTextFile(`${dir}/sft.jsonl`, `${good}\n${good.replace("train", "dev")}\n`);
    await assert.rejects(
      () => loadSafetyWorld("sft", { dir }),
      /sft\.jsonl:2: field "split" is "dev"/,
    );
    await assert.rejects(() => loadSafetyWorld("traits", { dir }), /world_gen\.ts/);
    assert.throws(() => parseWorldJsonl('{"id":"x"}', "f.jsonl"), /f\.jsonl:1: field "prompt"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
