#!/usr/bin/env python3
"""The PyTorch peer of bench/real_size.ts: the same synthetic Qwen3 checkpoint run by Hugging
Face transformers (Qwen3ForCausalLM, eager attention) on CPU with 2 threads, timed with the
rule of bench/timing.ts (warm-up, then repeats until about a second of runs; best of them).

Usage: python3 bench/hf_peer.py '{"dir": ..., "dtype": "float32"|"bfloat16", "fwd": [8, 128],
  "decode": [[1, 16], [8, 16]], "lora": [2, 128], "prompt": 16}'
Prints one JSON line: {"forward": tok/s, "decode1": tok/s, "decode8": tok/s, "lora": tok/s,
  "torch": version, "threads": n}. Keys whose measure is not asked are absent.
"""

import json
import sys
import time


def timed(fn, min_seconds=1.0, max_repeats=5):
    fn()  # warm-up
    best, total, n = float("inf"), 0.0, 0
    while n < max_repeats and (n == 0 or total < min_seconds):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, total, n = min(best, dt), total + dt, n + 1
    return best


def main():
    cfg = json.loads(sys.argv[1])
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    dtype = getattr(torch, cfg.get("dtype", "float32"))
    model = AutoModelForCausalLM.from_pretrained(cfg["dir"], dtype=dtype, attn_implementation="eager")
    model.eval()
    vocab = model.config.vocab_size
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def ids(b, t, salt=0):
        return torch.tensor(
            [[1 + (i * 131 + j * 17 + salt) % (vocab - 1) for j in range(t)] for i in range(b)]
        )

    with torch.no_grad():
        if "fwd" in cfg:
            b, t = cfg["fwd"]
            x = ids(b, t)
            out["forward"] = b * t / timed(lambda: model(x).logits)
        for b, steps in cfg.get("decode", []):
            x = ids(b, cfg.get("prompt", 16), 7)

            def gen(n):
                return model.generate(
                    x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                    do_sample=False, pad_token_id=0,
                )

            # decode only: the whole call minus a prefill-plus-one-token call
            full, one = timed(lambda: gen(steps)), timed(lambda: gen(1))
            out[f"decode{b}"] = b * (steps - 1) / max(full - one, 1e-9)
    if "lora" in cfg:
        b, t = cfg["lora"]
        r, alpha = 8, 16
        for p in model.parameters():
            p.requires_grad_(False)
        adapters = []
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.v_proj):
                a = torch.nn.Parameter(torch.randn(proj.in_features, r, dtype=dtype) * 0.01)
                bb = torch.nn.Parameter(torch.zeros(r, proj.out_features, dtype=dtype))
                adapters += [a, bb]
                base = proj.forward
                proj.forward = (lambda base, a, bb: lambda z: base(z) + (z @ a @ bb) * (alpha / r))(
                    base, a, bb
                )
        opt = torch.optim.AdamW(adapters, lr=1e-4)
        x = ids(b, t, 3)

        def step():
            opt.zero_grad()
            loss = model(x, labels=x).loss
            loss.backward()
            opt.step()

        out["lora"] = b * t / timed(step)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
