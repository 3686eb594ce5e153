/**
 * A fitted steering direction as a value: {@link SteeringVector} (layer, unit direction, the
 * scale of strength 1, how it was fitted) with its JSON form, `save` and `load`. Made by
 * `steeringVector(model, pairs, { layer })` (lib/compass/steer.ts) and read by
 * `model.generate({ steer: { vector, strength } })`.
 *
 * @module
 */

import { checkDirection, resolveLayer, type SteerDirection } from "../model/steering.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { readUtf8 } from "../io/text.ts";
import type { Pooling } from "./compass.ts";
import { norm } from "./matrix.ts";

/** Methods a steering vector can be fitted with (CRAFT has no single direction). */
export type SteeringMethod = "diffmean" | "pca" | "logistic";

/** The JSON form of a {@link SteeringVector} (`toJSON`, `save`, `SteeringVector.fromJSON`). */
export interface SteeringVectorJson {
  /** Always "safety-compass/steering-vector". */
  format: "safety-compass/steering-vector";
  /** Format version (1). */
  version: 1;
  /** Hidden state (0 = embeddings, nLayer = after the final norm), resolved. */
  layer: number;
  /** Blocks of the model it was fitted on. */
  nLayer: number;
  /** How the direction was fitted. */
  method: SteeringMethod;
  /** Pooling of the activations it was fitted on. */
  pooling: Pooling;
  /** Length of the vector added at strength 1. */
  scale: number;
  /** The unit direction. */
  direction: number[];
  /** Where it came from (model source, rows per class). */
  source?: Record<string, unknown>;
}

const FORMAT = "safety-compass/steering-vector";

/**
 * A steering direction fitted on one hidden state: a unit `direction` the positive class
 * (e.g. safe, refusing) projects higher on, and a `scale` so that strength 1 adds
 * `scale * direction`, the gap between the class means along the direction (for diffmean,
 * exactly the mean difference `r`). Pass it as `model.generate({ steer: { vector, strength } })`
 * or `{ steer: { vector, ablate: true } }`; save and load it as JSON.
 *
 * @example
 * ```ts
 * import { SteeringVector } from "./steering_vector.ts";
 * const v = new SteeringVector({ layer: 3, nLayer: 4, direction: [3, 4], scale: 2 });
 * v.direction; // Float32Array [0.6, 0.8] (normalised)
 * v.vector; // Float32Array [1.2, 1.6] = scale * direction
 * const same = SteeringVector.fromJSON(JSON.parse(JSON.stringify(v)));
 * ```
 */
export class SteeringVector implements SteerDirection {
  /** Hidden state it was read from and steers (0 = embeddings; never negative here). */
  readonly layer: number;
  /** Blocks of the model it was fitted on. */
  readonly nLayer: number;
  /** Unit direction. */
  readonly direction: Float32Array;
  /** Length of the vector added at strength 1. */
  readonly scale: number;
  /** How it was fitted. */
  readonly method: SteeringMethod;
  /** Pooling of the activations it was fitted on. */
  readonly pooling: Pooling;
  /** Provenance (model source, rows per class...). */
  readonly source: Record<string, unknown>;

  /** Checks and normalises; a negative `layer` counts from the end of `nLayer`. */
  constructor(init: {
    layer: number;
    nLayer: number;
    direction: ArrayLike<number>;
    scale: number;
    method?: SteeringMethod;
    pooling?: Pooling;
    source?: Record<string, unknown>;
  }) {
    checkDirection(init.direction, "a steering vector");
    if (!Number.isInteger(init.nLayer) || init.nLayer < 0) {
      throw new Error(`Cannot build a steering vector: nLayer is ${init.nLayer}`);
    }
    if (!Number.isFinite(init.scale)) {
      throw new Error(`Cannot build a steering vector: scale is ${init.scale}`);
    }
    const n = norm(init.direction);
    if (!(n > 0)) throw new Error("Cannot build a steering vector: the direction has norm 0");
    this.layer = resolveLayer(init.layer, init.nLayer, "build a steering vector");
    this.nLayer = init.nLayer;
    this.direction = Float32Array.from(init.direction, (v) => v / n);
    this.scale = init.scale;
    this.method = init.method ?? "diffmean";
    this.pooling = init.pooling ?? "mean";
    this.source = { ...init.source };
  }

  /** Width of the hidden states it steers. */
  get dModel(): number {
    return this.direction.length;
  }

  /** The vector added at strength 1: `scale * direction`. */
  get vector(): Float32Array {
    return this.direction.map((v) => v * this.scale);
  }

  /** The JSON form (plain numbers; Float32 values round-trip exactly). */
  toJSON(): SteeringVectorJson {
    return {
      format: FORMAT,
      version: 1,
      layer: this.layer,
      nLayer: this.nLayer,
      method: this.method,
      pooling: this.pooling,
      scale: this.scale,
      direction: Array.from(this.direction),
      source: this.source,
    };
  }

  /** Rebuilds a vector from {@link SteeringVector.toJSON}'s output; throws naming a bad field. */
  static fromJSON(json: unknown, where = "steering vector JSON"): SteeringVector {
    const j = json as Partial<SteeringVectorJson> | null;
    if (!j || typeof j !== "object" || j.format !== FORMAT) {
      throw new Error(`Cannot read ${where}: "format" must be "${FORMAT}"`);
    }
    if (j.version !== 1) throw new Error(`Cannot read ${where}: version ${j.version} is not 1`);
    if (!Array.isArray(j.direction)) throw new Error(`Cannot read ${where}: no "direction" array`);
    for (const k of ["layer", "nLayer", "scale"] as const) {
      if (typeof j[k] !== "number") throw new Error(`Cannot read ${where}: "${k}" is not a number`);
    }
    return new SteeringVector({
      layer: j.layer!,
      nLayer: j.nLayer!,
      direction: j.direction,
      scale: j.scale!,
      method: j.method,
      pooling: j.pooling,
      source: j.source,
    });
  }

  /** Writes the JSON form to `path` atomically. */
  save(path: string): Promise<void> {
    return writeJsonAtomic(path, this.toJSON());
  }

  /** Reads a vector written by {@link SteeringVector.save}. */
  static async load(path: string): Promise<SteeringVector> {
    return SteeringVector.fromJSON(JSON.parse(await readUtf8(path, "steering vector")), path);
  }

  /** Called by Deno's Jupyter kernel: a one-line summary. */
  [Symbol.for("Jupyter.display")](): Record<string, string> {
    return { "text/plain": this.toString() };
  }

  /** One line: layer, method, scale, width. */
  toString(): string {
    return `SteeringVector(layer ${this.layer} of 0..${this.nLayer}, ${this.method}, ` +
      `scale ${this.scale.toPrecision(4)}, d=${this.dModel})`;
  }
}

/** Reads a steering vector saved with `vector.save(path)`. */
export function loadSteeringVector(path: string): Promise<SteeringVector> {
  return SteeringVector.load(path);
}
