#!/usr/bin/env python3
"""Hugging Face `transformers` itself as the referee for the model families.

For every case below, builds a small RANDOM-weight checkpoint with transformers
(`<Family>Config(...)` -> `<Family>ForCausalLM(config)`, torch.manual_seed, float32,
attn_implementation="eager"), saves it with `save_pretrained` (safetensors), runs a fixed
left-padded ragged batch through it and writes what HF computes:

    OUT_DIR/<case>/config.json, model.safetensors   the checkpoint
    OUT_DIR/<case>/ref.json                          {
        "input_ids": [B][T], "attention_mask": [B][T], "position_ids": [B][T],
        "logits": [B][T][V], "hidden_states": [n_layer + 1][B][T][d]  (HF output_hidden_states),
        "greedy": {"prompts": [[...]], "new_tokens": N,
                   "ids": [[...]],           HF generate (KV cache), one row at a time
                   "ids_nocache": [[...]]}   greedy by full forwards, no cache
    }
    OUT_DIR/cases.json                               the list of case names

Usage:
    python3 tests/ref/hf_families.py OUT_DIR [CASE ...]

Conventions: position_ids are passed explicitly as cumsum(mask) - 1 clipped at 0 (the
toolkit's convention; HF's forward would use arange when given only a mask). Outputs at padded
positions are implementation-defined: compare only unpadded positions. RoPE types whose
frequencies depend on the sequence length (dynamic, longrope) keep state between calls in HF;
it is reset before every call here, so each call sees the frequencies of its own length.

Known HF quirk (transformers 5.18): Phi3ForCausalLM.prepare_inputs_for_generation drops the
cache when a longrope sequence first outgrows original_max_position_embeddings, meaning to
re-run the whole sequence with the long factors, but generate then feeds only the newest
token without a cache, so that one step attends to itself alone. "ids_nocache" records the
greedy ids of the re-run HF intends; the toolkit's generate re-runs the sequence and matches it.
"""

import json
import os
import sys
from pathlib import Path

import torch
import transformers as T

V = 96  # vocabulary
SEED = 1234

# Each case: (ModelClass, ConfigClass, config kwargs). Tiny shapes, odd on purpose:
# head_dim != hidden/heads, GQA, windows shorter than the prompt, every RoPE scaling type.
LLAMA = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=12,
             max_position_embeddings=64, rms_norm_eps=1e-6)


def rope(kind, **kw):
    return {"rope_type": kind, "rope_theta": 10000.0, **kw}


CASES = {
    "gpt2": ("GPT2LMHeadModel", "GPT2Config",
             dict(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4)),
    "llama": ("LlamaForCausalLM", "LlamaConfig", dict(LLAMA, attention_bias=True)),
    "llama-linear": ("LlamaForCausalLM", "LlamaConfig",
                     dict(LLAMA, rope_parameters=rope("linear", factor=2.0))),
    # max_position_embeddings 16 < prompt: the dynamic base grows with the length
    "llama-dynamic": ("LlamaForCausalLM", "LlamaConfig",
                      dict(LLAMA, max_position_embeddings=16,
                           rope_parameters=rope("dynamic", factor=2.0))),
    "llama-llama3": ("LlamaForCausalLM", "LlamaConfig",
                     dict(LLAMA, rope_parameters=rope("llama3", factor=8.0, low_freq_factor=1.0,
                                                      high_freq_factor=4.0,
                                                      original_max_position_embeddings=16))),
    "llama-yarn": ("LlamaForCausalLM", "LlamaConfig",
                   dict(LLAMA, rope_parameters=rope("yarn", factor=4.0,
                                                    original_max_position_embeddings=16))),
    "mistral": ("MistralForCausalLM", "MistralConfig",
                dict(LLAMA, sliding_window=5, tie_word_embeddings=True)),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config",
              {k: v for k, v in LLAMA.items() if k != "head_dim"} | dict(tie_word_embeddings=True)),
    "qwen3": ("Qwen3ForCausalLM", "Qwen3Config", dict(LLAMA, head_dim=16)),
    "gemma2": ("Gemma2ForCausalLM", "Gemma2Config",
               dict(LLAMA, head_dim=16, num_hidden_layers=3, hidden_activation="gelu_pytorch_tanh",
                    query_pre_attn_scalar=24, sliding_window=4, attn_logit_softcapping=2.0,
                    final_logit_softcapping=3.0, pad_token_id=0)),
    "gemma3_text": ("Gemma3ForCausalLM", "Gemma3TextConfig",
                    dict(LLAMA, head_dim=16, num_hidden_layers=3,
                         hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=20,
                         sliding_window=4, pad_token_id=0,
                         layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                         rope_parameters={
                             "full_attention": {"rope_type": "linear", "factor": 2.0,
                                                "rope_theta": 1e6},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})),
    "phi3": ("Phi3ForCausalLM", "Phi3Config",
             dict({k: v for k, v in LLAMA.items() if k != "head_dim"}, sliding_window=6,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                   "partial_rotary_factor": 0.5})),
    # original 16 < prompt: the long factors apply to the longest row
    "phi3-longrope": ("Phi3ForCausalLM", "Phi3Config",
                      dict({k: v for k, v in LLAMA.items() if k != "head_dim"},
                           original_max_position_embeddings=16,
                           rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                            "partial_rotary_factor": 0.75,
                                            "short_factor": [1.0, 1.1, 1.3],
                                            "long_factor": [1.5, 2.0, 4.0]})),
}

# A ragged batch, left-padded: 19 and 13 real tokens.
ROWS = [[5, 17, 3, 88, 41, 9, 60, 2, 33, 71, 12, 45, 8, 90, 26, 54, 19, 7, 66],
        [23, 4, 77, 31, 50, 6, 81, 14, 39, 62, 11, 28, 93]]
NEW_TOKENS = 8


def perturb(model):
    """Non-trivial norms and biases (HF initialises them to 0/1), so their layout is exercised."""
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name or name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def reset_rope(model):
    """Forget the sequence length a dynamic / longrope rotary embedding saw last."""
    for m in model.modules():
        if hasattr(m, "original_inv_freq") and hasattr(m, "original_max_seq_len"):
            m.inv_freq = m.original_inv_freq.clone()
            m.max_seq_len_cached = m.original_max_seq_len


def build(case, out):
    model_cls, cfg_cls, kw = CASES[case]
    torch.manual_seed(SEED)
    common = dict(initializer_range=0.15, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    cfg = getattr(T, cfg_cls)(**(common | kw))
    cfg._attn_implementation = "eager"
    model = getattr(T, model_cls)(cfg).eval().float()
    perturb(model)
    model.save_pretrained(out, safe_serialization=True)
    b, t = len(ROWS), max(len(r) for r in ROWS)
    ids = [[0] * (t - len(r)) + r for r in ROWS]
    mask = [[0] * (t - len(r)) + [1] * len(r) for r in ROWS]
    ids_t, mask_t = torch.tensor(ids), torch.tensor(mask)
    pos = (mask_t.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        reset_rope(model)
        o = model(input_ids=ids_t, attention_mask=mask_t, position_ids=pos,
                  output_hidden_states=True, use_cache=False)
        greedy = []
        for r in ROWS:
            reset_rope(model)
            g = model.generate(torch.tensor([r]), attention_mask=torch.ones(1, len(r), dtype=torch.long),
                               max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0,
                               eos_token_id=None)
            greedy.append(g[0, len(r):].tolist())
        nocache = []  # greedy by full forwards, no cache (see the phi3-longrope note)
        for r in ROWS:
            seq = list(r)
            for _ in range(NEW_TOKENS):
                reset_rope(model)
                seq.append(int(model(torch.tensor([seq]), use_cache=False).logits[0, -1].argmax()))
            nocache.append(seq[len(r):])
    ref = {
        "case": case, "model_type": cfg.model_type, "n_layer": cfg.num_hidden_layers,
        "vocab": V, "input_ids": ids, "attention_mask": mask, "position_ids": pos.tolist(),
        "logits": o.logits.tolist(), "hidden_states": [h.tolist() for h in o.hidden_states],
        "greedy": {"prompts": ROWS, "new_tokens": NEW_TOKENS, "ids": greedy,
                   "ids_nocache": nocache},
    }
    (Path(out) / "ref.json").write_text(json.dumps(ref))
    assert len(o.hidden_states) == cfg.num_hidden_layers + 1 and b == len(ids)


def main(argv):
    if not argv:
        sys.exit("usage: hf_families.py OUT_DIR [CASE ...]")
    out = Path(argv[0])
    names = argv[1:] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"error: unknown case(s) {unknown}; known: {list(CASES)}")
    torch.set_num_threads(1)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for n in names:
        build(n, out / n)
    (out / "cases.json").write_text(json.dumps(names))


if __name__ == "__main__":
    main(sys.argv[1:])
