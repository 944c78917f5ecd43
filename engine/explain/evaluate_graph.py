"""``explain-eval`` on the attention graph: deletion/insertion curves and agreement of IG, attention, rollout.

For each sampled user with training history, the top-1 item is explained and its computation
subgraph's interactions are ordered by IG, raw attention, attention rollout and at random;
deletion/insertion curves and AUCs are averaged over users, and the attention orders are compared
with IG and with the exact leave-one-out score drop. The planted-trigger ground truth is
:mod:`~engine.explain.evaluate_triggers`.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from engine.explain.attention import interaction_sum, pair_attention
from engine.explain.counterfactual import layer_states, ranks
from engine.explain.evaluate_common import ExplainEval, agreement_frame, make_eval, pair_state
from engine.explain.evaluate_triggers import ground_truth_hits, trigger_reliance
from engine.explain.faithfulness import (
    ORDER_METHODS,
    agreement,
    curve_auc,
    deletion_insertion,
    interaction_orders,
    leave_one_out,
)
from engine.recommender import Recommender

log = logging.getLogger("engine.explain.evaluate")


def evaluate_attention_graph(
    rec: Recommender, *, users: int, k_max: int, steps: int, seed: int, triggers: pd.DataFrame | None
) -> ExplainEval:
    """``explain-eval`` for the attention graph (see :func:`engine.explain.evaluate.evaluate_explanations`)."""
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
        scorer, att, ig = pair_state(rec, int(u), item, steps)
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
    agree_frame = agreement_frame(agree)
    gt = reliance = None
    if triggers is not None:
        gt = ground_truth_hits(rec, triggers, cases=users, steps=steps, seed=seed)
        reliance = trigger_reliance(rec, triggers, cases=users, seed=seed)
    return make_eval(rec, t0, k_max, per_pair, summary, mean_curves, agree_frame, gt, reliance)


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
