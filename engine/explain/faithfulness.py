"""Faithfulness metrics for ranking explanations (free functions, PyG-style).

PyG's ``fidelity`` refuses regression outputs, and a recommender's output is a score
whose meaning is its rank; so we measure directly. Interactions of the computation
subgraph are ordered by an explanation (IG attribution, raw attention, attention
rollout, or at random) and

* **deletion**: the top-k are *removed* (the model's own removal: they leave the softmax
  and the degrees), k = 1..K; a faithful order makes the score drop fast;
* **insertion**: *only* the top-k are kept; a faithful order recovers the score fast.

AUC here is the mean over k = 1..K of the score drop (deletion) or of the recovered score
above the all-removed baseline (insertion), in score units, and also normalised by the
pair's ``score - baseline``. Rank changes hold the other items' embeddings fixed (only
the user's and the item's embeddings are recomputed): the exact, whole-ranking check is
the counterfactual's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from engine.explain.attention import AttentionResult, interaction_sum, pair_attention
from engine.explain.scorer import SubgraphScorer

ORDER_METHODS = ("ig", "attention", "rollout", "random")


def interaction_orders(
    scorer: SubgraphScorer,
    attribution: np.ndarray,
    attention: AttentionResult,
    *,
    rng: np.random.Generator,
    methods: tuple[str, ...] = ORDER_METHODS,
) -> dict[str, np.ndarray]:
    """Interaction ids of the subgraph, most important first, per explanation method.

    Args:
        scorer: the pair's scorer (for its subgraph).
        attribution: [E] per-directed-edge attribution (summed per interaction).
        attention: the pair's :class:`AttentionResult`.
        rng: source of the random order.
        methods: which orders to build (default: :data:`ORDER_METHODS`).

    Returns:
        ``{method: order}``; ``attention`` uses the raw softmax attention (mean over layers
        and heads, on the direction towards the pair: :func:`pair_attention`), ``rollout``
        the attention flow into the user's and the item's embeddings.
    """
    sub = scorer.sub
    values = {
        "ig": interaction_sum(attribution.astype(np.float64), sub),
        "attention": pair_attention(attention, sub),
        "rollout": interaction_sum((attention.flow_user + attention.flow_item).astype(np.float64), sub),
    }
    out = {}
    for m in methods:
        if m == "random":
            out[m] = rng.permutation(sub.num_interactions)
        elif m in values:
            out[m] = np.argsort(-np.nan_to_num(values[m], nan=-np.inf), kind="stable")
        else:
            raise ValueError(f"unknown order method {m!r}; expected one of {ORDER_METHODS}")
    return out


@dataclass
class Curves:
    """Deletion and insertion curves of one pair.

    Attributes:
        frame: ``method``, ``curve`` (``deletion``/``insertion``), ``k``, ``score``,
            ``drop`` (score - curve score), ``gain`` (curve score - baseline), ``rank``,
            ``rank_change`` (rank - original rank; positive = fell).
        score: the pair's score; ``baseline``: with every subgraph interaction removed.
        rank: the item's original rank (others' embeddings fixed).
    """

    frame: pd.DataFrame
    score: float
    baseline: float
    rank: int


def deletion_insertion(
    scorer: SubgraphScorer,
    orders: dict[str, np.ndarray],
    *,
    item_embeddings: torch.Tensor,
    excluded: np.ndarray,
    k_max: int = 10,
) -> Curves:
    """Score and rank of the pair as the top-k interactions of each order are removed or kept alone.

    Args:
        scorer: the pair's scorer.
        orders: ``{method: interaction ids, most important first}``.
        item_embeddings: [n_items, d] final item embeddings of the full graph (held fixed
            for the other items when ranking).
        excluded: internal item indices excluded from ranking (the user's training items).
        k_max: largest k (default: 10).

    Returns:
        :class:`Curves`.
    """
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1 (got {k_max!r})")
    sub = scorer.sub
    p = sub.num_interactions
    keeps, rows = [torch.ones(p), torch.zeros(p)], []
    for method, order in orders.items():
        for k in range(1, min(k_max, p) + 1):
            keeps.append(sub.interaction_keep(order[:k]))
            rows.append((method, "deletion", k))
            keeps.append(1.0 - sub.interaction_keep(order[:k]))
            rows.append((method, "insertion", k))
    stacked = torch.stack(keeps)
    # Deletions change a few interactions: recompute only what they touch. Insertions keep a
    # few: run on the kept edges alone. Both equal a forward with the removal mask.
    deletion = torch.tensor([True, False] + [r[1] == "deletion" for r in rows])
    scores = torch.empty(len(keeps))
    eu = torch.empty(len(keeps), scorer.first_layer[0].size(1))
    s_d, eu_d, _ = scorer.removal_embeddings(stacked[deletion])
    scores[deletion], eu[deletion] = s_d, eu_d
    s_i, eu_i, _ = scorer.kept_embeddings(stacked[~deletion])
    scores[~deletion], eu[~deletion] = s_i, eu_i
    item_embeddings = item_embeddings.float()
    others = eu @ item_embeddings.T  # [M, n_items]
    others[:, torch.from_numpy(np.asarray(excluded, dtype=np.int64))] = -torch.inf
    others[:, sub.item] = -torch.inf
    rank = 1 + (others > scores.unsqueeze(1)).sum(1)
    score, baseline, rank0 = float(scores[0]), float(scores[1]), int(rank[0])
    frame = pd.DataFrame(rows, columns=["method", "curve", "k"])
    frame["score"] = scores[2:].numpy().astype(float)
    frame["drop"] = score - frame["score"]
    frame["gain"] = frame["score"] - baseline
    frame["rank"] = rank[2:].numpy()
    frame["rank_change"] = frame["rank"] - rank0
    return Curves(frame, score, baseline, rank0)


def curve_auc(curves: Curves) -> pd.DataFrame:
    """Per method: deletion AUC (mean drop), insertion AUC (mean gain), both also normalised.

    Normalisation divides by ``score - baseline`` (how much the whole subgraph adds), so
    pairs with large and small scores weigh alike; it is NaN when that is not positive.
    """
    f = curves.frame
    span = curves.score - curves.baseline
    out = []
    for method, g in f.groupby("method", sort=False):
        d, i = g[g["curve"] == "deletion"], g[g["curve"] == "insertion"]
        out.append(
            {
                "method": method,
                "deletion_auc": float(d["drop"].mean()),
                "insertion_auc": float(i["gain"].mean()),
                "deletion_auc_norm": float(d["drop"].mean() / span) if span > 0 else np.nan,
                "insertion_auc_norm": float(i["gain"].mean() / span) if span > 0 else np.nan,
                "rank_change_at_k": float(d["rank_change"].iloc[-1]) if len(d) else np.nan,
            }
        )
    return pd.DataFrame(out)


def agreement(a: np.ndarray, b: np.ndarray, *, top: int = 5) -> dict[str, float]:
    """How much two importance vectors over the same interactions agree.

    Returns:
        ``top_overlap``: |top-``top`` of a ∩ top-``top`` of b| / top; ``spearman``: rank
        correlation (NaN if either is constant).
    """
    from scipy.stats import spearmanr

    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=-np.inf)
    b = np.nan_to_num(np.asarray(b, dtype=np.float64), nan=-np.inf)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    n = min(top, a.size)
    if n == 0:
        return {"top_overlap": np.nan, "spearman": np.nan}
    ta = set(np.argsort(-a, kind="stable")[:n].tolist())
    tb = set(np.argsort(-b, kind="stable")[:n].tolist())
    finite = np.isfinite(a) & np.isfinite(b)
    rho = np.nan
    if finite.sum() > 2 and np.ptp(a[finite]) > 0 and np.ptp(b[finite]) > 0:
        rho = float(spearmanr(a[finite], b[finite]).statistic)
    return {"top_overlap": len(ta & tb) / n, "spearman": rho}


def leave_one_out(scorer: SubgraphScorer, interactions: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Exact score drop when each given interaction alone is removed (the model's own removal).

    The ground truth that attributions approximate; cheap on the subgraph because each
    removal only recomputes what it touches (:meth:`SubgraphScorer.removal_embeddings`).

    Args:
        scorer: the pair's scorer.
        interactions: interaction ids of the subgraph.
        chunk: removals per batch (default: 256).

    Returns:
        ``score - score without interaction p`` for each ``p`` (positive: it supported the score).
    """
    sub = scorer.sub
    ids = np.asarray(interactions, dtype=np.int64)
    base = float(scorer.removal_embeddings(torch.ones(1, sub.num_interactions))[0][0])
    out = []
    for k in range(0, ids.size, chunk):
        part = ids[k : k + chunk]
        keeps = torch.ones(part.size, sub.num_interactions)
        keeps[torch.arange(part.size), torch.from_numpy(part)] = 0.0
        out.append(base - scorer.removal_embeddings(keeps)[0].numpy())
    return np.concatenate(out) if out else np.zeros(0)
