"""User group variables: attributes, activity and mainstreamness bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from engine.fairness.groups import activity_groups, age_bands, attribute_groups, mainstreamness_groups


def test_attribute_groups_bins_age_and_marks_unknown_users():
    users = pd.DataFrame(
        {
            "user_id": ["1", "2", "3", "4", "5"],
            "age": [17, 18, 24, 56, np.nan],
            "gender": ["M", "F", "F", "M", None],
        }
    )
    out = attribute_groups(users, ["3", "1", "99", "2", "4", "5"], ["gender", "age"])
    assert list(out.columns) == ["gender", "age_band"]
    assert list(out.index) == [0, 1, 2, 3, 4, 5]
    assert out["gender"].tolist() == ["F", "M", "unknown", "F", "M", "unknown"]
    assert out["age_band"].tolist() == ["18-24", "<18", "unknown", "18-24", "56+", "unknown"]
    assert list(out["age_band"].cat.categories) == ["<18", "18-24", "56+", "unknown"]
    assert out["age_band"].cat.ordered


def test_existing_age_band_column_is_used_and_ml1m_codes_map_exactly():
    users = pd.DataFrame({"user_id": ["a", "b"], "age": [30, 40], "age_band": ["25-34", "35-44"]})
    assert attribute_groups(users, ["b", "a"], ["age"])["age_band"].tolist() == ["35-44", "25-34"]
    # MovieLens-1M stores the band's lower bound as the age.
    codes = [1, 18, 25, 35, 45, 50, 56]
    assert list(age_bands(codes)) == ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]


def test_unknown_attribute_names_the_column():
    users = pd.DataFrame({"user_id": ["1"], "gender": ["M"]})
    with pytest.raises(ValueError, match="'zodiac'"):
        attribute_groups(users, ["1"], ["zodiac"])


def test_activity_groups_hand_computed_bins():
    out = activity_groups(np.arange(1, 10))  # cut points are the observed 3 and 6
    assert out.tolist() == ["light (<=3)"] * 3 + ["medium (4-6)"] * 3 + ["heavy (>6)"] * 3
    assert list(out.cat.categories) == ["light (<=3)", "medium (4-6)", "heavy (>6)"]
    assert out.name == "activity"


def test_activity_groups_merge_bins_on_ties():
    out = activity_groups(np.array([5, 5, 5, 5, 10]))  # both tertiles are 5: two bins remain
    assert out.tolist() == ["light (<=5)"] * 4 + ["heavy (>5)"]
    assert activity_groups(np.array([4, 4])).tolist() == ["all", "all"]
    with pytest.raises(ValueError, match="integers"):
        activity_groups(np.array([1.5, 2.0]))


def test_mainstreamness_groups_hand_example():
    popularity = np.array([100.0, 50.0, 10.0, 1.0])
    # means 75, 5.5, 30, - (user 3 has only an explicitly stored zero: no interaction), 100, 1
    rows = [[0, 1], [2, 3], [1, 2], [0], [0], [3]]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    data = np.full(indptr[-1], 5.0)  # ratings are ignored: only which items counts
    data[indptr[3]] = 0.0
    history = sp.csr_matrix((data, np.concatenate(rows).astype(int), indptr), shape=(6, 4))
    assert history.nnz == 9 and (history.data == 0).sum() == 1  # the zero is stored
    out = mainstreamness_groups(history, popularity)
    assert out.tolist() == ["mainstream", "niche", "mixed", "unknown", "mainstream", "niche"]
    assert list(out.cat.categories) == ["niche", "mixed", "mainstream", "unknown"]
    with pytest.raises(ValueError, match="item_popularity"):
        mainstreamness_groups(history, popularity[:3])
