/**
 * Every script task of deno.json honours `--help` (usage and flags, exit 0, nothing run, no
 * file written) and rejects an unknown flag (exit 2, naming it and the valid flags), run as a
 * subprocess with the task's own permissions; plus the shared parser (lib/cli/args.ts) itself
 * and the description of every task.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cliHelp, CliUsageError, parseCli } from "../lib/cli/args.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
type Task = string | { description?: string; command: string };
const TASKS = (JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as {
  tasks: Record<string, Task>;
}).tasks;
const command = (t: Task) => typeof t === "string" ? t : t.command;
/** The `deno run ... script.ts` tasks, as [name, deno arguments]. */
const SCRIPTS = Object.entries(TASKS)
  .map(([name, t]) => [name, command(t).split(" ")] as const)
  .filter(([, w]) => w[0] === "deno" && w[1] === "run")
  .map(([name, w]) => [name, w.slice(1)] as const);

async function listing(dir: string): Promise<string[]> {
  try {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    return names.sort();
  } catch {
    return []; // no runs/ yet
  }
}

async function runTask(args: readonly string[], extra: string) {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args, extra],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { SAFETY_COMPASS_QUICK: "1" },
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    seconds: (performance.now() - t0) / 1000,
  };
}

Deno.test("every task of deno.json has a description", () => {
  for (const [name, t] of Object.entries(TASKS)) {
    assert.ok(typeof t !== "string" && (t.description ?? "").length > 10, `task ${name}`);
  }
});

Deno.test("the script tasks are all found", () => {
  const names = SCRIPTS.map(([n]) => n).sort();
  for (const n of ["demo", "defences", "experiments", "persistence", "toy:train", "world:gen"]) {
    assert.ok(names.includes(n), `${n} in ${names.join(", ")}`);
  }
  assert.ok(names.length >= 10, names.join(", "));
});

for (const [name, args] of SCRIPTS) {
  Deno.test(`deno task ${name} --help: usage, exit 0, nothing run or written`, async () => {
    const before = await listing(join(ROOT, "runs"));
    const r = await runTask(args, "--help");
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.match(r.stdout, /^usage: /, name);
    assert.match(r.stdout, /--help, -h/);
    assert.match(r.stdout, /\bflags:\n {2}--/);
    assert.doesNotMatch(
      r.stdout + r.stderr,
      /\[\s*\d+s\]|XDG_RUNTIME_DIR/,
      "no progress, no noise",
    );
    assert.ok(r.seconds < 20, `${name} --help took ${r.seconds.toFixed(1)} s`);
    assert.deepEqual(await listing(join(ROOT, "runs")), before, "nothing written under runs/");
  });

  Deno.test(`deno task ${name} --no-such-flag: exit 2, names it and the valid flags`, async () => {
    const r = await runTask(args, "--no-such-flag");
    assert.equal(r.code, 2, `${name}: ${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /unknown flag '--no-such-flag'; valid flags: --/);
    assert.match(r.stderr, /usage: /);
  });
}

const SPEC = {
  usage: "usage: x [--n N] [--quick] [--v DIR]...",
  positionals: true,
  flags: {
    n: { type: "string" as const, help: "prompts", default: "60" },
    quick: { type: "boolean" as const, help: "CI sizes" },
    v: { type: "string" as const, help: "folders", multiple: true },
  },
};

Deno.test("parseCli: values, negative numbers, repeats, positionals, --help", () => {
  const a = parseCli(["--n", "-1", "--quick", "--v", "a", "--v=b", "word"], SPEC);
  assert.deepEqual([a.help, a.values, a.positionals], [false, {
    n: "-1",
    quick: true,
    v: ["a", "b"],
  }, ["word"]]);
  assert.equal(parseCli(["--bogus", "-h"], SPEC).help, true); // help wins, does nothing else
  assert.match(cliHelp(SPEC), /--n VALUE +prompts \(default 60\)/);
});

Deno.test("parseCli: unknown flags, missing values and values on switches are usage errors", () => {
  const bad = (argv: string[], re: RegExp) =>
    assert.throws(
      () => parseCli(argv, SPEC),
      (e) => e instanceof CliUsageError && re.test(e.message),
    );
  bad(["--bogus"], /unknown flag '--bogus'; valid flags: --n, --quick, --v, --help/);
  bad(["--n"], /--n needs a value/);
  bad(["--n", "--quick"], /--n needs a value/);
  bad(["--quick=1"], /--quick is a switch/);
  assert.throws(() => parseCli(["word"], { ...SPEC, positionals: false }), /unexpected argument/);
});
