"""The fairness, diversity and popularity-bias audit of one trained recommender.

:func:`run_audit` is the orchestrator; the definitions live in the modules it
calls, each citing its reference:

* top-K lists and their accuracy: full ranking with train (and, for the test
  part, valid) items excluded, scored by
  :func:`engine.evaluation.ranking.metrics_from_topk` (RecBole definitions);
* beyond-accuracy metrics: :mod:`engine.evaluation.beyond`;
* user groups and their bootstrap CIs: :mod:`engine.fairness.groups` and
  :class:`engine.fairness.frame.GroupFrame`;
* item exposure, Lorenz curve: :mod:`engine.fairness.exposure`;
* re-rankers, the provider-aware one included: :mod:`engine.fairness.rerank`.

Re-ranking is post-processing on a candidate list: the model's top
``candidates`` items per evaluated user with the same exclusions as the plain
evaluation. Re-ranked lists go through the *same* metric code as the plain
lists, so their accuracy is honest (a re-ranker cannot look at the held-out
items), and strength 0 reproduces the plain audit exactly.

Everything is vectorised over users: on ml-100k (943 users, 1,682 items) a
full audit with 1,000 bootstrap resamples over five group variables takes
well under the 10 s budget once the model is trained.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from engine.evaluation.beyond import beyond_accuracy, exposure_counts, per_user_beyond
from engine.evaluation.ranking import METRICS, metrics_from_topk
from engine.fairness.exposure import (
    exposure_by_group,
    interaction_share,
    item_exposure,
    lorenz_curve,
    popularity_groups,
)
from engine.fairness.frame import GroupFrame
from engine.fairness.groups import AGE_BAND, activity_groups, attribute_groups, mainstreamness_groups
from engine.fairness.rerank import AUDIT_RERANKERS, PROVIDER, apply_rerank, parse_audit_rerank, provider_rerank

log = logging.getLogger(__name__)

ACTIVITY, MAINSTREAMNESS = "activity", "mainstreamness"
# PROVIDER ("provider", from engine.fairness.rerank) names the items column, the exposure
# dimension and the provider-aware re-ranker.
POPULARITY, CATEGORY = "popularity", "category"
PARTS = ("valid", "test")
# Attributes with more distinct values than this are identifiers (ml-100k's zip
# code has ~800), not groups: left out of the default group variables.
MAX_ATTRIBUTE_LEVELS = 25
DEFAULT_SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Per-user beyond-accuracy columns that may be disaggregated like accuracy metrics.
PER_USER_BEYOND = ("arp", "aplt", "novelty", "ild_categories", "ild_embeddings", "calibration_kl", "serendipity")
# Short names of the trade-off table's columns -> keys of beyond_accuracy().
_TRADEOFF_BEYOND = {
    "aplt": "aplt",
    "arp": "arp",
    "gini": "gini_index",
    "coverage": "catalog_coverage",
    "ild": "ild_categories",
    "novelty": "novelty",
}


# --------------------------------------------------------------------------- result


@dataclass
class AuditReport:
    """Everything one audit found, as tidy frames and flat dicts (the dashboard draws them).

    Attributes:
        beyond_accuracy: catalog- and list-level metrics of the audited lists
            (:func:`engine.evaluation.beyond.beyond_accuracy` keys).
        accuracy: mean over evaluated users, keys ``"ndcg@10"``, ``"recall@10"``, ...
        groups: long frame, one row per (feature, group, metric): ``feature,
            group, metric, value, ci_low, ci_high, size, too_small``.
        disparities: one row per (feature, metric): ``max_group, min_group,
            n_groups, difference, ci_low, ci_high, significant, cis_overlap,
            ratio, ratio_ci_low, ratio_ci_high`` over the groups large enough
            to judge (see :func:`disparity_table`).
        exposure: one row per (dimension, group): ``dimension`` is
            ``popularity`` (head/mid/tail), ``provider`` (when the items table
            has one) or ``category``; columns ``exposure_share, catalog_share,
            interaction_share, exposure_ratio`` (position-weighted exposure).
        exposure_gap: per dimension, the total-variation distance between
            exposure and catalog shares, ``0.5 * sum_g |exposure_g - catalog_g|``
            (0 = exposure proportional to catalog size; for two providers it is
            the over-exposed provider's excess share).
        lorenz: Lorenz curve of recommendation counts over the catalog (``x, y``).
        per_user: one row per evaluated user: ``u`` (internal), ``user_id``,
            ``n_relevant``, accuracy columns, per-user beyond-accuracy columns
            and one column per group variable.
        settings: the audit's parameters and definitions, JSON-ready.
        tradeoff: the sweep table when ``sweep`` was given (see :func:`run_audit`).
        baseline: when ``rerank`` was given, ``accuracy``, ``beyond_accuracy``
            and ``exposure_gap`` of the plain (not re-ranked) lists.
        seconds: wall time of the audit.
    """

    beyond_accuracy: dict[str, float]
    accuracy: dict[str, float]
    groups: pd.DataFrame
    disparities: pd.DataFrame
    exposure: pd.DataFrame
    exposure_gap: dict[str, float]
    lorenz: pd.DataFrame
    per_user: pd.DataFrame
    settings: dict[str, Any]
    tradeoff: pd.DataFrame | None = None
    baseline: dict[str, Any] | None = None
    seconds: float = float("nan")

    def to_dict(self, *, per_user: bool = False, lorenz: bool = False) -> dict[str, Any]:
        """JSON-ready nested dict (NaN becomes None, numpy scalars become Python numbers).

        Keys: ``beyond_accuracy``, ``accuracy``, ``groups`` (``{feature:
        {"groups": {label: {"size", "too_small", "metrics": {metric: {"value",
        "ci_low", "ci_high"}}}}, "disparity": {metric: {...}}}}``), ``exposure``
        (``{dimension: {"gap", "groups": [rows]}}``), ``tradeoff`` (list of
        rows, only when swept), ``baseline`` (only when re-ranked),
        ``settings`` and ``seconds``.

        Args:
            per_user: include the per-user table as a list of rows (default: False).
            lorenz: include the Lorenz curve as ``{"x": [...], "y": [...]}`` (default: False).
        """
        out: dict[str, Any] = {
            "beyond_accuracy": dict(self.beyond_accuracy),
            "accuracy": dict(self.accuracy),
            "groups": _groups_dict(self.groups, self.disparities),
            "exposure": {
                dim: {
                    "gap": self.exposure_gap.get(dim),
                    "groups": frame.drop(columns="dimension").to_dict("records"),
                }
                for dim, frame in self.exposure.groupby("dimension", sort=False)
            },
        }
        if self.tradeoff is not None:
            out["tradeoff"] = self.tradeoff.to_dict("records")
        if self.baseline is not None:
            out["baseline"] = self.baseline
        if lorenz:
            out["lorenz"] = {"x": self.lorenz["x"].tolist(), "y": self.lorenz["y"].tolist()}
        if per_user:
            out["per_user"] = self.per_user.to_dict("records")
        out["settings"] = dict(self.settings)
        out["seconds"] = self.seconds
        return jsonable(out)


# --------------------------------------------------------------------------- inputs


@dataclass
class _Inputs:
    """What every list evaluation of one audit shares (built once per model)."""

    users: np.ndarray  # [n] internal indices of evaluated users
    relevant: sp.csr_matrix  # [n, n_items] held-out items of ``users``
    history: sp.csr_matrix  # [n, n_items] training items of ``users``
    popularity: np.ndarray  # [n_items] training interactions per item
    n_users_total: int
    categories: np.ndarray | None  # [n_items, C] multi-hot
    category_names: list[str]
    text: np.ndarray | None  # [n_items, D] language-model embeddings
    providers: pd.Series | None  # provider label per internal item index
    candidates: np.ndarray  # [n, C] best first, -1 padding
    scores: np.ndarray  # [n, C] model scores, -inf padding
    k: int  # list length
    weighting: str  # position weighting of exposure

    @property
    def n_items(self) -> int:
        return len(self.popularity)

    @property
    def mmr_vectors(self) -> tuple[np.ndarray | None, str]:
        """MMR's item representation: categories (always interpretable), else text embeddings."""
        if self.categories is not None:
            return self.categories, "categories"
        if self.text is not None:
            return self.text, "text embeddings"
        return None, "none"

    def history_category_dist(self) -> np.ndarray | None:
        """Each user's category distribution in their history (each item spreads mass 1), for calibration."""
        if self.categories is None:
            return None
        rows = self.categories.sum(axis=1, keepdims=True)
        item_dist = self.categories / np.where(rows > 0, rows, 1.0)
        return np.asarray(self.history @ item_dist)

    def over_exposed_providers(self) -> np.ndarray:
        """``float [n_items]``: 1 for items whose provider the plain top-k over-exposes, else 0.

        Over-exposed: the provider's position-weighted exposure share in the
        plain lists exceeds its share of the catalog (exposure ratio > 1).
        """
        if self.providers is None:
            raise ValueError("provider re-ranking needs a 'provider' column in the items table; this dataset has none")
        table = exposure_by_group(self.candidates[:, : self.k], self.providers, weighting=self.weighting)
        over = set(table.loc[table["exposure_ratio"] > 1.0, "group"])
        return self.providers.isin(over).to_numpy(dtype=np.float64)


def _build_inputs(rec: Any, *, part: str, n_candidates: int, k: int, weighting: str, batch_size: int = 1024) -> _Inputs:
    split = rec.prep.split
    relevant_all = split.matrix(part)
    exclude = split.matrix("train")
    if part == "test":
        exclude = (exclude + split.matrix("valid")).tocsr()
    users = np.flatnonzero(np.diff(relevant_all.indptr) > 0)
    if users.size == 0:
        raise ValueError(f"no user has an item in the {part!r} part; nothing to audit")
    cands, scores = candidate_lists(rec.model, users, exclude, n_candidates, batch_size=batch_size)
    names = list(rec.prep.category_names)
    cats = rec.prep.categories.detach().cpu().numpy().astype(np.float64) if names else None
    text = rec.prep.text.embeddings
    items = rec.items
    providers = None
    if PROVIDER in items.columns:
        providers = pd.Series(
            items[PROVIDER].astype(object).where(items[PROVIDER].notna(), "unknown").astype(str).to_numpy(),
            index=pd.RangeIndex(len(items), name="item_idx"),
            name=PROVIDER,
        )
    return _Inputs(
        users=users,
        relevant=relevant_all[users],
        history=split.matrix("train")[users],
        popularity=np.asarray(rec.item_popularity, dtype=np.float64),
        n_users_total=int(split.n_users),
        categories=cats,
        category_names=names,
        text=None if text is None else np.asarray(text, dtype=np.float64),
        providers=providers,
        candidates=cands,
        scores=scores,
        k=k,
        weighting=weighting,
    )


@torch.no_grad()
def candidate_lists(
    model: Any,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    n: int,
    *,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's top-``n`` items and their scores, excluded items masked (the re-rankers' input).

    Same masking as :func:`engine.evaluation.ranking.topk_items`, so the
    first ``k`` columns are the plain top-``k`` lists.

    Args:
        model: anything with ``score(users) -> [B, n_items]``.
        users: internal user indices.
        exclude: ``[n_users, n_items]`` binary matrix indexed by internal user index.
        n: candidates per user, ``1 <= n <= n_items``.
        batch_size: users scored at once (default: 1024).

    Returns:
        ``(items int64 [len(users), n], scores float64 [len(users), n])``,
        best first; a slot left empty by exclusion holds item ``-1`` and score ``-inf``.
    """
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    n_items = exclude.shape[1]
    if not 1 <= n <= n_items:
        raise ValueError(f"candidates must be in [1, n_items={n_items}] (got {n!r})")
    exclude = sp.csr_matrix(exclude)
    items = np.empty((len(users), n), dtype=np.int64)
    values = np.empty((len(users), n), dtype=np.float64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = model.score(torch.from_numpy(batch)).float().clone()  # clone: may be a cached view
        block = exclude[batch].tocoo()
        rows = torch.from_numpy(block.row.astype(np.int64)).to(scores.device)
        cols = torch.from_numpy(block.col.astype(np.int64)).to(scores.device)
        scores[rows, cols] = float("-inf")
        top_values, top_index = torch.topk(scores, n, dim=1)
        top_index[torch.isneginf(top_values)] = -1
        items[start : start + len(batch)] = top_index.cpu().numpy()
        values[start : start + len(batch)] = top_values.double().cpu().numpy()
    return items, values


# --------------------------------------------------------------------------- groups


def user_groups(rec: Any, groups: Sequence[str] | str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Group variables of every user, indexed by internal user index.

    Args:
        rec: the :class:`engine.service.Recommender`.
        groups: names of users-table attributes (``"age"`` gives the age band)
            and/or ``"activity"`` / ``"mainstreamness"``; a comma-separated
            string is accepted. None: every users-table attribute with at most
            ``MAX_ATTRIBUTE_LEVELS`` distinct values, plus activity and
            mainstreamness (default: None).

    Returns:
        ``(frame, skipped)``: one ordered categorical column per group
        variable, and the attributes left out of the default (identifiers).
    """
    users_table = rec.dataset.users
    skipped: list[str] = []
    if groups is None:
        names: list[str] = []
        for column in rec.dataset.user_attributes:
            name = "age" if column in ("age", AGE_BAND) else column
            if name in names:
                continue
            if name != "age" and users_table[column].nunique() > MAX_ATTRIBUTE_LEVELS:
                skipped.append(column)
                continue
            names.append(name)
        names += [ACTIVITY, MAINSTREAMNESS]
    else:
        names = [g.strip() for g in groups.split(",")] if isinstance(groups, str) else [str(g) for g in groups]
        names = [g for g in names if g]
        if not names:
            raise ValueError(f"groups names no group variable (got {groups!r})")
    split = rec.prep.split
    train = split.matrix("train")
    columns: dict[str, pd.Series] = {}
    attributes = [g for g in names if g not in (ACTIVITY, MAINSTREAMNESS)]
    if attributes:
        if users_table is None:
            raise ValueError(
                f"dataset {rec.dataset.name!r} has no users table, so no attribute groups "
                f"(got {attributes!r}); use 'activity' or 'mainstreamness'"
            )
        table = attribute_groups(users_table, list(split.idmap.users), attributes)
        columns.update({c: table[c] for c in table.columns})
    index = pd.RangeIndex(split.n_users, name="user_idx")
    for name in names:
        if name == ACTIVITY:
            counts = np.diff(train.indptr).astype(np.int64)
            columns[ACTIVITY] = activity_groups(counts).set_axis(index)
        elif name == MAINSTREAMNESS:
            columns[MAINSTREAMNESS] = mainstreamness_groups(train, np.asarray(rec.item_popularity)).set_axis(index)
    frame = pd.DataFrame({c: s.to_numpy() for c, s in columns.items()}, index=index)
    return frame, skipped


def disparity_table(gf: GroupFrame) -> pd.DataFrame:
    """Gap and ratio between the best and the worst judged group, per (feature, metric), with CIs.

    The difference and its CI are :meth:`GroupFrame.difference_ci` (the same
    two groups in every resample). ``significant``: the difference CI
    excludes 0. ``cis_overlap``: the two groups' own CIs overlap (a stricter,
    conservative reading). ``ratio = min_group / max_group`` and its CI come
    from the same resamples.
    """
    table = gf.difference_ci()
    ratio = gf.ratio()
    ci = gf.ci()
    table["significant"] = table["ci_low"] > 0
    table["cis_overlap"] = pd.Series(pd.NA, index=table.index, dtype="boolean")
    table["ratio"] = np.nan
    table["ratio_ci_low"] = np.nan
    table["ratio_ci_high"] = np.nan
    features = {f.name: f for f in gf._features}
    for row in table.itertuples():
        if pd.isna(row.max_group) or pd.isna(row.difference):
            continue
        table.at[row.Index, "ratio"] = ratio.loc[row.feature, row.metric]
        lo_max = ci.loc[(row.feature, row.max_group), (row.metric, "lower")]
        hi_min = ci.loc[(row.feature, row.min_group), (row.metric, "upper")]
        if np.isfinite(lo_max) and np.isfinite(hi_min):
            table.at[row.Index, "cis_overlap"] = bool(lo_max <= hi_min)
        feature = features[row.feature]
        boot = gf._replicates(feature)
        if boot is None:
            continue
        labels = list(feature.labels)
        g_max, g_min = labels.index(row.max_group), labels.index(row.min_group)
        m = gf.metrics.index(row.metric)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = boot[:, g_min, m] / boot[:, g_max, m]
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size:
            lo, hi = gf._quantiles(ratios)
            table.at[row.Index, "ratio_ci_low"], table.at[row.Index, "ratio_ci_high"] = float(lo), float(hi)
    table["significant"] = table["significant"].where(table["ci_low"].notna(), False).astype(bool)
    for column in ("max_group", "min_group"):  # object dtype keeps "no group" as None, not NaN
        table[column] = pd.Series([None if pd.isna(g) else str(g) for g in table[column]], dtype=object)
    return table


# --------------------------------------------------------------------------- lists -> numbers


def _parse_metrics(metrics: Sequence[str] | None, k: int) -> tuple[list[str], tuple[int, ...]]:
    """Validated metric names (lower case) and the cut-offs the accuracy table needs."""
    if metrics is None:
        metrics = (f"ndcg@{k}", f"recall@{k}")
    if isinstance(metrics, str):
        metrics = [m for m in metrics.split(",") if m.strip()]
    out: list[str] = []
    ks = {k}
    for metric in metrics:
        name = str(metric).strip().lower()
        base, sep, cut = name.partition("@")
        if sep:
            if base not in METRICS or not cut.isdigit() or not 1 <= int(cut) <= k:
                raise ValueError(
                    f"unknown metric {metric!r}; expected NAME@N with NAME one of {list(METRICS)} "
                    f"and 1 <= N <= k={k}, or a per-user beyond-accuracy metric {list(PER_USER_BEYOND)}"
                )
            ks.add(int(cut))
            name = f"{base}@{int(cut)}"
        elif name not in PER_USER_BEYOND:
            raise ValueError(f"unknown metric {metric!r}; expected e.g. 'ndcg@{k}' or one of {list(PER_USER_BEYOND)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"metrics names no metric (got {metrics!r})")
    return out, tuple(sorted(ks))


def _accuracy(inputs: _Inputs, topk: np.ndarray, ks: tuple[int, ...]) -> pd.DataFrame:
    return metrics_from_topk(topk, inputs.relevant, ks)


def _beyond(inputs: _Inputs, topk: np.ndarray, *, full: bool = True) -> dict[str, float]:
    return beyond_accuracy(
        topk,
        inputs.popularity,
        n_users=inputs.n_users_total,
        item_categories=inputs.categories,
        item_embeddings=inputs.text if full else None,
        history=inputs.history if full else None,
        relevant=inputs.relevant if full else None,
    )


def category_exposure(
    topk: np.ndarray,
    item_categories: np.ndarray,
    names: Sequence[str],
    item_popularity: np.ndarray,
    *,
    weighting: str = "log",
) -> pd.DataFrame:
    """Exposure share per category; each item spreads its exposure evenly over its categories.

    Items may carry several categories, so :func:`~engine.fairness.exposure.exposure_by_group`
    (one label per item) does not apply; the same split also gives the
    catalog share (items) and the interaction share (training interactions).
    Items without a category are left out of all three shares.

    Args:
        topk: ``[n_users, K]`` item indices (``-1`` = padding).
        item_categories: ``[n_items, C]`` multi-hot.
        names: the ``C`` category names.
        item_popularity: ``[n_items]`` training interaction counts.
        weighting: ``"log"`` or ``"uniform"`` (default: ``"log"``).

    Returns:
        Columns ``group, exposure_share, catalog_share, interaction_share,
        exposure_ratio``, rows by catalog share, largest first.
    """
    cats = np.asarray(item_categories, dtype=np.float64)
    rows = cats.sum(axis=1, keepdims=True)
    dist = cats / np.where(rows > 0, rows, 1.0)
    exposure = item_exposure(topk, len(cats), weighting=weighting) @ dist
    catalog = dist.sum(axis=0)
    inter = np.asarray(item_popularity, dtype=np.float64) @ dist

    def share(x: np.ndarray) -> np.ndarray:
        return x / x.sum() if x.sum() > 0 else np.full(len(x), np.nan)

    frame = pd.DataFrame(
        {
            "group": list(names),
            "exposure_share": share(exposure),
            "catalog_share": share(catalog),
            "interaction_share": share(inter),
        }
    )
    frame["exposure_ratio"] = frame["exposure_share"] / frame["catalog_share"]
    return frame.sort_values("catalog_share", ascending=False, kind="stable").reset_index(drop=True)


def _exposure(inputs: _Inputs, topk: np.ndarray, weighting: str) -> tuple[pd.DataFrame, dict[str, float]]:
    frames = []
    pop_groups = popularity_groups(inputs.popularity)
    frames.append(
        exposure_by_group(
            topk,
            pop_groups,
            interactions_share=interaction_share(pop_groups, inputs.popularity),
            weighting=weighting,
        ).assign(dimension=POPULARITY)
    )
    if inputs.providers is not None:
        frames.append(
            exposure_by_group(
                topk,
                inputs.providers,
                interactions_share=interaction_share(inputs.providers, inputs.popularity),
                weighting=weighting,
            ).assign(dimension=PROVIDER)
        )
    if inputs.categories is not None:
        frames.append(
            category_exposure(
                topk, inputs.categories, inputs.category_names, inputs.popularity, weighting=weighting
            ).assign(dimension=CATEGORY)
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["group"] = frame["group"].astype(str)
    frame = frame[["dimension", "group", "exposure_share", "catalog_share", "interaction_share", "exposure_ratio"]]
    gaps = {
        str(dim): float(0.5 * (f["exposure_share"] - f["catalog_share"]).abs().sum())
        for dim, f in frame.groupby("dimension", sort=False)
    }
    return frame, gaps


def _rerank(inputs: _Inputs, spec: str, k: int) -> np.ndarray:
    name, strength = parse_audit_rerank(spec)
    if name == PROVIDER:
        return provider_rerank(inputs.candidates, inputs.scores, inputs.over_exposed_providers(), k, strength)
    vectors, _ = inputs.mmr_vectors
    return apply_rerank(
        spec,
        inputs.candidates,
        inputs.scores,
        k=k,
        item_vectors=vectors,
        item_popularity=inputs.popularity,
        item_categories=inputs.categories,
        history_category_dist=inputs.history_category_dist() if name == "calibrated" else None,
    )


def parse_sweep_spec(spec: str) -> tuple[str, tuple[float, ...]]:
    """Parse a sweep spec: ``"pop"`` (strengths 0, 0.1, ..., 1) or ``"mmr:0,0.2,0.5"``.

    Args:
        spec: re-ranker name (``mmr``, ``pop``, ``calibrated``, ``provider``), optionally
            followed by ``:`` and comma-separated strengths.

    Returns:
        ``(name, strengths)``, strengths sorted ascending and each valid for the re-ranker.
    """
    if not isinstance(spec, str):
        raise ValueError(f"sweep spec must be a string like 'pop' or 'mmr:0,0.5,1' (got {spec!r})")
    name, sep, values = spec.strip().lower().partition(":")
    name = name.strip()
    if name not in AUDIT_RERANKERS:
        raise ValueError(f"invalid sweep spec {spec!r}: re-ranker must be one of {list(AUDIT_RERANKERS)}")
    if not sep:
        return name, DEFAULT_SWEEP
    strengths = []
    for value in values.split(","):
        if not value.strip():
            continue
        _, strength = parse_audit_rerank(f"{name}:{value}")  # validates the range per re-ranker
        strengths.append(strength)
    if not strengths:
        raise ValueError(f"invalid sweep spec {spec!r}: no strengths after ':'")
    return name, tuple(sorted(set(strengths)))


def _tradeoff(
    inputs: _Inputs, name: str, strengths: Sequence[float], k: int, metrics: list[str], ks: tuple[int, ...]
) -> pd.DataFrame:
    """One row per strength: accuracy, popularity bias, concentration, diversity, provider gap, marginal cost."""
    accuracy_metrics = [m for m in metrics if "@" in m]
    rows = []
    for strength in strengths:
        topk = _rerank(inputs, f"{name}:{strength}", k)
        acc = _accuracy(inputs, topk, ks)
        beyond = _beyond(inputs, topk, full=False)
        row: dict[str, Any] = {"reranker": name, "strength": float(strength)}
        row.update({m: float(acc[m].mean()) for m in accuracy_metrics})
        row.update({short: beyond.get(key, np.nan) for short, key in _TRADEOFF_BEYOND.items()})
        if inputs.providers is not None:
            _, gaps = _exposure(inputs, topk, inputs.weighting)
            row["provider_gap"] = gaps[PROVIDER]
        rows.append(row)
    table = pd.DataFrame(rows)
    if accuracy_metrics:
        first = accuracy_metrics[0]
        d_metric = table[first].diff()
        d_tail = table["aplt"].diff()
        # Cost of one unit (1.0 = 100 percentage points) of long-tail share, between consecutive
        # strengths (marginal) and from strength 0 (average); undefined where the share did not move.
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"{first}_cost_per_aplt"] = np.where(d_tail.abs() > 1e-12, -d_metric / d_tail, np.nan)
            base_tail = table["aplt"] - table["aplt"].iloc[0]
            base_cost = -(table[first] - table[first].iloc[0]) / base_tail
            table[f"{first}_cost_per_aplt_from_base"] = np.where(base_tail.abs() > 1e-12, base_cost, np.nan)
    return table


# --------------------------------------------------------------------------- the audit


def run_audit(
    rec: Any,
    *,
    k: int = 10,
    groups: Sequence[str] | str | None = None,
    rerank: str | None = None,
    sweep: str | None = None,
    n_boot: int = 1000,
    candidates: int = 100,
    metrics: Sequence[str] | None = None,
    part: str = "test",
    seed: int = 0,
    min_group_size: int = 30,
    ci: float = 0.95,
    exposure_weighting: str = "log",
) -> AuditReport:
    """Audit a trained recommender: accuracy, beyond-accuracy, user groups, item exposure, trade-offs.

    Args:
        rec: an :class:`engine.service.Recommender`.
        k: list length (default: 10).
        groups: user group variables, see :func:`user_groups` (default: None,
            every attribute of the users table that is not an identifier, plus
            activity and mainstreamness).
        rerank: re-ranking spec applied before evaluating, e.g. ``"mmr:0.3"``,
            ``"pop:0.5"``, ``"calibrated:0.4"`` (:mod:`engine.fairness.rerank`)
            or ``"provider:0.3"`` (:func:`~engine.fairness.rerank.provider_rerank`, needs a
            ``provider`` item column) (default: None, plain top-k).
        sweep: re-ranker to sweep for the trade-off table, ``"pop"``,
            ``"mmr"``, ``"calibrated"`` or ``"provider"`` (strengths 0, 0.1,
            ..., 1) or with explicit strengths ``"pop:0,0.5,1,2"``
            (default: None, no table).
        n_boot: bootstrap resamples of the group CIs; 0 turns CIs off (default: 1000).
        candidates: items per user the re-rankers choose from; the model's
            best, train (and valid) items excluded (default: 100).
        metrics: per-user metrics broken down by group, ``"ndcg@10"``-style
            names with cut-off ``<= k`` or per-user beyond-accuracy names
            (``aplt``, ``arp``, ``novelty``, ...) (default: None, i.e.
            ``("ndcg@k", "recall@k")``).
        part: held-out part to evaluate, ``"test"`` or ``"valid"`` (default: ``"test"``).
        seed: bootstrap seed (default: 0).
        min_group_size: groups smaller than this are flagged ``too_small`` and
            left out of the gaps (default: 30).
        ci: confidence level (default: 0.95).
        exposure_weighting: ``"log"`` (DCG position discount) or ``"uniform"``
            for item-group exposure (default: ``"log"``).

    Returns:
        An :class:`AuditReport`.

    Trade-off table columns: ``reranker, strength``, the accuracy metrics of
    ``metrics``, ``aplt, arp, gini, coverage, ild`` (category ILD),
    ``novelty``, ``provider_gap`` (when items have a provider), and
    ``<metric>_cost_per_aplt``: the drop of the first metric per unit of
    long-tail share gained since the previous strength (marginal), plus
    ``<metric>_cost_per_aplt_from_base`` measured from strength 0.
    """
    t0 = time.perf_counter()
    if part not in PARTS:
        raise ValueError(f"part must be one of {list(PARTS)} (got {part!r})")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (got {k!r})")
    n_items = int(rec.prep.split.n_items)
    if k > n_items:
        raise ValueError(f"k must be at most the number of items {n_items} (got {k!r})")
    if not isinstance(candidates, (int, np.integer)) or candidates < k:
        raise ValueError(f"candidates must be an integer >= k={k} (got {candidates!r})")
    metric_names, ks = _parse_metrics(metrics, k)
    if rerank is not None:
        parse_audit_rerank(rerank)  # fail before any work
    sweep_parsed = parse_sweep_spec(sweep) if sweep is not None else None
    feature_frame, skipped = user_groups(rec, groups)

    inputs = _build_inputs(
        rec, part=part, n_candidates=min(int(candidates), n_items), k=int(k), weighting=exposure_weighting
    )
    _, vectors_name = inputs.mmr_vectors
    spec = rerank if rerank is not None else "none"
    plain = inputs.candidates[:, :k]
    topk = plain if spec == "none" else _rerank(inputs, spec, k)

    acc_frame = _accuracy(inputs, topk, ks)
    accuracy = {c: float(acc_frame[c].mean()) for c in acc_frame.columns if "@" in c}
    beyond = _beyond(inputs, topk)
    beyond_users = per_user_beyond(
        topk,
        inputs.popularity,
        n_users=inputs.n_users_total,
        item_categories=inputs.categories,
        item_embeddings=inputs.text,
        history=inputs.history,
        relevant=inputs.relevant,
    )
    exposure, gaps = _exposure(inputs, topk, exposure_weighting)
    lorenz = lorenz_curve(exposure_counts(topk, n_items))

    per_user = pd.concat(
        [
            pd.DataFrame({"u": inputs.users, "user_id": [str(x) for x in np.asarray(rec.idmap.users)[inputs.users]]}),
            acc_frame,
            beyond_users,
        ],
        axis=1,
    )
    features = feature_frame.loc[inputs.users]
    for column in features.columns:
        per_user[column] = features[column].astype(str).to_numpy()

    missing = [m for m in metric_names if m not in per_user.columns]
    if missing:
        raise ValueError(f"metric(s) {missing!r} are not available for this model and dataset")
    values = per_user[metric_names].set_axis(pd.Index(inputs.users, name="user_idx"))
    bad = [m for m in metric_names if not np.isfinite(values[m].to_numpy(dtype=np.float64)).all()]
    if bad:
        raise ValueError(f"metric(s) {bad!r} are undefined for some users (e.g. lists shorter than 2); pick others")
    gf = GroupFrame(
        values,
        sensitive_features=features,
        n_boot=int(n_boot),
        ci=ci,
        min_group_size=min_group_size,
        seed=seed,
    )
    group_table = gf.to_frame()
    disparities = disparity_table(gf)

    baseline = None
    if spec != "none":
        base_acc = _accuracy(inputs, plain, ks)
        baseline = {
            "accuracy": {c: float(base_acc[c].mean()) for c in base_acc.columns if "@" in c},
            "beyond_accuracy": _beyond(inputs, plain),
            "exposure_gap": _exposure(inputs, plain, exposure_weighting)[1],
        }
    tradeoff = None
    if sweep_parsed is not None:
        tradeoff = _tradeoff(inputs, sweep_parsed[0], sweep_parsed[1], k, metric_names, ks)

    settings = {
        "model": getattr(rec, "model_name", None),
        "dataset": rec.dataset.name,
        "part": part,
        "k": int(k),
        "candidates": int(inputs.candidates.shape[1]),
        "rerank": rerank,
        "sweep": None if sweep_parsed is None else {"reranker": sweep_parsed[0], "strengths": list(sweep_parsed[1])},
        "metrics": metric_names,
        "groups": list(feature_frame.columns),
        "skipped_attributes": skipped,
        "n_users_evaluated": len(inputs.users),
        "n_users": inputs.n_users_total,
        "n_items": n_items,
        "n_boot": int(n_boot),
        "ci": float(ci),
        "min_group_size": int(min_group_size),
        "seed": int(seed),
        "exposure_weighting": exposure_weighting,
        "mmr_vectors": vectors_name,
        "definitions": {
            "aplt_tail": "items outside the short head that holds 80% of training interactions (Elliot APLT)",
            "popularity_groups": "head / tail: the most / least popular items holding at most 20% of training "
            "interactions each; mid: the rest (Abdollahpouri et al. 2020)",
            "exposure_gap": "0.5 * sum over groups of |exposure share - catalog share| (total variation)",
            "gini": "Gini index of recommendation counts over the whole catalog (RecBole GiniIndex)",
        },
    }
    seconds = time.perf_counter() - t0
    log.info("audit of %s on %s: %d users in %.2fs", settings["model"], settings["dataset"], len(inputs.users), seconds)
    return AuditReport(
        beyond_accuracy=beyond,
        accuracy=accuracy,
        groups=group_table,
        disparities=disparities,
        exposure=exposure,
        exposure_gap=gaps,
        lorenz=lorenz,
        per_user=per_user,
        settings=settings,
        tradeoff=tradeoff,
        baseline=baseline,
        seconds=seconds,
    )


def compare_models(recs: Mapping[str, Any], **audit_kw: Any) -> pd.DataFrame:
    """The same audit for several models, side by side.

    Args:
        recs: display name -> :class:`engine.service.Recommender`, all on the same data.
        **audit_kw: passed to :func:`run_audit` for every model.

    Returns:
        One row per model (index ``model``): accuracy metrics, beyond-accuracy
        metrics, exposure gaps (``<dimension>_gap``), and ``max_gap_<metric>``
        with ``max_gap_feature``: the largest gap between judged groups of the
        first group metric, over all group variables.
    """
    if not recs:
        raise ValueError("compare_models needs at least one model (got none)")
    rows = []
    for name, rec in recs.items():
        report = run_audit(rec, **audit_kw)
        row: dict[str, Any] = {"model": str(name)}
        row.update(report.accuracy)
        row.update(report.beyond_accuracy)
        row.update({f"{dim}_gap": gap for dim, gap in report.exposure_gap.items()})
        first = report.settings["metrics"][0]
        gaps = report.disparities[report.disparities["metric"] == first].dropna(subset=["difference"])
        if len(gaps):
            top = gaps.loc[gaps["difference"].idxmax()]
            row[f"max_gap_{first}"] = float(top["difference"])
            row["max_gap_feature"] = str(top["feature"])
        else:
            row[f"max_gap_{first}"] = np.nan
            row["max_gap_feature"] = None
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# --------------------------------------------------------------------------- JSON helpers


def _groups_dict(groups: pd.DataFrame, disparities: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for feature, frame in groups.groupby("feature", sort=False):
        labels: dict[str, Any] = {}
        for row in frame.itertuples():
            entry = labels.setdefault(
                str(row.group), {"size": int(row.size), "too_small": bool(row.too_small), "metrics": {}}
            )
            entry["metrics"][row.metric] = {"value": row.value, "ci_low": row.ci_low, "ci_high": row.ci_high}
        disparity = {
            str(r["metric"]): {key: r[key] for key in r.index if key not in ("feature", "metric")}
            for _, r in disparities[disparities["feature"] == feature].iterrows()
        }
        out[str(feature)] = {"groups": labels, "disparity": disparity}
    return out


def jsonable(obj: Any) -> Any:
    """Recursively convert to JSON types; non-finite floats and pandas NA become None."""
    if isinstance(obj, Mapping):
        return {str(key): jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(value) for value in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, str):
        return obj
    return str(obj)
