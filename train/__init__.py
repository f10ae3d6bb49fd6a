"""Training (``rec-train``): ``train(config) -> TrainResult``.

    from movierec.train import TrainConfig, train

    result = train(TrainConfig.for_arch("hybrid", data="ml-100k", artifacts="artifacts"))
    result.metrics["test"]["rmse"]

Importing this package needs no PyTorch (the command line's ``--help`` stays fast);
calling :func:`train` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from movierec.train.config import TrainConfig

if TYPE_CHECKING:
    from movierec.train.pipeline import TrainResult

__all__ = ["TrainConfig", "TrainResult", "train"]


def train(config: TrainConfig) -> TrainResult:
    """Train on ``config.data`` and write every artifact into ``config.artifacts``
    (what ``rec-train`` runs); errors name options as Python spells them."""
    from movierec.train.pipeline import run_training

    return run_training(config)


def __getattr__(name: str) -> Any:
    if name == "TrainResult":
        from movierec.train.pipeline import TrainResult

        return TrainResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
