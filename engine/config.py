"""Frozen, validated configuration: one dataclass per component, one RunConfig composing them.

Every field carries a default and a one-line reason. ``RunConfig.fingerprint_dict``
is what identifies a trained artifact: it leaves out settings that do not change
the learned weights' meaning (device, progress display, TensorBoard folder).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

# Model names live in the model registry (engine.models.registry: register_model, model_names),
# which sits above this module; the attention forms of the graph models are defined here, once.
ATTENTIONS = ("edge", "dot", "gat")
# random: 8:1:1 per user (RecBole); temporal: per user, last event test, the one before valid;
# global_time: one time cut for all; leave_one_out: per user, one random positive each for
# valid and test (users with fewer than 3 positives train on all: small datasets).
SPLITS = ("random", "temporal", "global_time", "leave_one_out")
# What a csv file's repeated rows (same user, item and timestamp) do: stop the load with every
# repeat named (a copy-paste slip), or keep the first of each (logs exported with repeats).
DUPLICATES = ("error", "drop")
# What items of a csv's interactions that items.csv does not list do: stop the load with each
# named, or join the catalog titled by their id (also lets a folder without items.csv load).
UNKNOWN_ITEMS = ("error", "add")


# ModelConfig's fields when the fingerprint scheme was fixed (engine 0.1.0, main at 41f3c27). Later
# fields are fingerprinted only when set to a non-default value (RunConfig.fingerprint_dict).
_MODEL_FIELDS_V1 = frozenset(
    {
        "name",
        "embedding_dim",
        "num_layers",
        "heads",
        "attention",
        "edge_weight",
        "text_dim",
        "edge_dropout",
        "attention_lr",
        "item_item_dim",
        "init",
        "ease_l2",
        "knn_k",
    }
)


def _plain(value: Any) -> Any:
    """A default as ``to_dict`` writes it (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """``"uid=user_id,movie=item_id"`` -> ``{"uid": "user_id", "movie": "item_id"}`` (None for none).

    Raises:
        ValueError: for an entry without ``=`` or with an empty side.
    """
    if not spec:
        return None
    out: dict[str, str] = {}
    for part in spec.split(","):
        key, eq, value = (x.strip() for x in part.partition("="))
        if not eq or not key or not value:
            raise ValueError(f"--columns entries look like file_col=canonical, e.g. uid=user_id (got {part!r})")
        out[key] = value
    return out


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "demo"  # demo | ml-100k | ml-latest-small | ml-1m | csv
    data_dir: str | None = None  # folder with the official layout; None: data/downloads or the demo world
    split: str = "random"  # random (8:1:1 per user, RecBole) | temporal | global_time | leave_one_out
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    threshold: float | None = 3.0  # explicit ratings >= 3 are positives (RecBole protocol)
    kcore: int = 0  # k-core filter; 0 keeps every user and item
    seed: int = 0  # split seed; the demo world's seed too
    scale: float = 1.0  # demo world size multiplier (13 ~ 1M interactions)
    time_cut: float = 0.9  # global_time: quantile where the test period starts
    # csv only; the loaded content they shape is fingerprinted through the data hash.
    columns: str | None = None  # file column -> canonical name, "uid=user_id,movie=item_id"
    encoding: str = "utf-8"  # encoding of the csv files
    name: str | None = None  # the dataset's name and cache folder; None: the folder's name
    duplicates: str = "error"  # error | drop: rows repeating an earlier (user, item, timestamp)
    unknown_items: str = "error"  # error | add: items of the interactions that items.csv lacks

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)} (got {self.split!r})")
        parse_columns(self.columns)  # raises on a malformed mapping
        if self.duplicates not in DUPLICATES:
            raise ValueError(f"duplicates must be one of {', '.join(DUPLICATES)} (got {self.duplicates!r})")
        if self.unknown_items not in UNKNOWN_ITEMS:
            raise ValueError(f"unknown_items must be one of {', '.join(UNKNOWN_ITEMS)} (got {self.unknown_items!r})")
        csv_only = (
            self.columns,
            self.name,
            self.encoding != "utf-8",
            self.duplicates != "error",
            self.unknown_items != "error",
        )
        if any(csv_only) and self.dataset != "csv":
            raise ValueError(
                "columns, encoding, name, duplicates and unknown_items apply to the csv dataset only "
                f"(got dataset {self.dataset!r})"
            )
        if self.kcore < 0:
            raise ValueError(f"kcore must be >= 0 (got {self.kcore!r})")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0 (got {self.scale!r})")


@dataclass(frozen=True)
class FeatureConfig:
    text: bool = True  # frozen language-model item features when an encoder is installed
    text_model: str | None = None  # sentence-transformers name or local path; None: all-MiniLM-L6-v2
    categories: bool = True  # multi-hot categories as item input features


@dataclass(frozen=True)
class ModelConfig:
    name: str = "gat"  # a registered model (engine.models.registry.model_names()); checked when built
    # embedding_dim and num_layers: every graph model's; heads .. item_item_dim: the user-item attention
    # model "uigat" (engine/models/gat.py); attention_dim .. finetune_epochs: the default "gat" (ItemGAT).
    embedding_dim: int = 64  # RecBole benchmark's embedding size
    num_layers: int = 2  # message-passing layers (2 keeps the explanation subgraph small)
    heads: int = 4  # attention heads; embedding_dim must be divisible by it
    # edge: e_ij = w.w_ij (rating, recency) ; dot: <h_i, h_j>/sqrt(d) + w.w_ij ; gat: LeakyReLU(a.[h_i||h_j]) + w.w_ij
    attention: str = "edge"  # best validation NDCG@10 on ml-100k and ml-latest-small (BENCHMARKS.md)
    edge_weight: bool = True  # the interaction's (rating, recency) enters the attention score
    text_dim: int = 32  # width of the trainable projection of frozen text features (parameter-efficient)
    edge_dropout: float = 0.0  # share of edges dropped per training step
    attention_lr: float = 0.1  # lr multiplier of the attention parameters (1.0 overfit on ml-100k, see BENCHMARKS.md)
    item_item_dim: int = 0  # width of the GAT's item-item context vectors (0: off; see models/gat.py)
    init: str = "xavier"  # id-embedding init of the graph models: xavier (PyG LightGCN) | normal (std 0.1)
    ease_l2: float = 500.0  # EASE regularisation
    knn_k: int = 100  # ItemKNN neighbours per item
    # gat, the default (ItemGAT: engine/models/itemgat.py; staged fit in engine/training/staged.py):
    attention_dim: int = 32  # width of the target-aware attention keys/queries a(j, i)
    relation: str = "ease"  # item-item relation: ease (ridge inverse or refit) | gfcf (graph filter)
    relation_l2: float = 0.0  # EASE ridge; 0: chosen on validation among 0.25..50 x the mean item degree
    # active items up to which A x A matrices are built (the dense form; 1.6 GB at 20k); above it
    # EASE is refitted from the sparse co-occurrence, never dense (memory ~ A x sources)
    relation_dense_max: int = 20000
    relation_neighbours: int = 512  # sources kept per item on the GF-CF path (relation="gfcf")
    # EASE sources kept per item and refitted; 0: all (dense); < 0: chosen on validation (one-SE rule)
    relation_sources: int = -1
    taste_weight: float = -1.0  # taste term in units of std(history)/std(taste); < 0: chosen on validation
    # rank of the relation's low-pass part (GF-CF's ideal low-pass filter); 0: off; < 0: rank and
    # weight chosen on validation (engine.training.staged.LOWPASS_RANKS); > 0: this rank, weight chosen
    lowpass_rank: int = -1
    finetune_epochs: int = 0  # attention/theta fine-tuning epochs; 0: off (ml-latest-small valid .1933 vs .2063 before)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"model name must be a non-empty string (got {self.name!r})")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS} (got {self.attention!r})")
        if self.embedding_dim % self.heads:
            raise ValueError(f"embedding_dim {self.embedding_dim} is not divisible by heads {self.heads}")
        if self.num_layers < 0:
            raise ValueError(f"num_layers must be >= 0 (got {self.num_layers!r})")
        if self.item_item_dim < 0 or self.item_item_dim % self.heads:
            raise ValueError(
                f"item_item_dim must be >= 0 and divisible by heads {self.heads} (got {self.item_item_dim!r})"
            )
        if not self.attention_lr >= 0:
            raise ValueError(f"attention_lr must be >= 0 (got {self.attention_lr!r})")
        if self.relation not in ("ease", "gfcf"):
            raise ValueError(f"relation must be 'ease' or 'gfcf' (got {self.relation!r})")
        if self.attention_dim < 1 or self.relation_neighbours < 1 or self.finetune_epochs < 0:
            raise ValueError(
                "attention_dim and relation_neighbours must be >= 1 and finetune_epochs >= 0 "
                f"(got {self.attention_dim!r}, {self.relation_neighbours!r}, {self.finetune_epochs!r})"
            )
        if self.init not in ("xavier", "normal"):
            raise ValueError(f"init must be 'xavier' or 'normal' (got {self.init!r})")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 300  # upper bound; early stopping usually ends far sooner
    batch_size: int = 4096  # BPR triples per step; large batches amortise the full-graph forward
    lr: float = 5e-3
    weight_decay: float = 1e-4  # L2 on the batch's ego embeddings (LightGCN's recipe)
    patience: int = 10  # evaluations without validation NDCG@10 improvement before stopping
    eval_every: int = 1  # epochs between validation evaluations
    seed: int = 0  # weight init and negative sampling
    device: str = "auto"  # auto: cuda when available, else cpu
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    max_seconds: float | None = None  # wall-clock cap on training
    tensorboard_dir: str | None = None  # write TensorBoard event files here when set
    mode: str = "auto"  # auto: neighbour-sampled mini-batches above ~1M directed edges, else full-batch

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)!r})")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0 (got {self.lr!r})")
        if self.mode not in ("auto", "full", "minibatch"):
            raise ValueError(f"mode must be auto, full or minibatch (got {self.mode!r})")


# Settings that do not change what is learned; kept out of the artifact fingerprint.
_NOT_FINGERPRINTED = {"device", "tensorboard_dir", "max_seconds"}
# How csv files are read: the content they produce is in the fingerprint as the data
# hash, and leaving them out keeps artifacts trained before these options existed valid.
_DATA_NOT_FINGERPRINTED = {"columns", "encoding", "name", "duplicates", "unknown_items"}


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> RunConfig:
        def build(kind: type, values: dict[str, Any]) -> Any:
            known = {f.name for f in fields(kind)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown {kind.__name__} field(s) {sorted(unknown)}")
            if "ratios" in values:
                values = {**values, "ratios": tuple(values["ratios"])}
            return kind(**values)

        return cls(
            data=build(DataConfig, obj.get("data", {})),
            features=build(FeatureConfig, obj.get("features", {})),
            model=build(ModelConfig, obj.get("model", {})),
            train=build(TrainConfig, obj.get("train", {})),
        )

    def fingerprint_dict(self) -> dict[str, Any]:
        """What identifies a trained artifact (see the module docstring).

        A model field added after the fingerprint scheme was fixed enters only when it differs from
        its default, so every artifact trained before the field existed keeps its fingerprint and
        still loads; a model that sets it (e.g. ItemGAT's relation) is told apart.
        """
        d = self.to_dict()
        d["train"] = {k: v for k, v in d["train"].items() if k not in _NOT_FINGERPRINTED}
        d["data"] = {k: v for k, v in d["data"].items() if k not in _DATA_NOT_FINGERPRINTED}
        defaults = ModelConfig()
        d["model"] = {k: v for k, v in d["model"].items() if k in _MODEL_FIELDS_V1 or v != _plain(getattr(defaults, k))}
        return d

    def with_overrides(self, **sections: dict[str, Any]) -> RunConfig:
        """A copy with per-section overrides, e.g. ``with_overrides(model={"name": "lightgcn"})``."""
        return replace(self, **{name: replace(getattr(self, name), **vals) for name, vals in sections.items()})
