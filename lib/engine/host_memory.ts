/**
 * Float32Arrays for optimiser state kept off the tfjs heap ("host" state: AdamW's moments and
 * the accumulated gradients of lib/optim), allocated inside WebAssembly memories of their own,
 * so that the SIMD passes of lib/engine/host_passes.ts can work on them in place beside the
 * heap (one module reading both memories) instead of a JavaScript loop. To everything else they
 * are ordinary Float32Arrays, zero-filled like `new Float32Array(n)`.
 *
 * Each call packs its groups into memories of at most {@link HOST_MEMORY_MAX_BYTES} (the arrays
 * of a group share one memory, so that a pass can address them together); a group larger than
 * that, or one whose memory cannot be reserved, gets plain Float32Arrays (the passes then leave
 * it to the JavaScript loops, with the same numbers). A memory never grows, so its arrays stay
 * valid, and it is freed with the last array that views it.
 *
 * @module
 */

/** The most bytes one host memory holds (2 GiB). */
export const HOST_MEMORY_MAX_BYTES = 2 ** 31;
const PAGE = 65536;
const owner = new WeakMap<ArrayBuffer, WebAssembly.Memory>();

/** Bytes an array of `n` floats takes in a memory (16-byte aligned). */
function span(n: number): number {
  return Math.ceil((4 * n) / 16) * 16;
}

/**
 * Zero-filled Float32Arrays of the given sizes, group by group: `hostArrays([[a, b], [c]])`
 * gives `[[A, B], [C]]`, A and B in one memory. Throws on a size that is not a whole number.
 *
 * @example
 * ```ts
 * import { hostArrays, hostMemoryOf } from "./host_memory.ts";
 * const [[m, v]] = hostArrays([[1000, 1000]]);
 * m[0] = 1; // an ordinary Float32Array
 * console.log(hostMemoryOf(m) === hostMemoryOf(v)); // true
 * ```
 */
export function hostArrays(groups: readonly (readonly number[])[]): Float32Array[][] {
  for (const g of groups) {
    for (const n of g) {
      if (!Number.isInteger(n) || n < 0) {
        throw new Error(`hostArrays: array size ${n} is not a whole number of floats`);
      }
    }
  }
  const out: Float32Array[][] = new Array(groups.length);
  let plan: number[] = []; // group indices of the memory being planned
  let bytes = 0;
  const flush = () => {
    if (plan.length > 0) place(groups, plan, bytes, out);
    plan = [];
    bytes = 0;
  };
  groups.forEach((g, j) => {
    const need = g.reduce((a, n) => a + span(n), 0);
    if (need > HOST_MEMORY_MAX_BYTES) {
      out[j] = g.map((n) => new Float32Array(n));
      return;
    }
    if (bytes + need > HOST_MEMORY_MAX_BYTES) flush();
    plan.push(j);
    bytes += need;
  });
  flush();
  return out;
}

/** Places the planned groups in one new memory (plain arrays if it cannot be reserved). */
function place(
  groups: readonly (readonly number[])[],
  plan: number[],
  bytes: number,
  out: Float32Array[][],
): void {
  let memory: WebAssembly.Memory | undefined;
  if (bytes > 0) {
    try {
      const pages = Math.ceil(bytes / PAGE);
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    } catch {
      memory = undefined; // no room for the reservation: ordinary arrays, the loops' path
    }
  }
  if (memory) owner.set(memory.buffer, memory);
  let at = 0;
  for (const j of plan) {
    out[j] = groups[j].map((n) => {
      if (!memory) return new Float32Array(n);
      const a = new Float32Array(memory.buffer, at, n);
      at += span(n);
      return a;
    });
  }
}

/**
 * The WebAssembly memory a {@link hostArrays} array lives in; undefined for any other array.
 *
 * @example
 * ```ts
 * import { hostArrays, hostMemoryOf } from "./host_memory.ts";
 * hostMemoryOf(hostArrays([[4]])[0][0]); // a WebAssembly.Memory
 * hostMemoryOf(new Float32Array(4)); // undefined
 * ```
 */
export function hostMemoryOf(a: Float32Array): WebAssembly.Memory | undefined {
  return owner.get(a.buffer as ArrayBuffer);
}
