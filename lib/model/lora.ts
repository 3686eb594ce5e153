/**
 * LoRA (Hu et al. 2021, arXiv 2106.09685): low-rank adapters W x + (alpha / r) B A x on chosen
 * linear layers, so only r * (in + out) numbers per layer are trained and larger models fit.
 * A starts small and random, B at zero, so adding adapters leaves the model's outputs
 * unchanged. Adapters live in `model.params` next to the weight they adapt
 * (`<weight>.lora_A` [in, r], `<weight>.lora_B` [r, out], `<weight>.lora_scale`), are
 * trained alone by the trainers (see {@link trainableVariables}), and save in PEFT's layout
 * (`adapter_model.safetensors` + `adapter_config.json`).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import type { Model } from "./model.ts";
import { checkpointName, paramSpecs, transpose2d, uniqueName, variableFrom } from "./weights.ts";
import { makeRng } from "../data/rng.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { writeDirAtomic } from "../io/atomic.ts";

/** LoRA settings (PEFT's names). */
export interface LoraOptions {
  /** Rank r. @default 8 */
  rank?: number;
  /** Scaling numerator: the update is multiplied by alpha / r. @default 16 */
  alpha?: number;
  /**
   * Module names to adapt (matched against the weight's name), e.g. ["q_proj", "v_proj"]
   * (Llama family) or ["c_attn"] (GPT-2). @default q_proj + v_proj; c_attn for GPT-2;
   * qkv_proj for Phi-3
   */
  targets?: string[];
  /** Initialisation seed. @default 0 */
  seed?: number;
}

const SUFFIXES = [".lora_A", ".lora_B", ".lora_scale"];

/** Whether a parameter name belongs to an adapter. */
export function isLoraParam(name: string): boolean {
  return SUFFIXES.some((s) => name.endsWith(s));
}

/** The variables a trainer should update: the adapters when the model has any, else all weights. */
export function trainableVariables(model: Model): tf.Variable[] {
  const lora = [...model.params].filter(([n]) => n.endsWith(".lora_A") || n.endsWith(".lora_B"));
  if (lora.length) return lora.map(([, v]) => v);
  if (model.external) {
    throw new Error(
      `Cannot train every weight of ${model.source}: its ${model.external.size} large matrices ` +
        "live outside the wasm heap and are frozen. Add LoRA adapters first " +
        '(addLora(model, { rank: 8 })), or load with weights: "heap" if the model fits.',
    );
  }
  return [...model.params.values()].filter((v) => v.trainable);
}

/** Adds adapters to `model` (in place); returns the adapted weight names. */
export function addLora(model: Model, opts: LoraOptions = {}): string[] {
  const c = model.config;
  const rank = opts.rank ?? 8;
  const alpha = opts.alpha ?? 16;
  // PEFT's defaults: GPT-2 c_attn, Phi-3 the fused qkv_proj, other RoPE families q_proj + v_proj.
  const targets = opts.targets ??
    (c.arch === "gpt2" ? ["c_attn"] : c.fusedProjections ? ["qkv_proj"] : ["q_proj", "v_proj"]);
  const rng = makeRng(opts.seed ?? 0);
  const adapted: string[] = [];
  for (const spec of paramSpecs(c)) {
    if (spec.shape.length !== 2 || !targets.some((t) => spec.name.includes(`.${t}.`))) continue;
    if (model.params.has(spec.name + ".lora_A")) {
      throw new Error(`Cannot add LoRA: '${spec.name}' already has an adapter (removeLora first)`);
    }
    const [inDim, outDim] = spec.shape;
    // PEFT initialises A like a Kaiming-uniform layer and B at zero.
    const bound = 1 / Math.sqrt(inDim);
    const a = Float32Array.from({ length: inDim * rank }, () => (2 * rng.next() - 1) * bound);
    model.params.set(
      spec.name + ".lora_A",
      variableFrom(tf.tensor2d(a, [inDim, rank]), true, uniqueName(spec.name + ".lora_A")),
    );
    model.params.set(
      spec.name + ".lora_B",
      variableFrom(tf.zeros([rank, outDim]), true, uniqueName(spec.name + ".lora_B")),
    );
    model.params.set(spec.name + ".lora_scale", variableFrom(tf.scalar(alpha / rank), false));
    adapted.push(spec.name);
  }
  if (adapted.length === 0) {
    throw new Error(
      `Cannot add LoRA: no 2-D weight matches targets [${targets}] in a ${c.modelType} model`,
    );
  }
  model.loraConfig = { rank, alpha, targets };
  return adapted;
}

/** Folds the adapters into the weights (W += scale * A B) and removes them. */
export function mergeLora(model: Model): void {
  if (model.external) {
    throw new Error(
      "Cannot merge LoRA adapters into weights held outside the wasm heap (frozen, shared); " +
        'keep the adapters (saveLora) or load the model with weights: "heap" if it fits',
    );
  }
  for (const name of [...model.params.keys()].filter((n) => n.endsWith(".lora_A"))) {
    const w = name.slice(0, -".lora_A".length);
    const v = model.params.get(w)!;
    tf.tidy(() => {
      const delta = tf.mul(
        tf.matMul(model.params.get(name)!, model.params.get(w + ".lora_B")!),
        model.params.get(w + ".lora_scale")!,
      );
      v.assign(tf.add(v, delta));
    });
  }
  removeLora(model);
}

/** Drops the adapters (the base weights are untouched). */
export function removeLora(model: Model): void {
  for (const n of [...model.params.keys()].filter(isLoraParam)) {
    model.params.get(n)!.dispose();
    model.params.delete(n);
  }
  model.loraConfig = undefined;
}

/** Saves the adapters in PEFT's layout (A as [r, in], B as [out, r]), atomically. */
export async function saveLora(model: Model, dir: string): Promise<void> {
  const cfg = model.loraConfig;
  if (!cfg) throw new Error("Cannot save LoRA: the model has no adapters (addLora first)");
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  const modules = new Set<string>();
  for (const [n, v] of model.params) {
    if (!n.endsWith(".lora_A") && !n.endsWith(".lora_B")) continue;
    const isA = n.endsWith(".lora_A");
    const w = n.slice(0, -7);
    const [r, c] = v.shape;
    const data = transpose2d((await v.data()) as Float32Array, r, c);
    const base = checkpointName(model.config, w).replace(/\.weight$/, "");
    modules.add(base.split(".").at(-1)!);
    tensors[`base_model.model.${base}.${isA ? "lora_A" : "lora_B"}.weight`] = {
      shape: [c, r],
      data,
    };
  }
  await writeDirAtomic(dir, async (tmp) => {
    await writeSafetensors(join(tmp, "adapter_model.safetensors"), tensors, { format: "pt" });
    await Deno.writeTextFile(
      join(tmp, "adapter_config.json"),
      JSON.stringify(
        {
          peft_type: "LORA",
          r: cfg.rank,
          lora_alpha: cfg.alpha,
          target_modules: [...modules],
          bias: "none",
          fan_in_fan_out: model.config.arch === "gpt2",
        },
        null,
        2,
      ),
    );
  });
}

/** Loads adapters saved by {@link saveLora} (or PEFT with the same names) into `model`. */
export async function loadLora(model: Model, dir: string): Promise<void> {
  const cfg = JSON.parse(await Deno.readTextFile(join(dir, "adapter_config.json")));
  const file = await readSafetensors(join(dir, "adapter_model.safetensors"));
  removeLora(model);
  addLora(model, { rank: cfg.r, alpha: cfg.lora_alpha, targets: cfg.target_modules });
  for (const [n, v] of model.params) {
    if (!n.endsWith(".lora_A") && !n.endsWith(".lora_B")) continue;
    const w = n.slice(0, -7);
    const key = `base_model.model.${checkpointName(model.config, w).replace(/\.weight$/, "")}.${
      n.endsWith("A") ? "lora_A" : "lora_B"
    }.weight`;
    const rec = file.tensors.get(key);
    if (!rec) throw new Error(`${dir}/adapter_model.safetensors lacks tensor '${key}'`);
    const [r, c] = rec.shape;
    tf.tidy(() => v.assign(tf.tensor(transpose2d(rec.data, r, c), [c, r])));
  }
}
