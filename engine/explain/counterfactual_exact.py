"""The counterfactual of a model whose score decomposes exactly (:mod:`~engine.explain.additive`).

The user's history items that raise the item's score are removed in two greedy orders (by their
history-term contributions, and by their exact single-removal drops), and every prefix of each is
re-scored over the whole catalog at once (:func:`~engine.explain.additive.prefix_scores`), so the
set found is the shorter of the two shortest prefixes that drop the item out of the top-K; it is
verified once more on its own. The attention model's path (bisection over exact incremental re-scorings) is
:func:`engine.explain.counterfactual.find_counterfactual`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from engine.data.schema import ITEM, TITLE
from engine.explain.additive import UserTerms, edited_scores, prefix_scores, removal_drops, user_terms
from engine.explain.counterfactual import Counterfactual, ranks
from engine.recommender import Recommender


def rank_rows(scores: np.ndarray, item: int, excluded: np.ndarray) -> np.ndarray:
    """Rank of ``item`` in each row of ``scores [R, I]`` among the non-excluded items (as :func:`ranks`)."""
    s = np.asarray(scores, dtype=np.float64)
    mask = np.ones(s.shape[1], dtype=bool)
    mask[excluded] = False
    mine = s[:, item : item + 1]
    above = (s > mine) | ((s == mine) & (np.arange(s.shape[1]) < item))
    return 1 + (above & mask).sum(axis=1)


# Removals chosen by the lead-narrowing greedy before the order of the item's own drops takes over.
_GREEDY_STEPS = 64


def find_counterfactual_exact(
    rec: Recommender, user: int, item: int, *, k: int = 10, max_rows: int = 10, block: int = 64
) -> Counterfactual:
    """Smallest greedy set of past interactions whose removal drops ``item`` out of the top-``k``.

    For a model with an exact decomposition (:mod:`~engine.explain.additive`): the user's history
    items whose removal lowers ``item``'s score are removed in :func:`removal_order` (the ones
    that most narrow its lead over its closest rivals first), once judged by their exact
    single-removal drops (taste profile included) and once by their history-term contributions
    alone; for each order *every* prefix
    is re-scored over the whole catalog (the history term exactly; the taste profile
    re-propagated from the remaining history with the items' side held fixed; popularity
    unchanged), so the set is the shorter of the two orders' shortest prefixes that work, not a
    bisection's guess. The
    returned set is verified once more on its own, and so is the set one shorter (it keeps the
    item in the top-``k``). The user's original training items stay excluded from the ranking.

    Args:
        rec: a recommender whose model decomposes exactly.
        user: internal user index (with training history).
        item: internal item index.
        k: the list length (default: 10).
        max_rows: rows of the set kept in ``removed``; the rest is counted in ``n_more``
            (default: 10). A set larger than this gets the verdict that no small set exists.
        block: prefixes re-scored at once (default: 64).

    Returns:
        A :class:`Counterfactual` with ``size``, ``n_more`` and a plain ``verdict``.
    """
    terms = user_terms(rec, user)
    excluded = rec.train_items(user)
    cols = [ITEM, TITLE, "rating", "attribution"]
    empty = pd.DataFrame(columns=cols)
    old_rank = int(ranks(terms.scores, excluded)[item]) or None
    tried: list[dict[str, Any]] = []
    if old_rank is None or old_rank > k:
        where = "in the user's history" if old_rank is None else f"at rank {old_rank}"
        note = f"the item is {where}, not in the top-{k}"
        return Counterfactual(
            False, k, old_rank, None, None, empty, pd.DataFrame(tried), note, verdict=f"It is {where}."
        )
    contrib = terms.contributions[item]
    # Two greedy orders, each scanned exactly: by the history term's contributions alone (the
    # items the explanation's shares name) and by the exact single-removal drops (the taste
    # profile's change included, which finds sets where a heavy taste weight carries the item).
    # The shorter verified set is kept; a tie, or no set in either, keeps the contributions'.
    exact = partial(removal_drops, rec, terms)
    scans = [
        _scan(rec, terms, item, excluded, removal_order(terms, item, excluded, k=k, rank=old_rank, drops=d), k, block)
        for d in (None, exact)
    ]
    pos, size, rank_at = min(scans, key=lambda scan: (scan[1] is None, scan[1] or 0))
    rank_at[0] = old_rank
    order = terms.history[pos]
    frame = _removal_frame(rec, user, order, contrib[pos])
    if size is None:
        last = rank_at[len(order)]
        note = (
            f"removing all {len(order)} past interactions that raise its score keeps it at rank {last}"
            f" (taste profile and popularity carry it)"
        )
        verdict = (
            f"Even without all {len(order)} past titles that raise its score it stays in the top {k} "
            f"(rank {last}): it is recommended by broad taste, not by a few items."
        )
        if not len(order):
            note = "no past interaction raises its score"
            verdict = f"No past title raises its score: it is in the top {k} through broad taste and popularity."
        return Counterfactual(
            False, k, old_rank, None, None, frame.iloc[:0], pd.DataFrame(tried), note, verdict=verdict
        )

    # Verify the set and the one shorter on their own (a float tie the scan read the other way
    # moves the set by one).
    def check(n: int) -> dict[str, Any]:
        scores = edited_scores(rec, terms, order[:n])
        tried.append({"n_removed": n, "rank": int(ranks(scores, excluded)[item]), "score": float(scores[item])})
        return tried[-1]

    last = check(size)
    while last["rank"] <= k and size < len(order):
        size += 1
        last = check(size)
    shorter = check(size - 1) if size > 1 else {"rank": old_rank}
    new_rank, new_score = last["rank"], last["score"]
    if new_rank <= k:
        raise RuntimeError(f"counterfactual verification failed for user {user}, item {item}: {tried}")
    shown = frame.iloc[: min(size, max_rows)].reset_index(drop=True)
    note = (
        f"verified: without these {size} interaction(s) the item falls from rank {old_rank} to {new_rank}; "
        f"without the first {size - 1} it stays at rank {shorter['rank']} (greedy by how much each removal "
        "narrows the lead over the items just below; the whole catalog re-scored, taste profile re-propagated)"
    )
    if size <= max_rows:
        verdict = (
            f"Without {'this past title' if size == 1 else f'these {size} past titles'} it would fall from "
            f"#{old_rank} to #{new_rank}, out of the top {k}."
        )
    else:
        verdict = (
            f"No set of up to {max_rows} past titles moves it out of the top {k} (even without its {max_rows} "
            f"largest contributors it stays at #{rank_at[max_rows]}; it takes {size}): it is recommended by broad "
            "taste, not by a few items."
        )
    return Counterfactual(
        True,
        k,
        old_rank,
        new_rank,
        new_score,
        shown,
        pd.DataFrame(tried),
        note,
        size=size,
        n_more=size - len(shown),
        verdict=verdict,
    )


def _scan(
    rec: Recommender, terms: UserTerms, item: int, excluded: np.ndarray, pos: np.ndarray, k: int, block: int
) -> tuple[np.ndarray, int | None, dict[int, int]]:
    """``(pos, size, {n: rank})``: the shortest prefix of ``terms.history[pos]`` dropping ``item`` out of the top-``k``.

    Every prefix is re-scored over the whole catalog, ``block`` at a time, until one works
    (``size`` None when none does); ``{n: rank}`` holds the item's rank after each prefix scanned.
    """
    order = terms.history[pos]
    rank_at: dict[int, int] = {}
    for start in range(0, len(order), block):
        rows = prefix_scores(rec, terms, order[: start + block], start=start + 1)
        r = rank_rows(rows, item, excluded)
        rank_at.update({start + 1 + n: int(x) for n, x in enumerate(r)})
        out = np.flatnonzero(r > k)
        if out.size:
            return pos, start + 1 + int(out[0]), rank_at
    return pos, None, rank_at


def removal_order(
    terms: UserTerms,
    item: int,
    excluded: np.ndarray,
    *,
    k: int,
    rank: int,
    drops: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Columns of ``terms.history`` to remove, in the order the search tries them.

    Only interactions whose removal lowers the item's score are candidates. Removing ``j`` lowers
    every item ``c`` by its own drop ``d(j, c)``, so what pushes the item out of the top-``k`` is
    how much ``j`` narrows its lead over the items just below it, not ``d(j, item)`` alone (an
    interaction that lifts the item's close rivals just as much moves nothing). Greedily: the
    ``need = k - rank + 1`` rivals still below it with the smallest remaining lead are the ones
    that must overtake, and the next removal is the one that narrows their leads most. Ties and
    the tail fall back to the order of the item's own drops. The exact re-scoring of every prefix
    (:func:`find_counterfactual_exact`) decides the set; this only chooses the order.

    Args:
        terms: the user's terms (:func:`~engine.explain.additive.user_terms`).
        item: internal index of the recommended item.
        excluded: the user's training items (never ranked).
        k: the list length.
        rank: the item's current rank (1-based, ``<= k``).
        drops: items ``[m]`` -> ``[n, m]``, each history item's single-removal drop of each
            item's score (default: None, the history term's contributions alone;
            :func:`find_counterfactual_exact` passes the exact drops,
            :func:`~engine.explain.additive.removal_drops`, which add the taste profile's change:
            with a heavy taste weight an interaction outside the item's sources can still carry it).
    """
    if drops is None:
        drops = partial(_contribution_drops, terms)
    own = drops(np.array([item]))[:, 0]
    pos = np.flatnonzero(own > 0)
    pos = pos[np.argsort(-own[pos], kind="stable")]  # by the item's own drop: the fallback order
    need = k - rank + 1
    scores = terms.scores.astype(np.float64).copy()
    scores[excluded] = -np.inf
    scores[item] = -np.inf
    below = np.flatnonzero(np.isfinite(scores) & (scores < terms.scores[item]))
    if not len(pos) or not len(below):
        return pos
    rivals = below[np.argsort(-scores[below], kind="stable")[: max(4 * need, need + 20)]]
    lead = terms.scores[item] - terms.scores[rivals]  # [R] >= 0
    narrow = own[pos][:, None] - drops(rivals)[pos]  # [P, R]: lead lost per removal
    chosen: list[int] = []
    left = np.ones(len(pos), dtype=bool)
    for _ in range(min(len(pos), _GREEDY_STEPS)):
        closest = np.argsort(lead, kind="stable")[:need]  # the rivals that have to overtake
        gain = np.where(left, narrow[:, closest].sum(axis=1), -np.inf)
        best = int(np.argmax(gain))
        if not gain[best] > 0:
            break
        chosen.append(best)
        left[best] = False
        lead = lead - narrow[best]
        if np.sum(lead < 0) >= need:
            break
    rest = [p for p in range(len(pos)) if left[p]]
    return pos[np.asarray(chosen + rest, dtype=np.int64)]


def _contribution_drops(terms: UserTerms, items: np.ndarray) -> np.ndarray:
    """``[n, len(items)]``: each history item's drop of each item's score, its contribution alone."""
    return terms.contributions[np.asarray(items, dtype=np.int64)].T


def _removal_frame(rec: Recommender, user: int, items: np.ndarray, contribution: np.ndarray) -> pd.DataFrame:
    """``item_id``, ``title``, ``rating``, ``attribution`` of the user's ``items`` (in that order), plus ``i``."""
    train = rec.prep.split.train
    rows = train[train["u"] == user].set_index("i")
    scale = rec.dataset.rating_scale
    if scale is None:
        rating = np.full(len(items), np.nan)
    else:
        lo, hi = scale
        w = rows["w_rating"].reindex(items).to_numpy(np.float64)
        rating = np.round((lo + w * (hi - lo)) * 2) / 2
    return pd.DataFrame(
        {
            "i": items,
            ITEM: rec.items[ITEM].to_numpy()[items],
            TITLE: rec.items[TITLE].to_numpy()[items],
            "rating": rating,
            "attribution": contribution,
        }
    )
