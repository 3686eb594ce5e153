#!/usr/bin/env python3
"""The Python side of tests/export_torch_hf_test.ts: the hand-off of a compass to PyTorch.

Two commands:

    python3 tests/ref/export_compass_ref.py build OUT_DIR CASE [CASE ...]
        builds the random-weight transformers checkpoints of tests/ref/hf_families.py
        (OUT_DIR/<case>/config.json + model.safetensors; e.g. qwen3, gpt2)

    python3 tests/ref/export_compass_ref.py score JOB_JSON OUT_JSON
        JOB_JSON = {"checkpoint": dir,
                    "rows": [{"ids": [...], "responseStart": int}, ...],
                    "compasses": [dir, ...]}          folders written by exportCompassForTorch
        loads the checkpoint with AutoModelForCausalLM (float32, eager attention), imports each
        compass folder's generated load_compass.py and scores the rows the way its docstring
        tells a user to: a RIGHT-padded batch, `layer_output(lm, batch, META["layer"])`,
        `pool(hidden, attention_mask, response_mask)`, `score(pooled)` (and `cosines` for
        CRAFT). Writes {"scores": [[p_safe per row] per compass], "cosines": [...]}.

Nothing here re-implements the compass: the numbers are whatever the generated script computes.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def build(out, cases):
    import hf_families  # the referee's random checkpoints, built by transformers itself
    torch.set_num_threads(1)
    for case in cases:
        hf_families.build(case, Path(out) / case)


def load_script(folder, i):
    spec = importlib.util.spec_from_file_location(f"load_compass_{i}", Path(folder) / "load_compass.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def score(job_path, out_path):
    import transformers as T
    torch.set_num_threads(1)
    job = json.loads(Path(job_path).read_text())
    lm = T.AutoModelForCausalLM.from_pretrained(job["checkpoint"], attn_implementation="eager",
                                                dtype=torch.float32).eval()
    rows = job["rows"]
    t = max(len(r["ids"]) for r in rows)
    pad = 0
    ids = torch.tensor([r["ids"] + [pad] * (t - len(r["ids"])) for r in rows])
    mask = torch.tensor([[1] * len(r["ids"]) + [0] * (t - len(r["ids"])) for r in rows])
    response = torch.tensor([[0] * r["responseStart"] + [1] * (len(r["ids"]) - r["responseStart"])
                             + [0] * (t - len(r["ids"])) for r in rows])
    batch = {"input_ids": ids, "attention_mask": mask}
    scores, cosines = [], []
    with torch.no_grad():
        for i, folder in enumerate(job["compasses"]):
            mod = load_script(folder, i)
            hidden = mod.layer_output(lm, batch, mod.META["layer"])
            pooled = mod.pool(hidden, batch["attention_mask"], response)
            scores.append(mod.score(pooled).tolist())
            cosines.append(mod.cosines(pooled).tolist() if mod.META["method"] == "craft" else None)
    Path(out_path).write_text(json.dumps({"scores": scores, "cosines": cosines}))


def main(argv):
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if len(argv) >= 3 and argv[0] == "build":
        build(argv[1], argv[2:])
    elif len(argv) == 3 and argv[0] == "score":
        score(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
