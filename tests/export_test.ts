/**
 * Tests of lib/viz/export.ts: standalone HTML and JSON exports, the missing-browser error,
 * and PNG/SVG rendering through headless Chromium (skipped, with a message, when no
 * Chromium is installed).
 *
 * @module
 */

import assert from "node:assert/strict";
import { findChromium, saveFigure, standaloneFigureHtml } from "../lib/viz/export.ts";
import { plotlyJsSource } from "../lib/viz/display.ts";
import { plotRateCurve } from "../lib/viz/plots/rate_curve.ts";

const fig = plotRateCurve(
  [0, 1, 2, 4, 8].map((k) => ({ x: k, rate: k === 0 ? 0.02 : 0.9, lo: 0, hi: 1 })),
  { xTitle: "Prefill depth k", yTitle: "ASR", title: "ASR by prefill depth" },
);
fig.layout.width = 600;
fig.layout.height = 400;

const chromium = findChromium();
if (!chromium) {
  console.warn(
    "export_test: no Chromium found ($CHROMIUM_PATH, /usr/bin/chromium, ...): skipping PNG/SVG " +
      "export tests; install one with `apt-get install chromium`",
  );
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sc-export-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("saveFigure .html writes a standalone offline page", async () => {
  await withTempDir(async (dir) => {
    await saveFigure(fig, `${dir}/out/fig.html`);
    const html = await Deno.readTextFile(`${dir}/out/fig.html`);
    assert.equal(html, standaloneFigureHtml(fig));
    assert.ok(html.startsWith("<!doctype html>"));
    assert.ok(html.includes("<title>ASR by prefill depth</title>"));
    const marker = plotlyJsSource().slice(100_000, 100_300);
    assert.equal(html.split(marker).length - 1, 1, "plotly.js inlined exactly once");
    assert.doesNotMatch(html, /<script[^>]*\bsrc\s*=/i);
    assert.ok(html.includes("Plotly.newPlot"));
    const leftovers = [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name);
    assert.deepEqual(leftovers, ["fig.html"], "no temporary files left behind");
  });
});

Deno.test("saveFigure .json round-trips the figure", async () => {
  await withTempDir(async (dir) => {
    await saveFigure(fig, `${dir}/fig.json`);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/fig.json`)), fig);
  });
});

Deno.test("saveFigure rejects unknown extensions and names the supported ones", async () => {
  await assert.rejects(saveFigure(fig, "/tmp/fig.gif"), /unknown extension ".gif".*\.png or \.svg/);
});

Deno.test("a missing browser gives the install command and writes nothing", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      saveFigure(fig, `${dir}/fig.png`, { executablePath: `${dir}/no-such-chrome` }),
      (err: Error) => {
        assert.match(err.message, /no Chromium browser found/);
        assert.match(err.message, /apt-get install chromium/);
        assert.ok(err.message.includes(`${dir}/no-such-chrome`));
        return true;
      },
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test({
  name: "saveFigure .png renders through headless Chromium at the requested size",
  ignore: !chromium,
  async fn() {
    await withTempDir(async (dir) => {
      const t0 = performance.now();
      await saveFigure(fig, `${dir}/fig.png`, { scale: 2 });
      const ms = performance.now() - t0;
      const png = await Deno.readFile(`${dir}/fig.png`);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const view = new DataView(png.buffer, png.byteOffset);
      assert.equal(String.fromCharCode(...png.subarray(12, 16)), "IHDR");
      assert.deepEqual([view.getUint32(16), view.getUint32(20)], [1200, 800], "600x400 at scale 2");
      assert.ok(png.length > 10_000, `a real plot, not a blank image (${png.length} bytes)`);
      console.log(`PNG export: ${png.length} bytes in ${ms.toFixed(0)} ms (${chromium})`);
    });
  },
});

Deno.test({
  name: "saveFigure .svg renders through headless Chromium with the figure's text",
  ignore: !chromium,
  async fn() {
    await withTempDir(async (dir) => {
      await saveFigure(fig, `${dir}/fig.svg`);
      const svg = await Deno.readTextFile(`${dir}/fig.svg`);
      assert.match(svg, /^<svg[^>]*width="600"[^>]*height="400"/);
      assert.ok(svg.includes("ASR by prefill depth"));
      assert.ok(svg.includes("Prefill depth k"));
    });
  },
});
