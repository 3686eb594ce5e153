/**
 * Fuzz worker: runs cases [start, start + count) of one target under one seed and posts one
 * message per case ({i, kind, detail, ms}); the harness kills it when a case runs past the
 * time limit.
 *
 * @module
 */

/// <reference lib="deno.worker" />
import { caseRng } from "./_mutate.ts";
import { type FuzzTarget, judgeError } from "./_target.ts";

/** A case's outcome as posted to the harness. */
export interface CaseResult {
  i: number;
  kind: "ok" | "error" | "fail" | "known";
  detail?: string;
  ms: number;
}

// Parsers under fuzz may log (the tokenizer port warns about patterns it cannot read): keep
// the report readable. Errors are what the harness judges, not logs.
console.warn = () => {};
console.log = () => {};

self.onmessage = async (e: MessageEvent) => {
  const { module, seed, start, count } = e.data as {
    module: string;
    seed: number;
    start: number;
    count: number;
  };
  const target = (await import(module)).target as FuzzTarget;
  for (let i = start; i < start + count; i++) {
    const t0 = performance.now();
    let res: CaseResult;
    try {
      const input = target.make(caseRng(seed, i));
      const garbage = await target.run(input);
      res = garbage
        ? { i, kind: "fail", detail: `silent garbage: ${garbage}`, ms: 0 }
        : { i, kind: "ok", ms: 0 };
    } catch (err) {
      const bad = judgeError(err, target.source);
      const kind = !bad ? "error" : target.known?.test(bad) ? "known" : "fail";
      res = { i, kind, detail: bad, ms: 0 };
    }
    res.ms = performance.now() - t0;
    self.postMessage(res);
  }
  self.postMessage({ done: true });
};
