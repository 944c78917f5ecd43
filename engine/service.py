"""The Recommender facade: the one object the CLI and the dashboard talk to.

It owns a prepared dataset (split, graph, features) and a fitted model, and answers
in tidy pandas DataFrames and dataclasses; it never draws. Heavy work (explanations,
audits) is computed lazily and memoised per (user, item) / per setting, in the spirit
of explainerdashboard's explainer object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.artifacts.store import ArtifactRef
from engine.data.schema import CATEGORIES, ITEM, RATING, TIMESTAMP, TITLE, USER
from engine.data.split import I, U
from engine.models.base import EmbeddingModel, FittedModel
from engine.pipeline import Prepared

log = logging.getLogger(__name__)

KNOWN, NO_HISTORY, UNKNOWN = "known", "no_history", "unknown"


class UnknownUserError(KeyError):
    """A user id that is in neither the interactions nor the users table."""

    def __init__(self, user_id: str, example: str | None = None) -> None:
        hint = f" (ids look like {example!r})" if example else ""
        super().__init__(f"unknown user id {user_id!r}{hint}")
        self.user_id = user_id

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownItemError(KeyError):
    """An item id that is not in the catalog."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"unknown item id {item_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Recommendations:
    """A user's top-K list.

    Attributes:
        user_id: external user id.
        items: columns ``rank``, ``item_id``, ``title``, ``categories``, ``score``.
        fallback: None for personalised lists; otherwise a label such as
            ``"most popular (user has no training history)"``.
    """

    user_id: str
    items: pd.DataFrame
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        rows = self.items.assign(categories=self.items[CATEGORIES].map(list)).to_dict("records")
        return {"user_id": self.user_id, "fallback": self.fallback, "items": rows}


@dataclass
class Recommender:
    """A trained model bound to its data.

    Attributes:
        prep: the prepared data (dataset, split, graph, features).
        model: the fitted model.
        meta: the model card (config, language model, training, metrics).
        ref: where the artifact is stored (None when not stored).
        curve: the training curve, one dict per epoch.
    """

    prep: Prepared
    model: EmbeddingModel | FittedModel
    meta: dict[str, Any]
    ref: ArtifactRef | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)

    # -- identity ---------------------------------------------------------------------------
    @property
    def dataset(self) -> Any:
        return self.prep.dataset

    @property
    def idmap(self) -> Any:
        return self.prep.split.idmap

    @property
    def model_name(self) -> str:
        return str(self.meta.get("model", "?"))

    @cached_property
    def items(self) -> pd.DataFrame:
        """The catalog in internal item order, with training popularity."""
        frame = self.prep.item_frame
        frame["popularity"] = self.item_popularity
        return frame

    @cached_property
    def item_popularity(self) -> np.ndarray:
        return np.bincount(self.prep.split.train[I].to_numpy(), minlength=self.prep.split.n_items)

    @cached_property
    def _train_csr(self) -> Any:
        m = self.prep.split.matrix("train")
        m.sort_indices()
        return m

    # -- users ------------------------------------------------------------------------------
    def user_status(self, user_id: str) -> str:
        """``known`` (has training history), ``no_history`` (listed, nothing to learn from) or ``unknown``."""
        uid = str(user_id)
        if self.idmap.has_user(uid):
            return KNOWN
        users = self.dataset.users
        in_table = users is not None and uid in set(users[USER])
        in_log = uid in self._all_users
        return NO_HISTORY if (in_table or in_log) else UNKNOWN

    @cached_property
    def _all_users(self) -> set[str]:
        return set(self.dataset.interactions[USER].unique())

    def _require_user(self, user_id: str) -> str:
        status = self.user_status(user_id)
        if status == UNKNOWN:
            raise UnknownUserError(str(user_id), self.idmap.users[0] if self.idmap.n_users else None)
        return status

    def history(self, user_id: str) -> pd.DataFrame:
        """Every logged interaction of the user, newest first, with titles and split part.

        Columns: ``item_id``, ``title``, ``categories``, ``rating``, ``timestamp``,
        ``date``, ``part`` (``train`` / ``valid`` / ``test`` / ``not positive``).
        """
        self._require_user(user_id)
        inter = self.dataset.interactions
        rows = inter[inter[USER] == str(user_id)]
        part = pd.Series("not positive", index=rows.index)
        if self.idmap.has_user(user_id):
            u = self.idmap.user_index(user_id)
            for name in ("test", "valid", "train"):
                frame = getattr(self.prep.split, name)
                ids = {self.idmap.items[i] for i in frame.loc[frame[U] == u, I]}
                part[rows[ITEM].isin(ids)] = name
        titles = self.items.set_index(ITEM)
        out = pd.DataFrame(
            {
                ITEM: rows[ITEM].to_numpy(),
                TITLE: titles.loc[rows[ITEM], TITLE].to_numpy(),
                CATEGORIES: titles.loc[rows[ITEM], CATEGORIES].to_numpy(),
                RATING: rows[RATING].to_numpy(),
                TIMESTAMP: rows[TIMESTAMP].to_numpy(),
                "part": part.to_numpy(),
            }
        )
        out["date"] = pd.to_datetime(out[TIMESTAMP].where(out[TIMESTAMP] >= 0), unit="s").dt.date
        return out.sort_values(TIMESTAMP, ascending=False, kind="stable").reset_index(drop=True)

    def train_items(self, u: int) -> np.ndarray:
        """Internal item indices of a user's training interactions."""
        m = self._train_csr
        return m.indices[m.indptr[u] : m.indptr[u + 1]]

    # -- recommendations --------------------------------------------------------------------
    def scores(self, u: int) -> np.ndarray:
        """Model scores for every item for internal user ``u``."""
        with torch.no_grad():
            return self.model.score(torch.tensor([u])).reshape(-1).float().cpu().numpy()

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        categories: list[str] | None = None,
        hide_popular: float | None = None,
    ) -> Recommendations:
        """Top-K items for a user.

        Args:
            user_id: external id.
            k: list length (default: 10).
            exclude_seen: drop the user's training items (default: True).
            categories: keep only items having one of these categories (default: all).
            hide_popular: drop the most popular share of the catalog, e.g. 0.05 (default: None).

        Returns:
            :class:`Recommendations`; a user without training history gets the labelled
            most-popular fallback instead of an error.

        Raises:
            UnknownUserError: the id is in no table of the dataset.
            ValueError: ``k`` is not positive.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1 (got {k!r})")
        status = self._require_user(user_id)
        fallback = None
        if status == KNOWN:
            u = self.idmap.user_index(user_id)
            scores = self.scores(u).astype(np.float64)
            if exclude_seen:
                scores[self.train_items(u)] = -np.inf
        else:
            fallback = "most popular (this user has no training history)"
            scores = self.item_popularity.astype(np.float64)
            seen = self.dataset.interactions.loc[self.dataset.interactions[USER] == str(user_id), ITEM]
            if exclude_seen and len(seen):
                scores[self.idmap.item_indices([s for s in seen if self.idmap.has_item(s)])] = -np.inf
        scores = self._apply_filters(scores, categories, hide_popular)
        return Recommendations(str(user_id), self._top_frame(scores, k), fallback)

    def _apply_filters(
        self, scores: np.ndarray, categories: list[str] | None, hide_popular: float | None
    ) -> np.ndarray:
        if categories:
            wanted = set(categories)
            ok = self.items[CATEGORIES].map(lambda cs: bool(wanted.intersection(cs))).to_numpy()
            scores = np.where(ok, scores, -np.inf)
        if hide_popular:
            cut = np.quantile(self.item_popularity, 1 - hide_popular)
            scores = np.where(self.item_popularity > cut, -np.inf, scores)
        return scores

    def _top_frame(self, scores: np.ndarray, k: int) -> pd.DataFrame:
        finite = np.isfinite(scores)
        k = min(k, int(finite.sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.array([], dtype=np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        frame = self.items.iloc[top][[ITEM, TITLE, CATEGORIES]].reset_index(drop=True)
        frame.insert(0, "rank", np.arange(1, len(top) + 1))
        frame["score"] = scores[top].astype(float)
        frame["popularity"] = self.item_popularity[top]
        return frame

    # -- cards ------------------------------------------------------------------------------
    def dataset_summary(self) -> dict[str, Any]:
        return self.dataset.summary()

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.meta.get("metrics", {}))

    # -- explanations, audits, what-if (implemented in engine.explain / engine.fairness) ------
    def explain(self, user_id: str, item_id: str, **kwargs: Any) -> Any:
        """Why ``item_id`` for ``user_id``: see :func:`engine.explain.explain_pair` (memoised)."""
        from engine.explain import explain_pair

        key = (str(user_id), str(item_id), tuple(sorted(kwargs.items())))
        cache = self.__dict__.setdefault("_explain_cache", {})
        if key not in cache:
            cache[key] = explain_pair(self, str(user_id), str(item_id), **kwargs)
        return cache[key]

    def what_if(self, user_id: str, *, add: list[str] = (), remove: list[str] = (), k: int = 10) -> Any:
        """Re-score the user's top-K after editing their history: see :func:`engine.explain.what_if`."""
        from engine.explain import what_if

        return what_if(self, str(user_id), add=list(add), remove=list(remove), k=k)

    def audit(self, **kwargs: Any) -> Any:
        """Beyond-accuracy, group and exposure audit: see :func:`engine.fairness.audit.run_audit`."""
        from engine.fairness.audit import run_audit

        return run_audit(self, **kwargs)
