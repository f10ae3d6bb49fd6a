"""Errors that mean "the user gave us something wrong" (exit code 2, one clear line).

Anything else that escapes a command is a bug and exits with code 1 and a traceback.
"""

from __future__ import annotations


class MovieRecError(Exception):
    """Base class of every expected, user-facing failure."""


class DataError(MovieRecError):
    """Input data is missing, malformed or inconsistent."""


class ArtifactError(MovieRecError):
    """A checkpoint, model or mapping is missing, corrupt, or belongs to something else."""


class ParityError(MovieRecError):
    """The exported model does not score like the PyTorch model."""


class UsageError(MovieRecError):
    """Options that cannot work together, or an output that cannot be written."""
