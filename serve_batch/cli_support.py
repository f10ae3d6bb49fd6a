"""One place that turns a command's outcome into an exit code (shared by every CLI).

Library code raises typed errors (``movierec.serve_batch.errors``) and never exits;
:func:`run_command` maps them, Click's usage errors, OS errors and signals to the codes
of :data:`EXIT_CODES_HELP`. Only a bug prints a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from movierec.serve_batch._config import ENGINES
from movierec.serve_batch.errors import (
    DatabaseUnavailable,
    GateRefused,
    Interrupted,
    LockHeld,
    MovieRecError,
    StorageError,
)

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
#: sysexits.h EX_IOERR and EX_TEMPFAIL (cron wrappers and systemd know them).
EXIT_OS_ERROR = 74
EXIT_LOCKED = 75
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM

#: Each typed error's exit code; the first matching class wins.
_ERROR_CODES: tuple[tuple[type[MovieRecError], int], ...] = (
    (GateRefused, EXIT_REFUSED),
    (LockHeld, EXIT_LOCKED),
    (StorageError, EXIT_OS_ERROR),
    (DatabaseUnavailable, EXIT_OS_ERROR),
    (MovieRecError, EXIT_BAD_INPUT),
)

#: Each exit code in a few words (rec-nightly's last line in a cron log).
EXIT_WORDS = {
    EXIT_OK: "done",
    EXIT_UNEXPECTED: "a bug",
    EXIT_BAD_INPUT: "bad input or usage",
    EXIT_REFUSED: "refused by a gate, nothing published",
    EXIT_OS_ERROR: "an operating-system error reading or writing",
    EXIT_LOCKED: "locked by another run",
    EXIT_SIGINT: "interrupted by SIGINT",
    EXIT_SIGTERM: "interrupted by SIGTERM",
}

#: The exit-code table of every command's ``--help`` (and of the README).
EXIT_CODES_HELP = """\b
Exit codes (the same for every movierec command):
  0    done
  2    bad input or usage (one line on stderr)
  3    refused by the data gate or the quality gate (rec-nightly; nothing
       published)
  74   an operating-system error while reading or writing, e.g. disk full
       (one line naming the path and the error), or a database that cannot
       be reached, refused the login or lost the connection
  75   another run holds the lock (rec-nightly; names its PID and start time)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (one line saying what was
       left untouched)
  1    a bug (traceback on stderr; please report it)
"""

#: The folder every stage reads from and writes to unless ``--artifacts`` says otherwise.
DEFAULT_ARTIFACTS = Path("artifacts")


def artifacts_option(help: str) -> Callable:
    """``--artifacts DIR``, the same option on every command (``help`` says what it holds)."""
    return click.option(
        "--artifacts",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_ARTIFACTS,
        show_default=True,
        help=help,
    )


def quiet_option(help: str = "Only warnings and errors (for cron).") -> Callable:
    """``--quiet``/``-q``, the same flag on every command."""
    return click.option("--quiet", "-q", is_flag=True, help=help)


def version_option() -> Callable:
    """``--version``: the installed movierec version, the same on every command."""
    return click.version_option(package_name="movierec", message="%(prog)s (movierec) %(version)s")


def exit_code_of(exc: BaseException) -> int:
    """The exit code a command ends with when ``exc`` escapes it (as :func:`run_command`
    maps it), for a library that records its own outcome (rec-nightly's run report)."""
    if isinstance(exc, MovieRecError):
        return next(code for kind, code in _ERROR_CODES if isinstance(exc, kind))
    if isinstance(exc, Interrupted):
        return 128 + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_SIGINT
    if isinstance(exc, OSError):
        return EXIT_OS_ERROR
    return EXIT_UNEXPECTED


def describe_os_error(exc: OSError) -> str:
    """``PATH: REASON`` in the system's words, without pyarrow's wrapping."""
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason if exc.errno else str(exc)


@contextlib.contextmanager
def signals_raise_interrupted() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM raise :class:`Interrupted`, so that cleanup
    (``finally``, context managers) runs and the command exits 130 or 143 with one line.
    Only the main thread can set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


#: ``--engine`` and the Ray engine's options, shared by rec-score and rec-nightly.
_ENGINE_OPTIONS = [
    click.option(
        "--ray-address",
        "address",
        default=None,
        metavar="ADDR",
        help="--engine ray: join this Ray cluster (HOST:PORT of its head node, or auto). "
        "[default: $RAY_ADDRESS when set, as under 'ray job submit'; else a local Ray "
        "instance on this machine]",
    ),
    click.option(
        "--workers",
        "actors",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="--engine ray: scoring actors, each with one onnxruntime session. "
        "[default: the cluster's CPUs // --threads-per-worker]",
    ),
    click.option(
        "--threads-per-worker",
        "threads_per_actor",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        metavar="T",
        help="--engine ray: onnxruntime threads (and CPUs reserved) per actor; "
        "N x T may not exceed the cluster's CPUs.",
    ),
]


def engine_options(engine_help: str) -> Callable:
    """``--engine local|ray`` (``engine_help`` says what ray changes for this command),
    ``--ray-address``, ``--workers``, ``--threads-per-worker``."""
    engine = click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="local",
        show_default=True,
        help=engine_help,
    )

    def decorate(func: Callable) -> Callable:
        for option in reversed(_ENGINE_OPTIONS):
            func = option(func)
        return engine(func)

    return decorate


def run_command(
    command: click.Command,
    args: list[str] | None = None,
    *,
    untouched: str = "",
    obj: object = None,
) -> int:
    """Run a Click command and map its outcome to the documented exit codes.

    ``untouched``: what an interrupted run of this command leaves as it was (printed on
    SIGINT/SIGTERM unless the library says more precisely, ``Interrupted.untouched``);
    ``obj``: the Click context's object (what the command's callbacks share).
    """
    try:
        with signals_raise_interrupted():
            command.main(args=args, standalone_mode=False, obj=obj)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.exceptions.Abort as exc:
        # Click turns a KeyboardInterrupt raised outside our handler into Abort
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            return _interrupted(Interrupted(signal.SIGINT), untouched)
        click.echo("Aborted.", err=True)
        return EXIT_UNEXPECTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_BAD_INPUT
    except MovieRecError as exc:
        click.echo(f"Error: {exc.render(flag_names(command))}", err=True)
        return exit_code_of(exc)
    except OSError as exc:
        click.echo(f"Error: {describe_os_error(exc)}", err=True)
        return EXIT_OS_ERROR
    except Interrupted as exc:
        return _interrupted(exc, untouched)
    except KeyboardInterrupt:
        return _interrupted(Interrupted(signal.SIGINT), untouched)
    except Exception:
        click.echo("Unexpected error (this is a bug; please report it):", err=True)
        traceback.print_exc()
        return EXIT_UNEXPECTED
    return EXIT_OK


def flag_names(command: click.Command) -> dict[str, str]:
    """How the command line spells each parameter the library names: ``top_k`` ->
    ``--top-k``, ``actors`` -> ``--workers``, ``input`` -> ``INPUT``."""
    names = {}
    for param in command.params:
        if param.name is None:
            continue
        if isinstance(param, click.Argument):
            names[param.name] = param.metavar or param.name.upper()
        else:
            long = [o for o in param.opts if o.startswith("--")]
            names[param.name] = (long or param.opts)[0]
    return names


def _interrupted(exc: Interrupted, untouched: str) -> int:
    what = exc.untouched or untouched
    click.echo(f"Interrupted by {exc.signal_name}" + (f": {what}" if what else "."), err=True)
    return 128 + exc.signum


def setup_logging(quiet: bool) -> None:
    """Log to stderr: INFO normally, WARNING and up with ``--quiet``."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    # matplotlib's INFO lines ("generated new fontManager" on first use) are its own
    # housekeeping, not the command's: only its warnings reach the log
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
