"""``rec-train``: the command line over :func:`movierec.train.pipeline.run_training`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from movierec.serve_batch import contract
from movierec.serve_batch.cli_support import (
    artifacts_option,
    quiet_option,
    run_command,
    setup_logging,
)
from movierec.train.config import PRESETS, TrainConfig

log = logging.getLogger(__name__)

_EPILOG = """\b
Data: without --data, $MOVIEREC_DATA is used if set; otherwise MovieLens 100K is
downloaded once from GroupLens into ~/.cache/movierec (or $MOVIEREC_CACHE),
checked against its published SHA-256, and reused. --data accepts the ml-100k
(u.data), ml-1m/ml-10m (ratings.dat) and CSV (ratings.csv) layouts.
\b
Split: IDs are mapped to consecutive indices, then train_test_split(test_size,
random_state=SEED) and the rest halved into validation and test (70/15/15).
\b
Options left unset take the preset of --arch:
  hybrid: epochs 40, batch 2048, lr 4e-3, embedding 32, hidden 64, factors 64,
          reg 0.05, weight decay 1e-3, patience 2, rank factors 32, rank weight 1,
          implicit on, side features off, ema 0
  seed:   epochs 6, batch 64, lr 5e-4, embedding 100, hidden 128,64, no factors,
          biases, ranking head or implicit terms (the notebook's network)
\b
Writes to --artifacts: checkpoint.pt, metrics.json, training_curves.png,
test_pairs.parquet and seen_pairs.parquet (raw-ID pairs for rec-score).
Exit codes: 0 success; 2 bad usage or bad data (one line on stderr); 1 bug.
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


@click.command(
    name="rec-train",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="MovieLens folder (any of the three layouts). [default: $MOVIEREC_DATA, "
    "else the cached ml-100k download]",
)
@artifacts_option("Output folder for the checkpoint, metrics and plots.")
@click.option(
    "--arch",
    type=click.Choice(sorted(PRESETS)),
    default="hybrid",
    show_default=True,
    help="Network: 'hybrid' (MLP + matrix factorisation + biases, bounded output) "
    "or 'seed' (the notebook's exact MLP).",
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Seeds the split and the model's initialisation and shuffling.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum epochs. [default: per --arch]",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Ratings per optimiser step. [default: per --arch]",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Adam learning rate. [default: per --arch]",
)
@click.option(
    "--embedding-dim",
    type=click.IntRange(min=1),
    default=None,
    help="Width of each side's embedding fed to the MLP. [default: per --arch]",
)
@click.option(
    "--hidden",
    callback=_parse_hidden,
    default=None,
    metavar="W1,W2,...",
    help="Hidden layer widths of the MLP, e.g. 128,64. [default: per --arch]",
)
@click.option(
    "--factors",
    type=click.IntRange(min=0),
    default=None,
    help="Width of the dot-product (matrix factorisation) branch; 0 disables it. "
    "[default: per --arch]",
)
@click.option(
    "--reg",
    type=click.FloatRange(min=0),
    default=None,
    help="L2 on the embedding rows each batch uses (per occurrence). [default: per --arch]",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=None,
    help="L2 weight decay on the MLP weights. [default: per --arch]",
)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    default=None,
    help="Stop after this many epochs without a better validation RMSE; 0 never "
    "stops early. The best-validation checkpoint is kept either way. "
    "[default: per --arch]",
)
@click.option(
    "--rank-factors",
    type=click.IntRange(min=0),
    default=None,
    help="Width of the ranking head (trained on which movies users chose to rate, mixed "
    "with the rating into rank_score for top-k lists); 0 ranks by the rating alone. "
    "[default: per --arch]",
)
@click.option(
    "--rank-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the ranking head's BPR loss beside the rating MSE. [default: per --arch]",
)
@click.option(
    "--side-features/--no-side-features",
    default=None,
    help="Use user age, gender, occupation and movie genres and year where the data has "
    "them. [default: per --arch]",
)
@click.option(
    "--implicit/--no-implicit",
    default=None,
    help="SVD++-style implicit terms: each user's row gains the movies they rated in "
    "training, each movie's row its raters. [default: per --arch]",
)
@click.option(
    "--ema",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=None,
    help="Decay of the moving average of the weights that is evaluated and kept; 0 keeps "
    "the raw weights. [default: per --arch]",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="PyTorch CPU threads. [default: PyTorch's choice]",
)
@quiet_option()
def cli(arch: str, quiet: bool, **options) -> None:
    """Train RecommenderNet on MovieLens and keep the best checkpoint and its metrics."""
    from movierec.train.pipeline import run_training  # imports torch: keep --help fast

    setup_logging(quiet)
    config = TrainConfig.for_arch(arch, quiet=quiet, **options)
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
    sys.exit(run_command(cli))


if __name__ == "__main__":
    main()
