"""The model registry: built-ins, validation of specs, search spaces and the built model's kind."""

from __future__ import annotations

from typing import Any

import pytest

from engine.config import ModelConfig
from engine.errors import UnsupportedModelError
from engine.explain.algorithms import methods_for, require_support
from engine.models.lightgcn import LightGCN
from engine.models.pop import MostPop
from engine.models.registry import (
    Capabilities,
    Choice,
    FloatRange,
    IntRange,
    build_model,
    model_names,
    model_spec,
    register_model,
    unregister_model,
)


class FakeTrial:
    """Records what a search space asks for and answers the low end (Optuna's Trial shape)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.asked.append(("int", name))
        return low

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.asked.append(("float", name))
        return low

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self.asked.append(("categorical", name))
        return choices[0]


def test_builtins_and_their_capabilities() -> None:
    assert model_names() == ("gat", "uigat", "gcn", "sage", "lightgcn", "bprmf", "ease", "itemknn", "pop")
    assert model_spec("gat").capabilities.text_features and not model_spec("lightgcn").capabilities.text_features
    trained = [n for n in model_names() if model_spec(n).capabilities.trained]
    assert trained == ["gat", "uigat", "gcn", "sage", "lightgcn", "bprmf"]
    assert methods_for("uigat") == ("ig", "saliency", "ablation", "attention", "rollout", "leave-one-out")
    assert methods_for("gat") == ("exact",)
    assert methods_for("gcn") == () and methods_for("nope") == ()
    with pytest.raises(ValueError, match=r"unknown model 'nope'; expected one of gat, uigat, gcn"):
        model_spec("nope")


def test_build_model_reads_the_config_view() -> None:
    model = build_model(ModelConfig(name="lightgcn", embedding_dim=8, heads=4, num_layers=3), 5, 7)
    assert isinstance(model, LightGCN)
    assert (model.n_users, model.n_items, model.embedding_dim, model.num_layers) == (5, 7, 8, 3)
    assert model_spec("ease").options(ModelConfig(ease_l2=12.5)) == {"ease_l2": 12.5}
    assert isinstance(build_model(ModelConfig(name="pop"), 2, 3), MostPop)


def test_search_space_suggests_override_sections() -> None:
    trial = FakeTrial()
    point = model_spec("bprmf").suggest(trial)
    assert point == {"train": {"lr": 1e-4, "weight_decay": 0.0, "batch_size": 1024}}
    assert ("float", "train.lr") in trial.asked and ("categorical", "train.batch_size") in trial.asked
    assert model_spec("itemknn").suggest(FakeTrial()) == {"model": {"knn_k": 10}}


def test_bad_specs_are_rejected_and_a_wrong_kind_is_caught() -> None:
    closed = Capabilities(trained=False)
    with pytest.raises(ValueError, match=r"knobs \['width'\] are not ModelConfig fields"):
        register_model("bad", capabilities=closed, knobs=("width",))(lambda cfg, inputs: MostPop())
    with pytest.raises(ValueError, match=r"'model\.width' is not 'section\.field'"):
        register_model("bad", capabilities=closed, search_space={"model.width": IntRange(1, 2)})(
            lambda cfg, inputs: MostPop()
        )
    with pytest.raises(ValueError, match="unknown explanation interface"):
        Capabilities(trained=False, explain=("magic",))
    with pytest.raises(ValueError, match="FloatRange"):
        FloatRange(0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="at least one value"):
        Choice(())
    register_model("liar", capabilities=Capabilities(trained=True))(lambda cfg, inputs: MostPop())
    try:
        with pytest.raises(ValueError, match="registered as an EmbeddingModel but built MostPop"):
            build_model(ModelConfig(name="liar"), 2, 3)
    finally:
        unregister_model("liar")
    assert "bad" not in model_names() and "liar" not in model_names()


def test_unsupported_method_names_what_would_work() -> None:
    with pytest.raises(UnsupportedModelError, match=r"'ig' needs the user-item attention model 'uigat'.*'ease'.*none"):
        require_support("ig", "ease")
    with pytest.raises(ValueError, match="method must be one of"):
        require_support("shap", "gat")
