"""The training options of ``rec-train``, defined once and shared with ``rec-nightly``.

Click only (no torch), so ``--help`` stays fast. Every option defaults to None: a value
left unset takes the preset of ``--arch`` (``TrainConfig.for_arch``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from movierec.db._uri import is_database_uri, parse_database_uri
from movierec.serve_batch.errors import UsageError
from movierec.train.config import PRESETS, SPLITS
from movierec.train.data import Columns

#: The part of ``--help`` that explains the split and the presets.
TRAINING_HELP = """\b
Split (--split random, the default): IDs are mapped to consecutive indices, then
train_test_split(test_size, random_state=SEED) and the rest halved into validation
and test (70/15/15). --split time and user-time order the ratings by time instead.
\b
Options left unset take the preset of --arch:
  hybrid: epochs 40, lr 4e-3, embedding 32, hidden 64, factors 64, reg 0.05,
          weight decay 1e-3, rank factors 32, item-item rank head, side
          features off, implicit caps 1024, 1 thread; up to 500,000 training
          ratings batch 2048, patience 2, implicit terms on, ema 0.97 and a refit
          on train + validation; above that batch 8192, patience 1, implicit
          terms, ema and that refit off (the implicit terms cost ~4x per rating at
          175k training ratings, ~30x at 3.5M)
  seed:   epochs 6, batch 64, lr 5e-4, embedding 100, hidden 128,64, no factors,
          biases, ranking head or implicit terms (the notebook's network)
"""


def _parse_hidden(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    if value.strip() in ("", "none"):
        return ()
    try:
        widths = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers like 128,64, got {value!r}"
        ) from None
    if any(w < 1 for w in widths):
        raise click.BadParameter(f"layer widths must be positive, got {value!r}")
    return widths


_OPTIONS = [
    click.option(
        "--arch",
        type=click.Choice(sorted(PRESETS)),
        default="hybrid",
        show_default=True,
        help="Network: 'hybrid' (MLP + matrix factorisation + biases, bounded output) "
        "or 'seed' (the notebook's exact MLP).",
    ),
    click.option(
        "--seed",
        type=int,
        default=42,
        show_default=True,
        help="Seeds the split and the model's initialisation and shuffling.",
    ),
    click.option(
        "--epochs",
        type=click.IntRange(min=1),
        default=None,
        help="Maximum epochs. [default: per --arch]",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="Ratings per optimiser step. [default: per --arch; hybrid: 2048, or 8192 above "
        "500,000 training ratings]",
    ),
    click.option(
        "--lr",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Adam learning rate. [default: per --arch]",
    ),
    click.option(
        "--embedding-dim",
        type=click.IntRange(min=1),
        default=None,
        help="Width of each side's embedding fed to the MLP. [default: per --arch]",
    ),
    click.option(
        "--hidden",
        callback=_parse_hidden,
        default=None,
        metavar="W1,W2,...",
        help="Hidden layer widths of the MLP, e.g. 128,64. [default: per --arch]",
    ),
    click.option(
        "--factors",
        type=click.IntRange(min=0),
        default=None,
        help="Width of the dot-product (matrix factorisation) branch; 0 disables it. "
        "[default: per --arch]",
    ),
    click.option(
        "--reg",
        type=click.FloatRange(min=0),
        default=None,
        help="L2 on the embedding rows each batch uses (per occurrence). [default: per --arch]",
    ),
    click.option(
        "--weight-decay",
        type=click.FloatRange(min=0),
        default=None,
        help="L2 weight decay on the MLP weights. [default: per --arch]",
    ),
    click.option(
        "--patience",
        type=click.IntRange(min=0),
        default=None,
        help="Stop after this many epochs without a better validation RMSE; 0 never "
        "stops early. The best-validation checkpoint is kept either way. "
        "[default: per --arch; hybrid: 2, or 1 above 500,000 training ratings]",
    ),
    click.option(
        "--rank-factors",
        type=click.IntRange(min=0),
        default=None,
        help="Width of the ranking head (see --rank-head), mixed with the rating into "
        "rank_score for top-k lists; 0 ranks by the rating alone. [default: per --arch]",
    ),
    click.option(
        "--rank-head",
        type=click.Choice(["item-item", "bpr"]),
        default=None,
        help="How the ranking head is fit: 'item-item', a low-rank EASE (movies predicted "
        "from the other movies a user rated, weighted by the rating) solved in closed form "
        "after training; 'bpr', trained beside the rating on which movies users chose to "
        "rate. [default: item-item]",
    ),
    click.option(
        "--rank-weight",
        type=click.FloatRange(min=0),
        default=None,
        help="Weight of the BPR loss beside the rating MSE (--rank-head bpr only). "
        "[default: per --arch]",
    ),
    click.option(
        "--item-item-lambda",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="The item-item head's L2 penalty, as a multiple of the mean number of "
        "(rating-weighted) ratings per movie. [default: chosen on validation among "
        "the powers of 2 from 2 to 1024]",
    ),
    click.option(
        "--refit-validation/--no-refit-validation",
        default=None,
        help="After early stopping, train again on train + validation for the best epoch "
        "count, and test and keep that model (everything is still chosen on validation "
        "first). [default: on up to 500,000 training ratings, off above]",
    ),
    click.option(
        "--side-features/--no-side-features",
        default=None,
        help="Use user age, gender, occupation and movie genres and year where the data has "
        "them. [default: per --arch]",
    ),
    click.option(
        "--implicit/--no-implicit",
        default=None,
        help="SVD++-style implicit terms: each user's row gains the movies they rated in "
        "training, each movie's row its raters. [default: per --arch; hybrid: on up to "
        "500,000 training ratings]",
    ),
    click.option(
        "--implicit-cap",
        type=click.IntRange(min=0),
        default=None,
        help="Movies per user in the implicit sums: a seeded sample where a user rated "
        "more, weighted to stand for all of them; 0 keeps all. [default: 1024]",
    ),
    click.option(
        "--implicit-movie-cap",
        type=click.IntRange(min=0),
        default=None,
        help="Raters per movie in the implicit sums, as --implicit-cap. [default: 1024]",
    ),
    click.option(
        "--ema",
        type=click.FloatRange(min=0, max=1, max_open=True),
        default=None,
        help="Decay per step of the moving average of the weights that is evaluated and kept; "
        "0 keeps the raw weights. Each step averages every weight, so it costs the tables, "
        "not the batch. [default: per --arch; hybrid: 0.97 up to 500,000 training "
        "ratings, 0 above]",
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="PyTorch CPU threads. One by default: a second thread bought at most 4% on two "
        "cores and made training 3-11x slower when another process wanted them. "
        "[default: 1]",
    ),
    click.option(
        "--parallel-head/--no-parallel-head",
        default=None,
        help="Fit the item-item head (SVDs and the lambda grid, which need only the "
        "ratings) on a second thread while the network trains, with BLAS on one thread: "
        "the same head either way. Measured on two cores it saved no time and added "
        "0.25 GiB to the peak. [default: off]",
    ),
    click.option(
        "--eval-users",
        type=click.IntRange(min=0),
        default=None,
        help="Users whose top-k rankings are evaluated (test metrics, rank-mix choice): a "
        "fixed seeded sample where more qualify; 0 evaluates all. [default: 2000]",
    ),
]


def training_options(func: Callable) -> Callable:
    """Add ``--arch``, ``--seed`` and every model and optimiser option to a command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


_DATA_OPTIONS = [
    click.option(
        "--user-col",
        default=None,
        metavar="NAME",
        help="Column of the user IDs (integers or text) in a table of your own. [default: "
        "user_id; a MovieLens folder keeps its own names]",
    ),
    click.option(
        "--movie-col",
        default=None,
        metavar="NAME",
        help="Column of the movie (item) IDs, integers or text. [default: movie_id]",
    ),
    click.option(
        "--rating-col",
        default=None,
        metavar="NAME",
        help="Column of the ratings (any finite numbers; the scale is read from the data). "
        "[default: rating]",
    ),
    click.option(
        "--time-col",
        default=None,
        metavar="NAME",
        help="Column of the rating times: integer Unix seconds, a timestamp of any unit and "
        "time zone, a date or ISO 8601 text. Needed by --split time and user-time, and to "
        "keep the latest of repeated ratings (else file order decides). [default: "
        "timestamp, where the table has it]",
    ),
    click.option(
        "--table",
        default=None,
        metavar="NAME",
        help="With a database URI as --data: the table of ratings (NAME or SCHEMA.NAME).",
    ),
    click.option(
        "--query",
        default=None,
        metavar="SELECT",
        help="With a database URI as --data: a SELECT whose result is the ratings (instead "
        "of --table).",
    ),
    click.option(
        "--items",
        default=None,
        metavar="PATH",
        help="Items table (Parquet file or folder, or CSV; with a database as --data, a "
        "table of that database) with the movies' titles, keyed by --movie-col, for the "
        "title column of the tables. [default: none; a MovieLens folder reads its own "
        "movie file]",
    ),
    click.option(
        "--title-col",
        default=None,
        metavar="NAME",
        help="Column of the titles in --items. [default: title]",
    ),
    click.option(
        "--split",
        type=click.Choice(list(SPLITS)),
        default=None,
        help="How ratings are held out: 'random' (the seed notebook's 70/15/15 split), "
        "'time' (the oldest 70% train, the next 15% validation, the newest 15% test: the "
        "honest holdout of a nightly job), 'user-time' (each user's newest 15% test, the "
        "15% before those validation). [default: random]",
    ),
]


class DataSource(click.ParamType):
    """``--data``: a database URI kept as text (never shown back: it may hold a password),
    anything else a path."""

    name = "PATH|URI"

    def convert(self, value, param, ctx):
        if isinstance(value, Path) or not isinstance(value, str):
            return value
        if is_database_uri(value):
            try:
                parse_database_uri(value)
            except UsageError as exc:
                self.fail(exc.render(), param, ctx)
            return value
        return Path(value)


def data_options(func: Callable) -> Callable:
    """Add the options that say how to read a ratings table and how to split it
    (``--user-col`` ... ``--split``), the same on every command that reads ratings."""
    for option in reversed(_DATA_OPTIONS):
        func = option(func)
    return func


def columns_from_options(
    user_col: str | None,
    movie_col: str | None,
    rating_col: str | None,
    time_col: str | None,
    title_col: str | None,
) -> Columns:
    """The ``Columns`` value of the data options (defaults for those not given)."""
    given = dict(user=user_col, movie=movie_col, rating=rating_col, time=time_col, title=title_col)
    return Columns(**{k: v for k, v in given.items() if v is not None})
