"""The paca.Error hierarchy: one class per paca_status of paca.h.

Every error carries ``status`` (the paca_status value), ``status_name``
("PACA_ERR_IO") and ``message`` (paca_last_error() of the failed call).
"""

import builtins


class Error(Exception):
    """A paca call failed. ``status`` is the paca_status, ``message`` the library's text."""

    def __init__(self, message: str, status: int = 99):
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def status_name(self) -> str:
        from . import _paca
        return _paca.status_name(self.status)


class InvalidArgumentError(Error, ValueError):
    """PACA_ERR_INVALID_ARGUMENT: a bad or out-of-range argument."""


class FileError(Error, OSError):
    """PACA_ERR_IO: a file is missing or unreadable."""


class FormatError(Error):
    """PACA_ERR_FORMAT: a file is malformed or inconsistent."""


class UnsupportedError(Error):
    """PACA_ERR_UNSUPPORTED: well-formed but not supported (architecture, dtype)."""


class OutOfMemoryError(Error, MemoryError):
    """PACA_ERR_OUT_OF_MEMORY."""


class ContextFullError(Error):
    """PACA_ERR_CONTEXT_FULL: the session's context cannot hold the tokens."""


class CancelledError(Error):
    """PACA_ERR_CANCELLED: Session.cancel(), Request.cancel() or a progress callback stopped the call."""


class DeviceError(Error):
    """PACA_ERR_DEVICE: a device is unavailable or failed."""


class StateError(Error):
    """PACA_ERR_STATE: the call is not valid in the object's state."""


class BusyError(Error):
    """PACA_ERR_BUSY: a queue is full (Engine: max_queued requests wait); try again later."""


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 (paca.TimeoutError, as asyncio's)
    """PACA_ERR_TIMEOUT: nothing happened within the time asked for."""


class InternalError(Error):
    """PACA_ERR_INTERNAL and any status this version does not know."""


_BY_STATUS = {
    1: InvalidArgumentError,
    2: FileError,
    3: FormatError,
    4: UnsupportedError,
    5: OutOfMemoryError,
    6: ContextFullError,
    7: CancelledError,
    8: DeviceError,
    10: StateError,
    11: BusyError,
    12: TimeoutError,
    99: InternalError,
}


def error_class(status: int) -> type:
    """The Error subclass raised for a paca_status."""
    return _BY_STATUS.get(status, InternalError)
