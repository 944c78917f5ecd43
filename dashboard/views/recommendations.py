"""Recommendations: pick a user, see their history and their top-K with a one-line reason each.

K, the category filter, hide-popular and the re-ranker live in the URL (see :mod:`dashboard.listview`),
and the Why links carry them, so the Why page shows the rank the reader saw in this list.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import adapters, context, listview, state
from dashboard.components.html import deep_link, headline, note, rec_cards, tiles
from dashboard.components.text import md
from dashboard.components.widgets import bound_k, user_picker
from dashboard.listview import HIDE_POPULAR_SHARE, ListView


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    rec = cur.rec
    st.header("Recommendations", anchor=False)
    user = user_picker(cur)
    if user is None:
        st.stop()

    with st.container(border=True):
        c_k, c_cat, c_pop, c_rr = st.columns([2, 3, 2, 3], vertical_alignment="bottom")
        with c_k:
            k = bound_k()
        view = _list_controls(rec, (c_cat, c_pop, c_rr))
    status = rec.user_status(user)
    items, fallback = listview.top_list(rec, user, k, view)

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.html(headline("Top ", f"{len(items)} for {user}", ""))
        if fallback:
            st.html(note(f"Not personalised: {fallback}.", "warn"))
        if items.empty:
            st.info(
                "No item passes these filters. Clear the category filter or show blockbusters.",
                icon=":material/filter_alt_off:",
            )
        base = why_params(cur, user, k, view)
        links = {str(i): deep_link("why", {**base, "item": i}) for i in items["item_id"]}
        deltas = {}
        if "model_rank" in items:
            deltas = {str(r.item_id): _delta(int(r.model_rank), int(r.rank)) for r in items.itertuples()}
        slot = st.empty()
        slot.html(rec_cards(items, links=links, deltas=deltas))
        if status == "known" and not items.empty and cur.is_gat:
            # Reasons cost one explanation each: the first few are computed as the page opens (memoised,
            # so "Why this item?" then opens at once for them), the rest on request.
            ids = items["item_id"].astype(str).tolist()
            wanted = ids if st.session_state.get(f"all_reasons|{cur.key}|{user}") else ids[: cur.settings.list_reasons]
            reasons = _reasons(rec, user, wanted)
            if reasons:
                slot.html(rec_cards(items, links=links, deltas=deltas, reasons=reasons))
            if len(reasons) < len(ids) and st.button(
                f"Reasons for all {len(ids)}", icon=":material/notes:", key="w_all_reasons"
            ):
                st.session_state[f"all_reasons|{cur.key}|{user}"] = True
                st.rerun()
        if not items.empty and status == "known":
            _why_button(base, items)
    with right:
        _profile(cur, user, status)
    context.write_url("recommendations", "user", "k", *listview.LIST_KEYS)


def _list_controls(rec: Any, columns: tuple[Any, Any, Any]) -> ListView:
    """Category filter, hide-popular and re-ranker, bound to the selection (so to the URL)."""
    sel = context.selection()
    names = sorted({c for cs in rec.items["categories"] for c in cs})
    # A bad value from the link: say so now (the page's notices were shown above), once: it leaves the URL.
    view = listview.from_selection(sel, names, lambda text: st.warning(md(text), icon=":material/link_off:"))
    sel.update(view.to_selection())  # a bad value from the link is gone from the URL too
    c_cat, c_pop, c_rr = columns

    def seed(key: str, value: Any) -> None:
        if st.session_state.get(key) != value:
            st.session_state[key] = value

    def changed() -> None:
        method = st.session_state["w_reranker"]
        low, high = listview.strength_range(method)
        strength = st.session_state.get("w_rerank_strength", view.strength)
        sel.update(
            ListView(
                tuple(st.session_state["w_categories"]),
                bool(st.session_state["w_hide_popular"]),
                method,
                min(max(float(strength), low), high),
            ).to_selection()
        )

    seed("w_categories", list(view.categories))
    seed("w_hide_popular", view.hide_popular)
    seed("w_reranker", view.rerank)
    with c_cat:
        categories = st.multiselect(
            "Only these categories",
            names,
            key="w_categories",
            placeholder="all categories",
            on_change=changed,
        )
    with c_pop:
        hide = st.toggle(
            f"Hide top {HIDE_POPULAR_SHARE:.0%}",
            key="w_hide_popular",
            on_change=changed,
            help=f"Hide blockbusters: drop the {HIDE_POPULAR_SHARE:.0%} most popular items of the catalog.",
        )
    with c_rr:
        method = st.selectbox(
            "Re-ranker",
            list(adapters.RERANKERS),
            format_func=adapters.RERANKERS.get,
            key="w_reranker",
            on_change=changed,
            help="Post-processing on the model's top 100 (see Fairness).",
        )
        strength = view.strength
        if method != "none":
            low, high = listview.strength_range(method)
            seed("w_rerank_strength", min(max(view.strength, low), high))
            strength = st.slider("Strength", low, high, step=0.1, key="w_rerank_strength", on_change=changed)
    current = ListView(tuple(categories), bool(hide), method, round(float(strength), 1))
    sel.update(current.to_selection())
    return current


def why_params(cur: context.Current, user: str, k: int, view: ListView) -> dict[str, Any]:
    """The query of a Why link from this list: the pair, K and the list's filters and re-ranker."""
    return {
        "dataset": cur.row["dataset"],
        "model": cur.key,
        "user": user,
        "k": k,
        **view.to_selection(),
        "page": "why",
    }


def _reasons(rec: Any, user: str, item_ids: list[str]) -> dict[str, str]:
    """First sentence of each item's plain-language reason (stops at the first unavailable one)."""
    out: dict[str, str] = {}
    if not item_ids:
        return out
    with st.spinner(f"Explaining {len(item_ids)} item(s)…"):
        for item in item_ids:
            text = adapters.reason(rec, user, str(item), k=int(context.selection().get("k") or context.DEFAULT_K))
            if text is None:
                break
            out[str(item)] = adapters.first_sentence(text)
    return out


def _why_button(base: dict[str, Any], items: pd.DataFrame) -> None:
    sel = context.selection()
    options = items["item_id"].astype(str).tolist()
    titles = dict(zip(options, items["title"], strict=True))
    ranks = dict(zip(options, items["rank"], strict=True))
    col_item, col_go = st.columns([4, 1], vertical_alignment="bottom")
    with col_item:
        item = st.selectbox(
            "Explain an item", options, format_func=lambda i: f"#{ranks[i]} · {titles[i]} ({i})", key="w_why_item"
        )
    with col_go:
        if st.button("Why?", icon=":material/hub:", type="primary", width="stretch"):
            sel["item"] = item
            query = {key: str(value) for key, value in {**base, "item": item}.items() if value not in (None, "")}
            st.switch_page(context.PAGES["why"][0], query_params=query)


def _profile(cur: context.Current, user: str, status: str) -> None:
    rec = cur.rec
    users = state.user_table(rec, cur.key)
    row = users[users["user_id"] == user].iloc[0]
    attrs = [c for c in users.columns if c not in ("user_id", "n_logged", "n_train", "status")]
    st.html(
        tiles(
            [
                ("training interactions", f"{int(row['n_train'])}", f"{int(row['n_logged'])} logged in total"),
                *[(a.replace("_", " "), str(row[a]), None) for a in attrs[:3]],
            ]
        )
    )
    st.subheader("History", anchor=False)
    if status == "unknown":
        return
    history = rec.history(user)
    if history.empty:
        st.caption("No logged interactions: the list is the labelled most-popular fallback.")
        return
    shown = history.assign(categories=history["categories"].map(", ".join))[
        ["title", "categories", "rating", "date", "part"]
    ]
    st.dataframe(
        shown,
        width="stretch",
        hide_index=True,
        height=360,
        column_config={
            "rating": st.column_config.NumberColumn("rating", format="%.1f ★"),
            "part": st.column_config.TextColumn("split", help="train: the model learned from it; valid/test: held out"),
        },
    )


def _delta(before: int, after: int) -> str:
    if before == after:
        return "="
    return f"▲{before - after}" if after < before else f"▼{after - before}"


render()
