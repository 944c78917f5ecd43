"""Where artifacts live in the store, what their names may be, and the records that describe them.

Layout::

    <root>/<dataset>/<fingerprint[:16]>/v<N>/
        manifest.json          identity, per-file sha256 + size, meta, lineage
        <name>.safetensors     one per tensor group (e.g. the model's state_dict)
        <name>.json            one per JSON document (e.g. the id map, the training curve)
    <root>/<dataset>/<fingerprint[:16]>/v<N>.corrupt-<UTC stamp>/   a damaged version, moved aside
    <root>/<dataset>/<fingerprint[:16]>/.tmp-<random>/             a save in progress (or interrupted)
    <root>/.locks/<dataset>--<fingerprint[:16]>.lock               the writers' lock of one model

Nothing here touches torch, so listing models stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

FORMAT = "gatlens-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TENSOR_SUFFIX = ".safetensors"
JSON_SUFFIX = ".json"
TMP_PREFIX = ".tmp-"
CORRUPT_TAG = ".corrupt-"
LOCK_DIR = ".locks"
FP_DIR_LEN = 16

# One safe path component: no separators, no leading dot (hidden / temp names), no "..".
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FP_RE = re.compile(r"[0-9a-f]{16,128}")
FP_DIR_RE = re.compile(r"[0-9a-f]{16}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
VERSION_DIR_RE = re.compile(r"v([1-9][0-9]{0,8})")
# Versions moved aside still reserve their number, so a parent path never points at a newer artifact.
ANY_VERSION_DIR_RE = re.compile(r"v([1-9][0-9]{0,8})(?:\.corrupt-.*)?")
CORRUPT_DIR_RE = re.compile(r"v([1-9][0-9]{0,8})\.corrupt-(.+)")


@dataclass(frozen=True)
class ArtifactRef:
    """Where one artifact version lives.

    Attributes:
        dataset: dataset name (a directory under the store root).
        fingerprint: full fingerprint (see :func:`engine.artifacts.fingerprint.fingerprint`).
        version: version number, 1 for the first save of a fingerprint.
        path: the version's directory.
        parent: the version this one was derived from, as recorded in its manifest
            (lineage; not part of equality or hashing; None for a root version or when unknown).
    """

    dataset: str
    fingerprint: str
    version: int
    path: Path
    parent: ArtifactRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SkippedVersion:
    """A version that could not be used and was moved aside.

    Attributes:
        version: its number.
        path: where it was.
        aside: where it was moved (None when the move failed).
        reason: what was wrong, naming the file and the problem.
    """

    version: int
    path: Path
    aside: Path | None
    reason: str


@dataclass(frozen=True)
class Salvaged:
    """One JSON document recovered from a version that was moved aside.

    Attributes:
        version: the moved-aside version's number.
        path: its folder (``v<N>.corrupt-<stamp>``).
        manifest: its manifest (valid, so the document's checksum could be checked).
        doc: the parsed document.
    """

    version: int
    path: Path
    manifest: dict[str, Any]
    doc: Any


@dataclass
class LoadedArtifact:
    """A verified artifact read back from the store.

    Attributes:
        ref: which version was read.
        manifest: the parsed ``manifest.json``.
        tensors: ``{group name: {tensor name: Tensor}}`` (on CPU), one per ``.safetensors`` file.
        json_files: ``{name: parsed JSON}``, one per ``.json`` file.
        skipped: newer versions that failed verification on the way to this one, newest first
            (default: none).
    """

    ref: ArtifactRef
    manifest: dict[str, Any]
    tensors: dict[str, dict[str, Tensor]]
    json_files: dict[str, Any]
    skipped: list[SkippedVersion] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        """The free ``meta`` dict saved with the artifact (config, metrics, model card, ...)."""
        return self.manifest["meta"]


# ---------------------------------------------------------------- validation


def check_dataset(dataset: str) -> None:
    """Raise ValueError unless ``dataset`` is one safe path component."""
    if not isinstance(dataset, str) or not NAME_RE.fullmatch(dataset):
        raise ValueError(
            f"artifact store: dataset must be a plain name of letters, digits, '.', '_', '-' (got {dataset!r})"
        )


def check_fp(fp: str) -> None:
    """Raise ValueError unless ``fp`` is a lower-case hex fingerprint."""
    if not isinstance(fp, str) or not FP_RE.fullmatch(fp):
        raise ValueError(f"artifact store: fingerprint must be lower-case hex, 16-128 chars (got {fp!r})")


def check_version(version: int) -> None:
    """Raise ValueError unless ``version`` is an int >= 1."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"artifact store: version must be an int >= 1 (got {version!r})")


def check_name(name: str, what: str) -> None:
    """Raise ValueError unless a tensor group or JSON document name is a plain name."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"save: {what} names must be plain names of letters, digits, '.', '_', '-' (got {name!r})")


# ------------------------------------------------------------------ folders


def version_dirs(fp_dir: Path) -> list[tuple[int, Path]]:
    """``(N, path)`` for every ``v<N>`` directory (moved-aside and temp ones excluded), ascending."""
    if not fp_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in fp_dir.iterdir() if (m := VERSION_DIR_RE.fullmatch(p.name)) and p.is_dir()]
    return sorted(found)


def corrupt_dirs(fp_dir: Path) -> list[tuple[int, str, Path]]:
    """``(N, stamp, path)`` for every moved-aside ``v<N>.corrupt-<stamp>`` directory, oldest stamp first."""
    if not fp_dir.is_dir():
        return []
    found = [(int(m.group(1)), m.group(2), p) for p in fp_dir.iterdir() if (m := CORRUPT_DIR_RE.fullmatch(p.name))]
    return sorted(found, key=lambda row: (row[1], row[0]))


def next_version(fp_dir: Path) -> int:
    """One above every version number present, moved-aside ones included."""
    numbers = [int(m.group(1)) for p in fp_dir.iterdir() if (m := ANY_VERSION_DIR_RE.fullmatch(p.name))]
    return max(numbers, default=0) + 1


def utc_now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds (the manifests' ``created``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def utc_stamp() -> str:
    """The current UTC time as a compact, sortable path component."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
