"""The metric registry: every accuracy and beyond-accuracy metric, defined once.

An entry says what a metric is called (``key``, plain-words ``label``), what
it means (a one-sentence ``definition`` for glossary tooltips and reports),
which way is better (``direction``), how to print it (``fmt``, ``unit``), how
to compute it (``fn``) and where the definition comes from (``reference``).
Evaluation (:mod:`engine.evaluation.ranking`, :mod:`engine.evaluation.compute`),
the audit, the CLI, the dashboard and the HTML report all read this registry,
so adding a metric is one :func:`register` call (plus its test).

Scopes and the signature of ``fn``:

* ``"accuracy"``: ``fn(hits: HitTable, k: int) -> float [N]``, per user at a
  cut-off; keys are written ``f"{key}@{k}"`` (``ndcg@10``).
* ``"user"``: ``fn(ctx: ListContext) -> float [U]``, one value per list
  (NaN where undefined); the report's value is the mean over users, and the
  audit can break it down by user group.
* ``"catalog"``: ``fn(ctx: ListContext) -> float``, one value for all lists.
* ``"derived"``: computed by the audit itself (exposure gaps); ``fn`` is None
  and the entry only names and defines the quantity.

The long tail in every definition is :data:`engine.evaluation.popularity.TIERS_DEFINITION`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from engine.evaluation import accuracy as A
from engine.evaluation import beyond as B
from engine.evaluation.lists import ListContext

Scope = Literal["accuracy", "user", "catalog", "derived"]
SCOPES: tuple[str, ...] = ("accuracy", "user", "catalog", "derived")
HIGHER, LOWER, NEUTRAL = "higher is better", "lower is better", "neither direction is better"
DIRECTIONS = (HIGHER, LOWER, NEUTRAL)
INPUTS = ("categories", "embeddings", "history", "relevant")
"""Optional :class:`ListContext` inputs a metric may require."""
_KINDS = ("fraction", "percent", "count", "float")


@dataclass(frozen=True)
class Format:
    """How a value is printed: ``fraction`` / ``float`` with ``digits`` decimals, ``percent``, ``count``."""

    kind: str = "fraction"
    digits: int = 4

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"format kind must be one of {list(_KINDS)} (got {self.kind!r})")
        if not 0 <= self.digits <= 10:
            raise ValueError(f"format digits must be in [0, 10] (got {self.digits!r})")

    def __call__(self, value: Any) -> str:
        """``value`` as text; ``"–"`` for None, NaN or anything not a number."""
        try:
            x = float(value)
        except (TypeError, ValueError):
            return "–"
        if math.isnan(x):
            return "–"
        if self.kind == "percent":
            return f"{x:.{self.digits}%}"
        if self.kind == "count":
            return f"{round(x):,}"
        return f"{x:.{self.digits}f}"

    @property
    def table_format(self) -> str:
        """The pattern for a table column: printf style, or ``"percent"`` (Streamlit multiplies by 100)."""
        if self.kind == "percent":
            return "percent"
        return "%d" if self.kind == "count" else f"%.{self.digits}f"


FRACTION4, FRACTION3, PERCENT1 = Format("fraction", 4), Format("fraction", 3), Format("percent", 1)


@dataclass(frozen=True)
class Metric:
    """One registry entry (see the module docstring for ``scope`` and ``fn``)."""

    key: str
    label: str
    definition: str
    direction: str
    scope: str
    fn: Callable[..., Any] | None
    reference: str
    fmt: Format = FRACTION4
    unit: str = ""
    requires: tuple[str, ...] = ()
    """Optional :class:`ListContext` inputs; without them the metric is skipped."""
    headline: bool = False
    """Shown as a tile at the top of the Fairness page."""
    tradeoff: bool = False
    """A column of the re-ranking trade-off table (must not need history, relevant items or embeddings)."""

    def __post_init__(self) -> None:
        if not self.key or self.key != self.key.strip().lower() or "@" in self.key:
            raise ValueError(f"metric key must be lower case without '@' or spaces (got {self.key!r})")
        if self.scope not in SCOPES:
            raise ValueError(f"metric scope must be one of {list(SCOPES)} (got {self.scope!r})")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric direction must be one of {list(DIRECTIONS)} (got {self.direction!r})")
        if (self.fn is None) != (self.scope == "derived"):
            raise ValueError(f"metric {self.key!r}: fn is required unless scope is 'derived' (got {self.fn!r})")
        if set(self.requires) - set(INPUTS):
            raise ValueError(f"metric {self.key!r}: requires must name inputs from {list(INPUTS)}")
        if self.tradeoff and (self.scope not in ("user", "catalog") or set(self.requires) - {"categories"}):
            raise ValueError(f"metric {self.key!r}: trade-off metrics are list metrics needing at most categories")
        for name in ("label", "definition", "reference"):
            if not getattr(self, name).strip():
                raise ValueError(f"metric {self.key!r} needs a non-empty {name}")

    def available(self, ctx: ListContext) -> bool:
        """Whether ``ctx`` carries every input this metric requires."""
        return all(getattr(ctx, name) is not None for name in self.requires)

    def format(self, value: Any, *, unit: bool = False) -> str:
        """``value`` in this metric's display format, optionally followed by its unit."""
        text = self.fmt(value)
        return f"{text} {self.unit}" if unit and self.unit and text != "–" else text


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry (at the end of its scope's order) and return it.

    Args:
        metric: the entry.
        replace: allow replacing an entry with the same key (default: False).
    """
    if metric.key in _REGISTRY and not replace:
        raise ValueError(f"a metric with key {metric.key!r} is already registered")
    _REGISTRY[metric.key] = metric
    return metric


def unregister(key: str) -> Metric:
    """Remove and return the entry ``key``."""
    if key not in _REGISTRY:
        raise KeyError(f"no registered metric {key!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY.pop(key)


@contextmanager
def registered(metric: Metric) -> Iterator[Metric]:
    """Register ``metric`` for the duration of a ``with`` block (tests, experiments)."""
    register(metric)
    try:
        yield metric
    finally:
        unregister(metric.key)


def all_metrics(scope: str | None = None) -> tuple[Metric, ...]:
    """Registered entries in registration order, optionally of one scope."""
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)} (got {scope!r})")
    return tuple(m for m in _REGISTRY.values() if scope is None or m.scope == scope)


def split_key(key: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"aplt"`` -> ``("aplt", None)``."""
    base, sep, cut = str(key).strip().lower().partition("@")
    if sep and cut.isdigit():
        return base, int(cut)
    return base, None


def find(key: str) -> Metric | None:
    """The entry behind a result key such as ``"ndcg@10"`` or ``"gini_index"``; None when unregistered."""
    base, k = split_key(key)
    metric = _REGISTRY.get(base)
    if metric is None or (k is None) != (metric.scope != "accuracy"):
        return None
    return metric


def get(key: str) -> Metric:
    """Like :func:`find`, but an unknown key raises ``KeyError`` naming it."""
    metric = find(key)
    if metric is None:
        raise KeyError(f"no registered metric for {key!r}; known: {sorted(_REGISTRY)}")
    return metric


def label(key: str) -> str:
    """Plain-words name of a result key (``"NDCG@10"``, ``"Long-tail share"``); the key itself if unknown."""
    metric = find(key)
    if metric is None:
        return str(key)
    _, k = split_key(key)
    return metric.label if k is None else f"{metric.label}@{k}"


def format_value(key: str, value: Any, *, unit: bool = False) -> str:
    """``value`` formatted as the metric ``key`` says (4 decimals for unknown keys)."""
    metric = find(key)
    return metric.format(value, unit=unit) if metric is not None else FRACTION4(value)


def glossary(keys: list[str] | None = None) -> pd.DataFrame:
    """One row per metric: ``key, label, definition, direction, unit, reference, scope``.

    Args:
        keys: result keys to describe, in this order (``"ndcg@10"`` gets the
            NDCG entry with label ``"NDCG@10"``); unknown keys are left out
            (default: None, every registered entry).
    """
    if keys is None:
        pairs = [(m.key, m) for m in all_metrics()]
    else:
        pairs = [(k, m) for k in dict.fromkeys(keys) if (m := find(k)) is not None]
    return pd.DataFrame(
        [
            {
                "key": key,
                "label": label(key),
                "definition": m.definition,
                "direction": m.direction,
                "unit": m.unit,
                "reference": m.reference,
                "scope": m.scope,
            }
            for key, m in pairs
        ],
        columns=["key", "label", "definition", "direction", "unit", "reference", "scope"],
    )


def values_table(values: Mapping[str, Any]) -> pd.DataFrame:
    """The registered metrics among ``values``' keys, in registry order, ready to show.

    Args:
        values: result key -> value (e.g. an audit's ``accuracy`` or
            ``beyond_accuracy``); unregistered keys are left out.

    Returns:
        Columns ``key, label, value, text`` (formatted, with unit), ``direction, definition, reference``.
    """
    rows = []
    for metric in all_metrics():
        keys = [k for k in values if find(k) is metric]
        for key in keys:
            rows.append(
                {
                    "key": key,
                    "label": label(key),
                    "value": values[key],
                    "text": metric.format(values[key], unit=True),
                    "direction": metric.direction,
                    "definition": metric.definition,
                    "reference": metric.reference,
                }
            )
    columns = ["key", "label", "value", "text", "direction", "definition", "reference"]
    return pd.DataFrame(rows, columns=columns)


def table_format(key: str) -> str:
    """Column format of ``key`` for a table (printf pattern or ``"percent"``); ``"%.4f"`` if unknown."""
    metric = find(key)
    return metric.fmt.table_format if metric is not None else FRACTION4.table_format


# --------------------------------------------------------------------------- accuracy (RecBole)

_RECBOLE = "RecBole recbole.evaluator.metrics"
for _entry in (
    Metric("recall", "Recall", "Share of the user's held-out items that appear in the top K.", HIGHER,
           "accuracy", A.recall, f"{_RECBOLE}.Recall"),
    Metric("precision", "Precision", "Share of the top K that the user went on to interact with.", HIGHER,
           "accuracy", A.precision, f"{_RECBOLE}.Precision"),
    Metric("f1", "F1", "Harmonic mean of precision and recall at K.", HIGHER,
           "accuracy", A.f1, "PyG torch_geometric.metrics.LinkPredF1"),
    Metric("ndcg", "NDCG", "Ranking quality: held-out items found near the top of the list count more, "
           "1 means every held-out item is ranked first.", HIGHER, "accuracy", A.ndcg, f"{_RECBOLE}.NDCG"),
    Metric("mrr", "MRR", "One over the rank of the first held-out item in the list (0 if none is in the top K).",
           HIGHER, "accuracy", A.mrr, f"{_RECBOLE}.MRR"),
    Metric("hit", "Hit rate", "Share of users with at least one held-out item in their top K.", HIGHER,
           "accuracy", A.hit, f"{_RECBOLE}.Hit"),
    Metric("map", "MAP", "Mean average precision: precision at each rank that holds a held-out item, averaged.",
           HIGHER, "accuracy", A.average_precision, f"{_RECBOLE}.MAP"),
):  # fmt: skip
    register(_entry)

# --------------------------------------------------------------------------- catalog level

for _entry in (
    Metric("catalog_coverage", "Catalog coverage", "Share of the catalog recommended to at least one user.",
           HIGHER, "catalog", lambda c: B.catalog_coverage(c.topk, c.n_items),
           "RecBole ItemCoverage; PyG LinkPredCoverage", fmt=PERCENT1, headline=True, tradeoff=True),
    Metric("distributional_coverage", "Exposure entropy", "How evenly recommendations spread over the catalog "
           "(Shannon entropy of item exposure; higher is more even).", HIGHER, "catalog",
           lambda c: B.distributional_coverage(c.topk, c.n_items),
           "Microsoft Recommenders distributional_coverage; RecBole ShannonEntropy", fmt=Format("float", 2),
           unit="bits"),
    Metric("gini_index", "Exposure Gini", "How concentrated recommendations are on few items: 0 = every item "
           "recommended equally often, 1 = all recommendations go to one item.", LOWER, "catalog",
           lambda c: B.gini_index(c.topk, c.n_items), "RecBole GiniIndex", fmt=FRACTION3, headline=True,
           tradeoff=True),
    Metric("personalization", "Personalization", "How different two users' lists are on average "
           "(1 = no overlap, 0 = everyone gets the same list).", HIGHER, "catalog",
           lambda c: B.personalization(c.topk, c.n_items),
           "Microsoft Recommenders personalization; PyG LinkPredPersonalization", fmt=FRACTION3),
    Metric("pop_rsp", "Popularity parity gap", "How unequally popular and long-tail items get recommended "
           "relative to how many of each users could have been shown (0 = parity).", LOWER, "catalog",
           lambda c: B.pop_rsp(c.topk, c.popularity, c.history, tail=c.tail),
           "Zhu et al. 2020 RSP; Elliot PopRSP", fmt=FRACTION3, requires=("history",)),
    Metric("pop_reo", "Popularity opportunity gap", "How unequally relevant popular and long-tail items reach "
           "the lists (0 = both found equally often).", LOWER, "catalog",
           lambda c: B.pop_reo(c.topk, c.popularity, c.relevant, tail=c.tail),
           "Zhu et al. 2020 REO; Elliot PopREO", fmt=FRACTION3, requires=("relevant",)),
):  # fmt: skip
    register(_entry)

# --------------------------------------------------------------------------- per user (list level)

for _entry in (
    Metric("arp", "Average popularity", "Mean number of training interactions of the recommended items: how "
           "mainstream the lists are.", NEUTRAL, "user", lambda c: B.arp_per_user(c.topk, c.popularity),
           "Elliot ARP; RecBole AveragePopularity; PyG LinkPredAveragePopularity", fmt=Format("float", 1),
           unit="interactions", tradeoff=True),
    Metric("aplt", "Long-tail share", "Share of recommended items that come from the long tail (the least "
           "popular items, together 20% of interactions).", HIGHER, "user",
           lambda c: B.aplt_per_user(c.topk, c.tail),
           "Abdollahpouri et al. 2019 APLT; Elliot APLT; RecBole TailPercentage", fmt=PERCENT1, headline=True,
           tradeoff=True),
    Metric("novelty", "Novelty", "How unfamiliar the recommended items are: mean self-information of an item, "
           "-log2 of the share of users who know it.", HIGHER, "user",
           lambda c: B.novelty_per_user(c.topk, c.popularity, c.n_users),
           "Microsoft Recommenders novelty (Castells et al.)", fmt=Format("float", 2), unit="bits", headline=True,
           tradeoff=True),
    Metric("ild_categories", "Genre diversity", "How different the items within one list are by category "
           "(mean pairwise Jaccard distance of their category sets; 0 = all alike).", HIGHER, "user",
           lambda c: B.ild_categories_per_user(c.topk, c.categories),
           "Intra-list diversity, Smyth & McClave 2001, Ziegler et al. 2005; PyG LinkPredDiversity",
           fmt=FRACTION3, requires=("categories",), headline=True, tradeoff=True),
    Metric("calibration_kl", "Calibration gap", "How far a list's genre mix is from the genre mix of the "
           "user's history (KL divergence; 0 = same mix).", LOWER, "user",
           lambda c: B.calibration_per_user(c.topk, c.categories, c.history, c.alpha),
           "Steck 2018, Calibrated Recommendations", fmt=FRACTION3, unit="nats",
           requires=("categories", "history")),
    Metric("ild_embeddings", "Content diversity", "How different the items within one list are by their "
           "text (mean pairwise cosine distance of title embeddings).", HIGHER, "user",
           lambda c: B.ild_embeddings_per_user(c.topk, c.embeddings),
           "Intra-list diversity, Ziegler et al. 2005", fmt=FRACTION3, requires=("embeddings",)),
    Metric("serendipity", "Serendipity", "Share of recommended items the user liked that a most-popular "
           "list would not have shown them.", HIGHER, "user",
           lambda c: B.serendipity_per_user(c.topk, c.popularity, c.relevant, c.history),
           "Ge, Delgado-Battenfeld, Jannach 2010", fmt=FRACTION3, requires=("relevant",)),
):  # fmt: skip
    register(_entry)

# --------------------------------------------------------------------------- computed by the audit

_EXPOSURE_GAP = "Singh & Joachims 2018 (exposure); total-variation distance"
for _entry in (
    Metric("popularity_gap", "Exposure gap (popularity)", "How far the head / mid / long-tail exposure "
           "shares are from their catalog shares (0 = exposure in proportion to catalog size).", LOWER,
           "derived", None, _EXPOSURE_GAP, fmt=FRACTION3),
    Metric("provider_gap", "Exposure gap (provider)", "How far each provider's exposure share is from its "
           "catalog share (0 = exposure in proportion to catalog size).", LOWER, "derived", None,
           _EXPOSURE_GAP, fmt=FRACTION3),
    Metric("category_gap", "Exposure gap (category)", "How far each category's exposure share is from its "
           "catalog share (0 = exposure in proportion to catalog size).", LOWER, "derived", None,
           _EXPOSURE_GAP, fmt=FRACTION3),
):  # fmt: skip
    register(_entry)
del _entry
