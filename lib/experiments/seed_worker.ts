/**
 * The entry of a seed worker (lib/experiments/seed_jobs.ts): starts its own tfjs backend
 * (wasm, one OpenBLAS thread: the same kernels as the main thread of a run with workers),
 * runs the named experiment with `seedJob` set, and posts back the {@link SeedPartial} that the
 * experiment throws once its one seed is done.
 *
 * @module
 */

import { initBackend } from "../engine/backend.ts";
import { SEED_JOB_EXPERIMENTS, SeedJobDone, type SeedJobReply } from "./seed_jobs.ts";

const scope = globalThis as unknown as {
  postMessage(msg: SeedJobReply): void;
  onmessage:
    | ((e: MessageEvent<{ experiment: string; options: Record<string, unknown> }>) => void)
    | null;
};

scope.onmessage = async (e) => {
  const { experiment, options } = e.data;
  try {
    await initBackend("wasm", { blasThreads: 1 });
    const entry = SEED_JOB_EXPERIMENTS[experiment];
    const mod = await import(entry.module) as Record<string, (o: unknown) => Promise<unknown>>;
    const seed = options.seedJob as number;
    const t0 = performance.now(); // each line says how long its seed has run
    const log = (s: string) =>
      console.log(
        `[seed ${seed}, ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${s}`,
      );
    await mod[entry.fn]({ ...options, log });
    scope.postMessage({
      ok: false,
      message: "the experiment finished without reaching its seed loop (forEachSeed)",
    });
  } catch (err) {
    if (err instanceof SeedJobDone) scope.postMessage({ ok: true, partial: err.partial });
    else {
      const x = err as Error;
      scope.postMessage({ ok: false, message: x?.message ?? String(err), stack: x?.stack });
    }
  }
};
