/**
 * Issue 18 item 5 (loaders): CSV and JSONL files are read as strict UTF-8, JSONL fields are
 * checked against lib/data/schema.ts, deep nesting is refused with file and line, and no
 * error echoes unbounded input. Each test reproduces a probed defect.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readCsv } from "../lib/data/csv.ts";
import { parseJsonlEntries, readJsonl } from "../lib/data/jsonl.ts";
import { loadPrompts } from "../lib/data/benchmarks/prompts.ts";
import { loadBenchmark } from "../lib/data/benchmarks/load.ts";
import { parseWorldJsonl } from "../lib/data/safetyworld/load.ts";
import { decodeUtf8, invalidUtf8Offset, jsonDepthExceeded } from "../lib/io/text.ts";

async function withFile(
  name: string,
  bytes: Uint8Array | string,
  f: (path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = join(dir, name);
  try {
    if (typeof bytes === "string") await Deno.writeTextFile(path, bytes);
    else await Deno.writeFile(path, bytes);
    await f(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const latin1 = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));

/** Asserts a plain Error (not RangeError/TypeError), matching `re`, at most `max` chars. */
async function rejectsWith(p: () => Promise<unknown>, re: RegExp, max = 600): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof Error && err.constructor === Error, `bare ${String(err)}`);
    assert.match(err.message, re);
    assert.ok(err.message.length <= max, `message of ${err.message.length} chars`);
    return true;
  });
}

Deno.test("CSV with invalid UTF-8 is an error with file and line (before: U+FFFD)", async () => {
  await withFile("p.csv", latin1("prompt,label\nhello,benign\ncaf\xe9,harmful\n"), async (p) => {
    await rejectsWith(() => readCsv(p), /p\.csv:3: invalid UTF-8 \(byte 0xe9 at byte offset 29\)/);
    await rejectsWith(() => loadPrompts(p), /p\.csv:3: invalid UTF-8/);
  });
});

Deno.test("JSONL with invalid UTF-8 is an error with file and line (before: U+FFFD)", async () => {
  const bytes = latin1(
    '{"prompt": "a", "label": "benign"}\n{"prompt": "\xff", "label": "benign"}\n',
  );
  await withFile("p.jsonl", bytes, async (p) => {
    await rejectsWith(() => readJsonl(p), /p\.jsonl:2: invalid UTF-8 \(byte 0xff/);
    await rejectsWith(() => loadPrompts(p), /p\.jsonl:2: invalid UTF-8/);
  });
});

Deno.test("the UTF-8 check rejects overlongs, surrogates and truncation, accepts the rest", () => {
  assert.equal(invalidUtf8Offset(new TextEncoder().encode("héllo ✓ 😀")), -1);
  assert.equal(invalidUtf8Offset(new Uint8Array([0xc0, 0x80])), 0); // overlong NUL
  assert.equal(invalidUtf8Offset(new Uint8Array([0x61, 0xed, 0xa0, 0x80])), 1); // surrogate
  assert.equal(invalidUtf8Offset(new Uint8Array([0x61, 0x62, 0xe2, 0x9c])), 2); // truncated
  assert.equal(invalidUtf8Offset(new Uint8Array([0xf4, 0x90, 0x80, 0x80])), 0); // > U+10FFFF
  assert.equal(decodeUtf8(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]), "x"), "a"); // BOM dropped
});

Deno.test("JSONL fields of the wrong type are errors with file, line and field (before: kept)", async () => {
  const rows = [
    '{"prompt": "a", "label": "benign", "category": "x"}',
    '{"prompt": "b", "label": "harmful", "category": 5}',
  ].join("\n");
  await withFile("p.jsonl", rows, async (p) => {
    await rejectsWith(() => loadPrompts(p), /p\.jsonl:2: field "category" \(the category\) is 5/);
  });
  for (
    const [row, re] of [
      ['{"prompt": ["a"], "label": "benign"}', /field "prompt" is \["a"\]/],
      ['{"prompt": "a", "label": {"x": 1}}', /field "label" is \{"x":1\}/],
      ['{"prompt": "a", "label": "benign", "target": false}', /field "target"/],
      ['{"prompt": "a", "label": "benign", "id": 1.5}', /field "id"/],
    ] as const
  ) {
    await withFile("q.jsonl", row, async (p) => {
      await rejectsWith(() => loadPrompts(p), re);
    });
  }
  // Integer ids are kept as their decimal text.
  await withFile("r.jsonl", '{"id": 7, "prompt": "a", "label": "benign"}', async (p) => {
    const t = await loadPrompts(p);
    assert.equal(t.get("id", 0), "7");
  });
});

Deno.test("deep nesting is an error with file and line (before: a bare RangeError)", async () => {
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  const text =
    `{"prompt": "a", "label": "benign"}\n{"prompt": "a", "label": "benign", "x": ${deep}}\n`;
  await withFile("d.jsonl", text, async (p) => {
    await rejectsWith(() => loadPrompts(p), /d\.jsonl:2: JSON nested deeper than 64 levels/);
  });
  await withFile("d.json", `[{"prompt": "a", "label": "benign", "x": ${deep}}]`, async (p) => {
    await rejectsWith(() => loadPrompts(p), /d\.json:1: JSON nested deeper than 64 levels/);
  });
  assert.throws(() => parseWorldJsonl(`{"id": ${deep}}`, "w.jsonl"), /w\.jsonl:1: JSON nested/);
  assert.equal(jsonDepthExceeded('{"a": "[[[[\\"[[["}', 2), 0);
  assert.doesNotThrow(() => parseJsonlEntries('{"a": [[[[1]]]]}', "ok.jsonl"));
});

Deno.test("errors echo a bounded slice of the input (before: a 200 KB header in the message)", async () => {
  const header = Array.from({ length: 20_000 }, (_, i) => `column_${i}`).join(",");
  await withFile("h.csv", `${header}\na,b\n`, async (p) => {
    await rejectsWith(() => readCsv(p), /h\.csv:2: expected 20000 fields/, 500);
    await rejectsWith(() => loadPrompts(p), /h\.csv/, 500);
  });
  await withFile("a.csv", `${header}\n`, async (p) => {
    await rejectsWith(() => loadBenchmark("advbench", p), /missing columns "goal", "target"/, 500);
  });
  const huge = "x".repeat(200_000);
  await withFile("l.jsonl", `{"prompt": "a", "label": "${huge}"}`, async (p) => {
    await rejectsWith(() => loadPrompts(p), /l\.jsonl:1: field "label"/, 500);
  });
  await withFile("j.jsonl", `{"prompt": "${huge}`, async (p) => {
    await rejectsWith(() => readJsonl(p), /j\.jsonl:1: invalid JSON/, 500);
  });
  await withFile("c.jsonl", `{"${huge}": 1, "label": "benign"}`, async (p) => {
    await rejectsWith(() => loadPrompts(p), /c\.jsonl: no prompt column/, 500);
  });
});
