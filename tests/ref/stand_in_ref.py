#!/usr/bin/env python3
"""transformers as the referee for a saved random-weight stand-in (lib/model/stand_in.ts).

    python3 tests/ref/stand_in_ref.py MODEL_DIR CASES.json OUT.json

CASES.json = {"texts": [str], "chats": [{"messages": [...], "kwargs": {...}}], "forward": [[ids]]}
OUT.json   = {"texts": [[ids]], "chats": [{"text": str, "ids": [ids]}],
              "logits": [[T][V] per forward row], "hidden": [[n_layer + 1][T][d] per row]}
AutoTokenizer / AutoModelForCausalLM (float32, eager attention) load MODEL_DIR as saved by
`model.save(dir)`; chats go through apply_chat_template(add_generation_prompt=True, **kwargs).
"""

import json
import sys

import torch
import transformers as T


def main(model_dir, cases_path, out_path):
    torch.set_num_threads(1)
    cases = json.load(open(cases_path))
    tok = T.AutoTokenizer.from_pretrained(model_dir)
    lm = T.AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager",
                                                dtype=torch.float32).eval()
    out = {"texts": [tok(t)["input_ids"] for t in cases["texts"]], "chats": [], "logits": [],
           "hidden": []}
    for c in cases["chats"]:
        kw = c.get("kwargs", {})
        text = tok.apply_chat_template(c["messages"], add_generation_prompt=True, tokenize=False, **kw)
        ids = tok.apply_chat_template(c["messages"], add_generation_prompt=True, tokenize=True,
                                      return_dict=False, **kw)
        out["chats"].append({"text": text, "ids": list(ids)})
    with torch.no_grad():
        for ids in cases["forward"]:
            o = lm(torch.tensor([ids]), output_hidden_states=True)
            out["logits"].append(o.logits[0].tolist())
            out["hidden"].append([h[0].tolist() for h in o.hidden_states])
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
