"""Re-rankers that run after scoring: trade a little relevance for diversity, long tail or calibration.

Every re-ranker takes a candidate list per user (``candidates [n_users, C]``
internal item indices, ``scores [n_users, C]``, higher is better) and returns
``[n_users, k]`` item indices, best first, padded with ``-1`` when a user has
fewer than ``k`` valid candidates. A candidate is invalid when its index is
negative or its score is not finite.

Shared conventions, so that one strength knob means the same thing everywhere:

* scores are min-max normalised per user over the valid candidates, to
  ``[0, 1]``, before they are mixed with anything, so the strength is unit-free;
* the strength is the weight of the **non-relevance** objective, so strength 0
  always returns the plain top-k by score, exactly;
* greedy re-rankers run one step for all users at once, so the Python loop is
  ``k`` steps long whatever the number of users.

CLI specs such as ``"mmr:0.3"`` are parsed by :func:`parse_rerank_spec` and run
by :func:`apply_rerank`. The provider-aware :func:`provider_rerank` (spec
``"provider:0.3"``, parsed by :func:`parse_audit_rerank`) also needs to know
which providers are over-exposed, which the audit derives from the plain lists.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

RERANKERS = ("none", "mmr", "pop", "calibrated")
PROVIDER = "provider"
# What the audit accepts: RERANKERS' plus the provider-aware re-ranker (it needs provider flags).
AUDIT_RERANKERS = (*RERANKERS[1:], PROVIDER)
_UNIT_STRENGTH = ("mmr", "calibrated")  # strengths that are mixing weights in [0, 1]
# Gathered candidate features are processed in user chunks of at most this many
# floats, so the memory stays bounded (e.g. 384-d text vectors x 100 candidates).
_CHUNK_FLOATS = 2_000_000


def top_k(candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Plain top-``k`` by score; ties keep candidate order.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` scores (non-finite = invalid).
        k: list length.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    cands, _, valid = _prepare(candidates, scores, k)
    return _pad(np.where(valid, cands, -1)[:, :k], k)


def mmr(
    candidates: np.ndarray,
    scores: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    lam: float,
) -> np.ndarray:
    r"""Maximal Marginal Relevance re-ranking (Carbonell & Goldstein, SIGIR 1998).

    Items are picked one at a time. Each step takes the candidate that
    maximises

    .. math:: (1 - \lambda)\,\mathrm{rel}(i) - \lambda \max_{j \in S} \cos(v_i, v_j),

    where ``rel`` is the per-user min-max normalised score and ``S`` the items
    picked so far. In the paper, λ weights relevance. Here λ weights
    **diversity**, so ``"mmr:0.3"`` means diversity strength 0.3, and ``lam=0``
    returns the plain top-k.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        item_vectors: ``[n_items, D]`` item representations compared by cosine
            similarity: embeddings, or multi-hot categories (then cosine is the
            Ochiai overlap of the category sets). All-zero rows have similarity
            0 with everything.
        k: list length.
        lam: diversity strength in ``[0, 1]``.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    _check_unit(lam, "lam")
    cands, rel, valid = _prepare(candidates, scores, k)
    if lam == 0:
        return _pad(np.where(valid, cands, -1)[:, :k], k)
    vectors = _dense(item_vectors, "item_vectors")
    _check_items(cands, valid, len(vectors), "item_vectors")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    steps = min(k, cands.shape[1])
    out = np.full((len(cands), k), -1, dtype=np.int64)
    for rows in _chunks(len(cands), cands.shape[1] * unit.shape[1]):
        c, r, avail = cands[rows], rel[rows], valid[rows].copy()
        vec = unit[np.where(avail, c, 0)]  # [u, C, D]; padding rows are masked by avail
        users = np.arange(len(c))
        max_sim = np.zeros(c.shape, dtype=np.float32)
        for step in range(steps):
            objective = (1.0 - lam) * r - lam * max_sim if step else r
            pick, ok = _pick(objective, avail)
            out[rows, step] = np.where(ok, c[users, pick], -1)
            avail[users, pick] = False
            sim = np.einsum("ucd,ud->uc", vec, vec[users, pick])
            max_sim = np.maximum(max_sim, sim) if step else sim
    return out


def popularity_penalty(
    candidates: np.ndarray,
    scores: np.ndarray,
    item_popularity: np.ndarray,
    k: int,
    strength: float,
) -> np.ndarray:
    r"""Penalise popular items: rank by ``rel(i) - strength * p(i)``.

    ``p(i) = log(1 + pop_i) / log(1 + max pop)`` is the catalog's
    log-popularity scaled to ``[0, 1]``. The log stops a few blockbusters from
    taking up the whole scale. ``rel`` is the per-user min-max normalised
    score. Ranking by ``rel + strength * (1 - p)``, a long-tail boost, gives
    the same order, so this one function covers both views. The items do not
    interact, so this is a sort, not a greedy loop. Raising ``strength`` never
    lowers the number of tail items in a list: each item that drops out is
    replaced by a less popular one.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        item_popularity: ``[n_items]`` non-negative popularity, e.g. training interaction counts.
        k: list length.
        strength: penalty weight, ``>= 0``. At 1 a full popularity range costs
            as much as the full relevance range.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    _check_strength(strength, "strength")
    cands, rel, valid = _prepare(candidates, scores, k)
    if strength == 0:
        return _pad(np.where(valid, cands, -1)[:, :k], k)
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1 or (pop < 0).any() or not np.isfinite(pop).all():
        raise ValueError(f"item_popularity must be a finite non-negative 1-D array (got shape {pop.shape})")
    _check_items(cands, valid, len(pop), "item_popularity")
    top = np.log1p(pop.max())
    p = np.log1p(pop) / top if top > 0 else np.zeros_like(pop)
    adjusted = np.where(valid, rel - strength * p[np.where(valid, cands, 0)], -np.inf)
    order = np.argsort(-adjusted, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(cands, order, axis=1)
    ok = np.take_along_axis(valid, order, axis=1)
    return _pad(np.where(ok, picked, -1), k)


def calibrated(
    candidates: np.ndarray,
    scores: np.ndarray,
    item_categories: np.ndarray,
    history_category_dist: np.ndarray,
    k: int,
    lam: float,
    *,
    alpha: float = 0.01,
) -> np.ndarray:
    r"""Calibrated re-ranking (Steck, "Calibrated Recommendations", RecSys 2018).

    Greedily builds each list ``I`` to maximise

    .. math:: (1 - \lambda) \sum_{i \in I} \mathrm{rel}(i) - \lambda\,\mathrm{KL}(p \,\|\, \tilde q(I)),

    where ``p`` is the user's category distribution in their history and
    ``q(I)`` the category distribution of the list. Each item spreads a mass of
    1 evenly over its categories. Items have equal weight whatever their rank,
    and ``q`` is renormalised to sum to 1. ``q~ = (1 - alpha) q + alpha p``
    keeps the KL finite (Steck's smoothing). A step adds the item with the
    best marginal gain, which is Steck's greedy algorithm. ``lam=0`` returns
    the plain top-k. Users with an all-zero history row are ranked by
    relevance alone.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        item_categories: ``[n_items, G]`` multi-hot (or weighted) item categories.
        history_category_dist: ``[n_users, G]`` each user's category
            distribution in their history. Rows are renormalised to sum to 1.
        k: list length.
        lam: calibration strength in ``[0, 1]``.
        alpha: smoothing of ``q`` towards ``p`` (default: 0.01, Steck's value).

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    _check_unit(lam, "lam")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (got {alpha!r})")
    cands, rel, valid = _prepare(candidates, scores, k)
    if lam == 0:
        return _pad(np.where(valid, cands, -1)[:, :k], k)
    item_dist = _item_distributions(item_categories)
    _check_items(cands, valid, len(item_dist), "item_categories")
    target = _user_distributions(history_category_dist, len(cands), item_dist.shape[1])
    steps = min(k, cands.shape[1])
    out = np.full((len(cands), k), -1, dtype=np.int64)
    for rows in _chunks(len(cands), cands.shape[1] * item_dist.shape[1]):
        c, r, avail = cands[rows], rel[rows], valid[rows].copy()
        p = target[rows].astype(np.float32)  # [u, G]
        dist = item_dist[np.where(avail, c, 0)].astype(np.float32)  # [u, C, G]
        users = np.arange(len(c))
        chosen = np.zeros_like(p)  # category mass of the items picked so far
        for step in range(steps):
            kl = _kl_if_added(p, chosen, dist, alpha)
            pick, ok = _pick((1.0 - lam) * r - lam * kl, avail)
            out[rows, step] = np.where(ok, c[users, pick], -1)
            avail[users, pick] = False
            chosen += np.where(ok[:, None], dist[users, pick], 0.0)
    return out


def calibration_kl(
    topk: np.ndarray,
    item_categories: np.ndarray,
    history_category_dist: np.ndarray,
    *,
    alpha: float = 0.01,
) -> np.ndarray:
    """Steck's miscalibration ``KL(p || q~)`` of each user's list, as :func:`calibrated` optimises it.

    Args:
        topk: ``[n_users, K]`` item indices (``-1`` = padding).
        item_categories: ``[n_items, G]`` multi-hot item categories.
        history_category_dist: ``[n_users, G]`` history category distributions.
        alpha: smoothing (default: 0.01).

    Returns:
        ``[n_users]`` KL divergences. Users with no history distribution get 0.
    """
    topk = np.asarray(topk, dtype=np.int64)
    item_dist = _item_distributions(item_categories)
    target = _user_distributions(history_category_dist, len(topk), item_dist.shape[1])
    mass = (item_dist[np.maximum(topk, 0)] * (topk >= 0)[..., None]).sum(axis=1)
    return _kl(target, mass, alpha)


def provider_rerank(
    candidates: np.ndarray, scores: np.ndarray, over_exposed: np.ndarray, k: int, strength: float
) -> np.ndarray:
    """Provider-aware re-ranking: rank by ``rel(i) - strength * over_exposed(i)``.

    ``rel`` is the per-user min-max normalised score (this module's
    convention) and ``over_exposed(i)`` is 1 for items of providers that the
    plain lists expose beyond their catalog share. At strength 0 this is the
    plain top-k; at strength ``s`` an item of an over-exposed provider keeps
    its place only if it beats the best alternative by more than ``s`` of the
    user's relevance range, so exposure moves towards under-exposed
    providers, a deterministic post-processing in the spirit of exposure-fair
    ranking (Singh & Joachims, KDD 2018) without its per-user optimisation.

    Implemented with :func:`popularity_penalty`, whose penalty
    ``log(1 + x) / log(1 + max x)`` is exactly ``x`` for a 0/1 vector.

    Args:
        candidates: ``[n_users, C]`` item indices (``-1`` = padding).
        scores: ``[n_users, C]`` relevance scores.
        over_exposed: ``[n_items]`` 0/1 indicator.
        k: list length.
        strength: penalty weight, ``>= 0``.

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    flags = np.asarray(over_exposed, dtype=np.float64)
    if flags.ndim != 1 or not np.isin(flags, (0.0, 1.0)).all():
        raise ValueError(f"over_exposed must be a 1-D 0/1 indicator (got shape {flags.shape})")
    return popularity_penalty(candidates, scores, flags, k, strength)


def parse_rerank_spec(spec: str) -> tuple[str, float]:
    """Parse a CLI re-ranking spec such as ``"mmr:0.3"``, ``"pop:0.5"``, ``"calibrated:0.4"`` or ``"none"``.

    Args:
        spec: ``"name:strength"``, name one of ``mmr``, ``pop``, ``calibrated``
            (case-insensitive), or ``"none"``. ``mmr`` and ``calibrated`` take
            strengths in ``[0, 1]``; ``pop`` takes any strength ``>= 0``.

    Returns:
        ``(name, strength)``; ``("none", 0.0)`` for ``"none"``.
    """
    if not isinstance(spec, str):
        raise ValueError(f"re-rank spec must be a string like 'mmr:0.3' (got {spec!r})")
    name, sep, value = spec.strip().lower().partition(":")
    name = name.strip()
    usage = f"expected 'name:strength' with name one of {list(RERANKERS[1:])} (e.g. 'mmr:0.3'), or 'none'"
    if name == "none":
        if sep and value.strip() not in ("", "0", "0.0"):
            raise ValueError(f"invalid re-rank spec {spec!r}: 'none' takes no strength")
        return "none", 0.0
    if name not in RERANKERS:
        raise ValueError(f"invalid re-rank spec {spec!r}: unknown re-ranker {name!r}; {usage}")
    if not sep or not value.strip():
        raise ValueError(f"invalid re-rank spec {spec!r}: missing strength; {usage}")
    try:
        strength = float(value)
    except ValueError:
        bad = value.strip()
        raise ValueError(f"invalid re-rank spec {spec!r}: strength {bad!r} is not a number") from None
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"invalid re-rank spec {spec!r}: strength must be finite and >= 0")
    if name in _UNIT_STRENGTH and strength > 1:
        raise ValueError(f"invalid re-rank spec {spec!r}: {name} strength must lie in [0, 1]")
    return name, strength


def parse_audit_rerank(spec: str) -> tuple[str, float]:
    """Parse a re-ranking spec of the audit: :func:`parse_rerank_spec`'s plus ``"provider:S"``.

    ``provider`` (strength ``>= 0``) is :func:`provider_rerank`. It is not in
    :data:`RERANKERS` because it needs per-item provider flags that
    :func:`apply_rerank` does not take; :mod:`engine.fairness.audit` derives
    them from its plain lists.

    Returns:
        ``(name, strength)``.
    """
    name, sep, value = str(spec).strip().lower().partition(":")
    name = name.strip()
    if isinstance(spec, str) and name not in (*RERANKERS, PROVIDER):
        raise ValueError(
            f"invalid re-rank spec {spec!r}: unknown re-ranker {name!r}; expected 'name:strength' with name "
            f"one of {list(AUDIT_RERANKERS)} (e.g. 'provider:0.3'), or 'none'"
        )
    if name != PROVIDER:
        return parse_rerank_spec(spec)
    if not sep or not value.strip():
        raise ValueError(f"invalid re-rank spec {spec!r}: missing strength, e.g. 'provider:0.3'")
    try:
        strength = float(value)
    except ValueError:
        raise ValueError(f"invalid re-rank spec {spec!r}: strength {value.strip()!r} is not a number") from None
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"invalid re-rank spec {spec!r}: strength must be finite and >= 0")
    return PROVIDER, strength


def apply_rerank(
    spec: str,
    candidates: np.ndarray,
    scores: np.ndarray,
    *,
    k: int,
    item_vectors: np.ndarray | None = None,
    item_popularity: np.ndarray | None = None,
    item_categories: np.ndarray | None = None,
    history_category_dist: np.ndarray | None = None,
) -> np.ndarray:
    """Run the re-ranker named by a CLI spec (see :func:`parse_rerank_spec`).

    Args:
        spec: e.g. ``"mmr:0.3"``, ``"pop:0.5"``, ``"calibrated:0.4"``, ``"none"``.
        candidates: ``[n_users, C]`` item indices.
        scores: ``[n_users, C]`` scores.
        k: list length.
        item_vectors: needed by ``mmr`` (default: None).
        item_popularity: needed by ``pop`` (default: None).
        item_categories: needed by ``calibrated`` (default: None).
        history_category_dist: needed by ``calibrated`` (default: None).

    Returns:
        ``[n_users, k]`` item indices, ``-1``-padded.
    """
    name, strength = parse_rerank_spec(spec)

    def need(value, arg: str):
        if value is None:
            raise ValueError(f"re-rank spec {spec!r} needs {arg}, which was not given")
        return value

    if name == "mmr":
        return mmr(candidates, scores, need(item_vectors, "item_vectors"), k, strength)
    if name == "pop":
        return popularity_penalty(candidates, scores, need(item_popularity, "item_popularity"), k, strength)
    if name == "calibrated":
        cats = need(item_categories, "item_categories")
        hist = need(history_category_dist, "history_category_dist")
        return calibrated(candidates, scores, cats, hist, k, strength)
    return top_k(candidates, scores, k)


# ---------------------------------------------------------------------- helpers
def _prepare(candidates: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate; sort each row by score (ties keep candidate order); min-max normalise valid scores.

    Returns ``(candidates, rel, valid)``, all ``[n_users, C]`` and sorted best first
    with invalid entries last. ``rel`` is 0 where invalid.
    """
    cands = np.asarray(candidates)
    sc = np.asarray(scores, dtype=np.float64)
    if cands.ndim != 2 or cands.shape != sc.shape:
        raise ValueError(
            f"candidates and scores must be 2-D arrays of the same shape (got {cands.shape} and {sc.shape})"
        )
    if cands.size and not np.issubdtype(cands.dtype, np.integer):
        raise ValueError(f"candidates must hold integer item indices (got dtype {cands.dtype})")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (got {k!r})")
    cands = cands.astype(np.int64, copy=False)
    valid = (cands >= 0) & np.isfinite(sc)
    _check_duplicates(cands, valid)
    key = np.where(valid, sc, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    cands = np.take_along_axis(cands, order, axis=1)
    key = np.take_along_axis(key, order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    lo = np.min(np.where(valid, key, np.inf), axis=1, keepdims=True)
    hi = np.max(np.where(valid, key, -np.inf), axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore"):
        rel = np.where(valid & (span > 0), (key - lo) / np.where(span > 0, span, 1.0), 0.0)
    return cands, rel, valid


def _check_duplicates(cands: np.ndarray, valid: np.ndarray) -> None:
    """A candidate listed twice could be recommended twice; reject it and name the user row."""
    marked = np.where(valid, cands, -1 - np.arange(cands.shape[1])[None, :])  # padding never collides
    srt = np.sort(marked, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise ValueError(f"candidates row {row} lists the same item more than once")


def _check_items(cands: np.ndarray, valid: np.ndarray, n_items: int, what: str) -> None:
    if valid.any() and cands[valid].max() >= n_items:
        top = int(cands[valid].max())
        raise ValueError(f"candidates hold item index {top} but {what} has {n_items} rows")


def _check_unit(value: float, name: str) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (got {value!r})")


def _check_strength(value: float, name: str) -> None:
    if not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{name} must be finite and >= 0 (got {value!r})")


def _pick(objective: np.ndarray, avail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best available column per row, and whether the row had any available column."""
    masked = np.where(avail, objective, -np.inf)
    pick = np.argmax(masked, axis=1)
    return pick, avail.any(axis=1)


def _pad(topk: np.ndarray, k: int) -> np.ndarray:
    if topk.shape[1] >= k:
        return topk[:, :k]
    return np.hstack([topk, np.full((len(topk), k - topk.shape[1]), -1, dtype=topk.dtype)])


def _chunks(n_users: int, floats_per_user: int):
    step = max(1, _CHUNK_FLOATS // max(1, floats_per_user))
    for start in range(0, n_users, step):
        yield slice(start, min(start + step, n_users))


def _dense(matrix, name: str) -> np.ndarray:
    arr = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [n_items, D] array (got shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    return arr


def _item_distributions(item_categories) -> np.ndarray:
    """Each item's category distribution: its row scaled to sum 1 (all-zero rows stay 0)."""
    cats = _dense(item_categories, "item_categories")
    if (cats < 0).any():
        raise ValueError("item_categories must be non-negative")
    total = cats.sum(axis=1, keepdims=True)
    return cats / np.where(total > 0, total, 1.0)


def _user_distributions(history_category_dist, n_users: int, n_categories: int) -> np.ndarray:
    p = _dense(history_category_dist, "history_category_dist")
    if p.shape != (n_users, n_categories):
        raise ValueError(
            f"history_category_dist must have shape {(n_users, n_categories)} "
            f"(one row per user, one column per category; got {p.shape})"
        )
    if (p < 0).any():
        raise ValueError("history_category_dist must be non-negative")
    total = p.sum(axis=1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def _kl_if_added(p: np.ndarray, chosen: np.ndarray, dist: np.ndarray, alpha: float) -> np.ndarray:
    """``[u, C]`` KL of each user's list if each candidate were added; same value as :func:`_kl`.

    The hot loop of :func:`calibrated`. It works in float32 and in place on
    one ``[u, C, G]`` buffer. ``KL = sum p log p - sum p log q~``, and the
    first term is a per-user constant. A 1e-30 floor inside the log makes
    ``p == 0`` terms ``0 * finite = 0`` without masking.
    """
    total = chosen.sum(axis=1)[:, None] + dist.sum(axis=2)  # [u, C] mass of list + candidate
    scale = np.where(total > 0, (1.0 - alpha) / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)
    q = dist + chosen[:, None, :]
    q *= scale[:, :, None]
    q += (alpha * p + 1e-30)[:, None, :]
    np.log(q, out=q)
    cross = np.einsum("ug,ucg->uc", p, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    return plogp[:, None] - cross


def _kl(p: np.ndarray, mass: np.ndarray, alpha: float) -> np.ndarray:
    """``KL(p || (1-alpha) q + alpha p)`` along the last axis, with ``q = mass / mass.sum()``.

    Terms with ``p == 0`` contribute 0; ``q~ >= alpha * p > 0`` elsewhere, so the
    result is finite. An all-zero ``p`` gives 0.
    """
    total = mass.sum(axis=-1, keepdims=True)
    q = mass / np.where(total > 0, total, 1.0)
    q_smooth = (1.0 - alpha) * q + alpha * p
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(p > 0, q_smooth, 1.0)), 0.0)
    return terms.sum(axis=-1)
