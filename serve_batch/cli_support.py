"""One place that turns a command's outcome into an exit code (shared by all three CLIs).

0 success; 2 bad usage or bad input (a ``MovieRecError`` or a Click usage error: one
clear line on stderr, no traceback); 1 anything unexpected (traceback on stderr).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from movierec.serve_batch.errors import MovieRecError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2

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


def run_command(command: click.Command, args: list[str] | None = None) -> int:
    """Run a Click command and map its outcome to the documented exit codes."""
    try:
        command.main(args=args, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_UNEXPECTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_BAD_INPUT
    except MovieRecError as exc:
        click.echo(f"Error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception:
        click.echo("Unexpected error (this is a bug; please report it):", err=True)
        traceback.print_exc()
        return EXIT_UNEXPECTED
    return EXIT_OK


def setup_logging(quiet: bool) -> None:
    """Log to stderr: INFO normally, WARNING and up with ``--quiet``."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
