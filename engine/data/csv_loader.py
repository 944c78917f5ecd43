"""A user's own data: ``interactions.csv`` + ``items.csv`` (+ optional ``users.csv``) in a folder.

Default columns (any other names through ``columns``, a file-column -> canonical-name map):

- ``interactions.csv``: ``user_id, item_id[, rating | count][, timestamp]``. Without a rating
  column the log is implicit (every row a positive). A ``count`` column (plays, clicks,
  purchases: finite, >= 0) instead of ``rating`` keeps every row a positive, weighted by
  ``log(1 + count)`` relative to the largest (a repeated user-item pair's counts add up). Timestamps are integer Unix
  seconds or ISO 8601 dates; an empty cell means "unknown".
- ``items.csv``: ``item_id, title[, categories][, text]`` plus any extra attribute
  columns; ``categories`` is ``|``-separated (``"Action|Comedy"``).
- ``users.csv`` (optional): ``user_id`` plus attribute columns (gender, age band, region...).

Every problem is reported at once (see :mod:`engine.data.validation`); nothing is written.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from engine.config import DUPLICATES, UNKNOWN_ITEMS
from engine.data.schema import CATEGORIES, COUNT, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER, Dataset
from engine.data.validation import (
    Problems,
    Table,
    apply_columns,
    check_duplicate_rows,
    check_folder,
    check_known,
    check_rating_outliers,
    check_unique,
    infer_attribute,
    interactions_frame,
    parse_counts,
    parse_ids,
    parse_ratings,
    parse_timestamps,
    read_table,
    require_columns,
    split_categories,
)

logger = logging.getLogger(__name__)

INTERACTIONS_FILE = "interactions.csv"
ITEMS_FILE = "items.csv"
USERS_FILE = "users.csv"

_INTERACTIONS_HINT = "a header line 'user_id,item_id[,rating|count][,timestamp]' and one row per interaction"
_ITEMS_HINT = (
    "a header line 'item_id,title[,categories][,text]' and one row per item "
    "(or pass --unknown-items add to title every item by its id)"
)
# A dataset name keys a cache folder: the same rule as the artifact store's.
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_USERS_HINT = "a header line 'user_id,<attribute columns>' and one row per user"


def load_csv_dataset(
    folder: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    rating_scale: tuple[float, float] | None = None,
    encoding: str = "utf-8",
    name: str | None = None,
    duplicates: str = "error",
    unknown_items: str = "error",
) -> Dataset:
    """Load and validate a folder of CSV files.

    Args:
        folder: folder holding ``interactions.csv``, ``items.csv`` and optionally
            ``users.csv``.
        columns: file column -> canonical name, applied to every file that has the
            column, e.g. ``{"uid": "user_id", "movie": "item_id"}`` (default: None).
        rating_scale: inclusive (min, max) ratings must lie in (default: None, the
            min and max found in the file). Ignored for implicit logs.
        encoding: encoding of all three files (default: ``"utf-8"``).
        name: dataset name, which also names its folder in the model cache
            (default: the folder's name, see :func:`csv_dataset_name`).
        duplicates: what interactions that repeat an earlier row's user, item and timestamp do:
            ``"error"`` reports each one (with the line it repeats) and loads nothing; ``"drop"``
            keeps the first of each and logs how many it dropped (default: ``"error"``).
        unknown_items: what items of ``interactions.csv`` that ``items.csv`` does not list do:
            ``"error"`` reports each one; ``"add"`` adds them to the catalog titled by their id
            (no categories, no text), and lets a folder without ``items.csv`` load, every item
            titled so (default: ``"error"``).

    Returns:
        The validated :class:`~engine.data.schema.Dataset`.

    Raises:
        DataValidationError: listing every problem found in the files.
        ValueError: when ``rating_scale`` is not an increasing pair of numbers,
            ``name`` is not a plain name, or ``duplicates`` / ``unknown_items`` is not one of
            its choices.
    """
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {', '.join(DUPLICATES)} (got {duplicates!r})")
    if unknown_items not in UNKNOWN_ITEMS:
        raise ValueError(f"unknown_items must be one of {', '.join(UNKNOWN_ITEMS)} (got {unknown_items!r})")
    add_items = unknown_items == "add"
    if rating_scale is not None:
        low, high = (float(v) for v in rating_scale)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"rating_scale must be (min, max) with min < max (got {rating_scale!r})")
        rating_scale = (low, high)
    folder = Path(folder)
    dataset_name = csv_dataset_name(folder, name)
    problems = Problems()
    expected = f"a folder with {INTERACTIONS_FILE}, {ITEMS_FILE} and optionally {USERS_FILE}"
    if not check_folder(folder, problems, expected=expected):
        problems.raise_if_any()

    inter_t = read_table(folder / INTERACTIONS_FILE, problems, encoding=encoding, expected=_INTERACTIONS_HINT)
    items_path = folder / ITEMS_FILE
    # With --unknown-items add a folder without items.csv loads: every item is titled by its id.
    items_expected = not add_items or items_path.exists()
    items_t = read_table(items_path, problems, encoding=encoding, expected=_ITEMS_HINT) if items_expected else None
    users_path = folder / USERS_FILE
    users_t = read_table(users_path, problems, encoding=encoding, expected=_USERS_HINT) if users_path.exists() else None
    tables = [t for t in (inter_t, items_t, users_t) if t is not None]

    if columns:
        used: set[str] = set()
        for table in tables:
            used |= apply_columns(table, columns, problems)
        # An unused key is only certain once every existing file's header was read.
        all_read = len(tables) == 1 + items_expected + users_path.exists()
        if all_read and (unused := set(columns) - used):
            found = "; ".join(f"{t.name} has {', '.join(map(repr, t.source_columns.values()))}" for t in tables)
            for key in sorted(unused):
                problems.add(
                    f"--columns {key}={columns[key]}: got column {key!r}, expected a column of "
                    f"{INTERACTIONS_FILE}, {ITEMS_FILE} or {USERS_FILE} ({found})"
                )

    inter_ok = inter_t is not None and require_columns(
        inter_t, [USER, ITEM], problems, optional=[RATING, COUNT, TIMESTAMP]
    )
    if inter_ok and {RATING, COUNT} <= set(inter_t.frame.columns):
        problems.add(
            f"{INTERACTIONS_FILE}, line 1: both a {RATING!r} and a {COUNT!r} column "
            f"({inter_t.column_label(RATING)!r}, {inter_t.column_label(COUNT)!r}); expected one: ratings are "
            "judged against --threshold, counts are all positives weighted by their size"
        )
        inter_ok = False
    items_ok = items_t is not None and require_columns(items_t, [ITEM, TITLE], problems, optional=[CATEGORIES, TEXT])
    users_ok = users_t is not None and require_columns(users_t, [USER], problems)

    interactions = _interactions(inter_t, problems, rating_scale, duplicates) if inter_ok else None
    items = _items(items_t, problems) if items_ok else None
    users = _users(users_t, problems) if users_ok else None
    if inter_ok and items_ok and not add_items:
        listed_in = f"{ITEMS_FILE} (or pass --unknown-items add to add them, titled by their id)"
        check_known(inter_t, ITEM, items[ITEM], problems, listed_in=listed_in)
    if inter_ok and users_ok:
        check_known(inter_t, USER, users[USER], problems, listed_in=USERS_FILE)
    problems.raise_if_any()

    assert interactions is not None and (items is not None or not items_expected)  # guaranteed when no problems
    if add_items:
        items = _with_unlisted_items(items, interactions)
    counts = COUNT in inter_t.frame.columns
    if counts or interactions[RATING].isna().all():
        scale = None
    elif rating_scale is not None:
        scale = rating_scale
    else:
        scale = (float(interactions[RATING].min()), float(interactions[RATING].max()))
    dataset = Dataset(
        name=dataset_name,
        interactions=interactions,
        items=items,
        users=users,
        rating_scale=scale,
        counts=counts,
    )
    logger.info(
        "loaded %s: %d interactions, %d items, %s users",
        dataset.name,
        len(interactions),
        len(items),
        "no" if users is None else len(users),
    )
    return dataset


def csv_dataset_name(folder: Path, name: str | None = None) -> str:
    """The dataset's name: ``name`` when given, else one made from the folder's name.

    The name keys the model cache (``<cache>/models/<name>/``) and appears in every
    message, so it must be a plain name: letters, digits, ``.``, ``_``, ``-``, not
    starting with ``.`` or ``-``, at most 128 characters. A folder name that is not
    one (``"My Ratings"``, ``"données"``, ``".hidden"``) is turned into one
    (``"My-Ratings"``, ``"donnees"``, ``"hidden"``) and the change is logged.

    Args:
        folder: the data folder.
        name: the name chosen with ``--name`` (default: None, use the folder's).

    Raises:
        ValueError: when ``name`` is given and not a plain name (nothing is
            changed silently in a name the user typed).
    """
    if name is not None:
        if not DATASET_NAME.fullmatch(name):
            raise ValueError(
                f"--name must be a plain name of letters, digits, '.', '_', '-' that starts with a letter "
                f"or digit, at most 128 characters (got {name!r})"
            )
        return name
    raw = folder.resolve().name
    ascii_name = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name).strip(".-_")[:128] or "csv-data"
    if slug != raw:
        logger.warning("dataset name %r (from folder %r); choose another with --name", slug, raw)
    return slug


def _interactions(
    table: Table, problems: Problems, scale: tuple[float, float] | None, duplicates: str
) -> pd.DataFrame:
    frame = table.frame
    users = parse_ids(table, USER, problems)
    items = parse_ids(table, ITEM, problems)
    ratings = parse_ratings(table, RATING, problems, scale) if RATING in frame.columns else None
    if ratings is not None and scale is None:
        check_rating_outliers(table, RATING, ratings, problems)
    if COUNT in frame.columns:  # counts travel in the rating column (Dataset.counts says so)
        ratings = parse_counts(table, COUNT, problems)
    times = parse_timestamps(table, TIMESTAMP, problems) if TIMESTAMP in frame.columns else None
    ignored = [table.column_label(c) for c in frame.columns if c not in (USER, ITEM, RATING, COUNT, TIMESTAMP)]
    if ignored:
        logger.info("%s: ignoring column(s) %s", table.name, ", ".join(map(repr, ignored)))
    key = pd.DataFrame({USER: users, ITEM: items})
    # Repeats with unknown times are kept as duplicates too: without a time two
    # identical rows cannot be told apart from a copy-paste slip.
    key[TIMESTAMP] = times if times is not None else -1
    if duplicates == "error":
        fix = "remove the repeated row, or pass --duplicates drop to keep the first of each"
        check_duplicate_rows(table, key, problems, fix=fix)
        return interactions_frame(users, items, ratings, times)
    keep = ~key.duplicated(keep="first").to_numpy()
    if not keep.all():
        logger.warning(
            "%s: dropped %d row(s) that repeat an earlier row's user, item and timestamp (--duplicates drop)",
            table.name,
            int((~keep).sum()),
        )
    kept = [None if s is None else s[keep] for s in (ratings, times)]
    return interactions_frame(users[keep], items[keep], *kept)


def _with_unlisted_items(items: pd.DataFrame | None, interactions: pd.DataFrame) -> pd.DataFrame:
    """``items`` plus every item of ``interactions`` it lacks, titled by its id (``--unknown-items add``)."""
    listed = pd.Index([] if items is None else items[ITEM])
    missing = pd.unique(interactions[ITEM][~interactions[ITEM].isin(listed)])
    if len(missing):
        where = f"{ITEMS_FILE} lacks" if items is not None else f"no {ITEMS_FILE}:"
        logger.warning(
            "%s %d item(s) of %s: added, titled by their id, with no categories or text (--unknown-items add)",
            where,
            len(missing),
            INTERACTIONS_FILE,
        )
    added = pd.DataFrame({ITEM: missing, TITLE: missing, CATEGORIES: [()] * len(missing), TEXT: ""})
    if items is None:
        return added.astype({ITEM: str, TITLE: str, TEXT: str})
    return pd.concat([items, added], ignore_index=True)


def _items(table: Table, problems: Problems) -> pd.DataFrame:
    frame = table.frame
    ids = parse_ids(table, ITEM, problems)
    check_unique(table, ITEM, problems)
    titles = frame[TITLE]
    untitled = (titles == "").to_numpy()
    if untitled.any():
        logger.warning("%s: %d item(s) have an empty title; their id stands in for it", table.name, int(untitled.sum()))
        titles = titles.where(~untitled, ids)
    out = pd.DataFrame(
        {
            ITEM: ids.to_numpy(),
            TITLE: titles.to_numpy(),
            CATEGORIES: split_categories(frame[CATEGORIES]) if CATEGORIES in frame.columns else [()] * len(frame),
            TEXT: frame[TEXT].to_numpy() if TEXT in frame.columns else np.full(len(frame), ""),
        }
    ).astype({ITEM: str, TITLE: str, TEXT: str})
    for column in frame.columns:
        if column not in (ITEM, TITLE, CATEGORIES, TEXT):
            out[column] = infer_attribute(frame[column]).to_numpy()
    return out


def _users(table: Table, problems: Problems) -> pd.DataFrame:
    frame = table.frame
    ids = parse_ids(table, USER, problems)
    check_unique(table, USER, problems)
    out = pd.DataFrame({USER: ids.to_numpy()}).astype({USER: str})
    for column in frame.columns:
        if column != USER:
            out[column] = infer_attribute(frame[column]).to_numpy()
    return out
