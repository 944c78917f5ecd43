"""Implicit conversion, k-core filtering and deterministic train/valid/test splits.

The protocol defaults follow RecBole's general-recommendation benchmark:
explicit ratings >= 3 are positives, random 8:1:1 split per user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from engine.config import SPLITS as SPLIT_METHODS  # one list for split(), DataConfig and --split
from engine.data.idmap import IdMap
from engine.data.schema import ITEM, RATING, TIMESTAMP, USER, Dataset

# Internal-index column names of the split frames.
U, I, W_RATING, W_RECENCY = "u", "i", "w_rating", "w_recency"


def to_implicit(interactions: pd.DataFrame, threshold: float | None = 3.0, *, counts: bool = False) -> pd.DataFrame:
    """Keep positives only.

    Args:
        interactions: the dataset's interactions frame.
        threshold: ratings ``>= threshold`` are kept (default: 3.0, RecBole's
            protocol). ``None`` keeps everything; implicit logs (NaN ratings) are
            always kept whole.
        counts: the rating column holds counts (default: False): every row is kept, whatever
            ``threshold``, and the counts of a repeated (user, item) pair add up (a log of
            daily plays becomes each pair's total).

    Returns:
        The filtered frame, one row per (user, item): repeated events keep the
        latest timestamp and the highest rating (or the sum of the counts).
    """
    df = interactions
    if counts:
        total = df.groupby([USER, ITEM], sort=False)[RATING].transform("sum")
        df = df.assign(**{RATING: total})
        threshold = None
    if threshold is not None and not df[RATING].isna().all():
        df = df[df[RATING] >= threshold]
    df = df.sort_values([USER, ITEM, TIMESTAMP, RATING], kind="stable")
    return df.drop_duplicates([USER, ITEM], keep="last").reset_index(drop=True)


def kcore(interactions: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` interactions (``k <= 1``: no-op)."""
    df = interactions
    if k <= 1:
        return df
    while True:
        uc = df.groupby(USER)[ITEM].transform("size")
        ic = df.groupby(ITEM)[USER].transform("size")
        keep = (uc >= k) & (ic >= k)
        if keep.all():
            return df.reset_index(drop=True)
        df = df[keep]


@dataclass(frozen=True)
class SplitData:
    """A split in internal indices, with edge weights ready for the graph.

    Frames ``train`` / ``valid`` / ``test`` have columns ``u``, ``i`` (int64
    internal indices), ``w_rating`` (rating scaled to [0, 1]; 1.0 for implicit
    logs), ``w_recency`` (in (0, 1], 1.0 = newest event in the dataset) and
    ``timestamp``. The id map covers every user with a positive and every item
    in the catalog (items with no training interaction are cold-start items).
    """

    idmap: IdMap
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    @property
    def n_users(self) -> int:
        return self.idmap.n_users

    @property
    def n_items(self) -> int:
        return self.idmap.n_items

    def item_counts(self, part: str = "train") -> np.ndarray:
        """Interactions per item in one part (default: ``train``), ``[n_items]`` int64."""
        return np.bincount(getattr(self, part)[I].to_numpy(), minlength=self.n_items).astype(np.int64)

    def matrix(self, part: str = "train") -> sp.csr_matrix:
        """Binary user x item CSR matrix of one part (``train``, ``valid`` or ``test``)."""
        df = getattr(self, part)
        data = np.ones(len(df), dtype=np.float32)
        m = sp.csr_matrix((data, (df[U].to_numpy(), df[I].to_numpy())), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


def _edge_weights(df: pd.DataFrame, rating_scale: tuple[float, float] | None, counts: bool = False) -> pd.DataFrame:
    df = df.copy()
    if counts:
        # log(1 + count) over the largest: a 300,000-play artist weighs ~2.3x a 200-play one,
        # not 1,500x, and a count of 0 (owned, never played) still links the user and the item
        logs = np.log1p(df[RATING].fillna(0.0).clip(lower=0.0).to_numpy(np.float64))
        top = logs.max() if len(logs) else 0.0
        df[W_RATING] = (logs / top if top > 0 else np.ones_like(logs)).astype(np.float32)
    elif rating_scale is None or df[RATING].isna().all():
        df[W_RATING] = np.float32(1.0)
    else:
        lo, hi = rating_scale
        df[W_RATING] = ((df[RATING].fillna(hi) - lo) / max(hi - lo, 1e-9)).astype(np.float32)
    ts = df[TIMESTAMP].astype(np.float64)
    known = ts >= 0
    if known.any():
        t_max, t_min = ts[known].max(), ts[known].min()
        span = max(t_max - t_min, 1.0)
        # Linear recency in (0, 1]: scale-free across datasets whose time spans differ by years.
        rec = 1.0 - 0.9 * (t_max - ts) / span
        df[W_RECENCY] = np.where(known, rec, 1.0).astype(np.float32)
    else:
        df[W_RECENCY] = np.float32(1.0)
    return df


def split(
    dataset: Dataset,
    *,
    method: str = "random",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    threshold: float | None = 3.0,
    kcore_k: int = 0,
    leave_k: int = 1,
    time_cut: float | None = None,
    seed: int = 0,
) -> SplitData:
    """Split a dataset deterministically.

    Args:
        dataset: the validated dataset.
        method: ``"random"`` (per-user ratio split, default), ``"temporal"``
            (per-user leave-last-``leave_k`` for valid and for test),
            ``"global_time"`` (everything after quantile ``time_cut`` of the
            timestamps is test; valid is the last ``ratios[1]`` share before it) or
            ``"leave_one_out"`` (per user one random positive for test and one for
            valid; users with fewer than 3 positives keep all in train: small data).
        ratios: train/valid/test shares for ``random`` (default: 8:1:1).
        threshold: positive threshold for explicit ratings (default: 3.0); not applied to
            counts (``dataset.counts``), which are all positives.
        kcore_k: k-core filter applied before splitting (default: 0, none).
        leave_k: events per user held out for valid and test by ``temporal`` (default: 1).
        time_cut: quantile of time at which ``global_time`` starts test (default: 0.9).
        seed: shuffling seed for ``random`` (default: 0).

    Returns:
        A :class:`SplitData`; no (user, item) pair of valid/test is in train.

    Raises:
        ValueError: for bad arguments, or when the valid or test part comes out
            empty (the message says how many positives a user needs).
    """
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {method!r}; expected one of {', '.join(SPLIT_METHODS)}")
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be three non-negative shares summing to 1 (got {ratios!r})")
    df = kcore(to_implicit(dataset.interactions, threshold, counts=dataset.counts), kcore_k)
    if df.empty:
        raise ValueError(f"no interactions left after threshold={threshold} and k-core={kcore_k}")
    df = _edge_weights(df, dataset.rating_scale, dataset.counts)
    idmap = IdMap.build(sorted(df[USER].unique(), key=_natural), dataset.items[ITEM])
    df[U] = idmap.user_indices(df[USER].tolist())
    df[I] = idmap.item_indices(df[ITEM].tolist())
    if method == "random":
        part = _random_parts(df, ratios, seed)
    elif method == "temporal":
        part = _temporal_parts(df, leave_k)
    elif method == "leave_one_out":
        part = _leave_one_out_parts(df, seed)
    else:
        part = _global_time_parts(df, ratios[1], 0.9 if time_cut is None else time_cut)
    cols = [U, I, W_RATING, W_RECENCY, TIMESTAMP]
    frames = [df.loc[part == p, cols].sort_values([U, I]).reset_index(drop=True) for p in range(3)]
    _check_not_empty(frames, df, method, ratios)
    return SplitData(idmap, *frames)


def _check_not_empty(frames: list[pd.DataFrame], df: pd.DataFrame, method: str, ratios: tuple) -> None:
    """An empty valid or test part cannot be evaluated: say why and what works instead."""
    empty = [name for name, frame in zip(("valid", "test"), frames[1:], strict=True) if frame.empty]
    if not empty or method == "global_time":  # global_time: the cut, not per-user counts, decides
        return
    most = int(df.groupby(U).size().max())
    if method == "random":
        share = min(r for r in ratios[1:] if r > 0) if any(ratios[1:]) else 0.0
        need = f"at least {int(np.ceil(1 / share - 1e-9))} positive interactions" if share else "a non-zero share"
        why = f"the random split holds out {ratios[1]:g}/{ratios[2]:g} of each user's positives, so a user needs {need}"
    else:
        why = "a user needs at least 3 positive interactions (one each for train, valid and test)"
    parts = " and ".join(empty) + (" parts" if len(empty) > 1 else " part")
    raise ValueError(
        f"split {method!r} left the {parts} empty: {why}, and the most any user has here is {most} "
        "(positives are ratings >= the threshold, 3 by default); for small data use --split leave_one_out"
    )


def _natural(x: str) -> tuple[int, str]:
    # Numeric ids sort numerically ("2" before "10") so MovieLens user 1 is index 0.
    return (int(x), "") if x.isdigit() else (1 << 62, x)


def _random_parts(df: pd.DataFrame, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    shuffled = df.iloc[order]
    rank = shuffled.groupby(U).cumcount().to_numpy()
    size = shuffled.groupby(U)[I].transform("size").to_numpy()
    # RecBole-style counts: floor for valid and test, the remainder trains.
    n_valid = np.floor(size * ratios[1]).astype(int)
    n_test = np.floor(size * ratios[2]).astype(int)
    n_train = size - n_valid - n_test
    part_shuffled = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2))
    part = np.empty(len(df), dtype=np.int64)
    part[order] = part_shuffled
    return part


def _leave_one_out_parts(df: pd.DataFrame, seed: int) -> np.ndarray:
    """Per user one random positive to test and one to valid; users with under 3 keep all in train."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    shuffled = df.iloc[order]
    rank = shuffled.groupby(U).cumcount().to_numpy()
    size = shuffled.groupby(U)[I].transform("size").to_numpy()
    part_shuffled = np.where(size < 3, 0, np.where(rank == 0, 2, np.where(rank == 1, 1, 0)))
    part = np.empty(len(df), dtype=np.int64)
    part[order] = part_shuffled
    return part


def _temporal_parts(df: pd.DataFrame, leave_k: int) -> np.ndarray:
    ordered = df.sort_values([U, TIMESTAMP, I], kind="stable")
    rev_rank = ordered.groupby(U).cumcount(ascending=False).to_numpy()
    size = ordered.groupby(U)[I].transform("size").to_numpy()
    # Users too short to give up 2*leave_k events and keep one in train stay in train.
    can = size > 2 * leave_k
    p = np.where(can & (rev_rank < leave_k), 2, np.where(can & (rev_rank < 2 * leave_k), 1, 0))
    part = pd.Series(p, index=ordered.index).reindex(df.index).to_numpy()
    return part


def _global_time_parts(df: pd.DataFrame, valid_share: float, time_cut: float) -> np.ndarray:
    if not 0 < time_cut < 1:
        raise ValueError(f"time_cut must be a quantile in (0, 1) (got {time_cut!r})")
    ts = df[TIMESTAMP].to_numpy()
    t_test = np.quantile(ts, time_cut)
    t_valid = np.quantile(ts, max(time_cut - valid_share, 0.0))
    return np.where(ts > t_test, 2, np.where(ts > t_valid, 1, 0))
