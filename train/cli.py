"""``rec-train``: the command line over :func:`movierec.train.pipeline.run_training`."""

from __future__ import annotations

import logging
import sys

import click

from movierec.serve_batch import contract
from movierec.serve_batch.cli_support import (
    EXIT_CODES_HELP,
    artifacts_option,
    quiet_option,
    run_command,
    setup_logging,
    version_option,
)
from movierec.train.config import TrainConfig
from movierec.train.options import (
    TRAINING_HELP,
    DataSource,
    columns_from_options,
    data_options,
    training_options,
)

log = logging.getLogger(__name__)

_EPILOG = (
    """\b
Data: --data takes a table of your own (a Parquet file, a folder of Parquet
files read as one table, or a .csv/.csv.gz file) with the columns named by
--user-col, --movie-col, --rating-col and --time-col (IDs may be integers or
text), or a MovieLens folder: ml-100k (u.data), ml-1m/ml-10m (ratings.dat) or
CSV (ratings.csv). A (user, movie) pair rated more than once keeps its latest
rating. Without --data, $MOVIEREC_DATA is used if set; otherwise MovieLens 100K
is downloaded once from GroupLens into ~/.cache/movierec (or $MOVIEREC_CACHE),
checked against its published SHA-256, and reused.
"""
    + TRAINING_HELP
    + """\b
Writes to --artifacts: checkpoint.pt, metrics.json, training_curves.png,
test_pairs.parquet and train_val_pairs.parquet (raw-ID pairs for rec-score, their ID
columns named as the data's), each whole (written to a temp name, then renamed).
"""
    + EXIT_CODES_HELP
)

#: What an interrupted rec-train leaves as it was (the line printed on SIGINT/SIGTERM).
UNTOUCHED = (
    "the files in --artifacts were left as they were, unless the run was writing them "
    "(each is replaced whole, never left half-written)"
)


@click.command(
    name="rec-train",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--data",
    type=DataSource(),
    default=None,
    help="The ratings: a Parquet file, a folder of Parquet files, a CSV file, a MovieLens "
    "folder (any of the three layouts), or a database URI (postgresql://USER@HOST:PORT/DB "
    "or sqlite:///PATH, with --table or --query; pip install 'movierec[db]'). "
    "[default: $MOVIEREC_DATA, else the cached ml-100k download]",
)
@data_options
@artifacts_option("Output folder for the checkpoint, metrics and plots.")
@training_options
@quiet_option()
@version_option()
def cli(
    arch: str,
    quiet: bool,
    user_col: str | None,
    movie_col: str | None,
    rating_col: str | None,
    time_col: str | None,
    title_col: str | None,
    **options,
) -> None:
    """Train RecommenderNet on a ratings table and keep the best checkpoint and its metrics."""
    from movierec.train.pipeline import run_training  # imports torch: keep --help fast

    setup_logging(quiet)
    columns = columns_from_options(user_col, movie_col, rating_col, time_col, title_col)
    config = TrainConfig.for_arch(arch, quiet=quiet, columns=columns, **options)
    result = run_training(config)
    m = result.metrics
    t = m["test"]
    log.info(
        "best epoch %d of %d in %.1fs | val RMSE %.4f | test RMSE %.4f MSE %.4f MAE %.4f | "
        "P@10 %.4f R@10 %.4f NDCG@10 %.4f",
        m["best_epoch"],
        m["epochs_run"],
        m["train_seconds"],
        m["val"]["rmse"],
        t["rmse"],
        t["mse"],
        t["mae"],
        t["precision@10"],
        t["recall@10"],
        t["ndcg@10"],
    )
    base = m["baselines"]
    log.info(
        "baselines | global mean test RMSE %.4f | popularity NDCG@10 %.4f",
        base["global_mean"]["test"]["rmse"],
        base["popularity"]["test"]["ndcg@10"],
    )
    log.info(
        "artifacts in %s (%s, %s, %s)",
        result.artifacts,
        contract.CHECKPOINT_FILE,
        contract.METRICS_FILE,
        contract.CURVES_FILE,
    )


def main() -> None:
    sys.exit(run_command(cli, untouched=UNTOUCHED))


if __name__ == "__main__":
    main()
