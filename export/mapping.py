"""The JSON ID mapping written beside ``model.onnx`` (layout: ``movierec.serve_batch.contract``)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from movierec.serve_batch import contract
from movierec.train.checkpoint import Checkpoint
from movierec.train.data import Columns
from movierec.train.data._vocab import id_type
from movierec.train.fallback import Fallback


def _keys(ids: np.ndarray) -> list[str]:
    """JSON keys of raw IDs: decimal text of integers, string IDs as they are."""
    if id_type(ids) == contract.ID_TYPE_STRING:
        return [str(i) for i in ids]
    return [str(int(i)) for i in ids]


def build_mapping(ckpt: Checkpoint, fallback: Fallback | None = None) -> dict:
    """Raw IDs -> embedding rows, the rating scale, fallback means, titles, ID types and the
    data's ID column names.

    Only the users and movies the model knows (a rating in the parts it was trained on,
    ``movierec.train.fallback``) are mapped, to their positions among the known rows (the
    rows of the exported graphs, :func:`exported_rows`): the scorer gives the others' pairs
    the fallback, as the evaluation did."""
    vocab = ckpt.split.vocab
    fallback = fallback or ckpt.fallback()
    user_rows = np.flatnonzero(fallback.known_users)
    movie_rows = np.flatnonzero(fallback.known_movies)
    users = _keys(vocab.user_ids[user_rows])
    movies = _keys(vocab.movie_ids[movie_rows])
    titles = {
        key: ckpt.titles[raw]
        for key, raw in zip(movies, vocab.movie_ids[movie_rows], strict=True)
        if raw in ckpt.titles
    }
    columns = Columns.from_dict(ckpt.columns)
    return {
        contract.MAPPING_FORMAT_VERSION: contract.FORMAT_VERSION,
        contract.MAPPING_RATING_SCALE: {"min": ckpt.rating_scale[0], "max": ckpt.rating_scale[1]},
        contract.MAPPING_USER_INDEX: dict(zip(users, range(len(users)), strict=True)),
        contract.MAPPING_MOVIE_INDEX: dict(zip(movies, range(len(movies)), strict=True)),
        contract.MAPPING_FALLBACK: {
            contract.FALLBACK_GLOBAL_MEAN: round(fallback.global_mean, 6),
            contract.FALLBACK_USER_MEAN: {
                k: round(float(v), 6)
                for k, v in zip(users, fallback.user_mean[user_rows], strict=True)
            },
            contract.FALLBACK_MOVIE_MEAN: {
                k: round(float(v), 6)
                for k, v in zip(movies, fallback.movie_mean[movie_rows], strict=True)
            },
            contract.FALLBACK_DAMPING: fallback.damping,
        },
        contract.MAPPING_TITLES: titles,
        contract.MAPPING_ID_TYPES: vocab.id_types,
        contract.MAPPING_COLUMNS: {"user": columns.user, "movie": columns.movie},
    }


def encode_mapping(mapping: dict) -> tuple[bytes, str]:
    """The exact bytes written to ``id_mapping.json`` and their SHA-256 (hex)."""
    data = (json.dumps(mapping, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    return data, hashlib.sha256(data).hexdigest()


def exported_rows(fallback: Fallback) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The model rows the exported graphs hold (the known users and movies, in row order),
    or None where the model knows every row (the graphs then hold the model's tables as
    they are)."""
    if fallback.known_users.all() and fallback.known_movies.all():
        return None
    return (
        torch.from_numpy(np.flatnonzero(fallback.known_users)),
        torch.from_numpy(np.flatnonzero(fallback.known_movies)),
    )
