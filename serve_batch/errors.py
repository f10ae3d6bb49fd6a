"""The errors library code raises; ``movierec.serve_batch.cli_support`` alone maps them to
the exit codes every command shares.

A ``MovieRecError`` means "expected, explain it in one line": bad input or usage (2),
a refusal by the data or the quality gate (3), an operating-system error while reading
or writing or a database that cannot be reached (74), another run holding the lock (75).
``Interrupted`` is a signal that stopped the run (130, 143). Anything else that escapes
a command is a bug (1, with a traceback).
"""

from __future__ import annotations

import signal
from collections.abc import Mapping


class MovieRecError(Exception):
    """Base class of every expected, user-facing failure.

    Messages name parameters the way Python callers spell them (``top_k``); a message
    that names one writes it as ``{top_k}`` and lists it in ``params``, so that a command
    line can show its own spelling instead (``--top-k``, see :meth:`render`).
    """

    def __init__(self, message: str = "", *, params: tuple[str, ...] = ()) -> None:
        self.template = str(message)
        self.params = tuple(params)
        super().__init__(self.render())

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each parameter spelled as ``names`` says (Python's default)."""
        names = names or {}
        text = self.template
        for param in self.params:
            text = text.replace("{" + param + "}", names.get(param, param))
        return text

    def __reduce__(self):  # keeps the template through pickling (Ray workers)
        return (_rebuild, (type(self), self.template, self.params))


def _rebuild(kind: type, template: str, params: tuple[str, ...]) -> MovieRecError:
    error = kind.__new__(kind)
    MovieRecError.__init__(error, template, params=params)
    return error


class DataError(MovieRecError):
    """Input data is missing, malformed or inconsistent."""


class ArtifactError(MovieRecError):
    """A checkpoint, model or mapping is missing, corrupt, or belongs to something else."""


class ParityError(MovieRecError):
    """The exported model does not score like the PyTorch model."""


class UsageError(MovieRecError):
    """Options that cannot work together, or an output that cannot be written."""


class GateRefused(MovieRecError):
    """A gate refused the run: the data gate (tonight's data shrank or went stale) or the
    quality gate (the candidate scores worse than the model in service)."""


class LockHeld(MovieRecError):
    """Another run holds the lock of the folder this run would write."""


class StorageError(MovieRecError):
    """The operating system failed a read or a write (disk full, I/O error, ...).

    ``path`` is the file the run was reading or writing (the target, never a hidden
    temporary), ``reason`` the system's words for what went wrong.
    """

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # keeps the two arguments through pickling (Ray workers)
        return (type(self), (self.path, self.reason))


class DatabaseUnavailable(MovieRecError):
    """A database could not be reached or used for a reason outside the data: the server
    is down or unreachable, it refused the login, the connection was lost, it is out of
    disk or a lock stayed busy. Exit 74 like an OS error: trying again later may work.
    (A missing table or column, a bad query or a denied permission is a ``DataError``.)"""


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped the run.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception``
    swallows it while the writers' cleanup (``finally``, context managers) still runs.
    ``untouched`` says what the run left exactly as it was, for the one line on stderr.
    """

    def __init__(self, signum: int, untouched: str = "") -> None:
        super().__init__(signum, untouched)
        self.signum = int(signum)
        self.untouched = untouched

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name
