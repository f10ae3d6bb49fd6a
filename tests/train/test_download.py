"""resolve_data_path: explicit path, $MOVIEREC_DATA, and the verified download cache.

No test touches the network: downloads come from local ``file://`` zips built from
synthetic files, and "offline" is a refused connection to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from movierec.serve_batch.errors import DataError
from movierec.train.data import ML100K_SHA256, ML100K_URL, load_movielens, resolve_data_path
from tests.synthetic import make_ratings, write_ml100k

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HASHED = ("u.data", "u.item", "u.user", "u.genre")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MOVIEREC_DATA", "MOVIEREC_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def build_zip(source: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip the files of ``source`` under ``ml-100k/``, as GroupLens does."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-100k/", "")
        for path in sorted(source.iterdir()):
            zf.write(path, f"ml-100k/{path.name}")
        for name, payload in (extra or {}).items():
            zf.writestr(name, payload)
    return archive


def sha256s(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in HASHED}


@pytest.fixture(scope="module")
def synthetic_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("zip")
    folder = write_ml100k(root / "files", make_ratings(seed=11))
    return build_zip(folder, root / "ml-100k.zip"), sha256s(folder)


def leftovers(cache: Path) -> list[str]:
    """Anything in the cache besides the finished ml-100k folder."""
    return sorted(p.name for p in cache.iterdir() if p.name != "ml-100k")


def test_constants() -> None:
    assert ML100K_URL == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert sorted(ML100K_SHA256) == sorted(HASHED)
    assert ML100K_SHA256["u.data"].startswith("06416e597f82")


def test_explicit_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_DATA", str(tmp_path / "env"))
    assert resolve_data_path(tmp_path / "given") == tmp_path / "given"
    assert resolve_data_path(str(tmp_path / "given")) == tmp_path / "given"


def test_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_DATA", str(tmp_path / "env"))
    assert resolve_data_path(None, url="http://127.0.0.1:9/never") == tmp_path / "env"


def test_download_and_cache_reuse(synthetic_zip, tmp_path: Path) -> None:
    archive, hashes = synthetic_zip
    cache = tmp_path / "cache"
    folder = resolve_data_path(None, cache_dir=cache, url=archive.as_uri(), expected_sha256=hashes)
    assert folder == cache / "ml-100k"
    assert sha256s(folder) == hashes
    assert (folder / "u.occupation").is_file()
    assert leftovers(cache) == []
    assert load_movielens(folder).layout == "ml-100k"

    # The second call finds a valid cache and never opens the URL.
    missing = (tmp_path / "no-such.zip").as_uri()
    again = resolve_data_path(None, cache_dir=cache, url=missing, expected_sha256=hashes)
    assert again == folder


def test_download_round_trips_the_data(tmp_path: Path) -> None:
    data = make_ratings(seed=12)
    source = write_ml100k(tmp_path / "src", data)
    archive = build_zip(source, tmp_path / "ml-100k.zip")
    folder = resolve_data_path(
        None, cache_dir=tmp_path / "cache", url=archive.as_uri(), expected_sha256=sha256s(source)
    )
    pd.testing.assert_frame_equal(load_movielens(folder).ratings, data.ratings)


@pytest.mark.parametrize(
    ("variable", "relative"),
    [
        ("MOVIEREC_CACHE", "mc/ml-100k"),
        ("XDG_CACHE_HOME", "xdg/movierec/ml-100k"),
        (None, "home/.cache/movierec/ml-100k"),
    ],
)
def test_default_cache_dir(
    variable: str | None, relative: str, synthetic_zip, tmp_path: Path, monkeypatch
) -> None:
    archive, hashes = synthetic_zip
    if variable:
        monkeypatch.setenv(variable, str(tmp_path / relative.split("/")[0]))
    folder = resolve_data_path(None, url=archive.as_uri(), expected_sha256=hashes)
    assert folder == tmp_path / relative
    assert (folder / "u.data").is_file()


def test_checksum_mismatch(synthetic_zip, tmp_path: Path) -> None:
    archive, hashes = synthetic_zip
    wrong = dict(hashes, **{"u.item": "0" * 64})
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        resolve_data_path(None, cache_dir=cache, url=archive.as_uri(), expected_sha256=wrong)
    message = str(info.value)
    assert f"u.item has sha256 {hashes['u.item']}, expected {'0' * 64}" in message
    assert "was deleted" in message and archive.as_uri() in message
    assert "u.data" not in message  # only the files that differ are named
    assert list(cache.iterdir()) == []  # no download, no half folder


def test_default_checksums_reject_other_data(synthetic_zip, tmp_path: Path) -> None:
    archive, _ = synthetic_zip
    with pytest.raises(
        DataError,
        match=rf"u\.data has sha256 [0-9a-f]{{64}}, expected "
        rf"{ML100K_SHA256['u.data']}",
    ):
        resolve_data_path(None, cache_dir=tmp_path / "cache", url=archive.as_uri())
    assert list((tmp_path / "cache").iterdir()) == []


def test_offline(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/ml-100k.zip"
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        resolve_data_path(None, cache_dir=tmp_path / "cache", url=url, timeout=5)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert message.startswith(f"Could not download MovieLens 100K from {url} (")
    assert message.endswith("; pass --data PATH to a MovieLens folder, or set MOVIEREC_DATA.")
    assert "\n" not in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_file_url(tmp_path: Path) -> None:
    url = (tmp_path / "absent.zip").as_uri()
    with pytest.raises(DataError, match=r"Could not download MovieLens 100K from file://"):
        resolve_data_path(None, cache_dir=tmp_path / "cache", url=url)


def test_not_a_zip(tmp_path: Path) -> None:
    page = tmp_path / "ml-100k.zip"
    page.write_text("<html>Service unavailable</html>")
    with pytest.raises(DataError, match=r"is not a valid zip archive .*it was deleted"):
        resolve_data_path(None, cache_dir=tmp_path / "cache", url=page.as_uri())
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("member", ["../evil.txt", "ml-100k/../../evil.txt", "/tmp/evil.txt"])
def test_unsafe_zip_members_are_refused(member: str, tmp_path: Path) -> None:
    source = write_ml100k(tmp_path / "src", make_ratings(n_ratings=50, seed=1))
    archive = build_zip(source, tmp_path / "ml-100k.zip", {member: b"gotcha"})
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(DataError, match="unsafe member"):
        resolve_data_path(
            None, cache_dir=cache, url=archive.as_uri(), expected_sha256=sha256s(source)
        )
    assert not list(tmp_path.rglob("evil.txt"))
    assert list(cache.iterdir()) == []


def test_archive_without_u_data(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match=r"holds no u\.data"):
        resolve_data_path(None, cache_dir=tmp_path / "cache", url=archive.as_uri())


def test_zip_without_a_top_folder(tmp_path: Path) -> None:
    source = write_ml100k(tmp_path / "src", make_ratings(n_ratings=50, seed=2))
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in source.iterdir():
            zf.write(path, path.name)
    cache = tmp_path / "cache"
    folder = resolve_data_path(
        None, cache_dir=cache, url=archive.as_uri(), expected_sha256=sha256s(source)
    )
    assert sha256s(folder) == sha256s(source)
    assert leftovers(cache) == []


def test_a_concurrent_run_that_finished_first_wins(
    synthetic_zip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When another process moved a verified copy into place meanwhile, keep that one."""
    from movierec.train.data import _download

    archive, hashes = synthetic_zip
    cache = tmp_path / "cache"
    extract = _download._extract

    def extract_then_lose_the_race(*args):
        root = extract(*args)
        shutil.copytree(root, cache / "ml-100k")  # the other run's os.replace
        (cache / "ml-100k" / "theirs.txt").write_text("the other run's copy")
        return root

    monkeypatch.setattr(_download, "_extract", extract_then_lose_the_race)
    folder = resolve_data_path(None, cache_dir=cache, url=archive.as_uri(), expected_sha256=hashes)
    assert (folder / "theirs.txt").is_file()
    assert sha256s(folder) == hashes
    assert leftovers(cache) == []


def test_corrupt_cache_is_downloaded_again(synthetic_zip, tmp_path: Path) -> None:
    archive, hashes = synthetic_zip
    cache = tmp_path / "cache"
    folder = resolve_data_path(None, cache_dir=cache, url=archive.as_uri(), expected_sha256=hashes)
    (folder / "u.data").write_text("1\t2\t3\t4\n")  # damaged since
    (folder / "stray.txt").write_text("left by someone")

    missing = (tmp_path / "no-such.zip").as_uri()
    with pytest.raises(DataError, match="Could not download"):
        resolve_data_path(None, cache_dir=cache, url=missing, expected_sha256=hashes)

    again = resolve_data_path(None, cache_dir=cache, url=archive.as_uri(), expected_sha256=hashes)
    assert again == folder
    assert sha256s(folder) == hashes
    assert not (folder / "stray.txt").exists()
    assert leftovers(cache) == []


def test_unwritable_cache(tmp_path: Path, synthetic_zip) -> None:
    archive, hashes = synthetic_zip
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"Could not create the cache folder .*MOVIEREC_CACHE"):
        resolve_data_path(
            None, cache_dir=blocker / "cache", url=archive.as_uri(), expected_sha256=hashes
        )


@pytest.mark.realdata
def test_real_ml100k_zip_passes_the_default_checksums(tmp_path: Path) -> None:
    """The real files, zipped in a temp folder (never in the repo), pass ML100K_SHA256."""
    real = REAL_DATA / "ml-100k"
    if not real.is_dir():
        pytest.skip(f"real MovieLens data not available at {real}")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in (*HASHED, "u.occupation"):
            zf.write(real / name, f"ml-100k/{name}")
    folder = resolve_data_path(None, cache_dir=tmp_path / "cache", url=archive.as_uri())
    assert sha256s(folder) == dict(ML100K_SHA256)
    assert len(load_movielens(folder).ratings) == 100_000
    assert os.listdir(tmp_path / "cache") == ["ml-100k"]
