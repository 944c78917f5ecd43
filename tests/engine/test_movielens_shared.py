"""The MovieLens loaders on the real files in ../shared/datasets (skipped where absent).

Each dataset is loaded once per module; the expected counts are the published ones
(and those in each folder's SOURCES.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.data.movielens import load_movielens
from engine.data.schema import CATEGORIES, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, Dataset

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"

pytestmark = pytest.mark.slow


def _load(name: str) -> tuple[Dataset, float]:
    folder = SHARED / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (the shared MovieLens copies only exist on the project's machines)")
    start = time.perf_counter()
    data = load_movielens(name, folder)
    return data, time.perf_counter() - start


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return _load("ml-100k")[0]


@pytest.fixture(scope="module")
def latest_small() -> tuple[Dataset, float]:
    return _load("ml-latest-small")


def test_ml_100k_counts(ml100k: Dataset) -> None:
    inter = ml100k.interactions
    assert len(inter) == 100_000
    assert inter[USER].nunique() == 943
    assert len(ml100k.items) == 1_682 and inter[ITEM].nunique() == 1_682
    assert ml100k.rating_scale == (1.0, 5.0)
    assert sorted(inter[RATING].unique().tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    # 1997-09-20 03:05:10 UTC to 1998-04-22 23:10:38 UTC
    assert (int(inter[TIMESTAMP].min()), int(inter[TIMESTAMP].max())) == (874724710, 893286638)


def test_ml_100k_users(ml100k: Dataset) -> None:
    users = ml100k.users
    assert users is not None and len(users) == 943
    assert ml100k.user_attributes == ["age", "age_band", "gender", "occupation", "zip"]
    assert users["gender"].value_counts().to_dict() == {"M": 670, "F": 273}
    assert users["occupation"].nunique() == 21
    first = users.iloc[0].to_dict()
    assert first == {
        USER: "1",
        "age": 24,
        "age_band": "18-24",
        "gender": "M",
        "occupation": "technician",
        "zip": "85711",
    }
    assert set(users["age_band"]) == {"<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"}


def test_ml_100k_latin1_titles_and_genres(ml100k: Dataset) -> None:
    items = ml100k.items.set_index(ITEM)
    assert items.loc["543", TITLE] == "Misérables, Les (1995)"
    assert items.loc["543", CATEGORIES] == ("Drama", "Musical")
    assert items.loc["1633", TITLE] == "Á köldum klaka (Cold Fever) (1994)"
    assert items.loc["1", CATEGORIES] == ("Animation", "Children's", "Comedy")
    assert items.loc["267", TITLE] == "unknown" and items.loc["267", CATEGORIES] == ()
    assert items.loc["1", "year"] == 1995
    assert not items[TITLE].str.contains("\ufffd").any()


def test_ml_latest_small_counts(latest_small: tuple[Dataset, float]) -> None:
    data, _ = latest_small
    inter = data.interactions
    assert len(inter) == 100_836
    assert inter[USER].nunique() == 610
    assert len(data.items) == 9_742  # every movie, rated or not
    assert inter[ITEM].nunique() == 9_724
    assert data.users is None and data.rating_scale == (0.5, 5.0)
    assert (float(inter[RATING].min()), float(inter[RATING].max())) == (0.5, 5.0)
    # 1996-03-29 18:36:55 UTC to 2018-09-24 14:27:30 UTC
    assert (int(inter[TIMESTAMP].min()), int(inter[TIMESTAMP].max())) == (828124615, 1537799250)


def test_ml_latest_small_items(latest_small: tuple[Dataset, float]) -> None:
    items = latest_small[0].items.set_index(ITEM)
    assert items.loc["1", TITLE] == "Toy Story (1995)"
    assert items.loc["1", CATEGORIES] == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert items.loc["1", TEXT] == "pixar, fun"
    no_genres = items[CATEGORIES].map(len) == 0
    assert int(no_genres.sum()) == 34  # the "(no genres listed)" movies
    assert int((items[TEXT] != "").sum()) == 1_572  # movies with at least one tag


def test_ml_latest_small_loads_quickly(latest_small: tuple[Dataset, float]) -> None:
    _, seconds = latest_small
    assert seconds < 5.0, f"loading ml-latest-small took {seconds:.2f} s"
