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
from dashboard.components.widgets import bound_k

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
        st.info(f"The fairness audit is not available yet ({type(exc).__name__}: {exc}).", icon=":material/info:")
        return None
    except ValueError as exc:  # e.g. no test users, or K larger than the catalog
        st.warning(f"This audit cannot run on this model and dataset: {exc}", icon=":material/warning:")
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
    tab_groups, tab_exposure, tab_trade, tab_models = st.tabs(
        ["User groups", "Item exposure", "Re-ranking trade-off", "Model comparison"]
    )
    with tab_groups:
        _groups(report, k)
    with tab_exposure:
        _exposure(report)
    with tab_trade:
        _tradeoff(plain, k, strength)
    with tab_models:
        _models(cur, k)
    _downloads(cur, report, k, reranker, strength)
    context.write_url("fairness", "k")


def _headline(report: Any, plain: Any, k: int) -> None:
    acc, beyond = report.accuracy, report.beyond_accuracy

    def delta(metric: str, source: str) -> str | None:
        if report is plain:
            return None
        base = getattr(plain, source)[metric]
        now = getattr(report, source)[metric]
        return f"{now - base:+.4f} vs model"

    st.html(
        tiles(
            [
                (f"NDCG@{k}", f"{acc[f'ndcg@{k}']:.4f}", delta(f"ndcg@{k}", "accuracy")),
                ("long-tail share (APLT)", f"{beyond['aplt']:.1%}", delta("aplt", "beyond_accuracy")),
                ("exposure Gini", f"{beyond['gini_index']:.3f}", delta("gini_index", "beyond_accuracy")),
                ("catalog coverage", f"{beyond['catalog_coverage']:.1%}", delta("catalog_coverage", "beyond_accuracy")),
                ("intra-list diversity", f"{beyond['ild_categories']:.3f}", "category Jaccard distance"),
                ("novelty", f"{beyond['novelty']:.2f}", "bits of self-information"),
            ]
        )
    )


def _groups(report: Any, k: int) -> None:
    groups = report.groups
    if groups.empty:
        st.info("No user group variables for this dataset.", icon=":material/info:")
        return
    c_f, c_m = st.columns(2)
    with c_f:
        feature = st.selectbox("Group users by", list(dict.fromkeys(groups["feature"])), key="w_fair_feature")
    with c_m:
        metric = st.selectbox("Metric", list(dict.fromkeys(groups["metric"])), key="w_fair_metric")
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
        st.dataframe(
            part[["group", "value", "ci_low", "ci_high", "size", "too_small"]],
            hide_index=True,
            width="stretch",
            column_config={c: st.column_config.NumberColumn(format="%.4f") for c in ("value", "ci_low", "ci_high")},
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
        x2 = "provider_gap" if "provider_gap" in table else "gini"
        st.plotly_chart(
            charts.tradeoff(table, x=x2, y=y, selected=strength, title=f"Accuracy vs {x2.replace('_', ' ')}"),
            width="stretch",
            key="trade_2",
        )
    st.dataframe(table, hide_index=True, width="stretch")


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
            st.warning(f"{name}: {exc}")
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
    keep = [
        c
        for c in (
            f"ndcg@{k}",
            f"recall@{k}",
            "aplt",
            "gini_index",
            "catalog_coverage",
            "novelty",
            "ild_categories",
            "popularity_gap",
            "provider_gap",
        )
        if c in frame
    ]
    st.dataframe(
        frame[keep], width="stretch", column_config={c: st.column_config.NumberColumn(format="%.4f") for c in keep}
    )


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
