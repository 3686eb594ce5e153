/**
 * The persistence table across several model variants (tiny SafetyWorld-shaped models,
 * quick sizes): the same rows for every model in model order, per-model answer lengths,
 * the grouped-bar figure (one trace per headline measurement, one bar per model, intervals
 * that hold the rate) and the one-row-per-model summary; and the monitor measurement
 * (fitMonitorCompass -> calibrateMonitor -> measureMonitor) on a tiny model: its transfer
 * row agrees with its per-kind flag rows.
 *
 * @module
 */

import assert from "node:assert/strict";
import { useTestBackend } from "./_helpers.ts";
import { smallWorld, tinyWorldModel } from "./_tiny_world.ts";
import { persistenceTable } from "../lib/experiments/persistence.ts";
import {
  persistenceMeasures,
  persistenceSummary,
  plotPersistence,
} from "../lib/experiments/persistence_summary.ts";
import { fitMonitorCompass, measureMonitor } from "../lib/experiments/monitor_eval.ts";
import { calibrateMonitor } from "../lib/compass/calibrate.ts";

Deno.env.set("SAFETY_COMPASS_QUIET", "1");
await useTestBackend();
const world = smallWorld();

Deno.test("persistenceTable across three variants: same rows per model, figure and summary", async () => {
  const models = {
    base: await tinyWorldModel(world, 11),
    shallow: await tinyWorldModel(world, 12),
    "rl/zero": await tinyWorldModel(world, 13),
  };
  try {
    const logs: string[] = [];
    const rows = await persistenceTable(models, world, {
      n: 2,
      attackSizes: [2, 3],
      attack: { epochs: 1 },
      maxNewTokens: { base: 3, shallow: 3, "rl/zero": 5 },
      reps: 30,
      log: (s) => logs.push(s),
    });
    const names = Object.keys(models);
    for (const m of names) assert.ok(logs.includes(`${m}: helpful steering measured`), m);
    assert.deepEqual([...new Set(rows.map((r) => r.model))], names, "model order kept");
    const shape = (m: string) =>
      rows.filter((r) => r.model === m).map((r) => `${r.test}/${r.metric}`);
    assert.equal(shape("base").length, 3 + 2 * 2 + 2 + 3);
    for (const m of names) assert.deepEqual(shape(m), shape("base"));
    for (const r of rows) assert.ok(r.lo <= r.rate + 1e-12 && r.rate <= r.hi + 1e-12);
    assert.deepEqual(persistenceMeasures(rows).map((m) => m.label), [
      "refusal, no attack",
      "refusal after harmful FT N=2",
      "refusal after harmful FT N=3",
      "persona compliance",
      "helpful steering followed",
      "over-refusal",
    ]);
    const fig = plotPersistence(rows);
    assert.equal(fig.data.length, 6, "one trace per measurement");
    for (const t of fig.data) {
      assert.deepEqual(t.x, names, `${t.name}: one bar per model`);
      const ys = t.y as number[];
      const err = t.error_y as { array: number[]; arrayminus: number[] };
      ys.forEach((y, i) =>
        assert.ok(err.array[i] >= -1e-12 && err.arrayminus[i] >= -1e-12, `${y}`)
      );
    }
    const only = plotPersistence(rows, { measures: ["over-refusal"] });
    assert.equal(only.data.length, 1);
    assert.throws(() => plotPersistence([]), /no headline rows/);
    const summary = persistenceSummary(rows);
    assert.deepEqual(summary.map((r) => r.model), names);
    assert.match(summary[2]["refusal after harmful FT N=3"], /^\d+% \[\d+, \d+\]$/);
  } finally {
    for (const m of Object.values(models)) m.dispose();
  }
});

Deno.test("monitor measurement on a tiny model: calibration, transfer row = task + borderline flags", async () => {
  const m = await tinyWorldModel(world, 14);
  try {
    const mc = await fitMonitorCompass(m, world, { fitRows: 20, valRows: 10, seed: 1 });
    assert.equal(mc.sweep.filter((s) => s.chosen).length, 1);
    assert.equal(mc.direction.length, m.config.dModel);
    const calib = world.prompts.filter((p) => p.split === "train" && p.kind === "task").slice(
      0,
      10,
    );
    const cal = await calibrateMonitor(m, mc.compass, calib, {
      fpr: 0.2,
      window: 2,
      generate: { maxNewTokens: 4 },
    });
    assert.ok(cal.rate <= 0.2 + 1e-12);
    const me = await measureMonitor(m, "tiny", world, {
      compass: mc.compass,
      threshold: cal,
      direction: mc.direction,
    }, { n: 2, maxNewTokens: 4, auditRows: 1 });
    const flags = Object.fromEntries(me.flags.map((r) => [r.prompts, r]));
    const k = (kind: string) => (flags[kind].rate as number) * (flags[kind].n as number);
    assert.equal(me.transfer.n, 4);
    assert.equal(me.transfer.flagged, Math.round(k("task") + k("borderline")));
    assert.equal(me.trails.length, 3 * 5, "one trail per action and prompt kind");
    assert.ok(me.actions.every((r) => r.model === "tiny"));
    assert.equal(me.early.length, 10);
  } finally {
    m.dispose();
  }
});
