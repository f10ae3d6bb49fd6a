"""The commands beside the nightly run: ``status``, ``rollback`` and ``report``.

Each body builds its inputs and calls one library function (``_status``, ``_rollback``,
``_report``). None of them imports torch: they answer in about a second, also on a
machine where a run is going (``status`` and ``report`` take no lock and write nothing
a run uses; ``rollback`` takes the lock).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import click

from movierec.nightly._cronlog import RunLog
from movierec.nightly.config import DEFAULT_PUBLISH_TABLE
from movierec.serve_batch.cli_support import quiet_option, setup_logging
from movierec.serve_batch.errors import UsageError

_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class DatabaseURIType(click.ParamType):
    """A database URI, parsed at once (movierec.db imported only then); a refusal never
    repeats the value, which may hold a password."""

    name = "URI"

    def convert(self, value, param, ctx):
        from movierec.db import parse_database_uri

        if not isinstance(value, str):
            return value
        try:
            return parse_database_uri(value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


home_option = click.option(
    "--home",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="The nightly job's home folder (rec-nightly --home).",
)

metrics_file_option = click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="Write the run's metrics for Prometheus here after every run, in node_exporter's "
    "textfile-collector format (a .prom file in the collector's folder; replaced whole). "
    "[default: none]",
)


@click.command(
    name="status",
    short_help="What is in service, the last run, what the next prune removes.",
    context_settings=_SETTINGS,
    epilog="Exit codes: 0 done, 2 not a home folder; see rec-nightly --help.",
)
@home_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines for people.")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="The next run's --keep, for what its prune removes. [default: the last run's]",
)
def status(home: Path, as_json: bool, keep: int | None) -> None:
    """What is in service (version, when it was published, its metrics, the table's rows
    and users), the last run and how it ended, and what the next prune removes.
    Reads the home folder only: safe while a run is going."""
    from movierec.nightly._status import format_status, read_status

    found = read_status(home, keep=keep)
    click.echo(json.dumps(found, indent=2) if as_json else format_status(found))


@click.command(
    name="rollback",
    short_help="Put an earlier published version back in service.",
    context_settings=_SETTINGS,
    epilog="Exit codes: 0 done, 2 no such version or nothing to roll back, 75 a run holds "
    "the lock (nothing changed); see rec-nightly --help.",
)
@home_option
@click.argument("version", required=False)
@click.option(
    "--publish",
    type=DatabaseURIType(),
    default=None,
    metavar="URI",
    help="The database the runs publish into (rec-nightly --publish): point its view at "
    "VERSION's table too, under the same lock. [default: the links only]",
)
@click.option(
    "--publish-table",
    default=DEFAULT_PUBLISH_TABLE,
    show_default=True,
    metavar="NAME",
    help="The view the runs switch (rec-nightly --publish-table).",
)
@metrics_file_option
@quiet_option("Warnings, errors and the summary line only.")
@click.pass_context
def rollback(
    ctx: click.Context,
    home: Path,
    version: str | None,
    publish: object,
    publish_table: str,
    metrics_file: Path | None,
    quiet: bool,
) -> None:
    """Put VERSION back in service: switch DIR/models/current and
    DIR/recommendations/latest.parquet to it (and with --publish the database's view),
    atomically and under the job's lock, and record a run report with status
    rolled-back. VERSION defaults to the version published before the one in service;
    it must be kept (see --keep)."""
    from movierec.nightly._metrics_file import check_metrics_path
    from movierec.nightly._rollback import RollbackConfig, roll_back

    run_log = ctx.find_object(RunLog)
    if run_log is not None:
        run_log.ran = True
    setup_logging(quiet)
    if metrics_file is not None:
        check_metrics_path(metrics_file)
    result = roll_back(
        RollbackConfig(
            home=home,
            to=version,
            metrics_file=metrics_file,
            publish=publish,
            publish_table=publish_table,
        ),
        started=run_log.started if run_log else None,
        on_version=run_log.set_version if run_log else None,
    )
    click.echo(result.summary, err=True)


@click.command(
    name="report",
    short_help="Write the HTML report of the nights (also DIR/report.html after every run).",
    context_settings=_SETTINGS,
    epilog="Exit codes: 0 done, 2 bad usage, 74 the file cannot be written; see "
    "rec-nightly --help.",
)
@home_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="Where to write the page. [default: DIR/report.html, which every run rewrites]",
)
@click.option(
    "--nights",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Show the newest N runs (0: all of them). [default: 90]",
)
def report(home: Path, out: Path | None, nights: int | None) -> None:
    """Write the HTML report of the nights: one self-contained file (no network needed)
    with the table of runs, plots of their metrics, stage times, memory, data counts and
    list quality, and the version in service's sample lists and most recommended movies."""
    for module in ("jinja2", "matplotlib"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(
                f"rec-nightly report needs {module}: pip install -c constraints.txt "
                "'movierec[train]'"
            )
    from movierec.nightly._home import Home
    from movierec.nightly._report import DEFAULT_NIGHTS, write_html_report

    written = write_html_report(Home(home), out, DEFAULT_NIGHTS if nights is None else nights)
    click.echo(str(written))


SUBCOMMANDS = (status, rollback, report)
