"""ctypes mirror of include/attnjit/c_api.h: constants, structs and function prototypes, bound to
the loaded libattnjit_c.so. Struct layouts must match the header field for field;
tests/python/test_capi.py checks their sizes against the C ones."""
import ctypes
from ctypes import POINTER, Structure, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t
from ctypes import c_uint, c_uint64, c_void_p

from . import _library
from .errors import BY_STATUS, Error

OK = 0
PASS_FORWARD, PASS_BACKWARD = 0, 1
DTYPE_BF16, DTYPE_FP16 = 0, 1
LAYOUT_SEPARATE, LAYOUT_PACKED_QKV, LAYOUT_V_IN_K = 0, 1, 2
MASK_NONE, MASK_CAUSAL = 0, 1
CONFIG_SOURCES = {0: "exact", 1: "bucket", 2: "default", 3: "caller", 4: "tuned", 5: "waited"}
CACHE_USER_READ_ONLY = 1


class Problem(Structure):
    _fields_ = [("pass_", c_int32), ("dtype", c_int32), ("head_dim_qk", c_int32),
                ("head_dim_v", c_int32), ("num_heads", c_int32), ("num_kv_heads", c_int32),
                ("layout", c_int32), ("mask", c_int32), ("deterministic", c_int32),
                ("reserved", c_int32), ("batch", c_int64), ("seqlen_q", c_int64),
                ("seqlen_k", c_int64), ("softmax_scale", c_float)]


class TileConfig(Structure):
    _fields_ = [("block_m", c_int32), ("block_n", c_int32), ("num_warps", c_int32),
                ("num_stages", c_int32), ("q_in_registers", c_int32), ("wgmma", c_int32),
                ("warp_specialized", c_int32)]


class Tensor(Structure):
    _fields_ = [("data", c_void_p), ("batch_stride", c_int64), ("seq_stride", c_int64),
                ("head_stride", c_int64)]


class PlanInfo(Structure):
    _fields_ = [("config", TileConfig), ("config_source", c_int32),
                ("binary_from_cache", c_int32), ("registers_per_thread", c_int32),
                ("shared_memory_bytes", c_int32), ("local_memory_bytes", c_int32),
                ("workspace_bytes", c_uint64), ("cache_warnings", c_char_p)]


class ForwardArgs(Structure):
    _fields_ = [("q", Tensor), ("k", Tensor), ("v", Tensor), ("o", Tensor), ("lse", c_void_p)]


class BackwardArgs(Structure):
    _fields_ = [("q", Tensor), ("k", Tensor), ("v", Tensor), ("o", Tensor), ("dout", Tensor),
                ("lse", c_void_p), ("dq", Tensor), ("dk", Tensor), ("dv", Tensor),
                ("workspace", c_void_p), ("workspace_bytes", c_size_t)]


class Lookup(Structure):
    _fields_ = [("config", TileConfig), ("source", c_int32), ("database", c_char_p),
                ("warnings", c_char_p)]


# Sizes on x86-64 Linux, as the C compiler lays the structs out (tests compare both sides).
EXPECTED_SIZES = {Problem: 72, TileConfig: 28, Tensor: 32, PlanInfo: 64, ForwardArgs: 136,
                  BackwardArgs: 280, Lookup: 48}

library, library_path = _library.load()

_status = c_int
_PROTOTYPES = {
    "attnjit_status_name": (c_char_p, [c_int]),
    "attnjit_last_error": (c_char_p, []),
    "attnjit_version": (c_char_p, []),
    "attnjit_c_api_version": (c_int, []),
    "attnjit_device_count": (_status, [POINTER(c_int)]),
    "attnjit_problem_init": (_status, [POINTER(Problem)]),
    "attnjit_problem_validate": (_status, [POINTER(Problem)]),
    "attnjit_contiguous_bshd": (Tensor, [c_void_p, c_int64, c_int64, c_int64]),
    "attnjit_forward_plan_create": (_status, [POINTER(Problem), POINTER(TileConfig), c_int,
                                              POINTER(c_void_p)]),
    "attnjit_forward_plan_destroy": (None, [c_void_p]),
    "attnjit_forward_plan_info": (_status, [c_void_p, POINTER(PlanInfo)]),
    "attnjit_forward_plan_run": (_status, [c_void_p, POINTER(ForwardArgs), c_void_p]),
    "attnjit_backward_plan_create": (_status, [POINTER(Problem), POINTER(TileConfig), c_int,
                                               POINTER(c_void_p)]),
    "attnjit_backward_plan_destroy": (None, [c_void_p]),
    "attnjit_backward_plan_info": (_status, [c_void_p, POINTER(PlanInfo)]),
    "attnjit_backward_plan_workspace_size": (_status, [c_void_p, POINTER(c_size_t)]),
    "attnjit_backward_plan_run": (_status, [c_void_p, POINTER(BackwardArgs), c_void_p]),
    "attnjit_set_cache_location": (_status, [c_char_p, c_char_p, c_char_p]),
    "attnjit_cache_location": (_status, [c_char_p, POINTER(c_char_p), POINTER(c_char_p)]),
    "attnjit_cache_open": (_status, [c_char_p, c_char_p, c_uint, POINTER(c_void_p)]),
    "attnjit_cache_close": (None, [c_void_p]),
    "attnjit_cache_lookup": (_status, [c_void_p, c_char_p, c_char_p, POINTER(Problem),
                                       POINTER(Lookup)]),
    "attnjit_cache_record_count": (_status, [c_void_p, POINTER(c_int64)]),
}


class _Functions:
    """The C functions by their names without the attnjit_ prefix: lib.forward_plan_run(...)."""


lib = _Functions()
for _name, (_restype, _argtypes) in _PROTOTYPES.items():
    _function = getattr(library, _name)
    _function.restype = _restype
    _function.argtypes = _argtypes
    setattr(lib, _name[len("attnjit_"):], _function)


def check(status):
    """Raises the attnjit.Error subclass for a failed status, with this thread's last error."""
    if status == OK:
        return
    message = lib.last_error().decode(errors="replace")
    name = lib.status_name(status).decode()
    raise BY_STATUS.get(status, Error)(message or name, status, name)


def encode(path):
    """A path or None for a const char* argument (None stays NULL)."""
    if path is None:
        return None
    return str(path).encode()
