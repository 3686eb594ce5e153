/**
 * Static checks of the canonical notebooks (nbformat 4, the format Jupyter stores
 * notebooks in) and of the pure helpers of `lib/cli/test_notebooks.ts`: every notebook in
 * notebooks/ is valid nbformat 4 JSON with the deno kernelspec, opens with prose before
 * code, is committed with its outputs cleared, and imports only relative paths. Running
 * them is `deno task test:notebooks`' job.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { drainMs } from "../lib/viz/display.ts";
import {
  cellErrors,
  expectedFigures,
  formatResult,
  isTransient,
  joinText,
  kernelWarnings,
  listNotebooks,
  type Notebook,
} from "../lib/cli/test_notebooks.ts";

const NOTEBOOK_DIR = fileURLToPath(new URL("../notebooks/", import.meta.url));
const names = await listNotebooks(NOTEBOOK_DIR);

function read(name: string): Notebook {
  return JSON.parse(Deno.readTextFileSync(join(NOTEBOOK_DIR, name)));
}

/**
 * Every module specifier a TypeScript cell imports: static `import ... from "x"`,
 * side-effect `import "x"`, `export ... from "x"`, and dynamic `import("x")`.
 */
function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
  const patterns = [
    /\b(?:import|export)\s[^"'`;]*?\bfrom\s*["'`]([^"'`]+)["'`]/g,
    /\bimport\s*["'`]([^"'`]+)["'`]/g,
    /\bimport\s*\(\s*["'`]([^"'`]+)["'`]/g,
  ];
  return patterns.flatMap((re) => [...code.matchAll(re)].map((m) => m[1]));
}

Deno.test("importSpecifiers finds static, side-effect, re-export and dynamic imports", () => {
  const src = `import { a } from "../lib/a.ts";\nimport type { B } from './b.ts';\n` +
    `import "./side.ts";\nexport { c } from "../c.ts";\nconst m = await import("npm:x");\n` +
    `// import { z } from "https://commented.out/z.ts";\nconst url = "https://not-an-import";`;
  assert.deepEqual(importSpecifiers(src).sort(), [
    "../c.ts",
    "../lib/a.ts",
    "./b.ts",
    "./side.ts",
    "npm:x",
  ]);
});

Deno.test("notebooks/ holds the canonical notebooks, 01_quickstart first", () => {
  assert.ok(names.length >= 1, `no .ipynb files in ${NOTEBOOK_DIR}`);
  assert.equal(names[0], "01_quickstart.ipynb");
  for (const n of names) {
    assert.match(n, /^\d\d_[a-z0-9_]+\.ipynb$/, `${n}: name it NN_topic.ipynb`);
  }
});

for (const name of names) {
  Deno.test(`${name}: nbformat 4 JSON with the deno (typescript) kernelspec`, () => {
    const nb = read(name);
    assert.equal(nb.nbformat, 4, `${name}: nbformat`);
    const minor = (nb as unknown as { nbformat_minor: unknown }).nbformat_minor;
    assert.ok(Number.isInteger(minor), `${name}: nbformat_minor must be an integer`);
    const ks = nb.metadata.kernelspec as Record<string, unknown> | undefined;
    assert.equal(ks?.name, "deno", `${name}: metadata.kernelspec.name`);
    assert.equal(ks?.language, "typescript", `${name}: metadata.kernelspec.language`);
    assert.equal(typeof ks?.display_name, "string", `${name}: metadata.kernelspec.display_name`);
    assert.ok(Array.isArray(nb.cells) && nb.cells.length > 0, `${name}: cells`);
    const ids = new Set<string>();
    nb.cells.forEach((cell, i) => {
      const where = `${name} cell ${i + 1}`;
      assert.ok(["markdown", "code", "raw"].includes(cell.cell_type), `${where}: cell_type`);
      assert.ok(typeof cell.source === "string" || Array.isArray(cell.source), `${where}: source`);
      const c = cell as unknown as { id?: unknown; metadata?: unknown };
      assert.equal(typeof c.metadata, "object", `${where}: metadata`);
      if (minor as number >= 5) {
        assert.match(String(c.id), /^[a-zA-Z0-9-_]{1,64}$/, `${where}: id`);
        assert.ok(!ids.has(String(c.id)), `${where}: duplicate id ${c.id}`);
        ids.add(String(c.id));
      }
    });
    const expect = expectedFigures(nb);
    if (expect !== undefined) {
      assert.ok(Number.isInteger(expect) && expect >= 0, `${name}: expect_figures`);
    }
  });

  Deno.test(`${name}: explains itself in markdown before the first code cell`, () => {
    const cells = read(name).cells;
    const firstCode = cells.findIndex((c) => c.cell_type === "code");
    assert.ok(firstCode >= 0, `${name} has no code cell`);
    const prose = cells.slice(0, firstCode).filter((c) =>
      c.cell_type === "markdown" && joinText(c.source).trim().length > 0
    );
    assert.ok(prose.length >= 1, `${name}: put a markdown cell before cell ${firstCode + 1}`);
  });

  Deno.test(`${name}: committed with outputs cleared`, () => {
    read(name).cells.forEach((cell, i) => {
      if (cell.cell_type !== "code") return;
      const c = cell as unknown as { execution_count: unknown };
      assert.deepEqual(cell.outputs, [], `${name} cell ${i + 1}: clear its outputs`);
      assert.equal(c.execution_count, null, `${name} cell ${i + 1}: execution_count`);
    });
  });

  Deno.test(`${name}: imports only relative paths`, () => {
    let count = 0;
    read(name).cells.forEach((cell, i) => {
      if (cell.cell_type !== "code") return;
      for (const spec of importSpecifiers(joinText(cell.source))) {
        count++;
        assert.match(spec, /^\.\.?\//, `${name} cell ${i + 1}: import "${spec}" is not relative`);
      }
    });
    assert.ok(count > 0, `${name}: no imports found (the checker would be vacuous)`);
  });
}

const jupyterPython = "/usr/bin/python3";
const hasNbformat = await new Deno.Command(jupyterPython, {
  args: ["-c", "import nbformat"],
  stdout: "null",
  stderr: "null",
}).output().then((r) => r.success, () => false);
if (!hasNbformat) {
  console.warn(`notebooks_meta_test: ${jupyterPython} lacks nbformat: skipping schema check`);
}

Deno.test({
  name: "every notebook passes nbformat's own JSON-schema validation",
  ignore: !hasNbformat || names.length === 0,
  fn: async () => {
    const script = "import sys, nbformat\nfor p in sys.argv[1:]:\n" +
      "    nbformat.validate(nbformat.read(p, as_version=nbformat.NO_CONVERT))\n";
    const r = await new Deno.Command(jupyterPython, {
      args: ["-c", script, ...names.map((n) => join(NOTEBOOK_DIR, n))],
      env: { PYDEVD_DISABLE_FILE_VALIDATION: "1" },
    }).output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
  },
});

Deno.test("cellErrors finds error outputs and Deno's stderr failures, nothing else", () => {
  const nb: Notebook = {
    nbformat: 4,
    metadata: { safety_compass: { expect_figures: 3 } },
    cells: [
      { cell_type: "markdown", source: "# error: in prose is fine" },
      {
        cell_type: "code",
        source: "x",
        outputs: [
          { output_type: "stream", name: "stdout", text: ["error: printed on stdout\n"] },
          { output_type: "stream", name: "stderr", text: "Warning: slow backend\n" },
        ],
      },
      {
        cell_type: "code",
        source: "y",
        outputs: [{ output_type: "error", ename: "TypeError", evalue: "x is not a function" }],
      },
      {
        cell_type: "code",
        source: "z",
        outputs: [{ output_type: "stream", name: "stderr", text: ["error: Uncaught ", "boom\n"] }],
      },
    ],
  };
  assert.deepEqual(cellErrors(nb), [
    "cell 3: TypeError: x is not a function",
    "cell 4 (stderr): error: Uncaught boom",
  ]);
  assert.equal(expectedFigures(nb), 3);
  assert.equal(expectedFigures({ ...nb, metadata: {} }), undefined);
  assert.equal(
    expectedFigures({ ...nb, metadata: { safety_compass: { expect_figures: "2" } } }),
    undefined,
  );
});

Deno.test("listNotebooks sorts .ipynb files and filters by name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sc-nbmeta-" });
  try {
    for (const f of ["03_c.ipynb", "01_a.ipynb", "02_b.ipynb", "notes.md"]) {
      await Deno.writeTextFile(join(dir, f), "{}");
    }
    await Deno.mkdir(join(dir, "00_dir.ipynb"));
    assert.deepEqual(await listNotebooks(dir), ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]);
    assert.deepEqual(await listNotebooks(dir, ["03", "01"]), ["01_a.ipynb", "03_c.ipynb"]);
    assert.deepEqual(await listNotebooks(dir, ["zz"]), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("formatResult prints status, cells, errors, figures and seconds", () => {
  const base = { name: "01_quickstart.ipynb", cells: 14, codeCells: 6, errors: [], figures: 2 };
  const ok = formatResult({ ...base, rendered: 2, expectFigures: 2, problems: [], seconds: 41.04 });
  assert.equal(
    ok,
    "ok   01_quickstart.ipynb  cells 14 (6 code)  errors 0  figures 2/2 rendered (expected >= 2)  41.0 s",
  );
  const bad = formatResult({
    ...base,
    rendered: 1,
    problems: ["1 of 2 plotly figures did not render"],
    seconds: 3,
  });
  assert.match(bad, /^FAIL 01_quickstart\.ipynb .* figures 1\/2 rendered {2}3\.0 s$/);
});

Deno.test("formatResult names the attempt after a retry; isTransient spares cell errors", () => {
  const base = { name: "01_quickstart.ipynb", cells: 2, codeCells: 1, figures: 1, rendered: 0 };
  const lost = { ...base, errors: [], problems: ["1 of 1 figures did not render"], seconds: 1 };
  const raised = { ...lost, errors: ["cell 2: Error: boom"], problems: ["cell 2: Error: boom"] };
  const passed = { ...lost, rendered: 1, problems: [], attempts: 2 };
  assert.equal(isTransient(lost), true);
  assert.equal(isTransient(raised), false);
  assert.equal(isTransient(passed), false);
  assert.match(formatResult(passed), /^ok {3}01_quickstart\.ipynb .* 1\.0 s {2}\(attempt 2\)$/);
  assert.doesNotMatch(formatResult({ ...passed, attempts: 1 }), /attempt/);
});

Deno.test("kernelWarnings counts skipped messages and iopub timeouts in an nbconvert log", () => {
  assert.deepEqual(kernelWarnings("[NbConvertApp] Writing 1437 bytes to x.ipynb\n"), []);
  const log = "[NbConvertApp] WARNING | skipped an unreadable iopub message (Invalid Signature)\n" +
    "[NbConvertApp] WARNING | skipped an unreadable iopub message (Invalid Signature)\n" +
    "[NbConvertApp] WARNING | Timeout waiting for IOPub output\n";
  assert.deepEqual(kernelWarnings(log), [
    "2 unreadable kernel message(s) skipped; their outputs are lost (first: Invalid Signature)",
    "1 cell(s) timed out waiting for outputs (iopub_timeout)",
  ]);
});

Deno.test("drainMs waits longer after large bundles, within bounds", () => {
  assert.equal(drainMs({ "text/plain": "x" }), 50);
  // plotly.js is ~4.8 MB: about 2.9 s more.
  const big = drainMs({ "text/plain": "f", "text/html": "x".repeat(4_800_000) });
  assert.ok(big > 2500 && big < 3500, `got ${big}`);
  assert.equal(drainMs({ "text/plain": "x".repeat(100_000_000) }), 8000);
});
