#!/usr/bin/env python3
"""The Python module without PyTorch or a GPU: loading libattnjit_c.so, versions, struct layouts,
errors and their messages, the tuning cache. CI runs it through ctest (tests/CMakeLists.txt);
by hand, from the repo root:

    PYTHONPATH=python ATTNJIT_LIBRARY=build/dev/lib/libattnjit_c.so python3 tests/python/test_capi.py

Runs as a plain script (each test_* function in turn; exit 1 when one fails) or under pytest.
"""
import ctypes
import dataclasses
import os
import subprocess
import sys
import tempfile
import threading

# A machine without a driver, even on a GPU host: set before the library first loads the driver.
os.environ["ATTNJIT_LIBCUDA"] = "/nonexistent/libcuda.so.1"
os.environ.setdefault("ATTNJIT_CACHE_DB", "off")  # never the user's database
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import attnjit  # noqa: E402
from attnjit import _capi, _library  # noqa: E402


def raises(kind, fn, *pieces):
    """Calls fn, which must raise `kind` whose message contains every piece; returns the error."""
    try:
        fn()
    except kind as e:
        for piece in pieces:
            assert piece in str(e), f"{piece!r} not in {str(e)!r}"
        return e
    raise AssertionError(f"expected {kind.__name__}")


def test_version_comes_from_the_library():
    parts = attnjit.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), attnjit.__version__
    expected = os.environ.get("ATTNJIT_EXPECTED_VERSION")  # set by ctest from project(VERSION)
    if expected:
        assert attnjit.__version__ == expected, (attnjit.__version__, expected)
    assert os.path.exists(attnjit.library_path) or attnjit.library_path == "libattnjit_c.so"


def test_struct_sizes_match_the_header():
    for struct, size in _capi.EXPECTED_SIZES.items():
        assert ctypes.sizeof(struct) == size, (struct.__name__, ctypes.sizeof(struct), size)


def test_c_api_version_3_appends_warp_specialized_to_the_tile_config():
    assert _capi.lib.c_api_version() == _library.C_API_VERSION == 3
    names = [name for name, _ in _capi.TileConfig._fields_]
    assert names[-2:] == ["wgmma", "warp_specialized"], names
    assert (_capi.TileConfig.wgmma.offset, _capi.TileConfig.warp_specialized.offset) == (20, 24)


def test_the_library_exports_only_the_c_api():
    result = subprocess.run(["nm", "-D", "--defined-only", attnjit.library_path],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"  (nm not usable here: {result.stderr.strip()})")
        return
    symbols = [line.split()[-1] for line in result.stdout.splitlines() if line.strip()]
    foreign = [s for s in symbols if not s.startswith("attnjit_")]
    assert not foreign, f"exported beyond the C API: {foreign[:10]}"
    assert "attnjit_forward_plan_run" in symbols


def test_problem_defaults_and_validation():
    spec = attnjit.ProblemSpec()
    spec.validate()
    c = spec.to_c()
    assert (c.head_dim_qk, c.num_heads, c.seqlen_q) == (128, 32, 4096)
    raises(attnjit.InvalidArgumentError,
           attnjit.ProblemSpec(num_heads=6, num_kv_heads=4).validate,
           "attnjit_problem_validate: ", "num_heads (6) must be a multiple of num_kv_heads (4)")
    raises(attnjit.UnsupportedError, attnjit.ProblemSpec(head_dim_qk=100).validate,
           "head dim 100 is not supported")
    e = raises(attnjit.InvalidArgumentError, attnjit.ProblemSpec(batch=0).validate,
               "batch must be positive, got 0")
    assert e.status == 1 and e.status_name == "ATTNJIT_ERROR_INVALID_ARGUMENT"
    assert isinstance(e, ValueError)  # usable where Python code expects ValueError
    raises(attnjit.InvalidArgumentError, attnjit.ProblemSpec(dtype=9).validate,
           "problem.dtype is 9")


def test_last_error_is_per_thread_and_cleared_by_a_success():
    assert _capi.lib.problem_validate(ctypes.byref(attnjit.ProblemSpec(batch=0).to_c())) == 1
    seen = []
    thread = threading.Thread(target=lambda: seen.append(_capi.lib.last_error()))
    thread.start()
    thread.join()
    assert seen == [b""], seen
    assert b"batch" in _capi.lib.last_error()
    attnjit.ProblemSpec().validate()
    assert _capi.lib.last_error() == b""


def test_without_a_driver_plans_say_no_device():
    raises(attnjit.NoDeviceError, attnjit.device_count, "attnjit_device_count: ")
    spec = attnjit.ProblemSpec(head_dim_qk=64, head_dim_v=64, num_heads=4, num_kv_heads=4,
                               seqlen_q=128, seqlen_k=128)
    raises(attnjit.NoDeviceError, lambda: attnjit.ForwardPlan(spec),
           "attnjit_forward_plan_create: ")
    backward = dataclasses.replace(spec, pass_=_capi.PASS_BACKWARD)
    raises(attnjit.NoDeviceError, lambda: attnjit.BackwardPlan(backward),
           "attnjit_backward_plan_create: ")
    # Checked before the device: the same answer on any machine.
    raises(attnjit.InvalidArgumentError,
           lambda: attnjit.ForwardPlan(spec, config={"block_m": 128, "block_n": 64,
                                                     "num_warps": 4, "num_stages": 2,
                                                     "q_in_registers": 3}),
           "config.q_in_registers is 3")
    raises(attnjit.InvalidArgumentError,
           lambda: attnjit.ForwardPlan(spec, config={"block_m": 64, "block_n": 64,
                                                     "num_warps": 4, "num_stages": 2,
                                                     "wgmma": 2}),
           "config.wgmma is 2")
    raises(attnjit.InvalidArgumentError,
           lambda: attnjit.ForwardPlan(spec, config={"block_m": 128, "block_n": 128,
                                                     "num_warps": 12, "num_stages": 2,
                                                     "wgmma": True, "warp_specialized": 2}),
           "config.warp_specialized is 2")


def test_cache_lookup_and_location():
    with tempfile.TemporaryDirectory() as folder:
        user = os.path.join(folder, "user.db")
        with attnjit.Cache(user) as cache:
            assert cache.record_count() == 0
            found = cache.lookup(attnjit.ProblemSpec(), sku="NVIDIA H100 80GB HBM3", arch="sm_90a")
            assert found["source"] == "default" and found["database"] == "", found
            assert found["config"]["block_m"] > 0
            assert isinstance(found["config"]["wgmma"], bool), found
            assert isinstance(found["config"]["warp_specialized"], bool), found
        assert os.path.exists(user)  # opened read-write: created
        raises(attnjit.CacheError, lambda: attnjit.Cache(os.path.join(folder, "none.db"),
                                                         read_only=True), "none.db")
        junk = os.path.join(folder, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"x" * 4096)
        raises(attnjit.CacheError, lambda: attnjit.Cache(base_db=junk), "junk.db")

        try:
            attnjit.set_cache_location(user_db=user, base_dir=folder)
            assert attnjit.cache_location("NVIDIA H100 80GB HBM3") == (user, "")
            attnjit.set_cache_location(user_db="")
            assert attnjit.cache_location("NVIDIA H100 80GB HBM3") == ("", "")
        finally:
            attnjit.set_cache_location()


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    failed = 0
    print(f"attnjit {attnjit.__version__} from {attnjit.library_path}")
    for name, fn in tests:
        try:
            fn()
            print(f"ok      {name}")
        except Exception as e:  # report every test, then fail
            failed += 1
            print(f"FAILED  {name}: {type(e).__name__}: {e}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
