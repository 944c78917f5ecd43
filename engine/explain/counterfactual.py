"""Editing a user's history: exact incremental re-scoring, what-if, and counterfactuals.

Removing or adding interactions of user ``u`` changes, at layer ``l``, only the nodes
within ``l`` hops of the edited edges' endpoints (their softmax inputs, their degrees,
or a neighbour's state changed). The user's ranking needs the new final embedding of
``u`` and of every item; so we keep the full graph's per-layer states from one forward,
walk back from the outputs that can change to the states they read, and recompute only
those, layer by layer, on the edges into them (with the edited graph's degrees). Every
other state is reused. The result equals a full forward on the edited graph (a test
checks it) at a fraction of the cost. The counterfactual of a model whose score decomposes
exactly is :mod:`~engine.explain.counterfactual_exact`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.data.schema import ITEM, TITLE
from engine.errors import UnknownItemError
from engine.explain.additive import is_decomposable, user_terms, what_if_scores
from engine.explain.resolve import require_attention_model, resolve_user
from engine.explain.subgraph import GraphIndex, graph_index, input_parts, single_thread, unique_ids
from engine.recommender import Recommender


@dataclass
class LayerStates:
    """The full graph's per-layer node states ``x^0 .. x^L`` [L+1, N, d] and their readout weights [L+1, d]."""

    states: torch.Tensor
    weights: torch.Tensor

    @property
    def final(self) -> torch.Tensor:
        return (self.states * self.weights.unsqueeze(1)).sum(0)


@torch.no_grad()
def layer_states(rec: Recommender) -> LayerStates:
    """Per-layer states of the recommender's training graph (memoised on it)."""
    cache = rec.__dict__.setdefault("_explain_cache_state", {})
    if "layers" not in cache:
        model, index, parts = rec.model, graph_index(rec), input_parts(rec)
        model.eval()
        x = torch.cat([parts.users, parts.item_id + parts.item_text + parts.item_cat])
        ei = torch.from_numpy(index.edge_index)
        states = [x]
        for conv in model.convs:
            x, _ = conv(x, ei, edge_attr=index.edge_attr)
            states.append(x)
        cache["layers"] = LayerStates(torch.stack(states), model.layer_weights().detach())
    return cache["layers"]


@dataclass
class Edit:
    """Interactions of one user to remove and to add (internal item indices)."""

    user: int
    remove: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    add: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # (w_rating, w_recency) of added interactions: a top rating, made now.
    add_attr: tuple[float, float] = (1.0, 1.0)


@torch.no_grad()
def rescore_user(rec: Recommender, edit: Edit) -> tuple[np.ndarray, int]:
    """Scores of every item for ``edit.user`` on the edited training graph (exact).

    Args:
        rec: the recommender (GAT model).
        edit: the :class:`Edit`.

    Returns:
        ``(scores [n_items], nodes_recomputed)``.
    """
    model, index, parts = rec.model, graph_index(rec), input_parts(rec)
    layers = layer_states(rec)
    cached, weights = layers.states, layers.weights
    n_layers, nu = len(model.convs), index.n_users
    un = int(edit.user)
    rem_nodes = nu + np.asarray(edit.remove, dtype=np.int64)
    add_nodes = nu + np.asarray(edit.add, dtype=np.int64)
    if rem_nodes.size == 0 and add_nodes.size == 0:
        final = layers.final
        return (final[nu:] @ final[un]).numpy(), 0

    removed_ids = _removed_edges(index, un, rem_nodes)
    new_deg = index.degree.copy()
    new_deg[un] += add_nodes.size - rem_nodes.size
    new_deg[rem_nodes] -= 1
    new_deg[add_nodes] += 1
    seeds = np.unique(np.concatenate([[un], rem_nodes, add_nodes]))
    # Edited edges join seeds only, so hop distances from the seeds are the same on the
    # old and the edited graph.
    hop = index.hops(seeds, n_layers)
    targets = np.concatenate([[un], nu + np.flatnonzero(hop[nu:] >= 0)])
    add_src = np.concatenate([np.full(add_nodes.size, un), add_nodes])
    add_dst = np.concatenate([add_nodes, np.full(add_nodes.size, un)])
    removed_set = np.zeros(index.edge_index.shape[1], dtype=bool)
    removed_set[removed_ids] = True

    # Walk back from the outputs: which states must be recomputed at each layer.
    recompute: list[np.ndarray] = [np.zeros(0, np.int64)] * (n_layers + 1)
    edges: list[tuple[np.ndarray, np.ndarray, torch.Tensor]] = [None] * (n_layers + 1)  # type: ignore[list-item]
    needed = targets
    for layer in range(n_layers, 0, -1):
        d_l = needed[(hop[needed] >= 0) & (hop[needed] <= layer)]
        eids = index.edges_into(d_l)
        eids = eids[~removed_set[eids]]
        in_d = in_set(add_dst, d_l, index.num_nodes)
        src = np.concatenate([index.edge_index[0, eids], add_src[in_d]])
        dst = np.concatenate([index.edge_index[1, eids], add_dst[in_d]])
        attr = torch.cat([index.edge_attr[torch.from_numpy(eids)], torch.tensor([edit.add_attr] * int(in_d.sum()))])
        recompute[layer], edges[layer] = d_l, (src, dst, attr.float().reshape(-1, 2))
        needed = unique_ids(np.concatenate([targets, d_l, src]), index.num_nodes)

    x = cached[0].clone()
    items = seeds[seeds >= nu]
    warm = torch.from_numpy(new_deg[items] > 0).unsqueeze(-1)
    it = torch.from_numpy(items - nu)
    ctx = None if model.item_ctx is None else model.context(it)
    ids = model.join(model.item_emb.weight[it], ctx)  # raw: an edit can warm a cold item up
    x[torch.from_numpy(items)] = ids * warm + parts.item_text[it] + parts.item_cat[it]
    total = layers.final  # a fresh tensor: updated in place below
    tgt = torch.from_numpy(targets)
    total[tgt] += (x[tgt] - cached[0][tgt]) * weights[0]
    deg_t = torch.from_numpy(new_deg)
    n_recomputed = 0
    for layer, conv in enumerate(model.convs, start=1):
        src, dst, attr = edges[layer]
        d_l = torch.from_numpy(recompute[layer])
        if src.size:
            ei = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
            out, _ = conv(x, ei, edge_attr=attr, node_degree=deg_t)
        else:  # no edge left into the recomputed nodes: no messages
            out = torch.zeros_like(x)
        x = cached[layer].clone()
        x[d_l] = out[d_l]
        total[tgt] += (x[tgt] - cached[layer][tgt]) * weights[layer]
        n_recomputed += int(d_l.numel())
    return (total[nu:] @ total[un]).numpy(), n_recomputed


def _removed_edges(index: GraphIndex, un: int, rem_nodes: np.ndarray) -> np.ndarray:
    """Edge ids of both directions of the interactions (un, h) for h in ``rem_nodes``."""
    if rem_nodes.size == 0:
        return np.zeros(0, np.int64)
    into_items = index.edges_into(rem_nodes)
    into_items = into_items[index.edge_index[0, into_items] == un]
    into_user = index.edges_into(np.array([un]))
    into_user = into_user[in_set(index.edge_index[0, into_user], rem_nodes, index.num_nodes)]
    return np.concatenate([into_items, into_user])


def in_set(values: np.ndarray, members: np.ndarray, size: int) -> np.ndarray:
    """``np.isin`` for small non-negative ints below ``size`` (a lookup table: much faster here)."""
    table = np.zeros(size, dtype=bool)
    table[members] = True
    return table[values]


def ranks(scores: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """1-based rank of every item among the non-excluded ones (excluded items: 0)."""
    s = scores.astype(np.float64).copy()
    s[excluded] = -np.inf
    order = np.argsort(-s, kind="stable")
    out = np.empty(s.size, dtype=np.int64)
    out[order] = np.arange(1, s.size + 1)
    out[excluded] = 0
    return out


# -- what-if --------------------------------------------------------------------------------
@dataclass
class WhatIf:
    """The user's top-K before and after editing their history.

    Attributes:
        user_id: external user id.
        added / removed: external item ids of the edit.
        k: list length compared.
        items: one row per item in the old or the new top-K: ``item_id``, ``title``,
            ``old_rank``, ``new_rank``, ``delta`` (``old_rank - new_rank``: positive = moved
            up), ``old_score``, ``new_score``; sorted by ``new_rank``.
        seconds: wall time of the re-scoring.
        nodes_recomputed: layer states recomputed (the rest were reused).
    """

    user_id: str
    added: list[str]
    removed: list[str]
    k: int
    items: pd.DataFrame
    seconds: float
    nodes_recomputed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "added": self.added,
            "removed": self.removed,
            "k": self.k,
            "seconds": self.seconds,
            "items": self.items.to_dict("records"),
        }


def what_if(rec: Recommender, user_id: str, *, add: list[str] = (), remove: list[str] = (), k: int = 10) -> WhatIf:
    """Re-score a user's whole ranking after adding and/or removing interactions.

    Added interactions get a top rating and the newest timestamp. The user's original
    training items stay excluded from the list (also the removed ones: the question is
    what *else* the model would now show), and added items become excluded.

    Args:
        rec: the recommender (GAT model).
        user_id: external user id with training history.
        add: external item ids to add (default: none).
        remove: external item ids of the user's training interactions to remove (default: none).
        k: list length to compare (default: 10).

    Returns:
        A :class:`WhatIf`.

    Raises:
        UnknownUserError / UnknownItemError: for ids not in the dataset.
        ValueError: for a model neither exactly decomposable nor the attention model, a user without history,
            ``k < 1``, removing an item not in the history or adding one already in it.
    """
    decomposable = is_decomposable(rec)
    if not decomposable:
        require_attention_model(rec)
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k!r})")
    u = resolve_user(rec, user_id, purpose="a what-if")
    history = set(rec.train_items(u).tolist())
    add_idx = _item_indices(rec, add)
    rem_idx = _item_indices(rec, remove)
    for item_id, idx in zip(remove, rem_idx, strict=True):
        if idx not in history:
            raise ValueError(f"cannot remove {item_id!r}: it is not in user {user_id!r}'s training history")
    for item_id, idx in zip(add, add_idx, strict=True):
        if idx in history:
            raise ValueError(f"cannot add {item_id!r}: it is already in user {user_id!r}'s training history")
        if idx in set(rem_idx.tolist()):
            raise ValueError(f"item {item_id!r} is both added and removed")
    t0 = time.perf_counter()
    with single_thread():
        if decomposable:  # the model's own arithmetic, term by term (engine.explain.additive)
            terms = user_terms(rec, u)
            old = terms.scores
            new, n_rec = what_if_scores(rec, terms, np.sort(rem_idx), add_idx, added_features=Edit.add_attr), 0
        else:
            old = (layer_states(rec).final[rec.idmap.n_users :] @ layer_states(rec).final[u]).numpy()
            new, n_rec = rescore_user(rec, Edit(u, remove=rem_idx, add=add_idx))
    seconds = time.perf_counter() - t0
    excluded_old = np.fromiter(history, dtype=np.int64, count=len(history))
    excluded_new = np.unique(np.concatenate([excluded_old, add_idx]))
    r_old, r_new = ranks(old, excluded_old), ranks(new, excluded_new)
    show = np.flatnonzero(((r_old >= 1) & (r_old <= k)) | ((r_new >= 1) & (r_new <= k)))
    frame = pd.DataFrame(
        {
            ITEM: rec.items[ITEM].to_numpy()[show],
            TITLE: rec.items[TITLE].to_numpy()[show],
            "old_rank": r_old[show],
            "new_rank": r_new[show],
        }
    )
    frame["delta"] = frame["old_rank"] - frame["new_rank"]
    frame["old_score"] = old[show].astype(float)
    frame["new_score"] = new[show].astype(float)
    frame = frame.sort_values(["new_rank", "old_rank"], kind="stable").reset_index(drop=True)
    return WhatIf(str(user_id), [str(a) for a in add], [str(r) for r in remove], k, frame, seconds, n_rec)


def _item_indices(rec: Recommender, item_ids: list[str]) -> np.ndarray:
    out = []
    for item_id in item_ids:
        if not rec.idmap.has_item(str(item_id)):
            raise UnknownItemError(str(item_id))
        out.append(rec.idmap.item_index(str(item_id)))
    return np.asarray(out, dtype=np.int64)


# -- counterfactual -------------------------------------------------------------------------
@dataclass
class Counterfactual:
    """The smallest prefix of the user's most-attributed interactions whose removal drops the item.

    Attributes:
        found: whether removing some prefix pushes the item out of the top-K.
        k: the list length.
        old_rank: the item's rank before (among items the user has not seen).
        new_rank: the item's verified rank after removing ``removed`` (None if not found).
        new_score: its score then (None if not found).
        removed: the removed interactions (``item_id``, ``title``, ``rating``,
            ``attribution``), in attribution order.
        tried: every verification run (``n_removed``, ``rank``, ``score``).
        note: one line on how it was found, or why not.
        size: how many interactions the set has (None if not found); for a decomposable model
            ``removed`` shows at most ``max_rows`` of them
            (:func:`~engine.explain.counterfactual_exact.find_counterfactual_exact`).
        n_more: how many of the set are not in ``removed`` (shown as "+N more").
        verdict: one plain sentence for a reader (empty where not computed).
    """

    found: bool
    k: int
    old_rank: int | None
    new_rank: int | None
    new_score: float | None
    removed: pd.DataFrame
    tried: pd.DataFrame
    note: str
    size: int | None = None
    n_more: int = 0
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "k": self.k,
            "old_rank": self.old_rank,
            "new_rank": self.new_rank,
            "new_score": self.new_score,
            "removed": self.removed.to_dict("records"),
            "size": self.size if self.size is not None else (len(self.removed) if self.found else None),
            "n_more": self.n_more,
            "verdict": self.verdict,
            "verifications": len(self.tried),
            "note": self.note,
        }


def find_counterfactual(
    rec: Recommender,
    user: int,
    item: int,
    candidates: pd.DataFrame,
    *,
    k: int = 10,
) -> Counterfactual:
    """Greedy counterfactual: remove the most-attributed interactions until the item leaves the top-K.

    ``candidates`` are the user's interactions in greedy order (positive attribution,
    largest first). Prefixes are tried by doubling then bisection; each try re-scores the
    user's whole ranking on the edited graph, so the returned set is verified (the
    bisection assumes that removing more supporting interactions does not bring the item
    back, and the prefix one shorter is verified to fail).

    Args:
        rec: the recommender.
        user: internal user index.
        item: internal item index.
        candidates: frame with ``i`` (internal item index), ``item_id``, ``title``,
            ``rating``, ``attribution``, in greedy order.
        k: the list length (default: 10).

    Returns:
        A :class:`Counterfactual`.
    """
    history = rec.train_items(user)
    cols = [ITEM, TITLE, "rating", "attribution"]
    empty = candidates.iloc[:0][cols] if len(candidates) else pd.DataFrame(columns=cols)
    old_scores = (layer_states(rec).final[rec.idmap.n_users :] @ layer_states(rec).final[user]).numpy()
    old_rank = int(ranks(old_scores, history)[item]) or None
    tried: list[dict[str, Any]] = []
    if old_rank is None or old_rank > k:
        where = "in the user's history" if old_rank is None else f"at rank {old_rank}"
        return Counterfactual(
            False, k, old_rank, None, None, empty, pd.DataFrame(tried), f"the item is {where}, not in the top-{k}"
        )
    order = candidates["i"].to_numpy(np.int64)

    def check(n: int) -> bool:
        scores, _ = rescore_user(rec, Edit(user, remove=order[:n]))
        r = int(ranks(scores, history)[item])
        tried.append({"n_removed": n, "rank": r, "score": float(scores[item])})
        return r > k

    if order.size == 0:
        return Counterfactual(
            False, k, old_rank, None, None, empty, pd.DataFrame(tried), "no interaction supports the score"
        )
    lo, hi, n = 0, None, 1
    while n <= order.size:
        if check(n):
            hi = n
            break
        lo, n = n, n * 2
    if hi is None and lo < order.size:
        if check(order.size):
            hi = order.size
        else:
            lo = order.size
    if hi is None:
        note = f"removing all {order.size} positively attributed interactions keeps the item in the top-{k}"
        return Counterfactual(False, k, old_rank, None, None, empty, pd.DataFrame(tried), note)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if check(mid):
            hi = mid
        else:
            lo = mid
    last = next(t for t in reversed(tried) if t["n_removed"] == hi)
    removed = candidates.iloc[:hi][cols].reset_index(drop=True)
    note = (
        f"verified: without these {hi} interaction(s) the item falls from rank {old_rank} to {last['rank']}"
        f" ({len(tried)} re-scorings of the whole ranking)"
    )
    return Counterfactual(True, k, old_rank, last["rank"], last["score"], removed, pd.DataFrame(tried), note)
