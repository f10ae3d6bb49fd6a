"""``rec-nightly``: the command line over :func:`movierec.nightly.pipeline.run_nightly`,
with the subcommands ``status``, ``rollback`` and ``report`` beside the plain run
(``nightly/_subcommands.py``). Crontabs run the plain command, so it is the group's own
callback: ``rec-nightly --data ... --home ...`` works exactly as before."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from movierec.nightly._cronlog import RunLog, prefixed_stderr
from movierec.nightly._subcommands import SUBCOMMANDS, DatabaseURIType, metrics_file_option
from movierec.nightly.config import (
    DEFAULT_KEEP,
    DEFAULT_MAX_DATA_DROP,
    DEFAULT_MAX_NDCG_DROP,
    DEFAULT_MAX_RMSE_INCREASE,
    DEFAULT_PUBLISH_TABLE,
    DEFAULT_TOP_K,
    NightlyConfig,
)
from movierec.serve_batch._config import RayOptions
from movierec.serve_batch.cli_support import (
    EXIT_CODES_HELP,
    EXIT_WORDS,
    engine_options,
    quiet_option,
    run_command,
    setup_logging,
    version_option,
)
from movierec.serve_batch.errors import UsageError
from movierec.train.options import (
    TRAINING_HELP,
    DataSource,
    columns_from_options,
    data_options,
    training_options,
)

_EPILOG = (
    """\b
One run, named after its UTC start time (VERSION, e.g. 20250101T021500Z):
  1. lock DIR/.lock (another run holding it: exit 75 at once)
  2. load the data (without --data: $MOVIEREC_DATA, else the cached ml-100k
     download, as rec-train) and gate it: refused (exit 3, nothing trained)
     when its ratings, users or movies shrank by more than --max-data-drop
     since the last published run, or its newest rating is older than the
     one the model in service saw
  3. train and evaluate as rec-train does (seeded split, early stopping)
  4. refit on every rating for the best epoch count (unless --no-refit)
  5. export into DIR/models/VERSION/ (model, catalog graph, mapping,
     metrics, curves, export report) with the parity proof
  6. gate against the model in service, DIR/models/current: refused (exit 3,
     nothing published, kept as DIR/models/rejected-VERSION/) when its test
     RMSE is higher by more than --max-rmse-increase or its NDCG@10 lower by
     more than --max-ndcg-drop; the first run publishes
  7. score every user's top-k (--users: only those), never a movie the user
     rated anywhere in the data, into DIR/recommendations/VERSION.parquet;
     measure its coverage and concentration beside the popularity baseline
  8. publish: switch the symlinks DIR/models/current and
     DIR/recommendations/latest.parquet (each atomically), then prune
     versions beyond --keep (never the one in service); with --publish,
     first load the table into the database as TABLE_VERSION (bulk load,
     index on the user column, ANALYZE) and switch the view TABLE to it in
     the same transaction, together with the links
  9. report: DIR/runs/VERSION.json (every run, also failed ones),
     DIR/report.html, the --metrics-file, and one summary line on stderr
     (also with --quiet)
An interrupted or killed run leaves current and latest.parquet (and the
database's view) as they were. Every line on stderr starts with VERSION; the
last one gives the exit status.
\b
Tables: user_id, rank, movie_id, predicted_rating, score, cold_start
[, title], the ID columns named as the data's (e.g. customer_id, rank, sku,
...); score is what the ranking sorts by (the model's rank_score).
"""
    + TRAINING_HELP
    + EXIT_CODES_HELP
)


@click.group(
    name="rec-nightly",
    epilog=_EPILOG,
    invoke_without_command=True,
    subcommand_metavar="[status|rollback|report] ...",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--data",
    type=DataSource(),
    default=None,
    help="Every rating: a Parquet file, a folder of Parquet files, a CSV file (columns "
    "named by --user-col, --movie-col, --rating-col, --time-col; integer or text IDs), a "
    "MovieLens folder (ml-100k, ml-1m or CSV layout), or a database URI with --table or "
    "--query. [default: $MOVIEREC_DATA, else the cached ml-100k download, as rec-train]",
)
@data_options
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Folder the job owns: models/, recommendations/, runs/, report.html and the lock "
    "(created if missing). Required for the nightly run.",
)
@click.option(
    "--users",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="USERS",
    help="Parquet or CSV file with the user column (--user-col): score only these users "
    "(IDs absent from the data get the fallback ranking, cold_start=true). [default: "
    "every user in the data]",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=DEFAULT_TOP_K,
    show_default=True,
    metavar="K",
    help="Movies per user in the table.",
)
@click.option("--titles", is_flag=True, help="Add a title column (from the data's movie titles).")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=DEFAULT_KEEP,
    show_default=True,
    metavar="N",
    help="Published versions (models and tables) to keep; older ones are pruned, never "
    "the one in service. Refused candidates are pruned beyond the newest N too; run "
    "reports are kept.",
)
@click.option(
    "--max-rmse-increase",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_RMSE_INCREASE,
    show_default=True,
    help="Gate: largest rise in test RMSE over the model in service that still publishes.",
)
@click.option(
    "--max-ndcg-drop",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_NDCG_DROP,
    show_default=True,
    help="Gate: largest fall in test NDCG@10 below the model in service that still publishes.",
)
@click.option(
    "--max-data-drop",
    type=click.FloatRange(min=0, max=1),
    default=DEFAULT_MAX_DATA_DROP,
    show_default=True,
    metavar="SHARE",
    help="Data gate: largest shrink of the ratings, users or movies since the last "
    "published run that still trains (0.1 = 10%).",
)
@metrics_file_option
@click.option(
    "--refit/--no-refit",
    default=True,
    show_default=True,
    help="Train again on every rating for the best epoch count before export (the "
    "published metrics stay the evaluation run's holdout metrics).",
)
@click.option(
    "--refit-from",
    type=click.Choice(["evaluated", "scratch"]),
    default=None,
    help="Where the refit starts: 'evaluated' continues from the evaluation run's weights "
    "on every rating; 'scratch' trains a new network for the evaluation run's best epoch "
    "count (at 25M ratings several times the time, for the same quality on the newest "
    "ratings: README, The night at scale). [default: scratch up to 500,000 training "
    "ratings, evaluated above]",
)
@click.option(
    "--force",
    is_flag=True,
    help="Train and publish even if the data gate or the quality gate refuses (the "
    "report records it).",
)
@click.option(
    "--publish",
    type=DatabaseURIType(),
    default=None,
    metavar="URI",
    help="Also publish the table into this database (pip install 'movierec[db]'): "
    "postgresql://USER@HOST:PORT/DB or sqlite:///PATH. Give the PostgreSQL password in "
    "~/.pgpass or PGPASSWORD rather than in the URI (a command line is visible to "
    "every user of the machine); it is never written anywhere.",
)
@click.option(
    "--publish-table",
    default=DEFAULT_PUBLISH_TABLE,
    show_default=True,
    metavar="TABLE",
    help="--publish: the view readers query (NAME or SCHEMA.NAME); each version's rows "
    "are in the table TABLE_VERSION behind it.",
)
@training_options
@engine_options(
    "Scoring engine: local = this process; ray = a Ray Data job "
    "(pip install 'movierec[ray]'; see the README's Ray section)."
)
@quiet_option("Warnings, errors and the summary line only (for cron); no progress bars.")
@version_option()
@click.pass_context
def cli(
    ctx: click.Context,
    data: Path | None,
    home: Path | None,
    users: Path | None,
    top_k: int,
    titles: bool,
    keep: int,
    max_rmse_increase: float,
    max_ndcg_drop: float,
    max_data_drop: float,
    metrics_file: Path | None,
    refit: bool,
    refit_from: str,
    force: bool,
    publish,
    publish_table: str,
    engine: str,
    address: str | None,
    actors: int | None,
    threads_per_actor: int,
    quiet: bool,
    arch: str,
    user_col: str | None,
    movie_col: str | None,
    rating_col: str | None,
    time_col: str | None,
    title_col: str | None,
    **training: object,
) -> None:
    """Train, gate, score and publish the nightly recommendation tables in one safe run.

    With a command (status, rollback, report): that command instead."""
    import importlib.util

    from movierec.nightly.pipeline import run_nightly
    from movierec.train.config import TrainConfig

    if ctx.invoked_subcommand is not None:
        given = [
            p.opts[0]
            for p in ctx.command.params
            if ctx.get_parameter_source(p.name) is not click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} belong to the nightly run, not to "
                f"'{ctx.invoked_subcommand}': give that command's own options after its name"
            )
        return
    if home is None:
        raise click.UsageError("Missing option '--home' (the folder the nightly job owns).")
    run_log = ctx.find_object(RunLog)
    if run_log is not None:
        run_log.ran = True
    if importlib.util.find_spec("torch") is None:
        raise UsageError(
            "rec-nightly trains a model and needs PyTorch: pip install -c constraints.txt "
            "'movierec[train]'"
        )

    setup_logging(quiet)
    config = NightlyConfig(
        data=data,
        home=home,
        train=TrainConfig.for_arch(
            arch,
            data=data,
            quiet=quiet,
            columns=columns_from_options(user_col, movie_col, rating_col, time_col, title_col),
            **training,
        ),
        users=users,
        top_k=top_k,
        titles=titles,
        keep=keep,
        max_rmse_increase=max_rmse_increase,
        max_ndcg_drop=max_ndcg_drop,
        max_data_drop=max_data_drop,
        metrics_file=metrics_file,
        refit=refit,
        refit_from=refit_from,
        force=force,
        ray=RayOptions.for_engine(
            engine, address=address, actors=actors, threads_per_actor=threads_per_actor
        ),
        quiet=quiet,
        publish=publish,
        publish_table=publish_table,
    )
    started = run_log.started if run_log else None
    on_version = run_log.set_version if run_log else None
    result = run_nightly(config, started=started, on_version=on_version)
    click.echo(result.summary, err=True)


for _command in SUBCOMMANDS:
    cli.add_command(_command)

#: What an interrupted run leaves as it was (the run itself says it more precisely).
UNTOUCHED = "DIR/models/current and DIR/recommendations/latest.parquet were left as they were"


def run(args: list[str] | None = None) -> int:
    """Run ``rec-nightly`` with ``args`` (None: the command line) and return its exit
    code: every stderr line starts with the version, and a run's last line says how it
    ended (``rec-nightly exit 3 (refused by a gate, nothing published)``)."""
    run_log = RunLog()
    with prefixed_stderr(run_log):
        code = run_command(cli, args, untouched=UNTOUCHED, obj=run_log)
        if run_log.ran or code != 0:
            click.echo(f"rec-nightly exit {code} ({EXIT_WORDS.get(code, 'unknown')})", err=True)
    return code


def main() -> None:
    """Entry point of the ``rec-nightly`` script."""
    sys.exit(run())


if __name__ == "__main__":
    main()
