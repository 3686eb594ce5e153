/**
 * lib/data/parquet.ts against files written by an independent writer (pyarrow): every value
 * round-trips exactly (ints, int64, floats and float32 bit for bit, strings, booleans, nulls,
 * lists), column selection and row windows across row groups, and errors that say what is
 * wrong. With pyarrow installed the files are written fresh; without it the committed copies
 * in tests/fixtures/parquet (written by the same script, tests/fixtures/parquet/make.py) are
 * read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parquetInfo, readParquet, readParquetTable } from "../lib/data/parquet.ts";
import { loadPrompts } from "../lib/data/benchmarks/prompts.ts";
import { loadBenchmark } from "../lib/data/benchmarks/load.ts";

const FIXTURES = fileURLToPath(new URL("./fixtures/parquet/", import.meta.url));

function hasPyarrow(): boolean {
  try {
    return new Deno.Command("python3", { args: ["-c", "import pyarrow"], stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** The folder of the fixtures: freshly written by pyarrow when it is installed. */
async function fixtures(): Promise<{ dir: string; fresh: boolean; done: () => Promise<void> }> {
  if (!hasPyarrow()) {
    console.log("pyarrow not installed: reading the committed pyarrow-written fixtures");
    return { dir: FIXTURES, fresh: false, done: async () => {} };
  }
  const dir = await Deno.makeTempDir();
  const r = new Deno.Command("python3", {
    args: [join(FIXTURES, "make.py"), dir],
    stderr: "piped",
  }).outputSync();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  return { dir, fresh: true, done: () => Deno.remove(dir, { recursive: true }) };
}

type Expected = Record<string, unknown>;

/** The expected row with floats decoded from float.hex. */
function decode(row: Expected): Expected {
  const out: Expected = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = v !== null && typeof v === "object" && "hex" in (v as object)
      ? fromHex((v as { hex: string }).hex)
      : v;
  }
  return out;
}

/** Python's float.hex ("0x1.999999999999ap-4", "inf", "-0x0.0p+0") as a number, exactly. */
function fromHex(h: string): number {
  if (h === "inf") return Infinity;
  if (h === "-inf") return -Infinity;
  const m = /^(-?)0x([01])\.([0-9a-f]*)p([+-]\d+)$/.exec(h);
  if (!m) throw new Error(`bad float hex ${h}`);
  let mant = BigInt(`0x${m[2]}${m[3] || "0"}`);
  let exp = Number(m[4]) - 4 * (m[3] || "0").length;
  // mant * 2^exp, exactly: scale in steps that stay exact in doubles.
  let v = 0;
  if (mant !== 0n) {
    while (mant > 2n ** 53n) (mant >>= 1n, exp++); // never taken for doubles (53 bits)
    v = Number(mant);
    while (exp > 0) (v *= 2, exp--);
    while (exp < 0) (v /= 2, exp++);
  }
  return m[1] === "-" ? -v : v;
}

Deno.test("readParquet: every value round-trips exactly (pyarrow-written, two row groups, every codec)", async () => {
  const fx = await fixtures();
  try {
    const expected = JSON.parse(await Deno.readTextFile(join(fx.dir, "mixed.json")));
    const want = (expected.rows as Expected[]).map(decode);
    for (
      const file of [
        "mixed.parquet",
        "plain.parquet",
        "zstd.parquet",
        "gzip.parquet",
        "brotli.parquet",
        "lz4.parquet",
      ]
    ) {
      const cols = Object.keys(want[0]);
      const rows = await readParquet(join(fx.dir, file), { columns: cols });
      assert.equal(rows.length, want.length, file);
      rows.forEach((row, i) => {
        for (const c of cols) {
          if (typeof want[i][c] === "number") {
            assert.ok(
              Object.is(row[c], want[i][c]),
              `${file} row ${i} ${c}: ${row[c]} vs ${want[i][c]}`,
            );
          } else {
            assert.deepEqual(row[c], want[i][c], `${file} row ${i} ${c}`);
          }
        }
      });
    }
    const info = await parquetInfo(join(fx.dir, "mixed.parquet"));
    assert.equal(info.numRows, 8);
    assert.equal(info.rowGroups, 2);
    assert.deepEqual(info.codecs, ["SNAPPY"]);
    assert.match(info.createdBy ?? "", /parquet-cpp-arrow/);
    assert.deepEqual(info.columns.map((c) => c.name), [
      "id",
      "i32",
      "f64",
      "f32",
      "text",
      "flag",
      "tags",
      "nums",
      "label",
      "big",
    ]);
    assert.equal(info.columns.find((c) => c.name === "id")!.type, "INT64");
  } finally {
    await fx.done();
  }
});

Deno.test("readParquet: column order, row windows across row groups, arquero table", async () => {
  const fx = await fixtures();
  try {
    const path = join(fx.dir, "mixed.parquet");
    const all = await readParquet(path, { columns: ["label", "id"] });
    assert.deepEqual(Object.keys(all[0]), ["label", "id"]);
    assert.deepEqual(all.map((r) => r.id), [1, 2, 3, 4, 5, 6, 7, 8]);
    const window = await readParquet(path, { columns: ["id"], offset: 3, limit: 4 }); // spans groups
    assert.deepEqual(window.map((r) => r.id), [4, 5, 6, 7]);
    assert.deepEqual(await readParquet(path, { columns: ["id"], offset: 6, limit: 10 }), [
      { id: 7 },
      { id: 8 },
    ]);
    assert.deepEqual(await readParquet(path, { offset: 8 }), []);
    assert.deepEqual(await readParquet(path, { limit: 0 }), []);
    const t = await readParquetTable(path, { columns: ["id", "label"] });
    assert.equal(t.numRows(), 8);
    assert.deepEqual(t.columnNames(), ["id", "label"]);
    assert.deepEqual(t.array("label"), all.map((r) => r.label));
  } finally {
    await fx.done();
  }
});

Deno.test("readParquet: int64 beyond 2^53, unknown columns, bad ranges, non-Parquet files", async () => {
  const fx = await fixtures();
  try {
    const path = join(fx.dir, "mixed.parquet");
    await assert.rejects(
      readParquet(path, { columns: ["big"] }),
      /column "big", row 0: 64-bit integer 1152921504606846976 does not fit .* int64: "bigint"/,
    );
    const big = await readParquet(path, { columns: ["big"], limit: 2, int64: "bigint" });
    assert.deepEqual(big, [{ big: 2n ** 60n }, { big: 1n }]);
    await assert.rejects(
      readParquet(path, { columns: ["prompt"] }),
      /no column "prompt"; columns found: "id", "i32",/,
    );
    await assert.rejects(readParquet(path, { limit: -1 }), /limit must be a whole number >= 0/);
    await assert.rejects(
      readParquet(join(fx.dir, "nope.parquet")),
      /Cannot read Parquet file .*nope/,
    );
    await assert.rejects(
      readParquet(join(fx.dir, "mixed.json")),
      /Cannot read .*mixed\.json as Parquet: .*PAR1/,
    );
  } finally {
    await fx.done();
  }
});

Deno.test("loadPrompts and loadBenchmark read .parquet as they read .csv/.jsonl", async () => {
  const fx = await fixtures();
  try {
    const t = await loadPrompts(join(fx.dir, "prompts.parquet"));
    assert.deepEqual(t.array("prompt"), [
      "how do i bake bread",
      "how do i make zorblat",
      "how do i kill a process",
    ]);
    assert.deepEqual(t.array("label"), ["benign", "harmful", "borderline"]);
    assert.deepEqual(t.array("category"), ["cooking", "weapons", "computing"]);
    const adv = await loadBenchmark("advbench", join(fx.dir, "advbench.parquet"));
    assert.deepEqual(adv.array("prompt"), ["Write a tutorial on x", "Explain y"]);
    assert.deepEqual(adv.array("target"), ["Sure, here is a tutorial", "Sure, here is y"]);
    assert.deepEqual(adv.array("label"), ["harmful", "harmful"]);
    await assert.rejects(
      loadBenchmark("xstest", join(fx.dir, "advbench.parquet")),
      /missing column.*columns found: "goal", "target"/,
    );
  } finally {
    await fx.done();
  }
});
