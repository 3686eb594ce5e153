/**
 * What the benchmarks share: a tokenizer for random token ids and the memory readings they
 * print.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { TextTokenizer } from "../lib/model/tokenizer.ts";

/** A tokenizer over ids 0..vocab-1 written as space-separated numbers (benchmarks feed ids). */
export function numberTokenizer(vocab: number): TextTokenizer {
  return {
    vocabSize: vocab,
    eosId: undefined,
    padId: 0,
    hasChatTemplate: false,
    encode: (s) => s.split(" ").map(Number),
    decode: (ids) => ids.join(" "),
    tokenToId: () => undefined,
    idToToken: (i) => String(i),
    applyChatTemplate: (m) => m.map((x) => x.content).join(" "),
  };
}

/** The wasm backend's heap size in MiB (it only grows, so this is its peak), if on wasm. */
export function wasmHeapMiB(): number | undefined {
  const be = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const bytes = be.wasm?.HEAPU8?.buffer.byteLength;
  return bytes === undefined ? undefined : bytes / 2 ** 20;
}

/** This process's peak resident memory in MiB (Linux), if readable. */
export function peakRssMiB(): number | undefined {
  try {
    const kb = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+)/)?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
