/**
 * lib/data/csv.ts after its indexOf/slice rewrite (issue #20 item 9): RFC 4180 edge cases with
 * the line each record starts on, lone-CR and mixed line endings, and a seeded round trip of
 * random records (fields with quotes, separators, LF, CRLF and lone CR, unicode) written by an
 * RFC 4180 writer here, checked against the records and against papaparse 5 on the same text.
 * The speed comparison with csv-parse and papaparse is bench/csv_compare.ts.
 */
import assert from "node:assert/strict";
import Papa from "papaparse";
import { parseCsv } from "../lib/data/csv.ts";
import { makeRng } from "../lib/data/rng.ts";

const vals = (text: string, delimiter = ",") =>
  parseCsv(text, "t.csv", { delimiter }).rows.map((r) => [r.line, ...r.values]);

Deno.test("parseCsv: RFC 4180 edge cases and the line each record starts on", () => {
  assert.deepEqual(vals('a,b\n"x\ny",2\n3,4\n'), [[2, "x\ny", "2"], [4, "3", "4"]]);
  assert.deepEqual(vals('a,b\r\n"say ""hi""",2\r\n'), [[2, 'say "hi"', "2"]]);
  assert.deepEqual(vals('a\r\n"x\r\ny"\r\nz\r\n'), [[2, "x\r\ny"], [4, "z"]]);
  assert.deepEqual(vals("\ufeffa,b\n1,2"), [[2, "1", "2"]], "BOM, no final newline");
  assert.deepEqual(vals("a,b,c\n,,\n"), [[2, "", "", ""]]);
  assert.deepEqual(vals('a,b\n"",x\n""""\t,y\n'.replace("\t", "")), [[2, "", "x"], [3, '"', "y"]]);
  assert.deepEqual(vals("a,b\n1,2\n\n\r\n3,4\n"), [[2, "1", "2"], [5, "3", "4"]], "blank lines");
  assert.deepEqual(vals('a\rb\r"c\rd"\re\r'), [[2, "b"], [3, "c\rd"], [5, "e"]], "lone CR");
  assert.deepEqual(vals('a\nx"y\n'), [[2, 'x"y']], "quote inside an unquoted field is literal");
  assert.deepEqual(vals("a\tb\n1,2\t3\n", "\t"), [[2, "1,2", "3"]]);
  assert.deepEqual(vals('a,b\n"1,5",2'), [[2, "1,5", "2"]]);
  assert.deepEqual(vals("a,b\n1,"), [[2, "1", ""]], "empty last field at end of text");
});

Deno.test("parseCsv: malformed files are errors naming file, line and the fix", () => {
  assert.throws(() => parseCsv("a,b\n1,2,3\n", "r.csv"), /^Error: r\.csv:2: expected 2 fields/);
  assert.throws(() => parseCsv('a,b\n"x\n\n1\n', "u.csv"), /u\.csv:2: unterminated quoted/);
  assert.throws(
    () => parseCsv('a,b\n"x\ny"z,2\n', "q.csv"),
    /q\.csv:3: unexpected "z" after the closing quote of field 1/,
  );
  assert.throws(() => parseCsv('a,b\n"x""', "e.csv"), /e\.csv:2: unterminated quoted field/);
});

/** An RFC 4180 writer: quote a field holding a quote, separator, CR or LF; double quotes. */
function writeCsv(records: string[][], eol: string): string {
  const q = (f: string) => (/[",\r\n]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f);
  return records.map((r) => r.map(q).join(",")).join(eol) + eol;
}

Deno.test("parseCsv: seeded random round trip, and papaparse reads the same records", () => {
  const rng = makeRng(20);
  const alphabet = ["a", "b", " ", ",", '"', "\n", "\r\n", "\r", "\u00e9", "\u{1F600}", "x"];
  for (let trial = 0; trial < 300; trial++) {
    const cols = 1 + Math.floor(rng.next() * 5);
    const nRows = 1 + Math.floor(rng.next() * 6);
    const field = () => {
      const len = Math.floor(rng.next() * 8);
      let s = "";
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(rng.next() * alphabet.length)];
      return s;
    };
    const header = Array.from({ length: cols }, (_, j) => `c${j}`);
    // A record of one empty field is written as a blank line, which CSV cannot tell apart.
    const rows = Array.from({ length: nRows }, () => Array.from({ length: cols }, field))
      .filter((r) => !(cols === 1 && r[0] === ""));
    const eol = rng.next() < 0.5 ? "\n" : "\r\n";
    const text = writeCsv([header, ...rows], eol);
    const t = parseCsv(text, "rt.csv");
    assert.deepEqual(t.header, header);
    assert.deepEqual(t.rows.map((r) => r.values), rows, JSON.stringify(text));
    // Start lines: 2 + the line breaks of every earlier record (header included).
    let line = 1;
    for (const [k, rec] of [header, ...rows].entries()) {
      if (k > 0) {
        assert.equal(t.rows[k - 1].line, line, `line of record ${k} in ${JSON.stringify(text)}`);
      }
      // A CRLF inside a field is one line break, as is a lone LF or CR.
      const breaks = (f: string) => (f.replaceAll("\r\n", "\n").match(/[\r\n]/g) ?? []).length;
      line += 1 + rec.reduce((sum, f) => sum + breaks(f), 0);
    }
    const papa = Papa.parse<string[]>(text, { skipEmptyLines: true, delimiter: ",", newline: eol });
    assert.deepEqual(papa.data, [header, ...rows], "papaparse agrees");
  }
});
