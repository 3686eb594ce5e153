/**
 * Shared test helpers: the backend under test (env SAFETY_COMPASS_BACKEND, default wasm),
 * a tiny whitespace tokenizer over numbers, random models of both architectures, and the
 * location of ../shared.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { backendInfo, type BackendName, initBackend } from "../lib/engine/backend.ts";
import { parseConfig } from "../lib/model/config.ts";
import { initParams } from "../lib/model/weights.ts";
import type { TextTokenizer } from "../lib/model/tokenizer.ts";
import { createModel } from "../lib/model/create.ts";
import { Model } from "../lib/model/model.ts";
import type { Arch } from "../lib/model/config.ts";
import type { Compass } from "../lib/compass/compass.ts";
import type { Matrix } from "../lib/compass/matrix.ts";
import type { SftExample } from "../lib/train/sft.ts";
import { makeRng } from "../lib/data/rng.ts";

/** The backend the model suites run on. */
export const TEST_BACKEND = (Deno.env.get("SAFETY_COMPASS_BACKEND") ?? "wasm") as BackendName;

/** Activates the backend under test. */
export function useTestBackend() {
  return initBackend(TEST_BACKEND, { allowSoftwareGpu: true });
}

/** A tokenizer over space-separated integers ("3 4 5" -> [3, 4, 5]); eos = vocab-1, pad = 0. */
export function numberTokenizer(vocab: number): TextTokenizer {
  return {
    vocabSize: vocab,
    bosId: undefined,
    eosId: vocab - 1,
    padId: 0,
    hasChatTemplate: false,
    encode: (text: string) => text.trim().split(/\s+/).filter(Boolean).map(Number),
    decode: (ids: number[]) => ids.filter((i) => i !== vocab - 1).join(" "),
    tokenToId: (t: string) => (Number.isInteger(Number(t)) ? Number(t) : undefined),
    idToToken: (i: number) => String(i),
    applyChatTemplate: (messages) => messages.map((m) => m.content).join(" "),
  };
}

/** A small random model of the given architecture (GQA and q/k/v bias on for llama). */
export function tinyModel(arch: Arch, seed = 1, vocab = 40): Promise<Model> {
  return createModel(
    arch === "gpt2"
      ? { arch, vocabSize: vocab, nLayer: 2, dModel: 16, nHead: 4, maxPositions: 64 }
      : {
        arch,
        vocabSize: vocab,
        nLayer: 2,
        dModel: 16,
        nHead: 4,
        nKvHead: 2,
        dFf: 24,
        attnBias: true,
        ropeTheta: 500,
      },
    { tokenizer: numberTokenizer(vocab), seed, backend: TEST_BACKEND, name: `tiny-${arch}` },
  );
}

/** A tiny config.json of the RoPE families; add `model_type` and the family's own keys. */
export const TINY_RAW_CONFIG = {
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};

/** Gemma 2's extras on the tiny config: head_dim 8, a 3-token sliding window, both soft-caps. */
export const TINY_GEMMA2_CONFIG = {
  ...TINY_RAW_CONFIG,
  model_type: "gemma2",
  head_dim: 8,
  sliding_window: 3,
  final_logit_softcapping: 5,
  attn_logit_softcapping: 20,
};

/**
 * A random model from a raw Hugging Face config (e.g. `{ ...TINY_RAW_CONFIG, model_type:
 * "gemma2" }`) with the number tokenizer; `scale` multiplies every matrix (larger weights than
 * the init's 0.02 make attention non-uniform, so effects are visible).
 */
export function tinyModelFromConfig(raw: Record<string, unknown>, seed: number, scale = 1): Model {
  const config = parseConfig(raw);
  const params = initParams(config, seed);
  if (scale !== 1) {
    for (const [, v] of params) if (v.shape.length === 2) v.assign(tf.mul(v, scale));
  }
  return new Model({
    config,
    tokenizer: numberTokenizer(config.vocabSize),
    params,
    source: `tiny-${raw.model_type}`,
    backend: backendInfo()!,
  });
}

/** ../shared beside the repository (absent in users' clones). */
export const SHARED = new URL("../../shared/", import.meta.url).pathname;

/** Whether ../shared exists. */
export const HAS_SHARED = (() => {
  try {
    return Deno.statSync(SHARED).isDirectory;
  } catch {
    return false;
  }
})();

/** Max |a - b| over two nested numeric arrays of equal shape. */
export function maxAbsDiff(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(Infinity as 1) as number[];
  const fb = (b as number[]).flat(Infinity as 1) as number[];
  if (fa.length !== fb.length) throw new Error(`shape mismatch: ${fa.length} vs ${fb.length}`);
  let m = 0;
  for (let i = 0; i < fa.length; i++) m = Math.max(m, Math.abs(fa[i] - fb[i]));
  return m;
}

/**
 * The product A B in float64, A [m, k] and B [k, n] row-major (B [n, k] when `transposeB`): the
 * reference that float32 products are measured against.
 */
export function float64MatMul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  transposeB: boolean,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[transposeB ? j * k + p : p * n + j];
      c[i * n + j] = s;
    }
  }
  return c;
}

/** Max |a - b| / max |b| over two arrays of numbers (a relative error for whole results). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/**
 * A compass stub whose p_safe is sigmoid(h[0]) at layer 0 (pooling "last"), with the given
 * steering direction (default: zeros): tests plant the score in the embedding's column 0.
 */
export function firstCoordinateCompass(d: number, direction = new Float32Array(d)): Compass {
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  return {
    method: "diffmean",
    layer: 0,
    pooling: "last",
    dModel: d,
    direction,
    score: (h: Matrix) =>
      Float32Array.from({ length: h.rows }, (_, i) => sigmoid(h.data[i * h.cols])),
    save: () => Promise.resolve(),
    metrics: {},
    seed: 0,
    options: {},
  };
}

/**
 * The first Python that imports `modules` (env SAFETY_COMPASS_PYTHON, then `python3`, then
 * Debian's `/usr/bin/python3`), or undefined: the referee of the Hugging Face parity tests,
 * which skip with a message without one.
 */
export function findPython(modules = "transformers, torch"): string | undefined {
  let env: string | undefined;
  try {
    env = Deno.env.get("SAFETY_COMPASS_PYTHON");
  } catch {
    env = undefined; // no --allow-env
  }
  for (const py of [env, "python3", "/usr/bin/python3"]) {
    if (!py) continue;
    try {
      const ok = new Deno.Command(py, {
        args: ["-c", `import ${modules}`],
        stdout: "null",
        stderr: "null",
      }).outputSync().success;
      if (ok) return py;
    } catch {
      // not installed under this name: try the next one
    }
  }
  return undefined;
}

/**
 * A learnable toy SFT task: prompts of `3 + rng.int(spread)` numbers, the response is the
 * prompt's numbers plus one, reversed (seeded).
 */
export function reverseTask(n: number, seed: number, spread = 3): SftExample[] {
  const rng = makeRng(seed);
  return Array.from({ length: n }, () => {
    const xs = Array.from({ length: 3 + rng.int(spread) }, () => 1 + rng.int(20));
    return { prompt: xs.join(" "), response: xs.map((x) => x + 1).reverse().join(" ") };
  });
}
