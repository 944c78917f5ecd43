"""Beyond-accuracy metrics of top-K lists: coverage, concentration, popularity bias, diversity.

All functions take ``topk: int [n_users, K]`` internal item indices (best
first; ``-1`` pads short lists and is ignored) and are vectorised: a whole
ml-100k audit (943 users, K=10) runs in milliseconds. Per-user quantities
(ARP, APLT, novelty, intra-list diversity, calibration, serendipity) are
exposed as ``*_per_user`` functions so they can be disaggregated by group; the
scalar functions are their means over users, so both views agree. The metric
registry (:mod:`engine.evaluation.metrics`) names, labels and defines each of
them once; :mod:`engine.evaluation.compute` evaluates every registered metric.
The long tail is :func:`engine.evaluation.popularity.long_tail` throughout.

References (each function cites the one it follows):

* RecBole ``recbole.evaluator.metrics``: ItemCoverage, AveragePopularity,
  GiniIndex, ShannonEntropy, TailPercentage.
* Elliot ``elliot.evaluation.metrics``: ARP, APLT, PopREO, PopRSP.
* Abdollahpouri, Burke, Mobasher (2019), "Managing Popularity Bias in
  Recommender Systems with Personalized Re-ranking" (APLT); Zhu, Wang,
  Caverlee (2020), "Measuring and Mitigating Item Under-Recommendation Bias in
  Personalized Ranking Systems" (RSP, REO).
* Microsoft Recommenders ``recommenders.evaluation.python_evaluation``:
  novelty, catalog / distributional coverage.
* Ge, Delgado-Battenfeld, Jannach (2010), "Beyond accuracy: evaluating
  recommender systems by coverage and serendipity" (serendipity).
* Steck (2018), "Calibrated Recommendations" (calibration KL).
* Ziegler et al. (2005) / Smyth & McClave (2001): intra-list diversity.
* PyG ``torch_geometric.metrics``: LinkPredCoverage, LinkPredDiversity,
  LinkPredPersonalization, LinkPredAveragePopularity (cross-checked in tests).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from engine.evaluation.lists import (
    binary_rows,
    check_popularity,
    check_topk,
    dense_categories,
    exposure_counts,
    gather,
    hit_mask,
    list_mean,
    n_items_of,
    nanmean,
    pair_mean,
)
from engine.evaluation.popularity import long_tail

# --------------------------------------------------------------------------- catalog-level


def catalog_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalog recommended to at least one user.

    RecBole ``ItemCoverage`` and PyG ``LinkPredCoverage``: distinct recommended
    items / ``n_items``. (Microsoft Recommenders' ``catalog_coverage`` divides
    by the distinct items of the *training* data instead.)
    """
    return float((exposure_counts(topk, n_items) > 0).sum() / n_items)


def distributional_coverage(topk: np.ndarray, n_items: int, *, base: float = 2.0) -> float:
    """Shannon entropy of item exposure across all lists, in bits by default.

    Microsoft Recommenders ``distributional_coverage``:
    ``-sum_i p(i) log2 p(i)`` with ``p(i)`` = slots holding item i / all slots.
    0 when every list is the same single item; ``log2(n_items)`` at most.
    (RecBole's ``ShannonEntropy`` uses the natural log and further divides by
    the number of distinct recommended items; pass ``base=np.e`` for the
    former and divide by ``catalog_coverage * n_items`` for the latter.)

    Args:
        topk: ``[n_users, K]`` item indices.
        n_items: catalog size.
        base: logarithm base (default: 2.0, bits).
    """
    c = exposure_counts(topk, n_items).astype(np.float64)
    if c.sum() == 0:
        return float("nan")
    p = c[c > 0] / c.sum()
    return float(-(p * np.log(p)).sum() / np.log(base))


def gini_index(topk: np.ndarray, n_items: int) -> float:
    """Gini coefficient of exposure counts over the *whole* catalog (0 = equal, ->1 = concentrated).

    RecBole ``GiniIndex``: with counts sorted ascending ``c_(1) <= ... <= c_(n)``
    over all ``n = n_items`` items (never-recommended items count as 0),
    ``G = sum_j (2j - n - 1) c_(j) / (n * sum_j c_(j))``.
    """
    c = np.sort(exposure_counts(topk, n_items).astype(np.float64))
    total = c.sum()
    if total == 0:
        return float("nan")
    j = np.arange(1, n_items + 1, dtype=np.float64)
    return float(((2 * j - n_items - 1) * c).sum() / (n_items * total))


def personalization(topk: np.ndarray, n_items: int) -> float:
    """1 - mean overlap between two users' lists, over all pairs of users (exact).

    Microsoft Recommenders / PyG ``LinkPredPersonalization``: for users u != v,
    ``overlap(u, v) = |L_u ∩ L_v| / K`` (the cosine similarity of binary
    vectors with K ones); personalization = 1 - mean over unordered pairs.
    Instead of enumerating pairs, uses ``sum_{u<v} |L_u ∩ L_v| =
    (sum_i c_i^2 - sum_i c_i) / 2`` with ``c_i`` the exposure count of item i,
    so it is exact for any number of users (PyG caps at the first 4096).
    Padding never overlaps; NaN with fewer than two users.
    """
    topk = check_topk(topk, n_items)
    n_users, k = topk.shape
    if n_users < 2:
        return float("nan")
    c = exposure_counts(topk, n_items).astype(np.float64)
    pair_overlap = ((c * c).sum() - c.sum()) / 2.0
    n_pairs = n_users * (n_users - 1) / 2.0
    return float(1.0 - pair_overlap / n_pairs / k)


# --------------------------------------------------------------------------- popularity bias


def arp_per_user(topk: np.ndarray, pop: np.ndarray) -> np.ndarray:
    return list_mean(gather(pop, topk), topk)


def average_recommendation_popularity(topk: np.ndarray, item_popularity: np.ndarray) -> float:
    """ARP: mean over users of the mean training popularity of their list's items.

    Elliot ``ARP`` = RecBole ``AveragePopularity`` = PyG
    ``LinkPredAveragePopularity``: ``(1/|U|) sum_u sum_{i in L_u} phi(i) / |L_u|``
    with ``phi(i)`` the item's training interaction count.
    """
    pop = check_popularity(item_popularity)
    return nanmean(arp_per_user(check_topk(topk, len(pop)), pop))


def aplt_per_user(topk: np.ndarray, tail: np.ndarray) -> np.ndarray:
    return list_mean(gather(tail.astype(np.float64), topk), topk)


def aplt(
    topk: np.ndarray,
    item_popularity: np.ndarray,
    *,
    tail: np.ndarray | None = None,
) -> float:
    """APLT: mean over users of the share of long-tail items in their list.

    Abdollahpouri et al. (2019) / Elliot ``APLT``:
    ``(1/|U|) sum_u |{i in L_u : i in tail}| / |L_u|``. RecBole's
    ``TailPercentage`` is the same average with its own tail definition.

    Args:
        topk: ``[n_users, K]`` item indices.
        item_popularity: training counts ``[n_items]``.
        tail: ``bool [n_items]`` long-tail mask (default: None, the one
            definition of :func:`engine.evaluation.popularity.long_tail`).
    """
    pop = check_popularity(item_popularity)
    return nanmean(aplt_per_user(check_topk(topk, len(pop)), _tail_of(pop, tail)))


def _tail_of(pop: np.ndarray, tail: np.ndarray | None) -> np.ndarray:
    """The given long-tail mask (checked against the catalog), else the one definition."""
    if tail is None:
        return long_tail(pop)
    mask = np.asarray(tail)
    if mask.shape != pop.shape or mask.dtype != bool:
        raise ValueError(f"tail must be a bool mask of shape {pop.shape} (got {mask.dtype} {mask.shape})")
    return mask


def _group_ratio_cv(num: np.ndarray, den: np.ndarray) -> float:
    """std / mean of per-group ratios ``num / den`` (population std, as Elliot's ``np.std``)."""
    if np.any(den <= 0):
        return float("nan")
    p = num / den
    mean = p.mean()
    return float(p.std() / mean) if mean > 0 else float("nan")


def pop_rsp(
    topk: np.ndarray,
    item_popularity: np.ndarray,
    history: sp.spmatrix,
    *,
    tail: np.ndarray | None = None,
) -> float:
    """PopRSP: ranking-based statistical parity between head and tail items (0 = parity).

    Zhu et al. (2020) / Elliot ``PopRSP``: for each group g in {head, tail},
    ``P(R@K | g) = sum_u |L_u ∩ g| / sum_u |g \\ H_u|`` (recommendations of
    the group over the group's items each user could have been recommended,
    ``H_u`` = training items); RSP = std / mean of the two probabilities.

    Args:
        topk: ``[n_users, K]`` item indices.
        item_popularity: training counts ``[n_items]``.
        history: ``[n_users, n_items]`` training items of the same users.
        tail: ``bool [n_items]`` long-tail mask; the head is its complement
            (default: None, :func:`engine.evaluation.popularity.long_tail`).
    """
    pop = check_popularity(item_popularity)
    n_items = len(pop)
    topk = check_topk(topk, n_items)
    hist = binary_rows(history, topk.shape[0], n_items, "history")
    head = ~_tail_of(pop, tail)
    in_head = gather(head, topk).astype(bool)
    valid = topk >= 0
    num = np.array([(valid & in_head).sum(), (valid & ~in_head).sum()], dtype=np.float64)
    hist_head = float((hist @ head.astype(np.float64)).sum())
    hist_all = float(hist.nnz)
    n_users = topk.shape[0]
    den = np.array(
        [n_users * head.sum() - hist_head, n_users * (~head).sum() - (hist_all - hist_head)],
        dtype=np.float64,
    )
    return _group_ratio_cv(num, den)


def pop_reo(
    topk: np.ndarray,
    item_popularity: np.ndarray,
    relevant: sp.spmatrix,
    *,
    tail: np.ndarray | None = None,
) -> float:
    """PopREO: ranking-based equal opportunity between head and tail items (0 = parity).

    Zhu et al. (2020) / Elliot ``PopREO``: for each group g,
    ``P(R@K | g, y=1) = sum_u |L_u ∩ T_u ∩ g| / sum_u |T_u ∩ g|`` with ``T_u``
    the user's relevant (test) items, i.e. the recall of each group; REO =
    std / mean of the two. Users without relevant items contribute nothing.
    Elliot also removes training items from ``T_u``; our splits guarantee
    test and train are disjoint, so that step is a no-op here. The head is
    the complement of ``tail`` (default: None, :func:`engine.evaluation.popularity.long_tail`).
    """
    pop = check_popularity(item_popularity)
    n_items = len(pop)
    topk = check_topk(topk, n_items)
    rel = binary_rows(relevant, topk.shape[0], n_items, "relevant")
    head = ~_tail_of(pop, tail)
    hit = hit_mask(topk, rel)
    in_head = gather(head, topk).astype(bool)
    num = np.array([(hit & in_head).sum(), (hit & ~in_head).sum()], dtype=np.float64)
    rel_head = float((rel @ head.astype(np.float64)).sum())
    den = np.array([rel_head, rel.nnz - rel_head], dtype=np.float64)
    return _group_ratio_cv(num, den)


def _self_information(pop: np.ndarray, n_users: int) -> np.ndarray:
    if n_users <= 0:
        raise ValueError(f"n_users must be positive (got {n_users!r})")
    if (pop > n_users).any():
        raise ValueError(
            f"item_popularity exceeds n_users={n_users} (max {pop.max()!r}); novelty needs the "
            "number of distinct training users per item"
        )
    # Cold items (no training user) are scored as if seen once: finite and maximal.
    return -np.log2(np.maximum(pop, 1.0) / n_users)


def novelty_per_user(topk: np.ndarray, pop: np.ndarray, n_users: int) -> np.ndarray:
    return list_mean(gather(_self_information(pop, n_users), topk), topk)


def novelty(topk: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information of recommended items, in bits.

    Microsoft Recommenders ``novelty`` (Castells et al.): item novelty
    ``-log2(p(i))``, ``p(i) = pop(i) / n_users`` the share of training users
    who interacted with i; averaged per list, then over users (equal to MS's
    average over all slots when lists are full). Items with no training
    interaction are treated as ``pop = 1`` so the value stays finite.

    Args:
        topk: ``[n_users_eval, K]`` item indices.
        item_popularity: distinct training users per item ``[n_items]``.
        n_users: number of users in the training data (not only those evaluated).
    """
    pop = check_popularity(item_popularity)
    return nanmean(novelty_per_user(check_topk(topk, len(pop)), pop, n_users))


# --------------------------------------------------------------------------- diversity


def ild_categories_per_user(topk: np.ndarray, cats: np.ndarray) -> np.ndarray:
    c = cats[np.maximum(topk, 0)]  # [U, K, C]
    inter = np.einsum("ukc,ulc->ukl", c, c)
    size = c.sum(axis=2)
    union = size[:, :, None] + size[:, None, :] - inter
    # Two uncategorised items have identical (empty) sets: similarity 1, distance 0.
    sim = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    return pair_mean(1.0 - sim, topk)


def intra_list_diversity_categories(topk: np.ndarray, item_categories: sp.spmatrix | np.ndarray) -> float:
    """Mean over users of the mean pairwise Jaccard distance between list items' category sets.

    Intra-list diversity (Smyth & McClave 2001; Ziegler et al. 2005) with
    ``dist(i, j) = 1 - |C_i ∩ C_j| / |C_i ∪ C_j|``, averaged over the
    ``K(K-1)/2`` unordered pairs of a list. With exactly one category per item
    this equals PyG ``LinkPredDiversity``.

    Args:
        topk: ``[n_users, K]`` item indices.
        item_categories: multi-hot ``[n_items, C]`` (dense or sparse), or a
            1-D integer category id per item (``-1`` = none).
    """
    cats = dense_categories(item_categories, n_items_of(item_categories))
    return nanmean(ild_categories_per_user(check_topk(topk, cats.shape[0]), cats))


def ild_embeddings_per_user(topk: np.ndarray, emb: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = np.divide(emb, norm, out=np.zeros_like(emb), where=norm > 0)
    e = unit[np.maximum(topk, 0)]  # [U, K, D]
    cos = np.einsum("ukd,uld->ukl", e, e)
    return pair_mean(1.0 - cos, topk)


def intra_list_diversity_embeddings(topk: np.ndarray, item_embeddings: np.ndarray) -> float:
    """Mean over users of the mean pairwise cosine distance ``1 - cos(e_i, e_j)`` within a list.

    Intra-list diversity (Ziegler et al. 2005) on item content embeddings,
    e.g. language-model features of titles; the embedding-based counterpart of
    Microsoft Recommenders' ``diversity`` (which uses co-occurrence or feature
    cosine similarity). Zero vectors have cosine 0 with everything.
    """
    emb = np.asarray(item_embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"item_embeddings must be 2-D [n_items, D] (got shape {emb.shape!r})")
    return nanmean(ild_embeddings_per_user(check_topk(topk, emb.shape[0]), emb))


# --------------------------------------------------------------------------- relevance-aware


def serendipity_per_user(
    topk: np.ndarray, pop: np.ndarray, rel: sp.csr_matrix, hist: sp.csr_matrix | None
) -> np.ndarray:
    k = topk.shape[1]
    n_items = len(pop)
    order = np.argsort(-pop, kind="stable")
    rank_of = np.empty(n_items, dtype=np.int64)
    rank_of[order] = np.arange(n_items)
    r = rank_of[np.maximum(topk, 0)]
    if hist is None or hist.nnz == 0:
        expected = r < k
    else:
        # The baseline's list for u: first k items in popularity order that u has
        # not trained on; looking k + max|H_u| deep always suffices.
        depth = min(n_items, k + int(np.diff(hist.indptr).max()))
        seen = hist[:, order[:depth]].toarray() > 0
        unseen = ~seen
        in_pm = unseen & (np.cumsum(unseen, axis=1) <= k)
        expected = (r < depth) & np.take_along_axis(in_pm, np.minimum(r, depth - 1), axis=1)
    good = hit_mask(topk, rel) & ~expected
    per_user = list_mean(good.astype(np.float64), topk)
    has_rel = np.diff(rel.indptr) > 0
    return np.where(has_rel, per_user, np.nan)


def serendipity(
    topk: np.ndarray,
    item_popularity: np.ndarray,
    relevant: sp.spmatrix,
    history: sp.spmatrix | None = None,
) -> float:
    """Share of list items that are both relevant and unexpected (Ge et al. 2010).

    ``serendipity_u = |{i in L_u : i in T_u and i not in PM_u}| / |L_u|`` where
    ``T_u`` are the user's relevant (test) items and ``PM_u`` the *primitive
    model*'s list: the K most popular training items the user has not trained
    on (the whole top-K by popularity when ``history`` is None). Averaged over
    users with at least one relevant item. Chosen over Microsoft Recommenders'
    similarity-to-history variant because it needs no item similarity and
    directly rewards hits a popularity recommender would not have made.

    Args:
        topk: ``[n_users, K]`` item indices.
        item_popularity: training counts ``[n_items]`` (ties ranked by index).
        relevant: ``[n_users, n_items]`` relevant items, rows aligned with topk.
        history: ``[n_users, n_items]`` items the user has seen, rows aligned
            (default: None). Pass what the ranking excluded (train + valid for
            test lists) so that a most-popular recommender scores ~0 (only
            popularity ties ordered differently can still count).
    """
    pop = check_popularity(item_popularity)
    topk = check_topk(topk, len(pop))
    rel = binary_rows(relevant, topk.shape[0], len(pop), "relevant")
    hist = None if history is None else binary_rows(history, topk.shape[0], len(pop), "history")
    return nanmean(serendipity_per_user(topk, pop, rel, hist))


def calibration_per_user(topk: np.ndarray, cats: np.ndarray, hist: sp.csr_matrix, alpha: float) -> np.ndarray:
    # p(g|i): an item's categories share its unit mass (Steck 2018, eq. 1).
    n_cat = cats.sum(axis=1, keepdims=True)
    p_gi = np.divide(cats, n_cat, out=np.zeros_like(cats), where=n_cat > 0)
    p = np.asarray(hist @ p_gi)
    p_tot = p.sum(axis=1, keepdims=True)
    p = np.divide(p, p_tot, out=np.zeros_like(p), where=p_tot > 0)
    q = np.where((topk >= 0)[:, :, None], p_gi[np.maximum(topk, 0)], 0.0).sum(axis=1)
    q_tot = q.sum(axis=1, keepdims=True)
    q = np.divide(q, q_tot, out=np.zeros_like(q), where=q_tot > 0)
    q_smooth = (1.0 - alpha) * q + alpha * p
    ratio = np.divide(p, q_smooth, out=np.ones_like(p), where=p > 0)
    kl = (p * np.log(ratio)).sum(axis=1)
    # No categorised training item: the user's genre profile is undefined.
    return np.where(p_tot[:, 0] > 0, kl, np.nan)


def calibration_kl(
    topk: np.ndarray,
    item_categories: sp.spmatrix | np.ndarray,
    history: sp.spmatrix,
    *,
    alpha: float = 0.01,
) -> float:
    """Steck (2018) miscalibration: mean over users of ``KL(p || q~)`` in nats (0 = calibrated).

    ``p(g|u)`` is the category distribution of the user's training items and
    ``q(g|u)`` that of the list, each item spreading unit mass evenly over its
    categories (uniform item weights); ``q~ = (1 - alpha) q + alpha p`` keeps
    the divergence finite. Users whose history has no categorised item are
    skipped.

    Args:
        topk: ``[n_users, K]`` item indices.
        item_categories: multi-hot ``[n_items, C]`` or 1-D category ids.
        history: ``[n_users, n_items]`` training items, rows aligned with topk.
        alpha: smoothing weight in [0, 1) (default: 0.01, Steck's value).
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1) (got {alpha!r})")
    cats = dense_categories(item_categories, n_items_of(item_categories))
    topk = check_topk(topk, cats.shape[0])
    hist = binary_rows(history, topk.shape[0], cats.shape[0], "history")
    return nanmean(calibration_per_user(topk, cats, hist, alpha))
