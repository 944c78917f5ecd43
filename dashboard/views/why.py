"""Why this item? For a PM first (reason, rank in words, focused graph, counterfactual), a data scientist second."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import adapters, context, listview, state
from dashboard.components import charts
from dashboard.components import why_focus as focus
from dashboard.components.graph_view import MAX_NODES as MAX_FULL_NODES
from dashboard.components.graph_view import network_html
from dashboard.components.html import headline, note, rec_cards, table, tiles
from dashboard.components.text import md, md_code
from dashboard.components.widgets import bound_k, bound_selectbox, user_picker
from dashboard.settings import asset

GRAPH_HEIGHT = 540
MIN_FOCUSED_HEIGHT = 320
LEGEND_HEIGHT = 40  # the colour legend above the canvas
TABS = ("Contributions", "Past items", "What-if editor")
# An exact decomposition first (its numbers add up), then Integrated Gradients.


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    rec = cur.rec
    st.header("Why this item?", anchor=False)
    methods = state.explain_methods(str(cur.row.get("model")))
    name = f"**{md(cur.row.get('model'))}**"
    if cur.imported:
        _nothing_to_explain(
            f"{name} holds lists imported from another system: there is no model behind them to explain, "
            "only the lists themselves. Audit them on the Fairness and Compare pages, or pick a trained "
            "model in the sidebar to see why it recommends what it does."
        )
    if not methods:
        _nothing_to_explain(
            f"{name} cannot explain its scores: explanations need a model whose score adds up from the "
            "user's past items (*gat*) or the user-item attention model (*uigat*). Pick one in the sidebar."
        )
    col_user, col_item, col_k = st.columns([5, 6, 3], vertical_alignment="bottom")
    with col_user:
        user = user_picker(cur, key_prefix="why_")
    if user is None:
        st.stop()
    with col_k:
        k = bound_k("List length (K)", key="w_why_k")
    with col_item:
        item = _item_picker(cur, user, k)
    if item is None:
        st.stop()

    try:
        with st.spinner("Explaining this recommendation…"):
            # No method named: the engine picks the model's default (an exact decomposition where it has
            # one, else IG), and the Recommendations page's reasons share the memoised explanation.
            exp = adapters.explain(rec, user, item, k=k)
    except adapters.FeatureUnavailableError as exc:
        st.info(md(exc), icon=":material/hourglass_empty:")
        st.stop()
    except (KeyError, ValueError) as exc:  # unknown ids, or a user the model cannot explain
        st.warning(f"This pair cannot be explained: {md(exc)}", icon=":material/help:")
        st.stop()

    context.write_url("why", "user", "item", "k", *listview.LIST_KEYS)
    st.html(headline("Why ", exp.item_title, f" for {user}?"))
    if exp.fallback:
        st.html(note(exp.reason, "warn"))
        st.caption(f"Not personalised: {md(exp.fallback)}.")
        return
    if exp.rank is None:
        _already_seen(cur, user, exp, k)
        return

    top = rec.recommend(user, k).items
    n_unseen = len(rec.items) - int((rec.history(user)["part"] == "train").sum())
    words = focus.rank_words(user, exp.rank, n_unseen, float(exp.score), top["score"].to_numpy(), k)
    cfv = focus.counterfactual_view(exp)
    _summary(cur, user, item, k, exp, words, cfv)
    graph_col, side_col = st.columns([3, 2], gap="medium")
    with graph_col:
        _graph(cur, exp, words)
    with side_col:
        _counterfactual(cfv)
    # Lazy tabs: only the open one runs and is sent to the browser. The history table and the
    # what-if editor's catalog-wide multiselect cost the browser time on every load otherwise.
    tabs = st.tabs(TABS, key="w_why_tab", on_change="rerun")
    draws = (lambda: _contributions(exp), lambda: _history(cur, user, exp), lambda: _what_if(cur, user, exp))
    for tab, draw in zip(tabs, draws, strict=True):
        if tab.open:
            with tab:
                draw()
    _for_data_scientists(exp)


def _item_picker(cur: context.Current, user: str, k: int) -> str | None:
    rec = cur.rec
    sel = context.selection()
    wanted = sel.get("item")
    ids = rec.items["item_id"].astype(str)
    if wanted is not None and not rec.has_item(str(wanted)):
        st.warning(
            f"There is no item **{md(wanted)}** in this catalog (item ids look like {md_code(ids.iloc[0])}); "
            "showing the user's top recommendation instead.",
            icon=":material/search_off:",
        )
        sel["item"] = wanted = None
    top = rec.recommend(user, k).items
    top_ids = top["item_id"].astype(str).tolist()
    if wanted is None:
        sel["item"] = top_ids[0] if top_ids else ids.iloc[0]
    titles = dict(zip(ids, rec.items["title"], strict=True))
    rank = {i: n + 1 for n, i in enumerate(top_ids)}
    options = top_ids + sorted(set(ids) - set(top_ids), key=lambda i: titles[i])
    if sel["item"] not in rank and sel["item"] in titles:
        options.remove(sel["item"])
        options.insert(0, sel["item"])
    return bound_selectbox(
        "Item (the user's top list first; type to search the catalog)",
        options,
        "item",
        format_func=lambda i: f"#{rank[i]} · {titles[i]}" if i in rank else f"{titles[i]} ({i})",
    )


def _already_seen(cur: context.Current, user: str, exp: Any, k: int) -> None:
    """The item is in the user's history: say so, and offer their top unseen item instead."""
    rec = cur.rec
    history = rec.history(user)
    row = history[history["item_id"].astype(str) == str(exp.item_id)]
    rating = float(row["rating"].iloc[0]) if len(row) and "rating" in row else float("nan")
    when = f" on {row['date'].iloc[0]}" if len(row) and "date" in row and row["date"].iloc[0] else ""
    st.html(
        note(
            f"{focus.rating_phrase(user, rating, title=exp.item_title)}{when}: it is already in their history, "
            "so it is not recommended to them. Recommendations are made only from items they have not seen.",
            "warn",
        )
    )
    top = rec.recommend(user, k).items
    if not len(top):
        return
    first_id, first_title = str(top["item_id"].iloc[0]), str(top["title"].iloc[0])

    def show_top() -> None:
        context.selection()["item"] = first_id

    st.button(
        f"Explain {user}'s top unseen item instead: {md(first_title)}",
        type="primary",
        icon=":material/arrow_forward:",
        on_click=show_top,
        key="w_why_top",
    )


def _summary(
    cur: context.Current, user: str, item: str, k: int, exp: Any, words: Any, cfv: focus.CounterfactualView
) -> None:
    cells: list[tuple[str, Any, str | None]] = [
        ("rank", words.value, words.of),
        (f"against the top {k}", words.versus, f"the #{k} item is the last one in {user}'s list"),
        ("what it rests on", cfv.headline, cfv.hint),
    ]
    listed = listview.rank_tile(cur.rec, user, item, k, context.selection(), exp.rank)
    if listed is not None:
        cells.insert(1, ("in the list shown", *listed))
    st.html(tiles(cells))
    st.html(note(exp.reason))


def _counterfactual(cfv: focus.CounterfactualView) -> None:
    st.markdown("**What would change it**")
    st.html(note(cfv.verdict, cfv.tone))
    if len(cfv.rows):
        st.html(table(cfv.rows.rename(columns={"title": "past item", "share": "share of this recommendation"})))
    if cfv.more:
        st.caption(f"+{cfv.more} more past items")


def _nothing_to_explain(message: str) -> None:
    """Say why this model has no Why page, keep the URL, and stop the script run."""
    st.info(message, icon=":material/hub:")
    context.write_url("why", "user", "item", "k")
    st.stop()


def _graph(cur: context.Current, exp: Any, words: Any) -> None:
    has_graph = len(exp.subgraph_nodes) > 0
    full = False
    if has_graph:
        full = st.toggle(
            "Show the full computation subgraph",
            key="w_why_full",
            help="Every user and item the model read for this score (the most influential "
            f"{MAX_FULL_NODES}), with attention and attention-flow views. The default view keeps only the "
            "past items and other users that count most.",
        )
    dark = _is_dark()
    height = GRAPH_HEIGHT
    if full:
        measure, layer_v, head_v = _measure_pickers(exp)
        key = f"graph|{cur.key}|{exp.user_id}|{exp.item_id}|{measure}|{layer_v}|{head_v}|{dark}"

        def build() -> str:
            nodes, edges = adapters.graph_frames(exp, measure=measure, layer=layer_v, head=head_v)
            return network_html(nodes, edges, dark=dark, height=height, options_file=asset("pyvis_options.json"))

        caption = (
            "Every node the model read for this score. Edge width is the chosen measure; red edges push the "
            "score down. Hover for details; scroll to zoom."
        )
    else:
        nodes, edges = focus.focused_frames(exp, rank=words)
        # As tall as its column of past items needs: a short history leaves no empty band.
        height = min(GRAPH_HEIGHT, max(MIN_FOCUSED_HEIGHT, 160 + 26 * int((nodes["kind"] == "history").sum())))
        key = f"focus|{cur.key}|{exp.user_id}|{exp.item_id}|{words.sentence}|{dark}|{height}"

        def build() -> str:
            return network_html(nodes, edges, dark=dark, height=height)

        caption = (
            f"{exp.user_id}'s past items that count most for this recommendation, and other users who chose it. "
            "Edge width is each one's share of the recommendation; hover a node or an edge for details."
        )
    page = state.rendered(build, key)
    st.iframe(page, height=height + LEGEND_HEIGHT, alt="What this recommendation rests on, as a graph")
    st.caption(caption)


def _measure_pickers(exp: Any) -> tuple[str, int | None, int | None]:
    c_m, c_l, c_h = st.columns([3, 2, 2])
    n_layers, n_heads = adapters.attention_heads(exp.edges)
    with c_m:
        measure = st.selectbox(
            "Edge width", list(adapters.WIDTH_MEASURES), format_func=adapters.WIDTH_MEASURES.get, key="w_why_measure"
        )
    with c_l:
        layer = st.selectbox(
            "Layer",
            ["all", *range(1, n_layers + 1)],
            key="w_why_layer",
            disabled=measure != "attention",
            help="Attention of one message-passing layer.",
        )
    with c_h:
        head = st.selectbox(
            "Head",
            ["mean", *range(n_heads)],
            key="w_why_head",
            disabled=measure != "attention",
            help="One attention head, or their mean.",
        )
    layer_v = None if layer == "all" or measure != "attention" else int(layer)
    head_v = None if head == "mean" or measure != "attention" else int(head)
    return measure, layer_v, head_v


def _is_dark() -> bool:
    try:
        return st.context.theme.type == "dark"
    except AttributeError:  # older Streamlit or a bare test context
        return False


def _contributions(exp: Any) -> None:
    left, right = st.columns(2)
    terms = focus.contributions(exp)
    with left:
        if len(terms):
            _share_chart(
                terms,
                "What counts for this recommendation",
                "Share of the recommendation",
                "Past item or other user",
                "edge_attr",
            )
            if (terms["value"] < 0).any():
                st.caption("Red bars weigh against the recommendation.")
    with right:
        groups = exp.feature_groups
        if len(groups):
            avail = groups[groups["available"].astype(bool)]
            _share_chart(
                avail, "Which kinds of input count", "Share of the score's input attribution", "Input", "group_attr"
            )
            missing = groups.loc[~groups["available"].astype(bool), "label"].tolist()
            if missing:
                st.caption(md("Not in this model: " + ", ".join(missing) + "."))
        else:
            _score_terms(exp)


def _share_chart(frame: pd.DataFrame, title: str, x_title: str, y_title: str, key: str) -> None:
    """Signed shares of one whole (``share`` column) as bars on a percent axis, with axis titles."""
    chart = charts.attribution_bars(frame, value="share", title=title, x_title=x_title, y_title=y_title, percent=True)
    st.plotly_chart(chart, width="stretch", key=key)


def _score_terms(exp: Any) -> None:
    """How a decomposable score adds up: the past items together, and each named residual term."""
    rest = focus.residuals(exp)
    if not len(rest):
        st.caption("This model's score adds up exactly from the user's past items; it reads no other inputs.")
        return
    terms = exp.terms.assign(label=exp.terms["label"].astype(str))
    _share_chart(terms, "How the score adds up", "Share of the score", "Term", "term_attr")
    meanings = [f"{label}: {meaning}" for label, meaning in zip(rest["label"], rest["meaning"], strict=True)]
    st.caption(md("; ".join(meanings) + "."))


def _history(cur: context.Current, user: str, exp: Any) -> None:
    past = focus.past_items(exp)
    if not len(past):
        st.caption("No training history.")
        return
    info = exp.history_influence.set_index("item_id")
    dated = cur.rec.history(user).drop_duplicates("item_id").set_index("item_id")
    shown = pd.DataFrame(
        {
            "past item": past["title"],
            "categories": past["item_id"].map(info["categories"]).map(lambda c: ", ".join(c) if c is not None else ""),
            "rating": past["rating"],
            "date": past["item_id"].map(dated["date"]) if "date" in dated else "",
            "share": past["size"],
            "effect": past["direction"],
        }
    )
    st.caption(f"All {len(past)} of {user}'s past items, by how much each counts for this recommendation.")
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=320,
        column_config={
            "rating": st.column_config.NumberColumn(format="%g ★"),
            "share": st.column_config.ProgressColumn(
                "share of this recommendation",
                format="percent",
                min_value=0.0,
                max_value=1.0,
                help="Each past item's part of everything this explanation attributes, in size (0-100 %).",
            ),
            "effect": st.column_config.TextColumn(help="Whether it raises or lowers the item's score."),
        },
    )


def _for_data_scientists(exp: Any) -> None:
    with st.expander("For data scientists", icon=":material/science:"):
        figures = focus.technical_figures(exp)
        st.html(table(pd.DataFrame(figures, columns=["figure", "value"])))
        st.caption(
            "Completeness: Integrated Gradients attributions sum to the score minus the baseline score; the gap "
            "measures the integration error. Exact decompositions have a gap of zero."
        )


def _what_if(cur: context.Current, user: str, exp: Any) -> None:
    rec = cur.rec
    k = int(context.selection().get("k") or context.DEFAULT_K)
    history = rec.history(user)
    train = history[history["part"] == "train"]
    titles = dict(zip(rec.items["item_id"].astype(str), rec.items["title"], strict=True))
    cf = exp.counterfactual
    suggested = cf.removed["item_id"].astype(str).tolist() if cf is not None and cf.found else []
    key = f"whatif|{cur.key}|{user}"
    with st.form(key="w_whatif_form", border=True):
        st.caption(
            "Edit the user's history and re-score the whole ranking (exact: only the affected part of "
            "the graph is recomputed). The counterfactual's interactions are pre-selected."
        )
        remove = st.multiselect(
            "Remove from history",
            train["item_id"].astype(str).tolist(),
            default=[i for i in suggested if i in set(train["item_id"].astype(str))],
            format_func=lambda i: titles.get(i, i),
            key="w_whatif_remove",
        )
        seen = set(history["item_id"].astype(str))
        add = st.multiselect(
            "Add to history (as a top rating, now)",
            [i for i in titles if i not in seen],
            format_func=lambda i: f"{titles[i]} ({i})",
            key="w_whatif_add",
        )
        submitted = st.form_submit_button("Re-score", type="primary", icon=":material/replay:")
    if submitted:
        try:
            st.session_state[key] = rec.what_if(user, add=add, remove=remove, k=k)
        except adapters.UNAVAILABLE as exc:
            st.info(f"What-if is not available yet ({md(exc)}).", icon=":material/hourglass_empty:")
            return
        except (KeyError, ValueError) as exc:
            st.warning(f"That edit cannot be scored: {md(exc)}", icon=":material/warning:")
            return
    result = st.session_state.get(key)
    if result is None:
        return
    items = result.items
    new = items[(items["new_rank"] >= 1) & (items["new_rank"] <= result.k)].copy()
    new = new.assign(
        rank=new["new_rank"],
        score=new["new_score"],
        categories=new["item_id"].map(lambda i: rec.items.set_index("item_id").loc[i, "categories"]),
        popularity=new["item_id"].map(dict(zip(rec.items["item_id"], rec.item_popularity, strict=True))),
    )
    deltas = {
        str(r.item_id): (
            "new"
            if r.old_rank == 0 or r.old_rank > result.k
            else ("=" if r.delta == 0 else (f"▲{r.delta}" if r.delta > 0 else f"▼{-r.delta}"))
        )
        for r in new.itertuples()
    }
    dropped = items[
        (items["old_rank"] >= 1)
        & (items["old_rank"] <= result.k)
        & ((items["new_rank"] > result.k) | (items["new_rank"] == 0))
    ]
    st.markdown(
        f"**New top {result.k}** after removing {len(result.removed)} and adding {len(result.added)} "
        f"interaction(s) — re-scored in {result.seconds:.2f} s:"
    )
    marked = {i for i, d in deltas.items() if d == "new"}
    st.html(rec_cards(new.sort_values("rank"), deltas=deltas, highlight=marked, verb=rec.interaction_verb))
    if len(dropped):
        st.html(
            note(
                "Left the list: "
                + "; ".join(f"{t} (was #{r})" for t, r in zip(dropped["title"], dropped["old_rank"], strict=True)),
                "warn",
            )
        )
    focus = items[items["item_id"] == exp.item_id]
    if len(focus):
        r = focus.iloc[0]
        where = f"#{int(r['new_rank'])}" if r["new_rank"] else "in the history"
        st.html(note(f"{exp.item_title}: #{int(r['old_rank'])} → {where}."))


render()
