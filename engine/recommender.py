"""A trained model bound to the data it was trained on: top-K lists, histories, versions.

:class:`Recommender` is what the engine passes around (evaluation, explanations, audits and
updates take one); it holds tensors. The CLI and the dashboard never see it: they talk to
:mod:`engine.service`, which answers in plain Python, numpy and pandas.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from engine.artifacts.store import ArtifactRef, ArtifactStore
from engine.assembly import CHANGES_FILE, Prepared, artifact_ref_str
from engine.data.graph import category_distributions
from engine.data.idmap import IdMap
from engine.data.schema import CATEGORIES, COUNT, ITEM, RATING, TIMESTAMP, TITLE, USER, Dataset
from engine.data.split import I, U
from engine.errors import KNOWN, NO_HISTORY, UNKNOWN, UnknownUserError
from engine.models.base import EmbeddingModel, FittedModel

log = logging.getLogger(__name__)

# Columns of Recommender.what_changed(); engine.update.changes.what_changed() computes the first eight.
WHAT_CHANGED_COLUMNS = (
    USER,
    "changed",
    "overlap",
    "new_interactions",
    "entered",
    "left",
    "top_before",
    "top_after",
    "entered_titles",
    "left_titles",
)
# Figures of an update's summary (meta["update"]) that Recommender.lineage() passes on.
UPDATE_FIGURES = (
    "rows",
    "positives",
    "new_users",
    "new_items",
    "train_pairs_added",
    "users_changed",
    "epochs",
    "seconds",
    "valid_ndcg@10_before",
    "valid_ndcg@10_after",
)


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
        from_cache: loaded from a stored version rather than trained (or updated) by this process.
    """

    prep: Prepared
    model: EmbeddingModel | FittedModel
    meta: dict[str, Any]
    ref: ArtifactRef | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    from_cache: bool = False

    # -- identity ---------------------------------------------------------------------------
    @property
    def dataset(self) -> Dataset:
        return self.prep.dataset

    @property
    def idmap(self) -> IdMap:
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
        return self.prep.split.item_counts()

    @cached_property
    def _train_csr(self) -> sp.csr_matrix:
        m = self.prep.split.matrix("train")
        m.sort_indices()
        return m

    def category_matrix(self) -> np.ndarray | None:
        """``float64 [n_items, C]`` multi-hot categories in internal item order (None without categories).

        Converted once and shared read-only: the re-rankers and the audit only read it.
        """
        return self._category_array

    @cached_property
    def _category_array(self) -> np.ndarray | None:
        if not self.prep.category_names:
            return None
        cats = self.prep.categories.detach().cpu().numpy().astype(np.float64)
        cats.flags.writeable = False
        return cats

    def history_category_distribution(self, users: np.ndarray) -> np.ndarray | None:
        """``[len(users), C]``: each user's category mass over their training history, each item spreading 1.

        The calibration re-ranker (Steck 2018) compares a list's category distribution with this one.
        None when the dataset has no categories.
        """
        cats = self.category_matrix()
        if cats is None:
            return None
        return np.asarray(self._train_csr[np.asarray(users)] @ category_distributions(cats))

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

        Columns: ``item_id``, ``title``, ``categories``, ``rating`` (NaN for implicit logs and
        counts), ``count`` (only for a dataset of counts), ``timestamp``, ``date``, ``part``
        (``train`` / ``valid`` / ``test`` / ``not positive``).
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
                # a count is not a rating: it gets its own column (the dashboard shows it as such)
                RATING: np.full(len(rows), np.nan) if self.dataset.counts else rows[RATING].to_numpy(),
                **({COUNT: rows[RATING].to_numpy()} if self.dataset.counts else {}),
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

    # -- versions ---------------------------------------------------------------------------
    @property
    def version(self) -> int | None:
        """The stored artifact version (1 when trained from scratch, +1 per update), or None when not stored."""
        return None if self.ref is None else self.ref.version

    def lineage(self) -> list[dict[str, Any]]:
        """This model's version and the versions it was derived from, current first, back to the root.

        Only manifests are read. A model that is not stored gives one entry from its own model card.

        Returns:
            One dict per version with ``version`` (int; None when not stored), ``key``
            (``dataset/fingerprint[:16]/vN``; None when not stored), ``created`` (ISO 8601 UTC, or
            None when unknown), ``available`` (False for an ancestor whose manifest is missing or
            damaged: then nothing else is known and it is the last entry), ``update`` (True for a
            version made by an incremental update, False for one trained from scratch, None when
            unknown), and the update's figures (None for a version trained from scratch):
            ``rows`` (interactions added), ``positives``, ``new_users``, ``new_items``,
            ``train_pairs_added``, ``users_changed``, ``epochs``, ``seconds``,
            ``valid_ndcg@10_before`` and ``valid_ndcg@10_after``.
        """
        if self.ref is None:
            return [_lineage_entry(None, None, self.meta, True)]
        # Layout <root>/<dataset>/<fingerprint[:16]>/v<N>: the store the version lives in holds its parents.
        store = ArtifactStore(Path(self.ref.path).parents[2])
        entries = []
        for n, (ref, manifest) in enumerate(store.lineage(self.ref)):
            if manifest is None and n == 0:  # the loaded version's own manifest went away: its card still holds
                manifest = {"meta": self.meta}
            meta = None if manifest is None else manifest.get("meta", {})
            entries.append(
                _lineage_entry(ref.version, artifact_ref_str(ref), meta, manifest is not None)
                | {"created": None if manifest is None else manifest.get("created")}
            )
        return entries

    def what_changed(self, limit: int | None = 20) -> pd.DataFrame:
        """Users whose top-K list changed most in the update that made this version, most changed first.

        The model card keeps the 20 most changed users; a longer table is read from the
        artifact's stored copy (up to 1000 rows, see :func:`engine.update.what_changed`).

        Args:
            limit: at most this many rows; None for every stored row (default: 20).

        Returns:
            Columns ``user_id``, ``changed`` (items of the list before that are no longer in it),
            ``overlap`` (share of the list kept), ``new_interactions`` (training pairs the update
            added for the user), ``entered`` / ``left`` (item ids), ``top_before`` / ``top_after``
            (item ids), and ``entered_titles`` / ``left_titles`` (those items' titles, the id where
            an item has none). Empty, with these columns, when the model was never updated.
        """
        update = self.meta.get("update") or {}
        records = list(update.get("what_changed") or [])
        if records and (limit is None or limit > len(records)):
            records = self._stored_changes() or records
        frame = pd.DataFrame.from_records(records[:limit] if limit is not None else records)
        if frame.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in WHAT_CHANGED_COLUMNS})
        titles = dict(zip(self.items[ITEM].astype(str), self.items[TITLE], strict=True))
        for col in ("entered", "left"):
            frame[f"{col}_titles"] = frame[col].map(lambda ids: [str(titles.get(str(i), i)) for i in ids])
        return frame.reindex(columns=list(WHAT_CHANGED_COLUMNS)).reset_index(drop=True)

    def _stored_changes(self) -> list[dict[str, Any]] | None:
        """The full "what changed" table stored with this version (verified when the version was loaded)."""
        if self.ref is None:
            return None
        try:
            rows = json.loads((Path(self.ref.path) / f"{CHANGES_FILE}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning(
                "artifact %s: no readable %s.json (%s); showing the model card's rows", self.ref.path, CHANGES_FILE, exc
            )
            return None
        return rows if isinstance(rows, list) else None


def _lineage_entry(
    version: int | None, key: str | None, meta: dict[str, Any] | None, available: bool
) -> dict[str, Any]:
    """One :meth:`Recommender.lineage` entry from a version's model card (None when unreadable)."""
    update = None if meta is None else meta.get("update")
    entry: dict[str, Any] = {
        "version": version,
        "key": key,
        "created": None,
        "available": available,
        "update": None if meta is None else bool(update),
    }
    figures = update if isinstance(update, dict) else {}
    return entry | {name: figures.get(name) for name in UPDATE_FIGURES}
