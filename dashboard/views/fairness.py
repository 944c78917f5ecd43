"""Fairness & diversity: group metrics with confidence intervals, item exposure, Lorenz/Gini, trade-offs."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import adapters, context, state
from dashboard.components import charts
from dashboard.components.html import badge, tiles
from dashboard.components.report import audit_report_html
from dashboard.components.text import md
from dashboard.components.widgets import bound_k
from engine import service

N_BOOT = 1000
_SWEEPABLE = ("pop", "mmr", "calibrated")


def run_audit(
    cur: context.Current, k: int, *, sweep: str | None = None, rerank: str | None = None, n_boot: int = N_BOOT
) -> Any:
    """The cached audit of one model (``None`` with a message when the audit module is missing)."""
    options: dict[str, Any] = {"k": k, "n_boot": n_boot, "metrics": [f"ndcg@{k}", f"recall@{k}", "aplt", "novelty"]}
    if sweep:
        options["sweep"] = sweep
    if rerank:
        options["rerank"] = rerank
    try:
        return state.audit(cur.rec, cur.key, json.dumps(options, sort_keys=True))
    except adapters.UNAVAILABLE as exc:
        st.info(f"The fairness audit is not available yet ({type(exc).__name__}: {md(exc)}).", icon=":material/info:")
        return None
    except ValueError as exc:  # e.g. no test users, or K larger than the catalog
        st.warning(f"This audit cannot run on this model and dataset: {md(exc)}", icon=":material/warning:")
        return None


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    st.header("Fairness & diversity", anchor=False)
    st.caption(
        "Who is served well, which items get seen, and what mitigation costs. Test users only; "
        "groups smaller than the minimum size are flagged, not compared."
    )
    with st.container(border=True):
        c_k, c_rr, c_s = st.columns([2, 2, 4], vertical_alignment="bottom")
        with c_k:
            k = bound_k("List length (K)", key="w_fair_k")
        with c_rr:
            reranker = st.selectbox(
                "Re-ranker to study", _SWEEPABLE, format_func=adapters.RERANKERS.get, key="w_fair_reranker"
            )
        with c_s:
            top = 2.0 if reranker == "pop" else 1.0
            strength = st.slider(
                "Re-ranker strength (0 = the model's own lists)", 0.0, top, 0.0, 0.1, key="w_fair_strength"
            )
    with st.spinner("Auditing (bootstrap confidence intervals)…"):
        sweep_spec = f"{reranker}:" + ",".join(f"{s / 10:g}" for s in range(0, int(top * 10) + 1))
        plain = run_audit(cur, k, sweep=sweep_spec)
        if plain is None:
            st.stop()
        report = plain if strength == 0 else run_audit(cur, k, rerank=f"{reranker}:{strength:g}")
    if report is None:
        st.stop()

    _headline(report, plain, k)
    tab_groups, tab_exposure, tab_trade, tab_models, tab_all = st.tabs(
        ["User groups", "Item exposure", "Re-ranking trade-off", "Model comparison", "All metrics"]
    )
    with tab_groups:
        _groups(report, k)
    with tab_exposure:
        _exposure(report)
    with tab_trade:
        _tradeoff(plain, k, strength)
    with tab_models:
        _models(cur, k)
    with tab_all:
        _all_metrics(report)
    _downloads(cur, report, k, reranker, strength)
    context.write_url("fairness", "k")


def _headline(report: Any, plain: Any, k: int) -> None:
    """Tiles for NDCG@K and the registry's headline list metrics; deltas against the plain lists."""
    values = {**report.accuracy, **report.beyond_accuracy}
    base = {**plain.accuracy, **plain.beyond_accuracy}
    keys = [f"ndcg@{k}", *[m for m in service.headline_metrics() if m in values]]

    def delta(key: str) -> str | None:
        if report is plain or key not in base:
            return None
        return f"{values[key] - base[key]:+.4f} vs model"

    st.html(tiles([(service.metric_label(m), service.format_value(m, values[m], unit=True), delta(m)) for m in keys]))
    glossary = service.metric_glossary(keys)
    st.caption(" · ".join(f"**{r.label}**: {r.definition}" for r in glossary.itertuples()))


def _all_metrics(report: Any) -> None:
    """Every registered metric the audit measured, with its plain-words definition."""
    table = service.values_table({**report.accuracy, **report.beyond_accuracy})
    st.dataframe(
        table[["label", "text", "direction", "definition", "reference"]],
        hide_index=True,
        width="stretch",
        key="all_metrics",
        column_config={
            "label": st.column_config.TextColumn("Metric"),
            "text": st.column_config.TextColumn("Value"),
            "direction": st.column_config.TextColumn("Better"),
            "definition": st.column_config.TextColumn("What it means", width="large"),
            "reference": st.column_config.TextColumn("Reference"),
        },
    )
    st.caption(f"Popularity tiers: {service.TIERS_DEFINITION}")


def _groups(report: Any, k: int) -> None:
    groups = report.groups
    if groups.empty:
        st.info("No user group variables for this dataset.", icon=":material/info:")
        return
    c_f, c_m = st.columns(2)
    with c_f:
        feature = st.selectbox("Group users by", list(dict.fromkeys(groups["feature"])), key="w_fair_feature")
    with c_m:
        metric = st.selectbox(
            "Metric",
            list(dict.fromkeys(groups["metric"])),
            format_func=service.metric_label,
            key="w_fair_metric",
            help="Hover a metric's column in the tables below for its definition.",
        )
    part = groups[(groups["feature"] == feature) & (groups["metric"] == metric)]
    chart, table = st.columns([3, 2])
    with chart:
        st.plotly_chart(charts.group_intervals(part, metric=metric, feature=feature), width="stretch", key="group_ci")
    with table:
        disp = report.disparities
        row = disp[(disp["feature"] == feature) & (disp["metric"] == metric)]
        if len(row) and pd.notna(row["difference"].iloc[0]):
            r = row.iloc[0]
            tone = "bad" if bool(r["significant"]) else "good"
            verdict = "significant gap" if bool(r["significant"]) else "no significant gap"
            st.html(
                badge(
                    f"{verdict}: {r['max_group']} − {r['min_group']} = {r['difference']:.4f} "
                    f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
                    tone,
                    title="95% bootstrap CI of the difference between the best and worst judged group",
                )
            )
        fmt = service.table_format(metric)
        st.dataframe(
            part[["group", "value", "ci_low", "ci_high", "size", "too_small"]],
            hide_index=True,
            width="stretch",
            column_config={
                "group": st.column_config.TextColumn("Group"),
                "value": st.column_config.NumberColumn(
                    service.metric_label(metric), format=fmt, help=service.metric_help(metric)
                ),
                "ci_low": st.column_config.NumberColumn("CI low", format=fmt, help="Lower end of the 95% bootstrap CI"),
                "ci_high": st.column_config.NumberColumn(
                    "CI high", format=fmt, help="Upper end of the 95% bootstrap CI"
                ),
                "size": st.column_config.NumberColumn("Users", format="%d"),
                "too_small": st.column_config.CheckboxColumn("Too small to judge"),
            },
        )
    st.caption(
        f"Confidence intervals: {report.settings['n_boot']} bootstrap resamples of users; groups under "
        f"{report.settings['min_group_size']} users are flagged too small to judge."
    )


def _exposure(report: Any) -> None:
    exposure = report.exposure
    dims = list(dict.fromkeys(exposure["dimension"]))
    left, right = st.columns(2)
    with left:
        dim = st.selectbox("Item groups", dims, key="w_fair_dimension")
        part = exposure[exposure["dimension"] == dim]
        gap = report.exposure_gap.get(dim)
        title = f"Exposure by {dim}" + (f" — gap {gap:.3f}" if gap is not None else "")
        st.plotly_chart(charts.exposure_bars(part, title=title), width="stretch", key="exposure")
    with right:
        st.plotly_chart(
            charts.lorenz(report.lorenz, gini=report.beyond_accuracy.get("gini_index")), width="stretch", key="lorenz"
        )
    st.caption(report.settings.get("definitions", {}).get("exposure_gap", ""))


def _tradeoff(plain: Any, k: int, strength: float) -> None:
    table = plain.tradeoff
    if table is None or table.empty:
        st.info("No trade-off sweep in this audit.", icon=":material/info:")
        return
    y = f"ndcg@{k}"
    cols = st.columns(2)
    with cols[0]:
        st.plotly_chart(
            charts.tradeoff(table, x="aplt", y=y, selected=strength, title="Accuracy vs long-tail share"),
            width="stretch",
            key="trade_aplt",
        )
    with cols[1]:
        x2 = "provider_gap" if "provider_gap" in table else "gini_index"
        st.plotly_chart(
            charts.tradeoff(
                table, x=x2, y=y, selected=strength, title=f"Accuracy vs {service.metric_label(x2).lower()}"
            ),
            width="stretch",
            key="trade_2",
        )
    st.dataframe(table, hide_index=True, width="stretch", column_config=_metric_columns(table.columns))


def _metric_columns(columns: Any) -> dict[str, Any]:
    """Plain column names, registry formats and definition tooltips for metric columns."""
    config: dict[str, Any] = {}
    for column in columns:
        base, _, suffix = str(column).partition("_cost_per_aplt")
        if _:
            what = "from strength 0" if suffix else "since the previous strength"
            config[column] = st.column_config.NumberColumn(
                f"{service.metric_label(base)} lost per long-tail share ({what})",
                format="%.4f",
                help="Drop in accuracy per unit (100 percentage points) of long-tail share gained",
            )
        elif service.metric_help(column) is not None:
            config[column] = st.column_config.NumberColumn(
                service.metric_label(column), format=service.table_format(column), help=service.metric_help(column)
            )
    return config


def _models(cur: context.Current, k: int) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for row in cur.rows:
        latest.setdefault(str(row.get("model")), row)
    if len(latest) < 2:
        st.info(
            "Only one model is trained on this dataset; train a baseline to compare "
            "(`gatlens train --model lightgcn`).",
            icon=":material/info:",
        )
        return
    if not st.toggle(
        "Audit every model on this dataset",
        key="w_fair_all",
        help="Loads each model once (cached) and runs the same audit.",
    ):
        st.caption(", ".join(sorted(latest)))
        return
    rows = []
    for name, row in latest.items():
        try:
            rec = state.load_recommender(str(cur.settings.cache_dir), row["path"])
        except state.ModelNotReadyError as exc:
            st.warning(f"{md(name)}: {md(exc)}")
            continue
        other = context.Current(cur.settings, row, rec, cur.rows)
        report = run_audit(other, k, n_boot=0)
        if report is None:
            return
        rows.append(
            {
                "model": name,
                **report.accuracy,
                **report.beyond_accuracy,
                **{f"{d}_gap": g for d, g in report.exposure_gap.items()},
            }
        )
    frame = pd.DataFrame(rows).set_index("model")
    wanted = [f"ndcg@{k}", f"recall@{k}", *service.headline_metrics(), "popularity_gap", "provider_gap"]
    keep = [c for c in dict.fromkeys(wanted) if c in frame]
    st.dataframe(frame[keep], width="stretch", column_config=_metric_columns(keep))


def _downloads(cur: context.Current, report: Any, k: int, reranker: str, strength: float) -> None:
    c1, c2 = st.columns(2)
    stem = f"gatlens-audit-{cur.key}-k{k}" + (f"-{reranker}{strength:g}" if strength else "")
    with c1:
        st.download_button(
            "Download group table (CSV)",
            report.groups.to_csv(index=False).encode(),
            file_name=f"{stem}-groups.csv",
            mime="text/csv",
            icon=":material/download:",
            width="stretch",
            on_click="ignore",
        )
    with c2:
        # Built only when clicked (plotly.js is inlined, ~4.6 MB): the page stays fast.
        st.download_button(
            "Download full report (HTML)",
            lambda: audit_report_html(report, title=f"GATLens audit · {cur.key}").encode(),
            file_name=f"{stem}.html",
            mime="text/html",
            icon=":material/description:",
            width="stretch",
            on_click="ignore",
        )


render()
