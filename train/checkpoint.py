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
#: 2: the implicit terms' neighbour lists are capped, weighted buffers (``*_nb_*``);
#: string IDs, ``trained_on`` and ``columns`` were added since, as optional keys (an older
#: version-2 checkpoint loads: integer IDs, trained on its training part).
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
    titles: dict
    package_version: str
    created_at: str
    #: The parts of ``split`` the model was trained on: the users and movies with a rating
    #: there are what it knows (``movierec.train.fallback``), and what the export maps.
    trained_on: tuple[str, ...] = ("train",)
    #: The data's column names (``Columns.to_dict()``): they name the exported model's
    #: ID columns.
    columns: dict | None = None

    def fallback(self):
        """What the model knows and the fallback means (``movierec.train.fallback``)."""
        from movierec.train.fallback import fit_fallback

        split = self.split
        parts = [getattr(split, name) for name in self.trained_on]
        return fit_fallback(parts, split.vocab.n_users, split.vocab.n_movies)


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
        "user_ids": _ids_payload(ckpt.split.vocab.user_ids),
        "movie_ids": _ids_payload(ckpt.split.vocab.movie_ids),
        "trained_on": list(ckpt.trained_on),
        "columns": json.dumps(ckpt.columns),
        "split": {
            name: _part_to_tensors(getattr(ckpt.split, name)) for name in ("train", "val", "test")
        },
        "recent": {
            key: torch.from_numpy(np.asarray(counts, np.int64))
            for key, counts in (ckpt.split.recent or {}).items()
        },
        "rating_scale": [float(ckpt.rating_scale[0]), float(ckpt.rating_scale[1])],
        "data_fingerprint": ckpt.data_fingerprint,
        "data_layout": ckpt.data_layout,
        "train_config": json.dumps(ckpt.train_config),
        "metrics": json.dumps(ckpt.metrics),
        "titles": json.dumps({_key(k): v for k, v in ckpt.titles.items()}),
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
        vocab = Vocabulary(_ids_from(payload["user_ids"]), _ids_from(payload["movie_ids"]))
        recent = {k: v.numpy() for k, v in (payload.get("recent") or {}).items()} or None
        split = Split(
            vocab,
            *(_part_from_tensors(payload["split"][n]) for n in ("train", "val", "test")),
            recent=recent,
        )
        string_movies = vocab.movie_ids.dtype == object
        titles = {
            (k if string_movies else int(k)): v for k, v in json.loads(payload["titles"]).items()
        }
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
            trained_on=tuple(payload.get("trained_on") or _trained_on(payload)),
            columns=json.loads(payload["columns"]) if "columns" in payload else None,
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is incomplete or inconsistent ({exc})") from None


def _trained_on(payload: dict) -> list[str]:
    """What a checkpoint written before ``trained_on`` was recorded was trained on."""
    metrics = json.loads(payload.get("metrics") or "{}")
    return ["train", "val"] if metrics.get("refit_validation") else ["train"]


def _ids_payload(ids: np.ndarray) -> torch.Tensor | list[str]:
    """Integer IDs as an int64 tensor; string IDs as a list of str (both load with
    ``weights_only=True``)."""
    if ids.dtype == object:
        return [str(v) for v in ids]
    return torch.from_numpy(ids.astype(np.int64))


def _ids_from(value: torch.Tensor | list) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.numpy()
    return np.asarray(value, dtype=object)


def _key(movie_id: object) -> str:
    return movie_id if isinstance(movie_id, str) else str(int(movie_id))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
