"""``explain-eval``: faithfulness of the explanations over a sample of users, and ground truth.

For each sampled user with training history, the top-1 item is explained and its
computation subgraph's interactions are ordered by IG, raw attention, attention rollout
and at random; deletion/insertion curves and AUCs are averaged over users, and the
attention orders are compared with IG. On the demo world the planted triggers give
ground truth: when a user's top-10 contains a trigger target B and the user's training
history holds its trigger A, an explanation should rank the history edge to A among the
top 3 of the user's history. That is a test of the model as much as of the explanation:
the ``leave-one-out`` row (the exact score drop of removing each history interaction) says
whether the model relies on A at all, which bounds what a *faithful* attribution can
show, and :func:`trigger_reliance` re-ranks the whole catalog without A to say whether A
is what keeps B in the list.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.data.synthetic import generate_demo_world
from engine.explain.additive import attention_of, edited_scores, is_decomposable, prefix_scores, user_terms
from engine.explain.additive import leave_one_out as exact_leave_one_out
from engine.explain.attention import interaction_sum, pair_attention, rollout
from engine.explain.attribution import edge_attributions
from engine.explain.counterfactual import Edit, find_counterfactual_exact, layer_states, rank_rows, ranks, rescore_user
from engine.explain.explainer import require_attention_model
from engine.explain.faithfulness import (
    ORDER_METHODS,
    agreement,
    curve_auc,
    deletion_insertion,
    interaction_orders,
    leave_one_out,
)
from engine.explain.scorer import SubgraphScorer
from engine.explain.subgraph import extract_subgraph, graph_index, input_parts, single_thread
from engine.models.registry import ATTENTION_GRAPH, DECOMPOSITION
from engine.recommender import Recommender

log = logging.getLogger(__name__)


@dataclass
class ExplainEval:
    """Aggregated faithfulness of explanations on one dataset.

    Attributes:
        dataset: dataset name.
        n_pairs: (user, top-1 item) pairs evaluated.
        summary: per method (``ig``, ``attention``, ``rollout``, ``random``): mean deletion
            and insertion AUC (score units and normalised), margin over random, mean rank
            change after removing the top-K interactions, share of pairs where the method
            beats random on deletion.
        curves: mean ``drop``, ``gain`` and ``rank_change`` per method, curve and k.
        agreement: mean top-5 overlap and Spearman of attention and rollout with IG (over
            all subgraph interactions, and over the user's history), and of every method with
            the exact leave-one-out score drop of each history interaction (the ground truth
            an attribution approximates).
        ground_truth: per method: planted-trigger cases, hits (trigger in the top-3 of the
            user's history), hit rate, and the chance rate (mean ``3 / history size``);
            None when the dataset has no planted truth.
        per_pair: one row per pair and method (AUCs).
        seconds: wall time.
        k_max: the largest k of the curves.
        trigger_reliance: whether the *model* relies on the planted triggers
            (:func:`trigger_reliance`); None when the dataset has no planted truth.
    """

    dataset: str
    n_pairs: int
    summary: pd.DataFrame
    curves: pd.DataFrame
    agreement: pd.DataFrame
    ground_truth: pd.DataFrame | None
    per_pair: pd.DataFrame
    seconds: float
    k_max: int
    trigger_reliance: dict[str, Any] | None = None
    kind: str = ATTENTION_GRAPH
    counterfactual: dict[str, Any] | None = None
    attention_verdict: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "dataset": self.dataset,
            "kind": self.kind,
            "pairs": self.n_pairs,
            "k_max": self.k_max,
            "seconds": round(self.seconds, 2),
            "summary": self.summary.to_dict("records"),
            "agreement": self.agreement.to_dict("records"),
            "ground_truth": None if self.ground_truth is None else self.ground_truth.to_dict("records"),
            "trigger_reliance": self.trigger_reliance,
            "curves": self.curves.to_dict("records"),
        }
        if self.kind == DECOMPOSITION:
            out["counterfactual"] = self.counterfactual
            out["attention_verdict"] = self.attention_verdict
        return out


def _pair_state(rec: Recommender, u: int, item: int, steps: int) -> tuple[Any, Any, Any]:
    sub = extract_subgraph(graph_index(rec), u, item, len(rec.model.convs))
    scorer = SubgraphScorer(rec.model, sub, input_parts(rec))
    with torch.no_grad():
        _, atts = scorer.forward(return_attention=True)
    att = rollout(sub, atts)
    ig = edge_attributions(scorer, method="ig", steps=steps)
    return scorer, att, ig


def evaluate_explanations(
    rec: Recommender,
    *,
    users: int = 100,
    k_max: int = 10,
    steps: int = 16,
    seed: int = 0,
    triggers: pd.DataFrame | None = None,
) -> ExplainEval:
    """Faithfulness of explanations over a random sample of users (and ground truth if given).

    Args:
        rec: the recommender (``gat``, or a model whose score decomposes exactly:
            :func:`evaluate_decomposition`).
        users: users to sample for the curves, and ground-truth cases to collect (default: 100).
        k_max: largest k of the deletion/insertion curves (default: 10).
        steps: IG integration points (default: 16).
        seed: sampling seed (default: 0).
        triggers: planted ``trigger_item_id`` -> ``target_item_id`` pairs (the demo world's)
            (default: None, no ground-truth check).

    Returns:
        An :class:`ExplainEval`.
    """
    if users < 1:
        raise ValueError(f"users must be >= 1 (got {users!r})")
    if is_decomposable(rec):
        with single_thread():
            return evaluate_decomposition(rec, users=users, k_max=k_max, seed=seed, triggers=triggers)
    require_attention_model(rec)
    with single_thread():
        return _evaluate(rec, users=users, k_max=k_max, steps=steps, seed=seed, triggers=triggers)


def _evaluate(
    rec: Recommender, *, users: int, k_max: int, steps: int, seed: int, triggers: pd.DataFrame | None
) -> ExplainEval:
    t0 = time.perf_counter()
    rec.model.eval()
    rng = np.random.default_rng(seed)
    states = layer_states(rec)
    final = states.final
    nu = rec.idmap.n_users
    items_emb = final[nu:]
    with_history = np.flatnonzero(np.diff(rec._train_csr.indptr) > 0)
    sample = rng.choice(with_history, size=min(users, with_history.size), replace=False)

    rows, curve_frames, agree = [], [], []
    for n, u in enumerate(sample):
        hist = rec.train_items(int(u))
        r = ranks((items_emb @ final[u]).numpy(), hist)
        item = int(np.flatnonzero(r == 1)[0])
        scorer, att, ig = _pair_state(rec, int(u), item, steps)
        sub = scorer.sub
        if sub.num_interactions == 0:
            continue
        orders = interaction_orders(scorer, ig.values, att, rng=rng)
        curves = deletion_insertion(scorer, orders, item_embeddings=items_emb, excluded=hist, k_max=k_max)
        auc = curve_auc(curves).assign(user=int(u), item=item, interactions=sub.num_interactions)
        rows.append(auc)
        curve_frames.append(curves.frame.assign(user=int(u)))
        ig_i = interaction_sum(ig.values.astype(np.float64), sub)
        values = {
            "ig": ig_i,
            "attention": pair_attention(att, sub),
            "rollout": interaction_sum((att.flow_user + att.flow_item).astype(np.float64), sub),
        }
        own = np.flatnonzero(sub.interactions[:, 0] == sub.user)
        loo = leave_one_out(scorer, own)
        for name, v in values.items():
            if name != "ig":
                agree.append({"method": name, "scope": "subgraph vs IG", **agreement(v, ig_i)})
                agree.append({"method": name, "scope": "history vs IG", **agreement(v[own], ig_i[own])})
            agree.append({"method": name, "scope": "history vs leave-one-out", **agreement(v[own], loo)})
        if (n + 1) % 10 == 0:
            log.info("explain-eval: %d/%d pairs (%.0fs)", n + 1, len(sample), time.perf_counter() - t0)

    per_pair = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    curves_all = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    summary = _summary(per_pair)
    mean_curves = (
        curves_all.groupby(["method", "curve", "k"], sort=False)[["drop", "gain", "rank_change"]].mean().reset_index()
        if len(curves_all)
        else curves_all
    )
    agree_frame = _agreement_frame(agree)
    gt = reliance = None
    if triggers is not None:
        gt = ground_truth_hits(rec, triggers, cases=users, steps=steps, seed=seed)
        reliance = trigger_reliance(rec, triggers, cases=users, seed=seed)
    return ExplainEval(
        dataset=rec.dataset.name,
        n_pairs=int(per_pair["user"].nunique()) if len(per_pair) else 0,
        summary=summary,
        curves=mean_curves,
        agreement=agree_frame,
        ground_truth=gt,
        per_pair=per_pair,
        seconds=time.perf_counter() - t0,
        k_max=k_max,
        trigger_reliance=reliance,
    )


def _agreement_frame(agree: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean top-overlap and Spearman per (method, scope)."""
    if not agree:
        return pd.DataFrame(columns=["method", "scope", "top_overlap", "spearman"])
    means = pd.DataFrame(agree).groupby(["method", "scope"], sort=False)[["top_overlap", "spearman"]].mean()
    return means.reset_index()


def _summary(per_pair: pd.DataFrame) -> pd.DataFrame:
    if per_pair.empty:
        return pd.DataFrame()
    cols = ["deletion_auc", "insertion_auc", "deletion_auc_norm", "insertion_auc_norm", "rank_change_at_k"]
    summary = per_pair.groupby("method", sort=False)[cols].mean().reset_index()
    rand = per_pair[per_pair["method"] == "random"].set_index("user")["deletion_auc"]
    summary["deletion_margin_vs_random"] = summary["deletion_auc"] - float(rand.mean()) if len(rand) else np.nan
    ins_rand = per_pair[per_pair["method"] == "random"]["insertion_auc"].mean()
    summary["insertion_margin_vs_random"] = summary["insertion_auc"] - ins_rand
    beats = []
    for method in summary["method"]:
        mine = per_pair[per_pair["method"] == method].set_index("user")["deletion_auc"]
        joined = mine.to_frame("m").join(rand.rename("r"), how="inner")
        beats.append(float((joined["m"] > joined["r"]).mean()) if len(joined) else np.nan)
    summary["beats_random"] = beats
    order = {m: k for k, m in enumerate(ORDER_METHODS)}
    return summary.sort_values("method", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def demo_triggers(rec: Recommender) -> pd.DataFrame | None:
    """The planted triggers of the demo world the recommender was trained on (None for other data)."""
    if rec.dataset.name != "demo":
        return None
    data = rec.prep.config.data
    world = generate_demo_world(data.seed, scale=data.scale)
    if world.dataset.content_hash() != rec.dataset.content_hash():
        log.warning("the demo world regenerated from seed %s does not match the dataset; no ground truth", data.seed)
        return None
    return world.triggers


def trigger_cases(
    rec: Recommender, triggers: pd.DataFrame, *, cases: int = 100, top_k: int = 10, seed: int = 0
) -> list[tuple[int, int, int]]:
    """Ground-truth cases: ``(user, target B, trigger A)`` as internal indices.

    A case is a user whose top-``top_k`` list contains a trigger target B while the user's
    training history holds its trigger A (the best-ranked such B per user); users are
    visited in a random order (``seed``) until ``cases`` are found.
    """
    idmap = rec.idmap
    known = triggers[triggers["trigger_item_id"].map(idmap.has_item) & triggers["target_item_id"].map(idmap.has_item)]
    trig_of = {
        idmap.item_index(b): idmap.item_index(a)
        for a, b in zip(known["trigger_item_id"], known["target_item_id"], strict=True)
    }
    states = layer_states(rec)
    final, nu = states.final, idmap.n_users
    rng = np.random.default_rng(seed)
    found: list[tuple[int, int, int]] = []
    for u in rng.permutation(nu):
        if len(found) >= cases:
            break
        hist = rec.train_items(int(u))
        if hist.size == 0:
            continue
        r = ranks((final[nu:] @ final[u]).numpy(), hist)
        top_items = np.argsort(np.where(r > 0, r, np.iinfo(np.int64).max))[:top_k]
        hist_set = set(hist.tolist())
        for b in top_items:
            a = trig_of.get(int(b))
            if a is not None and a in hist_set:
                found.append((int(u), int(b), a))
                break
    return found


def ground_truth_hits(
    rec: Recommender,
    triggers: pd.DataFrame,
    *,
    cases: int = 100,
    top_k: int = 10,
    top: int = 3,
    steps: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """How often a planted trigger is among the top-``top`` attributed history edges.

    Cases come from :func:`trigger_cases`.

    Args:
        rec: the recommender.
        triggers: ``trigger_item_id``, ``target_item_id``.
        cases: most cases to check (default: 100).
        top_k: list length searched for targets (default: 10).
        top: how high the trigger must rank among the history edges (default: 3).
        steps: IG integration points (default: 16).
        seed: order in which users are visited (default: 0).

    Returns:
        One row per method (``ig``, ``attention``, ``rollout``, and ``leave-one-out``: the
        exact score drop of removing each history interaction, i.e. whether the *model*
        relies on the trigger at all): ``cases``, ``hits``, ``hit_rate``, ``chance`` (mean
        ``top / history size``: what a random order gets), ``top``, ``median_rank`` (median
        position of the trigger in the method's order of the user's history edges, 1 = first)
        and ``history`` (median number of history edges).
    """
    nu = rec.idmap.n_users
    found = trigger_cases(rec, triggers, cases=cases, top_k=top_k, seed=seed)
    methods = ("ig", "attention", "rollout", "leave-one-out")
    hits = dict.fromkeys(methods, 0)
    positions: dict[str, list[int]] = {m: [] for m in methods}
    chance, sizes = [], []
    for u, b, a in found:
        scorer, att, ig = _pair_state(rec, u, b, steps)
        sub = scorer.sub
        own = np.flatnonzero(sub.interactions[:, 0] == sub.user)
        items = sub.interactions[own, 1] - nu
        values = {
            "ig": interaction_sum(ig.values.astype(np.float64), sub)[own],
            "attention": pair_attention(att, sub)[own],
            "rollout": interaction_sum((att.flow_user + att.flow_item).astype(np.float64), sub)[own],
            "leave-one-out": leave_one_out(scorer, own),
        }
        for name, v in values.items():
            order = items[np.argsort(-np.nan_to_num(v, nan=-np.inf), kind="stable")]
            where = np.flatnonzero(order == a)
            pos = int(where[0]) + 1 if where.size else len(order) + 1
            positions[name].append(pos)
            hits[name] += int(pos <= top)
        chance.append(min(1.0, top / max(len(own), 1)))
        sizes.append(len(own))
    n = len(found)
    return pd.DataFrame(
        {
            "method": list(hits),
            "cases": n,
            "hits": list(hits.values()),
            "hit_rate": [h / n if n else np.nan for h in hits.values()],
            "chance": float(np.mean(chance)) if chance else np.nan,
            "top": top,
            "median_rank": [float(np.median(positions[m])) if n else np.nan for m in methods],
            "history": float(np.median(sizes)) if sizes else np.nan,
        }
    )


def trigger_reliance(
    rec: Recommender, triggers: pd.DataFrame, *, cases: int = 100, top_k: int = 10, seed: int = 0
) -> dict[str, Any]:
    """Does the model rely on the trigger to rank its target? Exact re-ranking without it.

    For each case of :func:`trigger_cases` the user's whole ranking is re-scored on the
    training graph with one history interaction removed
    (:func:`~engine.explain.counterfactual.rescore_user`; the user's other training items
    stay excluded), for three choices of that interaction: the trigger A; the *strongest*
    input, the interaction whose removal lowers B's score the most (exact leave-one-out on
    the computation subgraph); and a random other history item (the control).

    Returns:
        ``cases``, ``top_k``, and per removal (``trigger``, ``strongest``, ``random``):
        ``left_top_k`` (share of cases where B leaves the top-``top_k``),
        ``rank_change`` (mean new rank minus old rank; positive = B fell) and
        ``score_drop`` (mean drop of B's score).
    """
    nu = rec.idmap.n_users
    found = trigger_cases(rec, triggers, cases=cases, top_k=top_k, seed=seed)
    rng = np.random.default_rng(seed)
    index, parts = graph_index(rec), input_parts(rec)
    rows: dict[str, list[tuple[bool, int, float]]] = {"trigger": [], "strongest": [], "random": []}
    for u, b, a in found:
        hist = rec.train_items(u)
        before, _ = rescore_user(rec, Edit(u))
        rank0 = int(ranks(before, hist)[b])
        sub = extract_subgraph(index, u, b, len(rec.model.convs))
        own = np.flatnonzero(sub.interactions[:, 0] == sub.user)
        with torch.no_grad():
            loo = leave_one_out(SubgraphScorer(rec.model, sub, parts), own)
        others = hist[hist != a]
        choice = {
            "trigger": a,
            "strongest": int(sub.interactions[own[int(np.argmax(loo))], 1] - nu),
            "random": int(rng.choice(others)) if others.size else a,
        }
        for name, item in choice.items():
            after, _ = rescore_user(rec, Edit(u, remove=np.array([item], dtype=np.int64)))
            rank1 = int(ranks(after, hist)[b])
            rows[name].append((rank1 > top_k, rank1 - rank0, float(before[b] - after[b])))
    out: dict[str, Any] = {"cases": len(found), "top_k": top_k}
    for name, r in rows.items():
        arr = np.array(r, dtype=np.float64).reshape(-1, 3)
        mean = arr.mean(0) if len(arr) else np.full(3, np.nan)
        out[name] = {"left_top_k": float(mean[0]), "rank_change": float(mean[1]), "score_drop": float(mean[2])}
    return out


# -- models whose score decomposes exactly ---------------------------------------------------------
# Attention is an explanation only if deleting by it beats random on deletion for this share of pairs.
ATTENTION_BAR = 0.8
RANDOM_ORDERS = 5  # random deletion orders averaged per pair


def evaluate_decomposition(
    rec: Recommender, *, users: int = 100, k_max: int = 10, seed: int = 0, triggers: pd.DataFrame | None = None
) -> ExplainEval:
    """``explain-eval`` for a model whose score decomposes exactly (:mod:`~engine.explain.additive`).

    For each sampled user with history, the top-1 item: deletion curves (remove the top-k history
    items, k = 1..``k_max``, re-score exactly: history term exact, taste profile re-propagated) for
    three orders: the exact contributions (``exact``), the model's attention ``a(j, i)`` as a graph
    view would draw it (``attention``) and random orders (mean of 5); the verified counterfactual's
    size (smallest greedy set that drops the item out of the top 10); agreement of attention and of
    exact leave-one-out with the contributions. On the demo world, the planted triggers: is the
    trigger among the top-3 contributions, and does exact leave-one-out agree.

    Returns:
        An :class:`ExplainEval` with ``kind = "exact-decomposition"``, ``counterfactual`` (size
        distribution) and ``attention_verdict`` (does deleting by attention beat random on
        deletion for at least 80 % of pairs; if not, it is not an explanation).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    with_history = np.flatnonzero(np.diff(rec._train_csr.indptr) > 0)
    sample = rng.choice(with_history, size=min(users, with_history.size), replace=False)
    rows, curves, agree, sizes = [], [], [], []
    for n, u in enumerate(sample):
        u = int(u)
        terms = user_terms(rec, u)
        excluded = rec.train_items(u)
        r = ranks(terms.scores, excluded)
        if not (r == 1).any():
            continue
        item = int(np.flatnonzero(r == 1)[0])
        contrib = terms.contributions[item]
        att = attention_of(rec, terms.history, item)
        orders = {
            "exact": terms.history[np.argsort(-contrib, kind="stable")],
            "attention": terms.history[np.argsort(-att, kind="stable")],
        }
        randoms = [rng.permutation(terms.history) for _ in range(RANDOM_ORDERS)]
        span = float(terms.scores[item] - edited_scores(rec, terms, terms.history)[item])
        km = min(k_max, len(terms.history))

        results = {name: _deletion(rec, terms, order[:km], item, excluded) for name, order in orders.items()}
        rand = [_deletion(rec, terms, order[:km], item, excluded) for order in randoms]
        results["random"] = (np.mean([d for d, _ in rand], axis=0), float(np.mean([x for _, x in rand])))
        for name, (drop, rank_after) in results.items():
            rows.append(
                {
                    "method": name,
                    "user": u,
                    "item": item,
                    "interactions": len(terms.history),
                    "deletion_auc": float(drop.mean()),
                    "deletion_auc_norm": float(drop.mean() / span) if span > 0 else np.nan,
                    "rank_change_at_k": float(rank_after - 1),
                }
            )
            curves.extend(
                {"method": name, "curve": "deletion", "k": k + 1, "drop": float(d)} for k, d in enumerate(drop)
            )
        loo = exact_leave_one_out(rec, terms, item)
        agree.append({"method": "attention", "scope": "history vs exact", **agreement(att, contrib)})
        agree.append({"method": "leave-one-out", "scope": "history vs exact", **agreement(loo, contrib)})
        cf = find_counterfactual_exact(rec, u, item, k=10)
        sizes.append(cf.size if cf.found else None)
        if (n + 1) % 10 == 0:
            log.info("explain-eval: %d/%d pairs (%.0fs)", n + 1, len(sample), time.perf_counter() - t0)
    per_pair = pd.DataFrame(rows)
    summary = _decomposition_summary(per_pair)
    mean_curves = (
        pd.DataFrame(curves).groupby(["method", "curve", "k"], sort=False)["drop"].mean().reset_index()
        if curves
        else pd.DataFrame(columns=["method", "curve", "k", "drop"])
    )
    agree_frame = _agreement_frame(agree)
    gt = reliance = None
    if triggers is not None:
        gt, reliance = decomposition_ground_truth(rec, triggers, cases=users, seed=seed)
    beats = summary.set_index("method")["beats_random"].get("attention", np.nan) if len(summary) else np.nan
    return ExplainEval(
        dataset=rec.dataset.name,
        n_pairs=int(per_pair["user"].nunique()) if len(per_pair) else 0,
        summary=summary,
        curves=mean_curves,
        agreement=agree_frame,
        ground_truth=gt,
        per_pair=per_pair,
        seconds=time.perf_counter() - t0,
        k_max=k_max,
        trigger_reliance=reliance,
        kind=DECOMPOSITION,
        counterfactual=counterfactual_sizes(sizes, k=10),
        attention_verdict=attention_verdict(float(beats) if beats == beats else None),
    )


def _deletion(rec: Recommender, terms: Any, order: np.ndarray, item: int, excluded: np.ndarray) -> tuple[Any, int]:
    """Score drops of ``item`` after removing the first 1..len(order) items, and its rank after all of them."""
    rows = prefix_scores(rec, terms, order, start=1)
    return terms.scores[item] - rows[:, item], int(rank_rows(rows[-1:], item, excluded)[0])


def _decomposition_summary(per_pair: pd.DataFrame) -> pd.DataFrame:
    if per_pair.empty:
        return pd.DataFrame()
    cols = ["deletion_auc", "deletion_auc_norm", "rank_change_at_k"]
    summary = per_pair.groupby("method", sort=False)[cols].mean().reset_index()
    rand = per_pair[per_pair["method"] == "random"].set_index("user")["deletion_auc"]
    summary["deletion_margin_vs_random"] = summary["deletion_auc"] - float(rand.mean())
    beats = []
    for method in summary["method"]:
        mine = per_pair[per_pair["method"] == method].set_index("user")["deletion_auc"]
        joined = mine.to_frame("m").join(rand.rename("r"), how="inner")
        beats.append(float((joined["m"] > joined["r"]).mean()) if method != "random" and len(joined) else np.nan)
    summary["beats_random"] = beats
    return summary


def counterfactual_sizes(sizes: list[int | None], *, k: int = 10) -> dict[str, Any]:
    """The distribution of counterfactual sizes (None = not found by removing every supporting item)."""
    found = np.array([s for s in sizes if s is not None], dtype=np.float64)
    n = len(sizes)
    # The median over all pairs, counting "not found" as larger than any set (None when they are half or more).
    allv = np.array([np.inf if s is None else s for s in sizes], dtype=np.float64)
    median_all = float(np.median(allv)) if n else np.nan
    return {
        "pairs": n,
        "k": k,
        "found": int(found.size),
        "not_found": float(1 - found.size / n) if n else np.nan,
        "median": median_all if np.isfinite(median_all) else None,
        "median_found": float(np.median(found)) if found.size else None,
        "q25": float(np.percentile(allv, 25)) if n and np.isfinite(np.percentile(allv, 25)) else None,
        "q75": float(np.percentile(allv, 75)) if n and np.isfinite(np.percentile(allv, 75)) else None,
        "q90": float(np.percentile(allv, 90)) if n and np.isfinite(np.percentile(allv, 90)) else None,
        "at_most_10": float(np.mean([s is not None and s <= 10 for s in sizes])) if n else np.nan,
        "sizes": [None if s is None else int(s) for s in sizes],
    }


def attention_verdict(beats_random: float | None) -> dict[str, Any]:
    """Whether the model's attention may be presented as an explanation (deletion beats random often enough)."""
    ok = beats_random is not None and beats_random >= ATTENTION_BAR
    if beats_random is None:
        text = "attention could not be measured; do not present it as an explanation"
    elif ok:
        text = (
            f"attention a(j, i) beats random on deletion for {beats_random:.0%} of pairs (bar {ATTENTION_BAR:.0%}): "
            "it may be drawn as 'attention', though the exact contributions remain the explanation"
        )
    else:
        text = (
            f"attention a(j, i) beats random on deletion for only {beats_random:.0%} of pairs (bar "
            f"{ATTENTION_BAR:.0%}): it is NOT an explanation; draw the exact contributions instead"
        )
    return {"beats_random": beats_random, "threshold": ATTENTION_BAR, "is_explanation": ok, "text": text}


def decomposition_ground_truth(
    rec: Recommender, triggers: pd.DataFrame, *, cases: int = 100, top_k: int = 10, top: int = 3, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Planted triggers on a decomposable model: is the trigger A among the top-``top`` contributions to B?

    Cases are users whose top-``top_k`` holds a trigger target B while their history holds its
    trigger A (users in a random order, the best-ranked such B per user). Rows: ``exact`` (the
    contributions), ``leave-one-out`` (the exact score drop of removing each history item alone,
    taste profile re-propagated: for the additive history part it *is* the contribution) and
    ``attention`` (``a(j, B)``). The reliance dict re-ranks the catalog without A, without the
    largest contributor, and without a random other item.
    """
    idmap = rec.idmap
    known = triggers[triggers["trigger_item_id"].map(idmap.has_item) & triggers["target_item_id"].map(idmap.has_item)]
    trig_of: dict[int, set[int]] = {}
    for a, b in zip(known["trigger_item_id"], known["target_item_id"], strict=True):
        trig_of.setdefault(idmap.item_index(b), set()).add(idmap.item_index(a))
    rng = np.random.default_rng(seed)
    methods = ("exact", "leave-one-out", "attention")
    positions: dict[str, list[int]] = {m: [] for m in methods}
    chance, sizes, agree_top = [], [], []
    reliance: dict[str, list[tuple[bool, int]]] = {"trigger": [], "strongest": [], "random": []}
    for u in rng.permutation(idmap.n_users):
        if len(sizes) >= cases:
            break
        hist = rec.train_items(int(u))
        if hist.size == 0:
            continue
        terms = user_terms(rec, int(u))
        r = ranks(terms.scores, hist)
        top_items = np.argsort(np.where(r > 0, r, np.iinfo(np.int64).max), kind="stable")[:top_k]
        hist_set = set(hist.tolist())
        case = next(((int(b), a) for b in top_items for a in trig_of.get(int(b), ()) if a in hist_set), None)
        if case is None:
            continue
        b, a = case
        values = {
            "exact": terms.contributions[b],
            "leave-one-out": exact_leave_one_out(rec, terms, b),
            "attention": attention_of(rec, terms.history, b),
        }
        for name, v in values.items():
            order = terms.history[np.argsort(-v, kind="stable")]
            positions[name].append(int(np.flatnonzero(order == a)[0]) + 1)
        agree_top.append((positions["exact"][-1] <= top) == (positions["leave-one-out"][-1] <= top))
        chance.append(min(1.0, top / len(hist)))
        sizes.append(len(hist))
        others = terms.history[terms.history != a]
        choice = {
            "trigger": a,
            "strongest": int(terms.history[int(np.argmax(terms.contributions[b]))]),
            "random": int(rng.choice(others)) if others.size else a,
        }
        for name, j in choice.items():
            after = int(ranks(edited_scores(rec, terms, np.array([j])), hist)[b])
            reliance[name].append((after > top_k, after - int(r[b])))
    n = len(sizes)
    gt = pd.DataFrame(
        {
            "method": list(methods),
            "cases": n,
            "hits": [sum(p <= top for p in positions[m]) for m in methods],
            "hit_rate": [float(np.mean([p <= top for p in positions[m]])) if n else np.nan for m in methods],
            "chance": float(np.mean(chance)) if chance else np.nan,
            "top": top,
            "median_rank": [float(np.median(positions[m])) if n else np.nan for m in methods],
            "history": float(np.median(sizes)) if sizes else np.nan,
        }
    )
    out: dict[str, Any] = {"cases": n, "top_k": top_k, "loo_agrees_top": float(np.mean(agree_top)) if n else None}
    for name, rows in reliance.items():
        arr = np.array(rows, dtype=np.float64).reshape(-1, 2)
        mean = arr.mean(0) if len(arr) else np.full(2, np.nan)
        out[name] = {"left_top_k": float(mean[0]), "rank_change": float(mean[1])}
    return gt, out
