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
import { loadModel, resolveModelDir } from "../model/load.ts";
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
import { klFindings, profileFindings } from "./demo_summary.ts";
import { cliArgs } from "./args.ts";
import { provenance, shellQuote } from "../io/provenance.ts";
import {
  hatchSmallN,
  nLabel,
  seriesColors,
  withIntegerTicks,
  withSeriesColors,
} from "../viz/palette.ts";
import { formatPercentInterval, formatRateCount } from "../viz/format_rate.ts";

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

/** Norm curves named "<model> <kind>": colour by model, line style by prompt kind. */
function styleModelKind(fig: PlotlyFigure): PlotlyFigure {
  const dash: Record<string, string> = {
    task: "solid",
    harmful: "dash",
    borderline: "dot",
    jailbreak: "dashdot",
  };
  const models = [...new Set(fig.data.map((t) => String(t.name).split(" ")[0]))];
  const colors = seriesColors(models);
  for (const t of fig.data) {
    const [model, kind] = String(t.name).split(" ");
    t.line = { ...(t.line as Record<string, unknown>), color: colors.get(model), dash: dash[kind] };
    t.marker = { color: colors.get(model) };
  }
  return fig;
}

const SEED = 0;
const sections: ReportSection[] = [];
const summary: string[] = [];
const metrics: Record<string, unknown> = { quick, seed: SEED };

// 1. Models
const base = await loadModel("toy-base");
const shallow = await loadModel("toy-shallow");
log(`${base}`);
log(`backend: ${base.backend.reason}`);
const prov = await provenance({
  model: [
    { name: "toy-base", dir: await resolveModelDir("toy-base") },
    { name: "toy-shallow", dir: await resolveModelDir("toy-shallow") },
  ],
  seed: { world: SEED, sampling: SEED, bootstrap: SEED },
  command: ["deno", "task", "demo", ...Deno.args].map(shellQuote).join(" "),
  versions: { "tfjs-core": tf.version_core, "tfjs backend": tf.getBackend() },
  backend: base.backend.reason,
});
metrics.provenance = prov;
const world = generateWorld({ seed: SEED });
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
  tables: [{
    title: "Sample generations (greedy, test split)",
    rows: sampleRows,
    columns: {
      kind: "Kind",
      prompt: "Prompt",
      "toy-base": "toy-base",
      "toy-shallow": "toy-shallow",
    },
  }],
  figures: [
    withIntegerTicks(styleModelKind(plotCurves(normRows, {
      x: "layer",
      y: Object.keys(normRows[0]).filter((k) => k !== "layer"),
      overlay: true,
      title: "Mean residual-stream norm per layer (hidden state 0 = embeddings)",
      xTitle: "Layer (0 = embeddings)",
      yTitle: "mean ||h||",
    }))),
  ],
});

// 3. The safety compass
const compass = await runCompassSection(base, world, { quick, log });
if (compass) {
  sections.push(compass.section);
  metrics.compass = compass.metrics;
  summary.push(...compass.findings);
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
// Bars are named with their n, and small subgroups are hatched (same n for both models).
const barName = (r: RateRow) => `${r.metric}<br>${nLabel(r.n)}`;
const barN = new Map(headline.map((r) => [`${r.model}|${barName(r)}`, r.n]));
const figures: PlotlyFigure[] = [
  hatchSmallN(
    withSeriesColors(plotBars(
      headline.map((r) => ({
        name: barName(r),
        value: r.rate,
        lo: r.lo,
        hi: r.hi,
        group: r.model,
      })),
      {
        title: "Behaviour on held-out test prompts (95% intervals over templates and prompts)",
        yTitle: "rate",
      },
    )),
    (model, name) => barN.get(`${model}|${name}`),
  ),
  withIntegerTicks(withSeriesColors(plotRateCurve(
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
  ))),
  withIntegerTicks(plotPositionKl(kl.map((r) => ({ position: r.position, kl: r.kl })), {
    title: "KL(toy-shallow || toy-base) along toy-base's harmful answers",
  })),
];
sections.push({
  heading: "Shallow safety",
  text: "Rates are over held-out test prompts (test templates and entities), greedy decoding, " +
    "graded by SafetyWorld's rule-based graders; intervals are 95% two-level percentile " +
    "bootstraps over templates, then prompts (Wilson's over the templates at 0 or 100%). " +
    "The prefill attack forces the first k tokens of toy-base's own harmful answer.",
  figures,
  tables: [{
    title: "Profile (rates over held-out test prompts)",
    rows: profile.map((r) => ({
      Model: r.model,
      Metric: r.metric,
      "Prefill k": r.k ?? "",
      "Rate (count/n)": formatRateCount(r.rate, r.n),
      "95% interval": formatPercentInterval(r.lo, r.hi),
      n: r.n < 30 ? `${r.n} (small)` : r.n,
      Templates: r.templates ?? "",
    })),
  }, {
    title: "KL by response position",
    rows: kl as unknown as Record<string, unknown>[],
    columns: { position: "Response position", kl: "KL (nats)", n: "Answers (n)" },
  }],
});
summary.push(
  ...profileFindings(profile, { prefillFrom: "toy-base" }),
  ...klFindings(kl, "toy-shallow", "toy-base"),
);
metrics.profile = profile;
metrics.klByPosition = kl;

await Deno.mkdir(out, { recursive: true });
await writeReport(
  join(out, "report.html"),
  buildReport({
    title: "safety-compass demo: SafetyWorld",
    subtitle: `${prov.date} · seed ${SEED}${quick ? " · quick" : ""}${
      prov.git ? ` · commit ${prov.git.commit.slice(0, 10)}${prov.git.dirty ? " (dirty)" : ""}` : ""
    } · ${base.backend.reason}`,
    summary,
    sections,
    provenance: prov,
  }),
);
await writeJsonAtomic(join(out, "metrics.json"), metrics);
const csv = [
  "model,metric,k,rate,lo,hi,n,hits,templates,method",
  ...profile.map((r) =>
    [
      r.model,
      r.metric,
      r.k ?? "",
      r.rate,
      r.lo,
      r.hi,
      r.n,
      Math.round(r.rate * r.n),
      r.templates ?? "",
      r.method ?? "",
    ].join(",")
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
