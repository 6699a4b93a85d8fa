#!/usr/bin/env python3
"""Attention-core timings for the seed benchmark's 15 configurations (plus MLA 192/128), attnjit
against PyTorch SDPA's flash, efficient and cuDNN backends, on one GPU in one run.

Run on a GPU host from the repo root with the portable build carried over:
    python3 bench/seed_core.py [--attnjit build/portable/bin/attnjit] [--causal] [--json out.json]

Every backend is timed the same way: CUDA events around each run after warm-up, median of the
runs. attnjit's numbers come from `attnjit run`, which also checks its output against an fp64
reference before timing. FLOPs: 4*B*H*Sq*Sk*(Dqk+Dv)/2 forward (half when causal), 2.5x backward.
"""
import argparse
import json
import re
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# (type, B, S, H, KV, Dqk, Dv) — shapes of ../shared/seed/; MLA's core is 128/128 there, and
# 192/128 is DeepSeek-V3's training shape.
CONFIGS = [
    ("mhsa", 2, 2048, 12, 12, 64, 64), ("mhsa", 1, 4096, 32, 32, 128, 128),
    ("mhsa", 1, 2048, 40, 40, 128, 128),
    ("mha", 2, 2048, 12, 12, 64, 64), ("mha", 1, 4096, 32, 32, 128, 128),
    ("mha", 1, 2048, 40, 40, 128, 128),
    ("gqa", 2, 2048, 32, 8, 64, 64), ("gqa", 1, 4096, 32, 8, 128, 128),
    ("gqa", 1, 2048, 40, 8, 128, 128),
    ("mqa", 2, 2048, 16, 1, 64, 64), ("mqa", 1, 4096, 32, 1, 128, 128),
    ("mqa", 1, 2048, 40, 1, 128, 128),
    ("mla", 2, 2048, 32, 32, 128, 128), ("mla", 1, 4096, 64, 64, 128, 128),
    ("mla", 1, 2048, 128, 128, 128, 128),
    ("mla", 1, 4096, 64, 64, 192, 128),
]
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION}


def flops(b, s, h, dqk, dv, causal, backward):
    f = 2.0 * b * h * s * s * (dqk + dv)
    if causal:
        f /= 2
    return f * 2.5 if backward else f


def median_ms(fn, warmup=5, runs=20):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def torch_times(cfg, causal, backend):
    _, b, s, h, kv, dqk, dv = cfg
    dev, dt = "cuda", torch.bfloat16
    # [B, S, H, D] storage, viewed as SDPA's [B, H, S, D], as FlashAttention callers do.
    q = torch.randn(b, s, h, dqk, device=dev, dtype=dt).transpose(1, 2).requires_grad_()
    k = torch.randn(b, s, kv, dqk, device=dev, dtype=dt).transpose(1, 2).requires_grad_()
    v = torch.randn(b, s, kv, dv, device=dev, dtype=dt).transpose(1, 2).requires_grad_()
    gqa = kv != h
    with sdpa_kernel(BACKENDS[backend]):
        def fwd():
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
        out = fwd()
        dout = torch.randn_like(out)
        fwd_ms = median_ms(fwd)
        bwd_ms = median_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
    return fwd_ms, bwd_ms


def attnjit_tflops(binary, cfg, causal, pass_):
    kind, b, s, h, kv, dqk, dv = cfg
    cmd = [binary, "run", f"--pass={pass_}", f"--batch={b}", f"--seqlen={s}", f"--heads={h}",
           f"--kv-heads={kv}", f"--head-dim={dqk}", f"--head-dim-v={dv}", "--check-rows=128"]
    if kind == "mhsa":
        cmd.append("--layout=packed")
    if causal:
        cmd.append("--causal")
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"^throughput\s+([\d.]+) TFLOP/s", r.stdout, re.M)
    if r.returncode != 0 or not m:
        return None, (r.stdout + r.stderr).strip().splitlines()[-1:]
    return float(m.group(1)), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnjit", default="build/portable/bin/attnjit")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for cfg in CONFIGS:
        kind, b, s, h, kv, dqk, dv = cfg
        row = {"type": kind, "B": b, "S": s, "H": h, "KV": kv, "Dqk": dqk, "Dv": dv,
               "causal": args.causal}
        for backend in BACKENDS:
            try:
                f_ms, b_ms = torch_times(cfg, args.causal, backend)
                row[backend] = {"fwd": flops(b, s, h, dqk, dv, args.causal, False) / f_ms / 1e9,
                                "bwd": flops(b, s, h, dqk, dv, args.causal, True) / b_ms / 1e9}
            except Exception as e:  # a backend that does not support the shape
                row[backend] = {"error": str(e).splitlines()[0][:120]}
            torch.cuda.empty_cache()
        row["attnjit"] = {}
        for pass_ in ("fwd", "bwd"):
            tf, err = attnjit_tflops(args.attnjit, cfg, args.causal, pass_)
            row["attnjit"][pass_] = tf
            if err:
                row["attnjit"][pass_ + "_error"] = err
        rows.append(row)
        print(json.dumps(row), flush=True)

    def cell(r, name, p):
        v = r[name].get(p) if isinstance(r[name], dict) else None
        return f"{v:.0f}" if isinstance(v, float) else "—"
    print(f"\n| type | B, S, H, KV, D | attnjit fwd/bwd | flash | cuDNN | efficient |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        d = f"{r['Dqk']}" if r["Dqk"] == r["Dv"] else f"{r['Dqk']}/{r['Dv']}"
        print(f"| {r['type']} | {r['B']}, {r['S']}, {r['H']}, {r['KV']}, {d} | "
              f"{cell(r, 'attnjit', 'fwd')} / {cell(r, 'attnjit', 'bwd')} | "
              f"{cell(r, 'flash', 'fwd')} / {cell(r, 'flash', 'bwd')} | "
              f"{cell(r, 'cudnn', 'fwd')} / {cell(r, 'cudnn', 'bwd')} | "
              f"{cell(r, 'efficient', 'fwd')} / {cell(r, 'efficient', 'bwd')} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
