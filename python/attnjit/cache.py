"""The tuning cache from Python: where plans look for it, and lookups of one's own
(docs/CACHE.md; the C functions are attnjit_set_cache_location, attnjit_cache_*)."""
import ctypes

from . import _capi
from ._capi import check, encode, lib
from .plans import ProblemSpec


def set_cache_location(user_db=None, base_db=None, base_dir=None):
    """Where plans created from now on look for tuning databases. Each argument: None keeps what
    the environment says ($ATTNJIT_CACHE_DB, $ATTNJIT_BASE_DB, $ATTNJIT_BASE_DIR), "" means
    none, else a path. base_dir is a folder of <gpu-sku-slug>.db files, one per GPU model."""
    check(lib.set_cache_location(encode(user_db), encode(base_db), encode(base_dir)))


def cache_location(sku=None):
    """(user_db, base_db) a plan on GPU `sku` (default: GPU 0's) would use now; "" for none."""
    user, base = ctypes.c_char_p(), ctypes.c_char_p()
    check(lib.cache_location(encode(sku), ctypes.byref(user), ctypes.byref(base)))
    return user.value.decode(), base.value.decode()


class Cache:
    """A user database over a read-only base database, opened as plans see them; a named
    database that cannot be opened raises CacheError. Use from one thread at a time."""

    def __init__(self, user_db=None, base_db=None, read_only=False):
        handle = ctypes.c_void_p()
        flags = _capi.CACHE_USER_READ_ONLY if read_only else 0
        check(lib.cache_open(encode(user_db), encode(base_db), flags, ctypes.byref(handle)))
        self._handle = handle

    def close(self):
        if getattr(self, "_handle", None):
            lib.cache_close(self._handle)
            self._handle = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def lookup(self, problem: ProblemSpec, sku=None, arch=None):
        """The config a plan for `problem` would get: a dict with config, source (exact,
        bucket, default), database (the file; "" for the default) and warnings. sku/arch None:
        GPU 0's."""
        result = _capi.Lookup()
        check(lib.cache_lookup(self._handle, encode(sku), encode(arch),
                               ctypes.byref(problem.to_c()), ctypes.byref(result)))
        config = {name: getattr(result.config, name) for name, _ in _capi.TileConfig._fields_}
        config["q_in_registers"] = bool(config["q_in_registers"])
        config["wgmma"] = bool(config["wgmma"])
        config["warp_specialized"] = bool(config["warp_specialized"])
        return {"config": config, "source": _capi.CONFIG_SOURCES[result.source],
                "database": result.database.decode(), "warnings": result.warnings.decode()}

    def record_count(self) -> int:
        count = ctypes.c_int64()
        check(lib.cache_record_count(self._handle, ctypes.byref(count)))
        return count.value
