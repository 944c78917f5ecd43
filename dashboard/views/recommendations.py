"""Recommendations: pick a user, see their history and their top-K with a one-line reason each.

K, the category filter, hide-popular and the re-ranker live in the URL (see :mod:`dashboard.listview`),
and the Why links carry them, so the Why page shows the rank the reader saw in this list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import adapters, context, listview, state
from dashboard.components.cards import (
    PENDING,
    audience_words,
    delta_legend,
    item_card,
    match_words,
    popularity_words,
    reason_numbers,
)
from dashboard.components.html import deep_link, esc, headline, note, table, tiles
from dashboard.components.text import md
from dashboard.components.widgets import bound_k, user_picker
from dashboard.listview import HIDE_POPULAR_SHARE, ListView

# Explanation methods in order of preference (as on the Why page, so the two share memoised explanations).
# How a card's numbers were computed, in words (the explanation's ``method`` key otherwise).
METHOD_NAMES = {
    "ig": "Integrated Gradients over the model's graph",
    "exact": "the model's exact per-interaction decomposition of the score",
    "exact-decomposition": "the model's exact per-interaction decomposition of the score",
    "leave-one-out": "each past title removed in turn and the item re-scored",
    "saliency": "gradient saliency",
    "ablation": "feature ablation",
}


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    rec = cur.rec
    st.header("Recommendations", anchor=False)
    user = user_picker(cur)
    if user is None:
        st.stop()

    with st.container(border=True):
        # Top-aligned: the re-ranker's strength slider appears under it without pushing the row down.
        c_k, c_cat, c_pop, c_rr = st.columns([2, 3, 2, 3], vertical_alignment="top")
        with c_k:
            k = bound_k()
        view = _list_controls(rec, (c_cat, c_pop, c_rr))
    status = rec.user_status(user)
    items, fallback = listview.top_list(rec, user, k, view)
    source = ReasonSource.of(cur, user, status, k) if not fallback else None

    left, right = st.columns([3, 2], gap="large")
    with left:
        if fallback:
            st.html(headline("Most popular items for ", user, " (not personalised)"))
            st.html(
                note(
                    f"Not personalised: {fallback}. {user} has no interactions the model learned from, so this is "
                    "the catalog's most-played list (with the filters above), the same for every such user.",
                    "warn",
                )
            )
        else:
            st.html(headline("Top ", f"{len(items)} for {user}", ""))
        if items.empty:
            st.info(
                "No item passes these filters. Clear the category filter or show blockbusters.",
                icon=":material/filter_alt_off:",
            )
        elif "model_rank" in items and view.rerank != "none":
            st.html(delta_legend(f"the {adapters.RERANKERS.get(view.rerank, view.rerank)} re-ranker"))
        notice_slot = st.empty()
        if source is not None and source.unavailable:
            notice_slot.caption(md(source.unavailable))
        base = why_params(cur, user, k, view)
        cards = _draw_cards(rec, user, items, base, fallback, pending=source is not None and source.ready)
        more_slot = st.empty()
        if not items.empty and status == "known":
            _why_button(base, items)
    with right:
        _profile(cur, user, status)
    context.write_url("recommendations", "user", "k", *listview.LIST_KEYS)
    # Last: everything else is on screen while the reasons are worked out, card by card, top first.
    if cards and source is not None and source.ready:
        _fill_reasons(cur, user, cards, source, notice_slot, more_slot)


@dataclass
class ReasonSource:
    """How this list's reasons are obtained: the explanation call's options, or why there are none."""

    kwargs: dict[str, Any]
    unavailable: str | None = None

    @property
    def ready(self) -> bool:
        return self.unavailable is None

    @classmethod
    def of(cls, cur: context.Current, user: str, status: str, k: int) -> ReasonSource | None:
        """None for a user without history (the popular fallback needs no reason per card)."""
        if status != "known":
            return None
        model = str(cur.row.get("model") or "this model")
        if cur.imported:
            return cls(
                {},
                f"These lists were imported from another system ({model}): there is no model here to ask "
                "why an item is listed, so the cards carry no reasons.",
            )
        methods = state.explain_methods(model)
        if not methods:
            others = [m for m in state.explainable_models() if m != model]
            why = (
                "ranks items by play count alone, so each card's play count is its whole reason"
                if model == "pop"
                else "cannot say which past interactions produce its scores"
            )
            hint = f" Pick a {' or '.join(others)} model in the sidebar for a reason on every card." if others else ""
            return cls({}, f"No reasons for {model}: it {why}.{hint}")
        # The engine's default method and the Why page's K: the Why page then opens at once for these items.
        return cls({"k": k})


@dataclass
class _Card:
    row: Any
    facts: tuple[str, str]
    link: str
    delta: str | None
    slot: Any
    details: Any

    def draw(self, reason: str | None) -> None:
        self.slot.html(item_card(self.row, facts=self.facts, reason=reason, link=self.link, delta=self.delta))


def _draw_cards(
    rec: Any, user: str, items: pd.DataFrame, base: dict[str, Any], fallback: str | None, *, pending: bool
) -> list[_Card]:
    """Every card, at once, with its reason line pending; the slots are filled by :func:`_fill_reasons`."""
    if items.empty:
        return []
    ranked = np.sort(np.asarray(rec.item_popularity, dtype=np.float64))
    seen = set()
    if not fallback:
        history = rec.history(user)
        seen = {c for cs in history["categories"] for c in cs}
    cards = []
    with st.container(gap="small"):
        verb = rec.interaction_verb
        for row in items.itertuples(index=False):
            n = int(row.popularity)
            share = float(np.searchsorted(ranked, n, side="left") / max(len(ranked), 1))
            small = popularity_words(n, share, verb)
            if fallback:
                facts = (f"popular: {audience_words(n, verb)}", small.split(" · ", 1)[-1])
            else:
                facts = (match_words(row.categories, seen) or audience_words(n, verb), small)
            delta = _delta(int(row.model_rank), int(row.rank)) if "model_rank" in items else None
            card = _Card(row, facts, deep_link("why", {**base, "item": row.item_id}), delta, st.empty(), st.empty())
            card.draw(PENDING if pending else None)
            cards.append(card)
    return cards


def _fill_reasons(
    cur: context.Current, user: str, cards: list[_Card], source: ReasonSource, notice_slot: Any, more_slot: Any
) -> None:
    """Each card's reason, top first (explanations are memoised per model, so a revisit is instant)."""
    flag = f"all_reasons|{cur.key}|{user}"
    limit = len(cards) if st.session_state.get(flag) else max(int(cur.settings.list_reasons), 0)
    for n, card in enumerate(cards):
        if n >= limit:
            card.draw(None)
            continue
        try:
            exp = adapters.explain(cur.rec, user, str(card.row.item_id), **source.kwargs)
        except adapters.FeatureUnavailableError as exc:
            notice_slot.caption(f"No reasons for this model: {md(exc)}")
            for rest in cards[n:]:
                rest.draw(None)
            return
        except (KeyError, ValueError) as exc:
            card.draw(f"No reason for this item: {exc}")
            continue
        card.draw(str(exp.reason))
        label = "The numbers behind this reason"
        with card.details.container(), st.expander(label, icon=":material/calculate:", key=f"rec_numbers_{n}"):
            _numbers(exp, card.link)
    left = len(cards) - limit
    if left > 0 and more_slot.button(
        f"Work out the reasons for the other {left}", icon=":material/notes:", key="w_all_reasons"
    ):
        st.session_state[flag] = True
        st.rerun()


def _numbers(exp: Any, link: str) -> None:
    """The table behind one reason and the way to the full explanation."""
    frame, inputs = reason_numbers(exp)
    if frame.empty:
        st.caption("This explanation has no per-interaction figures.")
    else:
        st.html(table(frame))
        st.caption(
            "Effect: how much each past title moves this item's score, as a share of what the whole history "
            f"moves it ({md(METHOD_NAMES.get(exp.method, exp.method))})."
        )
    if inputs:
        st.caption(md(inputs))
    st.html(
        f'<a class="gl-more" href="{esc(link)}" target="_self">Why this item? The graph, what-if and '
        "counterfactual →</a>"
    )


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
    # Title, rating and date fit the column without scrolling sideways: the categories are on the
    # cards already, a date needs no time of day, and the held-out rows are counted below.
    shown = pd.DataFrame(
        {
            "title": history["title"].astype(str),
            "rating": pd.to_numeric(history["rating"], errors="coerce"),
            # a dataset of counts (plays, clicks) has them in their own column, never as stars
            "count": pd.to_numeric(history.get("count", pd.Series(np.nan, index=history.index)), errors="coerce"),
            "date": pd.to_datetime(history["date"], errors="coerce"),
        }
    )
    for column in ("rating", "count", "date"):
        if shown[column].isna().all():  # implicit feedback, ratings rather than counts, a log without times
            shown = shown.drop(columns=column)
    st.dataframe(
        shown,
        width="stretch",
        hide_index=True,
        height=min(36 + 35 * len(shown), 400),
        column_config={
            "title": st.column_config.TextColumn("title", width="medium"),  # long titles wrap out of view
            "rating": st.column_config.NumberColumn("rating", format="%.1f ★", width=64),
            "count": st.column_config.NumberColumn("count", format="localized", width=72),
            "date": st.column_config.DateColumn("date", format="D MMM YYYY", width=96),
        },
    )
    held = history["part"].isin(("valid", "test"))
    if held.any():
        # only a split by time holds out the newest; the default one holds out a random tenth and a tenth
        which = " (the newest)" if rec.config.data.split in ("temporal", "global_time") else ""
        st.caption(
            f"{int(held.sum())} of these {len(history)}{which} are held out: the model never saw them, they measure it."
        )


def _delta(before: int, after: int) -> str:
    if before == after:
        return "="
    return f"▲{before - after}" if after < before else f"▼{after - before}"


render()
