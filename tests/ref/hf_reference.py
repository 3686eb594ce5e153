#!/usr/bin/env python3
"""Independent PyTorch referee for the safety-compass transformer (tiny models only).

Written from the Hugging Face `transformers` modeling semantics (GPT2LMHeadModel,
LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM) in plain torch, without importing
`transformers` or `safetensors`: the weights are parsed by hand (safetensors format: an
8-byte little-endian header length, a JSON header of {name: {dtype, shape, data_offsets}},
then raw little-endian data).

Usage:
    python3 tests/ref/hf_reference.py MODEL_DIR IDS.json OUT.json [--float64]

MODEL_DIR holds config.json and model.safetensors (or model.safetensors.index.json with
shards); F32, F16, BF16 weights. IDS.json is either a list of equal-length lists of token
ids, or {"input_ids": [[...]], "attention_mask": [[1/0...]]} (left padding). OUT.json gets
{"logits": [B][T][vocab], "hidden_states": [n_layer + 1][B][T][d]}.

Conventions (HF's `output_hidden_states`, which the toolkit follows): hidden_states[0] is the
embedding output (GPT-2: wte + wpe), hidden_states[i] is the raw residual stream after block i
for i < n_layer, and the last entry is the output of the final norm (what the head reads).
Position ids are cumsum(mask) - 1 clipped at 0 (HF `generate` fills pads with 1 instead);
padded keys are masked with the dtype's minimum, as HF's eager attention does. Outputs at
padded query positions are implementation-defined: compare only unpadded positions.
Computation is float32 (as HF) unless --float64 is given.
"""

import json
import math
import os
import struct
import sys
from pathlib import Path


def _import_torch():
    """Imports torch; re-runs under Debian's /usr/bin/python3 (python3-torch) when a pyenv
    or venv `python3` shadows it."""
    try:
        import torch  # noqa: F401
        return torch
    except ImportError:
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(
                system) and not os.environ.get("SAFETY_COMPASS_REEXEC"):
            os.environ["SAFETY_COMPASS_REEXEC"] = "1"
            os.execv(system, [system, *sys.argv])
        sys.exit(f"error: torch is not importable by {sys.executable}; install PyTorch "
                 "(Debian/Ubuntu: apt install python3-torch) or run with a python that has it")


torch = _import_torch()
F = torch.nn.functional

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "F64": torch.float64}
LLAMA_TYPES = {"llama", "mistral", "qwen2"}


def fail(msg):
    sys.exit(f"error: {msg}")


def read_json(path, what):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        fail(f"{path}: no such file (expected {what})")
    except json.JSONDecodeError as e:
        fail(f"{path}: line {e.lineno}: invalid JSON ({e.msg}); expected {what}")


def read_safetensors(path):
    """{name: tensor} from one .safetensors file, parsed by hand."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in DTYPES:
            fail(f"{path}: tensor {name} has dtype {meta['dtype']}; expected one of {list(DTYPES)}")
        start, end = meta["data_offsets"]
        raw = bytearray(data[8 + n + start:8 + n + end])  # writable copy for frombuffer
        flat = torch.frombuffer(raw, dtype=DTYPES[meta["dtype"]]) if raw else torch.empty(0)
        out[name] = flat.reshape(meta["shape"])
    return out


def load_weights(model_dir, dtype):
    single, index = model_dir / "model.safetensors", model_dir / "model.safetensors.index.json"
    if single.exists():
        raw = read_safetensors(single)
    elif index.exists():
        raw = {}
        for shard in sorted(set(read_json(index, "a safetensors index")["weight_map"].values())):
            raw.update(read_safetensors(model_dir / shard))
    else:
        fail(f"{model_dir}: no model.safetensors or model.safetensors.index.json")
    # GPT2LMHeadModel prefixes "transformer."; GPT2Model does not.
    return {k.removeprefix("transformer."): v.to(dtype) for k, v in raw.items()}


def weight(w, name, where):
    if name not in w:
        fail(f"{where}: weight {name} is missing from the safetensors file(s)")
    return w[name]


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased, as torch.nn.LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * g + b


def rms_norm(x, g, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * g


def gelu_tanh(x):  # HF NewGELUActivation ("gelu_new"), GPT-2's activation
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


ACTIVATIONS = {
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "relu": lambda x: torch.clamp(x, min=0),
    "silu": lambda x: x * torch.sigmoid(x),
}


def activation(name, where):
    if name not in ACTIVATIONS:
        fail(f"{where}: activation {name!r} is not supported; expected one of {list(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def attention_mask(mask, window=None):
    """[B, 1, T, T] bool: query i may attend key j (causal, key unpadded, within window)."""
    t = mask.shape[1]
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (i - j < window)
    return allowed[None, None] & mask[:, None, None, :].bool()


def attend(q, k, v, allowed, scale):
    """q [B, H, T, hd], k/v [B, H, T, hd] -> [B, T, H * hd]."""
    s = (q @ k.transpose(-1, -2)) * scale  # [B, H, T, T]
    s = s.masked_fill(~allowed, torch.finfo(s.dtype).min)
    o = torch.softmax(s, dim=-1) @ v  # [B, H, T, hd]
    b, h, t, hd = o.shape
    return o.transpose(1, 2).reshape(b, t, h * hd)


def gpt2(cfg, w, ids, mask, pos, where):
    d, nh, eps = cfg["n_embd"], cfg["n_head"], cfg.get("layer_norm_epsilon", 1e-5)
    if cfg.get("scale_attn_by_inverse_layer_idx"):
        fail(f"{where}: scale_attn_by_inverse_layer_idx=true is not supported")
    act = activation(cfg.get("activation_function", "gelu_new"), where)
    b, t = ids.shape

    def g(name):
        return weight(w, name, where)

    def heads(x):  # [B, T, d] -> [B, H, T, hd]
        return x.reshape(b, t, nh, d // nh).transpose(1, 2)

    scale = 1 / math.sqrt(d // nh) if cfg.get("scale_attn_weights", True) else 1.0
    allowed = attention_mask(mask)
    x = g("wte.weight")[ids] + g("wpe.weight")[pos]  # [B, T, d]
    hidden = [x]
    for li in range(cfg["n_layer"]):
        p = f"h.{li}."
        h = layer_norm(x, g(p + "ln_1.weight"), g(p + "ln_1.bias"), eps)
        qkv = h @ g(p + "attn.c_attn.weight") + g(p + "attn.c_attn.bias")  # Conv1D [in, out]
        q, k, v = qkv.split(d, dim=-1)
        a = attend(heads(q), heads(k), heads(v), allowed, scale)
        x = x + a @ g(p + "attn.c_proj.weight") + g(p + "attn.c_proj.bias")
        h = layer_norm(x, g(p + "ln_2.weight"), g(p + "ln_2.bias"), eps)
        h = act(h @ g(p + "mlp.c_fc.weight") + g(p + "mlp.c_fc.bias"))
        x = x + h @ g(p + "mlp.c_proj.weight") + g(p + "mlp.c_proj.bias")
        hidden.append(x)
    final = layer_norm(x, g("ln_f.weight"), g("ln_f.bias"), eps)
    hidden[-1] = final  # HF: the last hidden state is after the final norm
    tied = cfg.get("tie_word_embeddings", True)
    head = g("wte.weight") if tied else g("lm_head.weight")
    return final @ head.T, hidden


def rope_inv_freq(cfg, hd, where):
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) **
                 (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    sc = cfg.get("rope_scaling") or {}
    kind = sc.get("rope_type", sc.get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / sc["factor"]
    if kind == "llama3":
        factor, lo, hi = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
        old = sc["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (wavelen >= old / hi) & (wavelen <= old / lo)
        return torch.where(mid, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    fail(f"{where}: rope_scaling type {kind!r} is not supported (default, linear, llama3)")


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def llama(cfg, w, ids, mask, pos, where, dtype):
    mt = cfg["model_type"]
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or d // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    act = activation(cfg.get("hidden_act", "silu"), where)
    qkv_bias = mt == "qwen2" or bool(cfg.get("attention_bias", False))
    o_bias = mt != "qwen2" and bool(cfg.get("attention_bias", False))
    mlp_bias = bool(cfg.get("mlp_bias", False))
    window = cfg.get("sliding_window") if mt == "mistral" else None
    if mt == "qwen2" and cfg.get("use_sliding_window"):
        fail(f"{where}: qwen2 use_sliding_window=true is not supported")

    def g(name):
        return weight(w, name, where)

    def linear(x, name, bias):
        y = x @ g(name + ".weight").T  # nn.Linear weight is [out, in]
        return y + g(name + ".bias") if bias else y

    b, t = ids.shape
    freqs = pos[..., None].to(torch.float64) * rope_inv_freq(cfg, hd, where)  # [B, T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # [B, 1, T, hd]

    def rope(x):  # HF apply_rotary_pos_emb, rotate-half layout
        return x * cos + rotate_half(x) * sin

    allowed = attention_mask(mask, window)
    x = g("model.embed_tokens.weight")[ids]  # [B, T, d]
    hidden = [x]
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        h = rms_norm(x, g(p + "input_layernorm.weight"), eps)
        q = linear(h, p + "self_attn.q_proj", qkv_bias).reshape(b, t, nh, hd).transpose(1, 2)
        k = linear(h, p + "self_attn.k_proj", qkv_bias).reshape(b, t, nkv, hd).transpose(1, 2)
        v = linear(h, p + "self_attn.v_proj", qkv_bias).reshape(b, t, nkv, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        # GQA (HF repeat_kv): kv head j serves query heads j*rep .. (j+1)*rep - 1
        k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
        a = attend(q, k, v, allowed, 1 / math.sqrt(hd))
        x = x + linear(a, p + "self_attn.o_proj", o_bias)
        h = rms_norm(x, g(p + "post_attention_layernorm.weight"), eps)
        gate = act(linear(h, p + "mlp.gate_proj", mlp_bias))
        x = x + linear(gate * linear(h, p + "mlp.up_proj", mlp_bias), p + "mlp.down_proj", mlp_bias)
        hidden.append(x)
    final = rms_norm(x, g("model.norm.weight"), eps)
    hidden[-1] = final  # HF: the last hidden state is after the final norm
    tied = cfg.get("tie_word_embeddings", False)
    head = g("model.embed_tokens.weight") if tied else g("lm_head.weight")
    return final @ head.T, hidden


def read_inputs(path, vocab):
    doc = read_json(path, "a list of token-id lists, or {input_ids, attention_mask}")
    ids = doc if isinstance(doc, list) else doc.get("input_ids")
    mask = None if isinstance(doc, list) else doc.get("attention_mask")
    if not ids or not all(isinstance(r, list) and len(r) == len(ids[0]) > 0 for r in ids):
        fail(f"{path}: input_ids must be a non-empty list of equal-length, non-empty lists")
    ids_t = torch.tensor(ids, dtype=torch.long)
    if ids_t.min() < 0 or ids_t.max() >= vocab:
        fail(f"{path}: token ids must lie in [0, {vocab}); got {ids_t.min()}..{ids_t.max()}")
    mask_t = torch.ones_like(ids_t) if mask is None else torch.tensor(mask, dtype=torch.long)
    if mask_t.shape != ids_t.shape:
        fail(f"{path}: attention_mask shape {list(mask_t.shape)} != input_ids {list(ids_t.shape)}")
    return ids_t, mask_t


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 3 or any(a not in ("--float64",) for a in argv if a.startswith("--")):
        fail("usage: hf_reference.py MODEL_DIR IDS.json OUT.json [--float64]")
    model_dir, ids_path, out_path = Path(args[0]), args[1], Path(args[2])
    dtype = torch.float64 if "--float64" in argv else torch.float32
    where = model_dir / "config.json"
    cfg = read_json(where, "a Hugging Face config.json")
    mt = cfg.get("model_type")
    if mt != "gpt2" and mt not in LLAMA_TYPES:
        fail(f"{where}: model_type {mt!r} is not supported; expected gpt2 or {sorted(LLAMA_TYPES)}")
    ids, mask = read_inputs(ids_path, cfg["vocab_size"])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: first real token at position 0
    w = load_weights(model_dir, dtype)
    with torch.no_grad():
        if mt == "gpt2":
            logits, hidden = gpt2(cfg, w, ids, mask, pos, where)
        else:
            logits, hidden = llama(cfg, w, ids, mask, pos, where, dtype)
    out = {"logits": logits.tolist(), "hidden_states": [h.tolist() for h in hidden]}
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, out_path)  # atomic: a reader never sees a half-written file


if __name__ == "__main__":
    main(sys.argv[1:])
