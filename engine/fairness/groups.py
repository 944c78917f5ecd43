"""User group variables for fairness audits, indexed by internal user index.

Three kinds of grouping:

* demographic attributes from the users table (gender, age band, occupation);
* activity: how many training interactions the user has (light / medium /
  heavy). Recommenders usually serve active users better;
* mainstreamness: the mean popularity of the items in the user's history
  (niche / mixed / mainstream). Popularity bias hurts niche users most
  (Abdollahpouri et al., "The Unfairness of Popularity Bias in
  Recommendation", RMSE@RecSys 2019).

Every function returns ordered categoricals, so :class:`~engine.fairness.frame.GroupFrame`
and the dashboard show the groups in their natural order. A missing value
becomes the explicit group ``"unknown"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
import scipy.sparse as sp

from engine.data.schema import USER

UNKNOWN = "unknown"
USER_INDEX = "user_idx"
AGE_BAND = "age_band"
# MovieLens-1M's age bands. ML-1M stores ages as the band codes 1, 18, 25, 35,
# 45, 50, 56, so binning real ages (ML-100k) with the same edges gives groups
# that compare across datasets.
AGE_BAND_EDGES: tuple[int, ...] = (18, 25, 35, 45, 50, 56)
_ACTIVITY_NAMES = {
    2: ["light", "heavy"],
    3: ["light", "medium", "heavy"],
    4: ["light", "medium", "active", "heavy"],
}
_MAINSTREAM_NAMES = {2: ["niche", "mainstream"], 3: ["niche", "mixed", "mainstream"]}


def age_bands(ages: pd.Series | np.ndarray, edges: Sequence[int] = AGE_BAND_EDGES) -> pd.Categorical:
    """Bin numeric ages into labelled bands such as ``"<18"``, ``"18-24"``, ``"56+"``.

    Args:
        ages: ages in years (NaN allowed: it becomes ``"unknown"``).
        edges: increasing lower bounds of the bands after the first
            (default: MovieLens-1M's ``(18, 25, 35, 45, 50, 56)``).

    Returns:
        An ordered categorical. ``"unknown"`` is the last category, and only
        present when some age is missing.
    """
    edges = [int(e) for e in edges]
    if not edges or any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"age band edges must be a non-empty increasing sequence (got {edges!r})")
    labels = [f"<{edges[0]}"]
    labels += [f"{lo}-{hi - 1}" for lo, hi in pairwise(edges)]
    labels.append(f"{edges[-1]}+")
    values = np.asarray(pd.to_numeric(pd.Series(ages), errors="coerce"), dtype=np.float64)
    codes = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    out = np.array(labels, dtype=object)[np.minimum(codes, len(labels) - 1)]
    out[np.isnan(values)] = UNKNOWN
    return _ordered(out, labels)


def attribute_groups(users: pd.DataFrame, user_ids: Sequence[str], columns: list[str]) -> pd.DataFrame:
    """Demographic group variables for the users of an id map.

    Args:
        users: the dataset's users table: a ``user_id`` column plus attribute
            columns (``Dataset.users``).
        user_ids: external user ids in internal-index order (``IdMap.users``).
        columns: attributes to return. ``"age"`` returns an ``age_band``
            column: the table's own ``age_band`` column if it has one, otherwise
            numeric ages binned with :func:`age_bands`. A non-numeric ``age``
            column is used as it is.

    Returns:
        DataFrame indexed by internal user index (``0 .. len(user_ids) - 1``),
        one ordered categorical column per requested attribute. A user missing
        from the table, or with a missing value, gets ``"unknown"``.
    """
    if USER not in users.columns:
        raise ValueError(f"users table needs a {USER!r} column (got columns {list(users.columns)!r})")
    ids = users[USER].astype(str)
    if not ids.is_unique:
        dup = ids[ids.duplicated()].iloc[0]
        raise ValueError(f"users table lists user {dup!r} more than once")
    available = [c for c in users.columns if c != USER]
    table = users.assign(**{USER: ids}).set_index(USER).reindex([str(u) for u in user_ids])
    index = pd.RangeIndex(len(user_ids), name=USER_INDEX)
    out: dict[str, pd.Categorical] = {}
    for column in columns:
        if column == "age" and AGE_BAND in table.columns:
            out[AGE_BAND] = _categorical(table[AGE_BAND])
        elif column == "age" and "age" in table.columns and pd.api.types.is_numeric_dtype(table["age"]):
            out[AGE_BAND] = age_bands(table["age"])
        elif column in table.columns:
            out[column] = _categorical(table[column])
        else:
            raise ValueError(f"unknown user attribute {column!r}; the users table has {available!r}")
    return pd.DataFrame(out, index=index)


def activity_groups(history_counts: np.ndarray, q: int = 3) -> pd.Series:
    """Users binned by how many training interactions they have (quantile bins).

    The cut points are observed counts (``numpy.quantile(method="lower")``), so
    the labels hold exact integer ranges, e.g. ``"light (<=20)"``,
    ``"medium (21-60)"``, ``"heavy (>60)"``. When many users share a count,
    fewer than ``q`` distinct cut points may remain, and the bins merge.

    Args:
        history_counts: ``[n_users]`` non-negative integer counts per internal user index.
        q: number of quantile bins (default: 3). The names are light/heavy for
            2, light/medium/heavy for 3, light/medium/active/heavy for 4, and
            ``Q1..Qq`` otherwise.

    Returns:
        Ordered categorical Series named ``"activity"``, indexed by internal user index.
    """
    counts = np.asarray(history_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(f"history_counts must be a non-empty 1-D array (got shape {counts.shape})")
    if (counts < 0).any() or not np.array_equal(counts, np.round(counts)):
        raise ValueError("history_counts must be non-negative integers")
    _check_q(q)
    edges = _quantile_edges(counts, q)
    if len(edges) == 0:  # every user has the same count: one group
        labels = ["all"]
    else:
        names = _bin_names(len(edges) + 1, _ACTIVITY_NAMES)
        ranges = _integer_ranges(edges.astype(np.int64))
        labels = [f"{name} ({rng})" for name, rng in zip(names, ranges, strict=True)]
    codes = np.searchsorted(edges, counts, side="left")
    return pd.Series(
        _ordered(np.array(labels, dtype=object)[codes], labels),
        index=pd.RangeIndex(len(counts), name=USER_INDEX),
        name="activity",
    )


def mainstreamness_groups(history: sp.csr_matrix, item_popularity: np.ndarray, q: int = 3) -> pd.Series:
    """Users binned by the mean popularity of the items they interacted with.

    A user's mainstreamness is the mean of ``item_popularity`` over the items in
    their history row. Only which items are in the row counts, not the stored
    values. Quantile bins are computed over the users who have a history. Users
    with an empty history get ``"unknown"``.

    Args:
        history: ``[n_users, n_items]`` training interaction matrix (e.g.
            ``SplitData.matrix("train")``).
        item_popularity: ``[n_items]`` popularity per item, e.g. training
            interaction counts.
        q: number of quantile bins (default: 3). Names are niche/mainstream for
            2, niche/mixed/mainstream for 3, ``Q1..Qq`` otherwise.

    Returns:
        Ordered categorical Series named ``"mainstreamness"``, indexed by internal user index.
    """
    matrix = sp.csr_matrix(history, copy=True)
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if popularity.ndim != 1 or len(popularity) != matrix.shape[1]:
        raise ValueError(
            f"item_popularity must have one entry per item column of history "
            f"(got shape {popularity.shape}, history has {matrix.shape[1]} items)"
        )
    _check_q(q)
    matrix.eliminate_zeros()
    matrix.data = np.ones_like(matrix.data, dtype=np.float64)
    n_items_seen = np.asarray(matrix.sum(axis=1)).ravel()
    known = n_items_seen > 0
    means = np.full(matrix.shape[0], np.nan)
    means[known] = (matrix @ popularity)[known] / n_items_seen[known]
    names = _bin_names(1, {})
    out = np.full(matrix.shape[0], UNKNOWN, dtype=object)
    if known.any():
        edges = _quantile_edges(means[known], q)
        names = _bin_names(len(edges) + 1, _MAINSTREAM_NAMES)
        out[known] = np.array(names, dtype=object)[np.searchsorted(edges, means[known], side="left")]
    return pd.Series(
        _ordered(out, names),
        index=pd.RangeIndex(matrix.shape[0], name=USER_INDEX),
        name="mainstreamness",
    )


# ---------------------------------------------------------------------- helpers
def _check_q(q: int) -> None:
    if not isinstance(q, (int, np.integer)) or q < 1:
        raise ValueError(f"q must be a positive integer (got {q!r})")


def _quantile_edges(values: np.ndarray, q: int) -> np.ndarray:
    """Right-closed bin edges at the ``1/q .. (q-1)/q`` quantiles; every bin is non-empty.

    ``method="lower"`` makes each edge an observed value, so the bin ending at it
    holds at least that value. Edges equal to the maximum would leave the top
    bin empty, so they are dropped.
    """
    if q == 1:
        return np.empty(0)
    edges = np.quantile(values, np.arange(1, q) / q, method="lower")
    return np.unique(edges[edges < values.max()])


def _bin_names(n_bins: int, named: dict[int, list[str]]) -> list[str]:
    if n_bins == 1:
        return ["all"]
    return named.get(n_bins, [f"Q{i + 1}" for i in range(n_bins)])


def _integer_ranges(edges: np.ndarray) -> list[str]:
    """Text of the right-closed integer bins cut at (non-empty) ``edges``: ``<=a``, ``a+1-b``, ..., ``>z``."""
    out = [f"<={edges[0]}"]
    for lo, hi in zip(edges[:-1] + 1, edges[1:], strict=True):
        out.append(f"{lo}" if lo == hi else f"{lo}-{hi}")
    out.append(f">{edges[-1]}")
    return out


def _categorical(column: pd.Series) -> pd.Categorical:
    """Attribute values as an ordered categorical with ``"unknown"`` for missing values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = [str(c) for c in column.cat.categories]
    else:
        categories = sorted({str(v) for v in column.dropna()})
    values = np.array([UNKNOWN if pd.isna(v) else str(v) for v in column], dtype=object)
    return _ordered(values, categories)


def _ordered(values: np.ndarray, categories: list[str]) -> pd.Categorical:
    """Ordered categorical of the used categories in the given order, with ``"unknown"`` last if used."""
    present = set(values.tolist())
    cats = [c for c in categories if c in present and c != UNKNOWN]
    if UNKNOWN in present:
        cats.append(UNKNOWN)
    return pd.Categorical(values, categories=cats, ordered=True)
