"""attnjit from Python: JIT-generated attention kernels on PyTorch tensors, through attnjit's C
API (libattnjit_c.so, loaded with ctypes: no compile step). docs/PYTHON.md is the guide.

    import attnjit
    out = attnjit.attention(q, k, v, causal=True)   # q [B, H, S, D], like SDPA; GQA when k has
    out.sum().backward()                              # fewer heads; forward and backward
    out = attnjit.attention_packed(qkv)             # qkv [B, S, 3, H, D] -> [B, S, H, D]

Importing needs no PyTorch: plans on raw device pointers (plans.py), the tuning cache (cache.py),
versions and errors work without it. attention() and attention_packed() import torch when
first called.
"""
from . import _capi
from .cache import Cache, cache_location, set_cache_location
from .errors import (CacheError, CompileError, DriverError, Error, InternalError,
                     InvalidArgumentError, NoDeviceError, UnsupportedError)
from .plans import BackwardPlan, ForwardPlan, PlanInfo, ProblemSpec, device_count

__version__ = _capi.lib.version().decode()  # the library's: project(VERSION) in CMakeLists.txt
library_path = _capi.library_path            # the libattnjit_c.so this process loaded


def attention(q, k, v, causal=False, scale=None, deterministic=False):
    """SDPA drop-in on attnjit's kernels, forward and backward: q [B, H, Sq, Dqk], k and v
    [B, Hkv, Sk, D]; see attnjit.torch_attention.attention for the details."""
    from .torch_attention import attention as run
    return run(q, k, v, causal=causal, scale=scale, deterministic=deterministic)


def attention_packed(qkv, causal=False, scale=None, deterministic=False):
    """Self-attention of a packed [B, S, 3, H, D] tensor, returning [B, S, H, D]; see
    attnjit.torch_attention.attention_packed."""
    from .torch_attention import attention_packed as run
    return run(qkv, causal=causal, scale=scale, deterministic=deterministic)


def clear_plan_cache():
    """Drops the plans attention() keeps per problem (their kernels stay loaded)."""
    from .torch_attention import clear_plan_cache as clear
    clear()
