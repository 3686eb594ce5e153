/**
 * A second library for products with few rows: decoding steps of large models, where a batch of
 * B rows (B <= {@link SKINNY_MAX_ROWS}) meets a weight matrix of at least
 * {@link SKINNY_MIN_WEIGHTS} entries. Such a product streams the whole matrix from memory for a
 * handful of rows, and OpenBLAS first packs that matrix into a buffer, reading it twice. Two
 * libraries read it in place, tried in order:
 *
 * 1. The native few-rows kernel, lib/engine/native/few_rows_gemm.c, built once with the system C
 *    compiler and cached (lib/engine/native_build.ts; needs `--allow-run` for the compiler the
 *    first time, and `--allow-ffi`). `SAFETY_COMPASS_NATIVE=0` turns it off.
 * 2. BLIS (Debian/Ubuntu `libblis4-pthread`), whose kernels for small dimensions skip OpenBLAS's
 *    packing but not their own. `SAFETY_COMPASS_BLIS=0` turns it off; a path chooses the library.
 *
 * Measured on the 2-core Xeon (Sapphire Rapids, AVX-512), GPT-2-small's products of one decoding
 * step at B = 8 (12 layers and the tied head, 498 MB of weights, each step's weights cold, from
 * C, 2 threads): OpenBLAS 73 ms, BLIS 54-56 ms, the native kernel 26-29 ms (the head alone
 * 154 MB in 6.9 ms, 22 GB/s, the machine's two-thread read bandwidth being 24 GB/s).
 * `deno task bench`'s GPT-2-small decoding at B = 8: 90-94 tok/s (OpenBLAS), 108-121 (BLIS),
 * 163-167 (native).
 *
 * lib/engine/blas.ts sends a product here when it has few rows and a large matrix and a library
 * is loaded; everything else (SafetyWorld's models, prefill, training) stays on OpenBLAS. The libraries add in different orders, so a decoding step's logits
 * differ from OpenBLAS's by float32 rounding (the tests' tolerances against Hugging Face hold).
 * The native kernel computes each output the same way whatever the batch and the thread count,
 * so a sequence decodes to the same bits alone or in a batch of 8.
 *
 * @module
 */

import { envVar } from "../io/env.ts";
import { granted } from "../io/permissions.ts";
import { buildNative } from "./native_build.ts";

/** The most rows a product may have to go to the few-rows library. */
export const SKINNY_MAX_ROWS = 16;

/**
 * The fewest weight-matrix entries (k n) a product needs to go to the few-rows library (below:
 * OpenBLAS). Low enough to take GPT-2-small's 768 x 768 projection: left on OpenBLAS, that
 * product (above OpenBLAS's threading threshold) woke its helper thread every layer, which then
 * spun in `sched_yield` beside BLIS's two threads: 90-94 tok/s at B = 8 against 118-121 with it
 * on BLIS.
 */
export const SKINNY_MIN_WEIGHTS = 1 << 19;

const I = "i32", F = "f32", P = "buffer";
const SYMBOLS = {
  cblas_sgemm: { parameters: [I, I, I, I, I, I, F, P, I, P, I, F, P, I], result: "void" },
  bli_thread_set_num_threads: { parameters: ["i64"], result: "void", optional: true },
  sc_set_num_threads: { parameters: [I], result: "void", optional: true },
  sc_few_rows_version: { parameters: [], result: I, optional: true },
} as const;

/** The native kernel's source (lib/engine/native/few_rows_gemm.c) and its version. */
const NATIVE_SOURCE = new URL("./native/few_rows_gemm.c", import.meta.url);
const NATIVE_VERSION = 5;

/** The loaded library's row-major `cblas_sgemm`, or why there is none. */
export interface SkinnyBlas {
  /** The library's `cblas_sgemm` (the CBLAS arguments, heap views as buffers), when loaded. */
  sgemm?: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"]["cblas_sgemm"];
  /** The library's path, when loaded. */
  library?: string;
  /** Which library: the native few-rows kernel or BLIS, when loaded. */
  kind?: "native" | "blis";
  /** Why it is loaded, or why not. */
  reason: string;
}

let state: SkinnyBlas | undefined;
let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/** `SAFETY_COMPASS_BLIS`, trimmed; undefined when unset, empty or not readable. */
function envSetting(): string | undefined {
  return envVar("SAFETY_COMPASS_BLIS")?.trim() || undefined;
}

function candidates(): string[] {
  if (Deno.build.os !== "linux") return [];
  const multiarch = `/usr/lib/${Deno.build.arch}-linux-gnu`;
  return [
    `${multiarch}/blis-pthread/libblis.so.4`, // Debian/Ubuntu libblis4-pthread
    `${multiarch}/libblis.so.4`, // update-alternatives (any threading flavour)
    "/usr/lib64/libblis.so.4", // Fedora
    "/usr/lib/libblis.so.4",
    "/usr/local/lib/libblis.so.4", // built from source
  ];
}

/**
 * Loads the few-rows library once (the first call decides: the native kernel, else BLIS) with
 * `threads` threads for its products; later calls return the same result and, given `threads`,
 * set the count again. Never throws: the result says why it is off (no compiler and no BLIS, FFI
 * not allowed, `SAFETY_COMPASS_NATIVE=0` and `SAFETY_COMPASS_BLIS=0`).
 *
 * @example
 * ```ts
 * import { loadSkinnyBlas } from "./skinny_gemm.ts";
 * console.log(loadSkinnyBlas(2).reason); // "native few-rows kernel (...)", "BLIS for ..." or why not
 * ```
 */
export function loadSkinnyBlas(threads?: number): SkinnyBlas {
  if (state === undefined) state = open();
  if (threads !== undefined && lib) {
    lib.symbols.bli_thread_set_num_threads?.(BigInt(threads));
    lib.symbols.sc_set_num_threads?.(threads);
  }
  return state;
}

function open(): SkinnyBlas {
  const native = openNative();
  if (native.sgemm) return native;
  const blis = openBlis();
  return blis.sgemm ? { ...blis, reason: `${blis.reason} (${native.reason})` } : {
    reason: `${blis.reason}; ${native.reason}`,
  };
}

/** The few-rows kernel built from C (lib/engine/native_build.ts), or why not. */
function openNative(): SkinnyBlas {
  const built = buildNative(NATIVE_SOURCE);
  if (built.path === undefined) return { reason: `native few-rows kernel off: ${built.reason}` };
  try {
    const opened = Deno.dlopen(built.path, SYMBOLS);
    const version = opened.symbols.sc_few_rows_version?.();
    if (version !== NATIVE_VERSION) {
      opened.close();
      return {
        reason: `native few-rows kernel off: ${built.path} is version ${version}, not ` +
          `${NATIVE_VERSION}; delete it to rebuild`,
      };
    }
    lib = opened;
    return {
      sgemm: opened.symbols.cblas_sgemm,
      library: built.path,
      kind: "native",
      reason: `native few-rows kernel (${built.reason})`,
    };
  } catch (e) {
    return { reason: `native few-rows kernel off: cannot open ${built.path}: ${e}` };
  }
}

function openBlis(): SkinnyBlas {
  const env = envSetting();
  if (env === "0") return { reason: "BLIS off: disabled by SAFETY_COMPASS_BLIS=0" };
  const tried = env !== undefined && env !== "1" ? [env] : candidates();
  const allowed = tried.filter((path) => granted({ name: "ffi", path }));
  for (const path of allowed) {
    try {
      lib = Deno.dlopen(path, SYMBOLS);
      return {
        sgemm: lib.symbols.cblas_sgemm,
        library: path,
        kind: "blis",
        reason: `BLIS for products with few rows: ${path}`,
      };
    } catch {
      // not there or not a BLIS: the next candidate
    }
  }
  return {
    reason: tried.length === 0
      ? `BLIS off: not looked for on ${Deno.build.os}`
      : allowed.length === 0
      ? "BLIS off: FFI is not allowed for its paths"
      : "BLIS off: not installed (Debian/Ubuntu: apt install libblis4-pthread); decoding " +
        "products stay on OpenBLAS",
  };
}

let calls = 0;

/**
 * How many products this thread has sent to the few-rows library (diagnostics and tests).
 *
 * @example
 * ```ts
 * import { skinnyCalls } from "./skinny_gemm.ts";
 * const before = skinnyCalls(); // ... decode a step ... skinnyCalls() - before
 * ```
 */
export function skinnyCalls(): number {
  return calls;
}

/** Counts one product sent to the few-rows library (lib/engine/blas.ts). */
export function countSkinnyCall(): void {
  calls++;
}

/**
 * Whether a product of `rows` rows (per GEMM call) against a k x n matrix goes to the few-rows
 * library (when one is loaded).
 *
 * @example
 * ```ts
 * import { isSkinny } from "./skinny_gemm.ts";
 * isSkinny(8, 768, 3072); // true: a decoding step of GPT-2-small's MLP
 * isSkinny(8, 768, 768); // true: its attention output (on OpenBLAS, its two threads would
 * //                       wake OpenBLAS's helper, which then spins beside BLIS's threads)
 * isSkinny(8, 128, 640); // false: SafetyWorld's stay on OpenBLAS
 * ```
 */
export function isSkinny(rows: number, k: number, n: number): boolean {
  return rows <= SKINNY_MAX_ROWS && k * n >= SKINNY_MIN_WEIGHTS;
}
