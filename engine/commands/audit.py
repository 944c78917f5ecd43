"""``gatlens audit``: fairness, diversity and popularity-bias audit of a trained model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands.common import add_data_args, add_model_args, config_from_args, emit_json, load_recommender


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="accuracy, beyond-accuracy, user-group and item-exposure audit (with re-ranking)",
        description="Audit a trained model (trained first if none is cached): accuracy and beyond-accuracy "
        "metrics, per-group accuracy with bootstrap CIs, item exposure by popularity / provider / category, "
        "and optionally a re-ranker, a re-ranking sweep or a side-by-side comparison of models.",
    )
    add_data_args(p)
    add_model_args(p)
    _accept_list_labels(p)
    p.add_argument(
        "--truth",
        default=None,
        help="held-out interactions file (user_id,item_id[,rating]; CSV or Parquet) to score the lists against "
        "instead of the dataset's test part",
    )
    p.add_argument(
        "--groups",
        default=None,
        help="comma-separated user group variables, e.g. gender,age,activity "
        "(default: every users-table attribute that is not an identifier, plus activity and mainstreamness)",
    )
    p.add_argument(
        "--rerank", default=None, help="re-rank before evaluating, e.g. mmr:0.3, pop:0.5, calibrated:0.4, provider:0.3"
    )
    p.add_argument(
        "--sweep",
        default=None,
        help="trade-off table over a re-ranker's strength: pop, mmr, calibrated, provider or pop:0,0.5,1",
    )
    p.add_argument(
        "--compare",
        default=None,
        help="comma-separated models or imported lists to audit side by side, e.g. gat,vendor,pop "
        "(models are trained or loaded)",
    )
    p.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    p.add_argument("--metrics", default=None, help="per-user metrics broken down by group (default: ndcg@K,recall@K)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs; 0 = none (default: 1000)")
    p.add_argument("--candidates", type=int, default=100, help="candidates per user for re-ranking (default: 100)")
    p.add_argument("--part", default="test", choices=("test", "valid"), help="held-out part (default: test)")
    p.add_argument("--min-group-size", type=int, default=30, help="smaller groups are flagged (default: 30)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_audit_command, force=False)


def _accept_list_labels(p: argparse.ArgumentParser) -> None:
    """``--model`` also takes the label of imported lists, so its registry choices are checked in the command."""
    for action in p._actions:
        if action.dest == "model":
            action.choices = None
            action.help = "a registered model (trained or loaded), or imported lists' label (default: gat)"


def _served(args: argparse.Namespace, name: str) -> Any:
    """The model ``name`` (trained or loaded) or, for a name no model has, the imported lists of that label."""
    from engine import service

    if name in service.model_names():
        config = config_from_args(args).with_overrides(model={"name": name})
        return service.train(config, progress=sys.stderr.isatty(), cache_dir=Path(args.cache_dir))
    base = config_from_args(args).with_overrides(model={"name": "pop"})
    return service.load_lists(base, name, cache_dir=Path(args.cache_dir))


def _audit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "k": args.k,
        "groups": args.groups,
        "rerank": args.rerank,
        "sweep": args.sweep,
        "n_boot": args.n_boot,
        "candidates": args.candidates,
        "metrics": args.metrics,
        "part": args.part,
        "min_group_size": args.min_group_size,
        "seed": args.seed,
        **({"truth": str(Path(args.truth).resolve())} if args.truth else {}),
    }


def run_audit_command(args: argparse.Namespace) -> int:
    from engine import service

    if args.compare:
        names = [n.strip() for n in args.compare.split(",") if n.strip()]
        if not names:
            raise ValueError(
                f"--compare takes model names from {list(service.model_names())} or imported lists' labels "
                f"(got {args.compare!r})"
            )
        recs = {name: _served(args, name) for name in names}
        table = service.compare(recs, **_audit_kwargs(args))
        if args.json:
            from engine.fairness.audit import jsonable

            emit_json(jsonable({"compare": table.reset_index().to_dict("records"), "settings": _audit_kwargs(args)}))
        else:
            _print_compare(table, args)
        return 0

    rec = load_recommender(args) if args.model in service.model_names() else _served(args, args.model)
    report = rec.audit(**_audit_kwargs(args))
    if args.json:
        emit_json(report.to_dict())
        return 0
    _print_report(report)
    return 0


# --------------------------------------------------------------------------- human output
# Labels and number formats come from the metric registry (engine.service re-exports it), so a
# newly registered metric is printed with its own name and format without an edit here.


def _f(x: Any, digits: int = 4) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if value != value else f"{value:.{digits}f}"


def _v(key: str, value: Any) -> str:
    """``value`` in the registry's format for ``key`` (``-`` when missing)."""
    from engine.service import format_value

    text = format_value(key, value)
    return "-" if text == "–" else text


def _label(key: str) -> str:
    from engine.service import metric_label

    return metric_label(key)


def _table(rows: list[list[str]], header: list[str], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [indent + "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    for r in rows:
        lines.append(indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def _print_metrics(report: Any) -> None:
    """Accuracy on one line, then every registered list metric: label, value with unit, direction."""
    from engine.service import values_table

    s = report.settings
    acc = report.accuracy
    keys = [m for m in s["metrics"] if m in acc] + [m for m in (f"mrr@{s['k']}", f"hit@{s['k']}") if m in acc]
    print("\nAccuracy      " + "  ".join(f"{_label(m)} {_v(m, acc[m])}" for m in dict.fromkeys(keys)))
    table = values_table(report.beyond_accuracy)
    rows = [[r.label, r.text, r.direction] for r in table.itertuples()]
    print("\nBeyond accuracy")
    print(_table(rows, ["metric", "value", "better"]))
    if report.baseline is not None:
        base = report.baseline
        first = s["metrics"][0]
        parts = [f"{_label(first)} {_v(first, base['accuracy'].get(first))} -> {_v(first, acc.get(first))}"]
        parts.append(
            f"{_label('aplt')} {_v('aplt', base['beyond_accuracy'].get('aplt'))} -> "
            f"{_v('aplt', report.beyond_accuracy.get('aplt'))}"
        )
        for dim, gap in base["exposure_gap"].items():
            if dim != "category":
                parts.append(f"{dim} gap {_f(gap, 3)} -> {_f(report.exposure_gap.get(dim), 3)}")
        print("\nRe-ranking    " + "  ".join(parts))


def _print_groups(report: Any) -> None:
    s = report.settings
    ci_pct = round(100 * s["ci"])
    print(
        f"\nUser groups: mean per group with {ci_pct}% bootstrap CI ({s['n_boot']} resamples); "
        f"* = fewer than {s['min_group_size']} users, shown but not compared"
    )
    metrics = s["metrics"]
    rows = []
    wide = report.groups.pivot_table(
        index=["feature", "group"],
        columns="metric",
        values=["value", "ci_low", "ci_high"],
        sort=False,
        dropna=False,  # --n-boot 0 leaves every CI NaN; keep the columns and print "-"
    )
    sizes = report.groups.drop_duplicates(["feature", "group"]).set_index(["feature", "group"])
    for feature, group in sizes.index:
        size = sizes.loc[(feature, group)]
        cells = [feature, group + ("*" if size["too_small"] else ""), str(int(size["size"]))]
        for m in metrics:
            v = wide.loc[(feature, group)]
            cells.append(f"{_v(m, v[('value', m)])} [{_v(m, v[('ci_low', m)])}, {_v(m, v[('ci_high', m)])}]")
        rows.append(cells)
    print(_table(rows, ["feature", "group", "n", *[f"{_label(m)} [CI]" for m in metrics]]))

    print(f"\nLargest gap between judged groups (best - worst, {ci_pct}% CI; significant = CI excludes 0)")
    rows = []
    for r in report.disparities.itertuples():
        if r.max_group is None or r.max_group != r.max_group:
            rows.append([r.feature, _label(r.metric), "fewer than 2 groups large enough", "", "", ""])
            continue
        rows.append(
            [
                r.feature,
                _label(r.metric),
                f"{r.max_group} - {r.min_group}",
                f"{_f(r.difference)} [{_f(r.ci_low)}, {_f(r.ci_high)}]",
                f"{_f(r.ratio, 3)} [{_f(r.ratio_ci_low, 3)}, {_f(r.ratio_ci_high, 3)}]",
                "yes" if r.significant else "no",
            ]
        )
    print(_table(rows, ["feature", "metric", "groups", "difference [CI]", "ratio [CI]", "significant"]))


def _print_exposure(report: Any) -> None:
    from engine.service import TIERS_DEFINITION

    s = report.settings
    print(f"\nItem exposure ({s['exposure_weighting']} position weights) vs catalog and interaction share")
    rows = []
    for dim, frame in report.exposure.groupby("dimension", sort=False):
        shown_frame = frame.head(8) if dim == "category" else frame
        for r in shown_frame.itertuples():
            rows.append(
                [
                    dim,
                    r.group,
                    _f(r.exposure_share, 3),
                    _f(r.catalog_share, 3),
                    _f(r.interaction_share, 3),
                    _f(r.exposure_ratio, 2),
                ]
            )
        rows.append([dim, "(gap)", _f(report.exposure_gap[dim], 3), "", "", ""])
    print(_table(rows, ["dimension", "group", "exposure", "catalog", "interactions", "ratio"]))
    print(f"  Popularity tiers: {TIERS_DEFINITION}")


def _print_tradeoff(report: Any) -> None:
    t = report.tradeoff
    print(f"\nTrade-off: {t['reranker'].iloc[0]} re-ranking strength vs accuracy, long tail and exposure")
    cols = [c for c in t.columns if c != "reranker"]
    rows = [[_f(r[c], 1) if c == "strength" else _v(c, r[c]) for c in cols] for _, r in t.iterrows()]
    print(_table(rows, [_label(c) for c in cols]))


def _print_coverage(report: Any) -> None:
    """What the audit was scored against, and for imported lists which users they cover."""
    s = report.settings
    truth, lists = s.get("truth"), s.get("lists")
    if truth:
        print(
            f"Scored against {truth['file']}: {truth['relevant_rows']:,} of {truth['rows']:,} rows relevant, "
            f"{truth['users']:,} users"
            + (
                f" ({truth['users_without_history']:,} without history left out)"
                if truth["users_without_history"]
                else ""
            )
        )
    if lists:
        held = "the truth file" if truth else f"the {s['part']} part"
        print(
            f"Imported lists: cover {lists['users_covered']:,} of the {lists['users_held_out']:,} users with items in "
            f"{held} ({lists['users_listed']:,} users listed, {lists['length']} items each); only covered users "
            "are audited"
        )
        if lists["scores"] == "rank-derived":
            print("  The file has no scores: the re-rankers use rank-derived scores ((L + 1 - rank) / L).")
        if lists["seen_items_listed"]:
            print(f"  {lists['seen_items_listed']:,} listed items were already in the users' training data (misses).")


def _print_report(report: Any) -> None:
    s = report.settings
    rerank = f", re-ranked {s['rerank']}" if s["rerank"] else ""
    kind = " (imported lists)" if s.get("lists") else ""
    print(
        f"Audit of {s['model']}{kind} on {s['dataset']}: {s['part']} part, {s['n_users_evaluated']} users, "
        f"K={s['k']}{rerank} ({report.seconds:.2f}s)"
    )
    _print_coverage(report)
    _print_metrics(report)
    _print_groups(report)
    _print_exposure(report)
    if report.tradeoff is not None:
        _print_tradeoff(report)


def _print_compare(table: Any, args: argparse.Namespace) -> None:
    from engine.service import list_metric_keys

    k = args.k
    cols = [f"ndcg@{k}", f"recall@{k}", *list_metric_keys(), "popularity_gap", "provider_gap"]
    cols += [c for c in table.columns if c.startswith("max_gap_")]
    cols = [c for c in dict.fromkeys(cols) if c in table.columns]
    rows = [
        [
            f"{name} (imported, {int(row['users_audited']):,} users)" if row.get("imported") else str(name),
            *[_v(c, row[c]) if c != "max_gap_feature" else str(row[c]) for c in cols],
        ]
        for name, row in table.iterrows()
    ]
    print(f"Models compared on {args.dataset} (K={k}, {args.part} part)")
    print(_table(rows, ["model", *[_label(c) for c in cols]]))
