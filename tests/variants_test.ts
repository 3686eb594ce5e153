/**
 * Tests of saved model variants (lib/model/variants.ts) and the command lines that make and
 * read them: labelled-argument parsing and slugs; `saveVariant` writes a folder `loadModel`
 * opens again (same weights, same logits) with `variant.json` (experiment, condition, seed,
 * steps, fingerprints); discovery under a runs folder (labels, duplicates, unfinished
 * `*.tmp` folders skipped, plain model folders); `resolveVariants` mixing labels, bare
 * folders and runs folders, with clear errors; `--save-models` in `compareDefences` (tiny
 * models) and in an RL experiment (the shipped checkpoint, when present) saves the first
 * seed only, loadable, with its record; the persistence and experiments CLIs' parsers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { useTestBackend } from "./_helpers.ts";
import { smallWorld, tinyWorldModel } from "./_tiny_world.ts";
import { loadModel } from "../lib/model/load.ts";
import type { Model } from "../lib/model/model.ts";
import {
  discoverVariants,
  parseVariantArg,
  readVariantRecord,
  resolveVariants,
  saveVariant,
  VARIANT_FILE,
  variantSlug,
  weightsFingerprint,
} from "../lib/model/variants.ts";
import { compareDefences } from "../lib/experiments/defences.ts";
import { runTraitsExperiment } from "../lib/experiments/traits.ts";
import { parsePersistenceArgs, persistenceModels } from "../lib/cli/persistence.ts";
import { parseExperimentArgs } from "../lib/cli/experiments.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();
const world = smallWorld();

const info = (condition: string, seed = 0) => ({
  experiment: "craft",
  condition,
  seed,
  stages: [{ name: "sft", steps: 3 }, { name: "grpo", steps: 5 }],
  start: "toy-base",
  startWeights: "0123abcd",
  maxNewTokens: 64,
});

async function sameLogits(a: Model, b: Model): Promise<number> {
  const ids = [a.tokenizer.encode("how do i make zorblat ?")];
  const fa = a.forward(ids), fb = b.forward(ids);
  const [x, y] = [await fa.logits!.data(), await fb.logits!.data()];
  fa.logits!.dispose();
  fb.logits!.dispose();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

Deno.test("parseVariantArg and variantSlug", () => {
  assert.deepEqual(parseVariantArg("aa=runs/x/models/zero"), {
    name: "aa",
    path: "runs/x/models/zero",
  });
  assert.deepEqual(parseVariantArg("runs/x/models/zero"), { path: "runs/x/models/zero" });
  assert.deepEqual(parseVariantArg("a b=p=q"), { name: "a b", path: "p=q" }, "first = splits");
  assert.throws(() => parseVariantArg("=runs/x"), /both non-empty/);
  assert.throws(() => parseVariantArg("name="), /both non-empty/);
  assert.throws(() => parseVariantArg(""), /empty variant/);
  assert.equal(variantSlug("latent+text per-token"), "latent-text-per-token");
  assert.equal(variantSlug("dose: math"), "dose-math");
  assert.equal(variantSlug("baseline (no trait data)"), "baseline-no-trait-data");
  assert.equal(variantSlug("recovery-sft"), "recovery-sft");
  assert.throws(() => variantSlug("(+)"), /no letters/);
});

Deno.test("saveVariant: loadModel round trip (weights, logits) and the JSON record", async () => {
  const dir = await Deno.makeTempDir();
  const m = await tinyWorldModel(world, 4);
  try {
    const rec = await saveVariant(m, join(dir, "models", "text-only"), info("text only"));
    assert.equal(rec.steps, 8, "steps = sum of the stages");
    assert.equal(rec.weights, await weightsFingerprint(m));
    const onDisk = await readVariantRecord(join(dir, "models", "text-only"));
    assert.deepEqual(onDisk, rec);
    assert.deepEqual(
      [onDisk!.experiment, onDisk!.condition, onDisk!.seed, onDisk!.start, onDisk!.startWeights],
      ["craft", "text only", 0, "toy-base", "0123abcd"],
    );
    const back = await loadModel(join(dir, "models", "text-only"));
    try {
      assert.equal(await weightsFingerprint(back), rec.weights, "same weights, bit for bit");
      const d = await sameLogits(m, back);
      console.log(`round-trip logits max |diff| ${d} (tolerance 0)`);
      assert.equal(d, 0);
    } finally {
      back.dispose();
    }
    // Overwriting replaces the folder atomically; no temporary folders stay behind.
    await saveVariant(m, join(dir, "models", "text-only"), info("text only", 1));
    assert.equal((await readVariantRecord(join(dir, "models", "text-only")))!.seed, 1);
    const left = [];
    for await (const e of Deno.readDir(join(dir, "models"))) left.push(e.name);
    assert.deepEqual(left, ["text-only"]);
    assert.equal(await readVariantRecord(dir), undefined, "no record: undefined");
    await Deno.writeTextFile(join(dir, VARIANT_FILE), '{"format": "other"}');
    await assert.rejects(() => readVariantRecord(dir), /expected 'safety-compass.variant'/);
  } finally {
    m.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("discoverVariants and resolveVariants: labels, duplicates, plain folders, errors", async () => {
  const root = await Deno.makeTempDir();
  const m = await tinyWorldModel(world, 5);
  try {
    await saveVariant(m, join(root, "craft-a", "models", "text-only"), info("text only"));
    await saveVariant(m, join(root, "craft-b", "models", "text-only"), info("text only"));
    await saveVariant(m, join(root, "craft-b", "models", "latent-only"), info("latent only"));
    await m.save(join(root, "sft-c", "models", "plain")); // no variant.json
    await Deno.mkdir(join(root, "sft-c", "models", "half.123.tmp"), { recursive: true });
    await Deno.writeTextFile(join(root, "sft-c", "models", "half.123.tmp", "config.json"), "{}");
    await Deno.mkdir(join(root, "notes"), { recursive: true });
    const found = await discoverVariants(root);
    assert.deepEqual(found.map((v) => v.name), [
      "craft/text-only@craft-a",
      "craft/latent-only",
      "craft/text-only@craft-b",
      "plain",
    ]);
    assert.equal(found[3].record, undefined);
    assert.equal(found[1].record?.condition, "latent only");
    // A run folder itself is a root too.
    assert.deepEqual((await discoverVariants(join(root, "craft-b"))).map((v) => v.name), [
      "craft/latent-only",
      "craft/text-only",
    ]);
    const mixed = await resolveVariants(
      [
        `mine=${join(root, "craft-a", "models", "text-only")}`,
        join(root, "sft-c", "models", "plain"),
      ],
      [join(root, "craft-b")],
    );
    assert.deepEqual(mixed.map((v) => v.name), [
      "craft/latent-only",
      "craft/text-only",
      "mine",
      "plain",
    ]);
    assert.equal(mixed[2].record?.experiment, "craft");
    // A runs folder as a positional argument is discovered too.
    assert.equal((await resolveVariants([root])).length, 4);
    await assert.rejects(
      () =>
        resolveVariants([join(root, "craft-a", "models", "text-only")], [join(root, "craft-b")]),
      /Two variants are labelled 'craft\/text-only'/,
    );
    await assert.rejects(
      () => resolveVariants([], [join(root, "notes")]),
      /Cannot find saved variants/,
    );
    await assert.rejects(() => resolveVariants([join(root, "notes")]), /holds no saved variants/);
    await assert.rejects(() => resolveVariants([`x=${root}`]), /holds 4 variants/);
    // The persistence CLI puts the shipped models first and refuses their labels.
    const args = parsePersistenceArgs(["--variants", join(root, "craft-b"), "--quick"]);
    assert.deepEqual((await persistenceModels(args)).map((v) => v.name), [
      "toy-base",
      "toy-shallow",
      "craft/latent-only",
      "craft/text-only",
    ]);
    const clash = parsePersistenceArgs([`toy-base=${join(root, "sft-c", "models", "plain")}`]);
    await assert.rejects(() => persistenceModels(clash), /taken by a shipped model/);
  } finally {
    m.dispose();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("parsePersistenceArgs: defaults, quick sizes, flags, variants and errors", () => {
  const d = parsePersistenceArgs([]);
  assert.deepEqual(
    [d.n, d.window, d.fpr, d.attackSizes, d.monitor, d.quick, d.out],
    [60, 4, 0.05, [10, 100], true, false, "runs"],
  );
  const q = parsePersistenceArgs(["--quick", "aa=runs/a/models/zero", "runs/b/models/x"]);
  assert.deepEqual([q.n, q.attackSizes, q.variants], [16, [10], [
    "aa=runs/a/models/zero",
    "runs/b/models/x",
  ]]);
  assert.equal(parsePersistenceArgs([], "1").quick, true);
  const f = parsePersistenceArgs([
    "--n",
    "30",
    "--fpr",
    "0.1",
    "--attack-sizes",
    "5,50",
    "--variants",
    "runs",
    "--variants",
    "old",
    "--no-monitor",
    "--strength",
    "-0.5",
  ]);
  assert.deepEqual([f.n, f.fpr, f.attackSizes, f.roots, f.monitor, f.strength], [
    30,
    0.1,
    [5, 50],
    ["runs", "old"],
    false,
    -0.5,
  ]);
  assert.throws(() => parsePersistenceArgs(["--fpr", "2"]), /--fpr 2: expected a number >= 0/);
  assert.throws(() => parsePersistenceArgs(["--n", "2.5"]), /expected an integer/);
  assert.throws(() => parsePersistenceArgs(["--attack-sizes", "10,x"]), /positive integers/);
  assert.throws(() => parsePersistenceArgs(["--variants"]), /needs a value/);
  assert.throws(() => parsePersistenceArgs(["--bogus"]), /unknown flag '--bogus'/);
});

Deno.test("parseExperimentArgs: --save-models", () => {
  assert.equal(parseExperimentArgs(["craft"]).saveModels, false);
  assert.equal(parseExperimentArgs(["craft", "--save-models"]).saveModels, true);
});

Deno.test("compareDefences saveModels: the first seed of each variant, loadable, with its record", async () => {
  const dir = await Deno.makeTempDir();
  const base = await tinyWorldModel(world, 6, "tiny-base");
  const shallow = await tinyWorldModel(world, 7, "tiny-shallow");
  try {
    await compareDefences(base, shallow, world, {
      seeds: [3, 4],
      steps: 1,
      batchSize: 4,
      perKind: 2,
      maxNewTokens: 4,
      depths: [0, 1],
      positions: [0],
      klPositions: 2,
      variants: ["recovery-sft", "benign-tokenwise"],
      saveModels: join(dir, "models"),
    });
    const found = await discoverVariants(dir);
    assert.deepEqual(found.map((v) => v.name), [
      "defences/benign-tokenwise",
      "defences/recovery-sft",
    ]);
    const startWeights = await weightsFingerprint(shallow);
    for (const v of found) {
      const r = v.record!;
      assert.deepEqual([r.seed, r.steps, r.startWeights, r.maxNewTokens], [3, 1, startWeights, 4]);
      assert.equal(r.stages[0].name, r.condition === "benign-tokenwise" ? "tokenwise" : "sft");
      const back = await loadModel(v.path);
      try {
        assert.equal(await weightsFingerprint(back), r.weights);
        assert.notEqual(r.weights, startWeights, "trained");
      } finally {
        back.dispose();
      }
    }
  } finally {
    base.dispose();
    shallow.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

const hasToy = await Deno.stat(
  new URL("../datasets/checkpoints/toy-base/config.json", import.meta.url),
).then(() => true, () => false);

Deno.test({
  name: "an RL experiment with saveModels writes the first seed's model of every condition",
  ignore: !hasToy,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const r = await runTraitsExperiment({
        world,
        seeds: [5, 6],
        domains: ["math"],
        steps: 1,
        promptsPerStep: 2,
        groupSize: 2,
        maxNewTokens: 6,
        evalPerKind: 2,
        ci: { reps: 20 },
        log: () => {},
        saveModels: join(dir, "models"),
      });
      const found = await discoverVariants(dir);
      assert.deepEqual(found.map((v) => v.name), [
        "traits/baseline-no-trait-data",
        "traits/dose-math",
      ]);
      for (const v of found) {
        const rec = v.record!;
        assert.deepEqual([rec.experiment, rec.seed, rec.steps, rec.start], [
          "traits",
          5,
          1,
          "toy-base",
        ]);
        assert.equal(rec.startWeights, r.config.startWeights);
        const back = await loadModel(v.path);
        try {
          assert.equal(await weightsFingerprint(back), rec.weights);
        } finally {
          back.dispose();
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
