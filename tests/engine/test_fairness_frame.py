"""GroupFrame: hand-computed group means and disparities, bootstrap CIs, too-small groups."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from engine.fairness.frame import GroupFrame


def _hand_frame(**kwargs) -> GroupFrame:
    values = pd.DataFrame({"ndcg": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "recall": [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]})
    gender = pd.Series(["F", "F", "M", "M", "M", "M"], name="gender")
    return GroupFrame(values, sensitive_features=gender, min_group_size=1, **kwargs)


def test_hand_computed_means_difference_and_ratio():
    gf = _hand_frame(n_boot=0)
    assert gf.overall["ndcg"] == pytest.approx(3.5)
    assert gf.by_group.loc[("gender", "F"), "ndcg"] == pytest.approx(1.5)
    assert gf.by_group.loc[("gender", "M"), "ndcg"] == pytest.approx(4.5)
    assert gf.by_group.loc[("gender", "M"), "recall"] == pytest.approx(1.0)
    assert gf.sizes.loc[("gender", "F")] == 2
    assert gf.sizes.loc[("gender", "M")] == 4

    assert gf.difference().loc["gender", "ndcg"] == pytest.approx(3.0)
    assert gf.difference().loc["gender", "recall"] == pytest.approx(1.0)
    assert gf.ratio().loc["gender", "ndcg"] == pytest.approx(1.5 / 4.5)
    assert gf.ratio().loc["gender", "recall"] == pytest.approx(0.0)
    # to_overall: max |group - overall| = |1.5 - 3.5|; min ratio = 1.5 / 3.5
    assert gf.difference("to_overall").loc["gender", "ndcg"] == pytest.approx(2.0)
    assert gf.ratio("to_overall").loc["gender", "ndcg"] == pytest.approx(3 / 7)


def test_several_features_keep_category_order_and_are_disaggregated_separately():
    values = pd.Series([1.0, 2.0, 3.0, 4.0], name="hit", index=[10, 11, 12, 13])
    features = pd.DataFrame(
        {
            "activity": pd.Categorical(
                ["heavy", "light", "light", "heavy"], categories=["light", "medium", "heavy"], ordered=True
            ),
            "gender": ["M", "F", "M", "F"],
        },
        index=[13, 12, 11, 10],  # a different order than values: aligned by index, not position
    )
    gf = GroupFrame(values, sensitive_features=features, min_group_size=1, n_boot=0)
    assert gf.metrics == ["hit"]
    expected_index = [("activity", "light"), ("activity", "heavy"), ("gender", "F"), ("gender", "M")]
    assert list(gf.by_group.index) == expected_index
    # activity: users 13 (4.0) and 10 (1.0) are heavy, 12 (3.0) and 11 (2.0) light;
    # gender: 12 (3.0) and 10 (1.0) are F, 13 (4.0) and 11 (2.0) M.
    assert gf.by_group["hit"].tolist() == pytest.approx([2.5, 2.5, 2.0, 3.0])
    features["gender"] = ["M", "M", "F", "F"]  # users 13, 12 -> M (4.0, 3.0); 11, 10 -> F (2.0, 1.0)
    gf = GroupFrame(values, sensitive_features=features, min_group_size=1, n_boot=0)
    assert gf.difference().loc["gender", "hit"] == pytest.approx(2.0)
    assert gf.difference().loc["activity", "hit"] == pytest.approx(0.0)


def test_too_small_groups_are_reported_but_excluded_from_difference_and_ratio():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.5, 0.1, 40), rng.normal(0.6, 0.1, 40)
    tiny = np.full(3, 10.0)  # a huge value in a 3-user group must not drive the gap
    values = pd.DataFrame({"m": np.concatenate([a, b, tiny])})
    groups = pd.Series(["a"] * 40 + ["b"] * 40 + ["c"] * 3, name="g")
    gf = GroupFrame(values, sensitive_features=groups, min_group_size=30, n_boot=200)
    assert gf.too_small.to_dict() == {("g", "a"): False, ("g", "b"): False, ("g", "c"): True}
    assert gf.by_group.loc[("g", "c"), "m"] == pytest.approx(10.0)  # still reported
    assert gf.difference().loc["g", "m"] == pytest.approx(abs(b.mean() - a.mean()))
    assert gf.ratio().loc["g", "m"] == pytest.approx(min(a.mean(), b.mean()) / max(a.mean(), b.mean()))
    dci = gf.difference_ci().set_index("feature").loc["g"]
    assert {dci["max_group"], dci["min_group"]} == {"a", "b"}
    assert dci["n_groups"] == 2
    tidy = gf.to_frame()
    assert tidy.loc[tidy["group"] == "c", "too_small"].tolist() == [True]
    assert tidy.loc[tidy["group"] == "c", "size"].tolist() == [3]

    # With one judged group left there is nothing to compare: NaN, never a silent number.
    gf = GroupFrame(values, sensitive_features=groups, min_group_size=41, n_boot=0)
    assert math.isnan(gf.difference().loc["g", "m"])
    assert math.isnan(gf.ratio().loc["g", "m"])
    assert math.isnan(gf.difference_ci()["difference"].iloc[0])


def _standardised(z: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return (z - z.mean()) / z.std() * sd + mean


def test_ci_contains_true_mean_and_shrinks_with_n():
    # Each group is standardised so its mean is exactly 0.3: the check does not hang on a lucky seed.
    rng = np.random.default_rng(7)
    small = _standardised(rng.normal(size=100), 0.3, 1.0)
    large = _standardised(rng.normal(size=2000), 0.3, 1.0)
    values = pd.Series(np.concatenate([small, large]), name="m")
    groups = pd.Series(["small"] * 100 + ["large"] * 2000, name="n")
    ci = GroupFrame(values, sensitive_features=groups, n_boot=1000).ci()
    lo_s, hi_s = ci.loc[("n", "small"), ("m", "lower")], ci.loc[("n", "small"), ("m", "upper")]
    lo_l, hi_l = ci.loc[("n", "large"), ("m", "lower")], ci.loc[("n", "large"), ("m", "upper")]
    assert lo_s < 0.3 < hi_s
    assert lo_l < 0.3 < hi_l
    # Width ~ 2 * 1.96 * sd / sqrt(n): ratio sqrt(20) ~ 4.5 between the groups.
    assert (hi_s - lo_s) > 3.0 * (hi_l - lo_l)
    assert (hi_l - lo_l) == pytest.approx(2 * 1.96 * large.std(ddof=1) / math.sqrt(2000), rel=0.15)


def test_ci_coverage_is_close_to_nominal():
    rng = np.random.default_rng(3)
    hits = 0
    reps = 200
    for rep in range(reps):
        values = pd.Series(rng.exponential(1.0, 60), name="m")  # skewed, true mean 1.0
        groups = pd.Series(["all"] * 60, name="g")
        ci = GroupFrame(values, sensitive_features=groups, n_boot=500, seed=rep).ci()
        hits += ci.iloc[0][("m", "lower")] <= 1.0 <= ci.iloc[0][("m", "upper")]
    assert 0.86 <= hits / reps <= 0.99


def test_bootstrap_resamples_within_groups():
    # Constant groups: any leak of users across groups would widen these CIs.
    values = pd.Series([1.0] * 50 + [0.0] * 50, name="m")
    groups = pd.Series(["one"] * 50 + ["zero"] * 50, name="g")
    ci = GroupFrame(values, sensitive_features=groups, n_boot=300).ci()
    assert ci.loc[("g", "one")].tolist() == [1.0, 1.0]
    assert ci.loc[("g", "zero")].tolist() == [0.0, 0.0]


def test_difference_ci_covers_zero_only_when_groups_do_not_differ():
    rng = np.random.default_rng(11)
    same = pd.Series(rng.normal(0.5, 0.2, 400), name="m")
    groups = pd.Series(["x", "y"] * 200, name="g")
    row = GroupFrame(same, sensitive_features=groups).difference_ci().iloc[0]
    assert row["ci_low"] < 0 < row["ci_high"]
    shifted = same + np.where(groups == "y", 0.2, 0.0)
    row = GroupFrame(shifted, sensitive_features=groups).difference_ci().iloc[0]
    assert row["max_group"] == "y" and row["min_group"] == "x"
    assert 0 < row["ci_low"] < row["difference"] < row["ci_high"]


def test_bootstrap_is_seeded_and_per_feature_streams_are_independent():
    rng = np.random.default_rng(5)
    values = pd.DataFrame({"m": rng.random(200)})
    f1 = pd.DataFrame({"a": rng.choice(["p", "q"], 200)})
    f2 = f1.assign(b=rng.choice(["r", "s"], 200))
    ci1 = GroupFrame(values, sensitive_features=f1, seed=4).ci()
    ci2 = GroupFrame(values, sensitive_features=f2, seed=4).ci()
    pd.testing.assert_frame_equal(ci1, ci2.loc[["a"]])
    ci3 = GroupFrame(values, sensitive_features=f1, seed=5).ci()
    assert not ci1.equals(ci3)


def test_to_frame_is_tidy_and_n_boot_zero_gives_nan_cis():
    gf = _hand_frame(n_boot=0)
    tidy = gf.to_frame()
    columns = ["feature", "group", "metric", "value", "ci_low", "ci_high", "size", "too_small"]
    assert list(tidy.columns) == columns
    assert len(tidy) == 2 * 2  # groups x metrics
    row = tidy[(tidy["group"] == "M") & (tidy["metric"] == "ndcg")].iloc[0]
    assert row["value"] == pytest.approx(4.5) and row["size"] == 4 and not row["too_small"]
    assert tidy["ci_low"].isna().all()
    gf = _hand_frame(n_boot=100)
    assert gf.to_frame()["ci_low"].notna().all()


def test_invalid_inputs_name_the_problem():
    values = pd.DataFrame({"m": [1.0, np.nan]})
    with pytest.raises(ValueError, match="'m'"):
        GroupFrame(values, sensitive_features=pd.Series(["a", "b"]))
    values = pd.DataFrame({"m": [1.0, 2.0]}, index=[0, 1])
    with pytest.raises(ValueError, match="lacks 1 user"):
        GroupFrame(values, sensitive_features=pd.Series(["a"], index=[0]))
    with pytest.raises(ValueError, match="missing label"):
        GroupFrame(values, sensitive_features=pd.Series(["a", None], name="g"))
    with pytest.raises(ValueError, match="'sideways'"):
        GroupFrame(values, sensitive_features=pd.Series(["a", "b"])).difference("sideways")
    with pytest.raises(ValueError, match="ci"):
        GroupFrame(values, sensitive_features=pd.Series(["a", "b"]), ci=95)
    with pytest.raises(TypeError):
        GroupFrame(values, pd.Series(["a", "b"]))  # sensitive_features is keyword-only


def test_full_bootstrap_is_fast():
    # 1,000 resamples x 943 users x 5 metrics x 4 group variables (about 0.3 s measured).
    rng = np.random.default_rng(0)
    n = 943
    values = pd.DataFrame(rng.random((n, 5)), columns=[f"m{i}" for i in range(5)])
    features = pd.DataFrame(
        {
            "gender": rng.choice(["F", "M"], n),
            "age_band": rng.choice(["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"], n),
            "occupation": rng.choice([f"o{i}" for i in range(21)], n),
            "activity": rng.choice(["light", "medium", "heavy"], n),
        }
    )
    start = time.perf_counter()
    gf = GroupFrame(values, sensitive_features=features, n_boot=1000)
    gf.to_frame()
    gf.difference_ci()
    assert time.perf_counter() - start < 5.0
