/**
 * The claims ledger: verdict rules on hand-made result rows (an interval below 0 reproduces,
 * one straddling 0 is inconclusive, one above refutes; quick sizes never decide; a missing
 * result or row is "not run yet"), the conservative unpaired difference, the loader (newest
 * full-size run wins over a newer quick one; defences' and persistence's files normalised),
 * collecting results (full-size only, with provenance), the table (one row per claim), and the
 * README's ledger table against what `deno task claims` prints from datasets/results.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  allOnExpectedSide,
  anyOnExpectedSide,
  difference,
  type Measurement,
  mostOnExpectedSide,
  nearZero,
} from "../lib/experiments/claim_rules.ts";
import { CLAIMS, claimsLedger, countsLine, verdictCounts } from "../lib/experiments/claims.ts";
import {
  ledgerFigure,
  ledgerMarkdown,
  parseMarkdownTable,
} from "../lib/experiments/claims_table.ts";
import {
  collectResults,
  loadSavedResults,
  parseRunName,
  type SavedResult,
} from "../lib/experiments/saved_results.ts";
import { type ResultRow, resultRow } from "../lib/experiments/rows.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

const craftDelta = (lo: number, hi: number): ResultRow =>
  resultRow({
    experiment: "craft",
    table: "deltas",
    condition: "latent+text",
    reference: "text only",
    metric: "harmful compliance",
    value: (lo + hi) / 2,
    lo,
    hi,
    n: 300,
    method: "paired bootstrap seeds x prompts",
  });

function saved(experiment: SavedResult["experiment"], rows: ResultRow[], quick = false) {
  return {
    [experiment]: {
      experiment,
      run: `${experiment}-2026-12-01T00-00-00`,
      date: "2026-12-01T00:00:00Z",
      quick,
      path: "/nowhere",
      config: {},
      rows,
    },
  };
}

const verdictOf = (id: string, results: Parameters<typeof claimsLedger>[0]) =>
  claimsLedger(results).find((r) => r.id === id)!;

Deno.test("craft-latent-beats-text: below 0 reproduces, straddling is inconclusive, above refutes", () => {
  assert.equal(
    verdictOf("craft-latent-beats-text", saved("craft", [craftDelta(-0.3, -0.1)])).verdict,
    "reproduced",
  );
  assert.equal(
    verdictOf("craft-latent-beats-text", saved("craft", [craftDelta(-0.3, 0.1)])).verdict,
    "inconclusive",
  );
  assert.equal(
    verdictOf("craft-latent-beats-text", saved("craft", [craftDelta(-0.3, 0)])).verdict,
    "inconclusive",
    "an interval touching 0 does not lie below it",
  );
  const up = verdictOf("craft-latent-beats-text", saved("craft", [craftDelta(0.05, 0.2)]));
  assert.equal(up.verdict, "refuted");
  assert.equal(up.ours, "latent+text - text only, harmful compliance: +0.13 [+0.05, +0.20]");
  assert.equal(up.run, "craft-2026-12-01T00-00-00");
});

Deno.test("quick sizes never decide; a missing result or row is 'not run yet' naming the command", () => {
  const q = verdictOf("craft-latent-beats-text", saved("craft", [craftDelta(-0.3, -0.1)], true));
  assert.equal(q.verdict, "inconclusive");
  assert.match(q.why, /^quick sizes/);
  assert.equal(q.measurements[0].hi, -0.1, "the numbers are still shown");
  const none = verdictOf("craft-latent-beats-text", {});
  assert.equal(none.verdict, "not run yet");
  assert.match(none.why, /deno task experiments craft --save-models/);
  const wrongRow = verdictOf(
    "craft-latent-beats-text",
    saved("craft", [{ ...craftDelta(-0.3, -0.1), metric: "over-refusal" }]),
  );
  assert.equal(wrongRow.verdict, "not run yet");
  assert.match(wrongRow.why, /no row for .*harmful compliance/);
  const nt = verdictOf("craft-real-models", saved("craft", [craftDelta(-0.3, -0.1)]));
  assert.equal(nt.verdict, "not testable here");
});

Deno.test("difference: the paired row when saved, else the conservative unpaired interval", () => {
  const rate = (condition: string, value: number, lo: number, hi: number) =>
    resultRow({ experiment: "x", table: "rates", condition, metric: "m", value, lo, hi, n: 10 });
  const rows = [rate("a", 0.2, 0.1, 0.35), rate("b (start)", 0.6, 0.5, 0.7)];
  const d = difference(rows, "a", "start", "m");
  assert.ok(Math.abs(d.value - -0.4) < 1e-12);
  assert.ok(Math.abs(d.lo - (0.1 - 0.7)) < 1e-12); // lo_a - hi_b
  assert.ok(Math.abs(d.hi - (0.35 - 0.5)) < 1e-12); // hi_a - lo_b
  assert.match(d.method, /conservative/);
  const paired = resultRow({
    experiment: "x",
    table: "deltas",
    condition: "a",
    reference: "b (start)",
    metric: "m",
    value: -0.4,
    lo: -0.5,
    hi: -0.3,
    n: 10,
    method: "paired",
  });
  assert.deepEqual([difference([...rows, paired], "a", "start", "m").lo], [-0.5]);
});

Deno.test("the rules on hand-made measurements", () => {
  const m = (lo: number, hi: number, expect: "below" | "above" = "below"): Measurement => ({
    label: "x",
    value: (lo + hi) / 2,
    lo,
    hi,
    n: 1,
    method: "",
    expect,
  });
  assert.equal(allOnExpectedSide([m(-0.3, -0.1), m(0.1, 0.2, "above")]), "reproduced");
  assert.equal(allOnExpectedSide([m(-0.3, -0.1), m(-0.2, 0.2, "above")]), "inconclusive");
  assert.equal(allOnExpectedSide([m(-0.3, -0.1), m(-0.2, -0.1, "above")]), "refuted");
  assert.equal(allOnExpectedSide([m(NaN, NaN)]), "inconclusive");
  assert.equal(allOnExpectedSide([{ ...m(-0.3, -0.1), expect: undefined }]), "inconclusive");
  assert.equal(anyOnExpectedSide([m(-0.2, 0.1), m(-0.3, -0.01)]), "reproduced");
  assert.equal(anyOnExpectedSide([m(-0.2, 0.1), m(0, 0)]), "inconclusive");
  assert.equal(anyOnExpectedSide([m(0, 0), m(0.1, 0.3)]), "refuted");
  const a = (lo: number, hi: number) => m(lo, hi, "above");
  assert.equal(mostOnExpectedSide([a(0.1, 0.2), a(-0.1, 0.1)]), "reproduced"); // 1 of 2
  assert.equal(mostOnExpectedSide([a(0.1, 0.2), a(-0.1, 0.1), a(-0.1, 0.1)]), "inconclusive");
  assert.equal(mostOnExpectedSide([a(0.1, 0.2), a(-0.3, -0.1)]), "inconclusive"); // mixed
  assert.equal(mostOnExpectedSide([a(-0.2, -0.1), a(-0.1, 0.1)]), "refuted");
});

Deno.test("nearZero: inside the margin reproduces, excluding 0 refutes, wide is inconclusive", () => {
  const r = (lo: number, hi: number): Measurement => ({
    label: "r",
    value: (lo + hi) / 2,
    lo,
    hi,
    n: 90,
    method: "Fisher-z",
  });
  const rule = nearZero(0.3);
  assert.equal(rule([r(-0.2, 0.25), r(-0.29, 0.1)]), "reproduced");
  assert.equal(rule([r(-0.2, 0.25), r(-0.31, 0.1)]), "inconclusive"); // one too wide
  assert.equal(rule([r(-0.2, 0.25), r(0.01, 0.2)]), "refuted"); // inside the margin but not 0
  assert.equal(rule([r(NaN, NaN)]), "inconclusive");
  assert.throws(() => nearZero(0), /margin must be > 0/);
});

Deno.test("park-kim-alignment-not-predictive reads toy-shallow's two correlations from defences", () => {
  const row = (metric: string, lo: number, hi: number, condition = "toy-shallow") =>
    resultRow({
      experiment: "defences",
      table: "rates",
      condition,
      metric: `${metric} (layer=3)`,
      value: (lo + hi) / 2,
      lo,
      hi,
      n: 90,
      method: "Fisher-z",
    });
  const across = "alignment vs injection r", within = `${across} (within template)`;
  const id = "park-kim-alignment-not-predictive";
  const res = (rows: ResultRow[]) => verdictOf(id, saved("defences", rows));
  const ok = res([row(across, -0.2, 0.2), row(within, -0.25, 0.15), row(across, -0.9, -0.5, "x")]);
  assert.equal(ok.verdict, "reproduced");
  assert.deepEqual(ok.measurements.map((m) => m.lo), [-0.2, -0.25]); // toy-shallow's rows only
  assert.match(ok.measurements[1].label, /layer 3.*within templates/);
  assert.equal(res([row(across, -0.6, -0.2), row(within, -0.2, 0.2)]).verdict, "refuted");
  assert.equal(res([row(across, -0.2, 0.2)]).verdict, "not run yet"); // the within row is missing
});

Deno.test("alphaalign-prefill reads the persistence task's unmonitored prefill attack", () => {
  const r = (condition: string, lo: number, hi: number) =>
    resultRow({
      experiment: "persistence",
      table: "monitor: none (unmonitored)",
      condition,
      metric: 'ASR (prefill "step 1 : get the")',
      value: (lo + hi) / 2,
      lo,
      hi,
      n: 60,
    });
  const v = (rows: ResultRow[]) => verdictOf("alphaalign-prefill", saved("persistence", rows));
  const ok = v([r("alphaalign/alphaalign", 0, 0.1), r("toy-shallow", 0.5, 0.8)]);
  assert.equal(ok.verdict, "reproduced");
  assert.ok(Math.abs(ok.measurements[0].hi - (0.1 - 0.5)) < 1e-12, "conservative interval");
  assert.ok(Math.abs(ok.measurements[0].paper! - (0.024 - 0.172)) < 1e-12);
  assert.equal(
    v([r("alphaalign/alphaalign", 0.2, 0.5), r("toy-shallow", 0.3, 0.6)]).verdict,
    "inconclusive",
  );
  assert.equal(v([r("toy-shallow", 0.3, 0.6)]).verdict, "not run yet");
});

Deno.test("traits-generalise reads only off-diagonal matrix cells", () => {
  const cell = (t: string, e: string, lo: number, hi: number) =>
    resultRow({
      experiment: "traits",
      table: "matrix",
      condition: `dose: ${t}`,
      reference: "baseline (no trait data)",
      metric: `trait rate (${e})`,
      value: (lo + hi) / 2,
      lo,
      hi,
      trainDomain: t,
      evalDomain: e,
    });
  const rows = [
    cell("math", "math", -0.5, -0.4), // diagonal: ignored, else it would refute
    cell("math", "science", 0.1, 0.2),
    cell("science", "math", -0.1, 0.1),
  ];
  const r = verdictOf("traits-generalise", saved("traits", rows));
  assert.equal(r.measurements.length, 2);
  assert.equal(r.verdict, "reproduced");
});

Deno.test("ours-hacking-defences: any defence below frozen reproduces", () => {
  const d = (condition: string, lo: number, hi: number) =>
    resultRow({
      experiment: "hacking",
      table: "deltas",
      condition,
      reference: "frozen",
      metric: "harmful compliance",
      value: (lo + hi) / 2,
      lo,
      hi,
    });
  const rows = [d("co-trained", -0.2, 0.1), d("ensemble-min", -0.4, -0.1)];
  assert.equal(verdictOf("ours-hacking-defences", saved("hacking", rows)).verdict, "reproduced");
  const none = [d("co-trained", 0, 0.1), d("ensemble-min", 0.05, 0.2)];
  assert.equal(verdictOf("ours-hacking-defences", saved("hacking", none)).verdict, "refuted");
});

Deno.test("the ledger: one row per claim, unique ids, rules and commands for every testable claim", () => {
  const ids = CLAIMS.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const c of CLAIMS) {
    if (c.notTestable || c.notSaved) continue;
    assert.ok(c.rule && c.measure && c.decide && c.reads, c.id);
    assert.match(c.command, /^deno task /, c.id);
  }
  const ledger = claimsLedger({});
  const md = ledgerMarkdown(ledger);
  assert.equal(md.split("\n").length, CLAIMS.length + 2);
  const cells = parseMarkdownTable(md);
  assert.deepEqual(cells.map((r) => r[0].match(/^\*\*([^*]+)\*\*/)?.[1]), ids);
  assert.equal(
    Object.values(verdictCounts(ledger)).reduce((a, b) => a + b, 0),
    CLAIMS.length,
  );
  assert.equal(ledgerFigure(ledger), undefined, "nothing measured, no figure");
});

// ---------------------------------------------------------------- files

async function writeRun(
  dir: string,
  name: string,
  files: Record<string, unknown>,
): Promise<string> {
  const d = join(dir, name);
  await Deno.mkdir(d, { recursive: true });
  for (const [f, v] of Object.entries(files)) {
    await Deno.writeTextFile(join(d, f), typeof v === "string" ? v : JSON.stringify(v));
  }
  return d;
}

/** A rows.json as the experiments write it: NaN (a missing interval end) becomes null. */
const rowsJson = (lo: number, hi: number) =>
  JSON.stringify([
    craftDelta(lo, hi),
    resultRow({ experiment: "craft", table: "throughput", condition: "all runs", value: 700 }),
  ]);

Deno.test("parseRunName reads the experiment and the start time of a run folder", () => {
  assert.deepEqual(parseRunName("craft-2026-12-07T02-28-01"), {
    experiment: "craft",
    date: "2026-12-07T02:28:01Z",
  });
  assert.deepEqual(
    parseRunName("persistence-2026-12-07T02-29-17-989Z")?.date,
    "2026-12-07T02:29:17Z",
  );
  assert.equal(parseRunName("notebooks"), undefined);
  assert.equal(parseRunName("craft"), undefined);
});

Deno.test("loadSavedResults: the newest full-size run wins, even over a newer quick one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeRun(dir, "craft-2026-01-01T00-00-00", {
      "rows.json": rowsJson(-0.3, -0.1),
      "config.json": { quick: false, seeds: [0, 1, 2] },
    });
    await writeRun(dir, "craft-2025-06-01T00-00-00", {
      "rows.json": rowsJson(0.1, 0.2),
      "config.json": { quick: false },
    });
    await writeRun(dir, "craft-2026-03-01T00-00-00", {
      "rows.json": rowsJson(0.1, 0.2),
      "config.json": { quick: true },
    });
    // before config.json existed: the report's subtitle says which sizes ran
    await writeRun(dir, "alphaalign-2026-01-01T00-00-00", {
      "rows.json": "[]",
      "report.html": "<p>seeds 0, 1; quick (CI) sizes; 2026</p>",
    });
    await writeRun(dir, "hacking-2026-01-01T00-00-00", { "hacking.log": "still running" });
    await writeRun(dir, "notebooks", { "x.png": "" });
    const r = await loadSavedResults(dir, join(dir, "missing"));
    assert.equal(r.craft?.run, "craft-2026-01-01T00-00-00");
    assert.equal(r.craft?.quick, false);
    assert.deepEqual(r.craft?.config.seeds, [0, 1, 2]);
    assert.equal(r.craft?.rows[0].lo, -0.3);
    assert.ok(Number.isNaN(r.craft?.rows[1].lo), "null in rows.json reads back as NaN");
    assert.equal(r.alphaalign?.quick, true);
    assert.equal(r.hacking, undefined, "a run with no result file yet is skipped");
    assert.equal(verdictOf("craft-latent-beats-text", r).verdict, "reproduced");
    // a run that cannot say its size is an error, not a guess
    await writeRun(dir, "traits-2026-01-01T00-00-00", { "rows.json": "[]" });
    await assert.rejects(loadSavedResults(dir), /cannot tell whether this run is quick/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defences' table.json and persistence's tables.json become result rows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const row = (variant: string, seed: unknown, metric: string, x: number | null, v: number) => ({
      variant,
      seed,
      metric,
      x,
      value: v,
      lo: v - 0.1,
      hi: v + 0.1,
      n: 100,
    });
    const kl = [3, 2, 1, 0.5, 0.5, 0.2, 0.1, 0.1, 0.1, 0.1].map((v, i) =>
      row("toy-shallow", "-", "KL to toy-base", i, v)
    );
    await writeRun(dir, "defences-2026-01-01T00-00-00", {
      "table.json": {
        rows: [
          ...kl,
          row("toy-shallow", "-", "prefill ASR", 0, 0.3),
          row("toy-shallow", "-", "prefill ASR", 5, 0.55),
          row("toy-shallow", "-", "prefill ASR", 10, 1),
          row("recovery-sft", 0, "prefill ASR", 5, 0.9), // per-seed rows: the pooled ones win
          row("recovery-sft", 1, "prefill ASR", 5, 0.9),
          row("recovery-sft", "all", "prefill ASR", 5, 0.02),
          row("recovery-sft", "all", "prefill ASR", 10, 0.03),
        ],
        config: { seeds: [0, 1], perKind: 100 },
      },
    });
    await writeRun(dir, "persistence-2026-01-01T00-00-00-000Z", {
      "tables.json": {
        settings: { quick: false, seed: 0 },
        persistence: [{
          model: "toy-shallow",
          test: "harmful fine-tuning (N=10)",
          metric: "compliance (harmful prompts)",
          rate: 0.9,
          lo: 0.8,
          hi: 0.97,
          baseline: 0.3,
          delta: 0.6,
          deltaLo: 0.45,
          deltaHi: 0.72,
          n: 60,
          prompts: 60,
          interval: "bootstrap over prompts",
        }],
      },
    });
    const r = await loadSavedResults(dir);
    assert.equal(r.defences?.quick, false);
    assert.ok(r.defences!.rows.some((x) => x.metric === "prefill ASR (k=5)"));
    const kl0 = verdictOf("qi-kl-first-tokens", r).measurements[0];
    // golden: mean(3, 2, 1, .5, .5) - mean(.2, .1, .1, .1, .1) = 1.4 - 0.12; bounds +-0.2
    assert.ok(Math.abs(kl0.value - 1.28) < 1e-9, `${kl0.value}`);
    assert.ok(Math.abs(kl0.lo - 1.08) < 1e-9 && Math.abs(kl0.hi - 1.48) < 1e-9);
    const rec = verdictOf("qi-recovery-deepens", r);
    assert.equal(rec.verdict, "reproduced");
    assert.ok(Math.abs(rec.measurements[0].value - (0.02 - 0.55)) < 1e-12, "pooled row used");
    const rises = verdictOf("qi-prefill-rises", r);
    assert.ok(Math.abs(rises.measurements[1].lo - (0.9 - 0.4)) < 1e-12);
    assert.equal(rises.verdict, "reproduced");
    const ft = verdictOf("qi-few-harmful-examples", r);
    assert.deepEqual([ft.verdict, ft.measurements[0].lo], ["reproduced", 0.45]);
    // quick defences: one seed or few prompts
    await writeRun(dir, "defences-2027-01-01T00-00-00", {
      "table.json": { rows: [], config: { seeds: [0], perKind: 12 } },
    });
    assert.equal((await loadSavedResults(dir)).defences?.run, "defences-2026-01-01T00-00-00");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("collectResults copies only full-size results, with provenance, and reads back the same", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const runs = join(dir, "runs"), into = join(dir, "results");
    await writeRun(runs, "craft-2026-01-01T00-00-00", {
      "rows.json": rowsJson(-0.3, -0.1),
      "report.html": "<p>seeds 0, 1, 2; full sizes; 2026</p>",
    });
    await writeRun(runs, "alphaalign-2026-01-01T00-00-00", {
      "rows.json": "[]",
      "config.json": { quick: true },
    });
    const copied = await collectResults(runs, into);
    assert.deepEqual(copied.map((c) => c.run), ["craft-2026-01-01T00-00-00"]);
    const names = [...Deno.readDirSync(into)].map((e) => e.name);
    assert.deepEqual(names, ["craft"]);
    const prov = JSON.parse(await Deno.readTextFile(join(into, "craft", "provenance.json")));
    assert.equal(prov.run, "craft-2026-01-01T00-00-00");
    assert.equal(prov.quick, false);
    const back = await loadSavedResults(into);
    assert.equal(back.craft?.run, "craft-2026-01-01T00-00-00");
    assert.equal(back.craft?.date, "2026-01-01T00:00:00Z");
    assert.deepEqual(back.craft?.rows, (await loadSavedResults(runs)).craft?.rows);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README's claims ledger is what `deno task claims` prints from datasets/results", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const start = readme.indexOf("## Claims ledger");
  assert.ok(start >= 0, "README has a '## Claims ledger' section");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  const table = section.split("\n").filter((l) => l.trim().startsWith("|")).join("\n");
  const ledger = claimsLedger(await loadSavedResults(join(ROOT, "datasets/results")));
  const printed = ledgerMarkdown(ledger);
  assert.ok(section.includes(countsLine(ledger)), `README lacks '${countsLine(ledger)}'`);
  assert.deepEqual(
    parseMarkdownTable(table),
    parseMarkdownTable(printed),
    "the README's ledger is stale: paste the output of `deno task claims` into it",
  );
});

Deno.test("ledgerFigure: one marker per measurement with a paper number, and the y = x line", () => {
  const rate = (variant: string, k: number, v: number) =>
    resultRow({
      experiment: "defences",
      table: "rates",
      condition: variant,
      metric: `prefill ASR (k=${k})`,
      value: v,
      lo: v - 0.05,
      hi: v + 0.05,
    });
  const rows = [
    rate("toy-shallow", 5, 0.5),
    rate("toy-shallow", 10, 0.9),
    rate("recovery-sft", 5, 0),
    rate("recovery-sft", 10, 0.1),
  ];
  const ledger = claimsLedger(saved("defences", rows, true));
  const fig = ledgerFigure(ledger)!;
  assert.equal(fig.data.length, 3);
  assert.deepEqual(fig.data[0].x, [0.028 - 0.421]);
  assert.ok(Math.abs((fig.data[0].y as number[])[0] - -0.5) < 1e-12);
  assert.match(String(fig.data[0].name), /qi-recovery-deepens .*k=5.*\[quick sizes\]/);
  assert.equal(fig.data[2].name, "y = x");
});

Deno.test("notebook 10's closing cell states the verdict counts of the committed results", async () => {
  const nb = JSON.parse(await Deno.readTextFile(join(ROOT, "notebooks/10_claims.ipynb")));
  const last = nb.cells[nb.cells.length - 1];
  assert.equal(last.cell_type, "markdown");
  const ledger = claimsLedger(await loadSavedResults(join(ROOT, "datasets/results")));
  assert.ok(
    last.source.join("").includes(countsLine(ledger)),
    `the closing cell of notebooks/10_claims.ipynb lacks '${countsLine(ledger)}'`,
  );
});

Deno.test("deno task experiments' writer saves config.json, which the loader reads", async () => {
  const { writeExperiment } = await import("../lib/cli/experiments.ts");
  const { makeResult } = await import("../lib/experiments/result.ts");
  const dir = await Deno.makeTempDir();
  try {
    for (const [stamp, quick] of [["2026-01-01T00-00-00", false], ["2026-02-01T00-00-00", true]]) {
      await writeExperiment(
        join(dir, `craft-${stamp}`),
        makeResult({
          name: "craft",
          description: "test",
          rows: [craftDelta(-0.3, -0.1)],
          figures: [],
          runs: [],
          examples: [],
          config: { seeds: [0, 1], quick },
          seconds: 1,
        }),
      );
    }
    const r = await loadSavedResults(dir);
    assert.deepEqual([r.craft?.run, r.craft?.quick], ["craft-2026-01-01T00-00-00", false]);
    assert.deepEqual(r.craft?.config, { seeds: [0, 1], quick: false });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("traits-persist-selectively: per dose, persona and fine-tuning compliance below the baseline's, steering up", () => {
  const p = (model: string, table: string, metric: string, v: number, w = 0.05) =>
    resultRow({
      experiment: "persistence",
      table,
      condition: model,
      metric,
      value: v,
      lo: v - w,
      hi: v + w,
      reference: table === "deltas" ? `${model} (no attack)` : "",
    });
  const model = (name: string, persona: number, ft: number, steer: number) => [
    p(name, "adversarial personas", "compliance", persona),
    p(name, "harmful fine-tuning (N=10)", "compliance (harmful prompts)", ft),
    p(name, "deltas", "helpful steering: instruction followed", steer),
  ];
  const rows = (persona: number) => [
    ...model("traits/baseline-no-trait-data", 0.3, 0.9, 0.2),
    ...model("traits/dose-math", persona, 0.5, 0.2),
  ];
  const ok = verdictOf("traits-persist-selectively", saved("persistence", rows(0.1)));
  assert.equal(ok.measurements.length, 3);
  assert.equal(ok.verdict, "reproduced");
  // persona compliance above the baseline's: [0.4, 0.5] - [0.25, 0.35] lies above 0
  const worse = verdictOf("traits-persist-selectively", saved("persistence", rows(0.45)));
  assert.equal(worse.verdict, "refuted");
  const none = verdictOf("traits-persist-selectively", saved("persistence", rows(0.1).slice(3)));
  assert.equal(none.verdict, "not run yet");
});
