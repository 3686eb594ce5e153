/**
 * Fused kernels for the small tensors of decoding (issue 22): layer norm, GELU (tanh
 * approximation) and scaled-dot-product attention, each one kernel on the wasm heap instead of
 * the 7-11 tfjs kernels the composed form dispatches. A SafetyWorld decoding step runs about 250
 * kernels whose work is a few thousand numbers each, so tfjs's ~20 us of dispatch per kernel,
 * not arithmetic, sets its speed; one fused call per norm, activation and attention removes
 * more than half of them.
 *
 * The kernels run in JavaScript over views of the heap, in double precision, rounding once to
 * float32 when they store: as exact as the composed float32 ops or more (tests/fused_test.ts
 * bounds the difference). They are used only where they pay and are safe, and the callers fall
 * back to the composed ops otherwise:
 * - on the wasm backend, with float32 inputs;
 * - when no gradient is being recorded (`tf.engine().isTapeOn()` is false): training keeps the
 *   composed ops, whose gradients tfjs knows;
 * - when the work is small ({@link FUSED_MAX_ELEMENTS}, {@link FUSED_MAX_GELU_ELEMENTS},
 *   {@link FUSED_MAX_ATTENTION_MACS}), where dispatch dominates; larger tensors run faster in
 *   tfjs's SIMD and BLAS kernels;
 * - unless `SAFETY_COMPASS_FUSED=0` is set (for A/B measurements; read once, at start-up).
 *
 * lib/model/transformer.ts calls them only in KV-cache decoding steps without hooks, so every
 * full forward (training, prefill, hooked runs, recomputed log-probs) keeps the composed ops bit
 * for bit.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { envVar } from "../io/env.ts";

/*
 * Size limits, where each fused kernel stops paying (measured on the 2-core machine, warm, at
 * SafetyWorld's decoding shapes; composed -> fused, us): layer norm over [B, 128] 75 -> 3 (B=1),
 * 82 -> 31 (B=32); GELU over [B, 512] 130 -> 9 (B=1), 73 -> 59 (B=8), 120 -> 220 (B=32);
 * attention over 40 cached slots of 4 heads x 32 60 -> 23 (B=1), 156 -> 163 (B=8),
 * 345 -> 715 (B=32). JavaScript's scalar arithmetic (about 1 multiply-add per ns) loses to
 * tfjs's SIMD and BLAS kernels once the work outgrows the dispatch it saves.
 */

/** The largest output (elements) the fused layer norm takes. */
export const FUSED_MAX_ELEMENTS = 1 << 16;

/** The largest output (elements) the fused GELU takes. */
export const FUSED_MAX_GELU_ELEMENTS = 1 << 12;

/** The largest attention (B x H x T x S x D multiply-adds) the fused kernel takes. */
export const FUSED_MAX_ATTENTION_MACS = 1 << 15;

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

const LN = "ScLayerNorm", GELU = "ScGelu", ATTN = "ScAttention";
const GELU_C = 1.5957691216057308; // 2 * sqrt(2 / pi), as in transformer.ts

let disabled = envVar("SAFETY_COMPASS_FUSED") === "0";

/**
 * Turns the fused kernels on or off for this thread (for A/B comparisons and tests); returns
 * the previous setting. Workers keep their own (`SAFETY_COMPASS_FUSED=0` reaches them all).
 *
 * @example
 * ```ts
 * import { useFusedKernels } from "./fused.ts";
 * const before = useFusedKernels(false); // composed ops only
 * useFusedKernels(before);
 * ```
 */
export function useFusedKernels(on: boolean): boolean {
  const before = !disabled;
  disabled = !on;
  return before;
}

let registered = false;

function layerNormKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const be = args.backend as WasmBackendLike;
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const eps = (args.attrs as { eps: number }).eps;
  const d = x.shape[x.shape.length - 1];
  const out = be.makeOutput(x.shape, "float32");
  const [xs, w, b, y] = [x, gamma, beta, out].map((t) => be.typedArrayFromHeap(t));
  const rows = xs.length / d;
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean = 0;
    for (let j = 0; j < d; j++) mean += xs[o + j];
    mean /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (xs[o + j] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let j = 0; j < d; j++) y[o + j] = (xs[o + j] - mean) * inv * w[j] + b[j];
  }
  return out;
}

function geluKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown },
): tf.TensorInfo {
  const be = args.backend as WasmBackendLike;
  const x = args.inputs.x!;
  const out = be.makeOutput(x.shape, "float32");
  const xs = be.typedArrayFromHeap(x), y = be.typedArrayFromHeap(out);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    y[i] = v / (1 + Math.exp(-GELU_C * (v + 0.044715 * v * v * v)));
  }
  return out;
}

/**
 * q [B, H, T, D], k and v [B, Hkv, C, D] of which the first S slots are read (C > S where a
 * cache holds reserved slots; query head h reads kv head floor(h / (H / Hkv))), bias [B, 1, T,
 * S] -> z [B, T, H, D]: softmax(q k^T scale (soft-capped) + bias) v.
 */
function attentionKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const be = args.backend as WasmBackendLike;
  const { q, k, v, bias } = args.inputs as Record<string, tf.TensorInfo>;
  const { scale, softcap } = args.attrs as { scale: number; softcap: number };
  const [B, H, T, D] = q.shape, hkv = k.shape[1], C = k.shape[2], S = bias.shape[3];
  const rep = H / hkv;
  const out = be.makeOutput([B, T, H, D], "float32");
  const [qs, ks, vs, bs, z] = [q, k, v, bias, out].map((t) => be.typedArrayFromHeap(t));
  const scores = new Float64Array(S), acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kv = (b * hkv + Math.floor(h / rep)) * C * D;
      for (let t = 0; t < T; t++) {
        const qo = ((b * H + h) * T + t) * D, bo = (b * T + t) * S;
        let max = -Infinity;
        for (let s = 0; s < S; s++) {
          let dot = 0;
          const ko = kv + s * D;
          for (let j = 0; j < D; j++) dot += qs[qo + j] * ks[ko + j];
          // float32 rounding where the composed ops round, so masked slots stay exactly masked
          let sc = Math.fround(dot * scale);
          if (softcap > 0) sc = Math.fround(softcap * Math.tanh(sc / softcap));
          sc = Math.fround(sc + bs[bo + s]);
          scores[s] = sc;
          if (sc > max) max = sc;
        }
        let sum = 0;
        for (let s = 0; s < S; s++) sum += scores[s] = Math.exp(scores[s] - max);
        acc.fill(0);
        for (let s = 0; s < S; s++) {
          const p = scores[s] / sum;
          if (p === 0) continue;
          const vo = kv + s * D;
          for (let j = 0; j < D; j++) acc[j] += p * vs[vo + j];
        }
        const zo = ((b * T + t) * H + h) * D;
        for (let j = 0; j < D; j++) z[zo + j] = acc[j];
      }
    }
  }
  return out;
}

/** Registers the fused kernels on the wasm backend (idempotent; a no-op elsewhere). */
export function registerFusedKernels(): void {
  if (registered) return;
  for (
    const [kernelName, kernelFunc] of [
      [LN, layerNormKernel],
      [GELU, geluKernel],
      [ATTN, attentionKernel],
    ] as const
  ) {
    if (tf.getKernel(kernelName, "wasm") === undefined) {
      tf.registerKernel({
        kernelName,
        backendName: "wasm",
        kernelFunc: kernelFunc as unknown as tf.KernelFunc,
      });
    }
  }
  registered = true;
}

/** Whether a fused kernel may run on these inputs now (see the module doc). */
function usable(inputs: tf.Tensor[], size: number, limit: number): boolean {
  return !disabled && registered && size <= limit && tf.getBackend() === "wasm" &&
    !tf.engine().isTapeOn() && inputs.every((t) => t.dtype === "float32");
}

/**
 * Layer norm over the last axis, `(x - mean) / sqrt(var + eps) * w + b`, as one kernel; undefined
 * where the fused kernel does not apply (the caller then composes it).
 *
 * @example
 * ```ts ignore
 * const y = fusedLayerNorm(x, w, b, 1e-5) ?? composedLayerNorm(x, w, b, 1e-5);
 * ```
 */
export function fusedLayerNorm(
  x: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor,
  eps: number,
): tf.Tensor | undefined {
  const d = x.shape[x.shape.length - 1];
  if (w.size !== d || b.size !== d || !usable([x, w, b], x.size, FUSED_MAX_ELEMENTS)) {
    return undefined;
  }
  return tf.engine().runKernel(LN, { x, gamma: w, beta: b }, { eps }) as tf.Tensor;
}

/**
 * GELU, tanh approximation (`x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))`), as one kernel;
 * undefined where the fused kernel does not apply.
 *
 * @example
 * ```ts ignore
 * const y = fusedGelu(x) ?? composedGelu(x);
 * ```
 */
export function fusedGelu(x: tf.Tensor): tf.Tensor | undefined {
  if (!usable([x], x.size, FUSED_MAX_GELU_ELEMENTS)) return undefined;
  return tf.engine().runKernel(GELU, { x }, {}) as tf.Tensor;
}

/**
 * Attention as one kernel: q [B, H, T, D], k and v [B, Hkv, C, D] of which the first S slots
 * are read (C > S where a cache holds reserved slots), an additive bias [B, 1, T, S] -> z [B, T,
 * H, D] (the layout of `attn.hook_z`); `softcap` 0 for none. Undefined where the fused kernel
 * does not apply.
 *
 * @example
 * ```ts ignore
 * const z = fusedAttention(q, k, v, bias, 1 / Math.sqrt(d), 0) ?? composedAttention(q, k, v, bias);
 * ```
 */
export function fusedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D,
  scale: number,
  softcap: number,
): tf.Tensor4D | undefined {
  const [b, h, t, d] = q.shape, s = bias.shape[3];
  const shapesOk = k.shape[0] === b && v.shape.every((n, i) => n === k.shape[i]) &&
    h % k.shape[1] === 0 && k.shape[3] === d && bias.shape[0] === b && bias.shape[1] === 1 &&
    bias.shape[2] === t && s <= k.shape[2];
  if (!shapesOk || !usable([q, k, v, bias], b * h * t * s * d, FUSED_MAX_ATTENTION_MACS)) {
    return undefined;
  }
  return tf.engine().runKernel(ATTN, { q, k, v, bias }, { scale, softcap }) as tf.Tensor4D;
}
