r"""Catalog-wide arithmetic of an exactly decomposable model, and its re-scoring after history edits.

A model with the :data:`~engine.models.registry.DECOMPOSITION` interface scores

.. math::
    s(u, i) = \sum_{j \in H(u)} c(u, j, i) + \text{taste}(u, i) + \text{popularity}(i),

and its ``contributions(user, item)`` returns the terms of one pair. Counterfactuals, the
faithfulness evaluation and the list of reasons need them for *every* item at once and for an
*edited* history; this module takes them from the model's ``contributions_many(user, items)``
and re-propagates the taste part from its public tables (``user_embedding``, ``item_embedding``,
``text_taste``, ``cached_embeddings()``, ``taste_scale``), and checks on every user it serves
that the terms add up to the model's own score and that the re-propagated taste profile is the
model's (a mismatch raises instead of explaining numbers the model does not compute).

Editing the history (removing past interactions ``R``), as :func:`edited_scores` does:

* the **history term** is exact: each removed item's contribution ``c(u, j, i)`` is subtracted
  from every item ``i`` (the relation ``S`` and the attention ``a(j, i)`` do not depend on ``u``'s
  other interactions; the relation, fitted in closed form on the training matrix, is held fixed
  as it would be without refitting);
* the **taste profile** ``gamma <p_u, q_i>`` is recomputed for the edited user: ``p_u``'s LightGCN
  layers are re-propagated from the remaining history, with the user's degree updated. Held fixed
  are the items' side: their layer states, their degrees and the candidates' ``q_i`` (removing a
  handful of one user's interactions moves an item's degree by one and its state by one
  neighbour's message out of many), and every trained parameter;
* **popularity** ``b_i`` does not depend on the user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from engine.data.graph import EDGE_UI
from engine.errors import UnsupportedModelError
from engine.models.registry import DECOMPOSITION, model_names, model_spec
from engine.recommender import Recommender

# What the arithmetic reads of the model: its terms, and the taste part's tables to re-propagate.
_NEEDS = ("contributions", "contributions_many", "cached_embeddings", "user_embedding", "item_embedding", "num_layers")
# The terms must add up to the model's score, and the re-propagated taste reproduce the model's,
# within this (relative to the largest absolute score of the user).
_TOLERANCE = 1e-4


def is_decomposable(rec: Recommender) -> bool:
    """Whether the recommender's model is registered with the exact-decomposition interface."""
    name = rec.model_name
    return name in model_names() and DECOMPOSITION in model_spec(name).capabilities.explain


def require_decomposable(rec: Recommender) -> None:
    """Raise :class:`UnsupportedModelError` unless the model decomposes exactly and exposes its terms."""
    if not is_decomposable(rec):
        raise UnsupportedModelError(
            f"this needs a model registered with the {DECOMPOSITION!r} explanation interface (got {rec.model_name!r})"
        )
    missing = [a for a in _NEEDS if not hasattr(rec.model, a)]
    if missing:
        raise UnsupportedModelError(
            f"model {rec.model_name!r} is registered with {DECOMPOSITION!r} but {type(rec.model).__name__} lacks "
            f"{', '.join(missing)}"
        )


@dataclass
class AdditiveParts:
    """The user-independent pieces of the taste term, in internal order (float64 numpy).

    Attributes:
        item_taste: ``[I, d]`` the items' final taste embeddings ``q_i`` as the model scores them.
        taste_scale: ``gamma``, the weight of the taste term.
        user_layer0: ``[U, d]`` the users' layer-0 taste embeddings.
        item_layers: ``[L, I, d]`` the items' layer states ``x^0 .. x^(L-1)`` on the training graph.
        user_items: ``[U, I]`` CSR of the training user->item edges (multiplicity).
        item_degree: ``[I]`` the items' degrees in the propagation graph.
    """

    item_taste: np.ndarray
    taste_scale: float
    user_layer0: np.ndarray
    item_layers: np.ndarray
    user_items: sp.csr_matrix
    item_degree: np.ndarray

    @property
    def num_layers(self) -> int:
        return int(self.item_layers.shape[0])


_CACHE = "_explain_cache_additive"  # the recommender attribute that memoises parts and the last user's terms


def forget(rec: Recommender) -> None:
    """Drop what this module memoised on ``rec``: needed after its model's weights change in place."""
    rec.__dict__.pop(_CACHE, None)


@torch.no_grad()
def additive_parts(rec: Recommender) -> AdditiveParts:
    """The taste term's user-independent pieces (memoised on the recommender)."""
    cache = rec.__dict__.setdefault(_CACHE, {})
    if "parts" in cache:
        return cache["parts"]
    require_decomposable(rec)
    model, graph = rec.model, rec.prep.graph
    model.eval()
    # LightGCN propagation on the training graph's user->item edges (D^-1/2 A D^-1/2, as the model's).
    ui = (graph.edge_type == EDGE_UI).cpu()
    u = graph.edge_index[0, ui].cpu().numpy()
    i = graph.edge_index[1, ui].cpu().numpy() - graph.n_users
    n_users, n_items = model.n_users, model.n_items
    m = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(n_users, n_items))  # duplicates summed
    du = np.asarray(m.sum(axis=1)).ravel()
    di = np.asarray(m.sum(axis=0)).ravel()
    norm = sp.diags(_rsqrt(du)) @ m @ sp.diags(_rsqrt(di))
    proj = getattr(model, "text_taste", None)
    text = 0.0 if proj is None else proj(model.text).double()
    xu = model.user_embedding.weight.double().numpy()
    xi = (model.item_embedding.weight.double() + text).numpy()
    item_layers = []
    for _ in range(model.num_layers):
        item_layers.append(xi)
        xu, xi = norm @ xi, norm.T @ xu
    d = xi.shape[1]
    parts = AdditiveParts(
        item_taste=model.cached_embeddings()["items"].double().cpu().numpy(),
        taste_scale=float(getattr(model, "taste_scale", 1.0)),
        user_layer0=model.user_embedding.weight.double().numpy(),
        item_layers=np.stack(item_layers) if item_layers else np.zeros((0, n_items, d)),
        user_items=m.tocsr(),
        item_degree=di,
    )
    cache["parts"] = parts
    return parts


def _rsqrt(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    out[x > 0] = 1.0 / np.sqrt(x[x > 0])
    return out


@dataclass
class UserTerms:
    """One user's terms for every item, as the model computes them (``contributions_many``).

    Attributes:
        user: internal user index.
        history: ``[n]`` the user's history items (internal indices, sorted).
        contributions: ``[I, n]`` ``c(u, history[k], i)`` at ``[i, k]``.
        taste: ``[I]`` the taste profile term.
        popularity: ``[I]`` the popularity term.
        scores: ``[I]`` the model's scores.
        layer_sums: ``[L, d]`` per layer, the sum of the history's messages before the user's degree norm.
        messages: ``[L, n, d]`` each history item's message ``m_uj x_j^(l) / sqrt(d_j)``.
        counts: ``[n]`` edge multiplicity of each history item.
    """

    user: int
    history: np.ndarray
    contributions: np.ndarray
    taste: np.ndarray
    popularity: np.ndarray
    scores: np.ndarray
    layer_sums: np.ndarray
    messages: np.ndarray
    counts: np.ndarray

    @property
    def history_term(self) -> np.ndarray:
        """``[I]`` the history sum."""
        return self.contributions.sum(axis=1)


@torch.no_grad()
def user_terms(rec: Recommender, user: int) -> UserTerms:
    """Every item's terms for ``user``, from the model's ``contributions_many``, checked.

    Raises:
        RuntimeError: when the terms do not add up to the model's scores, or the re-propagated
            taste profile does not reproduce the model's (its arithmetic changed in a way this
            module does not know): nothing is explained from numbers the model does not use.
    """
    cache = rec.__dict__.setdefault(_CACHE, {})
    if cache.get("terms") is not None and cache["terms"].user == user:
        return cache["terms"]
    parts = additive_parts(rec)
    model = rec.model
    n_items = parts.item_taste.shape[0]
    out = model.contributions_many(int(user), torch.arange(n_items))
    history = out["history"].cpu().numpy().astype(np.int64)
    contrib = out["contribution"].double().cpu().numpy().reshape(n_items, len(history))
    taste = out["taste profile"].double().cpu().numpy()
    pop = out["popularity"].double().cpu().numpy()
    score = out["score"].double().cpu().numpy()
    row = parts.user_items.getrow(user)
    counts = np.zeros(len(history))
    counts[np.searchsorted(history, row.indices)] = row.data
    dj = parts.item_degree[history]
    messages = counts[None, :, None] * parts.item_layers[:, history, :] * _rsqrt(dj)[None, :, None]
    terms = UserTerms(user, history, contrib, taste, pop, score, messages.sum(axis=1), messages, counts)
    scale = max(1.0, float(np.max(np.abs(score)))) if score.size else 1.0
    gap = float(np.max(np.abs(terms.history_term + taste + pop - score))) if score.size else 0.0
    mine = parts.taste_scale * parts.item_taste @ _user_embedding(parts, user, terms.layer_sums, counts.sum())
    gap_taste = float(np.max(np.abs(mine - taste))) if score.size else 0.0
    if max(gap, gap_taste) > _TOLERANCE * scale:
        raise RuntimeError(
            f"the decomposition of {type(model).__name__} does not reproduce its scores for user {user} "
            f"(largest gap {gap:.3g}, taste re-propagation {gap_taste:.3g}); update engine/explain/additive.py"
        )
    cache["terms"] = terms
    return terms


def _user_embedding(parts: AdditiveParts, user: int, layer_sums: np.ndarray, degree: float) -> np.ndarray:
    """``p_u`` = mean of layer 0 and the propagated layers ``layer_sums[l] / sqrt(degree)`` (0 when no edge is left)."""
    scale = 1.0 / np.sqrt(degree) if degree > 0 else 0.0
    return (parts.user_layer0[user] + scale * layer_sums.sum(axis=0)) / (parts.num_layers + 1)


def _positions(terms: UserTerms, items: np.ndarray) -> np.ndarray:
    """Columns of ``items`` in ``terms.history`` (ValueError for an item not in the history)."""
    items = np.asarray(items, dtype=np.int64)
    k = np.searchsorted(terms.history, items)
    inside = np.minimum(k, max(len(terms.history) - 1, 0))
    if np.any(k >= len(terms.history)) or not np.array_equal(terms.history[inside], items):
        raise ValueError(f"can only remove items of the user's history (got {items.tolist()!r})")
    return k


def edited_scores(rec: Recommender, terms: UserTerms, removed: np.ndarray) -> np.ndarray:
    """Every item's score for ``terms.user`` with the history items ``removed`` (internal indices) taken out.

    The history term exactly, the taste profile re-propagated from the remaining history (see the
    module docstring for what is held fixed), popularity unchanged.
    """
    return prefix_scores(rec, terms, removed)[-1]


def prefix_scores(rec: Recommender, terms: UserTerms, order: np.ndarray, *, start: int = 0) -> np.ndarray:
    """``[len(order) + 1 - start, I]``: the scores with the first ``n`` items of ``order`` removed,
    for ``n = start .. len(order)``.

    Row ``n = 0`` is the unedited history (the model's own scores up to round-off).
    """
    parts = additive_parts(rec)
    k = _positions(terms, order)
    head, tail = k[:start], k[start:]
    base_c = terms.contributions[:, head].sum(axis=1)
    removed_c = base_c[None, :] + np.vstack([np.zeros((1, len(base_c))), np.cumsum(terms.contributions[:, tail].T, 0)])
    base_m = terms.messages[:, head, :].sum(axis=1, keepdims=True)
    steps = np.concatenate([base_m, terms.messages[:, tail, :]], axis=1)
    sums = terms.layer_sums[:, None, :] - np.cumsum(steps, axis=1)
    degree = terms.counts.sum() - terms.counts[head].sum() - np.concatenate([[0.0], np.cumsum(terms.counts[tail])])
    # rows whose degree is 0 (every interaction removed) keep layer 0 only
    scale = np.where(degree > 0.5, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0)
    p = (parts.user_layer0[terms.user][None, :] + scale[:, None] * sums.sum(axis=0)) / (parts.num_layers + 1)
    taste = parts.taste_scale * (p @ parts.item_taste.T)
    return terms.history_term[None, :] - removed_c + taste + terms.popularity[None, :]


def what_if_scores(
    rec: Recommender,
    terms: UserTerms,
    removed: np.ndarray,
    added: np.ndarray,
    *,
    added_features: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Every item's score for ``terms.user`` with ``removed`` history items taken out and ``added`` put in.

    Removals as in :func:`edited_scores`. Each added item ``j`` adds its exact history term
    ``a(j, i) w S[j, i]`` to every item ``i``, with ``w`` the model's interaction weight for
    ``added_features`` (``(w_rating, w_recency)``; default a top rating, made now), and its
    LightGCN message to the taste profile (its degree and the relation held fixed, as for removals).

    Args:
        rec: the recommender of a decomposable model.
        terms: :func:`user_terms` of the user.
        removed: internal indices of history items to remove.
        added: internal indices of items to add (not in the history).
        added_features: the added interactions' ``(w_rating, w_recency)`` (default: ``(1.0, 1.0)``).
    """
    removed = np.asarray(removed, dtype=np.int64)
    added = np.asarray(added, dtype=np.int64)
    parts, model = additive_parts(rec), rec.model
    k = _positions(terms, removed)
    history = terms.history_term - terms.contributions[:, k].sum(axis=1)
    sums = terms.layer_sums - terms.messages[:, k, :].sum(axis=1)  # the removals' messages out
    degree = terms.counts.sum() - terms.counts[k].sum()
    if len(added):
        with torch.no_grad():
            w = float(model.edge_weight(torch.tensor([added_features], dtype=torch.float32))[0])
            history = history + w * model.relation_from(torch.from_numpy(added)).double().sum(0).numpy()
        rsqrt = _rsqrt(np.maximum(parts.item_degree[added], 1.0))
        sums = sums + (parts.item_layers[:, added, :] * rsqrt[None, :, None]).sum(axis=1)  # the additions' in
        degree = degree + len(added)
    taste = parts.taste_scale * (parts.item_taste @ _user_embedding(parts, terms.user, sums, degree))
    return history + taste + terms.popularity


def leave_one_out(rec: Recommender, terms: UserTerms, item: int) -> np.ndarray:
    """``[n]`` the exact drop of ``item``'s score when each history item alone is removed.

    The history part of each drop is the contribution itself; the rest is the taste profile's change.
    """
    return removal_drops(rec, terms, np.array([item]))[:, 0]


def removal_drops(rec: Recommender, terms: UserTerms, items: np.ndarray) -> np.ndarray:
    """``[n, len(items)]`` the exact drop of each of ``items``' scores when each history item alone is removed.

    :func:`leave_one_out` for several items at once: the contribution, plus the change of the
    taste profile re-propagated without that one interaction (as :func:`edited_scores`).
    """
    items = np.asarray(items, dtype=np.int64)
    parts = additive_parts(rec)
    sums = terms.layer_sums.sum(axis=0)[None, :] - terms.messages.sum(axis=0)  # [n, d]
    degree = terms.counts.sum() - terms.counts
    scale = np.where(degree > 0.5, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0)
    p = (parts.user_layer0[terms.user][None, :] + scale[:, None] * sums) / (parts.num_layers + 1)
    taste = parts.taste_scale * (p @ parts.item_taste[items].T)  # [n, len(items)]
    return terms.contributions[items].T + (terms.taste[items][None, :] - taste)


def integrated_gradients(rec: Recommender, terms: UserTerms, item: int) -> np.ndarray:
    r"""``[n]`` Integrated Gradients of ``item``'s score over the presence ``m_j`` of each past interaction.

    The score as a function of a mask ``m`` on the history (``m = 1``: as trained; ``m = 0``: no
    history, the baseline) is ``sum_j m_j c_j + gamma q . (x0 + A(m) / sqrt(D(m))) / (L + 1) + b``,
    with ``A(m) = sum_j m_j T_j`` (``T_j`` the interaction's LightGCN messages summed over layers)
    and ``D(m) = sum_j m_j n_j`` (the user's degree). On the straight path ``m = alpha 1`` the
    gradient is ``alpha^(-1/2)`` times a constant, so the path integral is exact in closed form:

    .. math::
        IG_j = c_j + \frac{2 \gamma}{L + 1}
               \Big( \frac{q \cdot T_j}{\sqrt{D}} - \frac{n_j \, q \cdot A}{2 D^{3/2}} \Big).

    The attributions sum to ``score(m = 1) - score(m = 0)`` (completeness), with no Riemann error.
    """
    parts = additive_parts(rec)
    q = parts.item_taste[item]
    t = terms.messages.sum(axis=0) @ q  # [n]: q . T_j
    a = float(terms.layer_sums.sum(axis=0) @ q)
    d = float(terms.counts.sum())
    if d <= 0:
        return terms.contributions[item].copy()
    taste = 2.0 * parts.taste_scale / (parts.num_layers + 1) * (t / np.sqrt(d) - terms.counts * a / (2.0 * d**1.5))
    return terms.contributions[item] + taste


def attention_of(rec: Recommender, history: np.ndarray, item: int) -> np.ndarray:
    """``[n]`` the model's attention ``a(j, item)`` for each history item ``j`` (a weight, not a contribution)."""
    model = rec.model
    if not all(hasattr(model, a) for a in ("keys", "queries", "att_bias")):
        return np.full(len(history), np.nan)
    with torch.no_grad():
        k = model.keys()[torch.as_tensor(history, dtype=torch.long)]
        g = k @ model.queries()[item] + model.att_bias
        return torch.exp(g.clamp(max=30.0)).double().cpu().numpy()


def interaction_weights(rec: Recommender, user: int, history: np.ndarray) -> np.ndarray:
    """``[n]`` the weight ``w_uj`` of each history interaction (its rating and recency), NaN if the model has none."""
    if not hasattr(rec.model, "weighted_history"):
        return np.full(len(history), np.nan)
    with torch.no_grad():
        w = rec.model.weighted_history(torch.tensor([int(user)]))[0].double().cpu().numpy()
    return w[np.asarray(history, dtype=np.int64)]
