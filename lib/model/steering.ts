/**
 * The residual-stream edits behind steering (Arditi et al. 2024, arXiv 2406.11717; SCIENCE.md
 * section 1), at the model layer so that `model.generate({ steer })` can build them:
 * - activation addition: `h <- h + strength * v` at one hidden state, every position;
 * - directional ablation: `h <- h - v_hat (v_hat . h)` on the embeddings and after every block.
 *
 * lib/compass/steer.ts fits the vectors (`steeringVector`) and re-exports these builders.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Intervention } from "./transformer.ts";

/**
 * A direction to steer with, as `model.generate({ steer })` reads it: a `SteeringVector`
 * (lib/compass/steer.ts) or any object with these fields.
 */
export interface SteerDirection {
  /** Hidden state it was read from and is added to (0 = embeddings; negative from the end). */
  layer: number;
  /** The direction (unit length for a `SteeringVector`; used as given otherwise). */
  direction: ArrayLike<number>;
  /** Length of the vector added at strength 1 (`strength * scale * direction`). @default 1 */
  scale?: number;
}

/** The `steer` option of `model.generate`: add a vector, or ablate its direction. */
export interface SteerOptions {
  /** What to steer with (a `SteeringVector` from `steeringVector(model, pairs, { layer })`). */
  vector: SteerDirection;
  /**
   * Multiple of the vector added at its layer: with a difference-of-means vector, 1 moves an
   * average negative-class state onto the average positive-class one, -1 the other way.
   * @default 1
   */
  strength?: number;
  /** Remove the direction from every residual stream instead of adding it. @default false */
  ablate?: boolean;
}

/** Throws unless `r` is a non-empty vector of finite numbers. */
export function checkDirection(r: ArrayLike<number>, what: string): void {
  if (r.length === 0) throw new Error(`Cannot build ${what}: the direction is empty`);
  for (let i = 0; i < r.length; i++) {
    if (!Number.isFinite(r[i])) {
      throw new Error(`Cannot build ${what}: direction entry ${i} is ${r[i]} (must be finite)`);
    }
  }
}

function checkWidth(h: tf.Tensor3D, d: number, what: string): void {
  const w = h.shape[2];
  if (w !== d) {
    throw new Error(
      `${what}: the direction has ${d} entries but the hidden states are ${w} wide; ` +
        `take r from activations of this model`,
    );
  }
}

/**
 * A hidden-state index in HF numbering (0 = embeddings, i = after block i, nLayer = after the
 * final norm), negative counting from the end (-1 = nLayer), as `collectActivations` and
 * `fitCompass` read it. Throws naming the valid range when out of it.
 *
 * @example
 * ```ts
 * import { resolveLayer } from "./steering.ts";
 * resolveLayer(-1, 4); // 4
 * resolveLayer(2, 4); // 2
 * ```
 */
export function resolveLayer(layer: number, nLayer: number, what = "steer"): number {
  if (!Number.isInteger(layer)) {
    throw new Error(`Cannot ${what} at layer ${layer}: use an integer (0 = embeddings, -1 = last)`);
  }
  const l = layer < 0 ? nLayer + 1 + layer : layer;
  if (l < 0 || l > nLayer) {
    throw new Error(
      `Cannot ${what} at layer ${layer}: this model has hidden states 0..${nLayer} ` +
        `(or -${nLayer + 1}..-1 from the end)`,
    );
  }
  return l;
}

/**
 * Activation addition: adds `shift` ([d]) to hidden state `layer` (already resolved, >= 0)
 * at every position.
 *
 * @example
 * ```ts
 * import { additionIntervention } from "./steering.ts";
 * const iv = additionIntervention(2, new Float32Array([0.5, -1]));
 * ```
 */
export function additionIntervention(layer: number, shift: Float32Array): Intervention {
  return {
    layer,
    fn: (h) => {
      checkWidth(h, shift.length, `steering at layer ${layer}`);
      return tf.add(h, tf.tensor1d(shift)) as tf.Tensor3D; // [B, T, d] + [d]
    },
  };
}

/**
 * Directional ablation: one intervention per residual stream (the embeddings and every
 * block's output, the last one before the final norm), each replacing `h` with
 * `h - u (u . h)`, `u` the unit vector of `r`.
 *
 * @example
 * ```ts
 * import { ablationAtEveryLayer } from "./steering.ts";
 * const ivs = ablationAtEveryLayer([1, 0, 0], 4); // 5 interventions: layers 0..4
 * ```
 */
export function ablationAtEveryLayer(r: ArrayLike<number>, nLayers: number): Intervention[] {
  checkDirection(r, "ablation interventions");
  if (!Number.isInteger(nLayers) || nLayers < 0) {
    throw new Error(`Cannot ablate over ${nLayers} layers: pass model.config.nLayer`);
  }
  let norm = 0;
  for (let i = 0; i < r.length; i++) norm += r[i] * r[i];
  norm = Math.sqrt(norm);
  if (!(norm > 0)) throw new Error("Cannot ablate a direction of norm 0");
  const unit = Float32Array.from(r, (v) => v / norm);
  const fn = (h: tf.Tensor3D): tf.Tensor3D => {
    checkWidth(h, unit.length, "ablationInterventions");
    const u = tf.tensor1d(unit); // [d]
    const proj = tf.sum(tf.mul(h, u), -1, true); // [B, T, 1]
    return tf.sub(h, tf.mul(proj, u)) as tf.Tensor3D; // [B, T, d]
  };
  return Array.from(
    { length: nLayers + 1 },
    (_, layer) => ({ layer, fn, beforeFinalNorm: layer === nLayers && nLayers > 0 }),
  );
}

/**
 * The interventions of one `steer` option for a model with `nLayer` blocks: activation
 * addition of `strength * scale * direction` at the vector's layer, or (with `ablate`)
 * directional ablation at every layer.
 *
 * @example
 * ```ts
 * import { steerInterventions } from "./steering.ts";
 * const ivs = steerInterventions({ vector: { layer: -2, direction: [0.6, 0.8], scale: 3 }, strength: 2 }, 4);
 * // one intervention at layer 3 adding [3.6, 4.8]
 * ```
 */
export function steerInterventions(steer: SteerOptions, nLayer: number): Intervention[] {
  const v = steer?.vector;
  if (!v || typeof v !== "object" || !v.direction) {
    throw new Error(
      "Cannot steer: `steer.vector` must be a SteeringVector (steeringVector(model, pairs, " +
        "{ layer })) or { layer, direction, scale? }",
    );
  }
  checkDirection(v.direction, "a steering intervention");
  if (steer.ablate) {
    if (steer.strength !== undefined) {
      throw new Error("Cannot steer: `strength` has no meaning with `ablate: true`; drop one");
    }
    return ablationAtEveryLayer(v.direction, nLayer);
  }
  const layer = resolveLayer(v.layer, nLayer);
  const strength = steer.strength ?? 1;
  const scale = v.scale ?? 1;
  if (!Number.isFinite(strength)) throw new Error(`Cannot steer with strength ${strength}`);
  if (!Number.isFinite(scale)) throw new Error(`Cannot steer: the vector's scale is ${scale}`);
  const shift = Float32Array.from(v.direction, (x) => x * scale * strength);
  return [additionIntervention(layer, shift)];
}
