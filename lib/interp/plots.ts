/**
 * Figures of the interpretability primitives, built with lib/viz's plot builders.
 *
 * @module
 */

import type { PlotlyFigure, TitleOptions } from "../viz/figure.ts";
import { plotBandLine } from "../viz/plots/band_line.ts";
import { plotPatchingHeatmap } from "../viz/plots/patching_heatmap.ts";
import type { LogitLensResult } from "./logit_lens.ts";
import type { DlaResult } from "./dla.ts";
import type { PatchingResult } from "./patching.ts";

/** A per-item summary (mean and 95% band over prompts) as a band line around 0. */
function summaryLine(
  xs: readonly string[],
  summary: readonly { value: number; lo: number; hi: number }[],
  series: string,
  axes: Required<Pick<TitleOptions, "title" | "xTitle" | "yTitle">>,
): PlotlyFigure {
  const points = summary.map((s, k) => ({ x: xs[k], value: s.value, lo: s.lo, hi: s.hi, series }));
  return plotBandLine(points, { ...axes, reference: 0 });
}

/**
 * The logit lens: mean metric per layer with its 95% band over prompts.
 *
 * @example
 * ```ts ignore
 * plotLogitLens(logitLens(model, prompts, { metric }), { title: "Refusal logit difference" });
 * ```
 */
export function plotLogitLens(
  r: LogitLensResult,
  opts: TitleOptions & { series?: string } = {},
): PlotlyFigure {
  return summaryLine(r.labels, r.summary, opts.series ?? "logit lens", {
    title: opts.title ?? "Logit lens",
    xTitle: opts.xTitle ?? "Residual stream read",
    yTitle: opts.yTitle ?? "Logit difference",
  });
}

/**
 * Direct logit attribution per component (embeddings, each block's attention and MLP), mean
 * with its band over prompts.
 *
 * @example
 * ```ts ignore
 * plotDla(directLogitAttribution(model, prompts, { metric }));
 * ```
 */
export function plotDla(r: DlaResult, opts: TitleOptions & { series?: string } = {}): PlotlyFigure {
  return summaryLine(r.components, r.summary, opts.series ?? "direct logit attribution", {
    title: opts.title ?? "Direct logit attribution",
    xTitle: opts.xTitle ?? "Component",
    yTitle: opts.yTitle ?? "Contribution to the logit difference",
  });
}

/**
 * Per-head direct logit attribution as a layer x head heatmap (mean over prompts, intervals
 * on hover).
 *
 * @example
 * ```ts ignore
 * plotDlaHeads(directLogitAttribution(model, prompts, { metric }));
 * ```
 */
export function plotDlaHeads(r: DlaResult, opts: TitleOptions = {}): PlotlyFigure {
  if (!r.headSummary) {
    throw new Error("plotDlaHeads: the result has no per-head terms (run with perHead: true)");
  }
  const hs = r.headSummary;
  return plotPatchingHeatmap(
    hs.map((row) => row.map((s) => s.value)),
    hs.map((_, i) => `L${i}`),
    hs[0].map((_, h) => `H${h}`),
    {
      lo: hs.map((row) => row.map((s) => s.lo)),
      hi: hs.map((row) => row.map((s) => s.hi)),
      title: opts.title ?? "Direct logit attribution per head",
      xTitle: opts.xTitle ?? "Head",
      yTitle: opts.yTitle ?? "Layer",
    },
  );
}

/**
 * A patching result (real or attribution) as a layer x position (or layer x head) heatmap of
 * the normalised effect, intervals on hover.
 *
 * @example
 * ```ts ignore
 * plotPatching(activationPatching(model, pairs, { metric }));
 * ```
 */
export function plotPatching(r: PatchingResult, opts: TitleOptions = {}): PlotlyFigure {
  const what = r.method === "activation" ? "Activation patching" : "Attribution patching";
  return plotPatchingHeatmap(
    r.summary.map((row) => row.map((s) => s.value)),
    r.rows,
    r.columns,
    {
      lo: r.summary.map((row) => row.map((s) => s.lo)),
      hi: r.summary.map((row) => row.map((s) => s.hi)),
      title: opts.title ??
        `${what} (${r.target}${r.fraction !== 1 ? `, fraction ${r.fraction}` : ""})`,
      xTitle: opts.xTitle ?? (r.target === "heads" ? "Head" : "Position"),
      yTitle: opts.yTitle ?? "Layer",
    },
  );
}
