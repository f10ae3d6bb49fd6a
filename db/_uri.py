"""``DatabaseURI``: a database URI parsed once, whose ``str`` and ``repr`` never show a
password, so that logs, errors and run reports can name the target safely.

Two forms are accepted:

- ``postgresql://USER@HOST:PORT/DB`` (``postgres://`` too, and every other libpq URI
  form: several hosts, ``?sslmode=...``). The password may be in the URI
  (``USER:PASSWORD@``, percent-encoded), but is better left to libpq: the ADBC
  PostgreSQL driver is libpq, which reads ``PGPASSWORD`` and ``~/.pgpass``
  (``PGPASSFILE``) itself when the URI has none;
- ``sqlite:///PATH``: SQLAlchemy's spelling, ``sqlite:///nightly.db`` relative to the
  working folder, ``sqlite:////srv/movierec/nightly.db`` absolute. The path is made
  absolute when parsed, so a report names the file whatever the working folder was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode

from movierec.serve_batch.errors import UsageError

POSTGRESQL = "postgresql"
SQLITE = "sqlite"
_SCHEMES = {"postgresql": POSTGRESQL, "postgres": POSTGRESQL, "sqlite": SQLITE}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
#: How a hidden password is shown.
MASK = "***"
EXPECTED = "postgresql://USER@HOST:PORT/DB or sqlite:///PATH"


def is_database_uri(text: object) -> bool:
    """True where ``text`` is a string naming a database (``postgresql://``,
    ``postgres://``, ``sqlite://``), rather than a file or folder."""
    if not isinstance(text, str):
        return False
    match = _SCHEME.match(text)
    return match is not None and match.group(1).lower() in _SCHEMES


@dataclass(frozen=True)
class DatabaseURI:
    """A parsed database URI. ``str()`` and ``repr()`` give ``safe``, the URI without its
    password; ``driver_uri`` (not shown by either) is what the ADBC driver receives."""

    dialect: str  # POSTGRESQL or SQLITE
    safe: str
    driver_uri: str = field(repr=False, compare=False)
    password: str | None = field(default=None, repr=False, compare=False)
    path: Path | None = None  # SQLite: the database file
    #: the password as written in the URI, where that differs (partly percent-encoded)
    password_as_given: str | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.safe

    def __repr__(self) -> str:
        return f"DatabaseURI({self.safe!r})"

    def redact(self, text: str) -> str:
        """``text`` with this URI's password (as given, or percent-encoded) masked: for
        messages that come from the driver or the server."""
        if not self.password:
            return text
        text = text.replace(self.driver_uri, self.safe)
        forms = {self.password, quote(self.password, safe=""), quote(self.password)}
        forms.add(self.password_as_given or self.password)
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, MASK)
        return text


def parse_database_uri(text: str) -> DatabaseURI:
    """Parse a ``postgresql://`` or ``sqlite://`` URI; ``UsageError`` (that never quotes
    the URI, which may hold a password) for anything else."""
    if isinstance(text, DatabaseURI):
        return text
    if not is_database_uri(text):
        scheme = _SCHEME.match(text or "")
        got = f"a {scheme.group(1)}:// URI" if scheme else "no URI"
        raise UsageError(f"expected a database URI ({EXPECTED}), got {got}")
    scheme, rest = text.split("://", 1)
    if _SCHEMES[scheme.lower()] == SQLITE:
        return _parse_sqlite(rest)
    return _parse_postgresql(scheme, rest, text)


def _parse_postgresql(scheme: str, rest: str, text: str) -> DatabaseURI:
    # libpq's URI: [userinfo@]hostspec[/dbname][?params]; a password holding "/", "?" or
    # "@" must be percent-encoded (as libpq requires too)
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    password = given = None
    if "@" in authority:
        userinfo, hosts = authority.rsplit("@", 1)
        user, sep, secret = userinfo.partition(":")
        if sep:
            password, given = unquote(secret), secret
        authority = f"{user}@{hosts}" if user else hosts
    path, _, query = tail.partition("?")
    if query:
        params = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in params if k != "password"]
        in_query = [v for k, v in params if k == "password"]
        if in_query:
            password = given = in_query[-1]
        query = urlencode(kept, safe="/:,")
    safe = f"{POSTGRESQL}://{authority}{path}" + (f"?{query}" if query else "")
    return DatabaseURI(
        POSTGRESQL, safe, driver_uri=text, password=password or None, password_as_given=given
    )


def _parse_sqlite(rest: str) -> DatabaseURI:
    if not rest.startswith("/") or "?" in rest:
        raise UsageError(
            "a SQLite URI is sqlite:///PATH (sqlite:///nightly.db relative to the working "
            "folder, sqlite:////srv/nightly.db absolute), without a host or ?options"
        )
    name = unquote(rest[1:])
    if not name or name == ":memory:":
        raise UsageError("a SQLite URI names a database file: sqlite:///PATH")
    path = Path(name).expanduser().absolute()
    return DatabaseURI(SQLITE, f"{SQLITE}:///{path}", driver_uri=str(path), path=path)
