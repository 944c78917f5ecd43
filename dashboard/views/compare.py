"""Compare models: two models' top-K for one user side by side, their overlap, and their test metrics."""

from __future__ import annotations

import shlex
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import context, state
from dashboard.components import charts
from dashboard.components.html import headline, note, rec_cards
from dashboard.components.text import md, md_code
from dashboard.components.widgets import bound_k, user_picker

_METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10")


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    st.header("Compare models", anchor=False)
    others = [r for r in cur.rows if r["key"] != cur.key]
    if not others:
        command = f"gatlens train --dataset {shlex.quote(str(cur.row['dataset']))} --model lightgcn"
        st.info(
            f"Only one model is trained on this dataset. Train another to compare, e.g. {md_code(command)} "
            "(it appears here within seconds).",
            icon=":material/info:",
        )
        context.write_url("compare")
        st.stop()
    labels = {r["key"]: f"{r.get('model')} · {r['fingerprint'][:8]} v{r['version']}" for r in others}
    c_user, c_other, c_k = st.columns([5, 3, 2], vertical_alignment="bottom")
    with c_other:
        default = next((r["key"] for r in others if r.get("model") != cur.row.get("model")), others[0]["key"])
        other_key = st.selectbox(
            "Compare with",
            list(labels),
            index=list(labels).index(default),
            format_func=labels.get,
            key="w_compare_other",
        )
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
    name_a, name_b = str(cur.row.get("model")), str(other_row.get("model"))
    if name_a == name_b:
        name_a, name_b = cur.key, other_key
    st.plotly_chart(
        charts.overlap_venn(len(ids_a), len(ids_b), len(both), (name_a, name_b)), width="stretch", key="overlap"
    )
    st.caption(
        f"{len(both)} of the top {k} items in common · Jaccard overlap {jaccard:.2f}. "
        "Items only one model recommends are highlighted."
    )
    left, right = st.columns(2, gap="large")
    for col, recs, name, own in ((left, a, name_a, ids_a), (right, b, name_b, ids_b)):
        with col:
            st.html(headline("", name, f" for {user}"))
            if recs.fallback:
                st.html(note(f"Not personalised: {recs.fallback}.", "warn"))
            st.html(rec_cards(recs.items, highlight=own - both))
    st.subheader("Test metrics", anchor=False)
    st.plotly_chart(
        charts.metric_bars(_metric_frame({name_a: cur.row, name_b: other_row}), current=name_a),
        width="stretch",
        key="compare_metrics",
    )
    context.write_url("compare", "user", "k")


def _metric_frame(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    records = [
        {"model": name, "metric": m, "value": row["metrics"][f"test_{m}"]}
        for name, row in rows.items()
        for m in _METRICS
        if isinstance(row["metrics"].get(f"test_{m}"), float)
    ]
    return pd.DataFrame(records, columns=["model", "metric", "value"])


render()
