/**
 * RL checkpoints and exact resumption (as `sft.ts`'s): everything a step reads besides the
 * seeded streams, saved as `checkpointDir` by `writeCheckpointDir` (a new generation switched
 * in atomically, so the checkpoint never goes backwards), and read back strictly (a damaged
 * file is refused with an error naming it, `../checkpoint_state.ts`):
 *
 * - `model/` (Hugging Face layout) for full fine-tuning, or `adapter/` (PEFT's
 *   `adapter_model.safetensors` + `adapter_config.json`, `saveLora`) when the model has
 *   LoRA adapters: then only the adapters are saved, and a resume needs the same base model
 *   with the same adapters added;
 * - `optimizer.safetensors`: AdamW's moments of the trained variables only (`m.<name>`,
 *   `v.<name>`; the adapters with LoRA), the step count in the metadata;
 * - `value_head.safetensors` (PPO): the head's weights and its optimiser's moments;
 * - `reference.safetensors` (KL term): the frozen reference (its adapters only, with LoRA:
 *   the base weights are frozen, so the reference shares them with the policy);
 * - `trainer_state.json`: algorithm, step, log history, options, LoRA settings.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import type { Model } from "../../model/model.ts";
import { saveLora, trainableVariables } from "../../model/lora.ts";
import { saveModel } from "../../model/save.ts";
import { paramsFromCheckpoint } from "../../model/load.ts";
import { type TensorToWrite, writeSafetensors } from "../../io/safetensors.ts";
import {
  attachExternal,
  checkpointName,
  externalOf,
  type Params,
  transpose2d,
} from "../../model/weights.ts";
import { writeCheckpointDir } from "../../io/checkpoint_dir.ts";
import { writeJsonAtomic } from "../../io/atomic.ts";
import {
  adamStateFrom,
  checkpointRoot,
  readCheckpointTensors,
  readTrainerState,
} from "../checkpoint_state.ts";
import type { AdamW } from "../../optim/adamw.ts";
import type { RLLogRow } from "./log.ts";
import type { ValueHead } from "./loss.ts";
import { assertFiniteForSave } from "../step_loop.ts";

/** The trainer's state besides the log: what a checkpoint holds. */
export interface TrainerParts {
  /** The policy (trained in place). */
  model: Model;
  /** AdamW of the trained variables. */
  opt: AdamW;
  /** AdamW of the value head. */
  vopt: AdamW;
  /** PPO's value head. */
  head?: ValueHead;
  /** The frozen reference (KL term). */
  ref?: Params;
  /** Names of `ref` entries the trainer owns (saved, restored, disposed); the rest are shared with the policy. */
  refOwned: string[];
  /** "grpo" | "ppo". */
  algo: string;
}

/** Runs `make` (which creates variables) in a tidy, so the tensors they were made from are freed. */
export function untracked<T>(make: () => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    out = make();
  });
  return out!;
}

/**
 * The reference policy of the KL term: a frozen copy of the weights, or with LoRA a copy of
 * the adapters beside the policy's own (frozen) base weights; `owned` lists the copies.
 */
export function makeReference(model: Model): { ref: Params; owned: string[] } {
  if (!model.loraConfig) {
    const ref = untracked(() => model.cloneParams());
    return { ref, owned: [...ref.keys()] };
  }
  const trained = new Set(trainableVariables(model));
  const ref: Params = new Map(), owned: string[] = [];
  untracked(() => {
    for (const [n, v] of model.params) {
      if (!trained.has(v)) ref.set(n, v);
      else ref.set(n, tf.variable(tf.clone(v), false)), owned.push(n);
    }
  });
  // The frozen weights outside the wasm heap are the reference's too (shared, never written).
  const ext = externalOf(model.params);
  if (ext) attachExternal(ref, ext);
  return { ref, owned };
}

/** (name, variable) of the variables the optimiser updates, in its order. */
function trainedNamed(model: Model): [string, tf.Variable][] {
  const byVar = new Map([...model.params].map(([n, v]) => [v, n]));
  return trainableVariables(model).map((v) => [byVar.get(v)!, v]);
}

function headVars(h: ValueHead): [string, tf.Variable][] {
  return [["value_head.weight", h.w], ["value_head.bias", h.b]];
}

async function adamTensors(opt: AdamW, vars: [string, tf.Variable][]) {
  const s = await opt.getState();
  const out: Record<string, TensorToWrite> = {};
  if (s.m.length === 0) return { step: s.step, tensors: out };
  vars.forEach(([n, v], i) => {
    out[`m.${n}`] = { shape: v.shape, data: s.m[i] };
    out[`v.${n}`] = { shape: v.shape, data: s.v[i] };
  });
  return { step: s.step, tensors: out };
}

async function weights(vs: [string, tf.Variable][]): Promise<Record<string, TensorToWrite>> {
  return Object.fromEntries(
    await Promise.all(vs.map(async ([n, v]) => [n, { shape: v.shape, data: await v.data() }])),
  );
}

/**
 * Saves a checkpoint of `s` as `dir` (atomically: a crash leaves the previous one); throws a
 * `NonFiniteError` and writes nothing when a weight or moment is not finite.
 */
export async function saveRLCheckpoint(
  dir: string,
  s: TrainerParts,
  state: { step: number; history: RLLogRow[]; options: Record<string, unknown> },
): Promise<void> {
  const o = await adamTensors(s.opt, trainedNamed(s.model));
  const vo = s.head ? await adamTensors(s.vopt, headVars(s.head)) : undefined;
  // Never a non-finite value in a checkpoint, whatever put it there.
  const named = [...s.model.params, ...(s.head ? headVars(s.head) : [])];
  assertFiniteForSave([
    ...(await Promise.all(named.map(async ([n, v]) => [n, await v.data(), "weights"] as const))),
    ...[...Object.entries(o.tensors), ...Object.entries(vo?.tensors ?? {})].map(([k, t]) =>
      [
        k.slice(2),
        t.data as ArrayLike<number>,
        k.startsWith("m.") ? "first moment" : "second moment",
      ] as const
    ),
  ]);
  const lora = s.model.loraConfig;
  await writeCheckpointDir(dir, state.step, async (tmp) => {
    if (lora) await saveLora(s.model, join(tmp, "adapter"));
    else await saveModel(s.model, join(tmp, "model"));
    await writeSafetensors(join(tmp, "optimizer.safetensors"), o.tensors, { step: `${o.step}` });
    if (s.head && vo) {
      const t = { ...(await weights(headVars(s.head))), ...vo.tensors };
      await writeSafetensors(join(tmp, "value_head.safetensors"), t, { step: `${vo.step}` });
    }
    if (s.ref) {
      const owned = s.refOwned.map((n): [string, tf.Variable] => [n, s.ref!.get(n)!]);
      await writeSafetensors(join(tmp, "reference.safetensors"), await weights(owned));
    }
    await writeJsonAtomic(join(tmp, "trainer_state.json"), {
      algorithm: s.algo,
      ...state,
      lora: lora ?? null,
    });
  });
}

function restoreAdam(
  opt: AdamW,
  vars: [string, tf.Variable][],
  path: string,
  file: Awaited<ReturnType<typeof readCheckpointTensors>>,
) {
  if (!file.tensors.has(`m.${vars[0][0]}`) && Number(file.metadata.step) === 0) return;
  const state = adamStateFrom(path, file, vars.map(([n, v]) => [n, v.size]));
  untracked(() => opt.setState(vars.map(([, v]) => v), state));
}

/** Assigns `file`'s tensors to the variables of `target` (by name); throws naming a missing one. */
function assignAll(
  dir: string,
  target: [string, tf.Variable][],
  file: Map<string, { data: Float32Array }>,
): void {
  for (const [n, v] of target) {
    const rec = file.get(n);
    if (!rec) throw new Error(`Cannot resume from ${dir}: tensor '${n}' is missing`);
    if (rec.data.length !== v.size) {
      throw new Error(
        `Cannot resume from ${dir}: tensor '${n}' holds ${rec.data.length} values, the ` +
          `model's ${v.size}; resume with the model the checkpoint was trained from`,
      );
    }
    tf.tidy(() => v.assign(tf.tensor(rec.data, v.shape)));
  }
}

/** Same LoRA settings, compared as saved. */
function sameLora(a: Model["loraConfig"], b: Model["loraConfig"]): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * Restores the adapters saved by `saveLora` (PEFT layout: A as [r, in], B as [out, r]) into
 * the model's existing adapter variables, so the optimiser keeps its variables.
 */
async function restoreAdapters(model: Model, dir: string): Promise<void> {
  const path = join(dir, "adapter", "adapter_model.safetensors");
  const file = await readCheckpointTensors(path);
  for (const [n, v] of trainedNamed(model)) {
    const isA = n.endsWith(".lora_A"), w = n.slice(0, -".lora_A".length);
    const base = checkpointName(model.config, w).replace(/\.weight$/, "");
    const key = `base_model.model.${base}.${isA ? "lora_A" : "lora_B"}.weight`;
    const rec = file.tensors.get(key);
    if (!rec) throw new Error(`Cannot resume from ${dir}: ${path} lacks tensor '${key}'`);
    const [r, c] = rec.shape;
    if (r * c !== v.size || rec.shape.length !== 2) {
      throw new Error(
        `Cannot resume from ${path}: tensor '${key}' has shape [${rec.shape}], the adapter ` +
          `[${[...v.shape].reverse()}]; add the adapters the checkpoint was trained with`,
      );
    }
    tf.tidy(() => v.assign(tf.tensor(transpose2d(rec.data, r, c), [c, r])));
  }
}

/**
 * Restores a checkpoint written by {@link saveRLCheckpoint}; undefined when there is none.
 * A damaged one throws an error naming the file; `totalSteps` refuses one beyond the run.
 */
export async function loadRLCheckpoint(
  dir: string,
  s: TrainerParts,
  totalSteps?: number,
): Promise<{ step: number; history: RLLogRow[] } | undefined> {
  const root = await checkpointRoot(dir);
  if (!root) return undefined;
  const statePath = join(root, "trainer_state.json");
  const state = await readTrainerState<
    { algorithm: string; step: number; history: RLLogRow[]; lora?: unknown }
  >(root, totalSteps);
  if (state.algorithm !== s.algo) {
    throw new Error(
      `Cannot resume: ${statePath} field 'algorithm' is ${state.algorithm}, this run is ${s.algo}; ` +
        `use another checkpointDir or the same algorithm`,
    );
  }
  const lora = s.model.loraConfig, saved = (state.lora ?? undefined) as Model["loraConfig"];
  if (!sameLora(lora, saved)) {
    const what = (l: Model["loraConfig"]) =>
      l ? `LoRA adapters ${JSON.stringify(l)}` : "no LoRA adapters (full fine-tuning)";
    throw new Error(
      `Cannot resume from ${dir}: the checkpoint was trained with ${what(saved)}, the model ` +
        `has ${what(lora)}; ` +
        (saved
          ? `add the same adapters to the same base model (addLora(model, { rank: ${saved.rank}, ` +
            `alpha: ${saved.alpha}, targets: ${JSON.stringify(saved.targets)} })) before resuming`
          : "resume with the model the run started from, without adapters (removeLora)"),
    );
  }
  if (lora) {
    await restoreAdapters(s.model, root);
  } else {
    const w = await readCheckpointTensors(join(root, "model", "model.safetensors"));
    const fresh = paramsFromCheckpoint(s.model.config, w, join(root, "model"));
    for (const [n, v] of s.model.params) v.assign(fresh.get(n)!);
    tf.dispose([...fresh.values()]);
  }
  const trained = trainedNamed(s.model);
  const optPath = join(root, "optimizer.safetensors");
  restoreAdam(s.opt, trained, optPath, await readCheckpointTensors(optPath));
  if (s.head) {
    const path = join(root, "value_head.safetensors");
    const f = await readCheckpointTensors(path);
    assignAll(path, headVars(s.head), f.tensors);
    restoreAdam(s.vopt, headVars(s.head), path, f);
  }
  if (s.ref) {
    const path = join(root, "reference.safetensors");
    const f = await readCheckpointTensors(path).catch((err) => {
      throw new Error(
        `Cannot resume with a KL term: ${path} is missing or unreadable (the run was saved ` +
          `without a reference); resume with reference "none" or klCoef 0`,
        { cause: err },
      );
    });
    assignAll(path, s.refOwned.map((n) => [n, s.ref!.get(n)!]), f.tensors);
  }
  return { step: state.step, history: state.history };
}
