/**
 * The logit lens (nostalgebraist 2020): the final norm and the head applied to the residual
 * stream after every layer, read through a logit-difference metric. Entry l < nLayer reads
 * `blocks.{l}.hook_resid_pre` (entry 0: the embeddings); entry nLayer reads the residual
 * after the last block, through exactly the ops of the forward, so it IS the model's output
 * (tests/interp_test.ts checks bit equality).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Interval } from "../compass/metrics.ts";
import type { Model } from "../model/model.ts";
import { unembed } from "../model/transformer.ts";
import { type HookInput, inputIds } from "../model/hooks.ts";
import { checkMetric, type LogitDiff, metricOf, positionIndex } from "./metric.ts";
import { columnMeans, type InterpIntervalOptions } from "./intervals.ts";

/** The residual read by lens entry l, by hook name. */
function lensPoint(nLayer: number, l: number): string {
  return l < nLayer ? `blocks.${l}.hook_resid_pre` : `blocks.${nLayer - 1}.hook_resid_post`;
}

/**
 * The lens logits of every layer, nLayer + 1 tensors [B, T, V] (entry nLayer = the model's
 * own logits, bit for bit). The caller disposes them.
 *
 * @example
 * ```ts ignore
 * const lens = lensLogits(model, [model.encodePrompt("how do i make zorblat ?")]);
 * lens.length; // nLayer + 1
 * tf.dispose(lens);
 * ```
 */
export function lensLogits(model: Model, input: HookInput): tf.Tensor3D[] {
  const n = model.config.nLayer;
  const names = Array.from({ length: n + 1 }, (_, l) => lensPoint(n, l));
  using cache = model.runWithCache(input, { names, logits: "none" });
  return names.map((name) => unembed(model.config, model.params, cache.get(name) as tf.Tensor3D));
}

/** Options of {@link logitLens}. */
export interface LogitLensOptions extends InterpIntervalOptions {
  /** What to read at each layer (e.g. refusal token minus compliance token). */
  metric: LogitDiff;
}

/** What {@link logitLens} returns. */
export interface LogitLensResult {
  /** Labels of the entries: "embed", "after block 0", ..., "after block nLayer-1 (output)". */
  labels: string[];
  /** The metric per prompt and entry [prompt][layer]. */
  values: number[][];
  /** The model's own metric per prompt, from its logits (= the last column). */
  output: number[];
  /** Mean over prompts per entry, with a bootstrap interval over prompts. */
  summary: Interval[];
}

/**
 * The logit lens of a metric over prompts (each prompt run alone, so lengths may differ):
 * per prompt and layer the metric of the lens logits, and per layer the mean with a bootstrap
 * interval over prompts. Where it rises tells at which depth the prediction is formed.
 *
 * @example
 * ```ts ignore
 * const lens = logitLens(model, prompts, { metric: { plus: [refusalId], minus: [answerId] } });
 * plotLogitLens(lens);
 * ```
 */
export function logitLens(
  model: Model,
  prompts: readonly HookInput[],
  opts: LogitLensOptions,
): LogitLensResult {
  const c = model.config;
  checkMetric(opts.metric, c.vocabSize, "logitLens");
  if (prompts.length === 0) throw new Error("logitLens: no prompts");
  const values: number[][] = [];
  const output: number[] = [];
  for (const prompt of prompts) {
    const ids = inputIds(model, prompt);
    if (ids.length !== 1) throw new Error("logitLens: pass one prompt per entry, not a batch");
    const pos = positionIndex(opts.metric, ids[0].length, "logitLens");
    const lens = lensLogits(model, ids);
    try {
      values.push(lens.map((t) => metricOf(rowAt(t, pos), opts.metric)));
    } finally {
      tf.dispose(lens);
    }
    const f = model.forward(ids, { logits: "all" });
    output.push(metricOf(rowAt(f.logits!, pos), opts.metric));
    f.logits!.dispose();
  }
  const n = c.nLayer;
  const labels = Array.from(
    { length: n + 1 },
    (
      _,
      l,
    ) => (l === 0 ? "embed" : l === n ? `after block ${l - 1} (output)` : `after block ${l - 1}`),
  );
  return { labels, values, output, summary: columnMeans(values, opts) };
}

/** Row `pos` of the first sequence of logits [1, T, V]. */
function rowAt(t: tf.Tensor3D, pos: number): Float32Array {
  const v = t.shape[2];
  return (t.dataSync() as Float32Array).subarray(pos * v, (pos + 1) * v);
}
