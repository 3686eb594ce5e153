/**
 * The bf16 helper thread (see `bf16_helper.ts`): a module Worker that waits on a shared
 * control block, runs its share of a bf16 product (`rowsProduct`, with its own converter and
 * its own handle on the BLAS library) on raw pointers into the main thread's memory, and
 * signals completion. It never allocates tfjs tensors and never touches the wasm heap except
 * through the pointers it is given, during the one call that gave them.
 *
 * @module
 */

import { GEMM_SYMBOLS, type GemmLib, rowsProduct } from "./external_gemm.ts";
import { CTRL, decodeJob, sharedViews, STATE } from "./bf16_helper_protocol.ts";

interface Start {
  sab: SharedArrayBuffer;
  libPath: string;
}

function fail(ctrl: Int32Array, msg: Uint8Array, e: unknown): void {
  const text = new TextEncoder().encode(String(e instanceof Error ? e.message : e));
  msg.fill(0);
  msg.set(text.subarray(0, msg.length));
  Atomics.store(ctrl, CTRL.state, STATE.error);
  Atomics.notify(ctrl, CTRL.state);
}

function loop(start: Start): void {
  const { ctrl, params, msg } = sharedViews(start.sab);
  let lib: GemmLib;
  try {
    lib = Deno.dlopen(start.libPath, GEMM_SYMBOLS);
  } catch (e) {
    fail(ctrl, msg, e);
    return;
  }
  Atomics.store(ctrl, CTRL.ready, 1);
  Atomics.notify(ctrl, CTRL.ready);
  for (;;) {
    let s: number;
    while ((s = Atomics.load(ctrl, CTRL.state)) !== STATE.job && s !== STATE.stop) {
      Atomics.wait(ctrl, CTRL.state, s);
    }
    if (s === STATE.stop) break;
    try {
      rowsProduct(lib, decodeJob(params));
      Atomics.store(ctrl, CTRL.state, STATE.done);
    } catch (e) {
      fail(ctrl, msg, e);
      continue;
    }
    Atomics.notify(ctrl, CTRL.state);
  }
  lib.close();
  self.close();
}

self.onmessage = (e: MessageEvent<Start>) => loop(e.data);
