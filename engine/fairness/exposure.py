"""How much exposure each item, and each group of items, gets from the top-K lists.

Exposure is position-weighted attention. With ``weighting="log"`` the item at
rank ``r`` (1-based) gets ``1 / log2(r + 1)``, the position discount of DCG,
as in the exposure-based fairness of Singh & Joachims, "Fairness of Exposure
in Rankings" (KDD 2018). With ``weighting="uniform"`` every slot counts 1, as
in plain recommendation counts (RecBole's ``GiniIndex``, Elliot's ``PopREO``).

Top-K arrays are ``[n_users, K]`` internal item indices. Negative entries
(``-1``) are padding and get no exposure. Popularity tiers (head / mid / long
tail) are defined once, in :mod:`engine.evaluation.popularity`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_WEIGHTINGS = ("log", "uniform")


def position_weights(k: int, weighting: str = "log") -> np.ndarray:
    """Attention weight per rank ``1..k``.

    Args:
        k: list length.
        weighting: ``"log"``: ``1 / log2(rank + 1)``; ``"uniform"``: 1 (default: ``"log"``).

    Returns:
        ``[k]`` float array.
    """
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {list(_WEIGHTINGS)}")
    if weighting == "uniform":
        return np.ones(k)
    return 1.0 / np.log2(np.arange(2, k + 2))


def item_exposure(topk: np.ndarray, n_items: int, *, weighting: str = "log") -> np.ndarray:
    """Total exposure per item over all users' lists.

    Args:
        topk: ``[n_users, K]`` internal item indices (``-1`` = padding).
        n_items: catalog size. Items never recommended get 0.
        weighting: ``"log"`` or ``"uniform"`` (default: ``"log"``).

    Returns:
        ``[n_items]`` float array. With ``"uniform"`` this is the number of lists
        the item appears in.
    """
    topk = _check_topk(topk)
    if topk.size and topk.max() >= n_items:
        raise ValueError(f"topk holds item index {int(topk.max())} but n_items is {n_items}")
    weights = np.broadcast_to(position_weights(topk.shape[1], weighting), topk.shape)
    keep = topk >= 0
    return np.bincount(topk[keep], weights=weights[keep], minlength=n_items).astype(np.float64)


def exposure_by_group(
    topk: np.ndarray,
    item_groups: pd.Series,
    *,
    interactions_share: pd.Series | None = None,
    weighting: str = "log",
) -> pd.DataFrame:
    """Share of exposure per item group, next to the group's share of the catalog and of interactions.

    Args:
        topk: ``[n_users, K]`` internal item indices (``-1`` = padding).
        item_groups: group label per item. The index is the internal item
            index, and it must cover every item in ``topk``. Items missing
            from it count as outside the catalog: this raises.
        interactions_share: each group's share of training interactions
            (index = group label), e.g. from :func:`interaction_share`. It is
            renormalised to sum to 1, and groups missing from it get 0. None
            leaves the column NaN (default: None).
        weighting: ``"log"`` (``1/log2(rank+1)``) or ``"uniform"`` (default: ``"log"``).

    Returns:
        DataFrame with one row per group (category order for categoricals,
        otherwise sorted) and columns ``group, exposure_share, catalog_share,
        interaction_share, exposure_ratio``. The shares each sum to 1.
        ``exposure_ratio = exposure_share / catalog_share``: 1 means the group
        gets exposure in proportion to its catalog size, above 1 means it is
        over-exposed.
    """
    if not item_groups.index.is_unique:
        raise ValueError("item_groups has a duplicated index; expected one label per item")
    if item_groups.isna().any():
        raise ValueError(f"item_groups has {int(item_groups.isna().sum())} missing label(s)")
    topk = _check_topk(topk)
    item_index = np.asarray(item_groups.index, dtype=np.int64)
    if (item_index < 0).any():
        raise ValueError(f"item_groups index must hold internal item indices >= 0 (got {item_index.min()})")
    recommended = np.unique(topk[topk >= 0])
    unknown = np.setdiff1d(recommended, item_index)
    if len(unknown):
        raise ValueError(
            f"topk recommends {len(unknown)} item(s) absent from item_groups, e.g. {unknown[:5].tolist()!r}"
        )
    n_items = int(max(item_index.max(), recommended.max() if len(recommended) else 0)) + 1
    exposure = item_exposure(topk, n_items, weighting=weighting)[item_index]

    codes, labels = _factorize(item_groups)
    n_groups = len(labels)
    group_exposure = np.bincount(codes, weights=exposure, minlength=n_groups)
    total = group_exposure.sum()
    exposure_share = group_exposure / total if total > 0 else np.full(n_groups, np.nan)
    catalog_share = np.bincount(codes, minlength=n_groups) / len(codes)

    if interactions_share is None:
        inter = np.full(n_groups, np.nan)
    else:
        extra = pd.Index(interactions_share.index).difference(pd.Index(labels))
        if len(extra):
            raise ValueError(
                f"interactions_share has groups absent from item_groups: {list(extra)!r}; groups are {list(labels)!r}"
            )
        inter = interactions_share.reindex(labels).fillna(0.0).to_numpy(dtype=np.float64)
        if (inter < 0).any() or inter.sum() <= 0:
            raise ValueError(f"interactions_share must be non-negative with a positive sum (got {inter!r})")
        inter = inter / inter.sum()
    return pd.DataFrame(
        {
            "group": list(labels),
            "exposure_share": exposure_share,
            "catalog_share": catalog_share,
            "interaction_share": inter,
            "exposure_ratio": exposure_share / catalog_share,
        }
    )


def interaction_share(item_groups: pd.Series, item_popularity: np.ndarray) -> pd.Series:
    """Each group's share of interactions, for ``exposure_by_group(..., interactions_share=...)``.

    Args:
        item_groups: group label per item (index = internal item index).
        item_popularity: ``[n_items]`` interaction counts per internal item index.

    Returns:
        Series indexed by group label, summing to 1.
    """
    popularity = np.asarray(item_popularity, dtype=np.float64)
    index = np.asarray(item_groups.index, dtype=np.int64)
    if popularity.ndim != 1 or (len(index) and index.max() >= len(popularity)):
        raise ValueError(f"item_popularity (shape {popularity.shape}) must cover every item index of item_groups")
    codes, labels = _factorize(item_groups)
    sums = np.bincount(codes, weights=popularity[index], minlength=len(labels))
    if sums.sum() <= 0:
        raise ValueError("item_popularity sums to 0 over the items of item_groups")
    return pd.Series(sums / sums.sum(), index=pd.Index(labels, name="group"), name="interaction_share")


def lorenz_curve(exposure_counts: np.ndarray) -> pd.DataFrame:
    """Lorenz curve of exposure over items, for the dashboard's concentration plot.

    Args:
        exposure_counts: ``[n_items]`` non-negative exposure per item. Include
            never-recommended items as zeros (see :func:`item_exposure`).

    Returns:
        DataFrame with ``n_items + 1`` rows and columns ``x`` (cumulative share
        of items, least exposed first) and ``y`` (cumulative share of exposure).
        It starts at (0, 0) and ends at (1, 1). The diagonal means equal exposure.
    """
    x = _check_counts(exposure_counts)
    cum = np.concatenate([[0.0], np.cumsum(np.sort(x))])
    n = len(x)
    return pd.DataFrame({"x": np.arange(n + 1) / n, "y": cum / cum[-1]})


def gini(exposure_counts: np.ndarray) -> float:
    """Gini index of exposure across items (0 = equal, ``(n-1)/n`` = all on one item).

    Same formula as RecBole's ``GiniIndex``:
    ``sum_i (2i - n - 1) x_(i) / (n * sum x)`` over exposures sorted ascending
    (``i = 1..n``).

    Args:
        exposure_counts: ``[n_items]`` non-negative exposure per item, including zeros.

    Returns:
        The Gini index as a float.
    """
    x = np.sort(_check_counts(exposure_counts))
    n = len(x)
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * x.sum()))


# ---------------------------------------------------------------------- helpers
def _check_topk(topk: np.ndarray) -> np.ndarray:
    arr = np.asarray(topk)
    if arr.ndim != 2:
        raise ValueError(f"topk must be a 2-D [n_users, K] array (got shape {arr.shape})")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"topk must hold integer item indices (got dtype {arr.dtype})")
    return arr.astype(np.int64, copy=False)


def _check_counts(exposure_counts: np.ndarray) -> np.ndarray:
    x = np.asarray(exposure_counts, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"exposure_counts must be a non-empty 1-D array (got shape {x.shape})")
    if (x < 0).any() or not np.isfinite(x).all():
        raise ValueError("exposure_counts must be finite and non-negative")
    if x.sum() <= 0:
        raise ValueError("exposure_counts are all zero: exposure concentration is undefined")
    return x


def _factorize(labels: pd.Series) -> tuple[np.ndarray, list]:
    """Codes and labels in category order (categoricals, unused categories dropped) or sorted order."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        codes = labels.cat.codes.to_numpy(dtype=np.int64)
        used = np.unique(codes)
        remap = np.full(len(labels.cat.categories), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return remap[codes], list(labels.cat.categories[used])
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.int64), list(uniques)
