/**
 * The `Compass`: one interface over every way of reading safety off hidden states
 * (SCIENCE.md section 1): the CRAFT latent head (arXiv 2603.17305) and the linear probes
 * (difference of means, arXiv 2406.11717; PCA reading vector, arXiv 2310.01405; logistic).
 * `fitProbe` dispatches on the method; `save` writes a folder atomically with
 * `compass.safetensors` (weights, prototypes, direction) and `compass.json` (method, layer,
 * pooling, head architecture, options, metrics, seed); `loadCompass` reads it back.
 * Scores are always p_safe (class 1 = safe).
 *
 * @module
 */

import { join } from "node:path";
import type { TraceLabel } from "../data/schema.ts";
import { writeDirAtomic, writeJsonAtomic } from "../io/atomic.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { CraftHead, type CraftOptions, fitCraft, type WeightRecord } from "./craft.ts";
import { assertMatrix, type Matrix, selectRows } from "./matrix.ts";
import { accuracyAt, auroc, type BinaryLabels } from "./metrics.ts";
import {
  fitDiffMean,
  fitLogistic,
  fitPca,
  type LinearProbe,
  type LinearProbeSpec,
  makeLinearProbe,
  type ProbeMethod,
} from "./probes.ts";

/** Every compass method. */
export type CompassMethod = "craft" | ProbeMethod;
/** How token hidden states were pooled into one row: mean over the mask, response-only mean, last token, or per token. */
export type Pooling = "mean" | "mean-response" | "last" | "none";

/** What every compass gives. */
export interface Compass {
  /** How it was fitted. */
  method: CompassMethod;
  /** The layer its hidden states come from (0 = embeddings). */
  layer: number;
  /** The pooling its inputs were made with. */
  pooling: Pooling;
  /** Width of the hidden states it reads. */
  dModel: number;
  /** p_safe of every row of `hidden` [n, dModel]. */
  score(hidden: Matrix): Float32Array;
  /** CRAFT only: cosine of z with each class prototype. */
  cosines?(hidden: Matrix): { safe: Float32Array; unsafe: Float32Array; rethink: Float32Array };
  /** Linear probes only: the unit direction safe traces project higher on. */
  direction?: Float32Array;
  /** Writes the compass folder (compass.safetensors + compass.json) atomically. */
  save(path: string): Promise<void>;
  /** Metrics recorded with it (training AUROC/accuracy at fit; add held-out ones freely). */
  metrics: Record<string, number>;
  /** Seed of the fit. */
  seed: number;
  /** Resolved fitting options. */
  options: Record<string, unknown>;
  /** The underlying linear probe (diffmean, pca, logistic). */
  probe?: LinearProbe;
  /** The underlying CRAFT head (craft). */
  head?: CraftHead;
}

/** Options of {@link fitProbe}. */
export interface FitProbeOptions {
  /** Which compass. */
  method: CompassMethod;
  /** The layer the rows come from (recorded). */
  layer: number;
  /** The pooling the rows were made with (recorded). @default "mean" */
  pooling?: Pooling;
  /** Seed (PCA's power iteration, CRAFT's initialisation/shuffling/views). @default 0 */
  seed?: number;
  /** Linear probes given trace labels: rethink traces count as safe, unsafe, or are left out. @default "drop" */
  rethinkAs?: "safe" | "unsafe" | "drop";
  /** logistic / calibration L2. @default 1e-3 */
  l2?: number;
  /** logistic iteration cap. @default 200 */
  maxIter?: number;
  /** logistic standardisation. @default true */
  standardize?: boolean;
  /** PCA contrastive pairs (row indices into x). */
  pairs?: readonly (readonly [number, number])[];
  /** CRAFT options (seed above wins). */
  craft?: CraftOptions;
  /** CRAFT: per-token hidden states per row (x must then be their means), for token-drop views. */
  tokens?: readonly Matrix[];
}

/** Converts trace or binary labels to 0/1 (1 = safe); rethink per `rethinkAs` (-1 = drop). */
export function binaryLabels(
  labels: readonly TraceLabel[] | BinaryLabels,
  rethinkAs: "safe" | "unsafe" | "drop" = "drop",
): Int8Array {
  return Int8Array.from(labels as readonly unknown[], (l, i) => {
    if (l === 1 || l === true || l === "safe") return 1;
    if (l === 0 || l === false || l === "unsafe") return 0;
    if (l === "rethink") return rethinkAs === "drop" ? -1 : rethinkAs === "safe" ? 1 : 0;
    throw new Error(`Label ${i} is ${String(l)}: expected safe/unsafe/rethink, 0/1 or a boolean`);
  });
}

const FORMAT = "safety-compass.compass";

interface Parts {
  method: CompassMethod;
  layer: number;
  pooling: Pooling;
  seed: number;
  options: Record<string, unknown>;
  metrics: Record<string, number>;
  probe?: LinearProbe;
  head?: CraftHead;
}

function tensorsOf(p: Parts): WeightRecord {
  if (p.head) return p.head.weights();
  const probe = p.probe!, d = probe.weights.length;
  const out: WeightRecord = {
    direction: { shape: [d], data: probe.direction },
    weights: { shape: [d], data: probe.weights },
    bias: { shape: [1], data: Float32Array.of(probe.bias) },
  };
  if (probe.meanDiff) out.meanDiff = { shape: [d], data: probe.meanDiff };
  const st = probe.standardization;
  if (st) {
    out["standardization.mean"] = { shape: [d], data: st.mean };
    out["standardization.std"] = { shape: [d], data: st.std };
    out["standardization.weights"] = { shape: [d], data: st.weights };
    out["standardization.bias"] = { shape: [1], data: Float32Array.of(st.bias) };
  }
  return out;
}

function makeCompass(p: Parts): Compass {
  const dModel = p.head ? p.head.dModel : p.probe!.weights.length;
  const compass: Compass = {
    ...p,
    dModel,
    score: (hidden) => {
      assertMatrix(hidden, `hidden states for the ${p.method} compass`, dModel);
      return p.head ? p.head.score(hidden) : p.probe!.score(hidden);
    },
    ...(p.head ? { cosines: (hidden: Matrix) => p.head!.cosines(hidden) } : {}),
    ...(p.probe ? { direction: p.probe.direction } : {}),
    save: (path) =>
      writeDirAtomic(path, async (tmp) => {
        await writeSafetensors(join(tmp, "compass.safetensors"), tensorsOf(p), {
          format: FORMAT,
          method: p.method,
        });
        await writeJsonAtomic(join(tmp, "compass.json"), {
          format: FORMAT,
          version: 1,
          method: p.method,
          layer: p.layer,
          pooling: p.pooling,
          dModel,
          head: p.head
            ? {
              type: "craft",
              layers: [
                `Linear(${dModel}, ${p.head.hiddenDim})`,
                "GELU(tanh)",
                `Linear(${p.head.hiddenDim}, ${p.head.embedDim})`,
                "L2-normalise",
              ],
              safetyHead: `Linear(${p.head.embedDim}, 3)`,
              classes: ["safe", "unsafe", "rethink"],
              hiddenDim: p.head.hiddenDim,
              embedDim: p.head.embedDim,
            }
            : { type: "linear", score: "sigmoid(x . weights + bias)" },
          calibration: p.probe?.calibration,
          fit: p.probe?.fit,
          history: p.head?.history,
          info: p.head?.info,
          options: p.options,
          metrics: compass.metrics,
          seed: p.seed,
        });
      }),
    [Symbol.for("Jupyter.display")]: () => {
      const title = `Compass ${p.method}, layer ${p.layer}, pooling ${p.pooling}, d=${dModel}`;
      const cells = Object.entries(compass.metrics).map(([k, v]) =>
        `<tr><td>${k}</td><td>${Number.isInteger(v) ? v : v.toFixed(4)}</td></tr>`
      );
      return {
        "text/plain": `${title} ${JSON.stringify(compass.metrics)}`,
        "text/html": `<b>${title}</b><table>${cells.join("")}</table>`,
      };
    },
  } as Compass;
  return compass;
}

/** Fits a compass of `opts.method` on rows `x` [n, d] (hidden states of one layer). */
export function fitProbe(
  x: Matrix,
  labels: readonly TraceLabel[] | BinaryLabels,
  opts: FitProbeOptions,
): Compass {
  const { method, layer, pooling = "mean", seed = 0, rethinkAs = "drop" } = opts;
  assertMatrix(x, `training rows for the ${method} compass`);
  if (labels.length !== x.rows) {
    throw new Error(`Cannot fit a ${method} compass: ${labels.length} labels for ${x.rows} rows`);
  }
  const base = { method, layer, pooling, seed };
  if (method === "craft") {
    const classes = labels.map((l) =>
      l === 1 || l === true ? "safe" : l === 0 || l === false ? "unsafe" : l
    ) as TraceLabel[];
    const craftOpts = { ...opts.craft, seed };
    const head = fitCraft(opts.tokens ?? x, classes, craftOpts);
    const bits = binaryLabels(classes, "drop");
    const keep = [...bits.keys()].filter((i) => bits[i] >= 0);
    const s = head.score(selectRows(x, keep)), y = keep.map((i) => bits[i] as 0 | 1);
    return makeCompass({
      ...base,
      head,
      options: { ...head.info?.options },
      metrics: trainMetrics(s, y),
    });
  }
  const bits = binaryLabels(labels, rethinkAs);
  const keep = [...bits.keys()].filter((i) => bits[i] >= 0);
  const xs = keep.length === x.rows ? x : selectRows(x, keep);
  const y = keep.map((i) => bits[i] as 0 | 1);
  const { l2 = 1e-3, maxIter = 200, standardize = true } = opts;
  let probe: LinearProbe;
  if (method === "diffmean") probe = fitDiffMean(xs, y, { l2 });
  else if (method === "logistic") probe = fitLogistic(xs, y, { l2, maxIter, standardize });
  else if (method === "pca") {
    const newIndex = new Map(keep.map((old, i) => [old, i]));
    const pairs = opts.pairs?.filter(([i, j]) => newIndex.has(i) && newIndex.has(j))
      .map(([i, j]) => [newIndex.get(i)!, newIndex.get(j)!] as const);
    probe = fitPca(xs, y, { pairs, seed, l2 });
  } else {
    throw new Error(`Unknown compass method '${method}': use craft, diffmean, pca or logistic`);
  }
  const options = method === "logistic"
    ? { l2, maxIter, standardize, rethinkAs }
    : { l2, rethinkAs };
  return makeCompass({ ...base, probe, options, metrics: trainMetrics(probe.score(xs), y) });
}

function trainMetrics(s: Float32Array, y: (0 | 1)[]): Record<string, number> {
  const both = y.includes(0) && y.includes(1);
  return {
    nTrain: y.length,
    ...(both ? { trainAuroc: auroc(s, y) } : {}),
    ...(y.length ? { trainAccuracy: accuracyAt(s, y, 0.5) } : {}),
  };
}

/** Reads a compass folder written by `Compass.save`; errors name the file and field. */
export async function loadCompass(path: string): Promise<Compass> {
  const jsonPath = join(path, "compass.json");
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(await Deno.readTextFile(jsonPath));
  } catch (err) {
    throw new Error(`Cannot load a compass from ${path}: ${jsonPath}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (meta.format !== FORMAT) {
    throw new Error(
      `Cannot load ${jsonPath}: field 'format' is ${meta.format}, expected ${FORMAT}`,
    );
  }
  const method = meta.method as CompassMethod;
  if (typeof meta.layer !== "number" || typeof meta.pooling !== "string") {
    throw new Error(`Cannot load ${jsonPath}: fields 'layer' (number) and 'pooling' are required`);
  }
  const file = await readSafetensors(join(path, "compass.safetensors"));
  const t = (name: string) => {
    const rec = file.tensors.get(name);
    if (!rec) {
      throw new Error(`Cannot load ${path}/compass.safetensors: tensor '${name}' is missing`);
    }
    return rec;
  };
  const base = {
    method,
    layer: meta.layer as number,
    pooling: meta.pooling as Pooling,
    seed: (meta.seed as number) ?? 0,
    options: (meta.options ?? {}) as Record<string, unknown>,
    metrics: (meta.metrics ?? {}) as Record<string, number>,
  };
  if (method === "craft") {
    const w: WeightRecord = {};
    for (const [name, rec] of file.tensors) w[name] = { shape: rec.shape, data: rec.data };
    const head = CraftHead.fromWeights(
      w,
      (meta.history ?? []) as CraftHead["history"][number][],
      meta.info as CraftHead["info"],
    );
    return makeCompass({ ...base, head });
  }
  if (!["diffmean", "pca", "logistic"].includes(method)) {
    throw new Error(
      `Cannot load ${jsonPath}: field 'method' is '${method}', expected craft, diffmean, pca or logistic`,
    );
  }
  const spec: LinearProbeSpec = {
    method: method as ProbeMethod,
    direction: t("direction").data,
    weights: t("weights").data,
    bias: t("bias").data[0],
    calibration: meta.calibration as LinearProbeSpec["calibration"],
    fit: meta.fit as LinearProbeSpec["fit"],
  };
  if (file.tensors.has("meanDiff")) spec.meanDiff = t("meanDiff").data;
  if (file.tensors.has("standardization.mean")) {
    spec.standardization = {
      mean: t("standardization.mean").data,
      std: t("standardization.std").data,
      weights: t("standardization.weights").data,
      bias: t("standardization.bias").data[0],
    };
  }
  return makeCompass({ ...base, probe: makeLinearProbe(spec) });
}
