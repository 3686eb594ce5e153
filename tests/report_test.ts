/**
 * The demo report a reader trusts (issue #20 item 8): findings in sentences generated from the
 * numbers, the layer-0 (embeddings) explanation when layer 0 is best, rates as "% (k/n)",
 * readable table headers, integer layer ticks, one fixed distinct colour per method, small-n
 * points marked, provenance in the page. The last test runs `deno task demo --quick` and reads
 * what it wrote.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compassFindings, klFindings, profileFindings } from "../lib/cli/demo_summary.ts";
import { sweepTableRows } from "../lib/cli/demo_compass.ts";
import {
  formatPercentInterval,
  formatRateCount,
  formatWithInterval,
} from "../lib/viz/format_rate.ts";
import {
  hatchSmallN,
  integerAxis,
  SERIES_COLORS,
  seriesColors,
  withIntegerTicks,
  withSeriesColors,
} from "../lib/viz/palette.ts";
import { plotLayerSweep } from "../lib/viz/plots/layer_sweep.ts";
import { plotBars } from "../lib/viz/plots/bars.ts";
import { plotCurves } from "../lib/viz/plots/curves.ts";
import { plotRateCurve } from "../lib/viz/plots/rate_curve.ts";
import { buildReport } from "../lib/viz/report.ts";
import { provenance } from "../lib/io/provenance.ts";
import type { SweepRow } from "../lib/compass/sweep.ts";
import type { RateRow } from "../lib/experiments/profile.ts";

function gitInstalled(): boolean {
  try {
    return new Deno.Command("git", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

type Obj = Record<string, unknown>;
const METHODS = ["craft", "diffmean", "pca", "logistic"] as const;

function sweep(aurocAt: (layer: number, m: number) => number, n = 96): SweepRow[] {
  const rows: SweepRow[] = [];
  for (let layer = 0; layer <= 4; layer++) {
    METHODS.forEach((method, m) => {
      const auroc = aurocAt(layer, m);
      rows.push({
        layer,
        method,
        auroc,
        aurocLo: Math.max(0, auroc - 0.05),
        aurocHi: Math.min(1, auroc + 0.03),
        accuracy: 0.75,
        accLo: 0.65,
        accHi: 0.83,
        separation: 1.5,
        nTest: n,
      });
    });
  }
  return rows;
}

Deno.test("formatRateCount writes a percentage with its count over n", () => {
  assert.equal(formatRateCount(20 / 49, 49), "40.8% (20/49)");
  assert.equal(formatRateCount(0, 40), "0.0% (0/40)");
  assert.equal(formatRateCount(1, 36), "100.0% (36/36)");
  assert.equal(formatRateCount(NaN, 0), "n/a (0/0)");
  assert.throws(() => formatRateCount(0.5, 2.5), /n must be a whole number/);
  assert.throws(() => formatRateCount(1.2, 10), /rate must be in \[0, 1\]/);
  assert.equal(formatPercentInterval(0.265, 0.551), "[26.5%, 55.1%]");
  assert.equal(formatWithInterval(0.9059, 0.8499, 0.9564), "0.906 [0.850, 0.956]");
});

Deno.test("compassFindings: layer 0 best -> says lexical shortcut, names the best layer >= 1", () => {
  // Layer 0 perfect for every method (a lexical shortcut); from layer 1 on, logistic at
  // layer 3 is the best (0.93), craft peaks at layer 4 (0.91).
  const rows = sweep((layer, m) =>
    layer === 0 ? 1 : [0.6 + 0.08 * layer, 0.7, 0.65, layer === 3 ? 0.93 : 0.8][m]
  );
  const f = compassFindings(rows);
  assert.equal(f.length, 2);
  assert.match(f[0], /n = 96 held-out traces/);
  assert.match(
    f[0],
    /craft AUROC 1\.000 \[0\.950, 1\.000\] at layer 0 \(from layer 1 on: 0\.920 at layer 4\)/,
  );
  assert.match(
    f[0],
    /logistic AUROC 1\.000 \[0\.950, 1\.000\] at layer 0 \(from layer 1 on: 0\.930 at layer 3\)/,
  );
  assert.match(f[1], /^The best layer is 0, the embeddings/);
  assert.match(f[1], /lexical shortcut/);
  assert.match(f[1], /which words the prompt and trace contain/);
  assert.match(
    f[1],
    /The best layer from 1 on is layer 3 \(logistic, AUROC 0\.930 \[0\.880, 0\.960\], n = 96\)/,
  );
});

Deno.test("compassFindings: best past layer 0 -> no shortcut claim, layer 0 reported beside", () => {
  const rows = sweep((layer, m) => (layer === 0 ? 0.55 : 0.7 + 0.05 * layer - 0.01 * m));
  const f = compassFindings(rows);
  assert.match(f[1], /^The best layer is 4 \(craft, AUROC 0\.900 \[0\.850, 0\.930\], n = 96\)/);
  assert.doesNotMatch(f.join(" "), /lexical shortcut/);
  assert.match(
    f[1],
    /At layer 0 \(the embeddings: words alone\) the best is craft with AUROC 0\.550/,
  );
  assert.throws(() => compassFindings([]), /no sweep rows/);
});

const rate = (model: string, metric: string, r: number, n: number, k?: number): RateRow => ({
  model,
  metric,
  rate: r,
  lo: Math.max(0, r - 0.15),
  hi: Math.min(1, r + 0.15),
  n,
  ...(k === undefined ? {} : { k }),
});

Deno.test("profileFindings: rates with counts, the prefill verdict, small subgroups", () => {
  const rows = [
    rate("base", "harmful refusal", 0, 40),
    rate("aligned", "harmful refusal", 0.65, 40),
    rate("base", "harmful compliance", 0.9, 40),
    rate("aligned", "harmful compliance", 0.35, 40),
    rate("aligned", "benign accuracy (kb)", 0.6, 5),
    rate("base", "prefill compliance", 1, 36, 1),
    rate("aligned", "prefill compliance", 0.75, 36, 1),
    rate("aligned", "prefill compliance", 1, 36, 10),
  ];
  const f = profileFindings(rows, { prefillFrom: "base" });
  assert.equal(
    f[0],
    "Refusal of held-out harmful prompts: base 0.0% (0/40) [0.0%, 15.0%]; " +
      "aligned 65.0% (26/40) [50.0%, 80.0%].",
  );
  const prefill = f.filter((s) => s.startsWith("Prefilling"));
  assert.equal(prefill.length, 1, "the source model's own prefill is left out");
  assert.match(prefill[0], /from 35\.0% \(14\/40\) without prefill to 75\.0% \(27\/36\) at k=1/);
  assert.match(prefill[0], /100\.0% \(36\/36\) at k=10; the rise clears both intervals: .*shallow/);
  assert.match(f[f.length - 1], /fewer than 30 prompts \(benign accuracy \(kb\), n=5\)/);
  // A rise inside the intervals is not called shallow.
  const flat = profileFindings([
    rate("m", "harmful compliance", 0.3, 40),
    rate("m", "prefill compliance", 0.4, 40, 5),
  ]);
  assert.match(flat[0], /the intervals overlap/);
  assert.doesNotMatch(flat[0], /shallow/);
});

Deno.test("klFindings: the peak and the head/tail means", () => {
  const f = klFindings(
    [0, 1, 2, 3, 4, 5].map((p) => ({ position: p, kl: [6, 2, 1, 0.5, 0.5, 0.5][p], n: 36 })),
    "a",
    "b",
  );
  assert.equal(
    f[0],
    "KL(a || b) along b's harmful answers peaks at response position 0 (6.00 nats, n=36 " +
      "answers); its mean is 3.00 over the first 3 positions and 0.50 after, so the fine-tune " +
      "changed the start of the answer most.",
  );
  assert.deepEqual(klFindings([], "a", "b"), []);
});

Deno.test("layer sweep: integer layer ticks, fixed distinct method colours, hollow small n", () => {
  const rows = sweep((layer) => 0.6 + 0.05 * layer).map((r) => ({
    layer: r.layer,
    method: r.method,
    auroc: r.auroc,
    lo: r.aurocLo,
    hi: r.aurocHi,
    n: r.layer === 2 ? 5 : 96,
  }));
  const fig = plotLayerSweep(rows);
  const x = fig.layout.xaxis as Obj;
  assert.equal(x.dtick, 1);
  assert.equal(x.tickformat, "d");
  assert.equal(x.tick0, 0);
  const colors = fig.data.map((t) => (t.line as Obj).color as string);
  assert.equal(new Set(colors).size, 4, `distinct: ${colors}`);
  assert.deepEqual(colors, METHODS.map((m) => SERIES_COLORS[m]), "fixed per method");
  for (const c of colors) {
    const n = parseInt(c.slice(1), 16);
    const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
    assert.ok(Math.max(r, g, b) - Math.min(r, g, b) > 40, `${c} is not a grey`);
  }
  // The same method keeps its colour in a figure with other methods first.
  const only = plotLayerSweep(rows.filter((r) => r.method === "pca" || r.method === "logistic"));
  assert.equal((only.data[0].line as Obj).color, SERIES_COLORS.pca);
  const symbols = (fig.data[0].marker as Obj).symbol as string[];
  assert.deepEqual(symbols, ["circle", "circle", "circle-open", "circle", "circle"]);
  assert.deepEqual(fig.data[0].text, ["n=96", "n=96", "n=5", "n=96", "n=96"]);
  // Deep models: still integer ticks, about 12 of them.
  assert.deepEqual(integerAxis([...Array(37).keys()]), { tick0: 0, dtick: 3, tickformat: "d" });
  assert.equal(integerAxis([...Array(38).keys()]).dtick, 4, "span 37 / 12 -> 4");
  assert.equal(integerAxis([0, 1]).dtick, 1);
});

Deno.test("seriesColors never repeats a colour; withIntegerTicks/withSeriesColors/hatchSmallN", () => {
  const names = Array.from({ length: 12 }, (_, i) => `series ${i}`);
  assert.equal(new Set(seriesColors(names).values()).size, 12);
  assert.equal(seriesColors(["x", "craft"]).get("craft"), SERIES_COLORS.craft);

  const curves = withIntegerTicks(
    plotCurves([{ layer: 0, a: 1 }, { layer: 1, a: 2 }, { layer: 2, a: 3 }], {
      x: "layer",
      y: ["a"],
    }),
  );
  assert.equal((curves.layout.xaxis as Obj).dtick, 1);
  assert.equal((curves.layout.xaxis as Obj).tickformat, "d");

  const band = withSeriesColors(plotRateCurve([
    { x: 0, rate: 0.3, lo: 0.2, hi: 0.4, series: "toy-shallow" },
    { x: 1, rate: 0.7, lo: 0.6, hi: 0.8, series: "toy-shallow" },
    { x: 0, rate: 0.9, lo: 0.8, hi: 1, series: "toy-base" },
  ], { xTitle: "k", yTitle: "compliance" }));
  const line = band.data.find((t) => t.name === "toy-shallow")!;
  assert.equal((line.line as Obj).color, SERIES_COLORS["toy-shallow"]);
  assert.equal(
    band.data.find((t) => t.name === "toy-shallow hi")!.fillcolor,
    "rgba(255,127,14,0.18)",
  );

  const bars = hatchSmallN(
    plotBars([
      { name: "big", value: 0.5, group: "m" },
      { name: "small", value: 0.6, group: "m" },
    ]),
    (_g, name) => (name === "small" ? 5 : 100),
  );
  const marker = bars.data[0].marker as Obj;
  assert.deepEqual((marker.pattern as Obj).shape, ["", "/"]);
  assert.deepEqual(marker.opacity, [1, 0.55]);
  assert.match(JSON.stringify(bars.layout.annotations), /fewer than 30 samples/);
});

Deno.test("report: summary first, readable columns, provenance table and JSON", async () => {
  const rows = sweep((layer) => (layer === 0 ? 1 : 0.8));
  const prov = await provenance({ seed: 0, command: "deno task demo", now: () => new Date(0) });
  const html = buildReport({
    title: "t",
    summary: compassFindings(rows),
    sections: [{
      heading: "Compass",
      tables: [{ title: "Layer sweep", rows: sweepTableRows(rows) }],
    }, {
      heading: "Profile",
      tables: [{
        rows: [{ model: "a", nTest: 5, aurocLo: 0.5 }],
        columns: { model: "Model", nTest: "Test traces" },
      }],
    }],
    provenance: prov,
  });
  const summaryAt = html.indexOf("Summary of findings");
  assert.ok(summaryAt > 0 && summaryAt < html.indexOf('id="section-1"'), "summary comes first");
  assert.ok(html.includes("lexical shortcut"));
  const tables = html.match(/<table[\s\S]*?<\/table>/g)!.join("\n");
  for (const raw of ["aurocLo", "aurocHi", "nTest", "accLo", "accHi"]) {
    assert.ok(!tables.includes(raw), `raw column ${raw} in a rendered table`);
  }
  assert.ok(tables.includes("<th>AUROC [95% CI]</th>") && tables.includes("<th>Test traces</th>"));
  assert.ok(tables.includes("<td>0 (embeddings)</td>"));
  assert.ok(tables.includes("<td>75.0% (72/96)</td>"), "accuracy as % (k/n)");
  assert.ok(html.includes('<h2 id="section-3">Provenance</h2>'));
  const json = /<script type="application\/json" id="provenance">(.*?)<\/script>/.exec(html)!;
  assert.deepEqual(JSON.parse(json[1]), JSON.parse(JSON.stringify(prov)));
  assert.throws(
    () =>
      buildReport({
        title: "t",
        sections: [{ heading: "h", tables: [{ rows: [{ a: 1 }], columns: { b: "B" } }] }],
      }),
    /columns names "b", which no row has; row fields: a/,
  );
});

const ROOT = fileURLToPath(new URL("../", import.meta.url));

Deno.test({
  name: "deno task demo --quick: summary, provenance in HTML and JSON, no raw columns",
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["task", "demo", "--quick", "--out", out],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      assert.equal(r.code, 0, dec.decode(r.stderr).slice(-2000));
      const html = await Deno.readTextFile(join(out, "report.html"));
      assert.ok(html.includes("Summary of findings"));
      assert.match(html, /Best held-out AUROC of each compass method/);
      assert.match(html, /Refusal of held-out harmful prompts: toy-base [\d.]+% \(\d+\/\d+\)/);
      const tables = html.match(/<table[\s\S]*?<\/table>/g)!.join("\n");
      assert.doesNotMatch(tables, /aurocLo|aurocHi|nTest|accLo/);
      const profile = tables.split("<table").find((t) => t.includes("<caption>Profile"))!;
      assert.ok(profile.includes("<th>Rate (count/n)</th>"));
      assert.doesNotMatch(profile, /<td class="num">0\.\d+<\/td>/, "no bare fractions as rates");
      const metrics = JSON.parse(await Deno.readTextFile(join(out, "metrics.json")));
      const p = metrics.provenance;
      assert.match(p.command, /^deno task demo --quick --out /);
      assert.deepEqual(p.models.map((m: Obj) => m.name), ["toy-base", "toy-shallow"]);
      for (const m of p.models) assert.match(m.fingerprint, /^[0-9a-f]{64}$/);
      assert.equal(p.versions["tfjs-core"], "4.22.0");
      if (p.git && gitInstalled()) {
        assert.equal(typeof p.git.dirty, "boolean", "the demo task may run git");
      }
      // Layer-0 explanation appears exactly when the sweep's best row is at layer 0.
      const sweepRows = metrics.compass.sweep as SweepRow[];
      const best = Math.max(...sweepRows.map((s) => s.auroc));
      const bestAt0 = sweepRows.some((s) => s.layer === 0 && s.auroc === best);
      assert.equal(html.includes("lexical shortcut"), bestAt0);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
