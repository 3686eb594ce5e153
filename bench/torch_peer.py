#!/usr/bin/env python3
"""PyTorch CPU peer for `deno task bench`: the same-shape transformer in plain torch.

Builds a GPT-2 (learned positions, LayerNorm, tanh-GELU, tied head) or Llama-family
(RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention, untied head) model with random
weights (seeded), and measures on the CPU with 2 torch threads:
  - forward:  tokens/s of a no-grad forward over [batch, seq] to full-vocabulary logits;
  - decode:   tokens/s of greedy KV-cache decoding, batch x new_tokens steps after a
              prefill of a prompt of max(1, seq // 2) tokens (the prefill is timed apart and
              reported as prefill_tok_s; the cache is preallocated, as a static cache);
  - train:    tokens/s of one step of next-token cross-entropy over [batch, seq]
              (forward + backward + AdamW, lr 1e-4, weight decay 0.01).
Each measure is timed by the rule of bench/timing.ts: warm-up runs (at least one, more for a
short measure), then the median of at least `steps` timed repeats (more for a short one).

Usage:
    python3 bench/torch_peer.py '{"arch": "gpt2", "n_layer": 12, "d_model": 768, ...}'
    python3 bench/torch_peer.py config.json
Config keys: arch (gpt2|llama), n_layer, d_model, n_head, n_kv_head (llama; default
n_head), d_ff (default 4 * d_model), vocab, n_ctx, batch, seq, new_tokens, steps (timed
repeats, default 3; alias `repeats`), seed (default 0). Per-measure shapes may replace
batch/seq: fwd_batch, fwd_seq, gen_batch, gen_prompt (default max(1, seq // 2)),
train_batch, train_seq (the form bench/run.ts sends). Prints one JSON line: the measures
(forward_tok_s, prefill_tok_s, decode_tok_s, train_tok_s), torch.__version__ (as `torch`
and `torch_version`), the BLAS library torch loaded (whether it is OpenBLAS), thread
settings and the resolved config.

OMP_WAIT_POLICY=PASSIVE is set when unset (PERF-NOTES: OpenMP threads spinning beside
OpenBLAS's own on 2 cores collapse decode speed ~5x); it must precede `import torch`.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
nn, F = torch.nn, torch.nn.functional
REQUIRED = ["arch", "n_layer", "d_model", "n_head", "vocab", "n_ctx", "new_tokens"]


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.llama = c["arch"] == "llama"
        d, self.nh, self.nkv = c["d_model"], c["n_head"], c["n_kv_head"]
        self.hd = d // self.nh
        norm = RMSNorm if self.llama else nn.LayerNorm
        self.ln1, self.ln2 = norm(d), norm(d)
        bias = not self.llama
        self.qkv = nn.Linear(d, (self.nh + 2 * self.nkv) * self.hd, bias=bias)
        self.o = nn.Linear(d, d, bias=bias)
        self.up = nn.Linear(d, c["d_ff"] * (2 if self.llama else 1), bias=bias)  # gate|up
        self.down = nn.Linear(c["d_ff"], d, bias=bias)

    def forward(self, x, rope, cache, start):
        b, t, _ = x.shape  # [B, T, d]
        q, k, v = self.qkv(self.ln1(x)).split(
            [self.nh * self.hd, self.nkv * self.hd, self.nkv * self.hd], dim=-1)
        q = q.view(b, t, self.nh, self.hd).transpose(1, 2)  # [B, H, T, hd]
        k = k.view(b, t, self.nkv, self.hd).transpose(1, 2)  # [B, KV, T, hd]
        v = v.view(b, t, self.nkv, self.hd).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        if cache is not None:  # preallocated [B, KV, n_ctx, hd] buffers
            cache[0][:, :, start:start + t], cache[1][:, :, start:start + t] = k, v
            k, v = cache[0][:, :, :start + t], cache[1][:, :, :start + t]
        if self.nkv != self.nh:
            k = k.repeat_interleave(self.nh // self.nkv, dim=1)
            v = v.repeat_interleave(self.nh // self.nkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)  # [B, H, T, start + T]
        if t > 1:
            causal = torch.ones(t, start + t, dtype=torch.bool).tril(start)
            s = s.masked_fill(~causal, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.o(a)
        h = self.up(self.ln2(x))
        if self.llama:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")
        return x + self.down(h)


def apply_rope(x, rope):
    cos, sin = rope  # [T, hd] each, rotate-half layout
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c, d = c, c["d_model"]
        self.llama = c["arch"] == "llama"
        self.wte = nn.Embedding(c["vocab"], d)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = RMSNorm(d) if self.llama else nn.LayerNorm(d)
        if self.llama:
            self.head = nn.Linear(d, c["vocab"], bias=False)
            hd = d // c["n_head"]
            inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
            f = torch.arange(c["n_ctx"]).float()[:, None] * inv[None]
            emb = torch.cat((f, f), dim=-1)
            self.register_buffer("cos", emb.cos(), persistent=False)
            self.register_buffer("sin", emb.sin(), persistent=False)
        else:
            self.wpe = nn.Embedding(c["n_ctx"], d)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, caches=None, start=0):
        t = ids.shape[1]
        x = self.wte(ids)  # [B, T, d]
        rope = None
        if self.llama:
            rope = (self.cos[start:start + t], self.sin[start:start + t])
        else:
            x = x + self.wpe.weight[start:start + t]
        for i, blk in enumerate(self.blocks):
            x = blk(x, rope, None if caches is None else caches[i], start)
        x = self.ln_f(x)
        return self.head(x) if self.llama else x @ self.wte.weight.T  # [B, T, vocab]


def timed(fn, repeats, setup=None, warm_seconds=0.5, min_seconds=1.0, max_repeats=50):
    """Median seconds of fn, by the rule of bench/timing.ts: warm up until warm_seconds of
    warm-up runs (1 to 10 runs), then time at least `repeats` runs and, for a short fn,
    enough to fill min_seconds (at most max_repeats). With `setup`, each run calls
    fn(setup()) and times fn alone."""

    def run():
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg) if setup else fn()
        return time.perf_counter() - t0

    warm, i = 0.0, 0
    while i < 10 and (i == 0 or warm < warm_seconds):
        warm += run()
        i += 1
    times, total = [], 0.0
    while len(times) < max(repeats, max_repeats) and (len(times) < repeats or total < min_seconds):
        times.append(run())
        total += times[-1]
    times.sort()
    return times[len(times) // 2]


def blas_library():
    """The BLAS shared object torch actually loaded (Debian links the generic libblas.so.3,
    which update-alternatives points at OpenBLAS when it is installed)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    libs = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return sorted(os.path.realpath(p) for p in libs) or None


def load_config(arg):
    text = Path(arg).read_text() if not arg.lstrip().startswith("{") else arg
    try:
        c = json.loads(text)
    except json.JSONDecodeError as e:
        sys.exit(f"error: config line {e.lineno}: invalid JSON ({e.msg})")
    missing = [k for k in REQUIRED if k not in c]
    if missing:
        sys.exit(f"error: config lacks {missing}; required keys: {REQUIRED}")
    if c["arch"] not in ("gpt2", "llama"):
        sys.exit(f"error: config arch is {c['arch']!r}; expected 'gpt2' or 'llama'")
    c.setdefault("n_kv_head", c["n_head"])
    c.setdefault("d_ff", 4 * c["d_model"])
    c.setdefault("steps", c.get("repeats", 3))
    batch, seq = c.get("batch"), c.get("seq")
    c.setdefault("fwd_batch", batch)
    c.setdefault("fwd_seq", seq)
    c.setdefault("gen_batch", batch)
    c.setdefault("gen_prompt", None if seq is None else max(1, seq // 2))
    c.setdefault("train_batch", batch)
    c.setdefault("train_seq", seq)
    shapes = ["fwd_batch", "fwd_seq", "gen_batch", "gen_prompt", "train_batch", "train_seq"]
    unset = [k for k in shapes if not isinstance(c[k], int) or c[k] < 1]
    if unset:
        sys.exit(f"error: config lacks positive integers for {unset}: give batch and seq, or "
                 "fwd_batch, fwd_seq, gen_batch, gen_prompt, train_batch, train_seq")
    if c["arch"] == "gpt2":
        c["n_kv_head"] = c["n_head"]
    if c["d_model"] % c["n_head"] or c["n_head"] % c["n_kv_head"]:
        sys.exit("error: config needs d_model % n_head == 0 and n_head % n_kv_head == 0")
    if max(c["fwd_seq"], c["train_seq"], c["gen_prompt"] + c["new_tokens"]) > c["n_ctx"]:
        sys.exit("error: config needs fwd_seq, train_seq and gen_prompt + new_tokens <= n_ctx")
    return c


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torch_peer.py CONFIG_JSON_OR_PATH")
    c = load_config(sys.argv[1])
    torch.set_num_threads(2)
    torch.manual_seed(c.get("seed", 0))
    model = Model(c)
    reps = c["steps"]
    out = {"engine": "torch", "torch": torch.__version__, "torch_version": torch.__version__,
           "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
           "params": sum(p.numel() for p in model.parameters())}
    blas = blas_library()
    out["blas_library"] = blas
    out["openblas"] = any("openblas" in p.lower() for p in blas or [])

    def tokens(b, t):
        return torch.randint(0, c["vocab"], (b, t))

    model.eval()
    with torch.no_grad():
        ids = tokens(c["fwd_batch"], c["fwd_seq"])
        out["forward_tok_s"] = round(ids.numel() / timed(lambda: model(ids), reps), 1)
        prompt, gb = tokens(c["gen_batch"], c["gen_prompt"]), c["gen_batch"]
        hd = c["d_model"] // c["n_head"]

        def prefill():
            shape = (gb, c["n_kv_head"], c["n_ctx"], hd)
            caches = [(torch.empty(shape), torch.empty(shape)) for _ in range(c["n_layer"])]
            nxt = model(prompt, caches, 0)[:, -1].argmax(-1, keepdim=True)  # [B, 1]
            return caches, nxt

        def decode(state):
            caches, nxt = state
            for i in range(c["new_tokens"]):
                nxt = model(nxt, caches, prompt.shape[1] + i)[:, -1].argmax(-1, keepdim=True)

        out["prefill_tok_s"] = round(prompt.numel() / timed(prefill, reps), 1)
        out["decode_tok_s"] = round(gb * c["new_tokens"] / timed(decode, reps, setup=prefill), 1)

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids = tokens(c["train_batch"], c["train_seq"])

    def train_step():
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab"]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out["train_tok_s"] = round(ids.numel() / timed(train_step, reps), 1)
    out["config"] = c
    print(json.dumps(out))


if __name__ == "__main__":
    main()
