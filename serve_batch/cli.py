"""``rec-score``: the command line over :func:`movierec.serve_batch.score`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from movierec.serve_batch import contract
from movierec.serve_batch._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CATALOG_TOP_K,
    GRAPH_OPT_LEVELS,
    UNKNOWN_POLICIES,
    RayOptions,
    RuntimeOptions,
    ScoreConfig,
    ScoreJob,
)
from movierec.serve_batch._driver import score
from movierec.serve_batch._session import RUN_ROWS
from movierec.serve_batch.cli_support import (
    EXIT_CODES_HELP,
    artifacts_option,
    engine_options,
    quiet_option,
    run_command,
    setup_logging,
    version_option,
)

_EPILOG = (
    """\b
Files: INPUT, OUTPUT and the other tables are Parquet or CSV, chosen by the
ending: .parquet, .csv, .csv.gz (gzip). INPUT and --exclude may be folders of
Parquet files (read in name order); an OUTPUT without an ending (no dot in its
name) is written as a folder of Parquet parts with a _SUCCESS marker.
\b
IDs: the ID columns and their types come from the model (id_mapping.json records
the training data's column names and whether its user and movie IDs are integers
or strings). Outputs keep the input's column names, with the IDs in the model's
types. String IDs are matched exactly (no trimming, case kept: "007" is not "7"),
and an integer column given for them is read as its decimal text.
\b
Unknown IDs (--unknown fallback): unknown user + known movie -> the movie's
fallback mean; known user + unknown movie -> the user's; both unknown -> the
global mean; clipped to the rating scale, and the row gets cold_start=true.
\b
Outputs are written to hidden temp files in the same folder (created if
missing) and renamed into place only when the whole run succeeds (a failed run
leaves OUTPUT untouched). A JSON run summary is written to OUTPUT.manifest.json.
An input with a header and no rows gives an empty table with every column.
\b
Top-k tables: USER, rank, MOVIE, predicted_rating, score, cold_start [, title],
where USER and MOVIE are the --user-col and --movie-col in use. predicted_rating
is the rating the model predicts; score is the value the ranking sorts by (the
model's rank_score output, which mixes its ranking head with the rating; the
rating itself for a model without one), so rank 1 has the highest score but not
always the highest predicted_rating. Rows are ordered
by user, then rank. Integer IDs sort by value; string IDs the model knows sort by
code point, followed by cold-start (unknown) ones, also by code point.
"""
    + EXIT_CODES_HELP
)

#: What an interrupted rec-score leaves as it was (the line printed on SIGINT/SIGTERM).
UNTOUCHED = (
    "OUTPUT, its top-k table and manifest were left as they were (nothing is renamed "
    "into place before the whole run succeeds)"
)


@click.command(
    name="rec-score",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument(
    "input",
    metavar="INPUT",
    type=click.Path(exists=True, path_type=Path),  # a file, or a folder of Parquet files
)
@click.argument("output", metavar="OUTPUT", type=click.Path(path_type=Path))
@artifacts_option(f"Folder with {contract.MODEL_FILE} and {contract.MAPPING_FILE} from rec-export.")
@click.option(
    "--user-col",
    default=None,
    metavar="NAME",
    help="Column of raw user IDs in INPUT (USERS in catalog mode) and --exclude, and the "
    "name of the user column of the top-k table. [default: the model's user column, "
    f"recorded in {contract.MAPPING_FILE}; {contract.USER_COL} for a model exported "
    "without one]",
)
@click.option(
    "--movie-col",
    default=None,
    metavar="NAME",
    help="Column of raw movie IDs in INPUT and --exclude, and the name of the movie column "
    "of the top-k table. [default: the model's movie column, recorded in "
    f"{contract.MAPPING_FILE}; {contract.MOVIE_COL} for a model exported without one]",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Also write each user's K best pairs as a long table USER, rank, MOVIE, "
    "predicted_rating, score, cold_start (USER, MOVIE: the ID columns). score is what the "
    "ranking sorts by: the model's rank_score output (its ranking head mixed with the "
    "rating), or the rating if it has none; rank 1 has the highest score, cold-start pairs "
    "come last, ties by movie ID ascending. "
    f"[default: no table; {DEFAULT_CATALOG_TOP_K} with --all-movies]",
)
@click.option(
    "--titles",
    is_flag=True,
    help="Add a title column to the top-k table: each movie's title from the ID mapping "
    "(empty where the training data had no titles).",
)
@click.option(
    "--top-k-output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="Where the --top-k table goes. [default: OUTPUT with .topk before the "
    "extension, e.g. out.topk.parquet]",
)
@click.option(
    "--unknown",
    "on_unknown",
    type=click.Choice(UNKNOWN_POLICIES),
    default="fallback",
    show_default=True,
    help="Pairs whose user or movie is not in the ID mapping: fallback = score with the "
    "fallback means and mark cold_start; skip = drop them; error = fail (exit 2) with the "
    "count and first IDs.",
)
@click.option(
    "--all-movies",
    is_flag=True,
    help="Catalog mode: INPUT lists users (only the user column is needed; duplicates "
    "scored once); every movie in the mapping is scored for each user and OUTPUT is the "
    "top-k table.",
)
@click.option(
    "--exclude",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    metavar="RATINGS",
    help="Catalog mode: pairs file (user and movie columns, Parquet or CSV) of movies "
    "users already rated; these are never recommended.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Pairs per record batch read, scored and written together (rows); each "
    f"onnxruntime call takes at most {RUN_ROWS} of them.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Scoring threads, each running single-threaded onnxruntime calls side by side; "
    "0 = one per core.",
)
@click.option(
    "--graph-opt",
    type=click.Choice(GRAPH_OPT_LEVELS),
    default="all",
    show_default=True,
    help="onnxruntime graph optimisation level.",
)
@engine_options("local = this process; ray = a Ray Data job (pip install 'movierec[ray]').")
@quiet_option(
    "Warnings and errors only, no progress bar (for cron). The bar is also off when "
    "stderr is not a terminal."
)
@version_option()
def cli(
    quiet: bool,
    engine: str,
    address: str | None,
    actors: int | None,
    threads_per_actor: int,
    batch_size: int,
    threads: int,
    graph_opt: str,
    **job: object,
) -> None:
    """Score (user, movie) pairs of INPUT with an exported movierec model, no PyTorch.

    Pairs mode (default): OUTPUT has every kept INPUT row, in input order, with its
    extra columns unchanged, plus predicted_rating (float32, within the rating scale)
    and cold_start (true where the fallback was used). If INPUT has a 'rating' column,
    the manifest reports RMSE and MAE.

    Catalog mode (--all-movies): USERS OUTPUT, writes each user's top-k movies.
    """
    setup_logging(quiet)
    score(
        ScoreConfig(
            job=ScoreJob(**job),
            runtime=RuntimeOptions(
                batch_size=batch_size, threads=threads, graph_opt=graph_opt, quiet=quiet
            ),
            ray=RayOptions.for_engine(
                engine, address=address, actors=actors, threads_per_actor=threads_per_actor
            ),
        )
    )


def main() -> None:
    """Entry point of the ``rec-score`` script."""
    sys.exit(run_command(cli, untouched=UNTOUCHED))
