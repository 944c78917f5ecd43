"""The audit orchestrator: report shapes, honest accuracy of re-ranked lists, sweeps, JSON and the CLI."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from engine.cli import build_parser, main
from engine.commands.common import config_from_args
from engine.evaluation.ranking import evaluate
from engine.fairness import audit as audit_module
from engine.fairness.audit import (
    AuditReport,
    category_exposure,
    compare_models,
    parse_sweep_spec,
    run_audit,
    user_groups,
)
from engine.fairness.exposure import item_exposure
from engine.fairness.rerank import parse_audit_rerank, provider_rerank

N_BOOT = 200


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("audit_cache")


def _cli_args(cache_dir, *extra: str) -> list[str]:
    # A 150-user / 200-item demo world, 1 epoch, no language model: trains in seconds.
    base = ["audit", "--dataset", "demo", "--scale", "0.1", "--epochs", "1", "--no-text"]
    return [*base, "--cache-dir", str(cache_dir), "--n-boot", str(N_BOOT), *extra]


@pytest.fixture(scope="module")
def rec(cache_dir):
    from engine.pipeline import train_or_load

    args = build_parser().parse_args(_cli_args(cache_dir))
    return train_or_load(config_from_args(args), cache_dir=cache_dir)


@pytest.fixture(scope="module")
def report(rec) -> AuditReport:
    return run_audit(rec, n_boot=N_BOOT, sweep="pop")


def _eval_users(rec) -> np.ndarray:
    test = rec.prep.split.matrix("test")
    return np.flatnonzero(np.diff(test.indptr) > 0)


# --------------------------------------------------------------------------- shapes


def test_report_keys_and_shapes(rec, report):
    users = _eval_users(rec)
    n_items = rec.prep.split.n_items
    assert {"ndcg@10", "recall@10", "precision@10", "mrr@10", "hit@10"} <= set(report.accuracy)
    for key in ("catalog_coverage", "gini_index", "aplt", "arp", "novelty", "personalization", "ild_categories"):
        assert key in report.beyond_accuracy
    # demo users table: age_band, region, group; plus the two behavioural groupings
    assert report.settings["groups"] == ["age_band", "region", "group", "activity", "mainstreamness"]
    assert list(report.groups.columns) == [
        "feature",
        "group",
        "metric",
        "value",
        "ci_low",
        "ci_high",
        "size",
        "too_small",
    ]
    assert set(report.groups["metric"]) == {"ndcg@10", "recall@10"}
    assert len(report.disparities) == 5 * 2
    assert len(report.per_user) == len(users)
    assert report.per_user["u"].tolist() == users.tolist()
    assert report.per_user["user_id"].tolist() == [rec.idmap.users[u] for u in users]
    assert {"age_band", "group", "activity", "arp", "aplt"} <= set(report.per_user.columns)
    assert set(report.exposure["dimension"]) == {"popularity", "provider", "category"}
    assert report.exposure.loc[report.exposure["dimension"] == "popularity", "group"].tolist() == [
        "head",
        "mid",
        "tail",
    ]
    assert len(report.lorenz) == n_items + 1
    assert report.tradeoff is not None and len(report.tradeoff) == 11
    assert report.baseline is None
    assert report.seconds > 0


def test_group_sizes_sum_to_evaluated_users_and_values_are_group_means(rec, report):
    n = len(_eval_users(rec))
    per_feature = report.groups[report.groups["metric"] == "ndcg@10"].groupby("feature")["size"].sum()
    assert (per_feature == n).all()
    by_hand = report.per_user.groupby("group")["ndcg@10"].mean()
    table = report.groups.query("feature == 'group' and metric == 'ndcg@10'").set_index("group")
    for label, value in by_hand.items():
        assert table.loc[label, "value"] == pytest.approx(value)
        assert table.loc[label, "ci_low"] <= value <= table.loc[label, "ci_high"]
    # too_small exactly flags groups below the default minimum of 30 users
    assert (report.groups["too_small"] == (report.groups["size"] < 30)).all()


def test_plain_accuracy_matches_the_ranking_evaluator(rec, report):
    overall = evaluate(rec.model, rec.prep.split, "test", ks=(10,)).overall
    for key in ("ndcg@10", "recall@10", "hit@10"):
        assert report.accuracy[key] == pytest.approx(overall[key], abs=1e-12)


def test_disparities_are_consistent_with_group_values(report):
    for row in report.disparities.itertuples():
        if row.max_group is None:
            assert math.isnan(row.difference)
            continue
        g = report.groups[(report.groups["feature"] == row.feature) & (report.groups["metric"] == row.metric)]
        judged = g[~g["too_small"]].set_index("group")["value"]
        assert row.difference == pytest.approx(judged.max() - judged.min())
        assert row.ratio == pytest.approx(judged.min() / judged.max())
        assert row.significant == (row.ci_low > 0)
        assert row.ci_low <= row.difference <= row.ci_high


def test_exposure_gap_is_total_variation_of_shares(report):
    prov = report.exposure[report.exposure["dimension"] == "provider"].set_index("group")
    assert prov["exposure_share"].sum() == pytest.approx(1.0)
    expected = 0.5 * (prov["exposure_share"] - prov["catalog_share"]).abs().sum()
    assert report.exposure_gap["provider"] == pytest.approx(expected)
    # two providers: the gap is the over-exposed provider's excess share
    excess = prov["exposure_share"] - prov["catalog_share"]
    assert report.exposure_gap["provider"] == pytest.approx(excess.max())


def test_category_exposure_hand_example():
    # item 0: {a}, item 1: {a, b}, item 2: {b}; lists [[0, 1], [2, -1]], uniform weights
    cats = np.array([[1, 0], [1, 1], [0, 1]], dtype=float)
    topk = np.array([[0, 1], [2, -1]])
    out = category_exposure(topk, cats, ["a", "b"], np.array([3, 1, 0]), weighting="uniform").set_index("group")
    # exposure: a = 1 + 0.5, b = 0.5 + 1; catalog: a = 1.5, b = 1.5; interactions: a = 3 + 0.5, b = 0.5
    assert out.loc["a", "exposure_share"] == pytest.approx(0.5)
    assert out.loc["a", "catalog_share"] == pytest.approx(0.5)
    assert out.loc["a", "interaction_share"] == pytest.approx(3.5 / 4)
    assert out.loc["b", "exposure_ratio"] == pytest.approx(1.0)
    log_out = category_exposure(topk, cats, ["a", "b"], np.array([3, 1, 0])).set_index("group")
    w2 = 1 / math.log2(3)
    assert item_exposure(topk, 3).tolist() == pytest.approx([1.0, w2, 1.0])
    assert log_out.loc["a", "exposure_share"] == pytest.approx((1 + w2 / 2) / (2 + w2))


# --------------------------------------------------------------------------- re-ranking


@pytest.mark.parametrize("spec", ["pop:0", "mmr:0", "calibrated:0"])
def test_rerank_with_strength_zero_equals_plain_audit(rec, report, spec):
    again = run_audit(rec, n_boot=0, rerank=spec)
    assert again.accuracy == report.accuracy
    assert again.beyond_accuracy == pytest.approx(report.beyond_accuracy, nan_ok=True)
    assert again.baseline["accuracy"] == report.accuracy


def test_rerank_changes_lists_and_keeps_baseline(rec, report):
    out = run_audit(rec, n_boot=0, rerank="pop:1.0")
    assert out.baseline["accuracy"] == report.accuracy
    assert out.baseline["exposure_gap"] == pytest.approx(report.exposure_gap)
    assert out.beyond_accuracy["aplt"] > report.beyond_accuracy["aplt"]
    assert out.beyond_accuracy["arp"] < report.beyond_accuracy["arp"]
    assert out.settings["rerank"] == "pop:1.0"


def test_pop_sweep_is_monotone_in_long_tail_share(report):
    t = report.tradeoff
    assert t["strength"].tolist() == pytest.approx([i / 10 for i in range(11)])
    assert (np.diff(t["aplt"].to_numpy()) >= -1e-12).all()
    assert t["aplt"].iloc[-1] > t["aplt"].iloc[0]
    # strength 0 row is the plain audit
    assert t.loc[0, "ndcg@10"] == pytest.approx(report.accuracy["ndcg@10"])
    assert t.loc[0, "aplt"] == pytest.approx(report.beyond_accuracy["aplt"])
    assert t.loc[0, "provider_gap"] == pytest.approx(report.exposure_gap["provider"])
    # marginal cost by hand where the tail share moved
    d_tail = t["aplt"].diff()
    i = int(np.flatnonzero(d_tail.to_numpy() > 1e-12)[0])
    expected = -(t.loc[i, "ndcg@10"] - t.loc[i - 1, "ndcg@10"]) / d_tail.iloc[i]
    assert t.loc[i, "ndcg@10_cost_per_aplt"] == pytest.approx(expected)
    assert math.isnan(t.loc[0, "ndcg@10_cost_per_aplt"])
    for column in ("recall@10", "gini_index", "catalog_coverage", "ild_categories", "arp", "novelty"):
        assert column in t.columns


def test_provider_rerank_hand_example():
    candidates = np.array([[0, 1, 2], [2, 1, 0]])
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    flags = np.array([1.0, 0.0, 0.0])  # item 0's provider is over-exposed
    # user 0: rel = [1, 0.5, 0]; item 0 keeps first place only while 1 - s > 0.5
    assert provider_rerank(candidates, scores, flags, 2, 0.4).tolist() == [[0, 1], [2, 1]]
    assert provider_rerank(candidates, scores, flags, 2, 0.6).tolist() == [[1, 0], [2, 1]]
    assert provider_rerank(candidates, scores, flags, 2, 0.0).tolist() == [[0, 1], [2, 1]]
    with pytest.raises(ValueError, match="0/1"):
        provider_rerank(candidates, scores, np.array([0.5, 0, 0]), 2, 0.5)
    assert audit_module.provider_rerank is provider_rerank  # audit.py imports it from rerank.py
    assert parse_audit_rerank("Provider:0.25") == ("provider", 0.25)
    assert parse_audit_rerank("mmr:0.3") == ("mmr", 0.3)
    with pytest.raises(ValueError, match="'provider:-1'"):
        parse_audit_rerank("provider:-1")
    with pytest.raises(ValueError, match=r"'boost'.*\['mmr', 'pop', 'calibrated', 'provider'\]"):
        parse_audit_rerank("boost:1")


def test_provider_rerank_moves_exposure_away_from_the_over_exposed_provider(rec, report):
    prov = report.exposure[report.exposure["dimension"] == "provider"].set_index("group")
    over = prov["exposure_ratio"].idxmax()
    assert prov.loc[over, "exposure_ratio"] > 1  # the planted bias: one provider is over-exposed
    shares, gaps = [], []
    for strength in (0.0, 0.1, 0.3, 1.0):
        out = run_audit(rec, n_boot=0, groups=["group"], rerank=f"provider:{strength}")
        p = out.exposure[out.exposure["dimension"] == "provider"].set_index("group")
        shares.append(p.loc[over, "exposure_share"])
        gaps.append(out.exposure_gap["provider"])
        assert out.baseline["exposure_gap"]["provider"] == pytest.approx(report.exposure_gap["provider"])
    # a penalised item can only move down: the over-exposed provider's share never rises
    assert all(b <= a + 1e-12 for a, b in pairwise(shares))
    assert shares[-1] < shares[0]
    # two providers: the gap is how far the flagged provider's share is from its catalog share
    assert gaps == pytest.approx([abs(x - prov.loc[over, "catalog_share"]) for x in shares])
    sweep = run_audit(rec, n_boot=0, groups=["group"], sweep="provider:0,0.3").tradeoff
    assert sweep["provider_gap"].tolist() == pytest.approx([gaps[0], gaps[2]])


def test_sweep_spec_parsing():
    assert parse_sweep_spec("pop")[1][-1] == 1.0
    assert parse_sweep_spec("MMR:0.5, 0,1") == ("mmr", (0.0, 0.5, 1.0))
    assert parse_sweep_spec("pop:0,2") == ("pop", (0.0, 2.0))
    assert parse_sweep_spec("provider:0,0.5") == ("provider", (0.0, 0.5))
    with pytest.raises(ValueError, match="'ease'"):
        parse_sweep_spec("ease")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_sweep_spec("mmr:0,1.5")


# --------------------------------------------------------------------------- options and errors


def test_groups_option_and_metrics_option(rec):
    frame, skipped = user_groups(rec, "group,activity")
    assert list(frame.columns) == ["group", "activity"] and skipped == []
    assert len(frame) == rec.prep.split.n_users
    out = run_audit(rec, n_boot=0, groups=["group"], metrics=["ndcg@5", "aplt"])
    assert out.settings["groups"] == ["group"]
    assert set(out.groups["metric"]) == {"ndcg@5", "aplt"}
    assert "ndcg@5" in out.accuracy and "ndcg@10" in out.accuracy
    assert out.groups["ci_low"].isna().all()  # n_boot=0: no CIs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["ndcg@20"]}, "'ndcg@20'"),
        ({"metrics": ["accuracy"]}, "'accuracy'"),
        ({"groups": ["shoe_size"]}, "'shoe_size'"),
        ({"candidates": 5}, "got 5"),
        ({"rerank": "boost:1"}, "'boost'"),
        ({"part": "train"}, "'train'"),
    ],
)
def test_bad_options_name_the_value(rec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_audit(rec, n_boot=0, **kwargs)


def test_compare_models_side_by_side(rec, report):
    table = compare_models({"a": rec, "b": rec}, n_boot=0)
    assert table.index.tolist() == ["a", "b"]
    assert table.loc["a", "ndcg@10"] == pytest.approx(report.accuracy["ndcg@10"])
    assert table.loc["a", "gini_index"] == pytest.approx(report.beyond_accuracy["gini_index"])
    gaps = report.disparities[report.disparities["metric"] == "ndcg@10"]
    assert table.loc["a", "max_gap_ndcg@10"] == pytest.approx(gaps["difference"].max())
    assert table.loc["a", "max_gap_feature"] == gaps.loc[gaps["difference"].idxmax(), "feature"]
    assert table.loc["a", "provider_gap"] == pytest.approx(report.exposure_gap["provider"])


# --------------------------------------------------------------------------- JSON and CLI


def test_to_dict_is_strict_json_with_required_keys(report):
    d = report.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert {"beyond_accuracy", "accuracy", "groups", "exposure", "tradeoff", "settings"} <= set(d)
    entry = d["groups"]["group"]["groups"]["minority"]
    assert {"size", "too_small", "metrics"} <= set(entry)
    assert set(entry["metrics"]["ndcg@10"]) == {"value", "ci_low", "ci_high"}
    judged = report.disparities.dropna(subset=["difference"]).iloc[0]
    entry = d["groups"][judged["feature"]]["disparity"][judged["metric"]]
    assert entry["difference"] == pytest.approx(judged["difference"])
    assert entry["max_group"] == judged["max_group"] and isinstance(entry["significant"], bool)
    small = report.disparities[report.disparities["max_group"].isna()]
    if len(small):  # a feature without two judged groups: no gap, no groups, JSON nulls
        row = small.iloc[0]
        assert d["groups"][row["feature"]]["disparity"][row["metric"]]["difference"] is None
    assert d["exposure"]["provider"]["gap"] == pytest.approx(report.exposure_gap["provider"])
    assert len(d["tradeoff"]) == 11
    assert json.loads(text)["accuracy"]["ndcg@10"] == pytest.approx(report.accuracy["ndcg@10"])
    assert "per_user" not in d and len(report.to_dict(per_user=True)["per_user"]) == len(report.per_user)


def test_cli_audit_json_equals_run_audit(rec, cache_dir, capsys):
    assert main(_cli_args(cache_dir, "--json", "--sweep", "pop:0,0.5")) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = json.loads(json.dumps(run_audit(rec, n_boot=N_BOOT, sweep="pop:0,0.5").to_dict()))
    printed.pop("seconds")
    expected.pop("seconds")
    assert printed == expected
    assert len(printed["tradeoff"]) == 2


def test_cli_audit_human_output(cache_dir, capsys):
    assert main(_cli_args(cache_dir, "--groups", "group,age", "--rerank", "pop:0.5")) == 0
    out = capsys.readouterr().out
    assert "User groups" in out and "minority" in out and "majority" in out
    assert "Re-ranking" in out and "provider gap" in out
    assert "Item exposure" in out and "tail" in out


def test_cli_compare_json(cache_dir, capsys):
    assert main(_cli_args(cache_dir, "--json", "--compare", "gat,pop", "--n-boot", "0")) == 0
    printed = json.loads(capsys.readouterr().out)
    models = [row["model"] for row in printed["compare"]]
    assert models == ["gat", "pop"]
    pop_row = printed["compare"][1]
    # MostPop recommends the same few items to everyone: lower coverage than the GAT's lists
    assert pop_row["catalog_coverage"] < printed["compare"][0]["catalog_coverage"]


def test_cli_bad_rerank_is_one_line_error(cache_dir, capsys):
    assert main(_cli_args(cache_dir, "--rerank", "mmr:3")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "mmr:3" in err


def test_report_round_trip_frames_are_tidy(report):
    assert isinstance(report.groups, pd.DataFrame) and report.groups["group"].map(type).eq(str).all()
    assert report.lorenz["y"].iloc[-1] == pytest.approx(1.0)
