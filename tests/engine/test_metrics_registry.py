"""The metric registry's integrity, formats and lookups; the one head / mid / long-tail definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.evaluation import metrics as M
from engine.evaluation.popularity import TIERS_DEFINITION, long_tail, popularity_tiers


def test_every_entry_is_complete_and_keys_are_unique() -> None:
    entries = M.all_metrics()
    keys = [m.key for m in entries]
    assert len(keys) == len(set(keys))
    assert {"ndcg", "recall", "aplt", "gini_index", "catalog_coverage", "novelty", "calibration_kl"} <= set(keys)
    for m in entries:
        assert m.label.strip() and m.definition.strip().endswith(".") and m.reference.strip(), m.key
        assert m.direction in M.DIRECTIONS and m.scope in M.SCOPES, m.key
        assert (m.fn is None) == (m.scope == "derived"), m.key
        assert set(m.requires) <= set(M.INPUTS), m.key
        assert m.fmt.kind in ("fraction", "percent", "count", "float"), m.key
    # the ranking metrics keep RecBole's column order (benchmark JSON rows depend on it)
    assert [m.key for m in M.all_metrics("accuracy")] == ["recall", "precision", "f1", "ndcg", "mrr", "hit", "map"]
    assert [m.key for m in entries if m.headline] == [
        "catalog_coverage",
        "gini_index",
        "aplt",
        "novelty",
        "ild_categories",
    ]


def test_labels_formats_and_lookups() -> None:
    assert M.label("ndcg@10") == "NDCG@10" and M.label("aplt") == "Long-tail share"
    assert M.label("ndcg") == "ndcg" and M.label("nonsense") == "nonsense"  # unknown: the key itself
    assert M.find("aplt@10") is None and M.find("ndcg@5").key == "ndcg"
    assert M.split_key("MAP@20") == ("map", 20)
    assert M.format_value("aplt", 0.36690) == "36.7%"
    assert M.format_value("gini_index", 0.28777) == "0.288"
    assert M.format_value("ndcg@10", 0.072669) == "0.0727"
    assert M.format_value("novelty", 3.1269, unit=True) == "3.13 bits"
    assert M.format_value("arp", float("nan"), unit=True) == "–"
    assert M.Format("count")(1234.4) == "1,234"
    assert M.table_format("aplt") == "percent" and M.table_format("gini_index") == "%.3f"
    with pytest.raises(KeyError, match="'nope'"):
        M.get("nope")
    with pytest.raises(ValueError, match="'sideways'"):
        M.Metric("x", "X", "An x.", "sideways", "user", lambda c: c, "ref")
    with pytest.raises(ValueError, match="fn is required"):
        M.Metric("x", "X", "An x.", M.HIGHER, "user", None, "ref")
    with pytest.raises(ValueError, match="already registered"):
        M.register(M.get("aplt"))


def test_values_table_and_glossary_follow_registry_order() -> None:
    table = M.values_table({"aplt": 0.25, "ndcg@10": 0.5, "unregistered": 1.0, "gini_index": 0.9})
    assert table["key"].tolist() == ["ndcg@10", "gini_index", "aplt"]
    assert table["text"].tolist() == ["0.5000", "0.900", "25.0%"]
    glossary = M.glossary(["recall@20", "aplt", "bogus"])
    assert glossary["label"].tolist() == ["Recall@20", "Long-tail share"]
    assert glossary.loc[1, "direction"] == M.HIGHER


def test_registered_context_manager_adds_and_removes() -> None:
    extra = M.Metric("list_length", "List length", "Items in the list.", M.NEUTRAL, "user", lambda c: c, "test")
    with M.registered(extra):
        assert M.find("list_length") is extra and M.all_metrics("user")[-1] is extra
    assert M.find("list_length") is None


def test_head_mid_tail_on_a_hand_made_popularity_vector() -> None:
    # 100 interactions; head: the 20 alone is 20% (with the 15s it would be 50%);
    # tail from the bottom: 0 + 2 + 4 + 6 + 8 = 20% (with the 10s it would be 50%).
    pop = np.array([15, 20, 0, 10, 15, 8, 10, 6, 4, 10, 2])
    tiers = popularity_tiers(pop)
    assert tiers.tolist() == ["mid", "head", "tail", "mid", "mid", "tail", "mid", "tail", "tail", "mid", "tail"]
    assert np.flatnonzero(long_tail(pop)).tolist() == [2, 5, 7, 8, 10]
    assert list(tiers.cat.categories) == ["head", "mid", "tail"] and tiers.index.name == "item_idx"
    assert "20% of training interactions" in TIERS_DEFINITION


def test_aplt_reads_the_one_tail_definition() -> None:
    from engine.evaluation.beyond import aplt

    pop = np.array([15, 20, 0, 10, 15, 8, 10, 6, 4, 10, 2])
    topk = np.array([[1, 2, 5, 0], [3, 4, 6, 9]])  # user 0: two tail items of four; user 1: none
    assert aplt(topk, pop) == pytest.approx((2 / 4 + 0) / 2)
    assert math.isclose(aplt(topk, pop, tail=long_tail(pop)), 0.25)
