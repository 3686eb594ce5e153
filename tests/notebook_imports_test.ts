/**
 * The canonical notebooks use the public API only: no code cell imports anything but
 * "../mod.ts", and every notebook's code cells, joined in order into one TypeScript file
 * (with "../mod.ts" pointing at this checkout's mod.ts), type-check with `deno check`.
 * Running the notebooks is `deno task test:notebooks`' job; this catches a renamed or
 * unexported symbol in seconds, without executing the 10-30 minute RL notebooks.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const NOTEBOOKS = join(ROOT, "notebooks");
const MOD = join(ROOT, "mod.ts");

interface Cell {
  cell_type: string;
  source: string | string[];
}

const names = [...Deno.readDirSync(NOTEBOOKS)]
  .filter((e) => e.isFile && e.name.endsWith(".ipynb"))
  .map((e) => e.name)
  .sort();

function codeCells(name: string): string[] {
  const nb = JSON.parse(Deno.readTextFileSync(join(NOTEBOOKS, name))) as { cells: Cell[] };
  return nb.cells.filter((c) => c.cell_type === "code").map((c) =>
    Array.isArray(c.source) ? c.source.join("") : c.source
  );
}

/** Module specifiers of static, side-effect, re-export and dynamic imports in `code`. */
export function importSpecifiers(code: string): string[] {
  const text = code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
  const out: string[] = [];
  for (
    const re of [
      /\b(?:import|export)\s[^"'`;]*?\bfrom\s*["'`]([^"'`]+)["'`]/g,
      /\bimport\s*["'`]([^"'`]+)["'`]/g,
      /\bimport\s*\(\s*["'`]([^"'`]+)["'`]/g,
    ]
  ) for (const m of text.matchAll(re)) out.push(m[1]);
  return out;
}

/**
 * Type errors present before this test existed, in cells that are not import cells (left to
 * their owners): notebook -> substrings of the error text. Each must still occur (so a fix
 * shows here), and no other error may.
 */
const KNOWN_ERRORS: Record<string, string[]> = {
  // prefillCurve's rows are typed as full PromptRows; the notebook's benchmark rows have no
  // `source` (the code only reads id and prompt).
  "09_real_model.ipynb": [
    "Argument of type 'Row[]' is not assignable to parameter of type 'PromptRowsInput'",
  ],
};

Deno.test("importSpecifiers reads the forms notebooks use", () => {
  assert.deepEqual(
    importSpecifiers(
      'import { a } from "../mod.ts";\nimport "x";\nconst m = await import("../lib/y.ts");\n' +
        '// import { no } from "../lib/z.ts";\nexport { b } from "./w.ts";',
    ),
    ["../mod.ts", "./w.ts", "x", "../lib/y.ts"],
  );
});

for (const name of names) {
  Deno.test(`${name}: code cells import from "../mod.ts" only`, () => {
    codeCells(name).forEach((code, i) => {
      for (const spec of importSpecifiers(code)) {
        assert.equal(
          spec,
          "../mod.ts",
          `${name} code cell ${i + 1} imports "${spec}": notebooks use the public API ` +
            `(export what they need from mod.ts)`,
        );
      }
    });
  });
}

Deno.test("every notebook's code cells type-check against mod.ts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sc-nbcheck-" });
  try {
    const files = new Map<string, string>();
    for (const name of names) {
      const code = codeCells(name).join("\n\n").replaceAll('"../mod.ts"', JSON.stringify(MOD));
      const file = join(dir, name.replace(/\.ipynb$/, ".ts"));
      await Deno.writeTextFile(file, `// cells of notebooks/${name}\n${code}\n`);
      files.set(name, file);
    }
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", ...files.values()],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
    // One error block per "TSxxxx [ERROR]" line; its location line names the file.
    const blocks = out.split(/\n(?=TS\d+ \[ERROR\])/).filter((b) => /^TS\d+ \[ERROR\]/.test(b));
    const unexpected: string[] = [];
    const seen = new Set<string>();
    for (const block of blocks) {
      const name = [...files].find(([, f]) => block.includes(f))?.[0] ?? "?";
      const known = (KNOWN_ERRORS[name] ?? []).find((k) => block.includes(k));
      if (known) seen.add(`${name}: ${known}`);
      else unexpected.push(`${name}:\n${block.slice(0, 600)}`);
    }
    assert.deepEqual(unexpected, [], `notebook cells do not type-check:\n${unexpected.join("\n")}`);
    if (r.code !== 0) {
      assert.ok(blocks.length > 0, `deno check failed without type errors:\n${out}`);
    }
    for (const [name, list] of Object.entries(KNOWN_ERRORS)) {
      for (const k of list) {
        assert.ok(
          seen.has(`${name}: ${k}`),
          `${name}: the known error "${k}" is gone; remove it from KNOWN_ERRORS`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
