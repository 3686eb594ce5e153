/**
 * The compass part of the demo (and of notebook 02): collect mean-pooled activations of
 * SafetyWorld traces to harmful prompts (safe, unsafe and rethink reasoning on the same
 * prompts), sweep every layer with CRAFT's head and the classic probes fitted on train
 * templates and scored on held-out test templates, project the test set in 2-D, and audit
 * one generation token by token.
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import type { World, WorldTraceRow } from "../data/safetyworld/plan.ts";
import type { ReportSection } from "../viz/report.ts";
import { collectActivations } from "../compass/collect.ts";
import { fitCompass, sweepLayers } from "../compass/fit.ts";
import { auditGeneration } from "../compass/audit.ts";
import { plotLayerSweep } from "../viz/plots/layer_sweep.ts";
import { plotProjection } from "../viz/plots/projection.ts";
import type { SweepRow } from "../compass/sweep.ts";
import { makeRng } from "../data/rng.ts";
import { project2d } from "../compass/project.ts";
import { compassFindings } from "./demo_summary.ts";
import { formatRateCount, formatWithInterval } from "../viz/format_rate.ts";

export { project2d };

/**
 * The layer sweep as a reader's table: readable headers, AUROC with its interval, accuracy as
 * a percentage with its count over n.
 *
 * @example
 * ```ts
 * sweepTableRows([{
 *   layer: 1, method: "craft", auroc: 0.9, aurocLo: 0.85, aurocHi: 0.95, accuracy: 0.5,
 *   accLo: 0.4, accHi: 0.6, separation: 1.7, nTest: 96,
 * }])[0]["Accuracy"]; // "50.0% (48/96)"
 * ```
 */
export function sweepTableRows(rows: readonly SweepRow[]): Record<string, unknown>[] {
  return rows.map((r) => ({
    Layer: r.layer === 0 ? "0 (embeddings)" : r.layer,
    Method: r.method,
    "AUROC [95% CI]": formatWithInterval(r.auroc, r.aurocLo, r.aurocHi),
    Accuracy: formatRateCount(r.accuracy, r.nTest),
    "Separation (Cohen's d)": Number(r.separation.toFixed(2)),
    "Test traces": r.nTest,
  }));
}

/**
 * Runs the compass section of the report.
 *
 * @example
 * ```ts
 * import { loadModel } from "../model/load.ts";
 * import { generateWorld } from "../data/safetyworld/generate.ts";
 * const r = await runCompassSection(await loadModel("toy-base"), generateWorld({ seed: 0 }), {
 *   quick: true,
 *   log: console.log,
 * });
 * r.findings; // sentences for the report's summary
 * ```
 */
export async function runCompassSection(
  model: Model,
  world: World,
  opts: { quick: boolean; log: (s: string) => void },
): Promise<{ section: ReportSection; metrics: unknown; findings: string[]; rows: SweepRow[] }> {
  const harmful = (split: string) =>
    world.traces.filter((t: WorldTraceRow) => t.label === "harmful" && t.split === split);
  const pick = (rows: WorldTraceRow[], n: number) => makeRng(0).shuffle(rows).slice(0, n);
  const train = pick(harmful("train"), opts.quick ? 240 : 600);
  const test = pick(harmful("test"), opts.quick ? 150 : 300);
  const trainActs = await collectActivations(model, train, { pooling: "mean" });
  const testActs = await collectActivations(model, test, { pooling: "mean" });
  opts.log(
    `collected ${train.length + test.length} traces, all ${trainActs.layers.length} layers ` +
      `(${trainActs.tokensPerSecond.toFixed(0)} tok/s)`,
  );
  const rows: SweepRow[] = sweepLayers(trainActs, testActs, {
    methods: ["craft", "diffmean", "pca", "logistic"],
    reps: opts.quick ? 200 : 1000,
    craft: { epochs: 3 },
  });
  opts.log("layer sweep done");
  const last = model.config.nLayer;
  const craft = fitCompass(trainActs, { method: "craft", layer: last });
  const lastTest = testActs.layer(last);
  const p = project2d(lastTest);
  const labels = testActs.labels();
  const points = p.x.map((x, i) => ({ x, y: p.y[i], label: labels[i] }));
  const probe = world.prompts.find((r) => r.split === "test" && r.kind === "harmful")!;
  const audit = await auditGeneration(model, craft, { prompt: probe.prompt, maxNewTokens: 40 });
  const findings = compassFindings(rows);
  return {
    findings,
    rows,
    section: {
      heading: "The safety compass",
      text:
        `Traces to harmful prompts: ${train.length} from train templates (fit) and ${test.length} ` +
        "from held-out test templates and entities (scored). Hidden states are mean-pooled over " +
        "prompt and trace (CRAFT's pooling); rethink traces are CRAFT's third class and are " +
        "dropped for the binary probes. Layer 0 is the embedding output (before any block).\n\n" +
        findings.join("\n\n") + "\n\n" +
        "Reasoning audit below: toy-base's greedy answer to a held-out harmful prompt, each " +
        "token coloured by the CRAFT compass's p_safe of its own hidden state at the last layer " +
        "(the compass was fitted on pooled traces, so per-token scores are an extrapolation).",
      html: audit.html({ title: `Audit: "${probe.prompt}"` }),
      figures: [
        plotLayerSweep(
          rows.map((r) => ({
            layer: r.layer,
            method: r.method,
            auroc: r.auroc,
            lo: r.aurocLo,
            hi: r.aurocHi,
            n: r.nTest,
          })),
          {
            title: "Safety compass: held-out AUROC by layer (95% bootstrap intervals)",
            xTitle: "Layer (0 = embeddings)",
          },
        ),
        plotProjection(points, { title: `Test traces, layer ${last}: top-2 principal axes` }),
      ],
      tables: [{
        title: "Layer sweep (held-out test templates)",
        rows: sweepTableRows(rows),
      }],
    },
    metrics: { sweep: rows, collectTokensPerSecond: trainActs.tokensPerSecond },
  };
}
