"""``rec-nightly``: the command line over :func:`movierec.nightly.pipeline.run_nightly`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from movierec.nightly.config import (
    DEFAULT_KEEP,
    DEFAULT_MAX_NDCG_DROP,
    DEFAULT_MAX_RMSE_INCREASE,
    DEFAULT_PUBLISH_TABLE,
    DEFAULT_TOP_K,
    NightlyConfig,
)
from movierec.serve_batch._config import RayOptions
from movierec.serve_batch.cli_support import (
    EXIT_CODES_HELP,
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
  2. train and evaluate as rec-train does (seeded split, early stopping)
  3. refit on every rating for the best epoch count (unless --no-refit)
  4. export into DIR/models/VERSION/ (model, catalog graph, mapping,
     metrics, curves, export report) with the parity proof
  5. gate against the model in service, DIR/models/current: refused (exit 3,
     nothing published, kept as DIR/models/rejected-VERSION/) when its test
     RMSE is higher by more than --max-rmse-increase or its NDCG@10 lower by
     more than --max-ndcg-drop; the first run publishes
  6. score every user's top-k (--users: only those), never a movie the user
     rated anywhere in the data, into DIR/recommendations/VERSION.parquet
  7. publish: switch the symlinks DIR/models/current and
     DIR/recommendations/latest.parquet (each atomically), then prune
     versions beyond --keep (never the one in service); with --publish,
     first load the table into the database as TABLE_VERSION (bulk load,
     index on the user column, ANALYZE) and switch the view TABLE to it in
     the same transaction, together with the links
  8. report: DIR/runs/VERSION.json (every run, also failed ones) and one
     summary line on stderr (also with --quiet)
An interrupted or killed run leaves current and latest.parquet (and the
database's view) as they were.
\b
Tables: user_id, rank, movie_id, predicted_rating, score, cold_start
[, title], the ID columns named as the data's (e.g. customer_id, rank, sku,
...); score is what the ranking sorts by (the model's rank_score).
"""
    + TRAINING_HELP
    + EXIT_CODES_HELP
)


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


@click.command(
    name="rec-nightly",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--data",
    type=DataSource(),
    required=True,
    help="Every rating: a Parquet file, a folder of Parquet files, a CSV file (columns "
    "named by --user-col, --movie-col, --rating-col, --time-col; integer or text IDs), a "
    "MovieLens folder (ml-100k, ml-1m or CSV layout), or a database URI with --table or "
    "--query.",
)
@data_options
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="Folder the job owns: models/, recommendations/, runs/ and the lock (created if missing).",
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
    "--refit/--no-refit",
    default=True,
    show_default=True,
    help="Train again on every rating for the best epoch count before export (the "
    "published metrics stay the evaluation run's holdout metrics).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Publish even if the gate refuses (the report records it).",
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
def cli(
    data: Path,
    home: Path,
    users: Path | None,
    top_k: int,
    titles: bool,
    keep: int,
    max_rmse_increase: float,
    max_ndcg_drop: float,
    refit: bool,
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
    """Train, gate, score and publish the nightly recommendation tables in one safe run."""
    import importlib.util

    from movierec.nightly.pipeline import run_nightly
    from movierec.train.config import TrainConfig

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
        refit=refit,
        force=force,
        ray=RayOptions.for_engine(
            engine, address=address, actors=actors, threads_per_actor=threads_per_actor
        ),
        quiet=quiet,
        publish=publish,
        publish_table=publish_table,
    )
    result = run_nightly(config)
    click.echo(result.summary, err=True)


#: What an interrupted run leaves as it was (the run itself says it more precisely).
UNTOUCHED = "DIR/models/current and DIR/recommendations/latest.parquet were left as they were"


def main() -> None:
    """Entry point of the ``rec-nightly`` script."""
    sys.exit(run_command(cli, untouched=UNTOUCHED))


if __name__ == "__main__":
    main()
