"""One small exception tree, so the CLI can tell expected failures from bugs.

An :class:`EdgeprofError` is "not a bug": bad input, a missing device, a file that is not what it
claims. The CLI prints its message on one line and exits 2. Anything else is a bug and keeps its
traceback.
"""


class EdgeprofError(Exception):
    """An expected failure with a message meant for people."""


class InputError(EdgeprofError):
    """Something from outside (a file, a sysfs value, a flag) is malformed or missing."""


class NativeError(EdgeprofError):
    """The C core refused an operation (a file it could not open, a bad parameter)."""


class UnavailableError(EdgeprofError):
    """A facility this machine does not offer (no perf counters, no power rails)."""
