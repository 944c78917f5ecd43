"""Ground truth for ``explain-eval``: the demo world's planted triggers.

When a user's top-10 contains a trigger target B and the user's training history holds its
trigger A, an explanation should rank the history edge to A among the top 3 of the user's
history. That is a test of the model as much as of the explanation: the ``leave-one-out`` row
(the exact score drop of removing each history interaction) says whether the model relies on A
at all, which bounds what a *faithful* attribution can show, and :func:`trigger_reliance`
re-ranks the whole catalog without A to say whether A is what keeps B in the list.
:func:`decomposition_ground_truth` is the same check for a model whose score decomposes exactly.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.data.synthetic import generate_demo_world
from engine.explain.additive import attention_of, edited_scores, user_terms
from engine.explain.additive import leave_one_out as exact_leave_one_out
from engine.explain.attention import interaction_sum, pair_attention
from engine.explain.counterfactual import Edit, layer_states, ranks, rescore_user
from engine.explain.evaluate_common import pair_state
from engine.explain.faithfulness import leave_one_out
from engine.explain.scorer import SubgraphScorer
from engine.explain.subgraph import extract_subgraph, graph_index, input_parts
from engine.recommender import Recommender

log = logging.getLogger("engine.explain.evaluate")


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
        scorer, att, ig = pair_state(rec, u, b, steps)
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
