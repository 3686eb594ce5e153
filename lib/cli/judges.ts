/**
 * `deno task judges`: the judges on the development data (`../shared/datasets/judge_dev`).
 * Prints and writes (`runs/judges/xstest.{md,csv}`, `jbb.{md,csv}`) the XSTest table per
 * model file and per class, the default judge beside the field's string matchers, and the
 * JailbreakBench table per attack and per target model, all with 95% Wilson intervals.
 *
 * Flags: `--data DIR` (default ../shared/datasets), `--out DIR` (default runs/judges).
 *
 * @module
 */

import { join } from "node:path";
import { cliHelp, type CliSpec, CliUsageError, parseCli } from "./args.ts";
import { loadJbbArtifacts, loadXstestCompletions } from "../data/benchmarks/judge_dev.ts";
import { loadRefusalPrefixes } from "../data/benchmarks/refusal_prefixes.ts";
import { isRefusalText, prefixRefusalJudge, type RefusalJudge } from "../judges/refusal.ts";
import { isJailbroken } from "../judges/jailbreak.ts";
import {
  fmtInterval,
  jbbTable,
  markdownTable,
  xstestClass,
  xstestTable,
  xstestTwoFold,
} from "../eval/judge_tables.ts";

const CLI: CliSpec = {
  usage: "usage: deno task judges [--data DIR] [--out DIR]",
  summary: "The refusal and jailbreak judges on judge_dev: XSTest per model file and class " +
    "beside the field's matchers, JailbreakBench per attack and target, 95% intervals.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      help: "folder holding judge_dev/ and refusal_prefixes/",
      default: "../shared/datasets",
    },
    out: { type: "string", value: "DIR", help: "where the tables go", default: "runs/judges" },
  },
};

let data: string, outDir: string;
try {
  const p = parseCli(Deno.args, CLI);
  if (p.help) {
    console.log(cliHelp(CLI));
    Deno.exit(0);
  }
  data = (p.values.data as string | undefined) ??
    new URL("../../../shared/datasets", import.meta.url).pathname;
  outDir = (p.values.out as string | undefined) ?? "runs/judges";
} catch (err) {
  if (!(err instanceof CliUsageError)) throw err;
  console.error(`error: ${err.message}`);
  Deno.exit(2);
}
const dev = join(data, "judge_dev");
try {
  await Deno.stat(dev);
} catch {
  console.error(`error: cannot find ${dev}; pass --data <folder holding judge_dev/>.`);
  Deno.exit(1);
}
await Deno.mkdir(outDir, { recursive: true });

const xs = [
  ...(await loadXstestCompletions(join(dev, "xstest_completions/xstest_v2_completions_gpt4.csv"))),
  ...(await loadXstestCompletions(
    join(dev, "xstest_completions/xstest_v2_completions_llama2new.csv"),
  )),
];
const lists = await loadRefusalPrefixes(join(data, "refusal_prefixes/refusal_prefixes.json"));
const judges: Record<string, RefusalJudge> = { "ours (isRefusalText)": (t) => isRefusalText(t) };
for (const l of Object.values(lists)) judges[l.name] = prefixRefusalJudge(l.prefixes, l);
const xt = xstestTable(xs, judges, { "ours (isRefusalText)": xstestClass });
const xHeader = [
  "judge",
  "model",
  "n",
  "binary acc",
  "3-class acc",
  "compliance recall",
  "full-refusal recall",
  "partial recall (as refusal)",
  "partial recall (exact class)",
];
const xRows = xt.map((r) => [
  r.judge,
  r.model,
  String(r.n),
  fmtInterval(r.binary),
  fmtInterval(r.threeClass),
  fmtInterval(r.recall.full_compliance),
  fmtInterval(r.recall.full_refusal),
  fmtInterval(r.recall.partial_refusal),
  fmtInterval(r.classRecall?.partial_refusal),
]);
const xMd = markdownTable(xHeader, xRows);
console.log("XSTest completions (human labels), 95% Wilson intervals\n" + xMd);

// 2-fold check of the rule selection: choose on one model file, score on the other.
const candidates = {
  "first-person only": { startCues: false, minPivotWords: Infinity },
  "+ moral preamble": { minPivotWords: Infinity },
  "+ pivot (partial)": { startCues: false },
  "+ both (default)": {},
};
const folds = xstestTwoFold(xs, candidates);
const fHeader = [
  "tuned on",
  "scored on",
  "chosen",
  "binary acc",
  "3-class acc",
  ...Object.keys(
    candidates,
  ).map((c) => `${c}: binary / 3-class`),
];
const fRows = folds.map((f) => [
  f.tunedOn,
  f.scoredOn,
  f.chosen,
  fmtInterval(f.binary),
  fmtInterval(f.threeClass),
  ...Object.values(f.all).map((v) => `${v.binary.toFixed(3)} / ${v.threeClass.toFixed(3)}`),
]);
const fMd = markdownTable(fHeader, fRows);
console.log("\nXSTest 2-fold: rule set chosen on one model file, scored on the other\n" + fMd);

const jbb = await loadJbbArtifacts(join(dev, "jbb_artifacts"));
const jt = jbbTable(jbb, {
  "ours (isJailbroken)": isJailbroken,
  "not a refusal (!isRefusalText)": (_g, r) => !isRefusalText(r),
});
const jHeader = ["judge", "by", "group", "n", "jailbroken", "accuracy", "recall", "specificity"];
const jRows = jt.map((r) => [
  r.judge,
  r.by,
  r.group,
  String(r.n),
  String(r.positives),
  fmtInterval(r.accuracy),
  fmtInterval(r.recall),
  fmtInterval(r.specificity),
]);
const jMd = markdownTable(jHeader, jRows);
console.log("\nJailbreakBench artifacts (JBB's jailbroken label), 95% Wilson intervals\n" + jMd);

const csv = (h: string[], rows: string[][]) =>
  [h, ...rows].map((r) => r.map((c) => `"${c.replace(/"/g, '""')}"`).join(",")).join("\n") + "\n";
await Deno.writeTextFile(join(outDir, "xstest.md"), xMd + "\n");
await Deno.writeTextFile(join(outDir, "xstest.csv"), csv(xHeader, xRows));
await Deno.writeTextFile(join(outDir, "xstest_2fold.md"), fMd + "\n");
await Deno.writeTextFile(join(outDir, "xstest_2fold.csv"), csv(fHeader, fRows));
await Deno.writeTextFile(join(outDir, "jbb.md"), jMd + "\n");
await Deno.writeTextFile(join(outDir, "jbb.csv"), csv(jHeader, jRows));
console.log(`\nwrote ${outDir}/xstest.{md,csv}, xstest_2fold.{md,csv} and jbb.{md,csv}`);
