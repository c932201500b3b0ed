"""The whole exception tree, so the CLI can tell expected failures from bugs.

An :class:`EdgeprofError` is "not a bug": bad input, a missing device, a file that is not what it
claims, a collector that refused or did not answer. The CLI prints its message on one line and
exits :data:`edgeprof.exit_codes.ERROR`. Anything else is a bug and keeps its traceback.

The MCU link's errors (``edgeprof.bridge.transport.LinkError``,
``edgeprof.bridge.protocol.DeviceError`` and its one-per-device-error-code subclasses) stay next
to the wire tables they mirror; they derive from :class:`EdgeprofError` here.
"""


class EdgeprofError(Exception):
    """An expected failure with a message meant for people."""


class InputError(EdgeprofError):
    """Something from outside (a file, a sysfs value, a flag) is malformed or missing."""


class SchemaVersionError(InputError):
    """A well-formed report of a major version this reader does not know."""


class NativeError(EdgeprofError):
    """The C core refused an operation (a file it could not open, a bad parameter)."""


class UnavailableError(EdgeprofError):
    """A facility this machine does not offer (no perf counters, no power rails)."""


class CollectorError(EdgeprofError):
    """The collector answered with an error, or not at all."""


class CollectorUnreachableError(CollectorError):
    """No (whole) answer: refused, reset, timed out, closed early, too large, TLS refused.

    ``transient`` says whether trying again later can help: a refused TLS certificate will be
    refused again, a reset connection may not be.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class PushBusyError(EdgeprofError):
    """Another push holds the spool lock; this one did nothing."""
