/**
 * A second BLAS for products with few rows: decoding steps of large models, where a batch of B
 * rows (B <= {@link SKINNY_MAX_ROWS}) meets a weight matrix of at least
 * {@link SKINNY_MIN_WEIGHTS} entries. Such a product streams the whole matrix from memory for a
 * handful of rows, and OpenBLAS first packs that matrix into a buffer, reading it twice; BLIS
 * (Debian/Ubuntu `libblis4-pthread`) has kernels for small dimensions that read it in place.
 * Measured on the 2-core Xeon, GPT-2-small's products of one decoding step at B = 8 (12 layers
 * and the tied head, 498 MB of weights, each step's weights cold): OpenBLAS 73 ms, BLIS 45 ms
 * (2 threads each);
 * `deno task bench`'s GPT-2-small decoding at B = 8, 90-94 -> 118-121 tok/s.
 *
 * lib/engine/blas.ts sends a product here when it has few rows and a large matrix and this
 * library is loaded; everything else (SafetyWorld's models, prefill, training) stays on
 * OpenBLAS, with the same numbers as before. The two libraries add in different orders, so a
 * decoding step's logits differ from OpenBLAS's by float32 rounding (the tests' tolerances
 * against Hugging Face hold). `SAFETY_COMPASS_BLIS=0` turns it off; a path chooses the library.
 *
 * @module
 */

import { envVar } from "../io/env.ts";

/** The most rows a product may have to go to BLIS. */
export const SKINNY_MAX_ROWS = 16;

/**
 * The fewest weight-matrix entries (k n) a product needs to go to BLIS (below: OpenBLAS). Low
 * enough to take GPT-2-small's 768 x 768 projection: left on OpenBLAS, that product (above
 * OpenBLAS's threading threshold) woke its helper thread every layer, which then spun in
 * `sched_yield` beside BLIS's two threads: 90-94 tok/s at B = 8 against 118-121 with it on BLIS.
 */
export const SKINNY_MIN_WEIGHTS = 1 << 19;

const I = "i32", F = "f32", P = "buffer";
const SYMBOLS = {
  cblas_sgemm: { parameters: [I, I, I, I, I, I, F, P, I, P, I, F, P, I], result: "void" },
  bli_thread_set_num_threads: { parameters: ["i64"], result: "void", optional: true },
} as const;

/** The loaded library's row-major `cblas_sgemm`, or why there is none. */
export interface SkinnyBlas {
  /** BLIS's row-major `cblas_sgemm` (the CBLAS arguments, heap views as buffers), when loaded. */
  sgemm?: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"]["cblas_sgemm"];
  /** The library's path, when loaded. */
  library?: string;
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
 * Loads BLIS once (the first call decides) with `threads` threads for its products; later
 * calls return the same result and, given `threads`, set the count again. Never throws: the
 * result says why it is off (not installed, FFI not allowed, `SAFETY_COMPASS_BLIS=0`).
 *
 * @example
 * ```ts
 * import { loadSkinnyBlas } from "./skinny_gemm.ts";
 * console.log(loadSkinnyBlas(2).reason); // "BLIS for products with few rows: /usr/lib/..." or why not
 * ```
 */
export function loadSkinnyBlas(threads?: number): SkinnyBlas {
  if (state === undefined) state = open();
  if (threads !== undefined && lib) lib.symbols.bli_thread_set_num_threads?.(BigInt(threads));
  return state;
}

function open(): SkinnyBlas {
  const env = envSetting();
  if (env === "0") return { reason: "BLIS off: disabled by SAFETY_COMPASS_BLIS=0" };
  const tried = env !== undefined && env !== "1" ? [env] : candidates();
  const allowed = tried.filter((path) =>
    Deno.permissions.querySync({ name: "ffi", path }).state === "granted"
  );
  for (const path of allowed) {
    try {
      lib = Deno.dlopen(path, SYMBOLS);
      return {
        sgemm: lib.symbols.cblas_sgemm,
        library: path,
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
 * How many products this thread has sent to BLIS (diagnostics and tests).
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

/** Counts one product sent to BLIS (lib/engine/blas.ts). */
export function countSkinnyCall(): void {
  calls++;
}

/**
 * Whether a product of `rows` rows (per GEMM call) against a k x n matrix goes to BLIS.
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
