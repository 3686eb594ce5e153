/**
 * Our CSV reader (lib/data/csv.ts) beside two well-kept npm parsers, csv-parse 7 (the
 * node-csv project) and papaparse 5: correctness on RFC 4180 edge cases (same expected
 * records for all three, a ragged or malformed file must be an error), then speed on a large
 * real file (the XSTest v2 completions CSV from ../shared, its data lines repeated to about
 * 50 MB: long quoted multi-line fields, commas and doubled quotes).
 *
 * usage: deno run --allow-read bench/csv_compare.ts [--mb 50] [--reps 3]
 *
 * @module
 */

import { parse as csvParse } from "csv-parse/sync";
import Papa from "papaparse";
import { parseCsv } from "../lib/data/csv.ts";

type Table = { header: string[]; rows: string[][] };
type Parser = (text: string) => Table;

/** Every parser is asked for the same thing: header + records, blank lines skipped, strict. */
const PARSERS: Record<string, Parser> = {
  "ours (lib/data/csv.ts)": (text) => {
    const t = parseCsv(text, "bench.csv");
    return { header: t.header, rows: t.rows.map((r) => r.values) };
  },
  "csv-parse 7.0.3": (text) => {
    const recs = csvParse(text, { bom: true, skip_empty_lines: true }) as string[][];
    return { header: recs[0] ?? [], rows: recs.slice(1) };
  },
  "papaparse 5.5.3": (text) => {
    const r = Papa.parse<string[]>(text, { skipEmptyLines: true, delimiter: "," });
    const bad = r.errors.filter((e) => e.type !== "Delimiter");
    if (bad.length > 0) throw new Error(`${bad[0].code}: ${bad[0].message}`);
    const recs = r.data;
    // papaparse keeps a BOM on the first field; strip it like the others.
    if (recs[0]?.[0]?.startsWith("\ufeff")) recs[0][0] = recs[0][0].slice(1);
    // papaparse reports short/long rows only in header mode: check the width ourselves.
    const width = recs[0]?.length ?? 0;
    const ragged = recs.findIndex((r) => r.length !== width);
    if (ragged > 0) throw new Error(`row ${ragged} has ${recs[ragged].length} fields`);
    return { header: recs[0] ?? [], rows: recs.slice(1) };
  },
};

interface Case {
  name: string;
  text: string;
  /** Expected records (header first), or "error". */
  want: string[][] | "error";
}

const CASES: Case[] = [
  { name: "quoted newline", text: 'a,b\n"x\ny",2\n', want: [["a", "b"], ["x\ny", "2"]] },
  {
    name: "doubled quotes",
    text: 'a,b\n"say ""hi""",2\n',
    want: [["a", "b"], ['say "hi"', "2"]],
  },
  { name: "CRLF", text: "a,b\r\n1,2\r\n3,4\r\n", want: [["a", "b"], ["1", "2"], ["3", "4"]] },
  { name: "CRLF inside quotes", text: 'a\r\n"x\r\ny"\r\n', want: [["a"], ["x\r\ny"]] },
  { name: "UTF-8 BOM", text: "\ufeffa,b\n1,2\n", want: [["a", "b"], ["1", "2"]] },
  { name: "no trailing newline", text: "a,b\n1,2", want: [["a", "b"], ["1", "2"]] },
  { name: "empty fields", text: "a,b,c\n,,\n", want: [["a", "b", "c"], ["", "", ""]] },
  { name: "quoted empty field", text: 'a,b\n"",x\n', want: [["a", "b"], ["", "x"]] },
  { name: "comma inside quotes", text: 'a,b\n"1,5",2\n', want: [["a", "b"], ["1,5", "2"]] },
  {
    name: "blank line between records",
    text: "a,b\n1,2\n\n3,4\n",
    want: [["a", "b"], ["1", "2"], ["3", "4"]],
  },
  {
    name: "unicode",
    text: "a\ncaf\u00e9 \u2603 \u{1F600}\n",
    want: [["a"], ["caf\u00e9 \u2603 \u{1F600}"]],
  },
  { name: "ragged row (long) -> error", text: "a,b\n1,2,3\n", want: "error" },
  { name: "ragged row (short) -> error", text: "a,b\n1\n", want: "error" },
  { name: "unterminated quote -> error", text: 'a,b\n"x,2\n', want: "error" },
  { name: "text after closing quote -> error", text: 'a,b\n"x"y,2\n', want: "error" },
];

function correctness(): Record<string, { pass: number; fails: string[] }> {
  const out: Record<string, { pass: number; fails: string[] }> = {};
  for (const [name, parse] of Object.entries(PARSERS)) {
    const res = { pass: 0, fails: [] as string[] };
    for (const c of CASES) {
      let got: string[][] | "error";
      try {
        const t = parse(c.text);
        got = [t.header, ...t.rows];
      } catch {
        got = "error";
      }
      if (JSON.stringify(got) === JSON.stringify(c.want)) res.pass++;
      else res.fails.push(`${c.name}: got ${JSON.stringify(got).slice(0, 80)}`);
    }
    out[name] = res;
  }
  return out;
}

function bigText(mb: number): string {
  const dir = new URL("../../shared/datasets/judge_dev/xstest_completions/", import.meta.url);
  let src: string;
  try {
    src = Deno.readTextFileSync(new URL("xstest_v2_completions_llama2new.csv", dir));
  } catch {
    throw new Error(
      `bench/csv_compare.ts needs ../shared/datasets/judge_dev/xstest_completions (not found)`,
    );
  }
  // The file ends its records with CRLF (LF inside quoted fields) and has no final one: end
  // the copy with the file's own terminator, or a parser that fixes the terminator from the
  // first record (csv-parse) rightly sees a malformed file.
  const cut = src.indexOf("\n");
  const eol = src[cut - 1] === "\r" ? "\r\n" : "\n";
  const header = src.slice(0, cut + 1);
  let body = src.slice(cut + 1);
  if (!body.endsWith("\n")) body += eol;
  const reps = Math.max(1, Math.round((mb * 1e6) / body.length));
  return header + body.repeat(reps);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

if (import.meta.main) {
  const arg = (flag: string, d: number) => {
    const i = Deno.args.indexOf(flag);
    return i >= 0 ? Number(Deno.args[i + 1]) : d;
  };
  const mb = arg("--mb", 50);
  const reps = arg("--reps", 3);
  console.log(`Correctness on ${CASES.length} RFC 4180 edge cases:`);
  const ok = correctness();
  for (const [name, r] of Object.entries(ok)) {
    console.log(`  ${name.padEnd(24)} ${r.pass}/${CASES.length}`);
    for (const f of r.fails) console.log(`      FAIL ${f}`);
  }
  const text = bigText(mb);
  console.log(`Speed on ${(text.length / 1e6).toFixed(1)} M chars (XSTest completions x N):`);
  // Interleave the parsers across repetitions (the machine is shared: drift hits all alike).
  const times = new Map<string, number[]>(Object.keys(PARSERS).map((k) => [k, []]));
  const digests = new Map<string, string>();
  for (let r = 0; r < reps; r++) {
    for (const [name, parse] of Object.entries(PARSERS)) {
      const t0 = performance.now();
      const t = parse(text);
      times.get(name)!.push((performance.now() - t0) / 1000);
      if (r === 0) {
        // A cheap digest of every field, to check the parsers agree on the whole file.
        let h = 0x811c9dc5;
        for (const row of [t.header, ...t.rows]) {
          for (const f of row) {
            h = Math.imul(h ^ f.length, 0x01000193) >>> 0;
            for (let k = 0; k < f.length; k += 97) {
              h = Math.imul(h ^ f.charCodeAt(k), 0x01000193) >>> 0;
            }
          }
        }
        digests.set(name, `${t.rows.length} records, digest ${h.toString(16)}`);
      }
    }
  }
  for (const [name, ts] of times) {
    const s = median(ts);
    console.log(
      `  ${name.padEnd(24)} ${s.toFixed(3)} s median of ${reps} (min ${
        Math.min(...ts).toFixed(3)
      }; ${(text.length / 1e6 / s).toFixed(1)} M chars/s), ${digests.get(name)}`,
    );
  }
  const agree = new Set(digests.values()).size === 1;
  console.log(agree ? "  all parsers agree on every record" : "  PARSERS DISAGREE");
}
