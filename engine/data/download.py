"""Fetch the official GroupLens MovieLens archives when no data folder is given.

Archives land in ``data/downloads/`` (``<name>.zip`` beside the extracted
``<name>/`` folder). Integrity: ``ml-100k`` and ``ml-1m`` are checked against the MD5
that GroupLens publishes beside each zip (``<url>.md5``); GroupLens publishes no
SHA-256. ``ml-latest-small`` is the archive GroupLens may regenerate (so the zip's
own bytes can change) and has no published checksum: its member files are pinned
by SHA-256 instead (recorded from the copy in the project's shared datasets, whose
sizes match GroupLens' zip). Every archive's structure is checked too: the member
files must all be present and CSV headers must match. The zip's SHA-256 is logged
so a run can record exactly what it read.

Extraction is atomic (a temporary folder renamed into place), so an interrupted
run never leaves a half-extracted dataset that later looks complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

logger = logging.getLogger(__name__)

MANUAL_PAGE = "https://grouplens.org/datasets/movielens/"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """What an official archive must look like.

    Attributes:
        name: dataset name, also the archive's top-level folder.
        url: the GroupLens download address.
        md5: the MD5 GroupLens publishes for the zip, or None when none is pinned.
        members: files (relative to the top-level folder) the loader needs.
        headers: expected first line of CSV members.
        size: approximate download size, for messages.
        member_sha256: SHA-256 each named member's bytes must have (default: none).
    """

    name: str
    url: str
    md5: str | None
    members: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    size: str = ""
    member_sha256: dict[str, str] = field(default_factory=dict)


ARCHIVES: dict[str, Archive] = {
    "ml-100k": Archive(
        name="ml-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        md5="0e33842e24a9c977be4e0107933c0723",  # https://files.grouplens.org/datasets/movielens/ml-100k.zip.md5
        members=("u.data", "u.item", "u.user", "u.genre", "u.occupation", "README"),
        size="about 5 MB",
    ),
    "ml-latest-small": Archive(
        name="ml-latest-small",
        url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        md5=None,
        members=("ratings.csv", "movies.csv", "tags.csv", "links.csv", "README.txt"),
        headers={
            "ratings.csv": "userId,movieId,rating,timestamp",
            "movies.csv": "movieId,title,genres",
            "tags.csv": "userId,movieId,tag,timestamp",
            "links.csv": "movieId,imdbId,tmdbId",
        },
        size="about 1 MB",
        member_sha256={
            "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
            "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
            "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
            "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
            "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
        },
    ),
    "ml-1m": Archive(
        name="ml-1m",
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        md5="c4d9eecfca2ab87c1945afe126590906",  # https://files.grouplens.org/datasets/movielens/ml-1m.zip.md5
        members=("ratings.dat", "movies.dat", "users.dat", "README"),
        size="about 6 MB",
    ),
}


class DownloadError(RuntimeError):
    """An archive could not be fetched, verified or extracted; the message says what to do by hand."""


def default_downloads_dir() -> Path:
    """``<project>/data/downloads`` in a source checkout, else ``./data/downloads``."""
    root = Path(__file__).resolve().parents[2]
    base = root if (root / "pyproject.toml").is_file() else Path.cwd()
    return base / "data" / "downloads"


def is_complete(folder: Path, archive: Archive) -> bool:
    """True when ``folder`` holds every member the loader needs."""
    return all((folder / m).is_file() for m in archive.members)


def ensure_dataset(
    name: str,
    downloads_dir: str | Path | None = None,
    *,
    opener: Callable[..., Any] | None = None,
    timeout: float = 60.0,
) -> Path:
    """The folder of an official MovieLens dataset, downloading and extracting it if absent.

    Args:
        name: ``ml-100k``, ``ml-latest-small`` or ``ml-1m``.
        downloads_dir: where archives live (default: :func:`default_downloads_dir`).
        opener: ``urlopen``-like callable (default: None, ``urllib.request.urlopen``;
            tests pass a fake).
        timeout: seconds to wait for the server (default: 60.0).

    Returns:
        ``<downloads_dir>/<name>``, holding the official files.

    Raises:
        ValueError: for a name with no official archive.
        DownloadError: when offline, on a checksum or structure mismatch, or when
            an incomplete folder is in the way; the message explains the manual route.
    """
    if name not in ARCHIVES:
        raise ValueError(f"no official archive for dataset {name!r}; expected one of {sorted(ARCHIVES)}")
    archive = ARCHIVES[name]
    root = Path(downloads_dir) if downloads_dir is not None else default_downloads_dir()
    target = root / name
    if is_complete(target, archive):
        return target
    if target.exists():
        missing = [m for m in archive.members if not (target / m).is_file()]
        raise DownloadError(
            f"{target} exists but lacks {', '.join(missing)}; delete the folder to download {name} again, "
            f"or pass --data-dir to a complete copy"
        )
    root.mkdir(parents=True, exist_ok=True)
    zip_path = root / f"{name}.zip"
    if not (zip_path.is_file() and _verified(zip_path, archive)):
        _download(archive, zip_path, opener, timeout)
    _extract(archive, zip_path, target)
    return target


def _manual(archive: Archive, root: Path) -> str:
    first = archive.members[0]
    return (
        f"download {archive.url} ({archive.size}) by hand (listed on {MANUAL_PAGE}), unzip it and pass "
        f"--data-dir <the folder holding {first}>, or unzip it into {root} so that "
        f"{root / archive.name / first} exists"
    )


def _download(archive: Archive, zip_path: Path, opener: Callable[..., Any] | None, timeout: float) -> None:
    open_url = opener if opener is not None else urllib.request.urlopen
    fd, part_name = tempfile.mkstemp(dir=zip_path.parent, prefix=f".{archive.name}-", suffix=".zip.part")
    part = Path(part_name)
    logger.info("downloading %s from %s", archive.name, archive.url)
    try:
        with os.fdopen(fd, "wb") as out, open_url(archive.url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, _CHUNK)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download {archive.name} from {archive.url} ({reason}); this machine may be offline: "
            f"{_manual(archive, zip_path.parent)}"
        ) from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if not _verified(part, archive, report=True):
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"the downloaded {archive.name} archive failed its integrity check (see the log); nothing was "
            f"kept. Try again, or {_manual(archive, zip_path.parent)}"
        )
    os.replace(part, zip_path)


def _digests(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def _verified(path: Path, archive: Archive, *, report: bool = False) -> bool:
    md5, sha256 = _digests(path)
    log = logger.error if report else logger.info
    if archive.md5 is not None and md5 != archive.md5:
        log("%s: md5 %s, expected %s (published by GroupLens)", path.name, md5, archive.md5)
        return False
    problem = _structure_problem(path, archive)
    if problem:
        log("%s: %s", path.name, problem)
        return False
    logger.info("%s verified (md5 %s, sha256 %s)", archive.name, md5, sha256)
    return True


def _structure_problem(path: Path, archive: Archive) -> str | None:
    """Why the zip does not look like the official archive, or None when it does."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for name in names:
                member = PurePosixPath(name)
                if member.is_absolute() or ".." in member.parts:
                    return f"unsafe member path {name!r}"
            missing = [m for m in archive.members if f"{archive.name}/{m}" not in names]
            if missing:
                return f"missing {', '.join(missing)} under {archive.name}/"
            for member, header in archive.headers.items():
                with zf.open(f"{archive.name}/{member}") as fh:
                    first = fh.readline().decode("utf-8", errors="replace").strip()
                if first != header:
                    return f"{member} starts with {first!r}, expected {header!r}"
            for member, expected in archive.member_sha256.items():
                digest = hashlib.sha256()
                with zf.open(f"{archive.name}/{member}") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                if digest.hexdigest() != expected:
                    return f"{member} has sha256 {digest.hexdigest()}, expected {expected} (pinned)"
    except zipfile.BadZipFile as exc:
        return f"not a zip archive ({exc})"
    return None


def _extract(archive: Archive, zip_path: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{archive.name}-extract-"))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            prefix = f"{archive.name}/"
            zf.extractall(staging, members=[m for m in zf.namelist() if m.startswith(prefix)])
        extracted = staging / archive.name
        if not is_complete(extracted, archive):
            raise DownloadError(f"{zip_path} did not extract completely; delete it and run again")
        try:
            os.replace(extracted, target)
        except OSError:
            # Another process finished first; its copy is as good as ours.
            if not is_complete(target, archive):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("extracted %s into %s", archive.name, target)
