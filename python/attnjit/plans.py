"""Forward and backward plans over the C API, without PyTorch: a problem in, a handle that runs
on raw device pointers. torch_attention.py builds on these."""
import ctypes
from dataclasses import dataclass

from . import _capi
from ._capi import check, lib


@dataclass(frozen=True)
class ProblemSpec:
    """attnjit_problem as a hashable value (the plan cache's key). Fields as in c_api.h; the
    enums are the _capi constants. softmax_scale 0.0 means 1/sqrt(head_dim_qk)."""
    pass_: int = _capi.PASS_FORWARD
    dtype: int = _capi.DTYPE_BF16
    head_dim_qk: int = 128
    head_dim_v: int = 128
    num_heads: int = 32
    num_kv_heads: int = 32
    layout: int = _capi.LAYOUT_SEPARATE
    mask: int = _capi.MASK_NONE
    deterministic: bool = False
    batch: int = 1
    seqlen_q: int = 4096
    seqlen_k: int = 4096
    softmax_scale: float = 0.0

    def to_c(self):
        c = _capi.Problem()
        check(lib.problem_init(ctypes.byref(c)))
        c.pass_, c.dtype = self.pass_, self.dtype
        c.head_dim_qk, c.head_dim_v = self.head_dim_qk, self.head_dim_v
        c.num_heads, c.num_kv_heads = self.num_heads, self.num_kv_heads
        c.layout, c.mask, c.deterministic = self.layout, self.mask, int(self.deterministic)
        c.batch, c.seqlen_q, c.seqlen_k = self.batch, self.seqlen_q, self.seqlen_k
        c.softmax_scale = self.softmax_scale
        return c

    def validate(self):
        """Raises the attnjit.Error a plan would raise for this problem, without a GPU."""
        check(lib.problem_validate(ctypes.byref(self.to_c())))


@dataclass(frozen=True)
class PlanInfo:
    config: dict          # block_m, block_n, num_warps, num_stages, q_in_registers, wgmma,
                          # warp_specialized
    config_source: str    # exact, bucket, default, caller, tuned, waited
    binary_from_cache: bool
    registers_per_thread: int
    shared_memory_bytes: int
    local_memory_bytes: int
    workspace_bytes: int
    cache_warnings: str


def _info(c):
    config = {name: getattr(c.config, name) for name, _ in _capi.TileConfig._fields_}
    config["q_in_registers"] = bool(config["q_in_registers"])
    config["wgmma"] = bool(config["wgmma"])
    config["warp_specialized"] = bool(config["warp_specialized"])
    return PlanInfo(config, _capi.CONFIG_SOURCES.get(c.config_source, str(c.config_source)),
                    bool(c.binary_from_cache), c.registers_per_thread, c.shared_memory_bytes,
                    c.local_memory_bytes, c.workspace_bytes,
                    (c.cache_warnings or b"").decode(errors="replace"))


def _config(config):
    if config is None:
        return None
    c = _capi.TileConfig(config["block_m"], config["block_n"], config["num_warps"],
                         config["num_stages"], int(config.get("q_in_registers", False)),
                         int(config.get("wgmma", False)),
                         int(config.get("warp_specialized", False)))
    return ctypes.byref(c)


class _Plan:
    _create = _destroy = _info_fn = None

    def __init__(self, problem: ProblemSpec, config=None, device=0):
        """Validates, picks the config (None: the tuning cache, else the default table),
        generates, compiles and loads the kernel on `device`: seconds the first time, then the
        cubin comes from the tuning cache."""
        self.problem = problem
        self.device = device
        handle = ctypes.c_void_p()
        check(self._create(ctypes.byref(problem.to_c()), _config(config), device,
                           ctypes.byref(handle)))
        self._handle = handle

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle and self._destroy is not None:
            self._destroy(handle)
            self._handle = None

    def info(self) -> PlanInfo:
        c = _capi.PlanInfo()
        check(self._info_fn(self._handle, ctypes.byref(c)))
        return _info(c)


class ForwardPlan(_Plan):
    _create = staticmethod(lib.forward_plan_create)
    _destroy = staticmethod(lib.forward_plan_destroy)
    _info_fn = staticmethod(lib.forward_plan_info)

    def run(self, args: "_capi.ForwardArgs", stream: int = 0):
        """Enqueues the kernel on `stream` (a CUstream / cudaStream_t as an int; 0 is the legacy
        default stream). No allocation and no synchronisation."""
        check(lib.forward_plan_run(self._handle, ctypes.byref(args), stream or None))


class BackwardPlan(_Plan):
    _create = staticmethod(lib.backward_plan_create)
    _destroy = staticmethod(lib.backward_plan_destroy)
    _info_fn = staticmethod(lib.backward_plan_info)

    @property
    def workspace_bytes(self) -> int:
        """Device memory run() needs in BackwardArgs.workspace, 16-byte aligned."""
        size = ctypes.c_size_t()
        check(lib.backward_plan_workspace_size(self._handle, ctypes.byref(size)))
        return size.value

    def run(self, args: "_capi.BackwardArgs", stream: int = 0):
        check(lib.backward_plan_run(self._handle, ctypes.byref(args), stream or None))


def device_count() -> int:
    """GPUs the driver reports; raises NoDeviceError without a usable driver."""
    count = ctypes.c_int()
    check(lib.device_count(ctypes.byref(count)))
    return count.value
