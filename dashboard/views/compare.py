"""Compare models: two models' top-K for one user side by side, their overlap, and their test metrics."""

from __future__ import annotations

import shlex
from typing import Any

import pandas as pd
import streamlit as st

import engine.service as service
from dashboard import context, state
from dashboard.components import charts
from dashboard.components.colors import model_colors
from dashboard.components.compare_cards import rank_cards
from dashboard.components.html import headline, note
from dashboard.components.leaderboard import better_model_note, loadable
from dashboard.components.text import md, md_code
from dashboard.components.widgets import bound_k, bound_selectbox, user_picker

_METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10")


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    st.header("Compare models", anchor=False)
    better = better_model_note(cur.rows, cur.row)
    if better:
        st.warning(md(better), icon=":material/trending_up:")
    others = [r for r in cur.rows if r["key"] != cur.key and loadable(r)]
    if not others:
        command = f"gatlens train --dataset {shlex.quote(str(cur.row['dataset']))} --model lightgcn"
        st.info(
            f"Only one model is trained on this dataset. Train another to compare, e.g. {md_code(command)} "
            "(it appears here within seconds).",
            icon=":material/info:",
        )
        context.write_url("compare")
        st.stop()
    labels = {r["key"]: _row_label(r) for r in others}
    c_user, c_other, c_k = st.columns([5, 3, 2], vertical_alignment="bottom")
    with c_other:
        sel = context.selection()
        default = next((r["key"] for r in others if r.get("model") != cur.row.get("model")), others[0]["key"])
        if sel.get("vs") is not None and sel["vs"] not in labels:
            context.notice(f"The link's model to compare with, {sel['vs']!r}, is not trained on this dataset.")
            sel["vs"] = None
        if sel.get("vs") is None:
            sel["vs"] = default
        other_key = bound_selectbox("Compare with", list(labels), "vs", format_func=labels.get, key="w_compare_other")
    with c_k:
        k = bound_k("K", key="w_compare_k")
    with c_user:
        user = user_picker(cur, key_prefix="cmp_")
    if user is None:
        st.stop()
    other_row = next(r for r in others if r["key"] == other_key)
    try:
        other = state.load_recommender(str(cur.settings.cache_dir), other_row["path"])
    except state.ModelNotReadyError as exc:
        st.error(f"{md(other_key)}: {md(exc)}", icon=":material/build:")
        st.stop()

    a = cur.rec.recommend(user, k)
    b = other.recommend(user, k)
    ids_a, ids_b = set(a.items["item_id"]), set(b.items["item_id"])
    both = ids_a & ids_b
    jaccard = len(both) / len(ids_a | ids_b) if ids_a | ids_b else 1.0
    name_a, name_b = _display_name(cur.row), _display_name(other_row)
    if name_a == name_b:
        name_a, name_b = cur.key, other_key
    colors = model_colors([name_a, name_b])
    titles = dict(zip(a.items["item_id"].astype(str), a.items["title"].astype(str), strict=True))
    titles.update(zip(b.items["item_id"].astype(str), b.items["title"].astype(str), strict=True))
    st.plotly_chart(
        charts.rank_overlap(
            a.items["item_id"].tolist(),
            b.items["item_id"].tolist(),
            (name_a, name_b),
            titles=titles,
            colors=(colors[name_a], colors[name_b]),
        ),
        width="stretch",
        key="overlap",
    )
    st.caption(
        f"{len(both)} of the top {k} items in common · Jaccard overlap {jaccard:.2f}. "
        "A line joins an item both models recommend (its slope shows how differently they rank it); hollow "
        "markers and highlighted cards are items only one model recommends. Ranks, not scores: each model's "
        "scores are on its own scale and are not comparable."
    )
    left, right = st.columns(2, gap="large")
    ranks_a = {str(i): n + 1 for n, i in enumerate(a.items["item_id"])}
    ranks_b = {str(i): n + 1 for n, i in enumerate(b.items["item_id"])}
    for col, recs, name, other_ranks, other_name in (
        (left, a, name_a, ranks_b, name_b),
        (right, b, name_b, ranks_a, name_a),
    ):
        with col:
            st.html(headline("", name, f" for {user}"))
            if recs.fallback:
                st.html(note(f"Not personalised: {recs.fallback}.", "warn"))
            # both models are of the dataset in the sidebar, so they share its verb
            verb = cur.rec.interaction_verb
            st.html(
                rank_cards(
                    recs.items, other_ranks=other_ranks, other_name=other_name, k=k, color=colors[name], verb=verb
                )
            )
    st.subheader("Test metrics", anchor=False)
    st.plotly_chart(
        charts.metric_bars(
            _metric_frame({name_a: cur.row, name_b: other_row}),
            current=name_a,
            colors=colors,
            labels={m: service.metric_label(m) for m in _METRICS},
        ),
        width="stretch",
        key="compare_metrics",
    )
    context.write_url("compare", "user", "k", "vs")


def _display_name(row: dict[str, Any]) -> str:
    """The model's name; imported lists (another system's, no model) are marked so."""
    return f"{row.get('model')} (imported)" if row.get("imported") else str(row.get("model"))


def _row_label(row: dict[str, Any]) -> str:
    where = "imported lists" if row.get("imported") else row["fingerprint"][:8]
    return f"{row.get('model')} · {where} v{row['version']}"


def _metric_frame(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    records = [
        {"model": name, "metric": m, "value": row["metrics"][f"test_{m}"]}
        for name, row in rows.items()
        for m in _METRICS
        if isinstance(row["metrics"].get(f"test_{m}"), float)
    ]
    return pd.DataFrame(records, columns=["model", "metric", "value"])


render()
