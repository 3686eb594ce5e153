#!/usr/bin/env python3
"""Hugging Face `transformers` as referee for named activations (tests/hooks_hf_test.ts).

Usage:
    python3 tests/ref/hooks_ref.py MODEL_DIR IDS.json OUT.json

Loads MODEL_DIR (a folder the toolkit saved) with AutoModelForCausalLM, eager attention,
float32, and writes {"attentions": [n_layer][B][H][T][T] (output_attentions: the softmax
probabilities, = blocks.{i}.attn.hook_pattern), "o_proj_in": [n_layer][B][T][H*D] (the
input of each block's attention output projection, captured by a torch forward pre-hook:
= blocks.{i}.attn.hook_z flattened), "logits": [B][T][V]}.
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    model_dir, ids_path, out_path = sys.argv[1:4]
    ids = torch.tensor(json.load(open(ids_path)))
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    gpt2 = model.config.model_type == "gpt2"
    layers = model.transformer.h if gpt2 else model.model.layers
    captured = {}

    def grab(i):
        def pre(_module, args):
            captured[i] = args[0].detach()
        return pre

    handles = [
        (layer.attn.c_proj if gpt2 else layer.self_attn.o_proj).register_forward_pre_hook(grab(i))
        for i, layer in enumerate(layers)
    ]
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    for h in handles:
        h.remove()
    json.dump({
        "attentions": [a.tolist() for a in out.attentions],
        "o_proj_in": [captured[i].tolist() for i in range(len(layers))],
        "logits": out.logits.tolist(),
    }, open(out_path, "w"))


if __name__ == "__main__":
    main()
