/**
 * `loadModel(source)`: a Hugging Face folder, an `hf:owner/name[@revision]` repository
 * (downloaded into the standard HF cache), a bare Hub id `owner/name` found in that cache
 * (downloaded only with `download: true`), or a SafetyWorld checkpoint name (`toy-base`,
 * `toy-shallow`, shipped in datasets/checkpoints); see {@link resolveModelDir}.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { exists } from "../io/exists.ts";
import { type ModelConfig, parseConfig, SUPPORTED_MODEL_TYPES } from "./config.ts";
import { checkMemory, paramCount } from "./config_check.ts";
import { clipName } from "../io/bounded.ts";
import { decodeUtf8, jsonDepthExceeded, MAX_JSON_DEPTH } from "../io/text.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
import { readEosTokenIds } from "./generation_config.ts";
import { readModelWeights, type SafetensorsFile } from "../io/safetensors.ts";
import {
  attachExternal,
  canonicalName,
  checkpointName,
  type ExternalParams,
  type Params,
  paramSpecs,
  transpose2d,
  uniqueName,
  variableFrom,
} from "./weights.ts";
import { Model } from "./model.ts";
import { openCheckpoint, readExternalMatrix, readTensorF32 } from "./external_load.ts";
import { externalWeightsInfo } from "../engine/external_weights.ts";
import {
  backendInfo,
  type BackendName,
  type BackendOptions,
  initBackend,
} from "../engine/backend.ts";
import { cachedSnapshot, defaultHubCache, downloadHfModel, parseHfSource } from "./hub.ts";
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
  /** For hf: sources and Hub ids: cache folder, endpoint, token (see downloadHfModel). */
  hub?: { cacheDir?: string; endpoint?: string; token?: string };
  /**
   * A bare Hub id (`owner/name`) absent from the Hugging Face cache is downloaded (when online;
   * `HF_HUB_OFFLINE=1` keeps to the cache). `hf:` sources always may download.
   * @default false (the cache only)
   */
  download?: boolean;
  /**
   * Where the 2-D weights (projections, embeddings, head) live. "heap": tfjs tensors in the
   * wasm heap (trainable; the heap stops at 4 GiB). "external": host memory outside the heap,
   * read by the BLAS kernel in place (lib/engine/external_weights.ts): frozen, so full
   * fine-tuning is refused while LoRA adapters train as usual; norms and biases stay on the
   * heap. "auto": external when the 2-D weights exceed {@link EXTERNAL_AUTO_BYTES} as float32.
   * @default "auto"
   */
  weights?: "auto" | "heap" | "external";
  /**
   * Host storage of external weights: "keep" the file's (BF16 stays bf16, half the memory,
   * converted tile by tile when multiplied; F32/F16 become float32), or force one.
   * @default "keep"
   */
  externalStorage?: "keep" | "float32" | "bfloat16";
}

/**
 * The float32 size of a model's 2-D weights above which `weights: "auto"` keeps them outside
 * the wasm heap (1.5 GiB: training a model of ~0.5 GiB already peaks near 3.3 GiB of the
 * 4 GiB heap, so larger ones would leave no room for activations).
 */
export const EXTERNAL_AUTO_BYTES = 1.5 * 2 ** 30;

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

/** A Hub model id, `owner/name`. */
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/** Throws, naming the fix, when `dir` lacks config.json or the weights (`*.safetensors`). */
async function checkModelFolder(dir: string, source: string): Promise<void> {
  if (!(await exists(join(dir, "config.json")))) {
    throw new Error(
      `Cannot load model '${source}': the folder ${dir} has no config.json; pass the folder ` +
        `that holds config.json and the *.safetensors weights (a Hugging Face model folder, as ` +
        `save_pretrained or model.save writes it)`,
    );
  }
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".safetensors") || e.name === "model.safetensors.index.json") return;
  }
  throw new Error(
    `Cannot load model '${source}': the folder ${dir} has config.json but no weights ` +
      `(no *.safetensors, no model.safetensors.index.json); save them as safetensors ` +
      `(save_pretrained(..., safe_serialization=True) or model.save), or finish the download ` +
      `(loadModel("hf:${HUB_ID.test(source) ? source : "owner/name"}"))`,
  );
}

/**
 * The local folder a model source names, checked to hold config.json and weights: an
 * existing folder; a shipped SafetyWorld checkpoint (`toy-base`); `hf:owner/name[@revision]`
 * (downloaded into the Hugging Face cache, or taken from it offline); or a bare Hub id
 * `owner/name`, looked up in the Hugging Face cache (`HF_HUB_CACHE`, `$HF_HOME/hub`,
 * `~/.cache/huggingface/hub`: `models--owner--name/snapshots/<refs/main>/`) and downloaded
 * only with `download: true`. Throws, naming the fix, for a missing folder or an id absent from
 * the cache, a folder without config.json, and a folder without weights.
 *
 * @example
 * ```ts
 * const dir = await resolveModelDir("toy-base");
 * console.log(dir.endsWith("toy-base")); // true
 * ```
 */
export async function resolveModelDir(
  source: string,
  opts: Pick<LoadOptions, "hub" | "download"> = {},
): Promise<string> {
  let dir: string;
  if (source.startsWith("hf:")) {
    const { repo, revision } = parseHfSource(source);
    dir = await downloadHfModel(repo, { revision, ...opts.hub });
  } else if (await isDir(source)) {
    dir = source;
  } else if (/^[\w.-]+$/.test(source) && (await isDir(join(CHECKPOINT_DIR.pathname, source)))) {
    dir = join(CHECKPOINT_DIR.pathname, source);
  } else if (HUB_ID.test(source) && !source.includes("--") && !source.includes("..")) {
    const cacheDir = opts.hub?.cacheDir ?? defaultHubCache();
    const cached = await cachedSnapshot(source, { cacheDir });
    if (cached) dir = cached;
    else if (opts.download) dir = await downloadHfModel(source, opts.hub);
    else {
      throw new Error(
        `Cannot load model '${source}': no such folder, and not in the Hugging Face cache ` +
          `${cacheDir} (no models--${source.replace("/", "--")}/refs/main snapshot); download ` +
          `it with loadModel("hf:${source}") or { download: true } (or \`huggingface-cli ` +
          `download ${source}\`), set HF_HUB_CACHE / HF_HOME to the cache that has it, or pass ` +
          `the model's folder`,
      );
    }
  } else {
    throw new Error(
      `Cannot load model '${source}': not a folder, not an owner/name Hub id or hf:owner/name ` +
        `source, and not a SafetyWorld checkpoint (shipped: toy-base, toy-shallow; run ` +
        `\`deno task toy:train\` to rebuild them); check the path`,
    );
  }
  await checkModelFolder(dir, source);
  return dir;
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

/** {@link checkFinite} for host storage: float32 values, or bf16 bits (exponent all ones). */
function checkFiniteStored(data: Float32Array | Uint16Array, name: string, source: string): void {
  if (data instanceof Float32Array) return checkFinite(data, name, source);
  let bad = -1;
  for (let i = 0; i < data.length; i++) {
    if ((data[i] & 0x7f80) === 0x7f80) {
      bad = i;
      break;
    }
  }
  if (bad < 0) return;
  throw new Error(
    `${source}: tensor '${clipName(name)}' holds a NaN or an infinity (bf16 bits ` +
      `0x${
        data[bad].toString(16)
      }) at flat index ${bad} (of ${data.length}); the weights are corrupt`,
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
  checkTensorSet(c, specs, byCanon, file.tensors.size, source);
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
 * Reads a checkpoint with its 2-D weights outside the wasm heap (see `LoadOptions.weights`):
 * headers first, then each tensor by byte range; a 2-D weight goes into host storage
 * (layout as in the file: HF Linear `[out, in]`, GPT-2 Conv1D `[in, out]`), the rest into
 * tfjs variables. The extra- and missing-tensor checks are those of {@link paramsFromCheckpoint}.
 */
export async function externalParamsFromCheckpoint(
  c: ModelConfig,
  dir: string,
  storage: "keep" | "float32" | "bfloat16" = "keep",
): Promise<Params> {
  const ckpt = await openCheckpoint(dir);
  const byCanon = new Map<string, string>();
  for (const name of ckpt.tensors.keys()) {
    if (!IGNORED.test(name)) byCanon.set(canonicalName(c, name), name);
  }
  const specs = paramSpecs(c);
  checkTensorSet(c, specs, byCanon, ckpt.tensors.size, dir);
  const params: Params = new Map();
  const external: ExternalParams = new Map();
  try {
    for (const s of specs) {
      const name = byCanon.get(s.name)!;
      const shape = ckpt.tensors.get(name)!.shape;
      const expected = s.transposed ? [s.shape[1], s.shape[0]] : s.shape;
      if (shape.join(",") !== expected.join(",")) {
        throw new Error(
          `${dir}: tensor '${clipName(name)}' has shape [${clipName(String(shape), 60)}], ` +
            `config.json implies [${expected}]`,
        );
      }
      if (s.shape.length === 2 && !s.name.endsWith("wpe.weight")) { // positions stay on the heap
        // HF Linear weights ([out, in], kept transposed on the heap) and embedding tables
        // multiply as x M^T; GPT-2's Conv1D [in, out] as x M.
        const embedding = /(^|\.)(wte|embed_tokens|lm_head)\.weight$/.test(s.name);
        const layout = s.transposed || embedding ? "out_in" : "in_out";
        const m = await readExternalMatrix(ckpt, name, { storage, layout });
        checkFiniteStored(m.data, name, dir);
        external.set(s.name, m);
      } else {
        const t = await readTensorF32(ckpt, name);
        checkFinite(t.data, name, dir);
        params.set(
          s.name,
          variableFrom(tf.tensor(t.data, s.shape, "float32"), true, uniqueName(s.name)),
        );
      }
    }
  } catch (err) {
    tf.dispose([...params.values()]);
    throw err;
  }
  attachExternal(params, external);
  return params;
}

/** Throws, naming the tensor, when a required one is missing or an unused one is present. */
function checkTensorSet(
  c: ModelConfig,
  specs: ReturnType<typeof paramSpecs>,
  byCanon: Map<string, string>,
  count: number,
  source: string,
): void {
  for (const s of specs) {
    if (!byCanon.has(s.name)) {
      throw new Error(
        `${source}: the weights lack tensor '${checkpointName(c, s.name)}', required by ` +
          `config.json (${c.modelType}, ${c.nLayer} layers); the files hold ${count} tensors`,
      );
    }
  }
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
}

/** The float32 bytes of a config's 2-D weights (what "auto" compares). */
export function matrixBytes(c: ModelConfig): number {
  return paramSpecs(c).filter((s) => s.shape.length === 2)
    .reduce((a, s) => a + s.shape[0] * s.shape[1] * 4, 0);
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
  const dir = await resolveModelDir(source, opts);
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
  const where = opts.weights ?? "auto";
  if (!["auto", "heap", "external"].includes(where)) {
    throw new Error(`loadModel: weights is '${where}'; use "auto", "heap" or "external"`);
  }
  const external = where === "external" ||
    (where === "auto" && matrixBytes(config) > EXTERNAL_AUTO_BYTES);
  const storage = opts.externalStorage ?? "keep";
  // Before the weights are read or any tensor allocated. On the heap: float32 parameters plus
  // the weight files (read whole); outside it: the host storage, read tensor by tensor.
  const fileBytes = await weightFileBytes(dir);
  checkMemory(
    config,
    cfgPath,
    undefined,
    fileBytes,
    external
      ? (storage === "keep" ? fileBytes : paramCount(config) * (storage === "float32" ? 4 : 2))
      : undefined,
  );
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
  let params: Params;
  if (external) {
    const info = externalWeightsInfo();
    if (!info.native) {
      console.warn(
        `loadModel: weights kept outside the wasm heap, but ${info.reason}; every product ` +
          "uploads its matrix (slow, <= 1 GiB each). Use the wasm backend with --allow-ffi.",
      );
    }
    params = await externalParamsFromCheckpoint(config, dir, storage);
  } else {
    params = paramsFromCheckpoint(config, await readModelWeights(dir), dir);
  }
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
