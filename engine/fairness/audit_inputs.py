"""What an audit reads from a trained recommender: candidate lists, item features, user groups.

Built once per audit (:func:`build_inputs`, :func:`user_groups`); every list
the audit evaluates (plain, re-ranked, each sweep strength) shares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from engine.evaluation.lists import hit_mask
from engine.evaluation.topk import held_out, top_k
from engine.fairness.exposure import exposure_by_group
from engine.fairness.groups import AGE_BAND, activity_groups, attribute_groups, mainstreamness_groups
from engine.fairness.rerank import PROVIDER
from engine.models.base import ScoreModel
from engine.recommender import Recommender
from engine.recs.model import RANK, ListModel

ACTIVITY, MAINSTREAMNESS = "activity", "mainstreamness"
# Attributes with more distinct values than this are identifiers (ml-100k's zip
# code has ~800), not groups: left out of the default group variables.
MAX_ATTRIBUTE_LEVELS = 25


@dataclass
class AuditInputs:
    """What every list evaluation of one audit shares (built once per model)."""

    users: np.ndarray  # [n] internal indices of evaluated users
    user_ids: list[str]  # [n] external ids of ``users``
    relevant: sp.csr_matrix  # [n, n_items] held-out items of ``users``
    history: sp.csr_matrix  # [n, n_items] training items of ``users``
    popularity: np.ndarray  # [n_items] training interactions per item
    n_users_total: int
    categories: np.ndarray | None  # [n_items, C] multi-hot
    category_names: list[str]
    history_category_dist: np.ndarray | None  # [n, C] category mass of each user's history (calibration)
    text: np.ndarray | None  # [n_items, D] language-model embeddings
    providers: pd.Series | None  # provider label per internal item index
    candidates: np.ndarray  # [n, C] best first, -1 padding
    scores: np.ndarray  # [n, C] model scores, -inf padding
    k: int  # list length
    weighting: str  # position weighting of exposure
    lists: dict[str, object] | None = None  # imported lists: coverage and score source (None for a model)

    @property
    def n_items(self) -> int:
        return len(self.popularity)

    @property
    def plain(self) -> np.ndarray:
        """The model's own top-``k`` lists (the first ``k`` candidates)."""
        return self.candidates[:, : self.k]

    @property
    def mmr_vectors(self) -> tuple[np.ndarray | None, str]:
        """MMR's item representation: categories (always interpretable), else text embeddings."""
        if self.categories is not None:
            return self.categories, "categories"
        if self.text is not None:
            return self.text, "text embeddings"
        return None, "none"

    def over_exposed_providers(self) -> np.ndarray:
        """``float [n_items]``: 1 for items whose provider the plain top-k over-exposes, else 0.

        Over-exposed: the provider's position-weighted exposure share in the
        plain lists exceeds its share of the catalog (exposure ratio > 1).
        """
        if self.providers is None:
            raise ValueError("provider re-ranking needs a 'provider' column in the items table; this dataset has none")
        table = exposure_by_group(self.plain, self.providers, weighting=self.weighting)
        over = set(table.loc[table["exposure_ratio"] > 1.0, "group"])
        return self.providers.isin(over).to_numpy(dtype=np.float64)


def candidate_lists(
    model: ScoreModel,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    n: int,
    *,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's top-``n`` items and their scores, excluded items masked (the re-rankers' input).

    The same :func:`engine.evaluation.topk.top_k` as the plain evaluation, so
    the first ``k`` columns are the plain top-``k`` lists.

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
    n_items = exclude.shape[1]
    if not 1 <= n <= n_items:
        raise ValueError(f"candidates must be in [1, n_items={n_items}] (got {n!r})")
    found = top_k(model, users, exclude, n, batch_size=batch_size)
    return found.items, found.scores


def _providers(items: pd.DataFrame) -> pd.Series | None:
    """Provider label per internal item index (missing ones become ``"unknown"``); None without the column."""
    if PROVIDER not in items.columns:
        return None
    labels = items[PROVIDER].astype(object).where(items[PROVIDER].notna(), "unknown").astype(str)
    return pd.Series(labels.to_numpy(), index=pd.RangeIndex(len(items), name="item_idx"), name=PROVIDER)


def build_inputs(
    rec: Recommender,
    *,
    part: str,
    n_candidates: int,
    k: int,
    weighting: str,
    batch_size: int = 1024,
    truth: sp.csr_matrix | None = None,
) -> AuditInputs:
    """Candidate lists of every user with a held-out item in ``part``, and the item data metrics need.

    For imported lists (a :class:`~engine.recs.model.ListModel`) the candidates are the lists
    themselves, for the users they cover.

    Args:
        rec: the trained recommender.
        part: ``"test"`` or ``"valid"``.
        n_candidates: candidates per user (the re-rankers choose from them).
        k: list length.
        weighting: position weighting of exposure (``"log"`` or ``"uniform"``).
        batch_size: users scored at once (default: 1024).
        truth: ``[n_users, n_items]`` held-out interactions to score against instead of
            ``part``'s (default: None).
    """
    split = rec.prep.split
    users, relevant_all, exclude = held_out(split, part)
    where = f"the {part!r} part"
    if truth is not None:  # another held-out set; exclusions stay the part's (what the model has seen)
        relevant_all, where = truth, "the truth file"
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    if users.size == 0:
        raise ValueError(f"no user has an item in {where}; nothing to audit")
    lists = None
    if isinstance(rec.model, ListModel):
        users, cands, scores, lists = _imported_candidates(rec.model, users, exclude, n_candidates, where)
    else:
        cands, scores = candidate_lists(rec.model, users, exclude, n_candidates, batch_size=batch_size)
    text = rec.prep.text.embeddings
    return AuditInputs(
        users=users,
        user_ids=[str(x) for x in np.asarray(rec.idmap.users)[users]],
        relevant=relevant_all[users],
        history=split.matrix("train")[users],
        popularity=np.asarray(rec.item_popularity, dtype=np.float64),
        n_users_total=int(split.n_users),
        categories=rec.category_matrix(),
        category_names=list(rec.prep.category_names),
        history_category_dist=rec.history_category_distribution(users),
        text=None if text is None else np.asarray(text, dtype=np.float64),
        providers=_providers(rec.items),
        candidates=cands,
        scores=scores,
        k=k,
        weighting=weighting,
        lists=lists,
    )


def _imported_candidates(
    model: ListModel, users: np.ndarray, exclude: sp.csr_matrix, n: int, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, object]]:
    """Imported lists as the candidates of the users they cover, and what to say about coverage.

    The lists are taken as given: not re-ranked by score (equal scores must not reorder them)
    and not filtered (items the user has already seen stay in, counted, and simply miss).
    """
    held = len(users)
    covered, cands, scores = model.lists_for(users, min(n, model.length))
    if covered.size == 0:
        raise ValueError(
            f"the imported lists cover none of the {held} users with an item in {where} "
            f"({len(model.users)} users have a list); nothing to audit"
        )
    seen = int(hit_mask(cands, exclude[covered]).sum())
    info: dict[str, object] = {
        "imported": True,
        "users_listed": len(model.users),
        "users_held_out": held,
        "users_covered": len(covered),
        "length": model.length,
        "scores": "rank-derived" if model.score_source == RANK else "file",
        "seen_items_listed": seen,
    }
    return covered, cands, scores, info


def _group_names(rec: Recommender, groups: Sequence[str] | str | None) -> tuple[list[str], list[str]]:
    """The group variables asked for (or the defaults) and the identifier-like attributes skipped."""
    if groups is not None:
        names = [g.strip() for g in groups.split(",")] if isinstance(groups, str) else [str(g) for g in groups]
        names = [g for g in names if g]
        if not names:
            raise ValueError(f"groups names no group variable (got {groups!r})")
        return names, []
    users_table = rec.dataset.users
    names, skipped = [], []
    for column in rec.dataset.user_attributes:
        name = "age" if column in ("age", AGE_BAND) else column
        if name in names:
            continue
        if name != "age" and users_table[column].nunique() > MAX_ATTRIBUTE_LEVELS:
            skipped.append(column)
            continue
        names.append(name)
    return [*names, ACTIVITY, MAINSTREAMNESS], skipped


def user_groups(rec: Recommender, groups: Sequence[str] | str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Group variables of every user, indexed by internal user index.

    Args:
        rec: the trained recommender.
        groups: names of users-table attributes (``"age"`` gives the age band)
            and/or ``"activity"`` / ``"mainstreamness"``; a comma-separated
            string is accepted. None: every users-table attribute with at most
            ``MAX_ATTRIBUTE_LEVELS`` distinct values, plus activity and
            mainstreamness (default: None).

    Returns:
        ``(frame, skipped)``: one ordered categorical column per group
        variable, and the attributes left out of the default (identifiers).
    """
    names, skipped = _group_names(rec, groups)
    split = rec.prep.split
    train = split.matrix("train")
    columns: dict[str, pd.Series] = {}
    attributes = [g for g in names if g not in (ACTIVITY, MAINSTREAMNESS)]
    if attributes:
        if rec.dataset.users is None:
            raise ValueError(
                f"dataset {rec.dataset.name!r} has no users table, so no attribute groups "
                f"(got {attributes!r}); use 'activity' or 'mainstreamness'"
            )
        table = attribute_groups(rec.dataset.users, list(split.idmap.users), attributes)
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
