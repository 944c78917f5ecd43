"""Fairness & diversity: what the audit found first, then group metrics with confidence intervals,
item exposure, the re-ranking trade-off, the model comparison and every metric.

The page leads with the findings (``service.audit_findings``): every significant gap between
user groups, largest first, and plain verdicts on exposure concentration and the long tail.
It opens on the grouping and metric of the first finding unless the link names others; the
grouping, metric, re-ranker and its strength are in the URL, so the address reproduces the view.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

import engine.service as service
from dashboard import adapters, context, state
from dashboard.components import charts
from dashboard.components.findings import findings_html
from dashboard.components.html import badge, deep_link, tiles
from dashboard.components.leaderboard import latest_per_model
from dashboard.components.report import audit_report_html
from dashboard.components.tables import HIGHER, LOWER, Col, metric_table
from dashboard.components.text import md
from dashboard.components.widgets import bound_k, bound_selectbox

N_BOOT = 1000
_SWEEPABLE = ("pop", "mmr", "calibrated")
_PAGE = "fairness"


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


def reranker_name(key: Any) -> str:
    """The re-ranker's one name, the same in the picker, the chart legend and the table."""
    return adapters.RERANKERS.get(str(key), str(key))


def fmt(metric: str, value: Any) -> str:
    """A metric value in the registry's format (``—`` when missing)."""
    text = service.format_value(metric, value)
    return "—" if text in ("–", "") else text


def _direction(metric: str) -> str | None:
    table = service.metric_glossary([metric])
    if table.empty:
        return None
    return {service.HIGHER: HIGHER, service.LOWER: LOWER}.get(table["direction"].iloc[0])


def metric_col(key: str, label: str | None = None) -> Col:
    """A table column for a registered metric: its label, definition tooltip, format and direction."""
    return Col(
        key, label or service.metric_label(key), service.metric_help(key), lambda v: fmt(key, v), _direction(key)
    )


def render() -> None:
    context.show_notices()
    cur = context.require_model()
    st.header("Fairness & diversity", anchor=False)
    st.caption(
        "Who is served well, which items get seen, and what mitigation costs. Test users only; "
        "groups smaller than the minimum size are flagged, not compared."
    )
    if cur.imported:
        _imported_note(cur)
    panel = st.container(border=True)  # the findings lead the page; filled once the audit is in
    with st.container(border=True):
        c_k, c_rr, c_s = st.columns([2, 2, 4], vertical_alignment="bottom")
        with c_k:
            k = bound_k("List length (K)", key="w_fair_k")
        with c_rr:
            reranker = bound_selectbox(
                "Re-ranker to study",
                _SWEEPABLE,
                "reranker",
                format_func=reranker_name,
                key="w_fair_reranker",
                help="A post-processing step that reorders the model's top 100 candidates per user.",
            )
        with c_s:
            top = 2.0 if reranker == "pop" else 1.0
            strength = _strength_slider(top)
    with st.spinner("Auditing (bootstrap confidence intervals)…"):
        sweep_spec = f"{reranker}:" + ",".join(f"{s / 10:g}" for s in range(0, int(top * 10) + 1))
        plain = run_audit(cur, k, sweep=sweep_spec)
        if plain is None:
            st.stop()
        report = plain if strength == 0 else run_audit(cur, k, rerank=f"{reranker}:{strength:g}")
    if report is None:
        st.stop()

    findings = service.audit_findings(report)
    _choose_default_view(report, findings, k)
    with panel:
        _findings_panel(cur, findings, report, k, reranker, strength)
    _headline(report, plain, k)
    tab_groups, tab_exposure, tab_trade, tab_models, tab_all = st.tabs(
        ["User groups", "Item exposure", "Re-ranking trade-off", "Model comparison", "All metrics"]
    )
    with tab_groups:
        _groups(report)
    with tab_exposure:
        _exposure(report)
    with tab_trade:
        _tradeoff(plain, k, strength)
    with tab_models:
        _models(cur, k)
    with tab_all:
        _all_metrics(report)
    _downloads(cur, report, k, reranker, strength)
    context.write_url(_PAGE, "k", "grouping", "metric", "reranker", "strength")


def _strength_slider(top: float) -> float:
    """The re-ranker strength, bound to ``selection()["strength"]`` (a link may set it)."""
    sel = context.selection()
    raw = sel.get("strength")
    try:
        value = float(raw) if raw not in (None, "") else 0.0
    except (TypeError, ValueError):
        context.notice(f"The link's strength={raw!r} is not a number; showing the model's own lists.")
        value = 0.0
    value = min(max(round(value, 1), 0.0), top)
    if st.session_state.get("w_fair_strength") != value:
        st.session_state["w_fair_strength"] = value

    def changed() -> None:
        sel["strength"] = f"{st.session_state['w_fair_strength']:g}"

    value = st.slider(
        "Re-ranker strength (0 = the model's own lists)", 0.0, top, step=0.1, key="w_fair_strength", on_change=changed
    )
    sel["strength"] = f"{value:g}" if value else None
    return float(value)


def _choose_default_view(report: Any, findings: pd.DataFrame, k: int) -> None:
    """Open on the first finding's grouping and metric unless the link (or the user) chose others."""
    sel = context.selection()
    groups = report.groups
    if groups.empty:
        return
    features = list(dict.fromkeys(groups["feature"]))
    metrics = list(dict.fromkeys(groups["metric"]))
    gaps = findings[findings["kind"] == "group gap"]
    first = gaps.iloc[0] if len(gaps) else None
    if sel.get("grouping") is not None and sel["grouping"] not in features:
        context.notice(f"The link's grouping {sel['grouping']!r} is not a user group variable here.")
        sel["grouping"] = None
    if sel.get("grouping") is None:
        sel["grouping"] = str(first["feature"]) if first is not None else features[0]
        if sel.get("metric") is None and first is not None:
            sel["metric"] = str(first["metric"])
    wanted = sel.get("metric")
    if wanted is not None and wanted not in metrics:
        # ndcg@10 in a link still means NDCG after K changed to 20
        base = str(wanted).split("@")[0]
        sel["metric"] = next((m for m in metrics if m.split("@")[0] == base), None)
    if sel.get("metric") is None:
        sel["metric"] = f"ndcg@{k}" if f"ndcg@{k}" in metrics else metrics[0]


def _findings_panel(
    cur: context.Current, findings: pd.DataFrame, report: Any, k: int, reranker: str, strength: float
) -> None:
    gaps = findings[findings["kind"] == "group gap"]
    st.subheader("What the audit found", anchor=False)
    lists = (
        f"the model's own top-{k} lists"
        if not strength
        else f"the top-{k} lists after the {reranker_name(reranker)} re-ranker at strength {strength:g}"
    )
    count = f"{len(gaps)} significant gap" + ("" if len(gaps) == 1 else "s")
    st.caption(
        f"{count} between user groups for {lists}, {report.settings.get('n_users_evaluated', '?')} test users. "
        "A gap is significant when the 95% bootstrap confidence interval of the difference excludes zero. "
        "Sorted by relative size: accuracy gaps between user attributes first, then usage segments "
        "(activity, mainstreamness), then differences in the lists' long-tail share and novelty. "
        "Click a grouping to open it below."
    )
    base = {"dataset": cur.row["dataset"], "model": cur.key, "k": k, "reranker": reranker}
    if strength:
        base["strength"] = f"{strength:g}"

    def link(row: Any) -> str:
        return deep_link(_PAGE, {**base, "grouping": row.feature, "metric": row.metric})

    st.html(findings_html(findings, fmt=fmt, fmt_diff=service.difference_text, link=link, limit=8))


def _imported_note(cur: context.Current) -> None:
    """Say what imported lists are audited on: the test users they cover, with which scores."""
    meta = cur.rec.meta
    metrics, lists = meta.get("metrics", {}), meta.get("lists", {})
    scores = "the file's scores" if lists.get("scores") == "file" else "rank-derived scores (the file has none)"
    st.info(
        md(
            f"{cur.row.get('model')} are recommendation lists imported from another system "
            f"({meta.get('source', {}).get('file', '?')}), audited as given on the "
            f"{metrics.get('test_users_covered', 0):,} of {metrics.get('test_users', 0):,} test users they cover; "
            f"the re-rankers choose among each list's {lists.get('length', '?')} items by {scores}."
        ),
        icon=":material/upload_file:",
    )


def _headline(report: Any, plain: Any, k: int) -> None:
    """Tiles for NDCG@K and the registry's headline list metrics; deltas against the plain lists."""
    values = {**report.accuracy, **report.beyond_accuracy}
    base = {**plain.accuracy, **plain.beyond_accuracy}
    keys = [f"ndcg@{k}", *[m for m in service.headline_metrics() if m in values]]

    def delta(key: str) -> str | None:
        if report is plain or key not in base:
            return None
        if service.table_format(key) == "percent":
            return f"{values[key] - base[key]:+.1%} vs model".replace("%", " pp")
        return f"{values[key] - base[key]:+.4f} vs model"

    st.html(tiles([(service.metric_label(m), service.format_value(m, values[m], unit=True), delta(m)) for m in keys]))
    glossary = service.metric_glossary(keys)
    st.caption(" · ".join(f"**{md(r.label)}**: {md(r.definition)}" for r in glossary.itertuples()))


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
    st.caption(f"Popularity tiers: {md(service.TIERS_DEFINITION)}")


def _groups(report: Any) -> None:
    groups = report.groups
    if groups.empty:
        st.info("No user group variables for this dataset.", icon=":material/info:")
        return
    c_f, c_m = st.columns(2)
    with c_f:
        feature = bound_selectbox(
            "Group users by", list(dict.fromkeys(groups["feature"])), "grouping", key="w_fair_feature"
        )
    with c_m:
        metric = bound_selectbox(
            "Metric",
            list(dict.fromkeys(groups["metric"])),
            "metric",
            format_func=service.metric_label,
            key="w_fair_metric",
            help="Hover a column title in the table for its definition.",
        )
    part = groups[(groups["feature"] == feature) & (groups["metric"] == metric)]
    label = service.metric_label(metric)
    percent = service.table_format(metric) == "percent"
    st.plotly_chart(
        charts.group_intervals(part, metric=label, feature=feature, percent=percent),
        width="stretch",
        key="group_ci",
    )
    disp = report.disparities
    row = disp[(disp["feature"] == feature) & (disp["metric"] == metric)]
    if len(row) and pd.notna(row["difference"].iloc[0]):
        r = row.iloc[0]
        significant = bool(r["significant"])
        verdict = "significant gap" if significant else "no significant gap"
        diff = service.difference_text
        st.html(
            badge(
                f"{verdict}: {r['max_group']} − {r['min_group']} = {diff(metric, r['difference'])} "
                f"(95% CI {diff(metric, r['ci_low'])} to {diff(metric, r['ci_high'])})",
                "bad" if significant else "good",
                title="95% bootstrap CI of the difference between the best and worst judged group",
            )
        )
    columns = [
        Col("group", "Group", text=True),
        Col("value", label, service.metric_help(metric), lambda v: fmt(metric, v), _direction(metric)),
        Col("ci_low", "95% CI low", "Lower end of the 95% bootstrap confidence interval", lambda v: fmt(metric, v)),
        Col("ci_high", "95% CI high", "Upper end of the 95% bootstrap confidence interval", lambda v: fmt(metric, v)),
        Col("size", "Users", "Test users in the group", lambda v: f"{int(v):,}"),
        Col("too_small", "Judged", "Groups under the minimum size are not compared", lambda v: "no" if v else "yes"),
    ]
    st.html(metric_table(part, columns, key="groups"))
    st.caption(
        f"Confidence intervals: {report.settings['n_boot']} bootstrap resamples of users; groups under "
        f"{report.settings['min_group_size']} users are flagged too small to judge. ★ marks the best group."
    )


def _exposure(report: Any) -> None:
    exposure = report.exposure
    dims = list(dict.fromkeys(exposure["dimension"]))
    left, right = st.columns(2)
    with left:
        dim = st.selectbox("Item groups", dims, key="w_fair_dimension", format_func=lambda d: f"by {d}")
        part = exposure[exposure["dimension"] == dim]
        gap_key = f"{dim}_gap"
        gap = report.exposure_gap.get(dim)
        title = f"Exposure by {dim}" + (f" — {service.metric_label(gap_key)} {fmt(gap_key, gap)}" if gap else "")
        st.plotly_chart(charts.exposure_bars(part, title=title), width="stretch", key="exposure")
    with right:
        st.plotly_chart(
            charts.lorenz(report.lorenz, gini=report.beyond_accuracy.get("gini_index")), width="stretch", key="lorenz"
        )
    notes = []
    if service.metric_help(f"{dim}_gap"):
        notes.append(f"**{md(service.metric_label(f'{dim}_gap'))}**: {md(service.metric_help(f'{dim}_gap'))}")
    if dim == "popularity":
        notes.append(f"**Popularity tiers**: {md(service.TIERS_DEFINITION)}")
    notes.append(
        "**Exposure**: each slot in a list counts, the top slots more (log-discounted by position, as in NDCG)."
    )
    st.caption(" · ".join(notes))


def _tradeoff(plain: Any, k: int, strength: float) -> None:
    table = plain.tradeoff
    if table is None or table.empty:
        st.info("No trade-off sweep in this audit.", icon=":material/info:")
        return
    y = f"ndcg@{k}"
    names = {str(r): reranker_name(r) for r in table["reranker"].unique()} if "reranker" in table else {}
    cols = st.columns(2)
    for col, x, key in ((cols[0], "aplt", "trade_aplt"), (cols[1], _second_axis(table), "trade_2")):
        with col:
            st.plotly_chart(
                charts.tradeoff(
                    table,
                    x=x,
                    y=y,
                    selected=strength,
                    title=f"Accuracy vs {service.metric_label(x).lower()}",
                    x_title=service.metric_label(x),
                    y_title=service.metric_label(y),
                    x_percent=service.table_format(x) == "percent",
                    names=names,
                ),
                width="stretch",
                key=key,
            )
    shown = table.copy()
    if "reranker" in shown:
        shown["reranker"] = shown["reranker"].map(reranker_name)
    cost = f"{y}_cost_per_aplt"
    columns = [Col("reranker", "Re-ranker", text=True), Col("strength", "Strength", fmt=lambda v: f"{v:g}")]
    columns += [metric_col(c) for c in shown.columns if service.metric_help(c) is not None]
    if cost in shown:
        columns.append(
            Col(
                cost,
                f"{service.metric_label(y)} lost per +1 pp long-tail share",
                f"Drop in {service.metric_label(y)} per percentage point of long-tail share gained since the "
                "previous strength (— at strength 0: nothing to compare with yet)",
                lambda v: f"{v / 100:.5f}",
            )
        )
    marked = [i for i, s in enumerate(shown["strength"]) if abs(float(s) - strength) < 1e-9]
    st.html(metric_table(shown, columns, mark_best=False, marked_rows=marked, key="tradeoff"))
    st.caption("The highlighted row is the strength chosen above; hover a column title for its definition.")


def _second_axis(table: pd.DataFrame) -> str:
    return "provider_gap" if "provider_gap" in table else "gini_index"


def _models(cur: context.Current, k: int) -> None:
    # the selected model first, then the newest version of every other model on the dataset
    latest = {str(cur.row.get("model")): cur.row, **latest_per_model(cur.rows)}
    latest[str(cur.row.get("model"))] = cur.row
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
        help="Loads each model once (cached) and runs the same audit, with bootstrap confidence intervals.",
    ):
        st.caption("Models: " + ", ".join(md(m) for m in sorted(latest)))
        return
    rows = []
    for name, row in latest.items():
        try:
            rec = state.load_recommender(str(cur.settings.cache_dir), row["path"])
        except state.ModelNotReadyError as exc:
            st.warning(f"{md(name)}: {md(exc)}")
            continue
        other = context.Current(cur.settings, row, rec, cur.rows)
        report = run_audit(other, k)
        if report is None:
            return
        gaps = report.disparities[report.disparities["metric"] == f"ndcg@{k}"]
        rows.append(
            {
                "model": name,
                **report.accuracy,
                **report.beyond_accuracy,
                **{f"{d}_gap": g for d, g in report.exposure_gap.items()},
                **{f"gap:{g.feature}": g.difference for g in gaps.itertuples()},
                **{f"sig:{g.feature}": bool(g.significant) for g in gaps.itertuples()},
            }
        )
    frame = pd.DataFrame(rows)
    wanted = [f"ndcg@{k}", f"recall@{k}", *service.headline_metrics(), "popularity_gap", "provider_gap"]
    columns = [Col("model", "Model", text=True)]
    columns += [metric_col(c) for c in dict.fromkeys(wanted) if c in frame]
    st.markdown("**Accuracy, diversity and exposure**")
    st.html(metric_table(frame, columns, key="models"))
    ndcg = service.metric_label(f"ndcg@{k}")
    gap_columns = [Col("model", "Model", text=True)]
    for column in [c for c in frame.columns if c.startswith("gap:")]:
        feature = column.split(":", 1)[1]
        gap_columns.append(
            Col(
                column,
                feature,
                f"{ndcg} of the best {feature} group minus the worst one (lower is better)",
                lambda v: fmt(f"ndcg@{k}", v),
                LOWER,
            )
        )
        frame[column] = frame[column].astype(float)
    if len(gap_columns) > 1:
        st.markdown(f"**Gaps between user groups** ({md(ndcg)} of the best group minus the worst, by grouping)")
        st.html(metric_table(frame, gap_columns, key="model_gaps", style=False))
    significant = [
        f"{m} by {c.split(':', 1)[1]}"
        for c in frame.columns
        if c.startswith("sig:")
        for m, on in zip(frame["model"], frame[c], strict=True)
        if pd.notna(on) and bool(on)
    ]
    st.caption(
        "★ marks the best value in each column (by the metric's direction; hover a column title for its "
        "definition). Significant gaps (95% CI of the difference excludes 0): "
        + (md(", ".join(significant)) if significant else "none")
        + "."
    )


def _downloads(cur: context.Current, report: Any, k: int, reranker: str, strength: float) -> None:
    c1, c2 = st.columns(2)
    stem = f"gatlens-audit-{cur.key}-k{k}" + (f"-{reranker}{strength:g}" if strength else "")
    with c1:
        st.download_button(
            "Download group table (CSV)",
            service.spreadsheet_safe_csv(report.groups),
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
