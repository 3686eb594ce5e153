/**
 * Tests of lib/viz: figure builders (trace types, axis titles, data lengths, colours),
 * MIME bundles (plotly.js inlined once), tables (escaping, rounding), progress bars
 * (throttling per mode, Jupyter messages), the reasoning audit, and standalone reports.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as aq from "arquero";
import { assignColors, colorFor, LABEL_COLORS } from "../lib/viz/figure.ts";
import { plotBars } from "../lib/viz/plots/bars.ts";
import { plotCurves } from "../lib/viz/plots/curves.ts";
import { plotHeatmap } from "../lib/viz/plots/heatmap.ts";
import { plotLayerSweep } from "../lib/viz/plots/layer_sweep.ts";
import { plotPositionKl } from "../lib/viz/plots/position_kl.ts";
import { plotProjection } from "../lib/viz/plots/projection.ts";
import { plotRateCurve } from "../lib/viz/plots/rate_curve.ts";
import { plotScatter } from "../lib/viz/plots/scatter.ts";
import {
  Figure,
  figureBundle,
  formatNumber,
  htmlBundle,
  JUPYTER_DISPLAY,
  jupyterRuntime,
  plotlyJsSource,
  resetPlotlyInclusion,
  show,
  tableBundle,
} from "../lib/viz/display.ts";
import { Progress } from "../lib/viz/progress.ts";
import { renderAudit, scoreColor } from "../lib/viz/audit.ts";
import { buildReport, writeReport } from "../lib/viz/report.ts";

type Obj = Record<string, unknown>;
const title = (o: unknown) => ((o as Obj).title as Obj).text;
const count = (hay: string, needle: string) => hay.split(needle).length - 1;
/** A 300-character piece from the middle of plotly.js: present once iff plotly.js is inlined once. */
const plotlyMarker = () => plotlyJsSource().slice(200_000, 200_300);

const sweep = [
  { layer: 2, method: "diff-of-means", auroc: 0.9, lo: 0.85, hi: 0.95 },
  { layer: 0, method: "diff-of-means", auroc: 0.6, lo: 0.5, hi: 0.7 },
  { layer: 1, method: "diff-of-means", auroc: 0.8, lo: 0.7, hi: 0.88 },
  { layer: 0, method: "logistic", auroc: 0.55 },
  { layer: 1, method: "logistic", auroc: 0.75 },
  { layer: 2, method: "logistic", auroc: 0.97 },
];

Deno.test("plotLayerSweep draws one sorted line per method with asymmetric error bars", () => {
  const fig = plotLayerSweep(sweep);
  assert.equal(fig.data.length, 2);
  assert.deepEqual(fig.data.map((t) => t.type), ["scatter", "scatter"]);
  assert.deepEqual(fig.data[0].x, [0, 1, 2]);
  assert.deepEqual(fig.data[0].y, [0.6, 0.8, 0.9]);
  const err = fig.data[0].error_y as { array: number[]; arrayminus: number[] };
  assert.deepEqual(err.array.map((v) => +v.toFixed(6)), [0.1, 0.08, 0.05]);
  assert.deepEqual(err.arrayminus.map((v) => +v.toFixed(6)), [0.1, 0.1, 0.05]);
  assert.equal(fig.data[1].error_y, undefined, "no lo/hi -> no error bars");
  assert.equal(title(fig.layout.xaxis), "Layer");
  assert.equal(title(fig.layout.yaxis), "AUROC");
  assert.notEqual((fig.data[0].line as Obj).color, (fig.data[1].line as Obj).color);
  assert.equal(((fig.layout.template as Obj).layout as Obj).plot_bgcolor, "white");
  // An arquero table gives the same figure as its rows.
  assert.deepEqual(plotLayerSweep(aq.from(sweep)), fig);
});

Deno.test("builders name the row and field of bad input", () => {
  assert.throws(
    () =>
      plotLayerSweep([
        { layer: 0, method: "a", auroc: 0.5 },
        { layer: 0, method: "b", auroc: Number.NaN },
      ]),
    /row 1 field "auroc" must be a finite number/,
  );
  assert.throws(
    () => plotBars([{ name: "x", value: 1, group: "g" }, { name: "y", value: "2" as never }]),
    /plotBars: row 1 field "value"/,
  );
});

Deno.test("plotProjection colours points by label with the vocabulary colours", () => {
  const pts = [
    { x: 0, y: 1, label: "safe" },
    { x: 1, y: 1, label: "unsafe" },
    { x: 2, y: 0, label: "safe" },
    { x: 3, y: 3, label: "rethink" },
  ];
  const fig = plotProjection(pts);
  assert.deepEqual(fig.data.map((t) => t.name), ["safe", "unsafe", "rethink"]);
  assert.deepEqual(fig.data.map((t) => (t.y as number[]).length), [2, 1, 1]);
  assert.deepEqual(fig.data.map((t) => (t.marker as Obj).color), [
    LABEL_COLORS.safe,
    LABEL_COLORS.unsafe,
    LABEL_COLORS.rethink,
  ]);
  assert.ok(fig.data.every((t) => t.type === "scatter" && t.mode === "markers"));
  assert.equal(title(fig.layout.xaxis), "Component 1");
});

Deno.test("colours are stable per label and distinct within a figure", () => {
  assert.equal(colorFor("CRAFT"), colorFor("craft"));
  assert.equal(colorFor("harmful"), LABEL_COLORS.unsafe);
  const labels = Array.from({ length: 10 }, (_, i) => `method-${i}`);
  const colors = assignColors(labels);
  assert.equal(new Set(colors.values()).size, 10);
});

Deno.test("plotCurves stacks one linked subplot per column, or overlays them", () => {
  const rows = [
    { step: 0, reward: 0.1, kl: 0, refusal: 0.5 },
    { step: 1, reward: 0.3, kl: 0.01, refusal: Number.NaN },
    { step: 2, reward: 0.4, kl: 0.02, refusal: 0.7 },
  ];
  const fig = plotCurves(rows, { x: "step", y: ["reward", "kl", "refusal"] });
  assert.equal(fig.data.length, 3);
  assert.deepEqual(fig.data.map((t) => [t.xaxis, t.yaxis]), [["x", "y"], ["x2", "y2"], [
    "x3",
    "y3",
  ]]);
  assert.deepEqual(fig.data[2].y, [0.5, null, 0.7], "NaN becomes a gap");
  assert.equal(title(fig.layout.yaxis2), "kl");
  assert.equal(title(fig.layout.xaxis3), "step");
  assert.equal((fig.layout.xaxis2 as Obj).matches, "x");
  const over = plotCurves(rows, { x: "step", y: ["reward", "kl"], overlay: true });
  assert.ok(over.data.every((t) => t.xaxis === "x" && t.yaxis === "y"));
  assert.equal(over.layout.grid, undefined);
});

Deno.test("plotRateCurve draws a band (lo, hi filled to it) and a line per series", () => {
  const rows = [0, 1, 2, 4].flatMap((k) => [
    { x: k, rate: k === 0 ? 0 : 0.9, lo: 0, hi: 1, series: "shallow" },
    { x: k, rate: 0.05, lo: 0.01, hi: 0.1, series: "deep" },
  ]);
  const fig = plotRateCurve(rows, { xTitle: "Prefill depth k", yTitle: "ASR" });
  assert.equal(fig.data.length, 6);
  assert.equal(fig.data[1].fill, "tonexty");
  assert.equal(fig.data[2].name, "shallow");
  assert.deepEqual(fig.data[2].y, [0, 0.9, 0.9, 0.9]);
  assert.ok(fig.data.every((t) => (t.x as number[]).length === 4));
  assert.equal(title(fig.layout.xaxis), "Prefill depth k");
  assert.equal(title(fig.layout.yaxis), "ASR");
});

Deno.test("plotScatter gives one labelled marker per method with 2-D error bars", () => {
  const fig = plotScatter(
    [
      { x: 0.8, y: 0.9, label: "CRAFT", xlo: 0.7, xhi: 0.85, ylo: 0.8, yhi: 0.95 },
      { x: 0.9, y: 0.4, label: "base" },
    ],
    { xTitle: "Utility", yTitle: "Refusal of harmful" },
  );
  assert.equal(fig.data.length, 2);
  const ex = fig.data[0].error_x as { array: number[]; arrayminus: number[] };
  assert.deepEqual([+ex.array[0].toFixed(6), +ex.arrayminus[0].toFixed(6)], [0.05, 0.1]);
  assert.deepEqual(fig.data[0].text, ["CRAFT"]);
  assert.equal(title(fig.layout.yaxis), "Refusal of harmful");
});

Deno.test("plotHeatmap annotates every finite cell and checks label counts", () => {
  const fig = plotHeatmap([[0.5, 0.25], [Number.NaN, 1]], ["honesty", "corrigibility"], [
    "a",
    "b",
  ]);
  assert.equal(fig.data[0].type, "heatmap");
  assert.deepEqual(fig.data[0].z, [[0.5, 0.25], [null, 1]]);
  const ann = fig.layout.annotations as { text: string; x: string; y: string }[];
  assert.deepEqual(ann.map((a) => a.text), ["0.50", "0.25", "1.00"]);
  assert.deepEqual([ann[2].x, ann[2].y], ["b", "corrigibility"]);
  assert.throws(() => plotHeatmap([[1, 2]], ["r"], ["only-one"]), /must match/);
});

Deno.test("plotBars groups into traces, or colours each bar", () => {
  const grouped = plotBars([
    { name: "AdvBench", value: 0.9, group: "base" },
    { name: "AdvBench", value: 0.1, group: "aligned", lo: 0.05, hi: 0.2 },
    { name: "XSTest", value: 0.2, group: "base" },
  ], { yTitle: "ASR" });
  assert.deepEqual(grouped.data.map((t) => [t.type, t.name, (t.y as number[]).length]), [
    ["bar", "base", 2],
    ["bar", "aligned", 1],
  ]);
  assert.equal(grouped.layout.barmode, "group");
  const flat = plotBars([{ name: "safe", value: 1 }, { name: "unsafe", value: 2 }]);
  assert.deepEqual((flat.data[0].marker as Obj).color, [LABEL_COLORS.safe, LABEL_COLORS.unsafe]);
});

Deno.test("plotPositionKl draws KL by position, one line per series", () => {
  const one = plotPositionKl([{ position: 0, kl: 22 }, { position: 1, kl: 0.1 }]);
  assert.equal(one.data.length, 1);
  assert.deepEqual(one.data[0].y, [22, 0.1]);
  assert.equal(title(one.layout.yaxis), "KL (nats)");
  const two = plotPositionKl([
    { position: 0, kl: 22, series: "shallow" },
    { position: 0, kl: 3, series: "deep" },
  ]);
  assert.deepEqual(two.data.map((t) => t.name), ["shallow", "deep"]);
});

Deno.test("figure bundles carry three MIME types and plotly.js only once", () => {
  resetPlotlyInclusion();
  const fig = plotLayerSweep(sweep);
  const a = figureBundle(fig);
  const b = figureBundle(plotProjection([{ x: 0, y: 0, label: "safe" }]));
  for (const bundle of [a, b]) {
    assert.deepEqual(Object.keys(bundle).sort(), [
      "application/vnd.plotly.v1+json",
      "text/html",
      "text/plain",
    ]);
  }
  assert.equal(a["application/vnd.plotly.v1+json"], fig);
  const marker = plotlyMarker();
  const htmlA = a["text/html"] as string;
  const htmlB = b["text/html"] as string;
  assert.equal(count(htmlA, marker), 1);
  assert.equal(count(htmlB, marker), 0);
  assert.ok(htmlB.length < 10_000, `second bundle is small (${htmlB.length} chars)`);
  assert.ok(htmlB.includes("Plotly.newPlot"));
  const idA = htmlA.match(/<div id="([^"]+)"/)![1];
  const idB = htmlB.match(/<div id="([^"]+)"/)![1];
  assert.notEqual(idA, idB);
  resetPlotlyInclusion();
  assert.equal(count(figureBundle(fig)["text/html"] as string, marker), 1, "reset re-includes");
  assert.match(a["text/plain"], /Figure "Safety compass: AUROC by layer": 2 trace/);
});

Deno.test("figure JSON cannot close the inline script", () => {
  const fig = plotBars([{ name: "</script><b>x", value: 1 }], { title: "</script>" });
  const html = figureBundle(fig)["text/html"] as string;
  const tail = html.slice(html.lastIndexOf("<div id="));
  assert.equal(count(tail, "</script>"), 1, "only the real closing tag");
});

Deno.test("Figure renders itself through the Jupyter display symbol", async () => {
  const fig = plotBars([{ name: "a", value: 1 }]);
  const f = new Figure(fig);
  assert.equal(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
  assert.equal((await f[JUPYTER_DISPLAY]())["application/vnd.plotly.v1+json"], fig);
  assert.equal(JSON.stringify(f), JSON.stringify(fig));
  assert.equal(jupyterRuntime(), undefined, "tests do not run inside Jupyter");
  const logged: unknown[] = [];
  const orig = console.log;
  console.log = (...args: unknown[]) => logged.push(...args);
  try {
    await show(f);
    await show([{ a: 1 }]);
    await show(htmlBundle("<b>x</b>", "bold x"));
  } finally {
    console.log = orig;
  }
  assert.match(String(logged[0]), /^Figure "Comparison"/);
  assert.equal(logged[1], "a\n1");
  assert.equal(logged[2], "bold x", "a MIME bundle is shown as it is");
});

Deno.test("table bundles escape HTML, round numbers and cut long tables", () => {
  const rows = Array.from({ length: 25 }, (_, i) => ({ name: `<b>row ${i}</b>`, auroc: 0.912345 }));
  const bundle = tableBundle(rows);
  const html = bundle["text/html"] as string;
  assert.ok(html.includes("&lt;b&gt;row 0&lt;/b&gt;"));
  assert.ok(!html.includes("<b>row"));
  assert.equal(count(html, "<tr>"), 21, "header + 20 rows");
  assert.ok(html.includes("showing 20 of 25 rows"));
  assert.ok(bundle["text/plain"].includes("0.9123"));
  const fromTable = tableBundle(aq.from(rows), { maxRows: 3, title: "t" });
  assert.ok((fromTable["text/html"] as string).includes("showing 3 of 25 rows"));
  assert.equal(fromTable["text/plain"].split("\n")[0], "t");
});

Deno.test("formatNumber rounds to significant digits", () => {
  assert.equal(formatNumber(0.912345), "0.9123");
  assert.equal(formatNumber(12.3456), "12.35");
  assert.equal(formatNumber(3), "3");
  assert.equal(formatNumber(0.5), "0.5");
  assert.equal(formatNumber(0.000001234), "1.234e-6");
  assert.equal(formatNumber(Number.NaN), "NaN");
});

function fakeClock() {
  let t = 0;
  return { now: () => t, set: (v: number) => (t = v) };
}

Deno.test("Progress in lines mode prints at most every 2 s plus the final line", () => {
  const clock = fakeClock();
  const out: string[] = [];
  const p = new Progress({
    total: 100,
    label: "train",
    mode: "lines",
    now: clock.now,
    write: (s) => out.push(s),
  });
  for (let i = 1; i <= 100; i++) {
    clock.set(i * 100); // 10 s in steps of 100 ms
    p.tick(1, { loss: 1 / i });
  }
  p.done();
  p.done();
  // Draws at 2, 4, 6, 8, 10 s, then the final line.
  assert.equal(out.length, 6);
  assert.ok(out.every((s) => s.endsWith("\n") && !s.includes("\r")));
  assert.equal(
    out[0],
    `train  20% |████${" ".repeat(16)}| 20/100 [00:02<00:08, 10 it/s] loss=0.05\n`,
  );
  assert.match(out[5], /100% \|█{20}\| 100\/100 \[00:10<00:00/);
});

Deno.test("Progress in tty mode redraws one line with \\r and ends it", () => {
  const clock = fakeClock();
  const out: string[] = [];
  const p = new Progress({ total: 4, mode: "tty", now: clock.now, write: (s) => out.push(s) });
  for (let i = 1; i <= 4; i++) {
    clock.set(i * 1000);
    p.tick();
  }
  p.done();
  assert.equal(out.length, 5);
  assert.ok(out.every((s) => s.startsWith("\r")));
  assert.ok(out[4].endsWith("\n") && !out[3].endsWith("\n"));
  assert.ok(out[1].includes(" 50% |██████████          | 2/4 [00:02<00:02, 1 it/s]"));
});

Deno.test("Progress is silent under SAFETY_COMPASS_QUIET=1", () => {
  const before = Deno.env.get("SAFETY_COMPASS_QUIET");
  Deno.env.set("SAFETY_COMPASS_QUIET", "1");
  try {
    const out: string[] = [];
    const p = new Progress({ total: 3, write: (s) => out.push(s) });
    assert.equal(p.mode, "silent");
    p.tick(3);
    p.done();
    assert.deepEqual(out, []);
  } finally {
    if (before === undefined) Deno.env.delete("SAFETY_COMPASS_QUIET");
    else Deno.env.set("SAFETY_COMPASS_QUIET", before);
  }
});

Deno.test("Progress in Jupyter sends display_data then throttled update_display_data", async () => {
  const clock = fakeClock();
  const sent: { type: string; content: Obj }[] = [];
  const p = new Progress({
    total: 20,
    label: "<gen>",
    mode: "jupyter",
    now: clock.now,
    broadcast: (type, content) => {
      sent.push({ type, content });
      return Promise.resolve();
    },
  });
  for (let i = 1; i <= 20; i++) {
    clock.set(i * 50); // 1 s in steps of 50 ms
    p.tick();
  }
  p.done();
  await p.settled;
  // Draws at 50 ms (first), then 300, 550, 800 ms (>= 250 ms apart), then done.
  assert.deepEqual(sent.map((m) => m.type), [
    "display_data",
    "update_display_data",
    "update_display_data",
    "update_display_data",
    "update_display_data",
  ]);
  const ids = new Set(sent.map((m) => (m.content.transient as Obj).display_id));
  assert.equal(ids.size, 1);
  const last = sent[4].content;
  assert.deepEqual(last.metadata, {});
  const data = last.data as Obj;
  assert.ok(String(data["text/html"]).includes('<progress value="20" max="20"'));
  assert.ok(String(data["text/html"]).includes("&lt;gen&gt;"));
  assert.match(String(data["text/plain"]), /^<gen> 100% /);
});

Deno.test("scoreColor runs red -> white -> green", () => {
  assert.equal(scoreColor(0), "rgb(214,39,40)");
  assert.equal(scoreColor(0.5), "rgb(255,255,255)");
  assert.equal(scoreColor(1), "rgb(44,160,44)");
  assert.equal(scoreColor(0.25), "rgb(235,147,148)");
  assert.equal(scoreColor(-3), scoreColor(0));
  assert.equal(scoreColor(Number.NaN), "rgb(200,200,200)");
});

Deno.test("renderAudit colours, escapes, explains and marks tokens", () => {
  const html = renderAudit(["Ġsure", "<script>", "Ġstep"], [0.9, 0, 0.5], {
    title: "a & b",
    mark: 1,
  });
  assert.equal(count(html, '<span class="tok'), 3);
  assert.ok(html.includes('style="background:rgb(214,39,40)" title="token 1: score 0 (crossing)"'));
  assert.ok(html.includes("&lt;script&gt;") && !html.includes("<script>"));
  assert.ok(html.includes(">\u0020sure</span>"), "GPT-2 space marker becomes a space");
  assert.ok(html.includes('class="tok below mark"'));
  assert.equal(count(html, "▶</span>"), 1);
  assert.ok(html.includes("<h4>a &amp; b</h4>"));
  assert.ok(html.includes("threshold 0.5"));
  assert.ok(!renderAudit(["a"], [1], { legend: false }).includes('class="legend"'));
  assert.throws(() => renderAudit(["a", "b"], [1]), /2 tokens but 1 scores/);
  assert.throws(() => renderAudit(["a"], [1], { mark: 3 }), /mark 3 is outside/);
});

Deno.test("reports are standalone: plotly.js once, no remote scripts, escaped text", async () => {
  const report = {
    title: "Compass <report>",
    subtitle: "seed 1",
    sections: [
      {
        heading: "Sweep",
        text: "AUROC < 1.\n\nSecond paragraph.",
        figures: [plotLayerSweep(sweep)],
      },
      {
        heading: "Audit",
        html: renderAudit(["a"], [1]),
        figures: [plotBars([{ name: "x", value: 1 }])],
        tables: [{ title: "scores", rows: [{ method: "a<b", auroc: 0.987654 }] }],
      },
      { heading: "Empty" },
    ],
  };
  const html = buildReport(report);
  assert.ok(html.startsWith("<!doctype html>"));
  assert.equal(count(html, plotlyMarker()), 1);
  assert.doesNotMatch(html, /<script[^>]*\bsrc\s*=/i);
  assert.doesNotMatch(html, /<link[^>]*https?:/i);
  assert.equal(count(html, "Plotly.newPlot"), 2);
  assert.ok(html.includes("<title>Compass &lt;report&gt;</title>"));
  assert.ok(html.includes("<p>AUROC &lt; 1.</p>\n<p>Second paragraph.</p>"));
  assert.ok(html.includes("<td>a&lt;b</td>") && html.includes('<td class="num">0.9877</td>'));
  assert.ok(html.includes('<a href="#section-3">Empty</a>'));
  assert.equal(buildReport(report), html, "deterministic");
  assert.equal(count(buildReport({ title: "t", sections: [] }), plotlyMarker()), 0);
  const dir = await Deno.makeTempDir();
  try {
    await writeReport(`${dir}/r/report.html`, report);
    assert.equal(await Deno.readTextFile(`${dir}/r/report.html`), html);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(
    () => buildReport({ title: "t", sections: [{ heading: "h", tables: [{ rows: 3 as never }] }] }),
    /sections\[0\]\.tables\[0\]\.rows must be an array/,
  );
});
