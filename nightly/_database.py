"""``--publish URI``: the nightly table also published into a database, as a view that
switches together with the home folder's links (see ``movierec.db._publish``).

Only imported with ``--publish``; it imports ``movierec.db``, whose ADBC drivers come
with ``pip install "movierec[db]"``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from movierec.db import (
    check_target,
    point_view_at,
    prune_tables,
    stage_version,
)
from movierec.db._uri import DatabaseURI
from movierec.serve_batch.errors import MovieRecError

log = logging.getLogger(__name__)


class DatabaseTarget:
    """The database a run publishes into, and what it did there (``report``)."""

    def __init__(self, uri: DatabaseURI, name: str) -> None:
        self.uri, self.name = uri, name
        self.report: dict[str, Any] = {"target": str(uri), "view": name}

    def check(self) -> None:
        """Connect now (a wrong URI or password fails before hours of training) and
        check that the view's name is free or a view."""
        self.report["in_service_before"] = check_target(self.uri, self.name)

    @contextlib.contextmanager
    def staged(self, version: str, parquet: Path, keep: Collection[str]) -> Iterator[Callable]:
        """Drop what no longer belongs (tables of versions the home does not keep: a
        killed run's, or those a busy reader kept from being pruned), then load
        ``parquet`` as ``version``'s table in an open transaction. The block calls the
        function it gets to switch the view and commit; leaving the block without it
        rolls the load back."""
        dropped = prune_tables(self.uri, self.name, keep)
        if dropped:
            log.warning("dropped %s, left behind by earlier runs", ", ".join(dropped))
            self.report["swept"] = dropped
        with stage_version(self.uri, self.name, version, parquet) as staged:
            self.report.update(table=str(staged.table), rows=staged.rows)

            def switch() -> None:
                published = staged.switch()
                self.report.update(published.to_dict())

            yield switch

    def undo(self, previous: str | None) -> None:
        """Point the view back at ``previous`` after the home's links failed to switch."""
        if previous is not None:
            with contextlib.suppress(Exception):
                point_view_at(self.uri, self.name, previous)
                self.report["undone"] = True

    def prune(self, keep: Collection[str]) -> list[str]:
        """Drop the tables of versions the home pruned (never the view's). After the
        publish, so a failure is only a warning: the next run drops them."""
        try:
            dropped = prune_tables(self.uri, self.name, keep)
        except MovieRecError as exc:
            log.warning("published, but the old tables were not pruned: %s", exc)
            self.report["prune_error"] = str(exc)
            return []
        self.report["pruned"] = dropped
        return dropped
