/**
 * Figures and tables that show themselves: every plot builder returns the plain plotly
 * figure with a non-enumerable Jupyter display method; `show` hands its bundle to the kernel
 * before it returns (so an unawaited `show(fig)` is not lost), renders as nothing when left
 * as a cell's value, and keeps sending plotly.js until the bundle carrying it has drained;
 * `rateTable` / `formatRate` give hand-derived strings.
 *
 * @module
 */

import assert from "node:assert/strict";
import { figure, isDisplayable, type PlotlyFigure } from "../lib/viz/figure.ts";
import {
  JUPYTER_DISPLAY,
  type MimeBundle,
  overrideJupyterRuntime,
  resetPlotlyInclusion,
  show,
} from "../lib/viz/display.ts";
import { plotBars } from "../lib/viz/plots/bars.ts";
import { plotCurves } from "../lib/viz/plots/curves.ts";
import { plotHeatmap } from "../lib/viz/plots/heatmap.ts";
import { plotLayerSweep } from "../lib/viz/plots/layer_sweep.ts";
import { plotPositionKl } from "../lib/viz/plots/position_kl.ts";
import { plotProjection } from "../lib/viz/plots/projection.ts";
import { plotRateCurve } from "../lib/viz/plots/rate_curve.ts";
import { plotScatter } from "../lib/viz/plots/scatter.ts";
import { formatRate, rateTable, readableName } from "../lib/viz/table.ts";

const FIGURES: Record<string, () => PlotlyFigure> = {
  plotBars: () => plotBars([{ name: "a", value: 0.4, lo: 0.3, hi: 0.5 }]),
  plotCurves: () =>
    plotCurves([{ step: 0, loss: 1 }, { step: 1, loss: 0.5 }], { x: "step", y: ["loss"] }),
  plotHeatmap: () => plotHeatmap([[0.5, 0.25], [0.1, 1]], ["a", "b"], ["c", "d"]),
  plotLayerSweep: () => plotLayerSweep([{ layer: 1, method: "diffmean", auroc: 0.8 }]),
  plotPositionKl: () => plotPositionKl([{ position: 0, kl: 0.1 }]),
  plotProjection: () => plotProjection([{ x: 0, y: 1, label: "safe" }]),
  plotRateCurve: () =>
    plotRateCurve([{ x: 0, rate: 0.5, lo: 0.4, hi: 0.6 }], { xTitle: "k", yTitle: "ASR" }),
  plotScatter: () =>
    plotScatter([{ x: 0.5, y: 0.6, label: "CRAFT" }], { xTitle: "a", yTitle: "b" }),
};

for (const [name, make] of Object.entries(FIGURES)) {
  Deno.test(`${name} returns a plain plotly figure that displays itself`, () => {
    const fig = make();
    assert.ok(isDisplayable(fig), `${name}: no Jupyter display method`);
    assert.deepEqual(Object.keys(fig), ["data", "layout", "config"]);
    const plain = JSON.parse(JSON.stringify(fig));
    assert.deepEqual(Object.keys(plain), ["data", "layout", "config"]);
    assert.deepEqual(
      fig,
      { data: fig.data, layout: fig.layout, config: fig.config },
      "deepEqual ignores the method",
    );
    const bundle = (fig as unknown as Record<symbol, () => MimeBundle>)[JUPYTER_DISPLAY]();
    assert.equal(bundle["application/vnd.plotly.v1+json"], fig);
    assert.match(bundle["text/plain"], /^Figure "/);
    assert.match(String(bundle["text/html"]), /Plotly\.newPlot/);
  });
}

Deno.test("figure() keeps edits made after building (the bundle reads the live object)", () => {
  const fig = figure({ data: [{ type: "bar", x: ["a"], y: [1] }], layout: {} });
  fig.layout.title = { text: "edited" };
  const bundle = (fig as unknown as Record<symbol, () => MimeBundle>)[JUPYTER_DISPLAY]();
  assert.equal(bundle["text/plain"], 'Figure "edited": 1 trace(s) (bar)');
  assert.throws(() => figure({ data: "x" } as unknown as PlotlyFigure), /expected a plotly figure/);
});

/** Installs a fake `Deno.jupyter` recording every display; returns it and an uninstaller. */
function fakeJupyter() {
  const sent: MimeBundle[] = [];
  const fake = {
    display: (bundle: MimeBundle) => {
      sent.push(bundle);
      return Promise.resolve();
    },
  };
  overrideJupyterRuntime(fake as unknown as typeof Deno.jupyter);
  return { sent, restore: () => overrideJupyterRuntime(null) };
}

Deno.test("show() sends before it returns, renders as nothing, and re-sends plotly.js until drained", async () => {
  const j = fakeJupyter();
  try {
    resetPlotlyInclusion();
    const first = show(plotBars([{ name: "a", value: 1 }], { title: "first" }));
    assert.equal(j.sent.length, 1, "sent synchronously: an unawaited show loses nothing");
    assert.match(j.sent[0]["text/plain"], /Figure "first"/);
    assert.ok(
      String(j.sent[0]["text/html"]).includes("/* plotly.js"),
      "first bundle carries plotly.js",
    );
    // Left as a cell's value it renders as nothing, once drained (the kernel awaits it).
    const asValue = (first as unknown as Record<symbol, () => Promise<unknown>>)[JUPYTER_DISPLAY]();
    assert.ok(asValue instanceof Promise);
    // Still draining: the next figure carries plotly.js again (the first may be cut off).
    await Promise.resolve();
    const second = show(plotBars([{ name: "b", value: 1 }], { title: "second" }));
    assert.ok(String(j.sent[1]["text/html"]).includes("/* plotly.js"), "re-sent while draining");
    assert.deepEqual(await asValue, {});
    await first;
    await second;
    await show(plotBars([{ name: "c", value: 1 }], { title: "third" }));
    assert.equal(j.sent.length, 3);
    assert.ok(!String(j.sent[2]["text/html"]).includes("/* plotly.js"), "drained: not again");
    // Tables and plain values go out the same way.
    await show([{ model: "m", rate: 0.5 }]);
    assert.match(j.sent[3]["text/plain"], /model\s+rate/);
  } finally {
    j.restore();
    resetPlotlyInclusion();
  }
});

Deno.test("a figure left as a cell's value sends plotly.js first, drained, then itself small", async () => {
  const j = fakeJupyter();
  try {
    resetPlotlyInclusion();
    const fig = plotBars([{ name: "a", value: 1 }], { title: "value" });
    const result = (fig as unknown as Record<symbol, () => MimeBundle | Promise<MimeBundle>>)[
      JUPYTER_DISPLAY
    ]();
    assert.ok(result instanceof Promise, "the kernel awaits it");
    assert.equal(j.sent.length, 1);
    assert.ok(String(j.sent[0]["text/html"]).startsWith("<script"), "plotly.js alone, first");
    assert.ok(!("application/vnd.plotly.v1+json" in j.sent[0]));
    const bundle = await result;
    assert.equal(bundle["application/vnd.plotly.v1+json"], fig);
    assert.ok(!String(bundle["text/html"]).includes("/* plotly.js"), "the figure itself is small");
    // Later figures return their bundle at once.
    const next = (plotBars([{ name: "b", value: 2 }]) as unknown as Record<symbol, () => unknown>)[
      JUPYTER_DISPLAY
    ]();
    assert.ok(!(next instanceof Promise));
    assert.equal(j.sent.length, 1);
  } finally {
    j.restore();
    resetPlotlyInclusion();
  }
});

Deno.test("show() outside Jupyter prints the text/plain form", async () => {
  const logged: unknown[] = [];
  const log = console.log;
  console.log = (x: unknown) => logged.push(x);
  try {
    const p = show(plotBars([{ name: "a", value: 1 }]));
    assert.equal(logged.length, 1, "printed before show returns");
    await p;
  } finally {
    console.log = log;
  }
  assert.match(String(logged[0]), /^Figure "Comparison"/);
});

Deno.test("formatRate: interval, count, n alone, NaN", () => {
  assert.equal(formatRate(20 / 49, { k: 20, n: 49 }), "40.8% (20/49)");
  assert.equal(formatRate(0.408, { lo: 0.312, hi: 0.501, n: 49 }), "40.8% [31.2, 50.1] n=49");
  assert.equal(formatRate(0.408, { lo: 0.312, hi: 0.501 }), "40.8% [31.2, 50.1]");
  assert.equal(formatRate(0.25, { n: 8 }), "25.0% n=8");
  assert.equal(formatRate(1 / 3, { digits: 0 }), "33%");
  assert.equal(formatRate(NaN, { n: 0 }), "n/a n=0");
});

Deno.test("readableName: camelCase, snake_case and acronyms", () => {
  assert.equal(readableName("overRefusalRate"), "over refusal rate");
  assert.equal(readableName("harmful_compliance"), "harmful compliance");
  assert.equal(readableName("aurocLo"), "auroc lo");
  assert.equal(readableName("KL"), "KL");
  assert.equal(readableName("refusal rate"), "refusal rate");
});

Deno.test("rateTable folds intervals, counts and n into the rate columns", () => {
  const single = rateTable([
    {
      set: "harmless",
      condition: "no intervention",
      "refusal rate": 0.408,
      lo: 0.312,
      hi: 0.501,
      n: 49,
    },
    { set: "harmful", condition: "ablate r", "refusal rate": 0.05, lo: 0.0139, hi: 0.1665, n: 40 },
  ]);
  assert.deepEqual(single.rows, [
    { set: "harmless", condition: "no intervention", "refusal rate": "40.8% [31.2, 50.1] n=49" },
    { set: "harmful", condition: "ablate r", "refusal rate": "5.0% [1.4, 16.7] n=40" },
  ]);
  const counts = rateTable([{ modelName: "toy", rate: 0.2, k: 2, n: 10 }]);
  assert.deepEqual(counts.rows, [{ "model name": "toy", rate: "20.0% (2/10)" }]);
  const two = rateTable([
    {
      model: "m",
      harmfulRate: 0.5,
      harmfulRateLo: 0.25,
      harmfulRateHi: 0.75,
      refusalRate: 0.1,
      n: 20,
    },
  ]);
  assert.deepEqual(two.rows, [{
    model: "m",
    "harmful rate": "50.0% [25.0, 75.0] n=20",
    "refusal rate": "10.0% n=20",
  }]);
  // A "rate" column outside [0, 1] is not a proportion: left as a number.
  const tokens = rateTable([{ name: "x", tokenRate: 42.5 }]);
  assert.deepEqual(tokens.rows, [{ name: "x", "token rate": 42.5 }]);
  const bundle = (single as unknown as Record<symbol, () => MimeBundle>)[JUPYTER_DISPLAY]();
  assert.match(String(bundle["text/html"]), /<th>refusal rate<\/th>/);
  assert.match(single.toString(), /harmless\s+no intervention\s+40\.8% \[31\.2, 50\.1\] n=49/);
  assert.throws(
    () => rateTable([{ a: 1 }], { rates: ["b"] }),
    /rate column "b" is not in the table/,
  );
});
