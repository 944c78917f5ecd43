"""``explain-eval``: faithfulness of the explanations over a sample of users, and ground truth.

For each sampled user with training history, the top-1 item is explained and its
computation subgraph's interactions are ordered by IG, raw attention, attention rollout
and at random; deletion/insertion curves and AUCs are averaged over users, and the
attention orders are compared with IG. On the demo world the planted triggers give
ground truth: when a user's top-10 contains a trigger target B and the user's training
history holds its trigger A, a faithful explanation should rank the history edge to A
among the top 3 of the user's history.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.explain.attention import interaction_sum, pair_attention, rollout
from engine.explain.attribution import edge_attributions
from engine.explain.counterfactual import layer_states, ranks
from engine.explain.explainer import require_attention_model
from engine.explain.faithfulness import (
    ORDER_METHODS,
    agreement,
    curve_auc,
    deletion_insertion,
    interaction_orders,
    leave_one_out,
)
from engine.explain.subgraph import SubgraphScorer, extract_subgraph, graph_index, input_parts, single_thread

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "pairs": self.n_pairs,
            "k_max": self.k_max,
            "seconds": round(self.seconds, 2),
            "summary": self.summary.to_dict("records"),
            "agreement": self.agreement.to_dict("records"),
            "ground_truth": None if self.ground_truth is None else self.ground_truth.to_dict("records"),
            "curves": self.curves.to_dict("records"),
        }


def _pair_state(rec: Any, u: int, item: int, steps: int) -> tuple[Any, Any, Any]:
    sub = extract_subgraph(graph_index(rec), u, item, len(rec.model.convs))
    scorer = SubgraphScorer(rec.model, sub, input_parts(rec))
    with torch.no_grad():
        _, atts = scorer.forward(return_attention=True)
    att = rollout(sub, atts)
    ig = edge_attributions(scorer, method="ig", steps=steps)
    return scorer, att, ig


def evaluate_explanations(
    rec: Any,
    *,
    users: int = 100,
    k_max: int = 10,
    steps: int = 16,
    seed: int = 0,
    triggers: pd.DataFrame | None = None,
) -> ExplainEval:
    """Faithfulness of explanations over a random sample of users (and ground truth if given).

    Args:
        rec: the recommender (``gat``).
        users: users to sample for the curves, and ground-truth cases to collect (default: 100).
        k_max: largest k of the deletion/insertion curves (default: 10).
        steps: IG integration points (default: 16).
        seed: sampling seed (default: 0).
        triggers: planted ``trigger_item_id`` -> ``target_item_id`` pairs (the demo world's)
            (default: None, no ground-truth check).

    Returns:
        An :class:`ExplainEval`.
    """
    require_attention_model(rec)
    if users < 1:
        raise ValueError(f"users must be >= 1 (got {users!r})")
    with single_thread():
        return _evaluate(rec, users=users, k_max=k_max, steps=steps, seed=seed, triggers=triggers)


def _evaluate(rec: Any, *, users: int, k_max: int, steps: int, seed: int, triggers: pd.DataFrame | None) -> ExplainEval:
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
    agree_frame = (
        pd.DataFrame(agree).groupby(["method", "scope"], sort=False)[["top_overlap", "spearman"]].mean().reset_index()
        if agree
        else pd.DataFrame(columns=["method", "scope", "top_overlap", "spearman"])
    )
    gt = None
    if triggers is not None:
        gt = ground_truth_hits(rec, triggers, cases=users, steps=steps, seed=seed)
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
    )


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


def demo_triggers(rec: Any) -> pd.DataFrame | None:
    """The planted triggers of the demo world the recommender was trained on (None for other data)."""
    if rec.dataset.name != "demo":
        return None
    from engine.data.synthetic import generate_demo_world

    data = rec.prep.config.data
    world = generate_demo_world(data.seed, scale=data.scale)
    if world.dataset.content_hash() != rec.dataset.content_hash():
        log.warning("the demo world regenerated from seed %s does not match the dataset; no ground truth", data.seed)
        return None
    return world.triggers


def ground_truth_hits(
    rec: Any,
    triggers: pd.DataFrame,
    *,
    cases: int = 100,
    top_k: int = 10,
    top: int = 3,
    steps: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """How often a planted trigger is among the top-``top`` attributed history edges.

    A case is a user whose top-``top_k`` list contains a trigger target B while the
    user's training history holds its trigger A (the best-ranked such B per user).

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
        ``top / history size``: what a random order gets).
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
        if len(found) >= cases:
            break
    hits = {"ig": 0, "attention": 0, "rollout": 0, "leave-one-out": 0}
    chance = []
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
            best = items[np.argsort(-np.nan_to_num(v, nan=-np.inf), kind="stable")[:top]]
            hits[name] += int(a in set(best.tolist()))
        chance.append(min(1.0, top / max(len(own), 1)))
    n = len(found)
    return pd.DataFrame(
        {
            "method": list(hits),
            "cases": n,
            "hits": list(hits.values()),
            "hit_rate": [h / n if n else np.nan for h in hits.values()],
            "chance": float(np.mean(chance)) if chance else np.nan,
            "top": top,
        }
    )
