"""Finding and loading libattnjit_c.so, the C API (include/attnjit/c_api.h) this package calls.

Tried in order, and the first that loads wins:
  1. $ATTNJIT_LIBRARY, the path of the file. When it is set nothing else is tried.
  2. The installed library, next to an installed copy of this package (`cmake --install`).
  3. libattnjit_c.so in this package's folder (a copy placed there by hand).
  4. The repo's build trees, for a source checkout: build/dev/lib, then build/portable/lib.
  5. The system loader's search path (LD_LIBRARY_PATH, ldconfig).
When none loads, the error lists every place tried and why each failed.
"""
import ctypes
import os

LIBRARY_NAME = "libattnjit_c.so"
# The C API version this package is written against (ATTNJIT_C_API_VERSION in c_api.h).
C_API_VERSION = 3

_HERE = os.path.dirname(os.path.abspath(__file__))


class LibraryNotFound(ImportError):
    """libattnjit_c.so could not be loaded; the message says where it was looked for."""


def _candidates():
    try:
        from ._installed_library import LIBRARY_DIR_RELATIVE
        yield os.path.normpath(os.path.join(_HERE, LIBRARY_DIR_RELATIVE, LIBRARY_NAME))
    except ImportError:
        pass  # a source checkout: no installed location
    yield os.path.join(_HERE, LIBRARY_NAME)
    repo = os.path.dirname(os.path.dirname(_HERE))
    for preset in ("dev", "portable"):
        yield os.path.join(repo, "build", preset, "lib", LIBRARY_NAME)


def _open(path):
    # RTLD_LOCAL: the library's symbols stay out of the process's global namespace.
    return ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)


def load():
    """Returns (ctypes.CDLL, path). Raises LibraryNotFound."""
    explicit = os.environ.get("ATTNJIT_LIBRARY")
    if explicit:
        try:
            library = _open(explicit)
        except OSError as e:
            raise LibraryNotFound(f"ATTNJIT_LIBRARY={explicit} could not be loaded: {e}") from e
        return _checked(library, explicit), explicit

    tried = []
    for path in _candidates():
        if not os.path.exists(path):
            tried.append(f"{path} (does not exist)")
            continue
        try:
            return _checked(_open(path), path), path
        except OSError as e:
            tried.append(f"{path} ({e})")
    try:
        return _checked(_open(LIBRARY_NAME), LIBRARY_NAME), LIBRARY_NAME
    except OSError as e:
        tried.append(f"{LIBRARY_NAME} on the loader's path ({e})")
    raise LibraryNotFound(
        "could not load attnjit's C library; tried:\n  " + "\n  ".join(tried) +
        "\nBuild it (scripts/setup.sh, or scripts/setup.sh portable for GPU hosts) or set "
        "ATTNJIT_LIBRARY to the file, e.g. build/portable/lib/libattnjit_c.so")


def _checked(library, path):
    try:
        version = library.attnjit_c_api_version
    except AttributeError as e:
        raise LibraryNotFound(
            f"{path} is not attnjit's C library (no attnjit_c_api_version)") from e
    version.restype = ctypes.c_int
    version.argtypes = []
    if version() != C_API_VERSION:
        raise LibraryNotFound(
            f"{path} has C API version {version()}; this Python package needs {C_API_VERSION}. "
            "Use the library built from the same checkout as the package.")
    return library
