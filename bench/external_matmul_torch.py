#!/usr/bin/env python3
"""PyTorch CPU peer for bench/external_matmul.ts: the same linear layers, same shapes.

For each model in the config, `copies` independent copies of one decoder layer's linear
weights (q, k, v, o, gate, up, down; nn.Linear layout [out, in]) are made with random values,
in fp32 and in bf16. For each M, the time of one pass of x [M, d] through every weight of one
copy (rotating copies between calls so the weights come from DRAM, as in decode) is measured:
    fp32:  F.linear(x, W)                 x, W fp32
    bf16:  F.linear(x.bfloat16(), W16)    what a bf16 checkpoint costs in torch
Timing: one warm-up, then the fastest of at least `reps` repeats and ~1 s of them. Also
reports the bf16 path's max relative error against an fp64 product of the
same bf16-rounded weights (at the first model's M = 8).

Usage: python3 bench/external_matmul_torch.py '{"models": [{"name", "layer": [[out, in], ...],
       "copies"}], "ms": [1, 8, 1024], "reps": 5}'
Prints one JSON line: {"torch", "threads", "results": [{model, m, dtype, seconds}], "bf16_rel_err"}.
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/torch_peer.py

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def best_time(fn, reps):
    """Fastest of at least `reps` runs (and 1 s of runs, at most 50) after one warm-up, as
    bench/external_matmul.ts measures ours (the minimum: the machine is shared)."""
    fn()
    times = []
    while len(times) < 50 and (len(times) < reps or sum(times) < 1.0):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(2)
    torch.manual_seed(0)
    results = []
    rel_err = None
    for mi, model in enumerate(cfg["models"]):
        shapes = model["layer"]
        copies = [[torch.randn(o, i) * 0.02 for o, i in shapes] for _ in range(model["copies"])]
        copies16 = [[w.bfloat16() for w in layer] for layer in copies]
        widths = sorted({i for _, i in shapes})
        for m in cfg["ms"]:
            xs = {i: torch.randn(m, i) for i in widths}
            for dtype, ws in (("float32", copies), ("bfloat16", copies16)):
                state = {"i": 0}
                inputs = xs if dtype == "float32" else {i: x.bfloat16() for i, x in xs.items()}

                def run(ws=ws, inputs=inputs, state=state):
                    layer = ws[state["i"] % len(ws)]
                    state["i"] += 1
                    with torch.no_grad():
                        for w in layer:
                            F.linear(inputs[w.shape[1]], w)

                results.append({"model": model["name"], "m": m, "dtype": dtype,
                                "seconds": best_time(run, cfg.get("reps", 5))})
        if mi == 0:
            w16 = copies16[0][0]
            x = torch.randn(8, w16.shape[1])
            ref = x.double() @ w16.double().T
            got = F.linear(x.bfloat16(), w16).double()
            rel_err = float((got - ref).abs().max() / ref.abs().max())
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "python": sys.executable, "results": results, "bf16_rel_err": rel_err}))


if __name__ == "__main__":
    main()
