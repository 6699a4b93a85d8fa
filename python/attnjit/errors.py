"""attnjit's errors in Python: one class per attnjit_status, all subclasses of attnjit.Error."""


class Error(RuntimeError):
    """A failed attnjit call. `status` is the C API's attnjit_status value, `status_name` its name;
    the message is the library's last-error message: the function, then what was wrong."""

    def __init__(self, message, status, status_name):
        super().__init__(message)
        self.status = status
        self.status_name = status_name


class InvalidArgumentError(Error, ValueError):
    """A bad problem, config, pointer, stride or handle."""


class UnsupportedError(Error):
    """A valid request this build cannot serve (a head dim, an architecture)."""


class NoDeviceError(Error):
    """No NVIDIA driver or no GPU; the message says which."""


class DriverError(Error):
    """A CUDA driver call failed."""


class CompileError(Error):
    """NVRTC rejected the generated source; the message has its log and where the source is."""


class CacheError(Error):
    """A tuning database could not be opened or read."""


class InternalError(Error):
    """A bug in attnjit, or out of host memory."""


# Indexed by attnjit_status (ATTNJIT_OK = 0 has no class).
BY_STATUS = {
    1: InvalidArgumentError,
    2: UnsupportedError,
    3: NoDeviceError,
    4: DriverError,
    5: CompileError,
    6: CacheError,
    7: InternalError,
}
