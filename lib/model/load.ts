/**
 * `loadModel(source)`: a Hugging Face folder, an `hf:owner/name[@revision]` repository
 * (downloaded into the standard HF cache), or a SafetyWorld checkpoint name (`toy-base`,
 * `toy-shallow`, shipped in datasets/checkpoints).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { type ModelConfig, parseConfig, SUPPORTED_MODEL_TYPES } from "./config.ts";
import { checkMemory } from "./config_check.ts";
import { clipName } from "../io/bounded.ts";
import { decodeUtf8, jsonDepthExceeded, MAX_JSON_DEPTH } from "../io/text.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
import { readEosTokenIds } from "./generation_config.ts";
import { readModelWeights, type SafetensorsFile } from "../io/safetensors.ts";
import {
  canonicalName,
  checkpointName,
  type Params,
  paramSpecs,
  transpose2d,
  uniqueName,
  variableFrom,
} from "./weights.ts";
import { Model } from "./model.ts";
import {
  backendInfo,
  type BackendName,
  type BackendOptions,
  initBackend,
} from "../engine/backend.ts";
import { downloadHfModel, parseHfSource } from "./hub.ts";
import { loadRemoteModel, type RemoteModel, type RemoteModelOptions } from "./remote.ts";

/** Options of {@link loadModel}. */
export interface LoadOptions extends BackendOptions {
  /** Use this tokenizer instead of the folder's tokenizer.json (custom tokenizers, tests). */
  tokenizer?: TextTokenizer;
  /** For `openai:` sources: the remote client's settings (API key variable, tokenizer folder, ...). */
  remote?: Partial<RemoteModelOptions>;
  /** Backend to run on. @default the backend already initialised in this process, else "auto" */
  backend?: BackendName;
  /** Compute dtype; only float32 is supported (F16/BF16 weights are upcast). @default "float32" */
  dtype?: "float32";
  /** For hf: sources: cache folder, endpoint, token (see downloadHfModel). */
  hub?: { cacheDir?: string; endpoint?: string; token?: string };
}

/** Folder of the shipped SafetyWorld checkpoints. */
export const CHECKPOINT_DIR: URL = new URL("../../datasets/checkpoints/", import.meta.url);

/** Files copied along with a model when it is saved. */
const ASSET_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "vocab.json",
  "merges.txt",
];

/** Buffers of old GPT-2 checkpoints that are not parameters. */
const IGNORED = /(^|\.)attn\.(bias|masked_bias)$|rotary_emb\.inv_freq$/;

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function resolveSource(source: string, opts: LoadOptions): Promise<string> {
  if (source.startsWith("hf:")) {
    const { repo, revision } = parseHfSource(source);
    return await downloadHfModel(repo, { revision, ...opts.hub });
  }
  if (await isDir(source)) return source;
  const shipped = join(CHECKPOINT_DIR.pathname, source);
  if (/^[\w.-]+$/.test(source) && (await isDir(shipped))) return shipped;
  throw new Error(
    `Cannot load model '${source}': not a folder, not an hf:owner/name source, and not a ` +
      `SafetyWorld checkpoint (shipped: toy-base, toy-shallow; run \`deno task toy:train\` to rebuild them)`,
  );
}

/**
 * Throws naming the tensor when `data` holds a NaN or an infinity: one multiply-add per value
 * (x * 0 is NaN exactly when x is not finite), then a scan for the first bad index only when
 * the sum says there is one.
 */
export function checkFinite(data: Float32Array, name: string, source: string): void {
  let acc = 0;
  for (let i = 0; i < data.length; i++) acc += data[i] * 0;
  if (acc === 0) return;
  const at = data.findIndex((x) => !Number.isFinite(x));
  throw new Error(
    `${source}: tensor '${clipName(name)}' holds ${data[at]} at flat index ${at} (of ` +
      `${data.length}); the weights are corrupt or overflowed (re-export them in float32 or bf16)`,
  );
}

/** Total size of the `*.safetensors` files of a model folder (read whole by the loader). */
async function weightFileBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".safetensors")) total += (await Deno.stat(join(dir, e.name))).size;
  }
  return total;
}

/** Turns checkpoint tensors into this toolkit's parameters (names, layout, shape checks). */
export function paramsFromCheckpoint(
  c: ModelConfig,
  file: SafetensorsFile,
  source: string,
): Params {
  const byCanon = new Map<string, string>();
  for (const name of file.tensors.keys()) {
    if (!IGNORED.test(name)) byCanon.set(canonicalName(c, name), name);
  }
  const specs = paramSpecs(c);
  for (const s of specs) {
    if (!byCanon.has(s.name)) {
      throw new Error(
        `${source}: the weights lack tensor '${checkpointName(c, s.name)}', required by ` +
          `config.json (${c.modelType}, ${c.nLayer} layers); the files hold ${file.tensors.size} tensors`,
      );
    }
  }
  // Tensors the config does not use (more layers than n_layer, other families): refused
  // before anything is allocated.
  const known = new Set(specs.map((s) => s.name));
  const extra = [...byCanon.keys()].filter((n) =>
    !known.has(n) && !(n === "lm_head.weight" && c.tieWordEmbeddings)
  );
  if (extra.length) {
    const shown = extra.slice(0, 5).map((n) => `'${clipName(checkpointName(c, n), 80)}'`).join(
      ", ",
    );
    throw new Error(
      `${source}: ${extra.length} checkpoint tensor(s) are not used by the ${c.modelType} ` +
        `architecture implemented here (${shown}${extra.length > 5 ? ", ..." : ""}); ` +
        "loading would compute different numbers than Hugging Face. The tensors a " +
        `${c.modelType} config needs are listed by paramSpecs (lib/model/weights.ts); ` +
        "supported model types: " + SUPPORTED_MODEL_TYPES.join(", "),
    );
  }
  // Shapes and values of every tensor, then the allocation: a bad tensor allocates nothing.
  for (const s of specs) {
    const rec = file.tensors.get(byCanon.get(s.name)!)!;
    const expected = s.transposed ? [s.shape[1], s.shape[0]] : s.shape;
    if (rec.shape.join(",") !== expected.join(",")) {
      throw new Error(
        `${source}: tensor '${checkpointName(c, s.name)}' has shape [${
          clipName(String(rec.shape), 60)
        }], config.json implies [${expected}]`,
      );
    }
    checkFinite(rec.data, checkpointName(c, s.name), source);
  }
  const params: Params = new Map();
  try {
    for (const s of specs) {
      const rec = file.tensors.get(byCanon.get(s.name)!)!;
      const data = s.transposed ? transpose2d(rec.data, s.shape[1], s.shape[0]) : rec.data;
      params.set(
        s.name,
        variableFrom(tf.tensor(data, s.shape, "float32"), true, uniqueName(s.name)),
      );
    }
  } catch (err) {
    tf.dispose([...params.values()]);
    throw err;
  }
  return params;
}

/**
 * Loads a model. `source`: a Hugging Face folder path, `hf:owner/name[@revision]`, a
 * SafetyWorld checkpoint name (`toy-base`, `toy-shallow`), or `openai:<baseURL>#<model>`
 * for a served model (a {@link RemoteModel}: generation only, no hidden states).
 */
export async function loadModel(
  source: `openai:${string}`,
  opts?: LoadOptions,
): Promise<RemoteModel>;
/** Loads a local model (a Hugging Face folder, `hf:` source or SafetyWorld checkpoint name). */
export async function loadModel(source: string, opts?: LoadOptions): Promise<Model>;
export async function loadModel(
  source: string,
  opts: LoadOptions = {},
): Promise<Model | RemoteModel> {
  if (source.startsWith("openai:")) return await loadRemoteModel(source, opts.remote);
  if (opts.dtype && opts.dtype !== "float32") {
    throw new Error(`loadModel: dtype '${opts.dtype}' is not supported; use float32`);
  }
  const dir = await resolveSource(source, opts);
  const chosen = backendInfo();
  const backend = opts.backend === undefined && chosen
    ? chosen
    : await initBackend(opts.backend ?? "auto", opts);
  const cfgPath = join(dir, "config.json");
  let raw: Record<string, unknown>;
  try {
    const text = decodeUtf8(await Deno.readFile(cfgPath), cfgPath);
    const deep = jsonDepthExceeded(text);
    if (deep) throw new Error(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`Cannot read ${cfgPath}: ${clipName((err as Error).message, 200)}`, {
      cause: err,
    });
  }
  const config = parseConfig(raw, cfgPath);
  // Before the weights are read or any tensor allocated: parameters plus the weight files.
  checkMemory(config, cfgPath, undefined, await weightFileBytes(dir));
  const tokenizer = opts.tokenizer ?? await loadTokenizer(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new Error(
      `${cfgPath}: vocab_size ${config.vocabSize} is smaller than the tokenizer's ` +
        `${tokenizer.vocabSize} ids (largest id + 1); ids past the embedding would read garbage. ` +
        "Check tokenizer.json against config.json",
    );
  }
  const eosTokenIds = await readEosTokenIds(dir, raw);
  const badEos = eosTokenIds.find((id) => id >= config.vocabSize);
  if (badEos !== undefined) {
    throw new Error(
      `${join(dir, "generation_config.json")}: eos_token_id ${badEos} is outside the ` +
        `vocabulary [0, ${config.vocabSize}) of config.json; generation would never stop on it`,
    );
  }
  const file = await readModelWeights(dir);
  const params = paramsFromCheckpoint(config, file, dir);
  const assets = new Map<string, Uint8Array>();
  for (const name of ASSET_FILES) {
    try {
      assets.set(name, await Deno.readFile(join(dir, name)));
    } catch {
      // optional file
    }
  }
  return new Model({ config, tokenizer, params, source, backend, assets, eosTokenIds });
}
