"""Overview: the dataset card, the model card (version lineage, what the last update changed, training curve,
test metrics against baselines), a guided tour."""

from __future__ import annotations

import re
import shlex
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import engine.service as service
from dashboard import context, state
from dashboard.components import charts
from dashboard.components.colors import model_colors
from dashboard.components.html import tiles
from dashboard.components.leaderboard import better_model_note, latest_per_model
from dashboard.components.tables import HIGHER, Col, metric_table
from dashboard.components.text import md, md_code
from dashboard.components.widgets import preset_users

_HEADLINE_METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10")


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    meta = cur.rec.meta
    st.title("GATLens", anchor=False)
    st.caption("An explainable graph-attention recommender: what each user gets, why, and whether it is fair.")
    note = better_model_note(cur.rows, cur.row)
    if note:
        st.warning(md(note), icon=":material/trending_up:")
    _tour(cur)

    left, right = st.columns(2, gap="large")
    with left:
        _dataset_card(cur)
    with right:
        _model_card(cur, meta)
    st.subheader("Test metrics against the other models on this dataset", anchor=False)
    _metrics_vs_baselines(cur)
    context.write_url("overview")


def _tour(cur: context.Current) -> None:
    users = state.user_table(cur.rec, cur.key)
    heavy = preset_users(users, "heavy", 1)
    user = heavy[0] if heavy else None
    item = None
    if user is not None:
        top = cur.rec.recommend(user, 1).items
        item = str(top["item_id"].iloc[0]) if len(top) else None
    base = {"dataset": cur.row["dataset"], "model": cur.key}
    with st.container(border=True):
        st.markdown("**Guided tour** — four stops, each a shareable deep link:")
        cols = st.columns(4)
        steps = [
            (
                "recommendations",
                "1 · A user's top 10",
                {"user": user, "k": 10},
                "The list, the history behind it, a reason per item.",
            ),
            (
                "why",
                "2 · Why this item?",
                {"user": user, "item": item},
                "The past items it rests on, a verified counterfactual, what-if.",
            ),
            ("fairness", "3 · Is it fair?", {}, "Groups with confidence intervals, exposure, trade-offs."),
            ("compare", "4 · Against a baseline", {"user": user}, "Two models' lists side by side."),
        ]
        for col, (page, label, params, hint) in zip(cols, steps, strict=True):
            with col:
                query = {**base, **{k: str(v) for k, v in params.items() if v is not None}, "page": page}
                st.page_link(context.PAGES[page][0], label=label, icon=context.PAGES[page][2], query_params=query)
                st.caption(hint)


def _dataset_card(cur: context.Current) -> None:
    rec = cur.rec
    summary = state.dataset_summary(rec, cur.key)
    split = rec.meta.get("data", {})
    st.subheader(f"Dataset · {md(summary['dataset'])}", anchor=False)
    st.html(
        tiles(
            [
                ("users", f"{summary['users']:,}", None),
                ("items", f"{summary['items']:,}", f"{len(summary['categories'])} categories"),
                (
                    "interactions",
                    f"{summary['interactions']:,}",
                    " · ".join(f"{part} {split.get(part, 0):,}" for part in ("train", "valid", "test")),
                ),
                ("density", f"{summary['density']:.2%}", "share of user–item pairs observed"),
            ]
        )
    )
    popularity = rec.item_popularity
    tiers = [str(t) for t in service.popularity_tiers(popularity)] if len(popularity) and popularity.sum() else None
    st.plotly_chart(charts.long_tail(popularity, tiers), width="stretch", key="long_tail")
    tail = np.asarray(tiers or [], dtype=object) == "tail"
    tail_line = (
        f"Long tail: {tail.mean():.0%} of items hold {popularity[tail].sum() / popularity.sum():.0%} of interactions. "
        if tail.any()
        else ""
    )
    per_user = summary["interactions_per_user"]
    attrs = ", ".join(summary["user_attributes"]) or "none"
    st.caption(
        f"{tail_line}Interactions per user: median {per_user['median']:g}, max {per_user['max']:,}. "
        f"User attributes: {md(attrs)}. Ratings ≥ 3 count as positives (RecBole protocol). "
        f"Popularity tiers (the same on every page): {md(service.TIERS_DEFINITION)}"
    )


def _model_card(cur: context.Current, meta: dict[str, Any]) -> None:
    training = meta.get("training", {})
    lm = meta.get("language_model", {})
    st.subheader(f"Model · {md(meta.get('model', '?'))}", anchor=False)
    lineage = cur.rec.lineage()
    _lineage_line(lineage)
    params = meta.get("parameters")
    trainable = meta.get("trainable_parameters")
    st.html(
        tiles(
            [
                ("test NDCG@10", _fmt(meta.get("metrics", {}).get("test_ndcg@10")), "full ranking, all items"),
                ("parameters", f"{params:,}" if params else "—", f"{trainable:,} trainable" if trainable else None),
                (
                    "epochs",
                    f"{training.get('epochs', '—')}",
                    f"best {training.get('best_epoch', '—')}"
                    + (" · stopped early" if training.get("stopped_early") else ""),
                ),
                ("training time", f"{training.get('seconds', 0):.0f} s", f"on {training.get('device', '?')}"),
            ]
        )
    )
    if cur.rec.curve:
        st.plotly_chart(charts.training_curve(cur.rec.curve), width="stretch", key="curve")
        if any(c.get("stage") == "taste" for c in cur.rec.curve):
            best = training.get("best_valid_ndcg@10")
            st.caption(
                "Only the taste part learns by epochs. The item-item links (and their share of broad tastes), "
                "the rating and recency weights and the taste weight are then fitted in closed form and chosen "
                "on validation"
                + (f": the whole model validates at NDCG@10 {best:.3f}." if isinstance(best, float) else ".")
            )
    if lineage[0]["update"]:
        _what_changed(cur, meta.get("update") or {})
    else:
        _no_updates_hint(meta)
    sha = lm.get("weights_sha256")
    with st.expander("Configuration and language model", expanded=False):
        st.markdown(
            f"**Language model:** {md(lm.get('model_id') or 'none (text features off or no encoder installed)')}"
            + (f" · weights sha256 {md_code(str(sha)[:16] + '…')}" if sha else "")
        )
        if lm.get("note"):
            st.caption(md(lm["note"]))
        st.markdown(f"**Artifact:** {md_code(cur.key)} · engine {md(meta.get('engine_version', '?'))}")
        st.json(meta.get("config", {}), expanded=False)


def _lineage_line(lineage: list[dict[str, Any]]) -> None:
    """``version v3 · v3 (update: +500 interactions, 4 new users) ← v2 (…) ← v1 (trained)``."""
    current = lineage[0]["version"]
    label = f"version v{current}" if current is not None else "not stored"
    chain = " ← ".join(_version_label(entry) for entry in lineage)
    st.caption(f"**{md(label)}** · lineage: {md(chain)}")


def _version_label(entry: dict[str, Any]) -> str:
    name = f"v{entry['version']}" if entry["version"] is not None else "this model"
    if not entry["available"]:
        return f"{name} (not in the cache)"
    if entry["update"] is False:
        return f"{name} (trained)"
    if not entry["update"]:
        return name
    parts = [f"+{_count(entry['rows'], 'interaction')}"]
    for key, noun in (("new_users", "new user"), ("new_items", "new item")):
        if isinstance(entry.get(key), int) and entry[key]:
            parts.append(_count(entry[key], noun))
    return f"{name} (update: {', '.join(parts)})"


def _count(value: Any, noun: str = "") -> str:
    """``1,234 users`` / ``1 user`` (``?`` for a missing figure); the bare number without a noun."""
    number = f"{value:,}" if isinstance(value, int) else "?"
    if not noun:
        return number
    return f"{number} {noun}" + ("" if value == 1 else "s")


def _what_changed(cur: context.Current, update: dict[str, Any]) -> None:
    changes = cur.rec.what_changed()
    k = update.get("k", 10)
    with st.expander("What changed in the last update", expanded=False, icon=":material/difference:"):
        before, after = update.get("valid_ndcg@10_before"), update.get("valid_ndcg@10_after")
        seconds = update.get("seconds")
        st.caption(
            f"Update of {md(update.get('parent') or 'an unsaved model')}: "
            f"+{_count(update.get('rows'), 'interaction')} ({_count(update.get('positives'))} positive), "
            f"{_count(update.get('new_users'), 'new user')}, {_count(update.get('new_items'), 'new item')}, "
            f"{_count(update.get('epochs'), 'warm-start epoch')}"
            + (f", {seconds:.1f} s" if isinstance(seconds, float | int) else "")
            + f". Validation NDCG@10 {_fmt(before)} → {_fmt(after)}. "
            f"The top-{_count(k)} list changed for {_count(update.get('users_changed'), 'user')}; the most changed:"
        )
        if changes.empty:
            st.caption("No user's list changed.")
            return
        table = changes[["user_id", "changed", "overlap", "new_interactions", "left_titles", "entered_titles"]]
        st.dataframe(
            table,
            width="stretch",
            hide_index=True,
            column_config={
                "user_id": st.column_config.TextColumn("user"),
                "changed": st.column_config.NumberColumn(
                    "replaced", help=f"items of the top-{_count(k)} no longer in it"
                ),
                "overlap": st.column_config.NumberColumn("overlap", format="%.2f", help="share of the list kept"),
                "new_interactions": st.column_config.NumberColumn(
                    "new interactions", help="training interactions the update added for the user"
                ),
                "left_titles": st.column_config.ListColumn("items left"),
                "entered_titles": st.column_config.ListColumn("items entered"),
            },
        )


def _no_updates_hint(meta: dict[str, Any]) -> None:
    name = str(meta.get("config", {}).get("data", {}).get("dataset") or "")
    name = name if re.fullmatch(r"[A-Za-z0-9._-]+", name) else "NAME"  # shown inside a code span: plain names only
    st.caption(
        "Trained from scratch (no updates yet). "
        f"`gatlens update --dataset {name} --new FILE` adds interactions "
        "(with the options the model was trained with)."
    )


def _metrics_vs_baselines(cur: context.Current) -> None:
    # Newest artifact per model name on this dataset: a stand-in for "the baselines".
    latest = latest_per_model(cur.rows, cur.row)
    records = []
    for name, row in latest.items():
        for metric in _HEADLINE_METRICS:
            value = row["metrics"].get(f"test_{metric}")
            if isinstance(value, float) and np.isfinite(value):
                records.append({"model": name, "metric": metric, "value": value})
    frame = pd.DataFrame(records, columns=["model", "metric", "value"])
    if frame.empty:
        st.info("No test metrics stored with these models.", icon=":material/info:")
        return
    current = str(cur.row.get("model"))
    if len(latest) == 1:
        command = f"gatlens benchmark --dataset {shlex.quote(str(cur.row['dataset']))}"
        st.caption(
            f"Only this model is trained on this dataset. Train baselines to compare: {md_code(command)} "
            "or `gatlens train --model lightgcn`."
        )
    labels = {m: service.metric_label(m) for m in _HEADLINE_METRICS}
    st.plotly_chart(
        charts.metric_bars(frame, current=current, colors=model_colors(list(latest)), labels=labels),
        width="stretch",
        key="metric_bars",
    )
    shown = [m for m in _HEADLINE_METRICS if m in set(frame["metric"])]
    wide = frame.pivot(index="model", columns="metric", values="value")[shown]
    wide = wide.sort_values(shown[0], ascending=False).reset_index()
    wide["model"] = [f"{m} (selected)" if m == current else m for m in wide["model"]]
    columns = [Col("model", "Model", text=True)] + [
        Col(m, labels[m], service.metric_help(m), lambda v, m=m: service.format_value(m, v), HIGHER) for m in shown
    ]
    st.html(metric_table(wide, columns, key="overview_metrics"))
    st.caption(
        "Test part of the split, full ranking over every item the user has not seen; ★ marks the best model per "
        "metric. Hover a column title for its definition."
    )


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "—"


render()
