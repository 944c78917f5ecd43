"""The model registry: name -> how to build the model, what it can do, and where to tune it.

A model plugs into training, benchmark, recommend, explain, audit, update, tune and the
dashboard by registering one :class:`ModelSpec`; nothing else names models. Built-in models
register at the end of this file, a plug-in from its own module::

    @register_model("cooc", knobs=("knn_k",), capabilities=Capabilities(trained=False))
    def build_cooc(cfg: ModelConfig, inputs: ModelInputs) -> CoOccurrence:
        return CoOccurrence(k=cfg.knn_k)

A model's configuration is a *view* on :class:`~engine.config.ModelConfig`: ``knobs`` names
the fields it reads, so one frozen config (and its fingerprint) serves every model and a
stored artifact of any model rebuilds from its ``config.json`` alone. Its tuning search space
is a small declarative dict from ``"section.field"`` (``model.embedding_dim``, ``train.lr``)
to a :class:`IntRange`, :class:`FloatRange` or :class:`Choice`, defined beside the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import torch

from engine.config import DataConfig, FeatureConfig, ModelConfig, TrainConfig
from engine.models.base import EmbeddingModel, FittedModel
from engine.models.ease import EASE
from engine.models.gat import GraphRecommender
from engine.models.itemgat import ItemGAT
from engine.models.itemknn import ItemKNN
from engine.models.lightgcn import LightGCN
from engine.models.mf import BPRMF
from engine.models.pop import MostPop

# Explanation interfaces a model can offer (see engine.explain.algorithms): each algorithm
# declares which of them it works with, each model which of them it provides.
ATTENTION_GRAPH = "attention-graph"  # GraphRecommender with the attention encoder: subgraph, gates, attention
HISTORY_SCORES = "history-scores"  # score_history(histories): the score as a function of the user's history
# contributions(user, item): the score as one exact term per past interaction plus named residuals
DECOMPOSITION = "exact-decomposition"
EXPLAIN_INTERFACES = (ATTENTION_GRAPH, HISTORY_SCORES, DECOMPOSITION)

_SECTIONS: dict[str, type] = {"data": DataConfig, "features": FeatureConfig, "model": ModelConfig, "train": TrainConfig}


# -- search space ------------------------------------------------------------------------------
class Trial(Protocol):
    """What a search space needs of a tuner's trial (Optuna's ``Trial`` fits; no import here)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class IntRange:
    """Integers in ``[low, high]`` (inclusive), on a ``step`` grid or log-uniform."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high or self.step < 1 or (self.log and self.low < 1):
            raise ValueError(f"IntRange needs 1 <= step, low <= high and low >= 1 when log (got {self!r})")

    def suggest(self, trial: Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class FloatRange:
    """Floats in ``[low, high]``, uniform or log-uniform (``log=True``, for rates and penalties)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high or (self.log and self.low <= 0):
            raise ValueError(f"FloatRange needs low <= high and low > 0 when log (got {self!r})")

    def suggest(self, trial: Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    """One of a few values."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Choice needs at least one value (got none)")

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))


Distribution = IntRange | FloatRange | Choice


# -- specs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Capabilities:
    """What a model offers the rest of the engine.

    Attributes:
        trained: trained by the BPR loop (an :class:`EmbeddingModel`) rather than fitted in
            closed form (a :class:`FittedModel`).
        text_features: reads the frozen language-model item features, so ``prepare`` encodes
            item text for it (default: False).
        minibatch: can train on neighbour-sampled subgraphs with full-graph degrees (default: False).
        explain: the explanation interfaces it provides (:data:`EXPLAIN_INTERFACES`), which
            decide the explanation methods that support it (default: none).
    """

    trained: bool
    text_features: bool = False
    minibatch: bool = False
    explain: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [x for x in self.explain if x not in EXPLAIN_INTERFACES]
        if unknown:
            raise ValueError(f"unknown explanation interface(s) {unknown}; expected from {EXPLAIN_INTERFACES}")


@dataclass(frozen=True)
class ModelInputs:
    """What the data gives a model at construction (all internal-order tensors on CPU).

    Attributes:
        n_users / n_items: node counts of the training split.
        text_features: frozen language-model item embeddings ``[n_items, D]`` (None without an encoder).
        category_features: multi-hot categories ``[n_items, C]`` (None when off or absent).
        item_degree: training interactions per item ``[n_items]``.
    """

    n_users: int
    n_items: int
    text_features: torch.Tensor | None = None
    category_features: torch.Tensor | None = None
    item_degree: torch.Tensor | None = None


Builder = Callable[[ModelConfig, ModelInputs], EmbeddingModel | FittedModel]
# fit(model, graph, split, config: RunConfig, *, valid_fn, callbacks, taste_fit=None, main=True)
# -> TrainResult: how a trained model is fitted when the shared BPR loop
# (engine.training.minibatch.fit_auto) is not the recipe. A recipe that can run data-parallel
# takes taste_fit (how its BPR stage runs) and main (False: a DDP rank other than 0, which only
# takes part in that stage); see engine.commands.ddp.
Fitter = Callable[..., Any]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
        name: the name configs, the CLI and the dashboard use.
        build: ``build(cfg, inputs)`` -> an untrained model (its initial weights may depend
            only on the global seed, which the caller sets).
        capabilities: see :class:`Capabilities`.
        knobs: the :class:`ModelConfig` fields the model reads (its view of the config).
        search_space: ``"section.field"`` -> distribution, for ``gatlens tune``.
        description: one line for pickers and ``--help``.
        fit: the training recipe of a trained model, ``fit(model, graph, split, config, *,
            valid_fn, callbacks) -> TrainResult`` (None: the shared BPR loop, ``fit_auto``); with
            ``capabilities.minibatch`` it also takes ``taste_fit`` and ``main`` (see ``Fitter``).
        revision: enters the artifact fingerprint when not empty, so a name that comes to mean
            another model (``gat`` did) never serves a cache of the old one (default: "").
    """

    name: str
    build: Builder
    capabilities: Capabilities
    knobs: tuple[str, ...] = ()
    search_space: Mapping[str, Distribution] = field(default_factory=dict)
    description: str = ""
    fit: Fitter | None = None
    revision: str = ""

    def options(self, cfg: ModelConfig) -> dict[str, Any]:
        """The knobs of ``cfg`` this model reads, by name (its view of the config)."""
        return {k: getattr(cfg, k) for k in self.knobs}

    def suggest(self, trial: Trial) -> dict[str, dict[str, Any]]:
        """One point of the search space as ``RunConfig.with_overrides`` sections."""
        out: dict[str, dict[str, Any]] = {}
        for key, dist in self.search_space.items():
            section, name = key.split(".")
            out.setdefault(section, {})[name] = dist.suggest(trial, key)
        return out


_REGISTRY: dict[str, ModelSpec] = {}


def _check_spec(spec: ModelSpec) -> None:
    if not spec.name or not spec.name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a model name is letters, digits, '-' and '_' (got {spec.name!r})")
    known = {f.name for f in fields(ModelConfig)}
    bad = [k for k in spec.knobs if k not in known]
    if bad:
        raise ValueError(f"model {spec.name!r}: knobs {bad} are not ModelConfig fields")
    for key in spec.search_space:
        section, _, name = key.partition(".")
        kind = _SECTIONS.get(section)
        if kind is None or name not in {f.name for f in fields(kind)}:
            raise ValueError(f"model {spec.name!r}: search-space key {key!r} is not 'section.field' of RunConfig")


def register_model(
    name: str,
    *,
    capabilities: Capabilities,
    knobs: Sequence[str] = (),
    search_space: Mapping[str, Distribution] | None = None,
    description: str = "",
    replace: bool = False,
    fit: Fitter | None = None,
    revision: str = "",
) -> Callable[[Builder], Builder]:
    """Register a model builder under ``name`` (a decorator; returns the builder unchanged).

    Args:
        name: the model's name in configs, the CLI and the dashboard.
        capabilities: what it offers (:class:`Capabilities`).
        knobs: the :class:`ModelConfig` fields it reads (default: none).
        search_space: ``"section.field"`` -> distribution for tuning (default: empty).
        description: one line for pickers and help texts (default: "").
        replace: allow replacing a registered name (default: False: a clash is an error).
        fit: the model's own training recipe (default: None, the shared BPR loop); see :class:`ModelSpec`.
        revision: a tag that enters the artifact fingerprint (default: ""); see :class:`ModelSpec`.

    Raises:
        ValueError: for a taken name (unless ``replace``), a knob that is no ModelConfig
            field, or a search-space key that names no RunConfig field.
    """

    def decorate(build: Builder) -> Builder:
        spec = ModelSpec(name, build, capabilities, tuple(knobs), dict(search_space or {}), description, fit, revision)
        _check_spec(spec)
        if name in _REGISTRY and not replace:
            raise ValueError(f"model {name!r} is already registered (pass replace=True to override it)")
        _REGISTRY[name] = spec
        return build

    return decorate


def unregister_model(name: str) -> ModelSpec:
    """Remove ``name`` from the registry and return its spec (KeyError names the known models)."""
    if name not in _REGISTRY:
        raise KeyError(f"model {name!r} is not registered; registered: {', '.join(_REGISTRY)}")
    return _REGISTRY.pop(name)


def model_names() -> tuple[str, ...]:
    """Every registered model name, built-ins first, in registration order."""
    return tuple(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    """The registered :class:`ModelSpec` of ``name``.

    Raises:
        ValueError: for a name nobody registered (the message lists the known ones).
    """
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(_REGISTRY)}")
    return spec


def build_model(
    cfg: ModelConfig,
    n_users: int,
    n_items: int,
    *,
    text_features: torch.Tensor | None = None,
    category_features: torch.Tensor | None = None,
    item_degree: torch.Tensor | None = None,
) -> EmbeddingModel | FittedModel:
    """Construct the model named by ``cfg.name`` (untrained / unfitted).

    Raises:
        ValueError: for an unregistered name, or a builder whose model is not the kind its
            capabilities declare (trained models must be :class:`EmbeddingModel` s).
    """
    spec = model_spec(cfg.name)
    inputs = ModelInputs(n_users, n_items, text_features, category_features, item_degree)
    model = spec.build(cfg, inputs)
    if spec.capabilities.trained != isinstance(model, EmbeddingModel):
        kind = "an EmbeddingModel" if spec.capabilities.trained else "a closed-form model (fit/score)"
        raise ValueError(f"model {cfg.name!r} is registered as {kind} but built {type(model).__name__}")
    return model


# -- built-in models ---------------------------------------------------------------------------
# The BPR recipe's shared knobs, searched for every trained model alike (a fair comparison).
# L2 is a choice that includes 0 (a log range cannot reach it): BPR-MF on ml-100k reaches 0.2668
# test NDCG@10 with lr 1e-3, batch 2048 and no L2, against 0.2432 at our defaults (DESIGN.md §4).
_BPR_SPACE: dict[str, Distribution] = {
    "train.lr": FloatRange(1e-4, 1e-2, log=True),
    "train.weight_decay": Choice((0.0, 1e-6, 1e-5, 1e-4, 1e-3)),
    "train.batch_size": Choice((1024, 2048, 4096)),
}
_GRAPH_KNOBS = (
    "embedding_dim",
    "num_layers",
    "heads",
    "attention",
    "edge_weight",
    "text_dim",
    "edge_dropout",
    "init",
    "attention_lr",
)


def _graph_builder(encoder: str) -> Builder:
    def build(cfg: ModelConfig, inputs: ModelInputs) -> GraphRecommender:
        return GraphRecommender(
            inputs.n_users,
            inputs.n_items,
            embedding_dim=cfg.embedding_dim,
            num_layers=cfg.num_layers,
            encoder=encoder,
            heads=cfg.heads,
            attention=cfg.attention,
            edge_weight=cfg.edge_weight,
            text_features=inputs.text_features,
            text_dim=cfg.text_dim,
            category_features=inputs.category_features,
            edge_dropout=cfg.edge_dropout,
            init=cfg.init,
            attention_lr=cfg.attention_lr,
            # Like ``attention``, a knob of the gat model that its GCN/SAGE ablations ignore.
            item_item_dim=cfg.item_item_dim if encoder == "gat" else 0,
            item_degree=inputs.item_degree,
        )

    return build


def _fit_itemgat(
    model: ItemGAT,
    graph: Any,
    split: Any,
    config: Any,
    *,
    valid_fn: Any,
    callbacks: Any = (),
    taste_fit: Any = None,
    main: bool = True,
) -> Any:
    from engine.training.staged import fit_staged, taste_on_minibatches  # training sits above the models

    m = config.model
    if taste_fit is None and config.train.mode == "minibatch":
        # Only on request: "auto" keeps full-graph steps, whose LightGCN fits in memory at the
        # sizes measured (the 1M-interaction demo world: 2.28 GiB peak RSS for the whole fit).
        taste_fit = taste_on_minibatches(graph, split, config.train, valid_fn=valid_fn, callbacks=callbacks)
    return fit_staged(
        model,
        graph,
        split,
        config.train,
        valid_fn=valid_fn,
        callbacks=callbacks,
        l2=m.relation_l2 if m.relation_l2 > 0 else None,
        taste_weight=m.taste_weight if m.taste_weight >= 0 else None,
        sources=m.relation_sources if m.relation_sources >= 0 else None,
        **({} if m.lowpass_rank < 0 else {"lowpass_ranks": (m.lowpass_rank,) if m.lowpass_rank else ()}),
        finetune_epochs=m.finetune_epochs,
        taste_fit=taste_fit,
        main=main,
    )


@register_model(
    "gat",
    capabilities=Capabilities(trained=True, text_features=True, minibatch=True, explain=(DECOMPOSITION,)),
    knobs=(
        "embedding_dim",
        "num_layers",
        "init",
        "attention_dim",
        "relation",
        "relation_l2",
        "relation_dense_max",
        "relation_neighbours",
        "relation_sources",
        "taste_weight",
        "lowpass_rank",
        "finetune_epochs",
    ),
    search_space={
        **_BPR_SPACE,
        "model.num_layers": IntRange(1, 4),
        # finetune_epochs stays a knob, out of the search: one trial with it took over 20 min on
        # ml-100k (five out-of-fold relations) and fine-tuning lost validation wherever measured.
        # relation stays a knob too: in the studies of item-item-2 (/work/tuning3) every trial that
        # drew gfcf validated 8-22 % below every ease trial, on all three datasets, and spent 3 of
        # the 10 trials; catalogs too large for a dense EASE now refit it instead (item-item-3).
    },
    description="graph attention over your past items (EASE/GF-CF relation + LightGCN taste), one term per past item",
    fit=_fit_itemgat,
    # "gat" named GraphRecommender (now "uigat") until this model became the default.
    # item-item-2: the relation may be refitted on each item's k most similar sources (relation_sources).
    # item-item-3: above relation_dense_max active items EASE is refitted there too (was GF-CF).
    # item-item-4: the taste weight's search also tries the grid's top (up to 32), so a model fitted
    # before may hold a weight the fit would no longer choose (the same on every dataset measured).
    # item-item-5: the relation gains GF-CF's ideal low-pass filter, rank and weight chosen on validation.
    revision="item-item-5",
)
def _build_itemgat(cfg: ModelConfig, inputs: ModelInputs) -> ItemGAT:
    return ItemGAT(
        inputs.n_users,
        inputs.n_items,
        embedding_dim=cfg.embedding_dim,
        num_layers=cfg.num_layers,
        attention_dim=cfg.attention_dim,
        neighbours=cfg.relation_neighbours,
        relation=cfg.relation,
        max_dense_items=cfg.relation_dense_max,
        sources=max(cfg.relation_sources, 0),  # < 0: the staged fit chooses
        text_features=inputs.text_features,
        init=cfg.init,
    )


register_model(
    "uigat",
    capabilities=Capabilities(trained=True, text_features=True, minibatch=True, explain=(ATTENTION_GRAPH,)),
    knobs=(*_GRAPH_KNOBS, "item_item_dim"),
    search_space={
        **_BPR_SPACE,
        "model.num_layers": IntRange(1, 3),
        "model.attention_lr": FloatRange(0.01, 1.0, log=True),
        "model.edge_dropout": FloatRange(0.0, 0.3),
    },
    description="the first GATLens model: attention over the user-item graph (rating/recency edges, text features)",
)(_graph_builder("gat"))
for _encoder, _label in (("gcn", "GCNConv"), ("sage", "SAGEConv")):
    register_model(
        _encoder,
        capabilities=Capabilities(trained=True, text_features=True, minibatch=True),
        knobs=_GRAPH_KNOBS,
        search_space={**_BPR_SPACE, "model.num_layers": IntRange(1, 3)},
        description=f"ablation of uigat with PyG's {_label} in place of attention",
    )(_graph_builder(_encoder))


@register_model(
    "lightgcn",
    capabilities=Capabilities(trained=True),
    knobs=("embedding_dim", "num_layers"),
    search_space={**_BPR_SPACE, "model.num_layers": IntRange(1, 4)},
    description="LightGCN (He et al. 2020): linear propagation, layer mean",
)
def _build_lightgcn(cfg: ModelConfig, inputs: ModelInputs) -> LightGCN:
    return LightGCN(inputs.n_users, inputs.n_items, embedding_dim=cfg.embedding_dim, num_layers=cfg.num_layers)


@register_model(
    "bprmf",
    capabilities=Capabilities(trained=True),
    knobs=("embedding_dim",),
    search_space=dict(_BPR_SPACE),
    description="matrix factorisation trained with BPR (Rendle et al. 2009)",
)
def _build_bprmf(cfg: ModelConfig, inputs: ModelInputs) -> BPRMF:
    return BPRMF(inputs.n_users, inputs.n_items, embedding_dim=cfg.embedding_dim)


@register_model(
    "ease",
    capabilities=Capabilities(trained=False),
    knobs=("ease_l2",),
    search_space={"model.ease_l2": FloatRange(10.0, 5000.0, log=True)},
    description="EASE (Steck 2019): closed-form item-item regression",
)
def _build_ease(cfg: ModelConfig, inputs: ModelInputs) -> EASE:
    return EASE(l2=cfg.ease_l2)


@register_model(
    "itemknn",
    capabilities=Capabilities(trained=False),
    knobs=("knn_k",),
    search_space={"model.knn_k": IntRange(10, 500, log=True)},
    description="item k-nearest neighbours on cosine similarity",
)
def _build_itemknn(cfg: ModelConfig, inputs: ModelInputs) -> ItemKNN:
    return ItemKNN(k=cfg.knn_k)


@register_model("pop", capabilities=Capabilities(trained=False), description="most popular items")
def _build_pop(cfg: ModelConfig, inputs: ModelInputs) -> MostPop:
    return MostPop()
