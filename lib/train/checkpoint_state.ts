/**
 * Reading a training checkpoint back, strictly: the pieces that SFT (`sft.ts`) and RL
 * (`rl/checkpoint.ts`) resumption share. A damaged checkpoint (a truncated or invalid
 * `trainer_state.json`, a missing or short weights file, tensors of the wrong shape, a step
 * its history does not cover) is refused with an error naming the file, never taken for "no
 * checkpoint": restarting at step 0 would overwrite the checkpoint at the next save.
 *
 * @module
 */

import { join } from "node:path";
import { checkpointFolder } from "../io/checkpoint_dir.ts";
import { exists } from "../io/exists.ts";
import { readSafetensors, type SafetensorsFile } from "../io/safetensors.ts";
import type { AdamWState } from "../optim/adamw.ts";

/** The fields every trainer_state.json holds. */
export interface TrainerStateBase {
  /** Steps completed. */
  step: number;
  /** One log row per completed step. */
  history: unknown[];
}

/**
 * The folder to read the checkpoint `dir` from (the path through `dir` when it exists, so
 * messages name the files as the user knows them), or undefined when there is none.
 *
 * @example
 * ```ts
 * const root = await checkpointRoot("runs/sft/ckpt");
 * console.log(root ?? "no checkpoint yet");
 * ```
 */
export async function checkpointRoot(dir: string): Promise<string | undefined> {
  const folder = await checkpointFolder(dir);
  if (!folder) return undefined;
  return (await exists(dir)) ? dir : folder;
}

/** "Cannot resume from <file>: <what>; <fix>". */
function damaged(file: string, what: string, fix?: string): Error {
  return new Error(
    `Cannot resume from ${file}: ${what}; ` +
      (fix ?? "the checkpoint is damaged (a crash of an older version, or edited by hand): " +
          "restore the folder from a copy, or move it away to start over"),
  );
}

/**
 * Reads and checks `<root>/trainer_state.json`: valid JSON, `step` a whole number >= 0,
 * `history` an array of `step` rows, and `step` at most `totalSteps` (the run's length).
 *
 * @example
 * ```ts
 * const st = await readTrainerState("runs/sft/ckpt", 100);
 * console.log(`resuming at step ${st.step}`);
 * ```
 */
export async function readTrainerState<T extends TrainerStateBase>(
  root: string,
  totalSteps?: number,
): Promise<T> {
  const file = join(root, "trainer_state.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw damaged(file, `it cannot be read (${(err as Error).message})`);
  }
  let state: T;
  try {
    state = JSON.parse(text);
  } catch (err) {
    throw damaged(file, `it is not valid JSON (${(err as Error).message}; ${text.length} bytes)`);
  }
  if (typeof state !== "object" || state === null) throw damaged(file, "it holds no object");
  const { step, history } = state;
  if (!(Number.isInteger(step) && step >= 0)) {
    throw damaged(file, `its 'step' is ${JSON.stringify(step)}, not a whole number >= 0`);
  }
  if (!Array.isArray(history) || history.length !== step) {
    throw damaged(
      file,
      `its 'step' is ${step} but its history records ${
        Array.isArray(history) ? history.length : "no"
      } steps`,
    );
  }
  if (totalSteps !== undefined && step > totalSteps) {
    throw damaged(
      file,
      `it is at step ${step}, beyond this run's ${totalSteps} steps`,
      "resume with the run's original `steps`, or start a new run in another folder",
    );
  }
  return state;
}

/** Reads a safetensors file of a checkpoint; an unreadable one is a damaged checkpoint. */
export async function readCheckpointTensors(file: string): Promise<SafetensorsFile> {
  try {
    return await readSafetensors(file);
  } catch (err) {
    throw damaged(file, `it is missing or unreadable (${(err as Error).message})`);
  }
}

/**
 * AdamW's state for variables `vars` ([name, size] in the optimiser's order) from an
 * optimizer.safetensors file (`m.<name>`, `v.<name>`, the step count in the metadata),
 * checking that every moment is there with the variable's size.
 *
 * @example
 * ```ts
 * const file = await readCheckpointTensors("runs/sft/ckpt/optimizer.safetensors");
 * const state = adamStateFrom("optimizer.safetensors", file, [["wte.weight", 40 * 16]]);
 * ```
 */
export function adamStateFrom(
  path: string,
  file: SafetensorsFile,
  vars: readonly (readonly [string, number])[],
): AdamWState {
  const step = Number(file.metadata.step);
  if (!(Number.isInteger(step) && step >= 0)) {
    throw damaged(path, `its metadata 'step' is ${JSON.stringify(file.metadata.step)}`);
  }
  const get = (key: string, size: number) => {
    const t = file.tensors.get(key);
    if (!t) throw damaged(path, `it lacks tensor '${key}'`);
    if (t.data.length !== size) {
      throw damaged(
        path,
        `tensor '${key}' holds ${t.data.length} values, the model's variable ${size}`,
        "resume with the model (and adapters) the checkpoint was trained from",
      );
    }
    return t.data;
  };
  return {
    step,
    m: vars.map(([n, size]) => get(`m.${n}`, size)),
    v: vars.map(([n, size]) => get(`v.${n}`, size)),
  };
}
