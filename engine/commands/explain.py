"""``gatlens explain`` (why this item for this user) and ``gatlens explain-eval`` (how faithful)."""

from __future__ import annotations

import argparse
import logging
import math
import time
from typing import Any

from engine.commands.common import RegistryChoices, add_data_args, add_model_args, echo, emit_json, load_recommender

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="why an item is recommended to a user (attention, attributions, counterfactual)",
        description="Explain one recommendation of the graph attention model: the plain-language reason, the "
        "user's past interactions that drive it (Integrated Gradients and attention), the input feature groups, "
        "and a verified counterfactual. Without --item, explains the user's top-1 item.",
    )
    add_data_args(p)
    add_model_args(p)
    p.add_argument("--user", required=True, help="external user id, e.g. 42 (ml-100k) or u0042 (demo)")
    p.add_argument("--item", default=None, help="external item id (default: the user's top-1 recommendation)")
    p.add_argument(
        "--method",
        default=None,
        choices=RegistryChoices("methods"),
        metavar="METHOD",
        help="explanation method: exact, ig, saliency, ablation, attention, rollout, leave-one-out, ... "
        "(default: exact where the model's score decomposes exactly, else ig)",
    )
    p.add_argument("--steps", type=int, default=16, help="Integrated Gradients steps (default: 16)")
    p.add_argument("-k", type=int, default=10, help="top-K for the counterfactual (default: 10)")
    p.add_argument("--top", type=int, default=8, help="rows per table in the report (default: 8)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_explain, force=False)

    e = sub.add_parser(
        "explain-eval",
        help="faithfulness of explanations: deletion/insertion curves, counterfactual sizes, ground truth",
        description="Explain the top-1 item of a sample of users and measure how faithful each explanation is: "
        "remove (or keep only) the top-k past interactions ranked by each explanation and at random, and "
        "compare the score drop. For the default gat: its exact contributions against exact leave-one-out, its "
        "attention weights a(j, i) and random, plus the size of each verified counterfactual (the fewest "
        "past interactions whose removal drops the item out of the top 10). For uigat: Integrated Gradients, "
        "raw attention and attention rollout. On the demo world, also check that planted triggers are found.",
    )
    add_data_args(e)
    add_model_args(e)
    e.add_argument("--users", type=int, default=100, help="users to sample (default: 100)")
    e.add_argument("--k-max", type=int, default=10, help="largest k of the curves (default: 10)")
    e.add_argument("--steps", type=int, default=16, help="Integrated Gradients steps (default: 16)")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=run_explain_eval, force=False)


def run_explain(args: argparse.Namespace) -> int:
    rec = load_recommender(args)
    item = args.item
    if item is None:
        top = rec.recommend(args.user, 1)
        if top.items.empty:
            raise ValueError(f"user {args.user!r} has no item left to recommend")
        item = str(top.items["item_id"].iloc[0])
    t0 = time.perf_counter()
    ex = rec.explain(args.user, item, method=args.method, steps=args.steps, k=args.k)
    seconds = time.perf_counter() - t0
    if args.json:
        emit_json({**ex.to_dict(top_edges=args.top), "wall_seconds": round(seconds, 3)})
        return 0
    echo(_report(ex, args.top, seconds))  # titles and ids come from data files
    return 0


def _fmt(x: Any, spec: str = ".3f") -> str:
    """``format(x, spec)``, "-" for a missing value, and never a negative zero ("-0", "-0.0 %")."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    text = format(x, spec)
    if isinstance(x, float) and text.startswith("-") and float(text) == 0:  # e.g. -0.0004 at ".0f"
        text = format(0.0, spec)
    return text


def _report(ex: Any, top: int, seconds: float) -> str:
    lines = [f"user {ex.user_id} <- {ex.item_title} [{ex.item_id}]"]
    if ex.fallback:
        lines += [f"  {ex.fallback}", "", ex.reason]
        return "\n".join(lines)
    rank = f"rank {ex.rank}" if ex.rank else "already in the user's history"
    lines.append(f"  score {ex.score:.4f}, {rank}; explained in {seconds:.2f}s ({ex.method})")
    lines += ["", ex.reason, ""]
    if hasattr(ex, "terms"):  # an exact decomposition
        return "\n".join(lines + _decomposition_report(ex, top))
    hist = ex.history_influence.head(top)
    lines.append("Your past interactions that drive it (attribution, share of all edge attribution):")
    for row in hist.itertuples():
        rating = "" if math.isnan(row.rating) else f" rated {row.rating:g}"
        lines.append(
            f"  {row.rank:>2}. {row.title}{rating}: attribution {_fmt(row.attribution, '+.4f')} "
            f"({_fmt(row.share * 100, '.1f')}%), attention {_fmt(row.attention)}, rollout {_fmt(row.influence)}"
        )
    # The user's own interactions are listed above; the subgraph's other edges are the rest (each edge once).
    others = ex.interactions[ex.interactions["kind"] != "history"] if len(ex.interactions) else ex.interactions
    lines.append("")
    if len(others):
        lines.append("Other users' interactions in the computation subgraph (rank among all its interactions):")
        for row in others.head(top).itertuples():
            lines.append(
                f"  {row.rank:>2}. user {row.user_id} - {row.title} [{row.kind}]: attribution "
                f"{_fmt(row.attribution, '+.4f')}, attention {_fmt(row.attention)}"
            )
    else:
        lines.append("The computation subgraph holds no other user's interaction.")
    lines.append("")
    lines.append("Input feature groups:")
    for row in ex.feature_groups.itertuples():
        if row.available:
            lines.append(f"  {row.label:<32} {_fmt(row.attribution, '+.4f')} ({_fmt(row.share * 100, '.0f')}%)")
        else:
            lines.append(f"  {row.label:<32} not used by this model")
    cf = ex.counterfactual
    if cf is not None:
        lines.append("")
        if cf.found:
            names = ", ".join(cf.removed["title"].astype(str).head(top))
            more = f" and {len(cf.removed) - top} more" if len(cf.removed) > top else ""
            lines.append(f"Counterfactual (top-{cf.k}): remove {names}{more} -> rank {cf.new_rank}. {cf.note}.")
        else:
            lines.append(f"Counterfactual (top-{cf.k}): none found; {cf.note}.")
    sub = ex.subgraph_nodes
    own = ex.self_influence
    if own is not None:
        lines.append("")
        lines.append(
            f"Own inputs (the model has no self-loops; a node's own embedding enters through the layer mean): "
            f"{_fmt(own['user'] * 100, '.0f')}% of the user's embedding, {_fmt(own['item'] * 100, '.0f')}% of the "
            "item's (rollout)"
        )
    lines.append("")
    lines.append(
        f"Computation subgraph: {len(sub)} nodes, {len(ex.edges)} directed edges "
        f"({int(sub['in_display'].sum())} nodes in the display view); "
        f"IG completeness gap {_fmt(ex.completeness, '.2e')}"
    )
    return "\n".join(lines)


def _decomposition_report(ex: Any, top: int) -> list[str]:
    """The terms of an exact decomposition, the top contributions and the counterfactual."""
    lines = [f"The score is exactly the sum of these terms (round-off {_fmt(ex.completeness, '.1e')}):"]
    for row in ex.terms.itertuples():
        lines.append(f"  {row.label:<32} {_fmt(row.value, '+.4f'):>10} ({_fmt(row.share * 100, '.0f')}% of |terms|)")
    hist = ex.history_influence
    lines += [
        "",
        f"Past interactions by contribution (top {min(top, len(hist))} of {len(hist)}; share of what "
        "the history adds):",
    ]
    for row in hist.head(top).itertuples():
        rating = "" if math.isnan(row.rating) else f" rated {row.rating:g}"
        lines.append(
            f"  {row.rank:>2}. {row.title}{rating}: {_fmt(row.contribution, '+.4f')} "
            f"({_fmt(row.share_of_history * 100, '.1f')}%) = attention {_fmt(row.attention, '.3g')} x weight "
            f"{_fmt(row.weight, '.3g')} x relation {_fmt(row.relation, '+.3g')}"
        )
    cf = ex.counterfactual
    if cf is not None:
        lines += ["", f"Counterfactual (top-{cf.k}): {cf.verdict}"]
        for row in cf.removed.itertuples():
            lines.append(f"  - {row.title} ({_fmt(row.attribution, '+.4f')})")
        if cf.n_more:
            lines.append(f"  + {cf.n_more} more")
        lines.append(f"  ({cf.note})")
    lines += ["", f"Score without any past interaction: {_fmt(ex.baseline_score, '.4f')}"]
    return lines


def run_explain_eval(args: argparse.Namespace) -> int:
    from engine import service

    rec = load_recommender(args)
    result = service.evaluate_explanations(rec, users=args.users, k_max=args.k_max, steps=args.steps, seed=args.seed)
    if args.json:
        emit_json(result.to_dict())
        return 0
    if result.kind == "exact-decomposition":
        print("\n".join(_decomposition_eval_report(result)))
        return 0
    print(
        f"explain-eval on {result.dataset}: {result.n_pairs} (user, top-1 item) pairs, k = 1..{result.k_max}, "
        f"{result.seconds:.0f}s"
    )
    print()
    print("Deletion (remove top-k interactions) / insertion (keep only top-k); AUC = mean over k, score units")
    print(
        f"  {'method':<10} {'del AUC':>9} {'vs random':>10} {'del norm':>9} {'ins AUC':>9} {'ins norm':>9} "
        f"{'rank chg@K':>10} {'beats rnd':>9}"
    )
    for r in result.summary.itertuples():
        print(
            f"  {r.method:<10} {r.deletion_auc:>9.4f} {r.deletion_margin_vs_random:>+10.4f} "
            f"{_fmt(r.deletion_auc_norm, '.3f'):>9} {r.insertion_auc:>9.4f} {_fmt(r.insertion_auc_norm, '.3f'):>9} "
            f"{r.rank_change_at_k:>10.1f} {'-' if r.method == 'random' else format(r.beats_random, '.0%'):>9}"
        )
    for line in _verdicts(result.summary):
        print(line)
    print()
    print("Agreement (mean top-5 overlap, mean Spearman)")
    for r in result.agreement.itertuples():
        print(f"  {r.method:<10} {r.scope:<25} overlap {r.top_overlap:.2f}  spearman {_fmt(r.spearman, '+.2f')}")
    if result.ground_truth is not None:
        gt = result.ground_truth
        print()
        n = int(gt["cases"].iloc[0]) if len(gt) else 0
        print(
            f"Ground truth (demo triggers): {n} cases where a planted trigger is in the history of a user whose "
            f"top-10 has its target"
        )
        for r in gt.itertuples():
            print(
                f"  {r.method:<13} trigger in top-{r.top} history edges: {r.hits}/{r.cases} "
                f"({_fmt(r.hit_rate * 100, '.0f')}%; chance {_fmt(r.chance * 100, '.0f')}%), "
                f"median position {_fmt(r.median_rank, '.0f')} of {_fmt(r.history, '.0f')}"
            )
        rel = result.trigger_reliance
        if rel and rel["cases"]:
            print("  Does the model rely on the trigger? Whole ranking re-scored with one history item removed:")
            labels = {
                "trigger": "the trigger",
                "strongest": "the strongest input (largest exact score drop)",
                "random": "a random other history item",
            }
            for key, label in labels.items():
                r = rel[key]
                print(
                    f"    without {label + ':':<49} target leaves the top-{rel['top_k']} in "
                    f"{r['left_top_k']:.0%} of cases, rank {r['rank_change']:+.2f}, score {-r['score_drop']:+.3f}"
                )
        for line in _trigger_verdicts(gt, rec.config.model.attention):
            print(line)
    return 0


def _decomposition_eval_report(result: Any) -> list[str]:
    """``explain-eval`` on a model whose score decomposes exactly."""
    lines = [
        f"explain-eval on {result.dataset} (exact decomposition): {result.n_pairs} (user, top-1 item) pairs, "
        f"k = 1..{result.k_max}, {result.seconds:.0f}s",
        "",
        "Deletion (remove the top-k past interactions, whole score re-computed); AUC = mean score drop",
        f"  {'order':<10} {'del AUC':>9} {'vs random':>10} {'del norm':>9} {'rank chg@K':>10} {'beats rnd':>9}",
    ]
    for r in result.summary.itertuples():
        beats = "-" if r.method == "random" else _fmt(r.beats_random * 100, ".0f") + "%"
        lines.append(
            f"  {r.method:<10} {r.deletion_auc:>9.4f} {r.deletion_margin_vs_random:>+10.4f} "
            f"{_fmt(r.deletion_auc_norm, '.3f'):>9} {r.rank_change_at_k:>10.1f} {beats:>9}"
        )
    lines.append(f"  -> {result.attention_verdict['text']}")
    lines += ["", "Agreement with the exact contributions (mean top-5 overlap, mean Spearman)"]
    for r in result.agreement.itertuples():
        lines.append(f"  {r.method:<14} overlap {r.top_overlap:.2f}  spearman {_fmt(r.spearman, '+.2f')}")
    cf = result.counterfactual
    lines += [
        "",
        f"Counterfactual (smallest greedy set of past interactions whose removal drops the item out of the "
        f"top {cf['k']}, verified by re-scoring the catalog), {cf['pairs']} pairs:",
        f"  median {_fmt(cf['median'], '.0f')}, quartiles {_fmt(cf['q25'], '.0f')}-{_fmt(cf['q75'], '.0f')}, "
        f"90th percentile {_fmt(cf['q90'], '.0f')}; at most 10 interactions in {cf['at_most_10']:.0%}; "
        f"not found {cf['not_found']:.0%}",
    ]
    gt = result.ground_truth
    if gt is not None and len(gt):
        n = int(gt["cases"].iloc[0])
        lines += [
            "",
            f"Ground truth (demo triggers): {n} cases where a planted trigger is in the history of a user "
            "whose top-10 has its target",
        ]
        for r in gt.itertuples():
            lines.append(
                f"  {r.method:<13} trigger in the top-{r.top}: {r.hits}/{r.cases} ({_fmt(r.hit_rate * 100, '.0f')}%; "
                f"chance {_fmt(r.chance * 100, '.0f')}%), median position {_fmt(r.median_rank, '.0f')} of "
                f"{_fmt(r.history, '.0f')}"
            )
        rel = result.trigger_reliance or {}
        if rel.get("cases"):
            lines.append(
                f"  exact leave-one-out agrees with the contributions on 'trigger in the top-3' in "
                f"{rel['loo_agrees_top']:.0%} of cases"
            )
            for key, label in (
                ("trigger", "the trigger"),
                ("strongest", "the largest contributor"),
                ("random", "a random other item"),
            ):
                r = rel[key]
                lines.append(
                    f"    without {label + ':':<25} target leaves the top-{rel['top_k']} in {r['left_top_k']:.0%} "
                    f"of cases, rank {r['rank_change']:+.2f}"
                )
    return lines


def _trigger_verdicts(gt: Any, attention: str | None) -> list[str]:
    """Plain statements about the planted-trigger check, from the measured rates."""
    rows = gt.set_index("method")
    if not len(rows) or int(rows["cases"].iloc[0]) == 0:
        return []
    chance = float(rows["chance"].iloc[0])
    out = []
    if "leave-one-out" in rows.index:
        loo = rows.loc["leave-one-out"]
        relies = "relies on" if float(loo["hit_rate"]) > 2 * chance else "does NOT rely on"
        out.append(
            f"  -> the model {relies} the trigger more than on its other inputs: exact leave-one-out ranks it in "
            f"the top-{int(loo['top'])} in {float(loo['hit_rate']):.0%} of cases (chance {chance:.0%}). A "
            f"faithful attribution tracks this figure; one far above it would show the planted story, not the model."
        )
    if "attention" in rows.index:
        att = rows.loc["attention"]
        rate = float(att["hit_rate"])
        verdict = "NOT a faithful explanation of triggers" if rate <= 2 * chance else "better than chance on triggers"
        line = f"  -> attention: {verdict} ({rate:.0%}, chance {chance:.0%})"
        if attention == "edge":
            line += (
                "; 'edge' attention scores a neighbour from the interaction's rating and recency alone, the same "
                "for every recommended item, so it cannot know which history item is a trigger"
            )
        out.append(line)
    return out


def _verdicts(summary: Any) -> list[str]:
    """Plain statements of which orders beat random, from the measured margins."""
    out = []
    rows = summary.set_index("method")
    rand = float(rows.loc["random", "deletion_auc"]) if "random" in rows.index else 0.0
    for method in ("ig", "attention", "rollout"):
        if method not in rows.index:
            continue
        r = rows.loc[method]
        margin = float(r["deletion_auc"]) - rand
        faithful = margin > 0 and float(r["beats_random"]) >= 0.5
        verdict = "faithful" if faithful else "NOT faithful"
        out.append(
            f"  -> {method}: {verdict} on deletion (margin over random {margin:+.4f}, beats random on "
            f"{float(r['beats_random']):.0%} of pairs)"
        )
    return out
