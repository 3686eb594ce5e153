/**
 * The shared-memory protocol between the main thread and the bf16 helper thread
 * (`bf16_helper.ts`, `bf16_helper_worker.ts`): one SharedArrayBuffer holding a control block
 * (`Int32Array`: state, ready), the job's parameters (`BigInt64Array`: pointers as
 * addresses, numbers as integers) and an error message. The main thread writes a job, sets
 * the state to `job` and notifies; the helper runs it and sets `done` (or `error`) and
 * notifies; the main thread, after its own share, waits for that and sets `idle`.
 *
 * @module
 */

import type { RowsJob } from "./external_gemm.ts";

/** Indices into the control block. */
export const CTRL = { state: 0, ready: 1 } as const;

/** Values of the state word. */
export const STATE = { idle: 0, job: 1, done: 2, error: 3, stop: 4 } as const;

const CTRL_BYTES = 16, PARAMS = 11, MSG_BYTES = 512;

/** Bytes of the shared buffer. */
export const SAB_BYTES = CTRL_BYTES + PARAMS * 8 + MSG_BYTES;

/** The control block, parameters and message of the shared buffer. */
export function sharedViews(sab: SharedArrayBuffer): {
  ctrl: Int32Array;
  params: BigInt64Array;
  msg: Uint8Array;
} {
  return {
    ctrl: new Int32Array(sab, 0, CTRL_BYTES / 4),
    params: new BigInt64Array(sab, CTRL_BYTES, PARAMS),
    msg: new Uint8Array(sab, CTRL_BYTES + PARAMS * 8, MSG_BYTES),
  };
}

const addr = (p: Deno.PointerObject) => BigInt(Deno.UnsafePointer.value(p));

/** Writes a job whose storage is at `dataPtr` (`dataBytes` long) into the parameters. */
export function encodeJob(
  params: BigInt64Array,
  job: RowsJob,
  dataPtr: Deno.PointerObject,
): void {
  params[0] = addr(dataPtr);
  params[1] = BigInt(job.data.byteLength);
  params[2] = job.data instanceof Float32Array ? 0n : 1n;
  params[3] = BigInt(job.rows);
  params[4] = BigInt(job.cols);
  params[5] = job.mode === "rowsOut" ? 0n : 1n;
  params[6] = BigInt(job.m);
  params[7] = addr(job.input);
  params[8] = addr(job.out);
  params[9] = BigInt(job.r0);
  params[10] = BigInt(job.r1);
}

/** Reads a job back (on the helper thread), viewing the storage in place (no copy). */
export function decodeJob(params: BigInt64Array): RowsJob {
  const ptr = (v: bigint) => Deno.UnsafePointer.create(v) as Deno.PointerObject;
  const buffer = Deno.UnsafePointerView.getArrayBuffer(ptr(params[0]), Number(params[1]));
  return {
    data: params[2] === 0n ? new Float32Array(buffer) : new Uint16Array(buffer),
    rows: Number(params[3]),
    cols: Number(params[4]),
    mode: params[5] === 0n ? "rowsOut" : "rowsIn",
    m: Number(params[6]),
    input: ptr(params[7]),
    out: ptr(params[8]),
    r0: Number(params[9]),
    r1: Number(params[10]),
  };
}
