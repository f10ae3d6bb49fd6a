"""``IdSchema``: the ID columns of a model, their names and their types, as one value.

Read once from ``id_mapping.json`` (its ``columns`` and ``id_types`` keys; a mapping
without them is an older one: integer IDs under ``user_id`` and ``movie_id``), renamed
once where a run picks its ``user_col`` / ``movie_col``, and handed on: the scorer reads
its ID columns, builds its output schemas and writes its tables from this value instead
of threading column names and type flags through every function.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from movierec.serve_batch import contract
from movierec.serve_batch.errors import ArtifactError

#: The two sides of a pair, as ``id_mapping.json`` names them.
SIDES = ("user", "movie")


@dataclass(frozen=True)
class IdSchema:
    """Column names and ID types (``contract.ID_TYPE_INT`` or ``ID_TYPE_STRING``) of the
    user and movie sides, each side on its own (integer users with string SKUs happen)."""

    user_col: str = contract.USER_COL
    movie_col: str = contract.MOVIE_COL
    user_type: str = contract.ID_TYPE_INT
    movie_type: str = contract.ID_TYPE_INT

    @classmethod
    def from_mapping(cls, mapping: dict, path: Path | str) -> IdSchema:
        """The schema ``id_mapping.json`` records; the older defaults where it has none.
        ``ArtifactError`` naming the file and key for anything malformed."""
        types = _side_object(mapping, contract.MAPPING_ID_TYPES, path)
        columns = _side_object(mapping, contract.MAPPING_COLUMNS, path)
        for side, value in types.items():
            if value not in contract.ID_TYPES:
                raise ArtifactError(
                    f"{path}: {contract.MAPPING_ID_TYPES}.{side} must be one of "
                    f"{', '.join(map(repr, contract.ID_TYPES))}, got {value!r}"
                )
        for side, value in columns.items():
            if not isinstance(value, str) or not value:
                raise ArtifactError(
                    f"{path}: {contract.MAPPING_COLUMNS}.{side} must be a column name, "
                    f"got {value!r}"
                )
        schema = cls(
            user_col=columns.get("user", contract.USER_COL),
            movie_col=columns.get("movie", contract.MOVIE_COL),
            user_type=types.get("user", contract.ID_TYPE_INT),
            movie_type=types.get("movie", contract.ID_TYPE_INT),
        )
        if schema.user_col == schema.movie_col:
            raise ArtifactError(
                f"{path}: {contract.MAPPING_COLUMNS} names one column for both sides "
                f"({schema.user_col!r})"
            )
        return schema

    def renamed(self, user_col: str | None, movie_col: str | None) -> IdSchema:
        """The same types under other column names (None keeps a name)."""
        return dataclasses.replace(
            self,
            user_col=self.user_col if user_col is None else user_col,
            movie_col=self.movie_col if movie_col is None else movie_col,
        )

    @property
    def id_types(self) -> dict[str, str]:
        """``{"user": ..., "movie": ...}`` as ``id_mapping.json`` writes it."""
        return {"user": self.user_type, "movie": self.movie_type}

    @property
    def columns(self) -> dict[str, str]:
        """``{"user": ..., "movie": ...}`` as ``id_mapping.json`` writes it."""
        return {"user": self.user_col, "movie": self.movie_col}

    @property
    def id_columns(self) -> tuple[str, str]:
        return (self.user_col, self.movie_col)

    def column_of(self, side: str) -> str:
        return self.user_col if side == "user" else self.movie_col

    def type_of(self, side: str) -> str:
        return self.user_type if side == "user" else self.movie_type

    def arrow_type(self, side: str) -> pa.DataType:
        """int64 or string: the type of ``side``'s ID column in every table written."""
        return pa.string() if self.type_of(side) == contract.ID_TYPE_STRING else pa.int64()

    def field(self, side: str, nullable: bool = True) -> pa.Field:
        return pa.field(self.column_of(side), self.arrow_type(side), nullable=nullable)


def _side_object(mapping: dict, key: str, path: Path | str) -> dict[str, Any]:
    value = mapping.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - set(SIDES):
        raise ArtifactError(
            f"{path}: {key!r} must be an object with the keys {' and '.join(SIDES)}, got {value!r}"
        )
    return value
