"""The tuned-configuration file: what a study found, in a form ``--config FILE`` reads back.

A study writes ``<study-dir>/<dataset>-<model>.best.json``; its ``overrides`` are the
:class:`~engine.config.RunConfig` sections (``features``, ``model``, ``train``) that differ from
the defaults in the best trial's configuration: the tuned values *and* the fixed budget the
study ran under (``--epochs``, ``--no-text``), so training with the file reproduces the trial.
Where a run executes (device, training mode) and its seeds are never pinned: ``gatlens
benchmark`` sets the seeds and the user the device. The data section is never pinned either:
the dataset comes from the command line, and the file records which one it was tuned on.

This module imports neither torch nor Optuna, so the CLI reads a file without either.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from engine.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig

FORMAT = "gatlens-tuned/1"
SECTIONS: dict[str, type] = {"features": FeatureConfig, "model": ModelConfig, "train": TrainConfig}
# Where and with which seed a run executes, not what it learns: a tuned file never pins them.
_NOT_PINNED = {"model": {"name"}, "train": {"seed", "device", "mode", "tensorboard_dir", "max_seconds"}}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Tuned:
    """A tuned configuration read from a file.

    Attributes:
        model: the model it was tuned for (it applies to no other).
        overrides: ``RunConfig.with_overrides`` sections, e.g. ``{"train": {"lr": 0.001}}``.
        path: the file it came from (default: None).
    """

    model: str
    overrides: dict[str, dict[str, Any]]
    path: Path | None = None

    def apply(self, config: RunConfig) -> RunConfig:
        """``config`` with these overrides (the data section, seeds and device stay ``config``'s)."""
        return apply_overrides(config, self.overrides)


def file_stem(dataset: str, model: str) -> str:
    """``"ml-100k", "bprmf"`` -> ``"ml-100k-bprmf"``; characters unsafe in a file name become ``_``."""
    return f"{_UNSAFE.sub('_', dataset)}-{_UNSAFE.sub('_', model)}"


def dataset_label(data: DataConfig) -> str:
    """The dataset's name in study files: ``--name``, else a csv folder's name, else ``--dataset``.

    Computed from the config alone, so ``gatlens benchmark --tuned DIR`` finds the files
    without loading the data.
    """
    if data.name:
        return data.name
    if data.dataset == "csv" and data.data_dir:
        return Path(data.data_dir).name
    return data.dataset


def best_path(study_dir: Path, dataset: str, model: str) -> Path:
    """Where a study of ``model`` on ``dataset`` writes its best configuration."""
    return Path(study_dir) / f"{file_stem(dataset, model)}.best.json"


def overrides_of(config: RunConfig) -> dict[str, dict[str, Any]]:
    """The sections of ``config`` that differ from :class:`RunConfig` defaults, minus seeds and device.

    Example: a tuned BPR-MF gives ``{"train": {"lr": 0.001, "batch_size": 2048, "weight_decay": 0.0}}``.
    """
    default, mine = asdict(RunConfig()), asdict(config)
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        skip = _NOT_PINNED.get(section, set())
        diff = {k: v for k, v in mine[section].items() if k not in skip and v != default[section][k]}
        if diff:
            out[section] = diff
    return out


def apply_overrides(config: RunConfig, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """``config.with_overrides(**overrides)`` with errors that name the bad section or field.

    Raises:
        ValueError: for a section other than features/model/train, a field that section does
            not have, or a value its config rejects.
    """
    for section, values in overrides.items():
        kind = SECTIONS.get(section)
        if kind is None:
            raise ValueError(f"tuned overrides: unknown section {section!r}; expected one of {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise ValueError(f"tuned overrides: section {section!r} must map fields to values (got {values!r})")
        known = {f.name for f in fields(kind)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"tuned overrides: {section} has no field(s) {unknown}")
    return config.with_overrides(**overrides)


def write_best(path: Path, *, model: str, overrides: dict[str, dict[str, Any]], **info: Any) -> Path:
    """Write a tuned-configuration file (``info``: the study's figures, kept for people).

    Args:
        path: the file to write (its folder is created).
        model: the model the overrides are for.
        overrides: see :func:`overrides_of`.
        **info: extra JSON-serialisable entries (dataset, study, best value, commands to reuse it).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "model": model, "overrides": overrides, **info}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a file
    return path


def load_tuned(path: str | Path) -> Tuned:
    """Read a tuned-configuration file written by ``gatlens tune``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: for a file that is not JSON, not this format, or whose overrides name
            an unknown section or field or a value the config rejects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tuned configuration {str(path)!r} not found (gatlens tune writes one)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"tuned configuration {str(path)!r} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("model"), str):
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(
            f"{str(path)!r} is not a tuned configuration: expected format {FORMAT!r} and a model name (got {got!r})"
        )
    overrides = doc.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"{str(path)!r}: overrides must be an object of sections (got {overrides!r})")
    try:
        apply_overrides(RunConfig(model=ModelConfig(name=doc["model"])), overrides)  # validate now, not mid-run
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from exc
    return Tuned(doc["model"], overrides, path)
