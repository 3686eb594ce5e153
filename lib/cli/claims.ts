/**
 * `deno task claims [flags]`: the claims ledger (lib/experiments/claims.ts) as a markdown table,
 * read from the committed results in `datasets/results/` (and, with `--runs DIR`, from run
 * folders too); `--json PATH` also writes every ledger row (measurements, rules, runs) as JSON.
 *
 * `--collect DIR` first copies the newest FULL-size result of each experiment under DIR (e.g.
 * `runs/`) into the results folder, with a provenance.json naming the run folder and its date;
 * quick (CI) results are never copied. The README's "Claims ledger" table is this task's output
 * with no flags (tests/claims_test.ts checks they match).
 *
 * `--tables` also prints the README's result tables generated from the same saved results
 * (lib/experiments/result_tables.ts); `--write-readme PATH` rewrites that README's ledger table,
 * counts line and every `<!-- table: ID -->` block in place (atomically), so nothing in them is
 * pasted by hand.
 *
 * @module
 */

import { writeJsonAtomic } from "../io/atomic.ts";
import { claimsLedger, countsLine, verdictCounts } from "../experiments/claims.ts";
import { fillLedgerSection, ledgerMarkdown } from "../experiments/claims_table.ts";
import { fillTableBlocks, resultTables } from "../experiments/result_tables.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { collectResults, loadSavedResults } from "../experiments/saved_results.ts";
import { cliArgs, type CliSpec } from "./args.ts";

const CLI: CliSpec = {
  usage: "usage: deno task claims [--results DIR] [--runs DIR]... [--collect DIR] [--json PATH] " +
    "[--tables] [--write-readme PATH]",
  summary: "Prints the claims ledger (one row per claim of the seed papers) as a markdown table.",
  flags: {
    results: {
      type: "string",
      value: "DIR",
      help: "the committed results folder",
      default: "datasets/results",
    },
    runs: {
      type: "string",
      value: "DIR",
      help: "also read run folders here (newest full-size result per experiment wins)",
      multiple: true,
    },
    collect: {
      type: "string",
      value: "DIR",
      help: "first copy the newest full-size result of each experiment under DIR into --results",
    },
    json: { type: "string", value: "PATH", help: "also write the ledger rows as JSON" },
    tables: {
      type: "boolean",
      help: "also print the README's result tables from the same results",
    },
    "write-readme": {
      type: "string",
      value: "PATH",
      help: "rewrite that README's ledger and result-table blocks in place",
    },
  },
};

const { values: v } = cliArgs(Deno.args, CLI);
const results = (v.results as string | undefined) ?? "datasets/results";
if (typeof v.collect === "string") {
  const copied = await collectResults(v.collect, results);
  console.error(
    copied.length
      ? copied.map((r) => `collected ${r.run} -> ${r.path}`).join("\n")
      : `no full-size result under ${v.collect}: nothing collected`,
  );
}
const saved = await loadSavedResults(results, ...((v.runs as string[] | undefined) ?? []));
const ledger = claimsLedger(saved);
console.log(ledgerMarkdown(ledger));
const counts = verdictCounts(ledger);
console.log(`\n${countsLine(ledger)}`);
const tables = resultTables(saved);
if (v.tables === true) {
  for (const t of tables) console.log(`\n<!-- table: ${t.id} -->\n${t.caption}\n\n${t.markdown}`);
}
if (typeof v["write-readme"] === "string") {
  const path = v["write-readme"];
  const before = await Deno.readTextFile(path);
  const after = fillTableBlocks(fillLedgerSection(before, ledger), tables);
  await writeTextFileAtomic(path, after);
  console.error(after === before ? `${path}: already up to date` : `rewrote ${path}`);
}
if (typeof v.json === "string") {
  await writeJsonAtomic(v.json, {
    results: Object.values(saved).map((r) => ({
      experiment: r.experiment,
      run: r.run,
      date: r.date,
      quick: r.quick,
      path: r.path,
    })),
    counts,
    ledger,
  });
  console.error(`wrote ${v.json}`);
}
