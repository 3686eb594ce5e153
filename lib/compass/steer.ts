/**
 * Steering and directional ablation with a direction `r` in the residual stream (Arditi et
 * al. 2024, "Refusal in Language Models Is Mediated by a Single Direction", arXiv
 * 2406.11717; SCIENCE.md section 1):
 * - activation addition: `h <- h + strength * r` after one block, at every position;
 * - directional ablation: `h <- h - r_hat r_hat^T h` after every block (and on the
 *   embeddings), so no layer's hidden state keeps a component along `r`.
 *
 * Two calls: `const v = await steeringVector(model, pairs, { layer })` collects and fits a
 * {@link SteeringVector}; `model.generate({ prompts, steer: { vector: v, strength } })` adds it
 * (`steer: { vector: v, ablate: true }` ablates its direction). The building blocks below
 * (`steerIntervention`, `ablationInterventions`) are plain interventions passed to one
 * `model.forward` / `model.generate` call (`{interventions}`); nothing is installed on the
 * model, so nothing can be left behind.
 *
 * Note on ablation: the engine edits the residual stream between blocks, so inside a block
 * the MLP still reads the attention output's component along `r` before the next edit
 * removes it (Arditi et al. also project every block's attention and MLP writes). Every
 * hidden state the model exposes, and the final state the head reads, has none.
 *
 * @module
 */

import type { Intervention } from "../model/transformer.ts";
import type { Model } from "../model/model.ts";
import {
  ablationAtEveryLayer,
  additionIntervention,
  checkDirection,
  resolveLayer,
} from "../model/steering.ts";
import type { Compass, Pooling } from "./compass.ts";
import { collectActivations, type CollectInput, type CollectRunner } from "./collect.ts";
import { fitCompass, type LabelMapping, mapLabels } from "./fit.ts";
import { norm } from "./matrix.ts";
import { type SteeringMethod, SteeringVector } from "./steering_vector.ts";

export { loadSteeringVector, type SteeringMethod, SteeringVector } from "./steering_vector.ts";
export type { SteeringVectorJson } from "./steering_vector.ts";

/**
 * Activation addition: an intervention adding `strength * r` to hidden state `layer` (HF
 * numbering: 0 = embeddings, i = after block i, nLayer = after the final norm; negative
 * counts from the end when `nLayer` is given) at every position, prompt and generated tokens
 * alike. `r` is used as given (not normalised): with a diff-of-means `r`, strength 1 moves an
 * average unsafe state onto the average safe one.
 *
 * Prefer `model.generate({ prompts, steer: { vector, strength } })` with a vector from
 * {@link steeringVector}: the same edit in one option.
 *
 * @example
 * ```ts
 * import { steerIntervention } from "./steer.ts";
 * const r = new Float32Array([0.5, -1, 2]);
 * const iv = steerIntervention(-2, r, 1.5, 4); // layer 3 of a 4-block model
 * // await model.generate({ prompts, interventions: [iv] });
 * ```
 */
export function steerIntervention(
  layer: number,
  r: ArrayLike<number>,
  strength: number,
  nLayer?: number,
): Intervention {
  checkDirection(r, "a steering intervention");
  if (!Number.isInteger(layer)) {
    throw new Error(`Cannot steer at layer ${layer}: use an integer (0 = embeddings, -1 = last)`);
  }
  if (layer < 0 && nLayer === undefined) {
    throw new Error(
      `Cannot steer at layer ${layer}: a negative layer counts from the end; pass ` +
        `model.config.nLayer as the 4th argument, or use model.generate({ steer })`,
    );
  }
  const l = nLayer === undefined ? layer : resolveLayer(layer, nLayer);
  if (!Number.isFinite(strength)) throw new Error(`Cannot steer with strength ${strength}`);
  return additionIntervention(l, Float32Array.from(r, (v) => v * strength));
}

/**
 * Directional ablation (Arditi et al. 2024): one intervention per residual stream, the
 * embeddings and the output of every block (the last one before the final norm:
 * `beforeFinalNorm`), each replacing `h` with `h - r_hat (r_hat . h)` at every position,
 * `r_hat = r / |r|`. Pass `model.config.nLayer` as `nLayers`.
 *
 * Prefer `model.generate({ prompts, steer: { vector, ablate: true } })`.
 *
 * @example
 * ```ts
 * import { ablationInterventions } from "./steer.ts";
 * const ivs = ablationInterventions([0.5, -1, 2], 4); // layers 0..4
 * // await model.generate({ prompts, interventions: ivs });
 * ```
 */
export function ablationInterventions(r: ArrayLike<number>, nLayers: number): Intervention[] {
  return ablationAtEveryLayer(r, nLayers);
}

/** A contrastive pair of texts: the positive one is where `strength > 0` steers toward. */
export interface ContrastPair {
  /** Text of the positive class (e.g. a refused request, a safe trace). */
  positive: string;
  /** Text of the negative class. */
  negative: string;
}

/** Options of {@link steeringVector}. */
export interface SteeringVectorOptions extends LabelMapping {
  /** Hidden state to read and steer (0 = embeddings, negative counts from the end). */
  layer: number;
  /** How to fit the direction. @default "diffmean" */
  method?: SteeringMethod;
  /** Pooling of the collected hidden states. @default "mean" */
  pooling?: Pooling;
  /** Rows per forward pass. @default 16 */
  batchSize?: number;
  /** Seed of the fit (PCA start vector). @default 0 */
  seed?: number;
  /** L2 of the logistic probe. @default 1e-3 */
  l2?: number;
  /** Run the collection on a worker pool. */
  workers?: CollectRunner;
}

function isPairs(rows: unknown): rows is readonly ContrastPair[] {
  return Array.isArray(rows) && rows.length > 0 &&
    rows.every((r) =>
      typeof r?.positive === "string" && typeof r?.negative === "string" && r.prompt === undefined
    );
}

/**
 * Fits a steering vector in one call: collects hidden state `layer` of `rows` and fits a
 * direction (difference of means by default; PCA or logistic optional). `rows` are
 * `{ positive, negative }` text pairs (the positive text gives class 1), or collect rows
 * `{ prompt, trace?, traceLabel }` mapped to classes as `fitCompass` does (positive "safe").
 *
 * The old form `steeringVector(compass)` is deprecated (see the overload).
 *
 * @example
 * ```ts
 * import { loadModel, steeringVector } from "../../mod.ts";
 * const model = await loadModel("toy-base");
 * const v = await steeringVector(model, [
 *   { positive: "how do I bake bread ?", negative: "how do I make a weapon ?" },
 * ], { layer: -2 });
 * const g = await model.generate({ prompts: ["hello"], steer: { vector: v, strength: 2 } });
 * const a = await model.generate({ prompts: ["hello"], steer: { vector: v, ablate: true } });
 * ```
 */
export function steeringVector(
  model: Model,
  rows: readonly ContrastPair[] | CollectInput,
  opts: SteeringVectorOptions,
): Promise<SteeringVector>;
/**
 * @deprecated Use `steeringVector(model, rows, { layer })`, which returns a
 * {@link SteeringVector}. This form returns the raw vector of a fitted linear compass: the
 * unnormalised diff-of-means `r` when it has one (`probe.meanDiff`), else its unit direction.
 * Kept for one release.
 */
export function steeringVector(compass: Compass): Float32Array;
export function steeringVector(
  first: Model | Compass,
  rows?: readonly ContrastPair[] | CollectInput,
  opts?: SteeringVectorOptions,
): Promise<SteeringVector> | Float32Array {
  if (rows === undefined) return compassVector(first as Compass);
  return fitSteeringVector(first as Model, rows, opts!);
}

/** The raw vector of a linear compass (the deprecated `steeringVector(compass)`). */
export function compassVector(compass: Compass): Float32Array {
  const v = compass.probe?.meanDiff ?? compass.direction;
  if (!v) {
    throw new Error(
      `Cannot steer with a ${compass.method} compass: it has no direction; fit a diffmean, ` +
        `pca or logistic compass on the same activations`,
    );
  }
  return v;
}

async function fitSteeringVector(
  model: Model,
  input: readonly ContrastPair[] | CollectInput,
  opts: SteeringVectorOptions,
): Promise<SteeringVector> {
  if (!opts || typeof opts.layer !== "number") {
    throw new Error("Cannot fit a steering vector: pass { layer } (negative counts from the end)");
  }
  const method = opts.method ?? "diffmean";
  if (!["diffmean", "pca", "logistic"].includes(method)) {
    throw new Error(
      `Cannot fit a steering vector with method "${method}": use diffmean, pca or logistic ` +
        `(a CRAFT compass has no single direction)`,
    );
  }
  const nLayer = model.config.nLayer;
  const layer = resolveLayer(opts.layer, nLayer, "fit a steering vector");
  const pairs = isPairs(input);
  const rows = pairs
    ? input.flatMap((p) => [
      { prompt: p.positive, traceLabel: "safe" },
      { prompt: p.negative, traceLabel: "unsafe" },
    ])
    : input as CollectInput;
  const mapping: LabelMapping = pairs ? {} : opts;
  const acts = await collectActivations(model, rows, {
    layers: [layer],
    pooling: opts.pooling ?? "mean",
    batchSize: opts.batchSize,
    workers: opts.workers,
  });
  const compass = fitCompass(acts, {
    ...mapping,
    method,
    layer,
    seed: opts.seed ?? 0,
    l2: opts.l2,
  });
  const { indices, labels } = mapLabels(acts, mapping);
  const counts = { positive: 0, negative: 0 };
  for (const l of labels) if (l !== "rethink") counts[l === "safe" ? "positive" : "negative"]++;
  let direction: ArrayLike<number>, scale: number;
  if (method === "diffmean") {
    const r = compassVector(compass);
    direction = r;
    scale = norm(r);
  } else {
    direction = compass.direction!;
    scale = meanGap(acts.layer(layer), indices, labels, compass.direction!);
  }
  return new SteeringVector({
    layer,
    nLayer,
    direction,
    scale,
    method,
    pooling: acts.pooling,
    source: { model: model.source, ...counts },
  });
}

/** Mean projection of the "safe" rows minus that of the "unsafe" rows, along unit `u`. */
function meanGap(
  x: { rows: number; cols: number; data: Float32Array },
  indices: readonly number[],
  labels: readonly string[],
  u: Float32Array,
): number {
  const sum = { safe: 0, unsafe: 0 }, count = { safe: 0, unsafe: 0 };
  indices.forEach((row, k) => {
    const l = labels[k];
    if (l !== "safe" && l !== "unsafe") return;
    let p = 0;
    for (let j = 0; j < x.cols; j++) p += x.data[row * x.cols + j] * u[j];
    sum[l] += p;
    count[l]++;
  });
  return sum.safe / count.safe - sum.unsafe / count.unsafe;
}
