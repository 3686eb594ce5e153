/**
 * The manual's gates: `deno doc --lint mod.ts` (every public symbol documented, no public
 * signature naming an unexported type) and `deno check --doc` over mod.ts and lib/ (every
 * `@example` type-checks). The only doc-lint findings allowed are TensorFlow.js's own tensor
 * types in our signatures: re-exporting them from mod.ts would pull tfjs's undocumented API
 * into our manual (tried: +hundreds of findings inside tfjs-core).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const TFJS_TYPES = new Set(["Tensor", "Tensor2D", "Tensor3D", "Tensor4D", "Scalar", "Variable"]);

function deno(args: string[]): { code: number; out: string } {
  const r = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

function* tsFiles(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(`${ROOT}${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* tsFiles(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

Deno.test("deno doc --lint mod.ts: nothing but tfjs's own tensor types", () => {
  const { out } = deno(["doc", "--lint", "mod.ts"]);
  const findings = out.split("\n").filter((l) => /^error\[/.test(l));
  const other = findings.filter((l) => {
    const m = l.match(/^error\[private-type-ref\]: .* references private type '([^']+)'/);
    return !(m && TFJS_TYPES.has(m[1]));
  });
  assert.deepEqual(other, [], `doc lint findings:\n${other.join("\n")}`);
});

Deno.test("deno check --doc: every @example in mod.ts and lib/ type-checks", () => {
  const files = ["mod.ts", ...tsFiles("lib")];
  const { code, out } = deno(["check", "--doc", ...files]);
  const errors = out.split("\n").filter((l) => /TS\d+ \[ERROR\]|^\s+at file/.test(l));
  assert.equal(code, 0, `deno check --doc failed:\n${errors.slice(0, 40).join("\n")}`);
});
