"""The checkpoint of ``rec-train``: everything ``rec-export`` needs, without guessing.

Saved with ``torch.save`` as plain containers and tensors so that it loads with
``weights_only=True`` (no pickled code runs when a checkpoint is read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from movierec.serve_batch.atomic import atomic_path
from movierec.serve_batch.errors import ArtifactError
from movierec.train.model import ModelConfig, RecommenderNet
from movierec.train.split import Part, Split, Vocabulary

CHECKPOINT_FORMAT = "movierec-checkpoint"
#: 2: the implicit terms' neighbour lists are capped, weighted buffers (``*_nb_*``).
CHECKPOINT_VERSION = 2


@dataclass
class Checkpoint:
    """A trained model with its vocabulary, split and provenance."""

    model: RecommenderNet
    split: Split
    rating_scale: tuple[float, float]
    data_fingerprint: str
    data_layout: str
    train_config: dict
    metrics: dict
    titles: dict[int, str]
    package_version: str
    created_at: str


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("movierec")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


def _part_to_tensors(part: Part) -> dict[str, torch.Tensor]:
    """The part's arrays as tensors, sharing their memory (no copy of 25M-row parts)."""
    return {
        "user_idx": torch.from_numpy(np.ascontiguousarray(part.user_idx, dtype=np.int64)),
        "movie_idx": torch.from_numpy(np.ascontiguousarray(part.movie_idx, dtype=np.int64)),
        "rating": torch.from_numpy(np.ascontiguousarray(part.rating, dtype=np.float32)),
    }


def _part_from_tensors(d: dict) -> Part:
    return Part(d["user_idx"].numpy(), d["movie_idx"].numpy(), d["rating"].numpy())


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` atomically (temporary name, then rename)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "package_version": ckpt.package_version,
        "torch_version": str(torch.__version__),
        "created_at": ckpt.created_at,
        "model_config": json.dumps(ckpt.model.config.to_dict()),
        "state_dict": ckpt.model.state_dict(),
        "user_ids": torch.from_numpy(ckpt.split.vocab.user_ids.astype(np.int64)),
        "movie_ids": torch.from_numpy(ckpt.split.vocab.movie_ids.astype(np.int64)),
        "split": {
            name: _part_to_tensors(getattr(ckpt.split, name)) for name in ("train", "val", "test")
        },
        "rating_scale": [float(ckpt.rating_scale[0]), float(ckpt.rating_scale[1])],
        "data_fingerprint": ckpt.data_fingerprint,
        "data_layout": ckpt.data_layout,
        "train_config": json.dumps(ckpt.train_config),
        "metrics": json.dumps(ckpt.metrics),
        "titles": json.dumps({str(k): v for k, v in ckpt.titles.items()}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint, refusing missing, corrupt or incompatible files clearly."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"no checkpoint at {path}; run rec-train first (or pass --artifacts DIR "
            "to the folder that holds checkpoint.pt)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ArtifactError(f"{path} is not a readable movierec checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ArtifactError(f"{path} is not a movierec checkpoint")
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise ArtifactError(
            f"{path} has checkpoint format {version!r}, this movierec reads format "
            f"{CHECKPOINT_VERSION}; retrain with this version (rec-train)"
        )
    try:
        model = RecommenderNet(ModelConfig.from_dict(json.loads(payload["model_config"])))
        model.load_state_dict(payload["state_dict"])
        vocab = Vocabulary(payload["user_ids"].numpy(), payload["movie_ids"].numpy())
        split = Split(
            vocab, *(_part_from_tensors(payload["split"][n]) for n in ("train", "val", "test"))
        )
        titles = {int(k): v for k, v in json.loads(payload["titles"]).items()}
        return Checkpoint(
            model=model.eval(),
            split=split,
            rating_scale=(float(payload["rating_scale"][0]), float(payload["rating_scale"][1])),
            data_fingerprint=payload["data_fingerprint"],
            data_layout=payload["data_layout"],
            train_config=json.loads(payload["train_config"]),
            metrics=json.loads(payload["metrics"]),
            titles=titles,
            package_version=payload["package_version"],
            created_at=payload["created_at"],
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is incomplete or inconsistent ({exc})") from None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
