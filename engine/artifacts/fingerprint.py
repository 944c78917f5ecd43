"""Fingerprint of a trained model: what it was trained with, on what, by which code.

A fingerprint is the sha256 of one canonical JSON document holding the run's
config, the dataset's content hash (:meth:`engine.data.schema.Dataset.content_hash`)
and the engine version. Any change to one of the three gives a new fingerprint,
so the artifact store never serves a model trained under other conditions;
dict key order and tuple-vs-list spelling do not count as changes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

# Bump when the document below changes shape, so old fingerprints can never collide with new ones.
_SCHEME = "gatlens-fingerprint/1"


def _canonical(value: Any, where: str) -> Any:
    """Reduce ``value`` to plain JSON types (dict with str keys, list, str, int, float, bool, None).

    ``where`` is the dotted path to the value, so a type error names the offending entry.
    """
    # Enum before the primitives: IntEnum / StrEnum members are also ints / strs.
    if isinstance(value, enum.Enum):
        return _canonical(value.value, where)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        # json writes floats with float.__repr__ (shortest round-trip form): 0.1 -> "0.1".
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                # json would turn 1 into "1" and silently merge it with a real "1" key.
                raise TypeError(f"fingerprint: config keys must be str, at {where} (got {key!r})")
            out[key] = _canonical(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        # Sets have no order: sort the members by their own canonical text.
        members = [_canonical(item, f"{where}{{}}") for item in value]
        return sorted(members, key=lambda m: json.dumps(m, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, PurePath):
        return value.as_posix()
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        # numpy scalars and arrays -> Python numbers / nested lists (no numpy import needed).
        return _canonical(value.tolist(), where)
    raise TypeError(f"fingerprint: cannot canonicalise the value at {where} (got {type(value).__name__}: {value!r})")


def canonical_json(value: Any) -> str:
    """Canonical JSON text of a config-like value.

    Keys sorted, no whitespace, ASCII only; tuples become lists, sets sorted lists,
    dataclass instances dicts of their fields, enums their values, paths POSIX strings,
    numpy scalars/arrays Python numbers/lists; floats are written with ``repr``
    (so ``1`` and ``1.0`` differ: the config's types are part of its identity).

    Args:
        value: a JSON-like structure.

    Returns:
        The canonical text; equal values give byte-identical text.

    Raises:
        TypeError: a value of an unsupported type, or a non-str dict key (the message names where).
    """
    return json.dumps(_canonical(value, "$"), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def fingerprint(config: Mapping[str, Any], data_hash: str, engine_version: str | None = None) -> str:
    """sha256 (64 hex chars) of the config, the dataset content hash and the engine version.

    Args:
        config: the run's configuration as a mapping (nested frozen dataclasses, tuples, enums
            and paths inside it are fine; see :func:`canonical_json`). A config dataclass
            instance is accepted too.
        data_hash: the dataset's content hash, e.g. ``Dataset.content_hash()``.
        engine_version: code version (default: ``engine.__version__``).

    Returns:
        Lower-case hex sha256 digest.

    Raises:
        TypeError: ``config`` is neither a mapping nor a dataclass instance, or holds an unsupported value.
        ValueError: ``data_hash`` or ``engine_version`` is empty.
    """
    if not (isinstance(config, Mapping) or (dataclasses.is_dataclass(config) and not isinstance(config, type))):
        raise TypeError(f"fingerprint: config must be a mapping or a dataclass instance (got {type(config).__name__})")
    if not isinstance(data_hash, str) or not data_hash:
        raise ValueError(f"fingerprint: data_hash must be a non-empty str (got {data_hash!r})")
    if engine_version is None:
        from engine import __version__ as engine_version
    if not isinstance(engine_version, str) or not engine_version:
        raise ValueError(f"fingerprint: engine_version must be a non-empty str (got {engine_version!r})")
    document = {"scheme": _SCHEME, "config": config, "data_hash": data_hash, "engine_version": engine_version}
    return hashlib.sha256(canonical_json(document).encode("ascii")).hexdigest()
