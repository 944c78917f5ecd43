"""A model defined here, registered from outside the engine, runs train -> recommend -> explain -> audit.

The acceptance test of the model registry: nothing in ``engine/`` names this model. It is a
closed-form item co-occurrence model whose score is a sum over the user's history items, so
every figure below (its lists, its leave-one-out explanation, the audit's NDCG) is computed by
hand from the training pairs and compared with what ``engine.service`` answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import service
from engine.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig
from engine.data.split import SplitData
from engine.models.registry import HISTORY_SCORES, Capabilities, IntRange, ModelInputs, register_model, unregister_model

NAME = "test-cooc"
# Implicit log (every row a positive); timestamps make the temporal split hand-checkable:
# per user the last event is test, the one before valid, the rest train.
INTERACTIONS = {
    "u1": ["a", "b", "e", "c", "d"],
    "u2": ["a", "c", "b", "d"],
    "u3": ["b", "c", "f", "e"],
    "u4": ["a", "e", "f", "b"],
    "u5": ["c", "d", "a", "f"],
}
# The catalog also holds items nobody chose: the engine evaluates lists of up to 20 items.
ITEMS = ["a", "b", "c", "d", "e", "f"] + [f"z{n:02d}" for n in range(20)]


class CoOccurrence:
    """``score(u, i) = sum_{j in history(u)} C[j, i] + bias_i``.

    ``C`` counts the users who have both items in training (diagonal 0); ``bias_i`` is a
    small popularity term plus an index tie-break (``1e-4 * i / n``), so lists never tie.
    """

    def __init__(self, popularity_weight: float = 0.01) -> None:
        self.popularity_weight = popularity_weight
        self.C: torch.Tensor | None = None

    def fit(self, split: SplitData) -> CoOccurrence:
        x = torch.from_numpy(split.matrix("train").toarray())
        self.train = x
        c = x.T @ x
        c.fill_diagonal_(0.0)
        n = x.size(1)
        self.C = c
        self.bias = self.popularity_weight * x.sum(0) + 1e-4 * torch.arange(n) / n
        return self

    def score_history(self, histories: torch.Tensor) -> torch.Tensor:
        return histories.float() @ self.C + self.bias

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_history(self.train[users])


@pytest.fixture
def cooc() -> Iterator[None]:
    @register_model(
        NAME,
        capabilities=Capabilities(trained=False, explain=(HISTORY_SCORES,)),
        knobs=("knn_k",),
        search_space={"model.knn_k": IntRange(5, 50)},
        description="item co-occurrence counts (test plug-in)",
    )
    def build(cfg: ModelConfig, inputs: ModelInputs) -> CoOccurrence:
        return CoOccurrence()

    try:
        yield
    finally:
        unregister_model(NAME)


@pytest.fixture
def served(cooc: None, tmp_path: Path) -> service.ServedModel:
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [f"{u},{i},{t}" for u, items in INTERACTIONS.items() for t, i in enumerate(items, start=1)]
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    (folder / "items.csv").write_text("item_id,title\n" + "\n".join(f"{i},Item {i.upper()}" for i in ITEMS) + "\n")
    config = RunConfig(
        data=DataConfig(dataset="csv", data_dir=str(folder), split="temporal", name="plugin"),
        features=FeatureConfig(text=False),
        model=ModelConfig(name=NAME),
        train=TrainConfig(device="cpu"),
    )
    return service.train(config, cache_dir=tmp_path / "cache")


def hand_scores(served: service.ServedModel) -> dict[str, dict[str, float]]:
    """The model's scores from the training pairs (all but each user's last two events), by hand."""
    train = {u: items[:-2] for u, items in INTERACTIONS.items()}
    pop = {i: sum(i in h for h in train.values()) for i in ITEMS}
    order = served.items["item_id"].tolist()  # internal item order, for the tie-break
    idx = {i: order.index(i) for i in ITEMS}
    out = {}
    for u, hist in train.items():
        out[u] = {
            i: sum(sum(j in h and i in h for h in train.values()) for j in hist if j != i)
            + 0.01 * pop[i]
            + 1e-4 * idx[i] / len(ITEMS)
            for i in ITEMS
        }
    return out


def test_the_plugin_is_listed_and_unlisted(cooc: None) -> None:
    assert NAME in service.model_names()
    assert service.explain_methods(NAME) == ("leave-one-out",)
    info = service.model_info(NAME)
    assert info["trained"] is False and info["knobs"] == ["knn_k"] and info["explain_methods"] == ("leave-one-out",)
    with pytest.raises(ValueError, match="already registered"):
        register_model(NAME, capabilities=Capabilities(trained=False))(lambda cfg, inputs: CoOccurrence())


def test_unregistered_model_is_unknown() -> None:
    assert NAME not in service.model_names()
    assert service.explain_methods(NAME) == ()


def test_recommend_follows_its_scores(served: service.ServedModel) -> None:
    assert served.model_name == NAME
    scores = hand_scores(served)
    for user in INTERACTIONS:
        seen = set(INTERACTIONS[user][:-2])
        want = sorted((i for i in ITEMS if i not in seen), key=lambda i: -scores[user][i])[:3]
        got = served.recommend(user, k=3).items
        assert got["item_id"].tolist() == want
        np.testing.assert_allclose(got["score"].to_numpy(), [scores[user][i] for i in want], rtol=1e-5)
    # u1 trained on a, b, e; c shares a user with a (u2) and with b (u3), none with e: 2, plus
    # 0.01 x its 3 training users and the tie-break of its internal index (2: a, b, c, ...).
    top = served.recommend("u1", k=1).items.iloc[0]
    assert served.items["item_id"].tolist()[:3] == ["a", "b", "c"]
    assert top["item_id"] == "c" and top["score"] == pytest.approx(2 + 0.01 * 3 + 1e-4 * 2 / len(ITEMS), rel=1e-6)


def test_explain_leave_one_out_is_the_models_arithmetic(served: service.ServedModel) -> None:
    exp = served.explain("u1", "c", method="leave-one-out")
    assert exp.method == "leave-one-out" and exp.rank == 1 and exp.fallback is None
    contrib = dict(zip(exp.history_influence["item_id"], exp.history_influence["attribution"], strict=True))
    assert contrib == pytest.approx({"a": 1.0, "b": 1.0, "e": 0.0})  # removing a (or b) costs one co-user
    assert exp.baseline_score == pytest.approx(0.01 * 3 + 1e-4 * 2 / len(ITEMS), rel=1e-6)
    assert sum(contrib.values()) + exp.baseline_score == pytest.approx(exp.score, rel=1e-6)
    assert exp.completeness == pytest.approx(0.0, abs=1e-6)
    assert exp.history_influence["rank"].tolist() == [1, 2, 3]
    assert exp.reason.startswith(f"Recommended because {exp.user_id} interacted with")
    # A method the model does not offer is a clear, typed refusal, not a crash.
    with pytest.raises(service.UnsupportedModelError, match=r"'ig'.*test-cooc.*leave-one-out"):
        served.explain("u1", "c", method="ig")


def test_audit_ndcg_equals_a_hand_computation(served: service.ServedModel) -> None:
    scores = hand_scores(served)
    k = 2
    ndcg = []
    for user, items in INTERACTIONS.items():
        masked = set(items[:-1])  # train and valid items leave the test ranking
        ranked = sorted((i for i in ITEMS if i not in masked), key=lambda i: -scores[user][i])[:k]
        hit = ranked.index(items[-1]) if items[-1] in ranked else None
        ndcg.append(0.0 if hit is None else 1.0 / np.log2(hit + 2))
    report = served.audit(k=k)
    assert report.accuracy[f"ndcg@{k}"] == pytest.approx(float(np.mean(ndcg)), rel=1e-6)
    # By hand: the test items d (u1), d (u2), e (u3), b (u4), f (u5) sit at ranks 1, 2, 2, 1 and
    # outside the top 2, so NDCG@2 = (1 + 1/log2(3) + 1/log2(3) + 1 + 0) / 5.
    assert report.accuracy[f"ndcg@{k}"] == pytest.approx((2 + 2 / np.log2(3)) / 5, rel=1e-6)
