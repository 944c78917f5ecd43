"""Turning tensors and JSON documents into the bytes of a version, and writing them durably.

A version is written into a hidden temp directory next to its final place (same filesystem),
fsynced, then renamed into place in one step by :meth:`engine.artifacts.store.ArtifactStore.save`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.artifacts.layout import (
    FORMAT,
    FORMAT_VERSION,
    JSON_SUFFIX,
    MANIFEST,
    TENSOR_SUFFIX,
    check_name,
    utc_now_iso,
)

if TYPE_CHECKING:
    from torch import Tensor


def check_json(value: Any, what: str) -> Any:
    """Fail early, naming ``what``, if ``value`` cannot be written as JSON."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"save: {what} is not JSON-serialisable ({err})") from err
    return value


def encode_payload(tensors: Mapping[str, Mapping[str, Tensor]], json_files: Mapping[str, Any]) -> dict[str, bytes]:
    """File name -> bytes for every tensor group and JSON document.

    Raises:
        TypeError: a value that is not a tensor / not JSON-serialisable (the message names it).
        ValueError: a bad or reserved file name, or names that differ only by case.
    """
    from safetensors.torch import save as safetensors_save

    if not isinstance(tensors, Mapping):
        raise TypeError(f"save: tensors must be a dict of state_dicts (got {type(tensors).__name__})")
    if not isinstance(json_files, Mapping):
        raise TypeError(f"save: json_files must be a dict (got {type(json_files).__name__})")
    payload: dict[str, bytes] = {}
    for group, state in tensors.items():
        check_name(group, "tensors")
        # metadata "format": "pt" is what safetensors' own torch helpers write.
        payload[group + TENSOR_SUFFIX] = safetensors_save(_prepare_state(group, state), metadata={"format": "pt"})
    for name, doc in json_files.items():
        check_name(name, "json_files")
        if name + JSON_SUFFIX == MANIFEST:
            raise ValueError(f"save: json_files name is reserved for the manifest (got {name!r})")
        try:
            text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise TypeError(f"save: json_files[{name!r}] is not JSON-serialisable ({err})") from err
        payload[name + JSON_SUFFIX] = text.encode("utf-8")
    lowered = [n.lower() for n in payload]
    if len(set(lowered)) != len(lowered):
        # Case-insensitive filesystems (macOS, Windows) would let one file overwrite another.
        raise ValueError(f"save: file names differ only by case (got {sorted(payload)!r})")
    return payload


def _prepare_state(group: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, CPU, contiguous tensors with no two sharing storage (safetensors refuses that)."""
    import torch

    if not isinstance(state, Mapping):
        raise TypeError(f"save: tensors[{group!r}] must be a state_dict (got {type(state).__name__})")
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, tensor in state.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"save: tensors[{group!r}] keys must be non-empty str (got {key!r})")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"save: tensors[{group!r}][{key!r}] must be a Tensor (got {type(tensor).__name__})")
        if tensor.layout != torch.strided:
            raise ValueError(f"save: tensors[{group!r}][{key!r}] must be dense (got layout {tensor.layout})")
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            t = t.clone()  # tied weights or a view of another entry: store an independent copy
        elif ptr != 0:  # empty tensors all report 0 and never count as shared
            seen.add(ptr)
        out[key] = t
    return out


def manifest_bytes(
    *,
    dataset: str,
    fp: str,
    version: int,
    files: Mapping[str, Any],
    meta: Mapping[str, Any],
    parent: Mapping[str, Any] | None,
) -> bytes:
    """The ``manifest.json`` of one version, as written."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "fingerprint": fp,
        "version": version,
        "created": utc_now_iso(),
        "engine_version": engine_version(),
        "files": dict(files),
        "meta": dict(meta),
        "parent": None if parent is None else dict(parent),
    }
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_synced(path: Path, data: bytes, *, exclusive: bool = True) -> None:
    """Write ``data`` to ``path`` and fsync it (``exclusive``: fail if it exists; default: True)."""
    with open(path, "xb" if exclusive else "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Persist a directory's entries (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def engine_version() -> str:
    """The running engine's version, recorded in every manifest."""
    from engine import __version__

    return __version__


def total_bytes(files: Mapping[str, Mapping[str, Any]]) -> int:
    """Total size of a manifest's files."""
    return sum(int(entry["bytes"]) for entry in files.values())


def write_files(tmp: Path, payload: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """Write and fsync each file of ``payload`` into ``tmp``; returns the manifest's ``files`` entry."""
    files: dict[str, dict[str, Any]] = {}
    for name, data in payload.items():
        write_synced(tmp / name, data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return files
