#!/usr/bin/env python3
"""The seed benchmark (/work/shared/seed/000_5b005b635eb5ddc3.txt), reproduced honestly: its 15
configurations (five layer types x three), forward, backward and total, non-causal and causal, at
two levels:

- core: the attention alone, attnjit against PyTorch SDPA's math, flash, efficient and cuDNN
  backends and FlexAttention (torch.compile'd, Triton), each where it supports the shape;
- layer: the seed's five layers, x [B, S, hidden] -> projections -> attention -> output
  projection, with the same torch GEMMs (cuBLASLt) for every backend, so only the attention
  differs; the backward computes the gradients of x and of every weight.

All backends run on this GPU in this process, on the same random bf16 inputs, timed the same
way (seed_bench.Timer: CUDA events, warm-up, median). Every backend's output and gradients are
checked against an fp64 reference in the same run; one that fails, or whose time implies more
than the peak measured at the start (an 8192^3 bf16 GEMM), is flagged and never called the
fastest. seed_bench_logic.py holds the rules and the tables (tested without PyTorch by
bench/test_seed_bench_logic.py).

On a GPU host with PyTorch, from the repo root, the portable build present:

    PYTHONPATH=python ATTNJIT_LIBRARY=build/portable/lib/libattnjit_c.so \\
        python3 bench/seed_bench.py                 # 15 configs x causal or not x core, layer
    python3 bench/seed_bench.py --quick                  # smoke test: 3 small configs, 5 reps
    python3 bench/seed_bench.py --level core --causal no --configs mha,gqa-2
    python3 bench/seed_bench.py --render bench/results/DIR   # re-render tables and charts

Writes bench/results/<date>-<card>/ (or --out): tables.md (the seed's tables, ms with TFLOP/s and
% of peak), summary.md (TFLOP/s per configuration and backend; bench/update_readme.py puts it in
README.md), results.json (every number, the checks, why a backend could not run), core*.png and
layer*.png (TFLOP/s per configuration and backend), command.txt. Exit status 1 when attnjit
failed a check or raised anything but "unsupported".
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import seed_bench_logic as logic  # noqa: E402

torch = F = None  # imported in main(), so that --render and --help work without PyTorch

DEVICE = "cuda"  # inputs' device (the layer and reference code also runs on "cpu")
REF_CHUNK_BYTES = 1 << 30  # the reference's score tensors per head chunk (3 of them live)
L2_FLUSH_BYTES = 256 << 20


# ---- attnjit: the one adapter -------------------------------------------------------------------

def attnjit_attend(q, k, v, causal, scale, qkv=None):
    """attnjit through its Python module (python/attnjit, docs/PYTHON.md). q [B, H, S, Dqk], k and
    v [B, Hkv, S, D] (views; GQA/MQA when Hkv < H) -> [B, H, S, Dv], with autograd. `qkv`, when
    given, is the packed [B, S, 3, H, D] tensor q, k and v are slices of (fused QKV), which
    attnjit reads as one buffer."""
    import attnjit
    if qkv is not None:
        return attnjit.attention_packed(qkv, causal=causal, scale=scale).transpose(1, 2)
    return attnjit.attention(q, k, v, causal=causal, scale=scale)


def attnjit_plans():
    """The plans attnjit.attention built in this process (problem, tile config and where it came
    from: default table, tuning database...), for results.json. Reads a private dictionary, so
    any surprise is reported, not raised."""
    try:
        from attnjit import torch_attention
        out = []
        for (kind, _device, problem), plan in list(torch_attention._plans.items()):
            info = plan.info()
            out.append({"plan": kind.__name__, "problem": dataclasses.asdict(problem),
                        "config": info.config, "config_source": info.config_source,
                        "binary_from_cache": info.binary_from_cache,
                        "registers": info.registers_per_thread,
                        "shared_memory_bytes": info.shared_memory_bytes,
                        "local_memory_bytes": info.local_memory_bytes})
        return out
    except Exception as e:  # noqa: BLE001
        return [{"error": f"{type(e).__name__}: {e}"}]


def load_attnjit():
    try:
        import attnjit
    except ImportError:
        sys.path.insert(0, os.path.join(REPO, "python"))
        try:
            import attnjit
        except Exception as e:  # noqa: BLE001
            return None, f"import attnjit failed: {type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001
        return None, f"import attnjit failed: {type(e).__name__}: {e}"
    return attnjit, None


# ---- The other backends -------------------------------------------------------------------------

def sdpa_backend(which):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backend = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION}[which]

    def attend(q, k, v, causal, scale, qkv=None):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale,
                                                  enable_gqa=k.size(1) != q.size(1))
    return attend


class Flex:
    """FlexAttention compiled once with torch.compile (static shapes: one Triton kernel per
    shape, compiled on the first call, outside the timings). Causal: a block mask per length."""

    def __init__(self):
        import torch._dynamo
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        cfg = torch._dynamo.config
        for name, value in (("cache_size_limit", 1024), ("recompile_limit", 1024),
                            ("accumulated_cache_size_limit", 8192),
                            ("accumulated_recompile_limit", 8192)):
            if hasattr(cfg, name):  # 30 shapes: dynamo's default limit (8) would fall to eager
                setattr(cfg, name, value)
        # The timer replays one backward with retain_graph=True; AOTAutograd's donated buffers
        # forbid that ("compiled with non-empty donated buffers which requires ...
        # retain_graph=False"), so they are off for the compiled FlexAttention.
        import torch._functorch.config as functorch_config
        if hasattr(functorch_config, "donated_buffer"):
            functorch_config.donated_buffer = False
        self.fn = torch.compile(flex_attention, dynamic=False)
        self.create_block_mask = create_block_mask
        self.masks = {}

    def __call__(self, q, k, v, causal, scale, qkv=None):
        mask = None
        if causal:
            key = (q.size(2), k.size(2), str(q.device))
            mask = self.masks.get(key)
            if mask is None:
                mask = self.create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None,
                                              q.size(2), k.size(2), device=q.device)
                self.masks[key] = mask
        return self.fn(q, k, v, block_mask=mask, scale=scale, enable_gqa=k.size(1) != q.size(1))


def load_backends(wanted):
    """name -> (attend, None) or (None, why it cannot run at all)."""
    out = {}
    for name in wanted:
        try:
            if name == "attnjit":
                mod, err = load_attnjit()
                out[name] = (attnjit_attend, None) if mod else (None, err)
            elif name == "flex":
                out[name] = (Flex(), None)
            else:
                out[name] = (sdpa_backend(name), None)
        except Exception as e:  # noqa: BLE001
            out[name] = (None, f"{type(e).__name__}: {e}")
    return out


# ---- Timing ------------------------------------------------------------------------------------

class Timer:
    """One way of timing for everything: `warmup` calls, then `reps` calls each between two CUDA
    events, median. Before each call a 256 MiB memset evicts L2 (outside the events). Calls are
    enqueued in chunks behind a GPU sleep long enough for the CPU to queue the whole chunk, so
    the events see the GPU's time and not Python's launch overhead; a chunk whose sleep ran out
    before the CPU was done is retried with a longer sleep, and `queued` says whether every
    chunk made it."""
    CHUNK = 10

    def __init__(self, warmup, reps, flush_l2=True):
        self.warmup, self.reps = max(2, warmup), max(1, reps)
        self.flush = (torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device="cuda")
                      if flush_l2 else None)
        self.cycles_per_ms = self._calibrate()
        self.peak_tflops = None  # set once measured; stored in every entry

    @staticmethod
    def _calibrate():
        if not hasattr(torch.cuda, "_sleep"):
            return None
        start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        torch.cuda._sleep(1_000_000)
        start.record()
        torch.cuda._sleep(20_000_000)
        end.record()
        end.synchronize()
        return 20_000_000 / max(start.elapsed_time(end), 1e-3)

    def _chunk(self, fn, n, sleep_ms):
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        marker = None
        if self.cycles_per_ms:
            torch.cuda._sleep(int(min(sleep_ms, 2000.0) * self.cycles_per_ms))
            marker = torch.cuda.Event()
            marker.record()
        for i in range(n):
            if self.flush is not None:
                self.flush.zero_()
            starts[i].record()
            fn()
            ends[i].record()
        queued = marker is not None and not marker.query()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) for s, e in zip(starts, ends)], queued

    def measure(self, fn):
        cpu = []
        for _ in range(self.warmup):
            t0 = time.perf_counter()
            fn()
            cpu.append(time.perf_counter() - t0)
        torch.cuda.synchronize()
        cpu_ms = min(cpu[1:]) * 1e3  # enqueue time of one call (the first may synchronize)
        times, queued_all = [], True
        while len(times) < self.reps:
            n = min(self.CHUNK, self.reps - len(times))
            sleep_ms = 2.0 * n * cpu_ms + 1.0
            for _ in range(2):  # one retry with a 4x sleep, then take what came
                chunk, queued = self._chunk(fn, n, sleep_ms)
                if queued or self.cycles_per_ms is None:
                    break
                sleep_ms *= 4
            queued_all = queued_all and queued
            times += chunk
        times.sort()
        return {"median_ms": statistics.median(times), "min_ms": times[0], "max_ms": times[-1],
                "p10_ms": times[len(times) // 10], "p90_ms": times[(9 * len(times)) // 10],
                "reps": len(times), "queued": queued_all, "cpu_enqueue_ms": cpu_ms}


def measure_peak(timer):
    n = 8192
    gen = torch.Generator(device="cuda").manual_seed(1)
    a, b = (torch.randn(n, n, generator=gen, device="cuda").to(torch.bfloat16) for _ in range(2))
    t = timer.measure(lambda: torch.matmul(a, b))
    work = 2.0 * n ** 3
    return {"what": "8192^3 bf16 torch.matmul through cuBLASLt, fastest of the timed calls",
            "tflops": work / (t["min_ms"] * 1e-3) / 1e12,
            "median_tflops": work / (t["median_ms"] * 1e-3) / 1e12, "times": t}


# ---- Inputs and layers -------------------------------------------------------------------------

def randn(gen, *shape, scale=1.0):
    x = torch.randn(*shape, generator=gen, device=DEVICE, dtype=torch.float32)
    return (x * scale if scale != 1.0 else x).to(torch.bfloat16)


def core_inputs(cfg, gen):
    """The core's leaf tensors, laid out as the layer's projections lay them out (so compiled
    kernels and strides are the same at both levels), and dO ([B, S, H, Dv] storage)."""
    b, s, h, kv, d = cfg.batch, cfg.seqlen, cfg.heads, cfg.kv_heads, cfg.head_dim
    if cfg.kind == "mhsa":
        stores = [randn(gen, b, s, 3, h, d)]
    elif cfg.kind == "mla" and cfg.rope == 0:
        stores = [randn(gen, b, s, h, cfg.dqk), randn(gen, b, s, h, 2 * d)]
    else:
        stores = [randn(gen, b, s, h, cfg.dqk), randn(gen, b, s, kv, cfg.dqk),
                  randn(gen, b, s, kv, cfg.dv)]
    return stores, randn(gen, b, s, h, cfg.dv).transpose(1, 2)


def core_views(cfg, stores):
    """(q, k, v, qkv): [B, H, S, D] views of the core's stores (or of their gradients)."""
    if cfg.kind == "mhsa":
        qkv = stores[0]
        return tuple(qkv[:, :, i].transpose(1, 2) for i in range(3)) + (qkv,)
    if len(stores) == 2:  # MLA: k and v are the halves of the up-projection's output
        d = cfg.head_dim
        kv = stores[1]
        return (stores[0].transpose(1, 2), kv[..., :d].transpose(1, 2),
                kv[..., d:].transpose(1, 2), None)
    return tuple(t.transpose(1, 2) for t in stores) + (None,)


def layer_inputs(cfg, gen):
    """x, then the weights (nn.Linear's init scale, so activations stay near unit variance),
    and dY."""
    b, s, hid = cfg.batch, cfg.seqlen, cfg.hidden
    leaves = [randn(gen, b, s, hid)]
    leaves += [randn(gen, n, k, scale=k ** -0.5) for _, n, k in cfg.weights()]
    return leaves, randn(gen, b, s, hid)


def layer_forward(cfg, leaves, attend, causal, scale):
    """The seed's layers. mhsa: one fused QKV projection; mha: separate Q, K, V; gqa/mqa: K and V
    projections to kv_heads * head_dim; mla: DeepSeek-style latent attention (x -> q latent ->
    per-head q; x -> kv latent -> per-head k and v; with --mla-rope-dim a shared RoPE key from
    the kv down-projection, RoPE itself not applied; RMSNorms on the latents left out, as all
    layers here have no norms or biases); then attention and the output projection."""
    x, ws = leaves[0], dict(zip((n for n, _, _ in cfg.weights()), leaves[1:]))
    b, s, _ = x.shape
    h, kv, d = cfg.heads, cfg.kv_heads, cfg.head_dim
    if cfg.kind == "mhsa":
        qkv = F.linear(x, ws["w_qkv"]).view(b, s, 3, h, d)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        o = attend(q, k, v, causal, scale, qkv=qkv)
    elif cfg.kind == "mla":
        q = F.linear(F.linear(x, ws["w_dq"]), ws["w_uq"]).view(b, s, h, cfg.dqk)
        ckv = F.linear(x, ws["w_dkv"])
        latent = ckv[..., :cfg.latent] if cfg.rope else ckv
        kv_heads = F.linear(latent, ws["w_ukv"]).view(b, s, h, 2 * d)
        k, v = kv_heads[..., :d], kv_heads[..., d:]
        if cfg.rope:
            rope = ckv[..., cfg.latent:].unsqueeze(2).expand(b, s, h, cfg.rope)
            k = torch.cat([k, rope], dim=-1)
        o = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal, scale)
    else:
        q = F.linear(x, ws["w_q"]).view(b, s, h, d).transpose(1, 2)
        k = F.linear(x, ws["w_k"]).view(b, s, kv, d).transpose(1, 2)
        v = F.linear(x, ws["w_v"]).view(b, s, kv, d).transpose(1, 2)
        o = attend(q, k, v, causal, scale)
    return F.linear(o.transpose(1, 2).reshape(b, s, h * cfg.dv), ws["w_o"])


def layer_names(cfg):
    return ["y", "dx"] + ["d" + n for n, _, _ in cfg.weights()]


# ---- Reference and check -----------------------------------------------------------------------

def math_core(q, k, v, causal, scale):
    """softmax(scale q k^T) v the plain way; in bf16 every step rounds to bf16 (as the C++
    tests' plain reference), in fp64 it is the reference."""
    s = torch.matmul(q, k.transpose(-2, -1)) * scale
    if causal:
        sq, sk = s.shape[-2:]
        mask = torch.ones(sq, sk, dtype=torch.bool, device=s.device).triu(sk - sq + 1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def math_attend(q, k, v, causal, scale, qkv=None):
    """math_core over chunks of query heads (K/V heads picked per query head, GQA), each
    checkpointed so that only one chunk's scores live at a time, forward or backward."""
    from torch.utils.checkpoint import checkpoint
    b, h, s, _ = q.shape
    group = h // k.size(1)
    per_head = b * s * k.size(2) * q.element_size() * 3
    chunk = max(1, min(h, REF_CHUNK_BYTES // per_head))
    outs = []
    for h0 in range(0, h, chunk):
        idx = torch.arange(h0, min(h, h0 + chunk), device=q.device) // group
        outs.append(checkpoint(math_core, q[:, h0:h0 + chunk], k.index_select(1, idx),
                               v.index_select(1, idx), causal, scale, use_reentrant=False))
    return torch.cat(outs, dim=1)


def max_error(a, ref):
    return float((a.float() - ref).abs().max()) if a.numel() else 0.0


def make_check(ref, plain):
    """name -> (reference as fp32, plain bf16's max error, reference rms)."""
    out = {}
    for name, r in ref.items():
        r32 = r.detach().float()
        out[name] = (r32, max_error(plain[name].detach(), r32),
                     float(r32.pow(2).mean().sqrt()) if r32.numel() else 0.0)
    return out


def compare(tensors, check):
    result = {}
    for name, (ref, plain_error, rms) in check.items():
        a = tensors[name].detach()
        if a.shape != ref.shape:
            result[name] = {"ok": False, "why": f"shape {tuple(a.shape)}, expected "
                                                f"{tuple(ref.shape)}"}
            continue
        result[name] = logic.check_tensor(max_error(a, ref), plain_error, rms,
                                          grad=name not in ("o", "y"),
                                          nans=int(torch.isnan(a).sum()))
    return {"ok": all(t["ok"] for t in result.values()), "tensors": result}


class CoreCase:
    """The attention alone; the reference on a slice of batches and heads (subset_heads)."""

    def __init__(self, cfg, causal, gen, max_kv):
        self.cfg, self.causal, self.scale = cfg, causal, cfg.dqk ** -0.5
        self.stores, self.dout = core_inputs(cfg, gen)
        batches, kvs, qs = logic.subset_heads(cfg.batch, cfg.heads, cfg.kv_heads, max_kv)
        self.subset = {"batches": batches, "kv_heads": kvs, "query_heads": qs}
        dev = self.dout.device
        self.ib, self.ikv, self.iq = (torch.tensor(x, device=dev) for x in (batches, kvs, qs))

    def pick(self, t, heads):
        return t.index_select(0, self.ib).index_select(1, heads)

    def slices(self, o, q_kv_v):
        dq, dk, dv = q_kv_v
        return {"o": self.pick(o, self.iq), "dq": self.pick(dq, self.iq),
                "dk": self.pick(dk, self.ikv), "dv": self.pick(dv, self.ikv)}

    def reference(self):
        q, k, v, _ = core_views(self.cfg, self.stores)
        sub = [self.pick(q, self.iq), self.pick(k, self.ikv), self.pick(v, self.ikv)]
        dout = self.pick(self.dout, self.iq)
        results = []
        for dtype in (torch.float64, torch.bfloat16):
            leaves = [t.detach().to(dtype).contiguous().requires_grad_() for t in sub]
            o = math_attend(*leaves, self.causal, self.scale)
            grads = torch.autograd.grad(o, leaves, dout.to(dtype))
            results.append(dict(zip(("o", "dq", "dk", "dv"), (o,) + grads)))
        return make_check(*results)

    def make(self, attend):
        leaves = [s.detach().requires_grad_() for s in self.stores]

        def fwd():
            q, k, v, qkv = core_views(self.cfg, leaves)
            return attend(q, k, v, self.causal, self.scale, qkv=qkv)
        return leaves, fwd

    def outputs(self, o, grads):
        return self.slices(o, core_views(self.cfg, grads)[:3])


class LayerCase:
    """The whole layer; the reference is the same layer in fp64, every output and gradient."""

    def __init__(self, cfg, causal, gen, max_kv):
        self.cfg, self.causal, self.scale = cfg, causal, cfg.dqk ** -0.5
        self.stores, self.dout = layer_inputs(cfg, gen)
        self.subset = "all"

    def reference(self):
        results = []
        for dtype in (torch.float64, torch.bfloat16):
            leaves = [t.detach().to(dtype).requires_grad_() for t in self.stores]
            y = layer_forward(self.cfg, leaves, math_attend, self.causal, self.scale)
            grads = torch.autograd.grad(y, leaves, self.dout.to(dtype))
            results.append(dict(zip(layer_names(self.cfg), (y,) + grads)))
            del leaves, y, grads
        return make_check(*results)

    def make(self, attend):
        leaves = [s.detach().requires_grad_() for s in self.stores]
        return leaves, lambda: layer_forward(self.cfg, leaves, attend, self.causal, self.scale)

    def outputs(self, y, grads):
        return dict(zip(layer_names(self.cfg), (y,) + tuple(grads)))


# ---- One backend on one case -------------------------------------------------------------------

def run_backend(case, attend, check, timer):
    """Check first (one forward and backward, compared with the reference), then time forward,
    backward (autograd.grad on a kept graph) and total (forward + backward)."""
    rec = {"status": "ok"}
    first_call = []  # the warnings of the first call: SDPA says there why it has no kernel
    try:
        _check_and_time(case, attend, check, timer, rec, first_call)
    except Exception as e:  # noqa: BLE001  (a backend that cannot run the shape, or crashes)
        status, reason = logic.classify_error(type(e).__name__, str(e), first_call)
        rec.update(status=status, reason=reason)
    torch.cuda.empty_cache()
    return rec


def _check_and_time(case, attend, check, timer, rec, first_call):
    leaves, fwd = case.make(attend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            t0 = time.perf_counter()
            out = fwd()
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            grads = torch.autograd.grad(out, leaves, case.dout)
            torch.cuda.synchronize()
        except Exception:
            first_call += [str(w.message) for w in caught]
            raise
    rec["first_call_s"] = {"fwd": t1 - t0, "bwd": time.perf_counter() - t1}
    rec["check"] = compare(case.outputs(out, grads), check)
    del out, grads
    rec["times"] = {"fwd": timer.measure(fwd)}
    kept = [fwd()]  # one graph, run backward again and again
    rec["times"]["bwd"] = timer.measure(
        lambda: torch.autograd.grad(kept[0], leaves, case.dout, retain_graph=True))
    kept.clear()
    rec["times"]["total"] = timer.measure(lambda: torch.autograd.grad(fwd(), leaves, case.dout))


def run_case(cfg, level, causal, backends, timer, args, seed):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    t0 = time.perf_counter()
    case = (CoreCase if level == "core" else LayerCase)(cfg, causal, gen, args.ref_kv_heads)
    check = case.reference()
    torch.cuda.empty_cache()
    entry = {"level": level, "kind": cfg.kind, "index": cfg.index, "causal": causal,
             "config": cfg.as_dict(), "seed": seed, "peak_tflops": timer.peak_tflops,
             "reference_subset": case.subset,
             "reference_s": time.perf_counter() - t0,
             "flops": {p: logic.flops(cfg, causal, level, p) for p in logic.PASSES},
             "backends": {}}
    for name, (attend, why) in backends.items():
        if attend is None:
            entry["backends"][name] = {"status": "unsupported", "reason": why}
        else:
            entry["backends"][name] = run_backend(case, attend, check, timer)
    del case, check
    torch.cuda.empty_cache()
    return entry


# ---- Output ------------------------------------------------------------------------------------

def write_outputs(doc, out_dir, charts=True):
    os.makedirs(out_dir, exist_ok=True)
    peak = doc["meta"].get("peak", {}).get("tflops")
    for e in doc["results"]:
        logic.annotate(e, peak)  # each entry's own run's peak where it has one
    for name, text in (("tables.md", logic.render_tables(doc)),
                       ("summary.md", logic.render_summary(doc)),
                       ("command.txt", doc["meta"].get("command", "?") + "\n")):
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
    if charts:
        try:
            import seed_bench_charts
            doc["meta"]["charts"] = seed_bench_charts.render(doc, out_dir)
        except Exception as e:  # noqa: BLE001  (no matplotlib: tables and JSON still stand)
            doc["meta"]["charts"] = f"not drawn: {type(e).__name__}: {e}"
            print(f"seed_bench: charts {doc['meta']['charts']}", file=sys.stderr)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(logic.jsonable(doc), f, indent=1)


def command_line(argv):
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in
                   ("PYTHONPATH", "ATTNJIT_LIBRARY", "ATTNJIT_CACHE_DB") if k in os.environ)
    script = os.path.relpath(os.path.abspath(__file__))
    cmd = " ".join(shlex.quote(a) for a in ["python3", script] + list(argv))
    return f"{env} {cmd}".strip()


def nvidia_smi():
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,"
                            "clocks.max.sm,power.draw,power.limit,temperature.gpu",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        return r.stdout.strip() or r.stderr.strip()
    except Exception as e:  # noqa: BLE001
        return f"nvidia-smi: {e}"


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  (metadata: a missing field is no reason to stop)
        return f"unknown ({type(e).__name__}: {e})"


def gather_meta(args, argv, attnjit_mod):
    props = torch.cuda.get_device_properties(0)
    smi = nvidia_smi()
    driver = smi.split(",")[1].strip() if smi.count(",") >= 2 else "?"
    meta = {
        "date": datetime.date.today().isoformat(),
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "card": props.name, "sms": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2 ** 30, 1),
        "compute_capability": f"{props.major}.{props.minor}", "driver": driver,
        "nvidia_smi_start": smi, "host": platform.node(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": _try(torch.backends.cudnn.version), "python": platform.python_version(),
        "command": command_line(argv), "argv": list(argv), "dtype": "bf16",
        "timing": {"warmup": max(2, args.warmup), "reps": args.reps, "statistic": "median",
                   "l2_flush": not args.no_flush_l2, "events": "CUDA events around each call",
                   "queued_behind_gpu_sleep": hasattr(torch.cuda, "_sleep")},
        "check": {"reference": "fp64 math on the same inputs (core: batches {0, B-1} and up to "
                               f"{args.ref_kv_heads} KV heads with all their query heads; "
                               "layer: everything)",
                  "plain": "the same math in bf16, every step rounded",
                  "rule": "max|x - ref| <= factor * max|plain - ref| + floor * max(1, rms(ref))",
                  "factor": logic.FACTOR, "floor": logic.FLOOR},
        "flops": "attention 2*B*H*S^2*(Dqk+Dv) forward (half causal), backward 2.5x; layers "
                 "add 2*M*N*K per GEMM forward, 2x that backward",
        "layers": {"gemms": "torch.nn.functional.linear, no bias, the same for every backend",
                   "mla": f"q latent = {logic.Q_LATENT_PER_KV_LATENT} x kv latent (DeepSeek-V2/V3 "
                          f"1536:512), rope dims {args.mla_rope_dim}"},
    }
    meta["blas"] = str(_try(torch.backends.cuda.preferred_blas_library))
    meta["math_sdp_bf16_reduction"] = _try(
        torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed)
    meta["triton"] = _try(lambda: __import__("triton").__version__)
    if attnjit_mod is not None:
        meta["attnjit"] = attnjit_mod.__version__
        meta["attnjit_library"] = attnjit_mod.library_path
        meta["attnjit_cache"] = _try(lambda: list(attnjit_mod.cache_location()))
    return meta


# ---- Main --------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--level", choices=["core", "layer", "both"], default="both")
    ap.add_argument("--causal", choices=["both", "no", "yes"], default="both")
    ap.add_argument("--configs", default="all",
                    help="comma-separated: mha-1, gqa (its three), all (default)")
    ap.add_argument("--backends", default="all",
                    help="comma-separated of " + ", ".join(n for n, _ in logic.BACKENDS))
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: {', '.join(logic.QUICK_KEYS)}, 5 reps, 2 warm-up")
    ap.add_argument("--reps", type=int, help="timed calls per pass (default 25; --quick 5)")
    ap.add_argument("--warmup", type=int, help="warm-up calls per pass (default 5; --quick 2)")
    ap.add_argument("--out", help="results folder (default OUT_ROOT/<date>-<card>[-quick])")
    ap.add_argument("--out-root", default=os.path.join(HERE, "results"))
    ap.add_argument("--seed", type=int, default=0, help="inputs' seed (default 0)")
    ap.add_argument("--mla-rope-dim", type=int, default=0,
                    help="DeepSeek's decoupled RoPE dims on MLA's q and k (64: core 192/128)")
    ap.add_argument("--ref-kv-heads", type=int, default=4,
                    help="core check: KV heads (with their query heads) the fp64 reference covers")
    ap.add_argument("--append", action="store_true",
                    help="merge into the results folder's results.json: keep its entries this "
                         "run does not redo (e.g. --causal no, then --causal yes --append)")
    ap.add_argument("--no-flush-l2", action="store_true")
    ap.add_argument("--no-charts", action="store_true")
    ap.add_argument("--render", metavar="DIR",
                    help="re-render DIR's tables, summary and charts from its results.json")
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = 5 if args.quick else 25
    if args.warmup is None:
        args.warmup = 2 if args.quick else 5
    return args


def render_only(out_dir, charts):
    with open(os.path.join(out_dir, "results.json")) as f:
        doc = json.load(f)
    write_outputs(doc, out_dir, charts)
    print(logic.render_summary(doc))
    return 0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def case_line(entry):
    parts = []
    for name, b in entry["backends"].items():
        if b.get("status") != "ok":
            why = f" ({b.get('reason', '')[:160]})" if b.get("status") == "error" else ""
            parts.append(f"{name} {b.get('status')}{why}")
            continue
        tf = b.get("tflops", {})
        flags = " " + ",".join(b["flags"]) if b.get("flags") else ""
        fwd, bwd = (logic.tf_text(tf.get(p, 0)) for p in ("fwd", "bwd"))
        parts.append(f"{name} {fwd}/{bwd}{flags}")
    return " | ".join(parts)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        return render_only(args.render, not args.no_charts)

    global torch, F
    import torch
    import torch.nn.functional as F
    if not torch.cuda.is_available():
        log("seed_bench: PyTorch sees no CUDA GPU")
        return 2
    wall0 = time.perf_counter()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch.backends.cuda.preferred_blas_library("cublaslt")  # every GEMM through cuBLASLt
    except Exception as e:  # noqa: BLE001
        log(f"seed_bench: could not prefer cuBLASLt: {e}")

    all_configs = logic.seed_configs(rope=args.mla_rope_dim)
    configs = logic.select_configs(all_configs, None if args.configs == "all" else args.configs,
                                   args.quick)
    names = [n for n, _ in logic.BACKENDS]
    wanted = names if args.backends == "all" else [b.strip() for b in args.backends.split(",")]
    unknown = [b for b in wanted if b not in names]
    if unknown:
        log(f"seed_bench: unknown backends {unknown}; known: {names}")
        return 2
    levels = list(logic.LEVELS) if args.level == "both" else [args.level]
    masks = {"both": [False, True], "no": [False], "yes": [True]}[args.causal]

    backends = load_backends([n for n in names if n in wanted])
    attnjit_mod = load_attnjit()[0] if "attnjit" in backends else None
    doc = {"schema": 1, "meta": gather_meta(args, argv, attnjit_mod),
           "backends": [[n, label] for n, label in logic.BACKENDS if n in backends],
           "results": []}
    meta = doc["meta"]
    name = logic.results_dir_name(meta["card"], datetime.date.today())
    out_dir = args.out or os.path.join(args.out_root, name + ("-quick" if args.quick else ""))
    timer = Timer(args.warmup, args.reps, flush_l2=not args.no_flush_l2)
    meta["peak"] = measure_peak(timer)
    timer.peak_tflops = meta["peak"]["tflops"]
    old_doc = None
    if args.append and os.path.exists(os.path.join(out_dir, "results.json")):
        with open(os.path.join(out_dir, "results.json")) as f:
            old_doc = json.load(f)
    log(f"seed_bench: {meta['card']}, torch {meta['torch']}, peak {meta['peak']['tflops']:.0f} "
        f"TFLOP/s (median {meta['peak']['median_tflops']:.0f}); writing {out_dir}")
    for name, (attend, why) in backends.items():
        if attend is None:
            log(f"seed_bench: {name} cannot run: {why}")

    total = len(configs) * len(masks) * len(levels)
    done = 0
    ours_failed = "attnjit" in backends and backends["attnjit"][0] is None
    for cfg in configs:
        for causal in masks:
            for level in levels:  # core then layer: the layer reuses the core's compiled kernels
                done += 1
                seed = args.seed * 1000 + all_configs.index(cfg) * 2 + (level == "layer")
                entry = run_case(cfg, level, causal, backends, timer, args, seed)
                logic.annotate(entry, meta["peak"]["tflops"])
                doc["results"].append(entry)
                part = logic.merge_runs(old_doc, dict(doc, results=list(doc["results"]),
                                                      meta=dict(meta))) if old_doc else doc
                ours = entry["backends"].get("attnjit", {})
                if ours.get("status") == "error" or (ours.get("status") == "ok" and
                                                     not ours.get("check", {}).get("ok")):
                    ours_failed = True
                log(f"[{done}/{total} {time.perf_counter() - wall0:5.0f}s] {level} {cfg.key}"
                    f"{' causal' if causal else ''} (TFLOP/s fwd/bwd): {case_line(entry)}")
                os.makedirs(out_dir, exist_ok=True)
                with open(os.path.join(out_dir, "results.json"), "w") as f:
                    json.dump(logic.jsonable(part), f, indent=1)  # so far, in case of a crash

    meta["peak_end"] = measure_peak(timer)
    meta["attnjit_plans"] = attnjit_plans() if attnjit_mod is not None else []
    meta["nvidia_smi_end"] = nvidia_smi()
    meta["wall_s"] = time.perf_counter() - wall0
    meta["first_call_s"] = sum(sum((b.get("first_call_s") or {}).values())
                               for e in doc["results"] for b in e["backends"].values())
    meta["reference_s"] = sum(e["reference_s"] for e in doc["results"])
    if old_doc:
        doc = logic.merge_runs(old_doc, doc)
    write_outputs(doc, out_dir, charts=not args.no_charts)
    print(logic.render_summary(doc))
    log(f"seed_bench: {meta['wall_s']:.0f} s ({meta['first_call_s']:.0f} s first calls, "
        f"{meta['reference_s']:.0f} s references); results in {out_dir}")
    if ours_failed:
        log("seed_bench: attnjit failed a check or raised; see results.json")
    return 1 if ours_failed else 0


if __name__ == "__main__":
    sys.exit(main())
