"""Checking what a version directory holds: its manifest, then every file against it.

Every check raises :class:`CorruptArtifactError` naming the file and the problem; the store turns
that into a warning and moves the version aside. Tensors are read only through safetensors,
never pickle; torch and safetensors are imported inside the function that needs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.artifacts.layout import (
    FORMAT,
    FORMAT_VERSION,
    FP_RE,
    JSON_SUFFIX,
    MANIFEST,
    NAME_RE,
    SHA256_RE,
    TENSOR_SUFFIX,
    utc_stamp,
)

if TYPE_CHECKING:
    from torch import Tensor

logger = logging.getLogger(__name__)


class CorruptArtifactError(Exception):
    """An artifact failed verification; ``file`` names the file, ``problem`` says what is wrong."""

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem


def read_manifest(path: Path, dataset: str, fp: str | None, version: int) -> dict[str, Any]:
    """Parse and check ``path/manifest.json`` against the expected identity.

    Args:
        path: the version directory.
        dataset: the dataset it must belong to.
        fp: the fingerprint it must carry, or None to accept any valid one.
        version: the version number its directory says.

    Raises:
        CorruptArtifactError: naming what does not match.
    """
    try:
        manifest = json.loads((path / MANIFEST).read_bytes().decode("utf-8"))
    except FileNotFoundError as err:
        raise CorruptArtifactError(MANIFEST, "missing") from err
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptArtifactError(MANIFEST, f"not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise CorruptArtifactError(MANIFEST, f"expected a JSON object (got {type(manifest).__name__})")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptArtifactError(
            MANIFEST,
            f"format {manifest.get('format')!r} v{manifest.get('format_version')!r}, "
            f"expected {FORMAT!r} v{FORMAT_VERSION}",
        )
    _check_identity(manifest, dataset, fp, version)
    if not isinstance(manifest.get("created"), str):
        raise CorruptArtifactError(MANIFEST, f"invalid 'created' {manifest.get('created')!r}")
    if not isinstance(manifest.get("meta"), dict):
        raise CorruptArtifactError(MANIFEST, f"'meta' must be an object (got {manifest.get('meta')!r})")
    _check_files_entry(manifest.get("files"))
    _check_parent_entry(manifest.get("parent", "<absent>"))
    return manifest


def _check_identity(manifest: Mapping[str, Any], dataset: str, fp: str | None, version: int) -> None:
    got_fp = manifest.get("fingerprint")
    if fp is not None and got_fp != fp:
        raise CorruptArtifactError(
            MANIFEST, f"fingerprint {got_fp!r} does not match the requested {fp!r} (stale artifact)"
        )
    if fp is None and not (isinstance(got_fp, str) and FP_RE.fullmatch(got_fp)):
        raise CorruptArtifactError(MANIFEST, f"invalid fingerprint {got_fp!r}")
    if manifest.get("dataset") != dataset:
        raise CorruptArtifactError(
            MANIFEST, f"dataset {manifest.get('dataset')!r} does not match the requested {dataset!r}"
        )
    if manifest.get("version") != version:
        raise CorruptArtifactError(MANIFEST, f"version {manifest.get('version')!r} does not match directory v{version}")


def _check_files_entry(files: Any) -> None:
    if not isinstance(files, dict):
        raise CorruptArtifactError(MANIFEST, f"'files' must be an object (got {files!r})")
    for name, entry in files.items():
        stem, suffix = split_file_name(name)
        # A name must be a plain file of a known kind: this also stops "../" escapes.
        if suffix is None or name == MANIFEST or not NAME_RE.fullmatch(stem):
            raise CorruptArtifactError(MANIFEST, f"invalid file name {name!r}")
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and SHA256_RE.fullmatch(entry["sha256"])
            and isinstance(entry.get("bytes"), int)
            and not isinstance(entry.get("bytes"), bool)
            and entry["bytes"] >= 0
        ):
            raise CorruptArtifactError(MANIFEST, f"invalid entry for {name!r}: {entry!r}")


def _check_parent_entry(parent: Any) -> None:
    if parent is None:
        return
    ok = (
        isinstance(parent, dict)
        and isinstance(parent.get("dataset"), str)
        and NAME_RE.fullmatch(parent["dataset"])
        and isinstance(parent.get("fingerprint"), str)
        and FP_RE.fullmatch(parent["fingerprint"])
        and isinstance(parent.get("version"), int)
        and not isinstance(parent.get("version"), bool)
        and parent["version"] >= 1
    )
    if not ok:
        raise CorruptArtifactError(MANIFEST, f"invalid 'parent' {parent!r}")


def split_file_name(name: Any) -> tuple[str, str | None]:
    """``(stem, suffix)`` of a listed file; suffix None when it is not a kind the store writes."""
    if isinstance(name, str):
        for suffix in (TENSOR_SUFFIX, JSON_SUFFIX):
            if name.endswith(suffix):
                return name[: -len(suffix)], suffix
    return "", None


def read_manifest_quietly(path: Path, dataset: str, fp: str | None, version: int) -> dict[str, Any] | None:
    """:func:`read_manifest`, or None (logged at DEBUG) when the manifest is missing or invalid."""
    try:
        return read_manifest(path, dataset, fp, version)
    except CorruptArtifactError as err:
        logger.debug("skipping artifact %s: %s", path, err)
        return None


def _verified_bytes(path: Path, name: str, entry: Mapping[str, Any]) -> bytes:
    try:
        # Hash and parse the same bytes, so what was verified is what gets used.
        data = (path / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError) as err:
        raise CorruptArtifactError(name, "listed in the manifest but missing") from err
    if len(data) != entry["bytes"]:
        raise CorruptArtifactError(
            name, f"size {len(data)} bytes, manifest says {entry['bytes']} (truncated or altered)"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise CorruptArtifactError(name, f"sha256 {digest} does not match the manifest's {entry['sha256']}")
    return data


def read_files(
    path: Path, files: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """Read, verify and parse every file the manifest lists; raises :class:`CorruptArtifactError`."""
    from safetensors.torch import load as safetensors_load

    tensors: dict[str, dict[str, Tensor]] = {}
    json_files: dict[str, Any] = {}
    for name, entry in files.items():
        data = _verified_bytes(path, name, entry)
        stem, suffix = split_file_name(name)
        if suffix == TENSOR_SUFFIX:
            try:
                tensors[stem] = safetensors_load(data)
            except Exception as err:  # safetensors raises its own error types
                raise CorruptArtifactError(name, f"not a readable safetensors file ({err})") from err
        else:
            try:
                json_files[stem] = json.loads(data.decode("utf-8"))
            except ValueError as err:
                raise CorruptArtifactError(name, f"not valid JSON ({err})") from err
    return tensors, json_files


def read_verified_json(path: Path, manifest: Mapping[str, Any], stem: str) -> Any:
    """One JSON document of a version, checked against its manifest, even when other files are damaged.

    Used to salvage the update rows of a version whose weights were damaged.

    Returns:
        The parsed document, or None when the manifest does not list it.

    Raises:
        CorruptArtifactError: the document itself is damaged.
    """
    name = stem + JSON_SUFFIX
    entry = manifest["files"].get(name)
    if entry is None:
        return None
    try:
        return json.loads(_verified_bytes(path, name, entry).decode("utf-8"))
    except ValueError as err:
        raise CorruptArtifactError(name, f"not valid JSON ({err})") from err


def move_aside(path: Path) -> Path | None:
    """Rename a bad version to ``<name>.corrupt-<UTC timestamp>``; None if that fails (e.g. already moved)."""
    target = path.with_name(f"{path.name}.corrupt-{utc_stamp()}")
    try:
        os.rename(path, target)
    except OSError as err:
        logger.warning("could not move bad artifact %s aside (%s)", path, err)
        return None
    return target
