/**
 * Steering and directional ablation with a direction `r` in the residual stream (Arditi et
 * al. 2024, "Refusal in Language Models Is Mediated by a Single Direction", arXiv
 * 2406.11717; SCIENCE.md section 1):
 * - activation addition: `h <- h + alpha r` after one block, at every position;
 * - directional ablation: `h <- h - r_hat r_hat^T h` after every block (and on the
 *   embeddings), so no layer's hidden state keeps a component along `r`.
 *
 * Interventions are plain values passed to one `model.forward` / `model.generate` call
 * (`{interventions}`); nothing is installed on the model, so nothing can be left behind.
 *
 * Note on ablation: the engine edits the residual stream between blocks, so inside a block
 * the MLP still reads the attention output's component along `r` before the next edit
 * removes it (Arditi et al. also project every block's attention and MLP writes). Every
 * hidden state the model exposes, and the final state the head reads, has none.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import type { Intervention } from "../model/transformer.ts";
import type { Compass } from "./compass.ts";
import { normalize } from "./matrix.ts";

function checkDirection(r: ArrayLike<number>, what: string): void {
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
 * Activation addition: an intervention adding `alpha * r` to hidden state `layer` (HF
 * numbering: 0 = embeddings, i = after block i, nLayer = after the final norm) at every
 * position, prompt and generated tokens alike.
 * `r` is used as given (not normalised): with a diff-of-means `r`, alpha = 1 moves an
 * average unsafe state onto the average safe one.
 */
export function steerIntervention(
  layer: number,
  r: ArrayLike<number>,
  alpha: number,
): Intervention {
  checkDirection(r, "a steering intervention");
  if (!Number.isInteger(layer) || layer < 0) {
    throw new Error(`Cannot steer at layer ${layer}: use an integer >= 0 (0 = embeddings)`);
  }
  if (!Number.isFinite(alpha)) throw new Error(`Cannot steer with alpha = ${alpha}`);
  const shift = Float32Array.from(r, (v) => v * alpha);
  return {
    layer,
    fn: (h) => {
      checkWidth(h, shift.length, `steerIntervention(layer ${layer})`);
      return tf.add(h, tf.tensor1d(shift)) as tf.Tensor3D; // [B, T, d] + [d]
    },
  };
}

/**
 * Directional ablation (Arditi et al. 2024): one intervention per residual stream, the
 * embeddings and the output of every block (the last one before the final norm:
 * `beforeFinalNorm`), each replacing `h` with `h - r_hat (r_hat . h)` at every position,
 * `r_hat = r / |r|`. Pass `model.config.nLayer` as `nLayers`.
 */
export function ablationInterventions(r: ArrayLike<number>, nLayers: number): Intervention[] {
  checkDirection(r, "ablation interventions");
  if (!Number.isInteger(nLayers) || nLayers < 0) {
    throw new Error(`Cannot ablate over ${nLayers} layers: pass model.config.nLayer`);
  }
  const unit = normalize(r);
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
 * The steering vector of a linear compass: the unnormalised diff-of-means `r` when it has
 * one (`probe.meanDiff`), else its unit direction. CRAFT compasses have no single
 * direction and throw.
 */
export function steeringVector(compass: Compass): Float32Array {
  const v = compass.probe?.meanDiff ?? compass.direction;
  if (!v) {
    throw new Error(
      `Cannot steer with a ${compass.method} compass: it has no direction; fit a diffmean, ` +
        `pca or logistic compass on the same activations`,
    );
  }
  return v;
}
