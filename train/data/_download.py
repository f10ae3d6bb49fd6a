"""Find the MovieLens data: an explicit path, $MOVIEREC_DATA, or a verified cached download."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import BinaryIO

from tqdm import tqdm

from movierec.serve_batch.errors import DataError

logger = logging.getLogger(__name__)

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"

#: SHA-256 of the canonical MovieLens 100K files; a download must match all four.
ML100K_SHA256: Mapping[str, str] = MappingProxyType(
    {
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    }
)

_FOLDER = "ml-100k"
_MAX_UNZIPPED_BYTES = 512 * 1024 * 1024  # ml-100k unzips to 16 MB; refuse zip bombs
_CHUNK = 1 << 16


def default_cache_dir() -> Path:
    """$MOVIEREC_CACHE, else $XDG_CACHE_HOME/movierec, else ~/.cache/movierec."""
    if os.environ.get("MOVIEREC_CACHE"):
        return Path(os.environ["MOVIEREC_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "movierec"
    return Path.home() / ".cache" / "movierec"


def resolve_data_path(
    data: Path | str | None,
    *,
    cache_dir: Path | str | None = None,
    url: str = ML100K_URL,
    timeout: float = 30.0,
    expected_sha256: Mapping[str, str] | None = None,
) -> Path:
    """Return the MovieLens folder to train on.

    ``data`` if given (``load_movielens`` checks it), else ``$MOVIEREC_DATA`` if set,
    else ``<cache>/ml-100k``: reused when its files match ``expected_sha256``
    (default ``ML100K_SHA256``), otherwise downloaded from ``url``, checked and moved
    into place atomically. Raises ``DataError`` when the download fails or its
    checksums do not match.
    """
    if data is not None:
        return Path(data).expanduser()
    if os.environ.get("MOVIEREC_DATA"):
        return Path(os.environ["MOVIEREC_DATA"]).expanduser()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    expected = dict(ML100K_SHA256 if expected_sha256 is None else expected_sha256)
    target = cache / _FOLDER
    if target.is_dir():
        if not _mismatches(target, expected):
            return target
        logger.warning("The cached %s does not match its checksums; downloading again.", target)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"Could not create the cache folder {cache} ({exc.strerror or exc}); set "
            "MOVIEREC_CACHE to a writable folder, or pass --data PATH to a MovieLens folder."
        ) from exc

    fd, part = tempfile.mkstemp(dir=cache, prefix=f".{_FOLDER}-", suffix=".zip.part")
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, timeout)
        unpacked = Path(tempfile.mkdtemp(dir=cache, prefix=f".{_FOLDER}-", suffix=".incomplete"))
        try:
            root = _extract(Path(part), unpacked, url)
            bad = _mismatches(root, expected)
            if bad:
                raise DataError(
                    f"The MovieLens 100K download from {url} failed its checksum check, so it "
                    f"was deleted: {'; '.join(bad)}."
                )
            _install(root, target, expected)
        finally:
            shutil.rmtree(unpacked, ignore_errors=True)
    finally:
        Path(part).unlink(missing_ok=True)
    logger.info("MovieLens 100K is ready in %s.", target)
    return target


def _fetch(url: str, out: BinaryIO, timeout: float) -> None:
    logger.info("Downloading MovieLens 100K from %s.", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="MovieLens 100K",
                disable=None,  # quiet when stderr is not a terminal
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DataError(
            f"Could not download MovieLens 100K from {url} ({reason}); pass --data PATH to "
            "a MovieLens folder, or set MOVIEREC_DATA."
        ) from exc


def _extract(archive: Path, dest: Path, url: str) -> Path:
    """Unzip ``archive`` into ``dest`` without letting any member escape it; return the
    folder that holds u.data."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if sum(info.file_size for info in infos) > _MAX_UNZIPPED_BYTES:
                raise DataError(
                    f"The archive downloaded from {url} unzips to more than "
                    f"{_MAX_UNZIPPED_BYTES // 2**20} MiB; refusing to extract it."
                )
            for info in infos:
                parts = _safe_parts(info, url)
                target = dest.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as exc:
        raise DataError(
            f"The file downloaded from {url} is not a valid zip archive ({exc}); it was deleted."
        ) from exc
    found = sorted(dest.rglob("u.data"), key=lambda p: len(p.parts))
    if not found:
        raise DataError(f"The archive downloaded from {url} holds no u.data; it was deleted.")
    return found[0].parent


def _safe_parts(info: zipfile.ZipInfo, url: str) -> tuple[str, ...]:
    name = info.filename.replace("\\", "/")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
    if name.startswith("/") or not parts or any(p == ".." or ":" in p for p in parts) or is_link:
        raise DataError(
            f"The archive downloaded from {url} holds an unsafe member {info.filename!r}; "
            "refusing to extract it."
        )
    return parts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatches(folder: Path, expected: Mapping[str, str]) -> list[str]:
    """Describe each expected file that is missing or has another SHA-256."""
    problems = []
    for name, want in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        got = _sha256(path)
        if got != want.lower():
            problems.append(f"{name} has sha256 {got}, expected {want}")
    return problems


def _install(root: Path, target: Path, expected: Mapping[str, str]) -> None:
    """Move the verified folder into place with os.replace (atomic on one filesystem)."""
    try:
        os.replace(root, target)
        return
    except OSError:
        if target.is_dir() and not _mismatches(target, expected):
            return  # a concurrent run got there first with the same data
    # A stale or corrupt copy: move it aside, move ours in, then delete the old one.
    stale = target.with_name(f".{_FOLDER}-stale-{uuid.uuid4().hex}")
    os.replace(target, stale)
    os.replace(root, target)
    if stale.is_dir():
        shutil.rmtree(stale, ignore_errors=True)
    else:
        stale.unlink(missing_ok=True)
