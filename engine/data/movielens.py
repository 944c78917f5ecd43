"""MovieLens loaders for the official GroupLens layouts (files read as published).

- ``ml-100k``: ``u.data`` (tab: user, item, rating, time), ``u.item`` (Latin-1,
  ``|``-separated: id, title, release date, video date, url, 19 genre flags),
  ``u.user`` (id|age|gender|occupation|zip), optional ``u.genre``.
- ``ml-latest-small``: ``ratings.csv``, ``movies.csv`` (``|``-separated genres),
  optional ``tags.csv`` (joined into each movie's text).
- ``ml-1m``: ``ratings.dat``, ``movies.dat`` (Latin-1), ``users.dat``, ``::``-separated;
  age and occupation are codes documented in the dataset's README.

Items carry an extra ``year`` column (int64, from the title's "(1995)"; -1 when
unknown). Users carry ``age``, ``age_band`` (ML-1M's bands), ``gender``,
``occupation`` and ``zip``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.schema import CATEGORIES, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, Dataset
from engine.data.validation import (
    Problems,
    Table,
    check_duplicate_rows,
    check_known,
    check_unique,
    interactions_frame,
    parse_ids,
    parse_ratings,
    parse_timestamps,
    read_table,
    require_columns,
    require_files,
    split_categories,
)

logger = logging.getLogger(__name__)


def _read(path: Path, problems: Problems, **kwargs: Any) -> Table | None:
    """:func:`read_table` without the ``--encoding`` advice: the official MovieLens files
    have a fixed encoding, so the fix for bad bytes is a fresh copy, not another option."""
    return read_table(path, problems, advice=None, **kwargs)


# The files each layout needs (optional extras such as u.genre / tags.csv are not listed).
LAYOUT_FILES: dict[str, tuple[str, ...]] = {
    "ml-100k": ("u.data", "u.item", "u.user"),
    "ml-latest-small": ("ratings.csv", "movies.csv"),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
}
LAYOUT_NAMES = {
    "ml-100k": "the official MovieLens 100K layout (u.data, u.item, u.user)",
    "ml-latest-small": "the official MovieLens latest-small layout (ratings.csv, movies.csv, tags.csv)",
    "ml-1m": "the official MovieLens 1M layout (ratings.dat, movies.dat, users.dat)",
}
RATING_SCALES: dict[str, tuple[float, float]] = {
    "ml-100k": (1.0, 5.0),
    "ml-latest-small": (0.5, 5.0),
    "ml-1m": (1.0, 5.0),
}

# u.genre's order; used when the file is absent. "unknown" means "no genre" and is dropped.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# ML-1M's age codes (README "Age is chosen from the following ranges"); ML-100K's
# exact ages are binned the same way so both datasets share one attribute.
AGE_BANDS: dict[int, str] = {
    1: "<18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
NO_GENRES = "(no genres listed)"
YEAR_COLUMN = "year"
_YEAR = re.compile(r"\((\d{4})(?:\s*[-–]\s*\d{0,4})?\s*\)\s*$")


def resolve_folder(name: str, folder: str | Path) -> Path:
    """``folder`` itself, or ``folder/<name>`` when only that holds the layout's files.

    Lets ``--data-dir`` point at the folder the zip was extracted into.
    """
    folder = Path(folder)
    files = LAYOUT_FILES[name]
    if not (folder / files[0]).is_file() and (folder / name / files[0]).is_file():
        return folder / name
    return folder


def load_movielens(name: str, folder: str | Path) -> Dataset:
    """Load one of ``ml-100k``, ``ml-latest-small``, ``ml-1m`` from its official layout.

    Args:
        name: the dataset name.
        folder: the extracted archive's folder (or its parent).

    Raises:
        ValueError: for an unknown name.
        DataValidationError: when files are missing or malformed.
    """
    loaders = {"ml-100k": load_ml_100k, "ml-latest-small": load_ml_latest_small, "ml-1m": load_ml_1m}
    if name not in loaders:
        raise ValueError(f"unknown MovieLens dataset (got {name!r}); expected one of {sorted(loaders)}")
    return loaders[name](folder)


def load_ml_100k(folder: str | Path) -> Dataset:
    """MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings (1-5), user demographics."""
    name = "ml-100k"
    folder = resolve_folder(name, folder)
    problems = Problems()
    if not require_files(folder, LAYOUT_FILES[name], problems, layout=LAYOUT_NAMES[name]):
        problems.raise_if_any()
    genres = _read_genres(folder / "u.genre")
    ratings_t = _read(folder / "u.data", problems, sep="\t", names=[USER, ITEM, RATING, TIMESTAMP], quoting=False)
    items_t = _read(
        folder / "u.item",
        problems,
        sep="|",
        quoting=False,
        names=[ITEM, TITLE, "release_date", "video_release_date", "imdb_url", *genres],
        encoding=_text_encoding(folder / "u.item"),
    )
    users_t = _read(
        folder / "u.user",
        problems,
        sep="|",
        quoting=False,
        names=[USER, "age", "gender", "occupation", "zip"],
    )

    items = users = None
    if items_t is not None:
        flags = items_t.frame[list(genres)]
        _check_flags(items_t, list(genres), problems)
        categories = [
            tuple(g for g, on in zip(genres, row, strict=True) if on and g != "unknown")
            for row in (flags.to_numpy() == "1")
        ]
        items = _items_frame(items_t, problems, categories, text=None, fallback_dates=items_t.frame["release_date"])
    if users_t is not None:
        users = _users_100k(users_t, problems)
    interactions = _ratings(
        ratings_t, items_t, users_t, problems, RATING_SCALES[name], item_file="u.item", user_file="u.user"
    )
    problems.raise_if_any()
    return _dataset(name, interactions, items, users)


def load_ml_latest_small(folder: str | Path) -> Dataset:
    """MovieLens latest-small (2018): 610 users, 9,742 movies, 100,836 ratings (0.5-5), tags as text."""
    name = "ml-latest-small"
    folder = resolve_folder(name, folder)
    problems = Problems()
    if not require_files(folder, LAYOUT_FILES[name], problems, layout=LAYOUT_NAMES[name]):
        problems.raise_if_any()
    official = {"userId": USER, "movieId": ITEM}
    ratings_t = _read(folder / "ratings.csv", problems)
    movies_t = _read(folder / "movies.csv", problems)
    tags_t = _read(folder / "tags.csv", problems) if (folder / "tags.csv").is_file() else None
    for table, needed in (
        (ratings_t, [USER, ITEM, RATING, TIMESTAMP]),
        (movies_t, [ITEM, TITLE, "genres"]),
        (tags_t, [ITEM, "tag"]),
    ):
        if table is None:
            continue
        table.frame = table.frame.rename(columns=official)
        table.source_columns = {official.get(c, c): c for c in table.source_columns}
        if not require_columns(table, needed, problems):
            problems.raise_if_any()

    items = None
    if movies_t is not None:
        genres = movies_t.frame["genres"].where(movies_t.frame["genres"] != NO_GENRES, "")
        text = _tag_text(tags_t, problems) if tags_t is not None else None
        items = _items_frame(movies_t, problems, split_categories(genres), text=text)
        if tags_t is not None:
            check_known(tags_t, ITEM, items[ITEM], problems, listed_in="movies.csv")
    interactions = _ratings(
        ratings_t, movies_t, None, problems, RATING_SCALES[name], item_file="movies.csv", user_file=None
    )
    problems.raise_if_any()
    return _dataset(name, interactions, items, None)


def load_ml_1m(folder: str | Path) -> Dataset:
    """MovieLens 1M: 6,040 users, 3,706 rated movies, 1,000,209 ratings (1-5), user demographics."""
    name = "ml-1m"
    folder = resolve_folder(name, folder)
    problems = Problems()
    if not require_files(folder, LAYOUT_FILES[name], problems, layout=LAYOUT_NAMES[name]):
        problems.raise_if_any()
    ratings_t = _read(folder / "ratings.dat", problems, sep="::", names=[USER, ITEM, RATING, TIMESTAMP], quoting=False)
    movies_t = _read(
        folder / "movies.dat",
        problems,
        sep="::",
        names=[ITEM, TITLE, "genres"],
        quoting=False,
        encoding=_text_encoding(folder / "movies.dat"),
    )
    users_t = _read(
        folder / "users.dat",
        problems,
        sep="::",
        quoting=False,
        names=[USER, "gender", "age", "occupation", "zip"],
    )
    items = users = None
    if movies_t is not None:
        items = _items_frame(movies_t, problems, split_categories(movies_t.frame["genres"]), text=None)
    if users_t is not None:
        users = _users_1m(users_t, problems)
    interactions = _ratings(
        ratings_t,
        movies_t,
        users_t,
        problems,
        RATING_SCALES[name],
        item_file="movies.dat",
        user_file="users.dat",
    )
    problems.raise_if_any()
    return _dataset(name, interactions, items, users)


# --------------------------------------------------------------------------- parts


def _text_encoding(path: Path) -> str:
    """UTF-8 when the file decodes as UTF-8 (a re-saved copy), else Latin-1 (the official files)."""
    try:
        path.read_bytes().decode("utf-8")
        return "utf-8"
    except (UnicodeDecodeError, OSError):
        return "latin-1"


def _read_genres(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ML100K_GENRES
    pairs = []
    for line in path.read_text(encoding="latin-1").splitlines():
        genre, sep, index = line.strip().rpartition("|")
        if sep and index.isdigit():
            pairs.append((int(index), genre))
    genres = tuple(g for _, g in sorted(pairs))
    if len(genres) != len(ML100K_GENRES):
        logger.warning("%s lists %d genres, expected %d; using the fixed list", path, len(genres), len(ML100K_GENRES))
        return ML100K_GENRES
    return genres


def _check_flags(table: Table, columns: list[str], problems: Problems) -> None:
    for column in columns:
        bad = ~table.frame[column].isin(["0", "1"]).to_numpy()
        if bad.any():
            positions = np.flatnonzero(bad)
            problems.add_many(
                (table.cell(int(p), column, "a genre flag '0' or '1'") for p in positions), len(positions)
            )


def _items_frame(
    table: Table,
    problems: Problems,
    categories: list[tuple[str, ...]],
    text: pd.Series | None,
    fallback_dates: pd.Series | None = None,
) -> pd.DataFrame:
    ids = parse_ids(table, ITEM, problems)
    check_unique(table, ITEM, problems)
    titles = table.frame[TITLE]
    years = titles.str.extract(_YEAR, expand=False)
    if fallback_dates is not None:  # ml-100k's "01-Jan-1995"
        years = years.fillna(fallback_dates.str.extract(r"(\d{4})\s*$", expand=False))
    items = pd.DataFrame(
        {
            ITEM: ids.to_numpy(),
            TITLE: titles.to_numpy(),
            CATEGORIES: categories,
            TEXT: "",
            YEAR_COLUMN: pd.to_numeric(years, errors="coerce").fillna(-1).astype("int64").to_numpy(),
        }
    ).astype({ITEM: str, TITLE: str, TEXT: str})
    if text is not None:
        items[TEXT] = items[ITEM].map(text).fillna("").astype(str)
    return items


def _tag_text(tags: Table, problems: Problems) -> pd.Series:
    """Each movie's tags, in file order, case-insensitively de-duplicated, joined by ", "."""
    frame = pd.DataFrame({ITEM: parse_ids(tags, ITEM, problems), "tag": tags.frame["tag"]})
    frame = frame[frame["tag"] != ""]
    frame = frame.assign(key=frame["tag"].str.lower()).drop_duplicates([ITEM, "key"])
    return frame.groupby(ITEM, sort=False)["tag"].agg(", ".join)


def _age_band(ages: pd.Series) -> pd.Series:
    bins = [-np.inf, 18, 25, 35, 45, 50, 56, np.inf]
    labels = list(AGE_BANDS.values())
    return pd.cut(ages, bins=bins, labels=labels, right=False).astype(str)


def _users_100k(table: Table, problems: Problems) -> pd.DataFrame:
    ids = parse_ids(table, USER, problems)
    check_unique(table, USER, problems)
    ages = pd.to_numeric(table.frame["age"], errors="coerce")
    bad = ages.isna().to_numpy() | ~table.frame["age"].str.fullmatch(r"\d+").to_numpy()
    if bad.any():
        positions = np.flatnonzero(bad)
        messages = (table.cell(int(p), "age", "an age in whole years") for p in positions)
        problems.add_many(messages, len(positions))
        ages = ages.fillna(-1)
    ages = ages.astype("int64")
    return pd.DataFrame(
        {
            USER: ids.to_numpy(),
            "age": ages.to_numpy(),
            "age_band": _age_band(ages).to_numpy(),
            "gender": table.frame["gender"].to_numpy(),
            "occupation": table.frame["occupation"].to_numpy(),
            "zip": table.frame["zip"].to_numpy(),
        }
    ).astype({USER: str, "age_band": str, "gender": str, "occupation": str, "zip": str})


def _users_1m(table: Table, problems: Problems) -> pd.DataFrame:
    ids = parse_ids(table, USER, problems)
    check_unique(table, USER, problems)
    frame = table.frame
    codes = pd.to_numeric(frame["age"], errors="coerce")
    bad_age = ~codes.isin(list(AGE_BANDS)).to_numpy()
    if bad_age.any():
        positions = np.flatnonzero(bad_age)
        messages = (table.cell(int(p), "age", f"an age code in {sorted(AGE_BANDS)}") for p in positions)
        problems.add_many(messages, len(positions))
    occ = pd.to_numeric(frame["occupation"], errors="coerce")
    bad_occ = ~occ.isin(range(len(ML1M_OCCUPATIONS))).to_numpy()
    if bad_occ.any():
        positions = np.flatnonzero(bad_occ)
        expected = f"an occupation code 0-{len(ML1M_OCCUPATIONS) - 1}"
        messages = (table.cell(int(p), "occupation", expected) for p in positions)
        problems.add_many(messages, len(positions))
    codes = codes.where(~bad_age, -1).astype("int64")
    occ = occ.where(~bad_occ, 0).astype("int64")
    return pd.DataFrame(
        {
            USER: ids.to_numpy(),
            # ML-1M publishes an age *band* code (1, 18, 25, ...), the band's lower bound.
            "age": codes.to_numpy(),
            "age_band": codes.map(AGE_BANDS).fillna("").to_numpy(),
            "gender": frame["gender"].to_numpy(),
            "occupation": np.asarray(ML1M_OCCUPATIONS, dtype=object)[occ.to_numpy()],
            "zip": frame["zip"].to_numpy(),
        }
    ).astype({USER: str, "age_band": str, "gender": str, "occupation": str, "zip": str})


def _ratings(
    ratings: Table | None,
    items: Table | None,
    users: Table | None,
    problems: Problems,
    scale: tuple[float, float],
    *,
    item_file: str,
    user_file: str | None,
) -> pd.DataFrame | None:
    if ratings is None:
        return None
    user_ids = parse_ids(ratings, USER, problems)
    item_ids = parse_ids(ratings, ITEM, problems)
    values = parse_ratings(ratings, RATING, problems, scale)
    times = parse_timestamps(ratings, TIMESTAMP, problems)
    check_duplicate_rows(ratings, pd.DataFrame({USER: user_ids, ITEM: item_ids, TIMESTAMP: times}), problems)
    if items is not None:
        check_known(ratings, ITEM, items.frame[ITEM], problems, listed_in=item_file)
    if users is not None and user_file is not None:
        check_known(ratings, USER, users.frame[USER], problems, listed_in=user_file)
    return interactions_frame(user_ids, item_ids, values, times)


def _dataset(
    name: str, interactions: pd.DataFrame | None, items: pd.DataFrame | None, users: pd.DataFrame | None
) -> Dataset:
    assert interactions is not None and items is not None  # raise_if_any ran first
    dataset = Dataset(name=name, interactions=interactions, items=items, users=users, rating_scale=RATING_SCALES[name])
    logger.info(
        "loaded %s: %d ratings, %d items, %s users",
        name,
        len(interactions),
        len(items),
        "no" if users is None else len(users),
    )
    return dataset
