/**
 * Models built in code: random weights for a config (tests, benchmarks, SafetyWorld
 * training from scratch).
 *
 * @module
 */

import { type ConfigSpec, makeConfig } from "./config.ts";
import { initParams } from "./weights.ts";
import { Model } from "./model.ts";
import type { TextTokenizer } from "./tokenizer.ts";
import {
  backendInfo,
  type BackendName,
  type BackendOptions,
  initBackend,
} from "../engine/backend.ts";

/** Options of {@link createModel}. */
export interface CreateOptions extends BackendOptions {
  /** The tokenizer (its vocabulary must fit `spec.vocabSize`). */
  tokenizer: TextTokenizer;
  /** Tokenizer/generation files saved with the model. */
  assets?: Map<string, Uint8Array>;
  /** Initialisation seed. @default 0 */
  seed?: number;
  /** Backend to run on. @default the backend already initialised in this process, else "auto" */
  backend?: BackendName;
  /** Name shown as the model's source. @default "random" */
  name?: string;
}

/** A model with seeded random weights (GPT-2-style initialisation). */
export async function createModel(spec: ConfigSpec, opts: CreateOptions): Promise<Model> {
  const chosen = backendInfo();
  const backend = opts.backend === undefined && chosen
    ? chosen
    : await initBackend(opts.backend ?? "auto", opts);
  const config = makeConfig(spec);
  if (opts.tokenizer.vocabSize > config.vocabSize) {
    throw new Error(
      `createModel: tokenizer has ${opts.tokenizer.vocabSize} tokens but vocabSize is ${config.vocabSize}`,
    );
  }
  return new Model({
    config,
    tokenizer: opts.tokenizer,
    params: initParams(config, opts.seed ?? 0),
    source: opts.name ?? "random",
    backend,
    assets: opts.assets,
  });
}
