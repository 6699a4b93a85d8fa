"""attnjit on PyTorch tensors: `attention(q, k, v, causal=..., scale=...)` as a drop-in for
torch.nn.functional.scaled_dot_product_attention in training (forward and backward through
torch.autograd), and `attention_packed(qkv)` for one packed QKV tensor. docs/PYTHON.md has the
conventions; in short:

- q is [B, H, Sq, Dqk], k is [B, Hkv, Sk, Dqk], v is [B, Hkv, Sk, Dv], as SDPA takes them; the
  result is [B, H, Sq, Dv]. Hkv < H is GQA (Hkv = 1: MQA), as SDPA's enable_gqa=True.
- bf16 or fp16 on one CUDA device; head dims 32, 64, 96, 128, 192, 256 (backward: Dqk + Dv up to
  320, e.g. 192/128).
- Tensors are read where they lie, through their strides, so views such as
  x.view(B, S, H, D).transpose(1, 2) cost no copy. A tensor the kernels cannot read as it is (last
  dim not contiguous, data not 16-byte aligned, a stride not a multiple of 8 elements) is copied
  to a contiguous one first, as SDPA's fused backends do.
- Work goes on the tensors' device and the current CUDA stream of that device.
"""
import ctypes
import dataclasses
import math
import threading

import torch

from . import _capi
from .plans import BackwardPlan, ForwardPlan, ProblemSpec

_DTYPES = {torch.bfloat16: _capi.DTYPE_BF16, torch.float16: _capi.DTYPE_FP16}

# One plan per (kind, device, problem): a plan compiles once (or loads its cubin from the tuning
# cache), then every call with the same shapes reuses it. Plans are small, and their kernels stay
# loaded for the process anyway, so nothing is ever evicted.
_plans = {}
_plans_lock = threading.Lock()


def _plan(kind, problem, device):
    key = (kind, device, problem)
    plan = _plans.get(key)
    if plan is None:
        plan = kind(problem, device=device)  # compiles outside the lock; the GIL is released
        with _plans_lock:
            plan = _plans.setdefault(key, plan)
    return plan


def clear_plan_cache():
    """Drops the cached plans (their kernels stay loaded in the process)."""
    with _plans_lock:
        _plans.clear()


# ---- Reading tensors -------------------------------------------------------------------------

def _readable(t, dims):
    """`t` if the kernels can read it through its strides, else a contiguous copy. `dims` are
    the dimensions that become the kernel's batch, seq and head strides."""
    def ok(x):
        if x.data_ptr() % 16 or (x.stride(-1) != 1 and x.size(-1) != 1):
            return False
        return all(x.size(d) == 1 or (x.stride(d) >= 0 and x.stride(d) % 8 == 0) for d in dims)
    if ok(t):
        return t
    copy = t.contiguous()
    if copy is t or not ok(copy):  # contiguous already, but misaligned: a fresh allocation
        copy = t.clone(memory_format=torch.contiguous_format)
    return copy


def _view(t, batch_dim, seq_dim, head_dim, offset_elements=0):
    """attnjit_tensor for `t`. The stride of a size-1 dimension is never used to address an
    element, and PyTorch may give such a dimension any stride: one the checks would refuse is
    passed as 0."""
    def stride(d):
        s = t.stride(d)
        return 0 if t.size(d) == 1 and (s < 0 or s % 8) else s
    return _capi.Tensor(t.data_ptr() + offset_elements * t.element_size(), stride(batch_dim),
                        stride(seq_dim), stride(head_dim))


def _bhsd(t):
    return _view(t, 0, 2, 1)  # [B, H, S, D]


# ---- Checks ----------------------------------------------------------------------------------

def _mask(causal, seqlen_q, seqlen_k):
    if causal is False or causal is None:
        return _capi.MASK_NONE
    if causal == "lower_right":
        return _capi.MASK_CAUSAL
    if causal is True:
        if seqlen_q != seqlen_k:
            raise ValueError(
                f"causal=True with seqlen_q {seqlen_q} != seqlen_k {seqlen_k}: SDPA's is_causal "
                "aligns the mask top-left, attnjit's kernels align it bottom-right "
                "(FlashAttention-2, torch.nn.attention.bias.causal_lower_right); pass "
                "causal='lower_right' to ask for that")
        return _capi.MASK_CAUSAL
    raise ValueError(f"causal must be False, True or 'lower_right', got {causal!r}")


def _scale(scale):
    if scale is None:
        return 0.0  # the C API's 1/sqrt(head_dim_qk), SDPA's default
    scale = float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    return scale


def _dtype(*tensors):
    first = tensors[0]
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"expected torch.Tensor, got {type(t).__name__}")
        if t.dtype != first.dtype:
            raise TypeError(f"q, k, v must share one dtype, got {[x.dtype for x in tensors]}")
        if t.device != first.device or first.device.type != "cuda":
            raise ValueError(f"q, k, v must be on one CUDA device, got "
                             f"{[str(x.device) for x in tensors]}")
    if first.dtype not in _DTYPES:
        raise TypeError(f"attnjit runs bfloat16 and float16 tensors, got {first.dtype}")
    return _DTYPES[first.dtype]


def _stream(device):
    return torch.cuda.current_stream(device).cuda_stream


def _lse_pointer(lse):
    return ctypes.c_void_p(lse.data_ptr())


# ---- Separate q, k, v ------------------------------------------------------------------------

def _problem(q, k, v, mask, scale, dtype, pass_=_capi.PASS_FORWARD, deterministic=False):
    batch, heads, seqlen_q, dqk = q.shape
    return ProblemSpec(pass_=pass_, dtype=dtype, head_dim_qk=dqk, head_dim_v=v.size(3),
                       num_heads=heads, num_kv_heads=k.size(1), layout=_capi.LAYOUT_SEPARATE,
                       mask=mask, deterministic=deterministic, batch=batch, seqlen_q=seqlen_q,
                       seqlen_k=k.size(2), softmax_scale=scale)


def _check_shapes(q, k, v):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be [B, H, S, D] (4 dims), got shape {tuple(t.shape)}")
    if k.shape[:3] != v.shape[:3] or q.size(0) != k.size(0) or q.size(3) != k.size(3):
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not "
                         "fit [B, H, Sq, Dqk], [B, Hkv, Sk, Dqk], [B, Hkv, Sk, Dv]")
    if q.size(1) % k.size(1):
        raise ValueError(f"q's heads ({q.size(1)}) must be a multiple of k's ({k.size(1)})")


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, scale, deterministic):
        dims = (0, 2, 1)
        q, k, v = (_readable(t, dims) for t in (q, k, v))
        dtype = _DTYPES[q.dtype]
        problem = _problem(q, k, v, mask, scale, dtype)
        batch, heads, seqlen_q, _ = q.shape
        device = q.device
        # [B, Sq, H, Dv] storage seen as [B, H, Sq, Dv], as SDPA's fused backends return it.
        o = torch.empty((batch, seqlen_q, heads, v.size(3)), dtype=q.dtype,
                        device=device).transpose(1, 2)
        lse = torch.empty((batch, heads, seqlen_q), dtype=torch.float32, device=device)
        with torch.cuda.device(device):
            plan = _plan(ForwardPlan, problem, device.index)
            args = _capi.ForwardArgs(_bhsd(q), _bhsd(k), _bhsd(v), _bhsd(o), _lse_pointer(lse))
            plan.run(args, _stream(device))
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.settings = (mask, scale, deterministic, dtype)
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        q, k, v, o, lse = ctx.saved_tensors
        mask, scale, deterministic, dtype = ctx.settings
        dout = _readable(dout, (0, 2, 1))
        problem = _problem(q, k, v, mask, scale, dtype, _capi.PASS_BACKWARD, deterministic)
        device = q.device
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        with torch.cuda.device(device):
            plan = _plan(BackwardPlan, problem, device.index)
            workspace_bytes = plan.workspace_bytes
            workspace = torch.empty(workspace_bytes, dtype=torch.uint8, device=device)
            args = _capi.BackwardArgs(_bhsd(q), _bhsd(k), _bhsd(v), _bhsd(o), _bhsd(dout),
                                      _lse_pointer(lse), _bhsd(dq), _bhsd(dk), _bhsd(dv),
                                      workspace.data_ptr(), workspace_bytes)
            plan.run(args, _stream(device))
        return dq, dk, dv, None, None, None


def attention(q, k, v, causal=False, scale=None, deterministic=False):
    """softmax(scale * q k^T + mask) v, as torch.nn.functional.scaled_dot_product_attention(q, k,
    v, is_causal=causal, scale=scale, enable_gqa=True) computes it, with attnjit's kernels.

    q: [B, H, Sq, Dqk]; k: [B, Hkv, Sk, Dqk]; v: [B, Hkv, Sk, Dv]; H a multiple of Hkv.
    causal: False; True (needs Sq == Sk, where SDPA's top-left mask and attnjit's agree); or
      'lower_right' (FlashAttention-2's alignment: query i sees key j iff j <= i + Sk - Sq).
    scale: None for 1/sqrt(Dqk), else a positive float.
    deterministic: the backward gives the same bits on every run (its dQ then costs more).
    Returns [B, H, Sq, Dv], differentiable with respect to q, k and v.
    """
    _dtype(q, k, v)
    _check_shapes(q, k, v)
    return _Attention.apply(q, k, v, _mask(causal, q.size(2), k.size(2)), _scale(scale),
                            bool(deterministic))


# ---- Packed QKV ------------------------------------------------------------------------------

def _packed_views(qkv):
    """q, k, v views of a [B, S, 3, H, D] tensor: its three slices along dim 2."""
    step = qkv.stride(2)
    return tuple(_view(qkv, 0, 1, 3, offset_elements=i * step) for i in range(3))


class _PackedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, mask, scale, deterministic):
        qkv = _readable(qkv, (0, 1, 2, 3))
        batch, seqlen, _, heads, dim = qkv.shape
        dtype = _DTYPES[qkv.dtype]
        problem = ProblemSpec(dtype=dtype, head_dim_qk=dim, head_dim_v=dim, num_heads=heads,
                              num_kv_heads=heads, layout=_capi.LAYOUT_PACKED_QKV, mask=mask,
                              batch=batch, seqlen_q=seqlen, seqlen_k=seqlen, softmax_scale=scale)
        device = qkv.device
        o = torch.empty((batch, seqlen, heads, dim), dtype=qkv.dtype, device=device)
        lse = torch.empty((batch, heads, seqlen), dtype=torch.float32, device=device)
        with torch.cuda.device(device):
            plan = _plan(ForwardPlan, problem, device.index)
            q, k, v = _packed_views(qkv)
            plan.run(_capi.ForwardArgs(q, k, v, _view(o, 0, 1, 2), _lse_pointer(lse)),
                     _stream(device))
        ctx.save_for_backward(qkv, o, lse)
        ctx.problem = problem
        ctx.deterministic = deterministic
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        qkv, o, lse = ctx.saved_tensors
        dout = _readable(dout, (0, 1, 2))
        problem = dataclasses.replace(ctx.problem, pass_=_capi.PASS_BACKWARD,
                                      deterministic=ctx.deterministic)
        device = qkv.device
        # One packed gradient, sliced like the input: dq, dk, dv interleave in it.
        dqkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)
        with torch.cuda.device(device):
            plan = _plan(BackwardPlan, problem, device.index)
            workspace_bytes = plan.workspace_bytes
            workspace = torch.empty(workspace_bytes, dtype=torch.uint8, device=device)
            q, k, v = _packed_views(qkv)
            dq, dk, dv = _packed_views(dqkv)
            args = _capi.BackwardArgs(q, k, v, _view(o, 0, 1, 2), _view(dout, 0, 1, 2),
                                      _lse_pointer(lse), dq, dk, dv, workspace.data_ptr(),
                                      workspace_bytes)
            plan.run(args, _stream(device))
        return dqkv, None, None, None


def attention_packed(qkv, causal=False, scale=None, deterministic=False):
    """Self-attention of one packed [B, S, 3, H, D] tensor (q, k, v along dim 2, as fused QKV
    projections produce it); returns [B, S, H, D], the layout FlashAttention's
    flash_attn_qkvpacked_func returns. The gradient is one packed [B, S, 3, H, D] tensor.
    causal, scale, deterministic: as attention()'s (Sq == Sk here, so causal=True is SDPA's)."""
    _dtype(qkv)
    if qkv.dim() != 5 or qkv.size(2) != 3:
        raise ValueError(f"qkv must be [B, S, 3, H, D], got shape {tuple(qkv.shape)}")
    return _PackedAttention.apply(qkv, _mask(causal, qkv.size(1), qkv.size(1)), _scale(scale),
                                  bool(deterministic))
