/**
 * Fuzz harness: runs each target's cases in a Worker, one target at a time, with a watchdog
 * that terminates the worker when a single case runs longer than the time limit (a hang) and
 * resumes at the next case. Returns counts per target; failures carry the seed and case
 * index that replay them.
 *
 * @module
 */

import type { CaseResult } from "./_worker.ts";

/** Outcome counts of one target. */
export interface TargetReport {
  name: string;
  cases: number;
  ok: number;
  errors: number;
  failures: { i: number; detail: string }[];
  /** Failures matching the target's `known` pattern (reported elsewhere). */
  known: { i: number; detail: string }[];
  slowestMs: number;
  ms: number;
}

/** Options of {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Seed of the case generators. */
  seed: number;
  /** Cases per target. */
  cases: number;
  /** A case running longer than this is a hang. @default 5000 */
  timeoutMs?: number;
}

/** Target modules, by file name in this folder. */
export const TARGETS = [
  "safetensors_fuzz.ts",
  "stream_safetensors_fuzz.ts",
  "config_fuzz.ts",
  "tokenizer_fuzz.ts",
  "csv_fuzz.ts",
  "jsonl_fuzz.ts",
  "reward_body_fuzz.ts",
] as const;

function runSlice(
  module: string,
  seed: number,
  start: number,
  count: number,
  timeoutMs: number,
  onCase: (r: CaseResult) => void,
): Promise<number | undefined> {
  // Resolves with the index of a hung case (worker killed), or undefined when all ran.
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL("./_worker.ts", import.meta.url).href, { type: "module" });
    let next = start;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        w.terminate();
        resolve(next);
      }, timeoutMs);
    };
    w.onmessage = (e) => {
      if (e.data.done) {
        clearTimeout(timer);
        w.terminate();
        resolve(undefined);
        return;
      }
      onCase(e.data as CaseResult);
      next = (e.data as CaseResult).i + 1;
      arm();
    };
    w.onerror = (e) => {
      clearTimeout(timer);
      w.terminate();
      e.preventDefault();
      reject(new Error(`fuzz worker for ${module} crashed at case ${next}: ${e.message}`));
    };
    // The first case also pays for the module's import: allow it four times the limit.
    timer = setTimeout(() => (w.terminate(), resolve(next)), 4 * timeoutMs);
    w.postMessage({ module, seed, start, count });
  });
}

/** Runs `cases` cases of every target in `modules` under `seed`. */
export async function runFuzz(
  opts: FuzzOptions,
  modules: readonly string[] = TARGETS,
): Promise<TargetReport[]> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const reports: TargetReport[] = [];
  for (const file of modules) {
    const module = new URL(`./${file}`, import.meta.url).href;
    const rep: TargetReport = {
      name: file.replace(/_fuzz\.ts$/, ""),
      cases: 0,
      ok: 0,
      errors: 0,
      failures: [],
      known: [],
      slowestMs: 0,
      ms: 0,
    };
    const t0 = performance.now();
    let start = 0;
    while (start < opts.cases) {
      const hung = await runSlice(module, opts.seed, start, opts.cases - start, timeoutMs, (r) => {
        rep.cases++;
        if (r.kind === "ok") rep.ok++;
        else if (r.kind === "error") rep.errors++;
        else if (r.kind === "known") rep.known.push({ i: r.i, detail: r.detail ?? "" });
        else rep.failures.push({ i: r.i, detail: r.detail ?? "" });
        rep.slowestMs = Math.max(rep.slowestMs, r.ms);
      });
      if (hung === undefined) break;
      rep.cases++;
      rep.failures.push({ i: hung, detail: `hang: no result within ${timeoutMs} ms` });
      start = hung + 1;
    }
    rep.ms = performance.now() - t0;
    reports.push(rep);
  }
  return reports;
}

/** One line per target: counts, slowest case, time; then each failure with its replay key. */
export function formatReports(reports: TargetReport[], seed: number): string {
  const lines = reports.map((r) =>
    `${r.name.padEnd(12)} ${String(r.cases).padStart(6)} cases  ${String(r.ok).padStart(6)} ok  ` +
    `${String(r.errors).padStart(6)} clean errors  ${
      String(r.failures.length).padStart(4)
    } failures` +
    (r.known.length ? `  ${r.known.length} known` : "") +
    `  slowest ${r.slowestMs.toFixed(0)} ms  total ${(r.ms / 1000).toFixed(1)} s`
  );
  for (const r of reports) {
    for (const f of r.failures.slice(0, 10)) {
      lines.push(`  FAIL ${r.name} seed=${seed} case=${f.i}: ${f.detail}`);
    }
    for (const f of r.known.slice(0, 3)) {
      lines.push(`  KNOWN ${r.name} seed=${seed} case=${f.i}: ${f.detail.slice(0, 120)}`);
    }
  }
  return lines.join("\n");
}
