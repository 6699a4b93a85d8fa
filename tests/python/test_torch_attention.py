#!/usr/bin/env python3
"""attnjit.attention / attention_packed on a GPU against PyTorch's math backend: the output and
every gradient, on random shapes of each attention type (MHA, GQA, MQA, packed QKV, Sq != Sk,
lower-right causal, MLA 192/128) in bf16 and fp16, with inputs in SDPA's [B, H, S, D] layout and
as [B, S, H, D] storage viewed that way.

The rule, per tensor: |attnjit - fp64| <= factor * |plain - fp64| + floor, where fp64 is the math
backend on the same (rounded) inputs in float64 and plain an ordinary implementation in the inputs'
own precision (plain_attention): attnjit may be at most a small factor worse than that (2x forward,
3x gradients, as the C++ tests).

On a GPU host with PyTorch, from the repo root (scripts/gpu_check.sh's `python` section):

    PYTHONPATH=python ATTNJIT_LIBRARY=build/portable/lib/libattnjit_c.so \\
        python3 tests/python/test_torch_attention.py

ATTNJIT_TEST_SEED=N replays a run (the seed is printed). Without PyTorch or a CUDA GPU it prints
why and skips (exit 0). Runs under pytest too.
"""
import concurrent.futures
import math
import os
import random
import sys

os.environ.setdefault("ATTNJIT_CACHE_DB", "off")  # never the user's database unless asked
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import attnjit  # noqa: E402  (the library must load even where the test then skips)


def _skip_reason():
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA GPU"
    return None


SKIP = _skip_reason()
if SKIP and "pytest" in sys.modules:
    import pytest
    pytest.skip(SKIP, allow_module_level=True)

if not SKIP:
    import torch
    import torch.nn.functional as F

SEED = int(os.environ.get("ATTNJIT_TEST_SEED", random.SystemRandom().randrange(2**31)))
FLOORS = {"bf16": (2e-3, 3e-3), "fp16": (1e-3, 1e-3)}  # (forward, gradients), as the C++ tests


class Case:
    """One problem: kind, dtype, B, H, Hkv, Sq, Sk, Dqk, Dv, causal, scale, and how q, k, v lie in
    memory ('bhsd' contiguous, 'bshd' storage viewed as [B, H, S, D], or 'packed')."""

    def __init__(self, kind, dtype, batch, heads, kv_heads, sq, sk, dqk, dv, causal, scale,
                 layout):
        self.kind, self.dtype, self.batch = kind, dtype, batch
        self.heads, self.kv_heads = heads, kv_heads
        self.sq, self.sk, self.dqk, self.dv = sq, sk, dqk, dv
        self.causal, self.scale, self.layout = causal, scale, layout

    def __str__(self):
        causal = {False: "", True: " causal", "lower_right": " causal=lower_right"}[self.causal]
        scale = "" if self.scale is None else f" scale={self.scale:.3g}"
        return (f"{self.kind} {self.dtype} B={self.batch} H={self.heads}/{self.kv_heads} "
                f"Sq={self.sq} Sk={self.sk} d{self.dqk}/{self.dv}{causal}{scale} {self.layout}")


def random_cases(rng):
    def seq():
        return rng.randint(1, 300)
    cases = []
    # (kind, dtype, H, Hkv, Dqk, Dv, causal, layout); shapes and scales drawn below.
    for kind, dtype, h, hkv, dqk, dv, causal, layout in [
            ("mha", "bf16", 4, 4, 64, 64, True, "bhsd"),
            ("mha", "fp16", 3, 3, 128, 128, False, "bshd"),
            ("gqa", "bf16", 8, 2, 128, 128, True, "bshd"),
            ("gqa", "fp16", 6, 3, 64, 64, False, "bhsd"),
            ("mqa", "bf16", 4, 1, 64, 64, False, "bshd"),
            ("mqa", "fp16", 8, 1, 128, 128, True, "bhsd"),
            ("sq!=sk", "bf16", 4, 4, 64, 64, False, "bshd"),
            ("sq!=sk", "fp16", 4, 2, 64, 64, "lower_right", "bshd"),
            ("mla", "bf16", 4, 4, 192, 128, True, "bshd"),
            ("mla", "fp16", 2, 2, 192, 128, False, "bhsd"),
            ("packed", "bf16", 4, 4, 64, 64, True, "packed"),
            ("packed", "fp16", 2, 2, 128, 128, False, "packed")]:
        sq = seq()
        if kind == "sq!=sk":
            sk = seq()
            if causal == "lower_right":  # every query sees a key: no empty rows to compare
                sq, sk = min(sq, sk), max(sq, sk)
        else:
            sk = sq
        scale = None if rng.random() < 0.5 else rng.uniform(0.05, 0.3)
        cases.append(Case(kind, dtype, rng.randint(1, 3), h, hkv, sq, sk, dqk, dv, causal, scale,
                          layout))
    return cases


def torch_dtype(name):
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


def math_backend():
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.MATH)
    except ImportError:  # PyTorch < 2.3
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True,
                                              enable_mem_efficient=False)


def sdpa_math(q, k, v, case):
    """The math backend on [B, H, S, D] tensors, GQA by repeating K/V heads."""
    if case.kv_heads != case.heads:
        group = case.heads // case.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    kwargs = {"scale": case.scale}
    if case.causal is True:
        kwargs["is_causal"] = True
    elif case.causal == "lower_right":
        kwargs["attn_mask"] = torch.ones(case.sq, case.sk, dtype=torch.bool,
                                         device=q.device).tril(case.sk - case.sq)
    with math_backend():
        return F.scaled_dot_product_attention(q, k, v, **kwargs)


class Inputs:
    """Random q, k, v (normal, rounded to the dtype) and dO, on the GPU."""

    def __init__(self, case, seed):
        gen = torch.Generator(device="cuda").manual_seed(seed)
        dt = torch_dtype(case.dtype)

        def randn(*shape):
            return torch.randn(*shape, generator=gen, device="cuda", dtype=torch.float32).to(dt)
        b, s = case.batch, case.sq
        if case.layout == "packed":
            self.qkv = randn(b, s, 3, case.heads, case.dqk)
            self.dout = randn(b, s, case.heads, case.dv)
        elif case.layout == "bshd":  # storage [B, S, H, D], seen as [B, H, S, D]
            self.q = randn(b, case.sq, case.heads, case.dqk).transpose(1, 2)
            self.k = randn(b, case.sk, case.kv_heads, case.dqk).transpose(1, 2)
            self.v = randn(b, case.sk, case.kv_heads, case.dv).transpose(1, 2)
            self.dout = randn(b, case.heads, case.sq, case.dv)
        else:
            self.q = randn(b, case.heads, case.sq, case.dqk)
            self.k = randn(b, case.kv_heads, case.sk, case.dqk)
            self.v = randn(b, case.kv_heads, case.sk, case.dv)
            self.dout = randn(b, case.heads, case.sq, case.dv)

    def leaves(self, dtype=None):
        """Fresh leaf tensors requiring grad (cast to `dtype` when given)."""
        tensors = [self.qkv] if hasattr(self, "qkv") else [self.q, self.k, self.v]
        return [(t if dtype is None else t.to(dtype)).detach().requires_grad_() for t in tensors]


def run_attnjit(case, inputs):
    leaves = inputs.leaves()
    if case.layout == "packed":
        out = attnjit.attention_packed(leaves[0], causal=case.causal, scale=case.scale)
    else:
        out = attnjit.attention(*leaves, causal=case.causal, scale=case.scale)
    out.backward(inputs.dout)
    return out.detach(), [t.grad for t in leaves]


def plain_attention(q, k, v, case):
    """What an ordinary implementation computes in the inputs' precision (FlashAttention's tests'
    `attention_ref(upcast=False)`): scores and P rounded to the dtype, softmax in fp32. PyTorch's
    own math backend upcasts bf16/fp16 to fp32 since 2.5, which would make it no baseline."""
    if case.kv_heads != case.heads:
        group = case.heads // case.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scale = case.scale if case.scale is not None else 1 / math.sqrt(case.dqk)
    scores = (q @ k.transpose(-1, -2)) * scale
    if case.causal:
        keep = torch.ones(case.sq, case.sk, dtype=torch.bool, device=q.device)
        scores = scores.masked_fill(~keep.tril(case.sk - case.sq), float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v


def run_math(case, inputs, dtype):
    """The fp64 reference (SDPA's math backend) for dtype float64, else the plain baseline."""
    attend = sdpa_math if dtype == torch.float64 else plain_attention
    leaves = inputs.leaves(dtype)
    dout = inputs.dout.to(dtype)
    if case.layout == "packed":
        q, k, v = (leaves[0][:, :, i].transpose(1, 2) for i in range(3))
        out = attend(q, k, v, case).transpose(1, 2)  # [B, S, H, D], as attention_packed's
    else:
        out = attend(*leaves, case)
    out.backward(dout)
    return out.detach(), [t.grad for t in leaves]


def compare(case, ours, plain, ref):
    """One line per case; failures name the tensor, its error and the tolerance."""
    names = ["out"] + (["dqkv"] if case.layout == "packed" else ["dq", "dk", "dv"])
    floors = FLOORS[case.dtype]
    failures, parts = [], []
    for i, name in enumerate(names):
        a, p, r = (x[0] if i == 0 else x[1][i - 1] for x in (ours, plain, ref))
        if a.shape != r.shape:
            failures.append(f"{name} has shape {tuple(a.shape)}, expected {tuple(r.shape)}")
            continue
        factor, floor = (2.0, floors[0]) if i == 0 else (3.0, floors[1])
        error = (a.double() - r).abs().max().item()
        plain_error = (p.double() - r).abs().max().item()
        tolerance = factor * plain_error + floor
        nans = torch.isnan(a).sum().item()
        parts.append(f"{name} {error:.2e}/{tolerance:.2e}")
        if nans or not error <= tolerance:
            failures.append(f"{name}: max error {error:.3e} > {tolerance:.3e} "
                            f"({factor:g} x plain {plain_error:.3e} + {floor:g})"
                            + (f", {nans} NaN" if nans else ""))
    return failures, " ".join(parts)


def test_forward_and_gradients_match_the_math_backend():
    rng = random.Random(SEED)
    cases = random_cases(rng)
    seeds = [rng.randrange(2**31) for _ in cases]
    inputs = [Inputs(c, s) for c, s in zip(cases, seeds)]
    # attnjit first, on all cores: the first call of each problem compiles its kernels (NVRTC).
    # The references run afterwards on this thread, as the math-backend switch is process-wide.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        futures = [pool.submit(run_attnjit, c, x) for c, x in zip(cases, inputs)]
        results = []
        for f in futures:
            try:
                results.append(f.result())
            except Exception as e:  # reported with its case below
                results.append(e)
    torch.cuda.synchronize()
    failed = []
    for case, x, ours in zip(cases, inputs, results):
        if isinstance(ours, Exception):
            failed.append(f"{case}: {type(ours).__name__}: {ours}")
            print(f"FAILED  {case}: {type(ours).__name__}: {ours}")
            continue
        plain = run_math(case, x, x.dout.dtype)
        ref = run_math(case, x, torch.float64)
        failures, summary = compare(case, ours, plain, ref)
        print(f"{'FAILED' if failures else 'ok':7} {case}: {summary}")
        failed += [f"{case}: {f}" for f in failures]
    assert not failed, f"seed {SEED} (ATTNJIT_TEST_SEED={SEED} replays it):\n" + "\n".join(failed)


def test_deterministic_backward_gives_the_same_bits():
    case = Case("gqa", "bf16", 2, 8, 2, 300, 300, 64, 64, True, None, "bshd")
    inputs = Inputs(case, SEED)
    grads = []
    for _ in range(2):
        q, k, v = inputs.leaves()
        out = attnjit.attention(q, k, v, causal=True, deterministic=True)
        out.backward(inputs.dout)
        grads.append([t.grad.clone() for t in (q, k, v)])
    for name, a, b in zip(("dq", "dk", "dv"), *grads):
        assert torch.equal(a, b), f"{name} differs between two deterministic runs"


def test_a_cuda_graph_replays_forward_and_backward():
    # run() only checks and launches, so a training step's attention can be captured. The
    # backward's kernels after the first are programmatic dependent launches, which a capture
    # turns into programmatic edges; the replay must give the eager run's results on new inputs.
    for deterministic in (False, True):
        case = Case("gqa", "bf16", 2, 8, 2, 500, 500, 128, 128, True, None, "bshd")
        first, second = Inputs(case, SEED), Inputs(case, SEED + 1)

        def step(inputs, leaves):
            out = attnjit.attention(*leaves, causal=True, deterministic=deterministic)
            out.backward(inputs.dout)
            return out

        eager = []
        for inputs in (first, second):
            leaves = inputs.leaves()
            out = step(inputs, leaves)
            eager.append([out.detach()] + [t.grad for t in leaves])

        leaves = first.leaves()
        dout = first.dout.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # plans are built (and compiled) before the capture
            step(first, leaves)
        torch.cuda.current_stream().wait_stream(side)
        for t in leaves:
            t.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = attnjit.attention(*leaves, causal=True, deterministic=deterministic)
            out.backward(dout)
        for inputs, want in zip((first, second), eager):
            with torch.no_grad():
                for t, src in zip(leaves, (inputs.q, inputs.k, inputs.v)):
                    t.copy_(src)
                dout.copy_(inputs.dout)
                out.fill_(float("nan"))
                for t in leaves:
                    t.grad.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            for name, got, ref in zip(("o", "dq", "dk", "dv"), [out] + [t.grad for t in leaves],
                                      want):
                if deterministic or name != "dq":  # dQ's fp32 additions land in any order
                    assert torch.equal(got, ref), f"{name} of the replay differs from eager"
                else:
                    assert torch.allclose(got, ref, rtol=1e-2, atol=1e-2), \
                        f"dq of the replay differs from eager: {(got - ref).abs().max()}"


def test_plans_are_reused_and_errors_are_clear():
    case = Case("mha", "fp16", 1, 2, 2, 64, 64, 64, 64, False, None, "bhsd")
    q, k, v = Inputs(case, SEED).leaves()
    attnjit.attention(q, k, v)
    from attnjit import torch_attention
    plans = len(torch_attention._plans)
    attnjit.attention(q, k, v)
    assert len(torch_attention._plans) == plans, "a second call with the same shapes recompiled"

    def raises(kind, fn, piece):
        try:
            fn()
        except kind as e:
            assert piece in str(e), f"{piece!r} not in {e}"
            return
        raise AssertionError(f"expected {kind.__name__}")
    long_k = torch.randn(1, 2, 80, 64, device="cuda", dtype=torch.float16)
    raises(ValueError, lambda: attnjit.attention(q, long_k, long_k, causal=True),
           "causal='lower_right'")
    raises(TypeError, lambda: attnjit.attention(q.float(), k.float(), v.float()), "float32")
    three_heads = torch.randn(1, 3, 64, 64, device="cuda", dtype=torch.float16)
    raises(ValueError, lambda: attnjit.attention(q, three_heads, three_heads), "multiple of k's")
    raises(attnjit.UnsupportedError,
           lambda: attnjit.attention(q[..., :48].contiguous(), k[..., :48].contiguous(), v),
           "head dim 48")


def main():
    if SKIP:
        print(f"skipped: {SKIP}")
        return 0
    print(f"attnjit {attnjit.__version__} from {attnjit.library_path}; torch {torch.__version__} "
          f"on {torch.cuda.get_device_name()}; seed {SEED}")
    failed = 0
    for name, fn in [(n, f) for n, f in globals().items() if n.startswith("test_")]:
        try:
            fn()
            print(f"ok      {name}")
        except Exception as e:
            failed += 1
            print(f"FAILED  {name}: {type(e).__name__}: {e}")
    print(f"{'all passed' if not failed else f'{failed} failed'} (seed {SEED})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
