"""Table names as values: parsed once from ``NAME`` or ``SCHEMA.NAME``, and written into
SQL only as quoted identifiers, never pasted raw.

A name is used exactly as given, case included: ``--table Ratings`` is the table
``"Ratings"``, not PostgreSQL's folded ``ratings``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from movierec.serve_batch.errors import UsageError

#: PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1); longer names are truncated
#: by the server, so two versions' tables could collide: refused here instead.
MAX_IDENTIFIER_BYTES = 63

#: ``VERSION`` (``20250101T021500Z``, ``-2`` for a second run in that second) as written
#: in a table name: lower case, ``_`` for ``-``, so the name needs no quoting in psql.
_VERSION_SUFFIX = re.compile(r"(\d{8})t(\d{6})z(?:_(\d+))?")


def quote_identifier(name: str) -> str:
    """``name`` as an SQL identifier: in double quotes, any quote doubled (PostgreSQL and
    SQLite alike)."""
    if not name or "\x00" in name:
        raise UsageError(f"not a usable SQL name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A table or view name, optionally in a schema (``schema.name``)."""

    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, text: str, *, what: str = "table") -> TableName:
        """``NAME`` or ``SCHEMA.NAME`` (each part non-empty); ``UsageError`` otherwise."""
        parts = str(text).split(".")
        if len(parts) > 2 or not all(p.strip() for p in parts):
            raise UsageError(f"a {what} is NAME or SCHEMA.NAME, got {text!r}")
        for part in parts:
            quote_identifier(part)
        return cls(parts[-1], parts[0] if len(parts) == 2 else None)

    @property
    def sql(self) -> str:
        """The quoted, possibly schema-qualified name, ready for SQL text."""
        name = quote_identifier(self.name)
        return f"{quote_identifier(self.schema)}.{name}" if self.schema else name

    def sibling(self, name: str) -> TableName:
        """Another name in the same schema."""
        return TableName(name, self.schema)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def version_table(view: TableName, version: str) -> TableName:
    """The table that holds ``version`` behind ``view``: ``<view>_<version>``, e.g.
    ``recommendations_20250101t021500z`` (``..._2`` for ``20250101T021500Z-2``)."""
    table = view.sibling(f"{view.name}_{version.lower().replace('-', '_')}")
    index = index_name(table)
    if len(index.encode()) > MAX_IDENTIFIER_BYTES:
        raise UsageError(
            f"the table name {view.name!r} is too long: its versions' tables and indexes "
            f"({index!r}) exceed the {MAX_IDENTIFIER_BYTES} bytes of a PostgreSQL name"
        )
    return table


def index_name(table: TableName) -> str:
    """The name of the user-column index of a version's table."""
    return f"{table.name}_user_idx"


def version_of(view: TableName, table_name: str) -> str | None:
    """The version whose table is ``table_name`` (None for any other table)."""
    prefix = f"{view.name}_"
    if not table_name.startswith(prefix):
        return None
    match = _VERSION_SUFFIX.fullmatch(table_name[len(prefix) :])
    if match is None:
        return None
    date, time, n = match.groups()
    return f"{date}T{time}Z" + (f"-{n}" if n else "")


def version_sort_key(version: str) -> tuple[str, int]:
    """Versions in run order: start time, then the ``-N`` of same-second runs."""
    base, _, n = version.partition("-")
    return (base, int(n) if n else 1)
