"""Why this item? The attention subgraph, attributions, reason, faithfulness, counterfactual and what-if."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import adapters, context, listview, state
from dashboard.components import charts
from dashboard.components.graph_view import network_html
from dashboard.components.html import badge, headline, note, rec_cards, table, tiles
from dashboard.components.text import md, md_code
from dashboard.components.widgets import bound_selectbox, user_picker
from dashboard.settings import asset

GRAPH_HEIGHT = 540
TABS = ("Attributions", "History influence", "What-if editor")


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    rec = cur.rec
    st.header("Why this item?", anchor=False)
    if not cur.is_gat:
        st.info(
            f"Explanations need the graph attention model; **{md(cur.row.get('model'))}** has no attention to "
            "show. Pick a *gat* model in the sidebar.",
            icon=":material/hub:",
        )
        context.write_url("why", "user", "item")
        st.stop()
    col_user, col_item = st.columns([2, 3], vertical_alignment="bottom")
    with col_user:
        user = user_picker(cur, key_prefix="why_")
    if user is None:
        st.stop()
    with col_item:
        item = _item_picker(cur, user)
    if item is None:
        st.stop()

    try:
        with st.spinner("Explaining: attention, Integrated Gradients, counterfactual…"):
            exp = adapters.explain(rec, user, item, k=int(context.selection().get("k") or context.DEFAULT_K))
    except adapters.FeatureUnavailableError as exc:
        st.info(md(exc), icon=":material/hourglass_empty:")
        st.stop()
    except (KeyError, ValueError) as exc:  # unknown ids, or a user the model cannot explain
        st.warning(f"This pair cannot be explained: {md(exc)}", icon=":material/help:")
        st.stop()

    st.html(headline("Why ", exp.item_title, f" for {user}?"))
    if exp.fallback:
        st.html(note(exp.reason, "warn"))
        st.caption(f"Not personalised: {md(exp.fallback)}.")
        context.write_url("why", "user", "item")
        return

    graph_col, side_col = st.columns([3, 2], gap="medium")
    with side_col:
        k = int(context.selection().get("k") or context.DEFAULT_K)
        _summary(exp, listview.rank_tile(rec, user, item, k, context.selection(), exp.rank))
    with graph_col:
        _graph(cur, exp)
    # Lazy tabs: only the open one runs and is sent to the browser. The history table and the
    # what-if editor's catalog-wide multiselect cost the browser time on every load otherwise.
    tabs = st.tabs(TABS, key="w_why_tab", on_change="rerun")
    draws = (lambda: _attributions(exp), lambda: _history(exp), lambda: _what_if(cur, user, exp))
    for tab, draw in zip(tabs, draws, strict=True):
        if tab.open:
            with tab:
                draw()
    context.write_url("why", "user", "item", "k", *listview.LIST_KEYS)


def _item_picker(cur: context.Current, user: str) -> str | None:
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
    top = rec.recommend(user, int(sel.get("k") or context.DEFAULT_K)).items
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


def _summary(exp: Any, list_rank: tuple[str, str] | None = None) -> None:
    cf = exp.counterfactual
    rank = list_rank or (f"#{exp.rank}" if exp.rank else "seen", "among items the user has not seen")
    st.html(
        tiles(
            [
                ("rank", *rank),
                ("score", f"{exp.score:.3f}", f"{exp.baseline_score:.3f} without any subgraph edge"),
                (
                    "subgraph",
                    f"{len(exp.subgraph_nodes):,} nodes",
                    f"{int(exp.subgraph_nodes['in_display'].sum())} shown",
                ),
            ]
        )
    )
    st.html(note(exp.reason))
    label, tone, detail = adapters.faithfulness_badge(exp)
    st.html(f"<div>{badge(label, tone, title=detail)}</div>")
    st.caption(md(detail))
    if cf is not None and cf.found and len(cf.removed):
        st.markdown(
            "**Counterfactual** — without these interactions it leaves the top "
            f"{cf.k} (#{cf.old_rank} → #{cf.new_rank}):"
        )
        st.html(table(cf.removed[["title", "rating", "attribution"]], {"attribution": ".4f"}))
    gap = exp.completeness
    if gap == gap:  # not NaN: IG completeness check
        st.caption(
            f"Integrated Gradients completeness: attributions sum to score − baseline within {abs(gap):.1e}. "
            f"Computed in {exp.timings.get('total', float('nan')):.2f} s."
        )


def _graph(cur: context.Current, exp: Any) -> None:
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
    dark = _is_dark()
    key = f"graph|{cur.key}|{exp.user_id}|{exp.item_id}|{measure}|{layer_v}|{head_v}|{dark}"

    def build() -> str:
        nodes, edges = adapters.graph_frames(exp, measure=measure, layer=layer_v, head=head_v)
        return network_html(nodes, edges, dark=dark, height=GRAPH_HEIGHT, options_file=asset("pyvis_options.json"))

    page = state.rendered(build, key)
    st.iframe(page, height=GRAPH_HEIGHT + 10, alt="Attention subgraph of the user and the recommended item")
    st.caption(
        "Hover a node or an edge for details; drag to rearrange, scroll to zoom. Edge width is the chosen "
        "measure; red edges push the score down."
    )


def _is_dark() -> bool:
    try:
        return st.context.theme.type == "dark"
    except AttributeError:  # older Streamlit or a bare test context
        return False


def _attributions(exp: Any) -> None:
    left, right = st.columns(2)
    inter = exp.interactions.copy()
    with left:
        if len(inter):
            inter["label"] = [
                f"{t} · {k} · {u}" if k != "history" else f"{t} (your history)"
                for t, k, u in zip(inter["title"], inter["kind"], inter["user_id"], strict=True)
            ]
            st.plotly_chart(
                charts.attribution_bars(inter, value="attribution", title="Which interactions drive the score (IG)"),
                width="stretch",
                key="edge_attr",
            )
    with right:
        groups = exp.feature_groups
        if len(groups):
            avail = groups[groups["available"].astype(bool)]
            st.plotly_chart(
                charts.attribution_bars(avail, value="attribution", title="Which input features drive the score (IG)"),
                width="stretch",
                key="group_attr",
            )
            missing = groups.loc[~groups["available"].astype(bool), "label"].tolist()
            if missing:
                st.caption(md("Not in this model: " + ", ".join(missing) + "."))


def _history(exp: Any) -> None:
    hist = exp.history_influence
    if not len(hist):
        st.caption("No training history.")
        return
    shown = hist.assign(categories=hist["categories"].map(lambda c: ", ".join(c)))[
        ["rank", "title", "categories", "rating", "attention", "influence", "attribution", "share_of_history"]
    ]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=320,
        column_config={
            "attention": st.column_config.NumberColumn(format="%.3f", help="softmax attention the user pays to it"),
            "influence": st.column_config.ProgressColumn(
                format="%.3f",
                min_value=0.0,
                max_value=float(max(hist["influence"].max(), 1e-9)),
                help="attention rollout into the user's embedding",
            ),
            "attribution": st.column_config.NumberColumn(format="%.4f", help="Integrated Gradients on the score"),
            "share_of_history": st.column_config.ProgressColumn("share", format="%.2f", min_value=-1.0, max_value=1.0),
        },
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
    st.html(rec_cards(new.sort_values("rank"), deltas=deltas, highlight={i for i, d in deltas.items() if d == "new"}))
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
