/**
 * `deno task test:notebooks [--retries=N] [name filters...]`: runs every canonical notebook
 * the way a user would, in a real Jupyter kernel, and checks the result in a real browser.
 *
 * 1. registers Deno's Jupyter kernel (`deno jupyter --install`, with the binary running this
 *    script) and checks that `jupyter kernelspec list` names it `deno`;
 * 2. executes each `notebooks/*.ipynb` (sorted; argv words filter by file name) with
 *    nbconvert's ExecutePreprocessor (nbformat 4 / Jupyter messaging, through the system's
 *    `/usr/bin/jupyter`) into `runs/notebooks/<stamp>/`; any cell error fails the notebook;
 * 3. converts the executed notebook to HTML (nbconvert's HTML exporter);
 * 4. opens the HTML in headless Chromium (`playwright-core`, network blocked so the page must
 *    work offline), waits for plotly to draw, checks that every plotly figure div holds
 *    plotly's SVG (`.main-svg`) and that there are at least
 *    `metadata.safety_compass.expect_figures` of them, and saves a full-page screenshot;
 * 5. prints one line per notebook and `N passed, N failed`; exits 1 on any failure.
 *
 * Deno's kernel sometimes publishes a cell's `idle` status before that cell's last outputs
 * (measured here: a 5 MB display arrived after `idle` in 3 of 8 runs under load), and
 * nbclient stops reading a cell's outputs at `idle`, so figures vanished from executed
 * notebooks. nbconvert therefore runs with {@link NBCLIENT_PATCH} as a config file: it keeps
 * reading for {@link LATE_OUTPUT_GRACE_S} quiet seconds after `idle` and skips unreadable
 * (bad-signature) messages instead of crashing. A notebook whose cells raised nothing but
 * whose run still failed is run again, `--retries` times (@default 2); the earlier failure is
 * printed and kept in `summary.json`, and a real bug fails every attempt.
 *
 * `SAFETY_COMPASS_QUICK=1` or `SAFETY_COMPASS_SIZE=quick|default|full` in the environment
 * reaches the kernel (the notebooks' size tiers, lib/experiments/size.ts). The run folder also gets nbconvert's logs per notebook and `summary.json`.
 *
 * @module
 */

import { basename, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Browser } from "playwright-core";
import { writeFileAtomic, writeJsonAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { cliArgs } from "./args.ts";

/** The system Jupyter (the `python3` on PATH may be another interpreter without nbconvert). */
export const JUPYTER = "/usr/bin/jupyter";
/** The system Chromium. */
export const CHROMIUM = "/usr/bin/chromium";
/** Chromium flags: headless, no sandbox, no network chatter. */
export const CHROMIUM_FLAGS: readonly string[] = [
  ...["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  ...["--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
];
/** CSS selector of plotly figure divs: ours (lib/viz/display.ts) and any plotly-drawn div. */
export const FIGURE_SELECTOR = ".sc-plotly, .js-plotly-plot, .plotly-graph-div";

/** Seconds of iopub silence after a cell's `idle` before its outputs are final. */
export const LATE_OUTPUT_GRACE_S = 1.5;

/**
 * A Jupyter config file (Python, run by nbconvert at start-up) that makes nbclient wait for
 * outputs published after a cell's `idle` status, and skip messages that fail the signature
 * check (logging `skipped an unreadable iopub message`) instead of aborting the run.
 */
export const NBCLIENT_PATCH =
  `# Written by safety-compass lib/cli/test_notebooks.ts; passed to nbconvert --config.
from queue import Empty
from nbclient.client import NotebookClient
from nbclient.exceptions import CellExecutionComplete

GRACE = ${LATE_OUTPUT_GRACE_S}

async def _poll_output_msg(self, parent_msg_id, cell, cell_index):
    idle = False
    while True:
        try:
            msg = await self.kc.iopub_channel.get_msg(timeout=GRACE if idle else None)
        except Empty:
            return
        except ValueError as err:
            self.log.warning("skipped an unreadable iopub message (%s)", err)
            continue
        if msg["parent_header"].get("msg_id") != parent_msg_id:
            continue
        try:
            self.process_message(msg, cell, cell_index)
        except CellExecutionComplete:
            idle = True

NotebookClient._async_poll_output_msg = _poll_output_msg
`;

/** One output of a code cell (the nbformat 4 fields read here). */
export interface CellOutput {
  /** "stream", "display_data", "execute_result" or "error". */
  output_type: string;
  /** Stream name: "stdout" or "stderr". */
  name?: string;
  /** Stream text. */
  text?: string | string[];
  /** Error class name. */
  ename?: string;
  /** Error message. */
  evalue?: string;
}

/** One notebook cell (the nbformat 4 fields read here). */
export interface NotebookCell {
  /** "markdown", "code" or "raw". */
  cell_type: string;
  /** The cell's text. */
  source: string | string[];
  /** Outputs of a code cell. */
  outputs?: CellOutput[];
}

/** An nbformat 4 notebook (the fields read here). */
export interface Notebook {
  /** Major format version (4). */
  nbformat: number;
  /** Notebook metadata: kernelspec, language_info, safety_compass... */
  metadata: Record<string, unknown>;
  /** The cells, in order. */
  cells: NotebookCell[];
}

/** What happened to one notebook (its last attempt). */
export interface NotebookResult {
  /** File name, e.g. "01_quickstart.ipynb". */
  name: string;
  /** Number of cells. */
  cells: number;
  /** Number of code cells. */
  codeCells: number;
  /** Error outputs of cells ("cell 3: TypeError: ..."). */
  errors: string[];
  /** Plotly figure divs in the HTML page. */
  figures: number;
  /** Figure divs holding plotly's SVG. */
  rendered: number;
  /** `metadata.safety_compass.expect_figures`, when set. */
  expectFigures?: number;
  /** Everything that failed (empty = passed). */
  problems: string[];
  /** Wall-clock seconds of the last attempt (execute + convert + browser). */
  seconds: number;
  /** Attempts made (more than 1 after a retried transient failure). @default 1 */
  attempts?: number;
  /** Problems of the earlier, retried attempts. */
  retried?: string[];
  /** Kernel transport trouble that nbconvert survived (see {@link kernelWarnings}). */
  warnings?: string[];
}

/** The text of a notebook string field (nbformat allows a string or a list of lines). */
export function joinText(text: string | string[] | undefined): string {
  return Array.isArray(text) ? text.join("") : text ?? "";
}

/**
 * The errors a notebook's outputs record: `error` outputs, and `stderr` streams containing
 * `error:` or `Uncaught` (how Deno reports failures it does not raise). One string per hit.
 */
export function cellErrors(nb: Notebook): string[] {
  const out: string[] = [];
  nb.cells.forEach((cell, i) => {
    for (const o of cell.outputs ?? []) {
      if (o.output_type === "error") out.push(`cell ${i + 1}: ${o.ename}: ${o.evalue}`);
      const text = joinText(o.text);
      if (o.output_type === "stream" && o.name === "stderr" && /error:|Uncaught/.test(text)) {
        out.push(`cell ${i + 1} (stderr): ${text.trim().split("\n")[0].slice(0, 200)}`);
      }
    }
  });
  return out;
}

/** `metadata.safety_compass.expect_figures` when it is a number, else undefined. */
export function expectedFigures(nb: Notebook): number | undefined {
  const sc = nb.metadata?.safety_compass as { expect_figures?: unknown } | undefined;
  return typeof sc?.expect_figures === "number" ? sc.expect_figures : undefined;
}

function emptyResult(name: string): NotebookResult {
  return {
    name,
    cells: 0,
    codeCells: 0,
    errors: [],
    figures: 0,
    rendered: 0,
    problems: [],
    seconds: 0,
  };
}

/**
 * Transport trouble an nbconvert log reports: messages skipped by {@link NBCLIENT_PATCH}
 * (their output is lost) and cells whose outputs did not end in time.
 */
export function kernelWarnings(log: string): string[] {
  const count = (needle: string) => log.split(needle).length - 1;
  const skipped = count("skipped an unreadable iopub message");
  const late = count("Timeout waiting for IOPub output");
  // The reason of the first skipped message, e.g. "Invalid Signature: b'...'" (cut short).
  const why = /skipped an unreadable iopub message \((.*)\)/.exec(log)?.[1].slice(0, 120);
  return [
    ...(skipped
      ? [
        `${skipped} unreadable kernel message(s) skipped; their outputs are lost` +
        (why ? ` (first: ${why})` : ""),
      ]
      : []),
    ...(late ? [`${late} cell(s) timed out waiting for outputs (iopub_timeout)`] : []),
  ];
}

/** Whether a failed run may be the kernel's lost-output race: no cell raised, yet it failed. */
export function isTransient(r: NotebookResult): boolean {
  return r.problems.length > 0 && r.errors.length === 0;
}

async function run(cmd: string, args: string[]): Promise<{ code: number; log: string }> {
  const env: Record<string, string> = { PYDEVD_DISABLE_FILE_VALIDATION: "1" };
  for (const name of ["SAFETY_COMPASS_QUICK", "SAFETY_COMPASS_SIZE"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  try {
    const r = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    return { code: r.code, log: dec.decode(r.stdout) + dec.decode(r.stderr) };
  } catch (err) {
    throw new Error(
      `Cannot run ${cmd}: ${(err as Error).message}. Install Jupyter's nbconvert and ` +
        `Chromium (Debian: \`apt-get install jupyter-nbconvert python3-nbclient chromium\`).`,
      { cause: err },
    );
  }
}

function realPath(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined; // a missing file matches nothing
  }
}

/** Installs Deno's kernelspec for this deno binary; throws when jupyter does not list it. */
export async function registerKernel(): Promise<string> {
  const deno = Deno.execPath();
  const inst = await run(deno, ["jupyter", "--install", "--force"]);
  if (inst.code !== 0) throw new Error(`\`${deno} jupyter --install\` failed:\n${inst.log}`);
  const list = await run(JUPYTER, ["kernelspec", "list", "--json"]);
  type Specs = Record<string, { spec: { argv: string[] } }>;
  const specs: Specs = list.code === 0
    ? JSON.parse(list.log.slice(list.log.indexOf("{"))).kernelspecs
    : {};
  const argv = specs.deno?.spec.argv ?? [];
  // The spec may name a symlink to this binary (npx's node_modules/.bin/deno): compare targets.
  const target = realPath(argv[0]);
  if (target === undefined || target !== realPath(deno)) {
    throw new Error(
      `\`${JUPYTER} kernelspec list\` does not show the deno kernel for ${deno} ` +
        `(found ${JSON.stringify(argv)}); output:\n${list.log}\nFix: check that ` +
        `\`${deno} jupyter --install\` writes to a folder listed by \`jupyter --paths\`.`,
    );
  }
  return deno;
}

/** `*.ipynb` files of `dir`, sorted, keeping those whose name contains any of `filters`. */
export async function listNotebooks(dir: string, filters: string[] = []): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".ipynb")) names.push(e.name);
  }
  return names.sort().filter((n) => !filters.length || filters.some((f) => n.includes(f)));
}

/** Counts plotly figure divs in a page and those plotly drew, and saves a screenshot. */
async function checkPage(browser: Browser, html: string, png: string) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  try {
    // Offline like a user's laptop: only the file itself and inline data may load.
    await page.route("**/*", (route) => {
      const url = route.request().url();
      return url.startsWith("file:") || url.startsWith("data:") ? route.continue() : route.abort();
    });
    await page.goto(pathToFileURL(html).href, { waitUntil: "load", timeout: 120_000 });
    const drawn = (s: string) =>
      [...document.querySelectorAll(s)].every((d) => d.querySelector(".main-svg"));
    await page.waitForFunction(drawn, FIGURE_SELECTOR, { timeout: 30_000, polling: 250 })
      .catch(() => undefined); // not all drew in time: the counts below say how many did
    await page.waitForTimeout(500); // let plotly finish drawing before the screenshot
    const counts = await page.evaluate((s: string) => {
      const divs = [...document.querySelectorAll(s)];
      const rendered = divs.filter((d) => d.querySelector(".main-svg")).length;
      return { figures: divs.length, rendered };
    }, FIGURE_SELECTOR);
    await writeFileAtomic(png, await page.screenshot({ fullPage: true }));
    return { ...counts, pageErrors };
  } finally {
    await page.close();
  }
}

/** Executes, converts and checks one notebook (one attempt); every output lands in `outDir`. */
async function testNotebook(
  path: string,
  outDir: string,
  browser: () => Promise<Browser>,
): Promise<NotebookResult> {
  const t0 = performance.now();
  const name = basename(path);
  const stem = name.replace(/\.ipynb$/, "");
  const r = emptyResult(name);
  const done = () => ({ ...r, seconds: (performance.now() - t0) / 1000 });
  const patch = join(outDir, "nbclient_late_outputs.py");
  await writeTextFileAtomic(patch, NBCLIENT_PATCH);
  const exec = await run(JUPYTER, [
    ...["nbconvert", "--to", "notebook", "--execute", `--config=${patch}`],
    "--allow-errors", // write every cell's outputs; errors are found in them below
    "--ExecutePreprocessor.timeout=1800",
    "--ExecutePreprocessor.iopub_timeout=30", // room for the grace period after the reply
    "--ExecutePreprocessor.kernel_name=deno",
    ...["--output-dir", outDir, path],
  ]);
  await writeTextFileAtomic(join(outDir, `${stem}.execute.log`), exec.log);
  r.warnings = kernelWarnings(exec.log);
  const executed = join(outDir, name);
  let nb: Notebook;
  try {
    nb = JSON.parse(await Deno.readTextFile(executed));
  } catch {
    const tail = exec.log.trim().split("\n").slice(-6).join("\n       ");
    r.problems.push(
      `nbconvert --execute exited ${exec.code}, no notebook written:\n       ${tail}`,
    );
    return done();
  }
  r.cells = nb.cells.length;
  r.codeCells = nb.cells.filter((c) => c.cell_type === "code").length;
  r.errors = cellErrors(nb);
  r.expectFigures = expectedFigures(nb);
  if (exec.code !== 0) r.problems.push(`nbconvert --execute exited ${exec.code}`);
  r.problems.push(...r.errors);
  const conv = await run(JUPYTER, ["nbconvert", "--to", "html", "--output-dir", outDir, executed]);
  await writeTextFileAtomic(join(outDir, `${stem}.html.log`), conv.log);
  if (conv.code !== 0) {
    r.problems.push(`nbconvert --to html exited ${conv.code}: ${conv.log.trim().slice(-400)}`);
    return done();
  }
  const html = join(outDir, `${stem}.html`);
  const page = await checkPage(await browser(), html, join(outDir, `${stem}.png`));
  r.figures = page.figures;
  r.rendered = page.rendered;
  if (page.rendered < page.figures) {
    r.problems.push(`${page.figures - page.rendered} of ${page.figures} figures did not render`);
  }
  if (r.expectFigures !== undefined && page.figures < r.expectFigures) {
    r.problems.push(
      `metadata.safety_compass.expect_figures is ${r.expectFigures}; the page has ${page.figures}`,
    );
  }
  r.problems.push(...page.pageErrors.map((e) => `page error: ${e}`));
  return done();
}

/** One report line: status, name, cells, errors, figures rendered, seconds (and attempts). */
export function formatResult(r: NotebookResult): string {
  const status = r.problems.length ? "FAIL" : "ok  ";
  const expect = r.expectFigures !== undefined ? ` (expected >= ${r.expectFigures})` : "";
  const attempt = (r.attempts ?? 1) > 1 ? `  (attempt ${r.attempts})` : "";
  return `${status} ${r.name}  cells ${r.cells} (${r.codeCells} code)  errors ${r.errors.length}  ` +
    `figures ${r.rendered}/${r.figures} rendered${expect}  ${r.seconds.toFixed(1)} s${attempt}`;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals: filters } = cliArgs(argv, {
    usage: "usage: deno task test:notebooks [--retries=N] [name filters...]",
    summary: "Runs every canonical notebook in Jupyter and checks its figures in Chromium.",
    positionals: true,
    flags: {
      retries: {
        type: "string",
        value: "N",
        help: "reruns of a notebook that failed",
        default: "2",
      },
    },
  });
  const retryFlag = values.retries as string | undefined;
  const retries = retryFlag === undefined ? 2 : Number(retryFlag);
  if (!Number.isInteger(retries) || retries < 0) {
    console.error(`Bad --retries=${retryFlag}: expected --retries=N with N a whole number >= 0.`);
    return 2;
  }
  const repo = fileURLToPath(new URL("../../", import.meta.url));
  const dir = join(repo, "notebooks");
  const names = await listNotebooks(dir, filters);
  if (!names.length) {
    console.error(`No notebooks in ${dir}${filters.length ? ` match ${filters.join(", ")}` : ""}.`);
    return 1;
  }
  const deno = await registerKernel();
  console.log(`kernel: deno (${deno}); jupyter: ${JUPYTER}; browser: ${CHROMIUM}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const outDir = join(repo, "runs", "notebooks", stamp);
  await Deno.mkdir(outDir, { recursive: true });
  let launched: Promise<Browser> | undefined;
  const browser = () =>
    launched ??= import("playwright-core").then(({ chromium }) =>
      chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS] })
    );
  const results: NotebookResult[] = [];
  try {
    for (const n of names) {
      const retried: string[] = [];
      let r: NotebookResult;
      for (let attempt = 1;; attempt++) {
        r = await testNotebook(join(dir, n), outDir, browser)
          .catch((err) => ({ ...emptyResult(n), problems: [String(err)] }));
        r = { ...r, attempts: attempt, retried: [...retried] };
        if (!isTransient(r) || attempt > retries) break;
        console.log(`     ! ${n}, attempt ${attempt} failed; retrying: ${r.problems.join("; ")}`);
        for (const w of r.warnings ?? []) console.log(`       ~ ${w}`);
        retried.push(...r.problems.map((p) => `attempt ${attempt}: ${p}`));
      }
      results.push(r);
      console.log(formatResult(r));
      for (const p of r.problems) console.log(`     - ${p}`);
      for (const w of r.warnings ?? []) console.log(`     ~ ${w}`);
    }
  } finally {
    await launched?.then((b) => b.close(), () => undefined); // launch errors are per notebook
  }
  const failed = results.filter((r) => r.problems.length).length;
  await writeJsonAtomic(join(outDir, "summary.json"), { stamp, retries, results });
  console.log(`outputs: ${outDir}`);
  console.log(`${results.length - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
