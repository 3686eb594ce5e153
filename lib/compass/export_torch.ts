/**
 * Exports a {@linkcode Compass} for PyTorch users: a folder with `compass.safetensors`
 * (weights in PyTorch's `nn.Linear` layout, `[out, in]`; the CRAFT prototypes), a JSON
 * description `compass_torch.json` (method, layer, pooling, head architecture, prototypes,
 * tensors, metrics, seed) and `load_compass.py`, a short script with the PyTorch lines that
 * load and apply it (generated from the template below). Written atomically.
 *
 * Layer convention: the toolkit's layers are Hugging Face's `output_hidden_states` (0 = the
 * embedding output, i = the residual stream after block i, the last one after the final
 * norm), so the script reads `hidden_states[layer]`.
 *
 * @module
 */

import { join } from "node:path";
import type { Compass } from "./compass.ts";
import { writeDirAtomic, writeJsonAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { type TensorToWrite, writeSafetensors } from "../io/safetensors.ts";
import { transpose2d } from "../model/weights.ts";

/** The format tag of `compass_torch.json`. */
export const TORCH_EXPORT_FORMAT = "safety-compass.compass-torch";

/** The PyTorch tensors of a compass: name -> {shape, data} (weights `[out, in]`). */
export function torchTensors(compass: Compass): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  const h = compass.head;
  if (h) {
    const [d, hd, k] = [h.dModel, h.hiddenDim, h.embedDim];
    out["fc1.weight"] = { shape: [hd, d], data: transpose2d(h.params["fc1.w"], d, hd) };
    out["fc1.bias"] = { shape: [hd], data: h.params["fc1.b"] };
    out["fc2.weight"] = { shape: [k, hd], data: transpose2d(h.params["fc2.w"], hd, k) };
    out["fc2.bias"] = { shape: [k], data: h.params["fc2.b"] };
    out["head.weight"] = { shape: [3, k], data: transpose2d(h.params["head.w"], k, 3) };
    out["head.bias"] = { shape: [3], data: h.params["head.b"] };
    out.prototypes = { shape: [3, k], data: h.prototypes.data };
    return out;
  }
  const p = compass.probe;
  if (!p) {
    throw new Error(
      `Cannot export a ${compass.method} compass: it has neither a CRAFT head nor a linear probe`,
    );
  }
  const d = p.weights.length;
  out.weight = { shape: [1, d], data: p.weights };
  out.bias = { shape: [1], data: Float32Array.of(p.bias) };
  out.direction = { shape: [d], data: p.direction };
  if (p.meanDiff) out.steering_vector = { shape: [d], data: p.meanDiff };
  return out;
}

/** The JSON description written as `compass_torch.json`. */
export function torchDescription(
  compass: Compass,
  tensors: Record<string, TensorToWrite>,
): Record<string, unknown> {
  const h = compass.head;
  const d = compass.dModel;
  const linear = (name: string, i: number, o: number) => ({ name, type: "Linear", in: i, out: o });
  return {
    format: TORCH_EXPORT_FORMAT,
    version: 1,
    method: compass.method,
    layer: compass.layer,
    pooling: compass.pooling,
    dModel: d,
    layerConvention: "Hugging Face output_hidden_states: 0 = embedding output, i = residual " +
      "stream after block i, the last = after the final norm",
    score: "p_safe in [0, 1] (class 1 = safe)",
    head: h
      ? {
        type: "craft",
        layers: [
          linear("fc1", d, h.hiddenDim),
          { type: "GELU", approximate: "tanh" },
          linear("fc2", h.hiddenDim, h.embedDim),
          { type: "L2Normalize", formula: "u / sqrt(sum(u^2) + 1e-12)" },
        ],
        safetyHead: { ...linear("head", h.embedDim, 3), then: "softmax", pSafe: "index 0" },
        classes: ["safe", "unsafe", "rethink"],
      }
      : { type: "linear", layers: [linear("", d, 1), { type: "Sigmoid" }] },
    prototypes: h
      ? {
        tensor: "prototypes",
        shape: [3, h.embedDim],
        classes: ["safe", "unsafe", "rethink"],
        rLat: "cos(z, mu_safe) - cos(z, mu_unsafe) + 0.5 cos(z, mu_rethink)",
      }
      : null,
    tensors: Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, v.shape])),
    metrics: compass.metrics,
    options: compass.options,
    seed: compass.seed,
  };
}

const TEMPLATE =
  `"""Safety compass exported by safety-compass: {{method}}, layer {{layer}}, {{pooling}} pooling, d={{dModel}}.

    python load_compass.py             # self-check
    from load_compass import score, pool, layer_output, META

score(pool(layer_output(lm, batch, META["layer"]), batch["attention_mask"])) -> p_safe [B].
"""
import json
import pathlib

import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
META = json.loads((HERE / "compass_torch.json").read_text())


def load_tensors(path):
    try:
        from safetensors.torch import load_file
        return load_file(str(path))
    except ImportError:  # plain reader for the F32 tensors written here
        raw = path.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        out = {}
        for name, t in json.loads(raw[8:8 + n]).items():
            if name != "__metadata__":
                a, b = t["data_offsets"]
                buf = bytearray(raw[8 + n + a:8 + n + b])
                out[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(t["shape"])
        return out


W = load_tensors(HERE / "compass.safetensors")


def layer_output(lm, batch, layer):
    """Hugging Face hidden_states[layer] ([B, T, d]; 0 = embeddings, last = after the final norm)."""
    return lm(**batch, output_hidden_states=True).hidden_states[layer]


def pool(hidden, attention_mask, response_mask=None):
    """[B, T, d] -> [B, d] as the compass was fitted ("{{pooling}}"); "last" = the last real token, whichever side is padded."""
    mode = META["pooling"]
    if mode == "none":
        return hidden
    if mode == "last":
        last = (torch.arange(hidden.shape[1], device=hidden.device) * attention_mask).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    m = (attention_mask if mode == "mean" else response_mask).unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def embed(h):
    """CRAFT only: unit embeddings z [..., k]."""
    u = F.gelu(F.linear(h.float(), W["fc1.weight"], W["fc1.bias"]), approximate="tanh")
    u = F.linear(u, W["fc2.weight"], W["fc2.bias"])
    return u / torch.sqrt((u * u).sum(-1, keepdim=True) + 1e-12)


def score(h):
    """p_safe of pooled hidden states h [..., d]."""
    if META["method"] == "craft":
        return torch.softmax(F.linear(embed(h), W["head.weight"], W["head.bias"]), -1)[..., 0]
    return torch.sigmoid(F.linear(h.float(), W["weight"], W["bias"]))[..., 0]


def cosines(h):
    """CRAFT only: cosine of z with the safe, unsafe and rethink prototypes [..., 3]."""
    return embed(h) @ W["prototypes"].T


if __name__ == "__main__":
    x = torch.zeros(1, META["dModel"])
    print(META["method"], "layer", META["layer"], "p_safe(0) =", float(score(x)[0]))
`;

/** The text of `load_compass.py` for a compass. */
export function loadCompassPy(compass: Compass): string {
  const values: Record<string, string> = {
    method: compass.method,
    layer: String(compass.layer),
    pooling: compass.pooling,
    dModel: String(compass.dModel),
  };
  return TEMPLATE.replace(/\{\{(\w+)\}\}/g, (_, k: string) => values[k]);
}

/**
 * Writes `dir` (replaced atomically): `compass.safetensors`, `compass_torch.json` and
 * `load_compass.py`. See the module doc for the layer convention.
 */
export async function exportCompassForTorch(compass: Compass, dir: string): Promise<void> {
  const tensors = torchTensors(compass);
  await writeDirAtomic(dir, async (tmp) => {
    await writeSafetensors(join(tmp, "compass.safetensors"), tensors, {
      format: TORCH_EXPORT_FORMAT,
      method: compass.method,
    });
    await writeJsonAtomic(join(tmp, "compass_torch.json"), torchDescription(compass, tensors));
    await writeTextFileAtomic(join(tmp, "load_compass.py"), loadCompassPy(compass));
  });
}
