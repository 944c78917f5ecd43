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
        help="comma-separated models to audit side by side, e.g. gat,lightgcn,pop (each trained or loaded)",
    )
    p.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    p.add_argument("--metrics", default=None, help="per-user metrics broken down by group (default: ndcg@K,recall@K)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for CIs; 0 = none (default: 1000)")
    p.add_argument("--candidates", type=int, default=100, help="candidates per user for re-ranking (default: 100)")
    p.add_argument("--part", default="test", choices=("test", "valid"), help="held-out part (default: test)")
    p.add_argument("--min-group-size", type=int, default=30, help="smaller groups are flagged (default: 30)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_audit_command, force=False)


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
    }


def run_audit_command(args: argparse.Namespace) -> int:
    from engine import service

    if args.compare:
        from engine.config import MODEL_NAMES

        names = [n.strip() for n in args.compare.split(",") if n.strip()]
        unknown = [n for n in names if n not in MODEL_NAMES]
        if unknown or not names:
            raise ValueError(f"--compare takes model names from {list(MODEL_NAMES)} (got {args.compare!r})")
        base = config_from_args(args)
        recs = {
            name: service.train(
                base.with_overrides(model={"name": name}),
                progress=sys.stderr.isatty(),
                cache_dir=Path(args.cache_dir),
            )
            for name in names
        }
        table = service.compare(recs, **_audit_kwargs(args))
        if args.json:
            from engine.fairness.audit import jsonable

            emit_json(jsonable({"compare": table.reset_index().to_dict("records"), "settings": _audit_kwargs(args)}))
        else:
            _print_compare(table, args)
        return 0

    rec = load_recommender(args)
    report = rec.audit(**_audit_kwargs(args))
    if args.json:
        emit_json(report.to_dict())
        return 0
    _print_report(report)
    return 0


# --------------------------------------------------------------------------- human output


def _f(x: Any, digits: int = 4) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if value != value else f"{value:.{digits}f}"


def _table(rows: list[list[str]], header: list[str], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [indent + "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    for r in rows:
        lines.append(indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def _print_report(report: Any) -> None:
    s = report.settings
    ci_pct = round(100 * s["ci"])
    rerank = f", re-ranked {s['rerank']}" if s["rerank"] else ""
    print(
        f"Audit of {s['model']} on {s['dataset']}: {s['part']} part, {s['n_users_evaluated']} users, "
        f"K={s['k']}{rerank} ({report.seconds:.2f}s)"
    )
    acc = report.accuracy
    keys = [m for m in s["metrics"] if m in acc] + [m for m in (f"mrr@{s['k']}", f"hit@{s['k']}") if m in acc]
    print("\nAccuracy      " + "  ".join(f"{m} {_f(acc[m])}" for m in dict.fromkeys(keys)))
    b = report.beyond_accuracy
    order = [
        ("coverage", "catalog_coverage"),
        ("gini", "gini_index"),
        ("aplt", "aplt"),
        ("arp", "arp"),
        ("novelty", "novelty"),
        ("ild(cat)", "ild_categories"),
        ("ild(text)", "ild_embeddings"),
        ("personalization", "personalization"),
        ("calibration_kl", "calibration_kl"),
        ("serendipity", "serendipity"),
        ("pop_rsp", "pop_rsp"),
        ("pop_reo", "pop_reo"),
    ]
    shown = [f"{label} {_f(b[key], 3 if key != 'arp' else 1)}" for label, key in order if key in b]
    print("Beyond        " + "  ".join(shown[:6]))
    print("              " + "  ".join(shown[6:]))
    if report.baseline is not None:
        base = report.baseline
        first = s["metrics"][0]
        parts = [f"{first} {_f(base['accuracy'].get(first))} -> {_f(acc.get(first))}"]
        parts.append(f"aplt {_f(base['beyond_accuracy']['aplt'], 3)} -> {_f(b['aplt'], 3)}")
        for dim, gap in base["exposure_gap"].items():
            if dim != "category":
                parts.append(f"{dim} gap {_f(gap, 3)} -> {_f(report.exposure_gap.get(dim), 3)}")
        print("Re-ranking    " + "  ".join(parts))

    print(
        f"\nUser groups: mean per group with {ci_pct}% bootstrap CI ({s['n_boot']} resamples); "
        f"* = fewer than {s['min_group_size']} users, shown but not compared"
    )
    metrics = s["metrics"]
    rows = []
    wide = report.groups.pivot_table(
        index=["feature", "group"], columns="metric", values=["value", "ci_low", "ci_high"], sort=False
    )
    sizes = report.groups.drop_duplicates(["feature", "group"]).set_index(["feature", "group"])
    for feature, group in sizes.index:
        size = sizes.loc[(feature, group)]
        cells = [feature, group + ("*" if size["too_small"] else ""), str(int(size["size"]))]
        for m in metrics:
            v = wide.loc[(feature, group)]
            cells.append(f"{_f(v[('value', m)])} [{_f(v[('ci_low', m)])}, {_f(v[('ci_high', m)])}]")
        rows.append(cells)
    print(_table(rows, ["feature", "group", "n", *[f"{m} [CI]" for m in metrics]]))

    print(f"\nLargest gap between judged groups (best - worst, {ci_pct}% CI; significant = CI excludes 0)")
    rows = []
    for r in report.disparities.itertuples():
        if r.max_group is None or r.max_group != r.max_group:
            rows.append([r.feature, r.metric, "fewer than 2 groups large enough", "", "", ""])
            continue
        rows.append(
            [
                r.feature,
                r.metric,
                f"{r.max_group} - {r.min_group}",
                f"{_f(r.difference)} [{_f(r.ci_low)}, {_f(r.ci_high)}]",
                f"{_f(r.ratio, 3)} [{_f(r.ratio_ci_low, 3)}, {_f(r.ratio_ci_high, 3)}]",
                "yes" if r.significant else "no",
            ]
        )
    print(_table(rows, ["feature", "metric", "groups", "difference [CI]", "ratio [CI]", "significant"]))

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

    if report.tradeoff is not None:
        t = report.tradeoff
        print(f"\nTrade-off: {t['reranker'].iloc[0]} re-ranking strength vs accuracy, long tail and exposure")
        cols = [c for c in t.columns if c != "reranker"]
        rows = [[_f(r[c], 3 if c != "arp" else 1) for c in cols] for _, r in t.iterrows()]
        print(_table(rows, cols))


def _print_compare(table: Any, args: argparse.Namespace) -> None:
    k = args.k
    cols = [
        f"ndcg@{k}",
        f"recall@{k}",
        "catalog_coverage",
        "gini_index",
        "aplt",
        "arp",
        "novelty",
        "ild_categories",
        "personalization",
        "popularity_gap",
        "provider_gap",
    ]
    cols += [c for c in table.columns if c.startswith("max_gap_")]
    cols = [c for c in cols if c in table.columns]
    rows = [
        [name, *[_f(row[c], 1 if c == "arp" else 4) if c != "max_gap_feature" else str(row[c]) for c in cols]]
        for name, row in table.iterrows()
    ]
    print(f"Models compared on {args.dataset} (K={k}, {args.part} part)")
    print(_table(rows, ["model", *cols]))
