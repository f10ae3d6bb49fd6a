"""The few statements that differ between PostgreSQL and SQLite: listing tables, what a
name is (view, table, nothing), where a view points, and switching a view.

Everything else (bulk ingest, reading record batches) is ADBC's own API, the same for
every driver; another ADBC database needs one more ``Dialect`` here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from movierec.db._names import TableName, quote_identifier
from movierec.db._uri import POSTGRESQL, DatabaseURI

VIEW, TABLE, OTHER = "view", "table", "other"


@dataclass(frozen=True)
class Dialect:
    """Statements of one database system."""

    name: str

    @property
    def postgresql(self) -> bool:
        return self.name == POSTGRESQL

    def tables(self, cursor: Any, schema: str | None) -> list[str]:
        """Names of the base tables in ``schema`` (None: where an unqualified name goes,
        PostgreSQL's ``current_schema()``, SQLite's ``main``)."""
        if self.postgresql:
            if schema is None:
                cursor.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
            else:
                cursor.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
                    (schema,),
                )
        else:
            cursor.execute(f"SELECT name FROM {_master(schema)} WHERE type = 'table'")
        return [row[0] for row in cursor.fetchall()]

    def kind(self, cursor: Any, name: TableName) -> str | None:
        """``VIEW``, ``TABLE``, ``OTHER`` (a sequence, an index...) or None (no such name)."""
        if self.postgresql:
            cursor.execute(
                "SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)",
                (name.sql,),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            return {"v": VIEW, "r": TABLE, "p": TABLE}.get(row[0], OTHER)
        master = _master(name.schema)
        cursor.execute(f"SELECT type FROM {master} WHERE name = ?", (name.name,))
        row = cursor.fetchone()
        if row is None:
            return None
        return {"view": VIEW, "table": TABLE}.get(row[0], OTHER)

    def view_target(self, cursor: Any, view: TableName) -> str | None:
        """The table ``view`` selects from (None if it is not a view of one table)."""
        if self.postgresql:
            cursor.execute(
                "SELECT DISTINCT c.relname FROM pg_catalog.pg_rewrite r "
                "JOIN pg_catalog.pg_depend d ON d.objid = r.oid "
                "AND d.classid = 'pg_catalog.pg_rewrite'::regclass "
                "JOIN pg_catalog.pg_class c ON c.oid = d.refobjid "
                "WHERE r.ev_class = to_regclass($1) AND d.refobjid <> r.ev_class "
                "AND c.relkind IN ('r', 'p')",
                (view.sql,),
            )
            names = [row[0] for row in cursor.fetchall()]
            return names[0] if len(names) == 1 else None
        master = _master(view.schema)
        cursor.execute(f"SELECT sql FROM {master} WHERE type = 'view' AND name = ?", (view.name,))
        row = cursor.fetchone()
        if row is None:
            return None
        match = re.search(r'\bFROM\s+"((?:[^"]|"")+)"\s*$', row[0], flags=re.I)
        return match.group(1).replace('""', '"') if match else None

    def switch_view(self, cursor: Any, view: TableName, table: TableName) -> None:
        """Point ``view`` at ``table`` (inside the caller's transaction: it switches when
        the caller commits). PostgreSQL replaces the view in place, keeping its grants,
        where the new table's columns begin with the view's; where they changed
        (``--titles`` dropped, another ID type) it drops and re-creates the view in the
        same transaction. SQLite always drops and re-creates it."""
        select = f"SELECT * FROM {table.sql if self.postgresql else quote_identifier(table.name)}"
        if self.postgresql:
            before, after = self.columns(cursor, view), self.columns(cursor, table)
            if after[: len(before)] == before:
                cursor.execute(f"CREATE OR REPLACE VIEW {view.sql} AS {select}")
                return
        cursor.execute(f"DROP VIEW IF EXISTS {view.sql}")
        cursor.execute(f"CREATE VIEW {view.sql} AS {select}")

    def columns(self, cursor: Any, name: TableName) -> list[tuple[str, str]]:
        """PostgreSQL: the (name, type) of each column of a table or view, in order."""
        cursor.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_catalog.pg_attribute a WHERE a.attrelid = to_regclass($1) "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (name.sql,),
        )
        return [(row[0], row[1]) for row in cursor.fetchall()]

    def wait_until_unread(self, cursor: Any, view: TableName, seconds: float) -> None:
        """PostgreSQL: wait, up to ``seconds``, until no other session holds a lock on
        ``view`` (a long query reading it), so that the switch, which must wait for
        them and makes new readers wait behind it, finds it free."""
        if not self.postgresql:
            return
        deadline = time.monotonic() + seconds
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_catalog.pg_locks WHERE relation = to_regclass($1) "
                "AND pid <> pg_backend_pid() AND granted",
                (view.sql,),
            )
            if cursor.fetchone()[0] == 0 or time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def lock_timeout(self, cursor: Any, seconds: float) -> None:
        """Fail rather than queue readers behind this transaction for longer than
        ``seconds`` (PostgreSQL; SQLite writers do not block its readers in this way)."""
        if self.postgresql:
            cursor.execute(f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'")


def _master(schema: str | None) -> str:
    """SQLite's catalog table of ``schema`` (an attached database; None: main)."""
    return f"{quote_identifier(schema)}.sqlite_master" if schema else "sqlite_master"


def dialect_of(uri: DatabaseURI) -> Dialect:
    return Dialect(uri.dialect)
