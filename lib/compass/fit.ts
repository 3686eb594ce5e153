/**
 * The `fitCompass` cell and the layer sweep over collected {@link Activations}
 * (SCIENCE.md section 1): maps a metadata column to the compass's label conventions
 * (class 1 = safe; `rethink` kept as its own class for the CRAFT head of arXiv 2603.17305
 * and dropped by the binary probes unless mapped), picks the layer (CRAFT's default: the
 * last one), and delegates to `fitProbe` / `layerSweep`. With activations collected under
 * pooling "none", CRAFT receives the per-token matrices so its two views drop real tokens.
 *
 * @module
 */

import type { TraceLabel } from "../data/schema.ts";
import type { CraftOptions } from "./craft.ts";
import type { Activations } from "./activations.ts";
import { type Compass, type CompassMethod, fitProbe } from "./compass.ts";
import { selectRows } from "./matrix.ts";
import { layerSweep, type SweepRow } from "./sweep.ts";

/** How metadata values become compass labels. */
export interface LabelMapping {
  /** Metadata column holding the labels. @default "traceLabel" */
  labelColumn?: string;
  /** Value(s) of that column that mean class 1 (safe). @default "safe" */
  positive?: string | readonly string[];
  /**
   * Value(s) that mean class 0 (unsafe). @default every value that is neither positive nor
   * "rethink" (e.g. positive "benign" with negative "harmful" drops "borderline" rows)
   */
  negative?: string | readonly string[];
  /**
   * What "rethink" rows are: their own class for CRAFT (always), and for the binary probes
   * dropped, or counted as safe or unsafe. @default "drop"
   */
  rethinkAs?: "drop" | "safe" | "unsafe";
}

/** Options of {@link fitCompass}. */
export interface FitCompassOptions extends LabelMapping {
  /** Which compass. */
  method: CompassMethod;
  /** Layer to read (negative counts from the model's last). @default the last layer collected (CRAFT) */
  layer?: number;
  /** Seed of the fit (PCA start vector, CRAFT initialisation / shuffling / views). @default 0 */
  seed?: number;
  /** CRAFT head options (its seed is `seed`). */
  craft?: CraftOptions;
  /** L2 of the logistic probe and of the diffmean/PCA calibration. @default 1e-3 */
  l2?: number;
}

const list = (v: string | readonly string[] | undefined): string[] | undefined =>
  v === undefined ? undefined : typeof v === "string" ? [v] : [...v];

/**
 * Maps a metadata column to trace labels: positive -> "safe", negative -> "unsafe",
 * "rethink" -> "rethink"; returns the kept row indices and their labels. Throws, listing
 * the values present, when either binary class ends up empty.
 */
export function mapLabels(
  acts: Activations,
  m: LabelMapping = {},
): { indices: number[]; labels: TraceLabel[] } {
  const column = m.labelColumn ?? "traceLabel";
  const pos = list(m.positive) ?? ["safe"], neg = list(m.negative);
  const values = acts.labels(column);
  const indices: number[] = [], labels: TraceLabel[] = [];
  values.forEach((v, i) => {
    const label: TraceLabel | undefined = pos.includes(v)
      ? "safe"
      : v === "rethink" && !neg?.includes(v)
      ? "rethink"
      : neg
      ? (neg.includes(v) ? "unsafe" : undefined)
      : "unsafe";
    if (label) (indices.push(i), labels.push(label));
  });
  for (const cls of ["safe", "unsafe"] as const) {
    if (!labels.includes(cls)) {
      throw new Error(
        `Cannot fit a compass: no row of column '${column}' maps to ${cls} (values present: ` +
          `${[...new Set(values)].join(", ")}; positive = ${pos.join("|")}` +
          `${neg ? `, negative = ${neg.join("|")}` : ""}); set positive/negative to match`,
      );
    }
  }
  return { indices, labels };
}

/** The layer a fit reads: `layer` resolved against the activations, or the last one collected. */
function pickLayer(acts: Activations, layer: number | undefined): number {
  if (layer === undefined) return acts.layers[acts.layers.length - 1];
  const l = layer < 0 && acts.nLayer !== undefined ? acts.nLayer + 1 + layer : layer;
  acts.layer(l); // throws naming the collected layers when absent
  return l;
}

/**
 * Fits a compass on one layer of `acts` (see {@link FitCompassOptions}). Scores are p_safe.
 * The returned compass's `options` also record the label mapping and the rows used.
 */
export function fitCompass(acts: Activations, opts: FitCompassOptions): Compass {
  const { method, seed = 0, rethinkAs = "drop" } = opts;
  const layer = pickLayer(acts, opts.layer);
  const { indices, labels } = mapLabels(acts, opts);
  const all = indices.length === acts.nRows;
  const x = all ? acts.layer(layer) : selectRows(acts.layer(layer), indices);
  const tokens = method === "craft" && acts.tokens
    ? indices.map((i) => acts.layerTokens(layer)[i])
    : undefined;
  const compass = fitProbe(x, labels, {
    method,
    layer,
    // Rows collected per token were fitted (and are scored) as their masked means.
    pooling: acts.pooling === "none" ? "mean" : acts.pooling,
    seed,
    rethinkAs,
    l2: opts.l2,
    craft: opts.craft,
    tokens,
  });
  const used = method === "craft" || rethinkAs !== "drop"
    ? indices.length
    : labels.filter((l) => l !== "rethink").length;
  Object.assign(compass.options, {
    labelColumn: opts.labelColumn ?? "traceLabel",
    positive: list(opts.positive) ?? ["safe"],
    ...(opts.negative !== undefined ? { negative: list(opts.negative) } : {}),
    collectedPooling: acts.pooling,
    rowsUsed: used,
    rowsDropped: acts.nRows - used,
  });
  return compass;
}

/** Options of {@link sweepLayers}. */
export interface SweepLayersOptions extends LabelMapping {
  /** Methods to compare. @default ["diffmean", "pca", "logistic"] */
  methods?: readonly CompassMethod[];
  /** Seed of every fit and of the bootstrap. @default 0 */
  seed?: number;
  /** Bootstrap resamples of the AUROC interval. @default 1000 */
  reps?: number;
  /** 1 - coverage of the intervals. @default 0.05 */
  alpha?: number;
  /** Layers to sweep. @default every layer both splits hold */
  layers?: readonly number[];
  /** CRAFT head options, when "craft" is among the methods. */
  craft?: CraftOptions;
}

/**
 * The layer sweep: fits every method on each layer of `train` and measures it on `test`
 * (held-out AUROC and accuracy with intervals, separation), via `layerSweep`. One row per
 * (layer, method).
 */
export function sweepLayers(
  train: Activations,
  test: Activations,
  opts: SweepLayersOptions = {},
): SweepRow[] {
  const layers = opts.layers ?? train.layers.filter((l) => test.layers.includes(l));
  if (layers.length === 0) {
    throw new Error(
      `Cannot sweep layers: train holds layers ${train.layers}, test holds ${test.layers}; ` +
        `collect both with the same layers`,
    );
  }
  const split = (acts: Activations) => {
    const { indices, labels } = mapLabels(acts, opts);
    return { layers: layers.map((l) => selectRows(acts.layer(l), indices)), labels };
  };
  return layerSweep(split(train), split(test), {
    methods: opts.methods,
    seed: opts.seed,
    reps: opts.reps,
    alpha: opts.alpha,
    layerIds: layers,
    fit: {
      pooling: train.pooling === "none" ? "mean" : train.pooling,
      rethinkAs: opts.rethinkAs ?? "drop",
      craft: opts.craft,
    },
  });
}
