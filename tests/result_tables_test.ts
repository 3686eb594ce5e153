/**
 * The README's generated result tables: cell formats on hand-made rows (rates in %, differences
 * in signed points, never "-0"), rates and deltas tables from rows made here, block
 * filling (replaced with caption and table; kept when no result is saved; unknown ids are an
 * error), and the README itself: every table block holds what `deno task claims --tables`
 * generates from datasets/results, and every generated table has a block.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ResultRow, resultRow } from "../lib/experiments/rows.ts";
import {
  deltasMarkdown,
  fillTableBlocks,
  pctCell,
  pointsCell,
  ratesMarkdown,
  RESULT_TABLE_IDS,
  resultTables,
  tableBlockIds,
} from "../lib/experiments/result_tables.ts";
import { loadSavedResults, type SavedResults } from "../lib/experiments/saved_results.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

const row = (p: Partial<ResultRow>) =>
  resultRow({ experiment: "alphaalign", table: "rates", method: "m", ...p });

Deno.test("cells: % with intervals, signed points, '-' when absent", () => {
  assert.equal(pctCell(row({ value: 0.294, lo: 0.205, hi: 0.381 })), "29 [21, 38]");
  assert.equal(pctCell(row({ value: 1, lo: NaN, hi: NaN })), "100");
  assert.equal(pctCell(undefined), "-");
  assert.equal(pointsCell(row({ value: -0.11, lo: -0.46, hi: 0.11 })), "-11 [-46, +11]");
  assert.equal(pointsCell(row({ value: -0.001, lo: -0.004, hi: 0 })), "+0 [+0, +0]"); // no "-0"
});

Deno.test("rates and deltas tables from hand-made rows", () => {
  const rows = [
    row({ condition: "start", metric: "harmful compliance", value: 0.5, lo: 0.4, hi: 0.6 }),
    row({ condition: "rl", metric: "harmful compliance", value: 0.2, lo: 0.1, hi: 0.3 }),
    row({ condition: "rl", metric: "over-refusal", value: 0.05, lo: 0, hi: 0.1 }),
    row({
      table: "deltas",
      condition: "rl",
      reference: "start",
      metric: "harmful compliance",
      value: -0.3,
      lo: -0.42,
      hi: -0.18,
    }),
  ];
  const cols = [["harmful compliance", "harmful"], ["over-refusal", "over-refusal"]] as const;
  assert.equal(
    ratesMarkdown(rows, cols),
    "| model | harmful | over-refusal |\n| --- | --- | --- |\n" +
      "| start | 50 [40, 60] | - |\n| rl | 20 [10, 30] | 5 [0, 10] |",
  );
  assert.equal(
    deltasMarkdown(rows, cols).split("\n")[2],
    "| rl - start | -30 [-42, -18] | - |",
  );
});

Deno.test("fillTableBlocks: replaces known blocks, keeps those without a result, rejects unknown ids", () => {
  const saved: SavedResults = {
    alphaalign: {
      experiment: "alphaalign",
      run: "alphaalign-2026-01-01T00-00-00",
      date: "2026-01-01T00:00:00Z",
      quick: false,
      path: "/nowhere",
      config: {},
      rows: [
        row({ condition: "start", metric: "harmful compliance", value: 0.5, lo: 0.4, hi: 0.6 }),
      ],
    },
  };
  const tables = resultTables(saved);
  assert.deepEqual(tables.map((t) => t.id), ["alphaalign-rates", "alphaalign-deltas"]);
  const text = "a\n<!-- table: alphaalign-rates -->\nold\n<!-- /table -->\n" +
    "<!-- table: hacking -->\nkept\n<!-- /table -->\n";
  const out = fillTableBlocks(text, tables);
  assert.match(
    out,
    /<!-- table: alphaalign-rates -->\n\n_Generated from `alphaalign-2026-01-01T00-00-00` \(full size\)/,
  );
  assert.match(out, /\| start \| 50 \[40, 60\] \|/);
  assert.ok(!out.includes("old"));
  assert.match(out, /<!-- table: hacking -->\nkept\n<!-- \/table -->/);
  assert.deepEqual(tableBlockIds(out), ["alphaalign-rates", "hacking"]);
  assert.throws(
    () => fillTableBlocks("<!-- table: nope -->\nx\n<!-- /table -->", tables),
    /unknown result table 'nope'/,
  );
});

Deno.test("persistence: the monitor's false flags and stop's before -> after come from tables.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = join(dir, "persistence-2026-01-01T00-00-00-000Z");
    await Deno.mkdir(run);
    const rate = (model: string, test: string, metric: string, r: number) => ({
      model,
      test,
      metric,
      rate: r,
      lo: r - 0.1,
      hi: r + 0.1,
      n: 60,
      prompts: 60,
      interval: "bootstrap (templates, prompts)",
    });
    const action = (action: string, metric: string, r: number) => ({
      model: "toy-base",
      action,
      metric,
      rate: r,
      lo: r,
      hi: r,
      n: 60,
      prompts: 60,
      interval: "bootstrap (templates, prompts)",
    });
    await Deno.writeTextFile(
      join(run, "tables.json"),
      JSON.stringify({
        settings: { quick: false, seed: 0 },
        persistence: [
          rate("toy-base", "no attack", "refusal (harmful prompts)", 0),
          rate("toy-base", "no attack", "compliance (harmful prompts)", 0.92),
          rate("toy-base", "harmful fine-tuning (N=10)", "refusal (harmful prompts)", 0),
        ],
        calibration: [{
          model: "toy-base",
          "held-out rate": 0.39,
          "held-out lo": 0.31,
          "held-out hi": 0.48,
          "held-out n": 120,
        }],
        monitorActions: [
          action("none (unmonitored)", "ASR (harmful)", 0.92),
          action("stop", "ASR (harmful)", 0.08),
          action("none (unmonitored)", "over-refusal (borderline)", 0),
          action("stop", "over-refusal (borderline)", 0.63),
        ],
      }),
    );
    const [table] = resultTables(await loadSavedResults(dir));
    assert.equal(table.id, "persistence");
    const [header, , row] = table.markdown.split("\n");
    assert.match(
      header,
      /refusal after FT \(N=10\) \| .* monitor false flags, held out \| `stop`: harmful ASR/,
    );
    assert.equal(
      row,
      "| toy-base | 0 [-10, 10] | 92 [82, 102] | 0 [-10, 10] | - | - | - | - | 39 [31, 48] | 92 -> 8 | 0 -> 63 |",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README: every result-table block is what datasets/results generates, and every table has one", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const tables = resultTables(await loadSavedResults(join(ROOT, "datasets/results")));
  const ids = tableBlockIds(readme);
  for (const id of ids) assert.ok(RESULT_TABLE_IDS.includes(id), `unknown block ${id}`);
  for (const t of tables) assert.ok(ids.includes(t.id), `README has no block for ${t.id}`);
  assert.equal(
    fillTableBlocks(readme, tables),
    readme,
    "README's result tables are stale: run `deno task claims --write-readme README.md`",
  );
});
