/**
 * `deno task demo`: the canonical workflow on SafetyWorld, headless, with the same calls
 * as the notebooks. Writes runs/<timestamp>/report.html (standalone, offline, with
 * figures and tables) and the metrics as CSV and JSON beside it.
 *
 * 1. load the shipped model organisms (toy-base: unaligned; toy-shallow: refusal-SFT);
 * 2. generate answers and read the hidden states of every layer;
 * 3. fit the safety compass (CRAFT head and the classic probes) per layer on held-out
 *    templates, when the compass module is present;
 * 4. measure shallow safety: profile rates with intervals, compliance vs prefill depth,
 *    and KL(shallow || base) by response position.
 *
 * Flags: --quick (smaller samples), --out DIR, --help.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { loadModel } from "../model/load.ts";
import { encodePrompt } from "../model/chat.ts";
import { generateWorld } from "../data/safetyworld/generate.ts";
import { profileModel, type RateRow } from "../experiments/profile.ts";
import { klByPosition } from "../eval/diagnostics.ts";
import { plotBars } from "../viz/plots/bars.ts";
import { plotCurves } from "../viz/plots/curves.ts";
import type { PlotlyFigure } from "../viz/figure.ts";
import { plotPositionKl } from "../viz/plots/position_kl.ts";
import { plotRateCurve } from "../viz/plots/rate_curve.ts";
import { buildReport, type ReportSection, writeReport } from "../viz/report.ts";
import { writeJsonAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { runCompassSection } from "./demo_compass.ts";
import { cliArgs } from "./args.ts";

const { values: flags } = cliArgs(Deno.args, {
  usage: "usage: deno task demo [--quick] [--out DIR]",
  summary: "The canonical workflow on SafetyWorld, headless; writes a report, CSV and JSON.",
  flags: {
    quick: { type: "boolean", help: "smaller samples (also SAFETY_COMPASS_QUICK=1)" },
    out: { type: "string", value: "DIR", help: "output folder", default: "runs/<timestamp>" },
  },
});
const quick = flags.quick === true || Deno.env.get("SAFETY_COMPASS_QUICK") === "1";
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const out = (flags.out as string | undefined) ?? join("runs", stamp);
const t0 = performance.now();
const log = (s: string) =>
  console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${s}`);

const sections: ReportSection[] = [];
const metrics: Record<string, unknown> = { quick, seed: 0 };

// 1. Models
const base = await loadModel("toy-base");
const shallow = await loadModel("toy-shallow");
log(`${base}`);
log(`backend: ${base.backend.reason}`);
const world = generateWorld({ seed: 0 });
const test = (kind: string, n: number) =>
  world.prompts.filter((p) => p.split === "test" && p.kind === kind).slice(0, n);

// 2. Generations and hidden states
const samples = [
  ...test("task", 2),
  ...test("harmful", 2),
  ...test("borderline", 1),
  ...test("jailbreak", 1),
];
const gb = await base.generate({ prompts: samples.map((s) => s.prompt), maxNewTokens: 40 });
const gs = await shallow.generate({ prompts: samples.map((s) => s.prompt), maxNewTokens: 40 });
const sampleRows = samples.map((s, i) => ({
  kind: s.kind,
  prompt: s.prompt,
  "toy-base": gb.text[i],
  "toy-shallow": gs.text[i],
}));
log("generated samples");

const normRows: Record<string, number>[] = [];
for (const [name, m] of [["toy-base", base], ["toy-shallow", shallow]] as const) {
  const ids = samples.map((s) => encodePrompt(m.tokenizer, s.prompt));
  for (let i = 0; i < ids.length; i++) {
    const f = m.forward([ids[i]], { hiddenStates: "all", logits: "none" });
    const norms = await Promise.all(
      f.hiddenStates.map(async (h) => (await tf.tidy(() => tf.mean(tf.norm(h, 2, -1))).data())[0]),
    );
    tf.dispose(f.hiddenStates);
    norms.forEach((v, layer) => {
      let row = normRows.find((r) => r.layer === layer);
      if (!row) normRows.push(row = { layer });
      row[`${name} ${samples[i].kind}`] = ((row[`${name} ${samples[i].kind}`] ?? 0) as number) +
        v / 2;
    });
  }
}
sections.push({
  heading: "The model organisms",
  text: `${base}\n\n${shallow}\n\nBackend: ${base.backend.reason}.\n\n` +
    "toy-base was trained on SafetyWorld's base set, where harmful requests are answered; toy-shallow " +
    "is toy-base after a short refusal fine-tune. Greedy answers to held-out test prompts:",
  tables: [{ title: "Sample generations (greedy, test split)", rows: sampleRows }],
  figures: [
    plotCurves(normRows, {
      x: "layer",
      y: Object.keys(normRows[0]).filter((k) => k !== "layer"),
      overlay: true,
      title: "Mean residual-stream norm per layer (hidden state 0 = embeddings)",
      yTitle: "mean ||h||",
    }),
  ],
});

// 3. The safety compass
const compass = await runCompassSection(base, world, { quick, log });
if (compass) {
  sections.push(compass.section);
  metrics.compass = compass.metrics;
}

// 4. Shallow safety
const per = quick ? 40 : 100;
const pb = await profileModel(base, "toy-base", world.prompts, {
  perKind: per,
  prefillDepths: [1, 3, 5, 10],
});
const ps = await profileModel(shallow, "toy-shallow", world.prompts, {
  perKind: per,
  prefillDepths: [1, 3, 5, 10],
  harmfulAnswers: pb.harmfulAnswers,
});
const profile: RateRow[] = [...pb.rows, ...ps.rows];
log("profiled both models");
const harmfulRows = test("harmful", per).filter((r) => pb.harmfulAnswers.has(r.id));
const kl = await klByPosition(
  shallow,
  base,
  harmfulRows.map((r) => r.prompt),
  harmfulRows.map((r) => pb.harmfulAnswers.get(r.id)!),
  { maxPositions: 24 },
);
log("KL by position");
const prefill = profile.filter((r) => r.metric === "prefill compliance");
const headline = profile.filter((r) => r.metric !== "prefill compliance");
const figures: PlotlyFigure[] = [
  plotBars(
    headline.map((r) => ({ name: r.metric, value: r.rate, lo: r.lo, hi: r.hi, group: r.model })),
    {
      title: "Behaviour on held-out test prompts (95% intervals over templates and prompts)",
      yTitle: "rate",
    },
  ),
  plotRateCurve(
    [
      ...headline.filter((r) => r.metric === "harmful compliance").map((r) => ({
        x: 0,
        rate: r.rate,
        lo: r.lo,
        hi: r.hi,
        series: r.model,
      })),
      ...prefill.map((r) => ({ x: r.k!, rate: r.rate, lo: r.lo, hi: r.hi, series: r.model })),
    ],
    {
      xTitle: "prefilled harmful tokens k",
      yTitle: "harmful compliance",
      title: "Prefill attack: compliance vs depth",
    },
  ),
  plotPositionKl(kl.map((r) => ({ position: r.position, kl: r.kl })), {
    title: "KL(toy-shallow || toy-base) along toy-base's harmful answers",
  }),
];
sections.push({
  heading: "Shallow safety",
  text: "Rates are over held-out test prompts (test templates and entities), greedy decoding, " +
    "graded by SafetyWorld's rule-based graders; intervals are 95% two-level percentile " +
    "bootstraps over templates, then prompts (Wilson's over the templates at 0 or 100%). " +
    "The prefill attack forces the first k tokens of toy-base's own harmful answer.",
  figures,
  tables: [{ title: "Profile", rows: profile as unknown as Record<string, unknown>[] }, {
    title: "KL by response position",
    rows: kl as unknown as Record<string, unknown>[],
  }],
});
metrics.profile = profile;
metrics.klByPosition = kl;

await Deno.mkdir(out, { recursive: true });
await writeReport(
  join(out, "report.html"),
  buildReport({
    title: "safety-compass demo: SafetyWorld",
    subtitle: `${new Date().toISOString()} · seed 0${
      quick ? " · quick" : ""
    } · ${base.backend.reason}`,
    sections,
  }),
);
await writeJsonAtomic(join(out, "metrics.json"), metrics);
const csv = [
  "model,metric,k,rate,lo,hi,n,templates,method",
  ...profile.map((r) =>
    [r.model, r.metric, r.k ?? "", r.rate, r.lo, r.hi, r.n, r.templates ?? "", r.method ?? ""]
      .join(",")
  ),
];
await writeTextFileAtomic(join(out, "profile.csv"), csv.join("\n") + "\n");
for (const r of profile) {
  console.log(
    `${r.model.padEnd(12)} ${(r.metric + (r.k !== undefined ? ` k=${r.k}` : "")).padEnd(30)} ${
      (100 * r.rate).toFixed(1).padStart(5)
    }% [${(100 * r.lo).toFixed(1)}, ${(100 * r.hi).toFixed(1)}]`,
  );
}
log(`wrote ${join(out, "report.html")}`);
