"""rec-nightly's stderr as a cron log: every line starts with the run's version.

A cron log collects many nights, and a line such as ``Error: ratings.csv line 1: ...``
does not say which night wrote it. While the command runs, ``sys.stderr`` is wrapped so
that every line written to it, by logging, Click, warnings or a traceback, starts with
the version: the run's UTC start time (``20250301T021500Z``; with ``-2``... where the
home already had that name, from the moment the run holds the lock). The command's last
line states its exit status in words and number. Writes that bypass Python (a C
library writing to file descriptor 2 itself) are not prefixed.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

_BREAKS = re.compile(r"([\r\n])")


class RunLog:
    """The label at the start of each stderr line, and what the command did."""

    def __init__(self, started: datetime | None = None) -> None:
        self.started = started or datetime.now(UTC)
        self.label = self.started.strftime("%Y%m%dT%H%M%SZ")
        self.ran = False  # a run or a rollback started (its exit status is worth a line)

    def set_version(self, version: str) -> None:
        self.label = version


class PrefixedStream:
    """A text stream that starts each line written through it with ``log.label``.

    Carriage returns start a line too (a progress bar redraws its line), and the label
    is written only before text, so a line is never left holding a label alone.
    """

    def __init__(self, stream: TextIO, log: RunLog) -> None:
        self._stream = stream
        self._log = log
        self._at_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in _BREAKS.split(text):
            if piece in ("\n", "\r"):
                out.append(piece)
                self._at_start = True
            elif piece:
                if self._at_start:
                    out.append(f"{self._log.label} ")
                    self._at_start = False
                out.append(piece)
        self._stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:  # progress bars show on a terminal only
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def prefixed_stderr(log: RunLog) -> Iterator[None]:
    """Within the block, every line written to ``sys.stderr`` starts with the label."""
    previous = sys.stderr
    sys.stderr = PrefixedStream(previous, log)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = previous
