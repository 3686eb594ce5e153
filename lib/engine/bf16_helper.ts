/**
 * A second thread for bf16 products at few rows (decode). At M <= 16 a bf16 external product
 * is bound by the bf16 -> f32 tile conversion, which runs on the calling thread (~3.3 G
 * elements/s on one core here) while OpenBLAS's threads wait; with the helper, the stored rows
 * are split in two: the helper Worker converts and multiplies the second half (on raw pointers,
 * through its own BLAS handle) while the main thread does the first, each with one BLAS
 * thread. The call stays synchronous: the main thread blocks on `Atomics.wait` until the
 * helper's half is done. For `rowsIn` products (which sum over rows) the helper writes its
 * partial sum into a buffer the main thread then adds.
 *
 * Opt-in and process-wide, like `enableBlas`: {@link startBf16Helper} starts it (a Worker,
 * needs --allow-ffi and --allow-read), {@link stopBf16Helper} ends it.
 *
 * @module
 */

import { type GemmLib, ptrOf, type RowsJob, rowsProduct } from "./external_gemm.ts";
import { CTRL, encodeJob, SAB_BYTES, sharedViews, STATE } from "./bf16_helper_protocol.ts";

interface Helper {
  worker: Worker;
  views: ReturnType<typeof sharedViews>;
  partial: Float32Array;
}

let helper: Helper | undefined;

/** How long the main thread waits for the helper's half before giving up on it. */
const HELPER_TIMEOUT_MS = 120_000;

/** Whether a started helper is ready to take jobs. */
export function bf16HelperReady(): boolean {
  return helper !== undefined;
}

/**
 * Starts the helper thread with the BLAS library at `libPath`; resolves once it has opened
 * the library. Idempotent. Throws (and leaves no thread) when it cannot start.
 *
 * @example
 * ```ts ignore
 * import { detectBlas } from "./blas.ts";
 * import { startBf16Helper, stopBf16Helper } from "./bf16_helper.ts";
 * await startBf16Helper(detectBlas().path!);
 * // ... externalMatMul on bf16 matrices at M <= 16 now uses two threads ...
 * stopBf16Helper();
 * ```
 */
export async function startBf16Helper(libPath: string): Promise<void> {
  if (helper !== undefined) return;
  const sab = new SharedArrayBuffer(SAB_BYTES);
  const views = sharedViews(sab);
  const worker = new Worker(new URL("./bf16_helper_worker.ts", import.meta.url).href, {
    type: "module",
  });
  const failed = new Promise<never>((_, reject) => {
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`Cannot start the bf16 helper thread: ${e.message}`));
    };
  });
  worker.postMessage({ sab, libPath });
  const deadline = performance.now() + 30_000;
  const ready = (async () => {
    while (Atomics.load(views.ctrl, CTRL.ready) !== 1) {
      if (Atomics.load(views.ctrl, CTRL.state) === STATE.error) {
        throw new Error(`Cannot start the bf16 helper thread: ${message(views.msg)}`);
      }
      if (performance.now() > deadline) {
        throw new Error("Cannot start the bf16 helper thread: no answer in 30 s");
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  try {
    await Promise.race([ready, failed]);
  } catch (e) {
    worker.terminate();
    throw e;
  }
  helper = { worker, views, partial: new Float32Array(0) };
}

/** Ends the helper thread (no-op when none runs). */
export function stopBf16Helper(): void {
  if (helper === undefined) return;
  Atomics.store(helper.views.ctrl, CTRL.state, STATE.stop);
  Atomics.notify(helper.views.ctrl, CTRL.state);
  helper.worker.terminate();
  helper = undefined;
}

function message(msg: Uint8Array): string {
  const end = msg.indexOf(0);
  return new TextDecoder().decode(msg.slice(0, end < 0 ? msg.length : end));
}

/**
 * Runs `job` with its rows split between this thread (the first half) and the helper (the
 * rest), each with one BLAS thread. `outView` gives the output's values (for `rowsIn`, to
 * add the helper's partial sum; called after both halves are done).
 */
export function splitRowsProduct(
  lib: GemmLib,
  job: RowsJob,
  outView: () => Float32Array,
): void {
  const h = helper!;
  const half = job.r0 + Math.floor((job.r1 - job.r0) / 2);
  const outLen = job.m * job.cols;
  if (job.mode === "rowsIn" && h.partial.length < outLen) h.partial = new Float32Array(outLen);
  const theirs: RowsJob = {
    ...job,
    r0: half,
    out: job.mode === "rowsIn" ? ptrOf(h.partial) : job.out,
  };
  const s = lib.symbols;
  const threads = s.openblas_get_num_threads?.() ?? 1;
  s.openblas_set_num_threads?.(1);
  try {
    encodeJob(h.views.params, theirs, ptrOf(job.data));
    Atomics.store(h.views.ctrl, CTRL.state, STATE.job);
    Atomics.notify(h.views.ctrl, CTRL.state);
    let ownError: unknown;
    try {
      rowsProduct(lib, { ...job, r1: half });
    } catch (e) {
      ownError = e;
    }
    let st: number;
    const deadline = performance.now() + HELPER_TIMEOUT_MS;
    while ((st = Atomics.load(h.views.ctrl, CTRL.state)) === STATE.job) {
      const left = deadline - performance.now();
      if (left <= 0) {
        // It may still write into the output: end it before anyone reads that memory.
        stopBf16Helper();
        throw new Error(
          `bf16 helper thread gave no answer in ${HELPER_TIMEOUT_MS / 1000} s and was ` +
            "stopped; products run on one thread now (call enableBf16Helper() to retry)",
        );
      }
      Atomics.wait(h.views.ctrl, CTRL.state, STATE.job, left);
    }
    Atomics.store(h.views.ctrl, CTRL.state, STATE.idle);
    if (ownError !== undefined) throw ownError;
    if (st === STATE.error) {
      throw new Error(`bf16 helper thread failed: ${message(h.views.msg)}`);
    }
  } finally {
    s.openblas_set_num_threads?.(threads);
  }
  if (job.mode === "rowsIn") {
    const out = outView();
    const part = h.partial;
    for (let i = 0; i < outLen; i++) out[i] += part[i];
  }
}
