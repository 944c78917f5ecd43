"""The named datasets and the one function that loads any of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.config import DataConfig, parse_columns
from engine.data.schema import Dataset


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of the dataset menu.

    Attributes:
        name: what ``--dataset`` takes.
        description: one line for ``gatlens data list`` and the dashboard.
        needs_data_dir: True when a data folder must be given (MovieLens is
            downloaded when none is given; the demo is generated).
    """

    name: str
    description: str
    needs_data_dir: bool


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("demo", "Built-in synthetic demo world, generated offline from a seed", False),
        DatasetInfo("ml-100k", "MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings (1-5), demographics", False),
        DatasetInfo(
            "ml-latest-small",
            "MovieLens latest-small (2018): 610 users, 9,742 movies, 100,836 ratings (0.5-5), tags",
            False,
        ),
        DatasetInfo("ml-1m", "MovieLens 1M: 6,040 users, 3,706 movies, 1,000,209 ratings (1-5), demographics", False),
        DatasetInfo("csv", "Your own interactions.csv + items.csv (+ users.csv) in --data-dir", True),
    )
}


def list_datasets() -> list[dict]:
    """Every dataset as ``{"name", "description", "needs_data_dir"}``, in menu order."""
    return [asdict(info) for info in DATASETS.values()]


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    seed: int = 0,
    scale: float = 1.0,
    encoding: str = "utf-8",
    dataset_name: str | None = None,
    duplicates: str = "error",
    unknown_items: str = "error",
) -> Dataset:
    """Load a dataset by name.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: the data folder (default: None). Required for ``csv``; for
            MovieLens, None means ``data/downloads/<name>`` (downloaded if absent);
            must be None for ``demo``.
        columns: file column -> canonical name, ``csv`` only (default: None).
        seed: the demo world's seed (default: 0); other datasets are fixed files.
        scale: the demo world's size multiplier (default: 1.0); ``demo`` only.
        encoding: the files' encoding (default: ``"utf-8"``); ``csv`` only.
        dataset_name: the dataset's name and model-cache folder (default: None,
            the folder's name made cache-safe); ``csv`` only.
        duplicates: ``"error"`` or ``"drop"``, what repeated rows do (default: ``"error"``);
            ``csv`` only (:func:`~engine.data.csv_loader.load_csv_dataset`).
        unknown_items: ``"error"`` or ``"add"``, what items missing from ``items.csv`` do
            (default: ``"error"``); ``csv`` only.

    Raises:
        ValueError: for an unknown name or an option the dataset does not take.
        DataValidationError: when the files are missing or malformed.
        DownloadError: when a MovieLens archive is needed but cannot be fetched.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}")
    if columns and name != "csv":
        raise ValueError(f"columns only apply to the csv dataset (got {dict(columns)!r} for {name!r})")
    csv_options = (encoding != "utf-8", dataset_name is not None, duplicates != "error", unknown_items != "error")
    if any(csv_options) and name != "csv":
        raise ValueError(
            f"encoding, a dataset name, duplicates and unknown_items only apply to the csv dataset (got {name!r})"
        )
    if scale != 1.0 and name != "demo":
        raise ValueError(f"scale only applies to the demo dataset (got scale={scale!r} for {name!r})")
    if name == "demo":
        if data_dir is not None:
            raise ValueError(f"the demo dataset is generated and takes no data_dir (got {str(data_dir)!r})")
        from engine.data.synthetic import generate_demo_world  # written alongside; keep imports lazy

        return generate_demo_world(seed, scale=scale).dataset
    if name == "csv":
        if data_dir is None:
            raise ValueError("the csv dataset needs a data_dir holding interactions.csv (got None)")
        from engine.data.csv_loader import load_csv_dataset

        return load_csv_dataset(
            data_dir,
            columns=columns,
            encoding=encoding,
            name=dataset_name,
            duplicates=duplicates,
            unknown_items=unknown_items,
        )

    from engine.data.movielens import load_movielens

    if data_dir is None:
        from engine.data.download import ensure_dataset

        data_dir = ensure_dataset(name)
    return load_movielens(name, data_dir)


def load_configured(data: DataConfig) -> Dataset:
    """Load the dataset a :class:`~engine.config.DataConfig` names, with its csv options."""
    kwargs: dict[str, Any] = {"seed": data.seed}
    if data.dataset == "demo":
        kwargs["scale"] = data.scale
    if data.dataset == "csv":
        kwargs.update(
            columns=parse_columns(data.columns),
            encoding=data.encoding,
            dataset_name=data.name,
            duplicates=data.duplicates,
            unknown_items=data.unknown_items,
        )
    return load_dataset(data.dataset, data.data_dir, **kwargs)
