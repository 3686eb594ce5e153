/**
 * The folders of lib/ form a stack: each imports only folders declared below it. The order is
 * read from the README's layout section (one `lib/<folder>` line per folder, bottom first);
 * the folder graph is computed here from every relative import, re-export and dynamic
 * `import()` of lib/. The test fails on a folder the README does not declare, on an edge
 * against the order (which also rules out every cycle), and names the files that make it.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const LIB = join(ROOT, "lib");

/** The declared order, bottom first, from the README's layout block. */
function declaredOrder(): string[] {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  const at = readme.indexOf("## Layout");
  assert.ok(at >= 0, "README.md has no '## Layout' section");
  const block = readme.slice(at).split("```")[1] ?? "";
  return [...block.matchAll(/^lib\/([a-z_]+)\s/gm)].map((m) => m[1]);
}

function* tsFiles(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* tsFiles(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

/** Relative specifiers of `import ... from`, `export ... from`, `import("...")`, `new URL`. */
const SPEC = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)["'](\.\.?\/[^"']+)["']/g;

/** folder -> folder -> the first few "file -> target" lines that make the edge. */
function folderGraph(): Map<string, Map<string, string[]>> {
  const graph = new Map<string, Map<string, string[]>>();
  for (const file of tsFiles(LIB)) {
    const from = relative(LIB, file).split("/")[0];
    const src = Deno.readTextFileSync(file);
    for (const m of src.matchAll(SPEC)) {
      const target = normalize(join(dirname(file), m[1]));
      const rel = relative(LIB, target);
      if (rel.startsWith("..")) continue; // datasets/, the repository root
      const to = rel.split("/")[0];
      if (to === from) continue;
      const edges = graph.get(from) ?? new Map<string, string[]>();
      graph.set(from, edges);
      const why = edges.get(to) ?? [];
      edges.set(to, why);
      if (why.length < 3) why.push(`${relative(ROOT, file)} -> ${relative(ROOT, target)}`);
    }
  }
  return graph;
}

const order = declaredOrder();
const graph = folderGraph();

Deno.test("the README's layout declares every folder of lib/, once", () => {
  const folders = [...Deno.readDirSync(LIB)].filter((e) => e.isDirectory).map((e) => e.name);
  assert.ok(order.length >= 10, `README layout lists only ${order.length} lib/ folders`);
  assert.deepEqual(
    [...new Set(order)].length,
    order.length,
    `a folder is listed twice: ${order}`,
  );
  const missing = folders.filter((f) => !order.includes(f));
  assert.deepEqual(missing, [], `lib/ folders missing from the README's layout: ${missing}`);
  const stale = order.filter((f) => !folders.includes(f));
  assert.deepEqual(stale, [], `README lists folders that do not exist: ${stale}`);
});

Deno.test("every folder imports only folders below it (so there is no cycle)", () => {
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    for (const [to, why] of edges) {
      if (order.indexOf(to) >= order.indexOf(from)) {
        bad.push(`lib/${from} -> lib/${to} (declared above it): ${why.join("; ")}`);
      }
    }
  }
  assert.deepEqual(bad, [], `imports against the declared order:\n${bad.join("\n")}`);
});

Deno.test("the folder-graph reader sees the edges it must see", () => {
  // A guard against a reader that silently finds nothing: these edges exist by design.
  assert.ok(graph.get("model")?.has("engine"), "lib/model -> lib/engine not found");
  assert.ok(graph.get("parallel")?.has("model"), "lib/parallel -> lib/model not found");
  assert.ok(graph.get("cli")?.has("experiments"), "lib/cli -> lib/experiments not found");
});
