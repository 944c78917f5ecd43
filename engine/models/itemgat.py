r"""ItemGAT: target-aware graph attention on an item-item relation, exact per-interaction scores.

The score of item ``i`` for user ``u`` is a sum with one term per past interaction plus two
named residuals:

.. math::
    s(u, i) = \underbrace{\sum_{j \in H(u)} w_{uj} \big(a(j, i)\, S_{ji} + \beta L_{ji}\big)}_{\text{history}}
            + \underbrace{\gamma \langle p_u, q_i \rangle}_{\text{taste profile}}
            + \underbrace{b_i}_{\text{popularity}}

* ``S`` is a closed-form item-item relation fitted on the training matrix: EASE's
  ``B = I - P / diag(P)``, ``P = (X^T X + \lambda I)^{-1}`` (Steck, 2019), over the active items:
  dense (every source counts, up to ``max_dense_items``), or refitted on each item's ``sources``
  most similar items (at most that many past interactions carry an item's history term; the
  staged fit chooses the number on validation). Larger catalogs, where no ``A x A`` matrix fits
  in memory, keep the refitted form only (:func:`~engine.models.relation.large_sources` when none is asked),
  from the sparse co-occurrence. ``relation="gfcf"`` uses the symmetric-normalised co-occurrence
  filter ``\tilde R^T \tilde R`` of GF-CF (Shen et al., 2021) instead, kept as the
  ``neighbours`` strongest sources per target item (the fitting is :mod:`engine.models.relation`).
* ``L = D^-1/2 V V^T D^1/2`` is GF-CF's ideal low-pass filter (the top ``r`` right singular
  vectors ``V`` of the degree-normalised interactions, :mod:`engine.models.lowpass`): a
  low-rank relation that carries the catalog's broad tastes, which a sparse ``S`` leaves out.
  ``beta`` (the buffer ``lowpass_scale``, 0 = off) and ``r`` (``lowpass_rank``) are chosen on
  validation by the staged fit. Like ``S`` it is a sum over the history, so a past item's
  contribution is still exact; unlike ``S`` it reaches every candidate, a little.
* ``a(j, i) = exp(<k_j, q^a_i> + c)`` is target-aware attention (NAIS, He et al. 2018, without
  the history softmax so that a contribution does not change when another interaction is
  removed): how much history item ``j`` counts *for candidate* ``i``. Keys and queries are
  learned item embeddings plus a trainable projection of the frozen language-model text
  features. Queries and ``c`` start at zero, so ``a = 1``: the history term *is* the relation.
* ``w_uj = exp(\theta \cdot (f_{uj} - \bar f))`` weighs the interaction by its rating and
  recency ``f_uj`` (the graph's edge attributes); ``\theta`` starts at zero (``w = 1``).
* ``p_u, q_i`` are LightGCN embeddings (He et al., 2020) propagated on the user-item graph; an
  item's layer-0 embedding is its id embedding plus a projection of its text features (zero at
  the start, so the taste term starts as plain LightGCN), which is what places a cold item (no
  training interaction, so no relation and no id signal): at scoring time a cold item uses the
  text projection alone and the mean popularity of the warm items. ``\gamma`` (the buffer
  ``taste_scale``) weighs the taste term against the history term.

The model owns its heads and losses, never the loop. Its ``stage`` says what a BPR step trains:
``"taste"`` trains the LightGCN part alone on ``<p_u, q_i>`` (and scoring is taste-only, for its
early stopping); ``"attention"`` trains only ``a(j, i)`` and ``theta`` on the full score, with the
out-of-fold relations of :meth:`prepare_finetune`. The staged recipe (relation ridge, taste
training, ``gamma``, optional fine-tuning, every choice by validation NDCG@10) is
:func:`engine.training.staged.fit_staged`.

Everything scoring needs is in the ``state_dict`` (relation, the training histories, ``gamma``),
so ``load_state_dict`` + ``set_cached_embeddings`` scores exactly as the trained model did.
:meth:`contributions` returns the terms; they sum to :meth:`score` exactly (float32 round-off),
so "because you watched A" is the model's own arithmetic.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.data.graph import EDGE_IU, EDGE_UI, RecGraph
from engine.models.base import EmbeddingModel
from engine.models.lowpass import lowpass_factors
from engine.models.mf import init_embeddings
from engine.models.relation import (
    Neighbourhoods,
    default_l2,
    form_sources,
    large_sources,
    mean_item_degree,
    relation_buffers,
    train_matrix,
)

# mean_item_degree and train_matrix moved to engine.models.relation; callers still import them from here.
__all__ = ["RELATIONS", "STAGES", "ItemGAT", "default_l2", "mean_item_degree", "train_matrix"]

RELATIONS = ("ease", "gfcf")
STAGES = ("taste", "attention")
# Buffers whose shape depends on the training data: resized to the stored shape when loading.
_DATA_BUFFERS = (
    "relation_dense",
    "active",
    "nbr_index",
    "nbr_value",
    "hist_indptr",
    "hist_items",
    "hist_feats",
    "lowpass_left",
    "lowpass_right",
)


class ItemGAT(EmbeddingModel):
    """Item-item graph attention recommender with an exact per-interaction decomposition.

    Its relation, histories and warm-item mask are *data*, refitted in closed form on the
    interactions (:meth:`fit_relation`), not learned: an update copies the learned tables and
    refits these (``refitted_buffers``).

    Args:
        n_users: number of users.
        n_items: number of items.
        embedding_dim: width of the taste embeddings ``p_u, q_i`` (default: 64).
        num_layers: LightGCN propagation layers of the taste term (default: 2).
        attention_dim: width of the attention keys and queries (default: 32).
        neighbours: strongest relation sources kept per target item on the GF-CF path;
            ``min(neighbours, items - 1)`` (default: 512).
        relation: ``"ease"`` or ``"gfcf"`` (default: ``"ease"``).
        max_dense_items: largest number of active items for which ``A x A`` matrices are built
            (the dense relation, and the co-occurrences a refit reads); above it the EASE
            relation is refitted from the sparse co-occurrence, never dense (default: 20000,
            ~1.6 GB float32).
        sources: on the EASE path, sources kept per target item and refitted (0: all, the dense
            relation; above ``max_dense_items`` active items, 0 means 128, ``large_sources``)
            (default: 0); :meth:`fit_relation` can change it, and it is stored with the model so
            that a refit (``gatlens update``) keeps the form chosen.
        text_features: frozen item text embeddings ``[n_items, D]`` (default: None).
        init: id-embedding init of the taste term, ``"xavier"`` or ``"normal"`` (default: ``"xavier"``).
        relation_scale: standard deviation of the full score in BPR logit units while the
            attention is fine-tuned (default: 5.0): a temperature of the loss only, so BPR's
            logistic sees the relation's score gaps at a fixed size whatever lambda or the data.
    """

    refitted_buffers = (*_DATA_BUFFERS, "warm", "edge_mean")
    subgraph_encoder = True  # the taste part's LightGCN runs on sampled subgraphs (see encode)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        *,
        embedding_dim: int = 64,
        num_layers: int = 2,
        attention_dim: int = 32,
        neighbours: int = 512,
        relation: str = "ease",
        max_dense_items: int = 20000,
        sources: int = 0,
        text_features: Tensor | None = None,
        init: str = "xavier",
        relation_scale: float = 5.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_users", n_users),
            ("n_items", n_items),
            ("embedding_dim", embedding_dim),
            ("attention_dim", attention_dim),
            ("neighbours", neighbours),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive (got {value!r})")
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0 (got {num_layers!r})")
        if relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS} (got {relation!r})")
        if text_features is not None and text_features.shape[0] != n_items:
            raise ValueError(f"text_features must have {n_items} rows (got {tuple(text_features.shape)})")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.embedding_dim, self.num_layers = int(embedding_dim), int(num_layers)
        self.attention_dim = int(attention_dim)
        self.neighbours = int(min(neighbours, max(n_items - 1, 1)))
        self.relation, self.max_dense_items, self.init = relation, int(max_dense_items), init
        self.relation_scale = float(relation_scale)
        self._stage = "attention"
        # Taste term: drawn first, exactly as our LightGCN draws its tables for the same seed.
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_dim)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_dim)
        init_embeddings([self.user_embedding.weight, self.item_embedding.weight], self.init)
        self.item_bias = nn.Parameter(torch.zeros(self.n_items))
        # Attention a(j, i) = exp(<k_j, q_i> + c); queries and c start at zero so a = 1.
        self.att_key = nn.Embedding(self.n_items, self.attention_dim)
        self.att_query = nn.Embedding(self.n_items, self.attention_dim)
        self.att_bias = nn.Parameter(torch.zeros(()))
        self.edge_theta = nn.Parameter(torch.zeros(2))  # (rating, recency) -> log interaction weight
        self.register_buffer("text", None if text_features is None else text_features.float())
        d_text = 0 if text_features is None else text_features.shape[1]
        self.text_taste = nn.Linear(d_text, self.embedding_dim, bias=False) if d_text else None
        self.text_key = nn.Linear(d_text, self.attention_dim, bias=False) if d_text else None
        self.text_query = nn.Linear(d_text, self.attention_dim, bias=False) if d_text else None
        # The relation: dense [A, A] over the active items (B[j, i]: source j -> target i), or, on
        # the sparse path, target-major top-k rows (row i: its sources j sorted, S[j, i], 0-padded).
        self.register_buffer("relation_dense", torch.zeros(0, 0))
        self.register_buffer("active", torch.zeros(0, dtype=torch.long))
        self.register_buffer("nbr_index", torch.zeros(0, 0, dtype=torch.long))
        self.register_buffer("nbr_value", torch.zeros(0, 0))
        # Training histories (user CSR, items sorted per user, raw (rating, recency) features).
        self.register_buffer("hist_indptr", torch.zeros(self.n_users + 1, dtype=torch.long))
        self.register_buffer("hist_items", torch.zeros(0, dtype=torch.long))
        self.register_buffer("hist_feats", torch.zeros(0, 2))
        self.register_buffer("warm", torch.zeros(self.n_items, dtype=torch.bool))
        self.register_buffer("edge_mean", torch.zeros(2))
        self.register_buffer("relation_l2", torch.tensor(float("nan")))
        self.register_buffer("relation_sources", torch.tensor(0))  # 0: all (dense)
        self._set_sources(sources)
        self.register_buffer("taste_scale", torch.zeros(()))  # gamma: weight of the taste term
        # The low-pass relation L = left @ right.T ([I, r] each, zero rows for cold items), its weight beta.
        self.register_buffer("lowpass_left", torch.zeros(0, 0))
        self.register_buffer("lowpass_right", torch.zeros(0, 0))
        self.register_buffer("lowpass_rank", torch.tensor(0))  # 0: no low-pass part
        self.register_buffer("lowpass_scale", torch.zeros(()))
        self._graph_key: tuple | None = None
        self._adj: Tensor | None = None
        self._degree: Tensor | None = None
        self._folds: tuple[Tensor, Tensor, Tensor | None] | None = None
        # (graph key, k) -> neighbourhoods, one entry, only inside reusing_neighbourhoods()
        self._reuse: dict[tuple, Neighbourhoods] | None = None
        self._temperature = 1.0
        self._reset_attention()
        self.stage = "attention"

    @property
    def stage(self) -> str:
        """What a BPR step trains: ``"taste"`` or ``"attention"`` (see the module docstring)."""
        return self._stage

    @stage.setter
    def stage(self, value: str) -> None:
        if value not in STAGES:
            raise ValueError(f"stage must be one of {STAGES} (got {value!r})")
        self._stage = value
        # In the taste stage only the taste parameters require gradients: DistributedDataParallel
        # reduces every parameter that does, and would wait forever for the attention's. Outside
        # it every parameter does again (the optimiser still takes param_groups only).
        trained = {id(p) for group in self.param_groups(0.0) for p in group["params"]}
        for p in self.parameters():
            p.requires_grad_(value != "taste" or id(p) in trained)

    def reset_parameters(self) -> None:
        """Re-draw the taste and key embeddings; zero every part that would move the start off the relation."""
        init_embeddings([self.user_embedding.weight, self.item_embedding.weight], self.init)
        self._reset_attention()

    def _reset_attention(self) -> None:
        nn.init.normal_(self.att_key.weight, std=1.0 / math.sqrt(self.attention_dim))
        nn.init.zeros_(self.att_query.weight)
        for p in (self.item_bias, self.att_bias, self.edge_theta):
            nn.init.zeros_(p)
        for lin in (self.text_query, self.text_taste):
            if lin is not None:
                nn.init.zeros_(lin.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # The relation and the histories are as large as the data: take the stored shapes.
        for name in _DATA_BUFFERS:
            stored = state_dict.get(prefix + name)
            if isinstance(stored, Tensor) and stored.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def dense(self) -> bool:
        """Whether the relation is the dense ``[A, A]`` matrix (else sparse top-k rows)."""
        return self.relation_dense.numel() > 0

    # ----------------------------------------------------------------------------------- relation
    @torch.no_grad()
    def fit_relation(self, graph: RecGraph, l2: float | None = None, sources: int | None = None) -> ItemGAT:
        """Fit the closed-form relation ``S`` on the graph's user->item edges (no attention change).

        Args:
            graph: the training graph.
            l2: EASE ridge ``lambda`` (default: None, ``default_l2(X)``: 5 x the mean item degree;
                :func:`engine.training.staged.fit_staged` chooses it on validation instead).
            sources: EASE sources kept per target item, 0 for all (default: None, the model's
                current ``relation_sources``).
        """
        if sources is not None:
            self._set_sources(sources)
        self._set_history(graph)
        X = train_matrix(graph)
        active = np.flatnonzero(X.getnnz(axis=0) > 0)
        self.warm = torch.zeros(self.n_items, dtype=torch.bool, device=self.warm.device)
        self.warm[torch.as_tensor(active)] = True
        self.relation_l2 = torch.tensor(float(default_l2(X) if l2 is None else l2))
        if self.relation == "ease" and self._too_large(active) and not 0 < int(self.relation_sources) < len(active) - 1:
            # no dense form above max_dense_items: the largest refitted form, stored so an update keeps it
            self._set_sources(large_sources(len(active)))
        dense, idx, val = self._relation(X, active, self._reused_neighbourhoods(X, active))
        self.active = torch.as_tensor(active, dtype=torch.long)
        self.relation_dense, self.nbr_index, self.nbr_value = dense, idx, val
        if int(self.lowpass_rank) > 0:  # an update refits it at the rank the training chose
            self.fit_lowpass(graph, int(self.lowpass_rank))
        self._folds = None
        return self

    @torch.no_grad()
    def fit_lowpass(self, graph: RecGraph, rank: int) -> ItemGAT:
        """Fit the rank-``rank`` low-pass relation on the graph's user->item edges (``beta`` unchanged).

        Args:
            graph: the training graph.
            rank: singular vectors kept; capped at ``min(users, active items) - 1``; 0 removes the part.
        """
        X = train_matrix(graph)
        active = np.flatnonzero(X.getnnz(axis=0) > 0)
        rank = min(int(rank), min(X.shape[0], len(active)) - 1)
        if rank < 1:
            self.set_lowpass(torch.zeros(self.n_items, 0), torch.zeros(self.n_items, 0))
            return self
        left, right = lowpass_factors(X[:, active], rank)
        full_left, full_right = torch.zeros(self.n_items, rank), torch.zeros(self.n_items, rank)
        full_left[torch.as_tensor(active)], full_right[torch.as_tensor(active)] = left, right
        self.set_lowpass(full_left, full_right)
        return self

    def set_lowpass(self, left: Tensor, right: Tensor) -> None:
        """Install low-pass factors ``[I, r]`` (e.g. the first ``r`` columns of a larger fit's)."""
        if left.shape != right.shape or left.shape[0] != self.n_items:
            shapes = f"{tuple(left.shape)}, {tuple(right.shape)}"
            raise ValueError(f"low-pass factors must both be [{self.n_items}, r] (got {shapes})")
        device = self.lowpass_rank.device
        self.lowpass_left, self.lowpass_right = left.contiguous().to(device), right.contiguous().to(device)
        self.lowpass_rank.fill_(left.shape[1])

    def _set_sources(self, sources: int) -> None:
        if sources < 0:
            raise ValueError(f"sources must be >= 0, 0 for all (got {sources!r})")
        self.relation_sources.fill_(int(sources))

    @contextlib.contextmanager
    def reusing_neighbourhoods(self) -> Iterator[ItemGAT]:
        """Within it, :meth:`fit_relation` finds each item's nearest sources once per graph and form.

        They do not depend on the ridge, so a search over ridges refits only the weights (on
        ml-latest-small, ``X^T X`` alone took 1.2 s of a 1.6 s 16-source refit). One entry
        is kept, an ``A x A`` matrix, dropped on leaving and before a dense fit.
        """
        self._reuse = {}
        try:
            yield self
        finally:
            self._reuse = None

    def _reused_neighbourhoods(self, X: sp.csr_matrix, active: np.ndarray) -> Neighbourhoods | None:
        """The refit's sources from the memo of :meth:`reusing_neighbourhoods` (None outside it)."""
        if self._reuse is None:
            return None
        k = int(self.relation_sources)
        if not (self.relation == "ease" and 0 < k < len(active) - 1):
            self._reuse.clear()  # a dense inverse must not peak beside a kept A x A matrix
            return None
        large = self._too_large(active)
        # a large catalog's one ranked search serves every form up to its width: they take its prefixes
        key = (self._graph_key, "ranked" if large else k)
        if key not in self._reuse or (large and self._reuse[key].ranked.shape[1] < k):
            self._reuse.clear()
            self._reuse[key] = form_sources(X[:, active].tocsc(), k, dense_gram=not large)
        return self._reuse[key].take(k) if large else self._reuse[key]

    def _too_large(self, active: np.ndarray) -> bool:
        """Whether the catalog is above ``max_dense_items`` active items (no ``A x A`` matrix is built)."""
        return len(active) > self.max_dense_items

    def _relation(
        self, X: sp.csr_matrix, active: np.ndarray, neighbourhoods: Neighbourhoods | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(dense [A, A] or empty, top-k index [I, k] or empty, top-k value [I, k] or empty)`` of ``X``."""
        return relation_buffers(
            X,
            active,
            n_items=self.n_items,
            dense=self.relation == "ease",
            l2=float(self.relation_l2),
            neighbours=self.neighbours,
            sources=int(self.relation_sources),
            neighbourhoods=neighbourhoods,
            dense_gram=not self._too_large(active),
        )

    def _set_history(self, graph: RecGraph) -> None:
        """Training histories and the LightGCN adjacency of ``graph`` (recomputed when the graph changes)."""
        key = (id(graph.edge_index), graph.edge_index._version, graph.edge_index.device)
        if self._graph_key == key and self._adj is not None:
            return
        ui = graph.edge_type == EDGE_UI
        u, i = graph.edge_index[0, ui], graph.edge_index[1, ui] - self.n_users
        order = torch.argsort(u * self.n_items + i)
        u, i, f = u[order], i[order], graph.edge_attr[ui][order].float()
        indptr = torch.zeros(self.n_users + 1, dtype=torch.long, device=u.device)
        indptr[1:] = torch.cumsum(torch.bincount(u, minlength=self.n_users), 0)
        self.hist_indptr, self.hist_items, self.hist_feats = indptr, i, f
        self.edge_mean = f.mean(0) if len(f) else torch.zeros(2, device=u.device)
        # The whole graph's user-item degrees: the adjacency's normalisation, and a sampled subgraph's (encode).
        self._degree = torch.cat(
            [torch.bincount(u, minlength=self.n_users), torch.bincount(i, minlength=self.n_items)]
        ).float()
        self._adj = _lightgcn_adjacency(u, i, self.n_users, self._degree)
        self._graph_key = key

    def use_graph(self, graph: RecGraph) -> None:
        """Take the training histories and degrees from ``graph`` (the whole training graph).

        :meth:`encode` on a sampled subgraph normalises by these degrees; :meth:`forward` and
        :meth:`fit_relation` call it themselves.
        """
        self._set_history(graph)

    @torch.no_grad()
    def prepare_finetune(self, graph: RecGraph, *, folds: int = 5, seed: int = 0, sample_users: int = 1024) -> None:
        """Out-of-fold relations and the loss temperature for fine-tuning the attention (stage ``attention``).

        Users are split into ``folds`` groups and a training user's history term uses the relation
        fitted *without* that user's rows. A relation fitted on the very rows it is trained on
        already reconstructs every training positive, so the learned parts would learn to undo
        that fit (measured: -0.03 validation NDCG@10 after one epoch on ml-100k).

        Args:
            graph: the training graph.
            folds: user folds; 0 or 1 trains on the full relation (default: 5).
            seed: seed of the fold assignment and of the users sampled for the temperature (default: 0).
            sample_users: users whose full scores set the temperature (default: 1024).
        """
        X = train_matrix(graph)
        active = self.active.cpu().numpy()
        self._folds = None
        if folds > 1:
            fold = torch.randint(0, folds, (self.n_users,), generator=torch.Generator().manual_seed(seed))
            rel = [self._relation(X[(fold != f).numpy()], active) for f in range(folds)]
            if self.dense:
                self._folds = (fold, torch.stack([r[0] for r in rel]), None)
            else:
                self._folds = (fold, torch.stack([r[1] for r in rel]), torch.stack([r[2] for r in rel]))
        self.cache_embeddings(graph)
        users = torch.randperm(self.n_users, generator=torch.Generator().manual_seed(seed))[:sample_users]
        std = float(self.score(users).std())
        self._temperature = self.relation_scale / max(std, 1e-12)

    # --------------------------------------------------------------------------------- components
    def _text(self, proj: nn.Linear | None) -> Tensor | float:
        return 0.0 if proj is None else proj(self.text)

    def keys(self) -> Tensor:
        """Attention keys ``k_j`` ``[I, attention_dim]``."""
        return self.att_key.weight + self._text(self.text_key)

    def queries(self) -> Tensor:
        """Attention queries ``q_i`` ``[I, attention_dim]``."""
        return self.att_query.weight + self._text(self.text_query)

    def edge_weight(self, feats: Tensor) -> Tensor:
        """Interaction weights ``w_uj`` from (rating, recency) features ``[..., 2]``."""
        return torch.exp((feats - self.edge_mean) @ self.edge_theta)

    def _attention_is_uniform(self) -> bool:
        q = self.att_query.weight
        tq = self.text_query.weight if self.text_query is not None else q
        return not (q.any() or tq.any() or self.att_bias.item() != 0.0)

    def forward(self, graph: RecGraph) -> tuple[Tensor, Tensor]:
        """Taste embeddings ``(p [U, d], q [I, d])``: LightGCN layer mean, items = id + text projection."""
        self._set_history(graph)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage == "taste"):
            x = torch.cat([self.user_embedding.weight, self.item_embedding.weight + self._text(self.text_taste)])
            out = x
            for _ in range(self.num_layers):
                x = torch.sparse.mm(self._adj, x)
                out = out + x
            out = out / (self.num_layers + 1)
        return out[: self.n_users], out[self.n_users :]

    def encode(self, graph: RecGraph, *, node_degree: Tensor | None = None) -> tuple[Tensor, Tensor, None]:
        """Taste embeddings on ``graph``, or on a sampled subgraph of the training graph.

        With ``node_degree`` given (mini-batch training, :mod:`engine.training.minibatch`),
        ``graph`` is a subgraph with the training graph's node numbering; each propagation step
        sums the messages along its user-item edges (both directions), normalised as on the whole
        graph by ``1 / sqrt(d_src d_dst)`` with the degrees of :meth:`use_graph`'s training graph
        (``node_degree`` counts category edges too, which the taste part does not propagate). A
        node that received ``c`` of its ``d`` messages scales them by ``d / c``, so their sum is an
        unbiased estimate of the whole graph's; a node whose neighbourhood was sampled completely
        gets exactly its :meth:`forward` embedding.

        Args:
            graph: the training graph, or a sampled subgraph of it.
            node_degree: given: ``graph`` is a sampled subgraph (default: None, the whole graph).

        Returns:
            ``(p [U, d], q [I, d], None)`` (no attention maps: the taste part has none).
        """
        if node_degree is None:
            p, q = self(graph)
            return p, q, None
        if self._degree is None:
            raise RuntimeError("call use_graph(training graph) before encoding a sampled subgraph")
        n = self.n_users + self.n_items
        ui = (graph.edge_type == EDGE_UI) | (graph.edge_type == EDGE_IU)
        src, dst = graph.edge_index[0, ui], graph.edge_index[1, ui]
        deg = self._degree.to(src.device)
        # A sampled node receives c of its d messages: scaled by d / c, their sum estimates the full
        # sum without bias (a sum of k of d terms is k/d of it, which shrank every sampled row).
        # Where all d were drawn the factor is 1, so complete neighbourhoods stay exact.
        drawn = torch.bincount(dst, minlength=n).float()
        norm = ((deg[src] * deg[dst]).clamp(min=1.0).rsqrt() * deg[dst] / drawn[dst].clamp(min=1.0)).unsqueeze(1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage == "taste"):
            x = torch.cat([self.user_embedding.weight, self.item_embedding.weight + self._text(self.text_taste)])
            out = x
            for _ in range(self.num_layers):
                x = torch.zeros(n, x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, dst, x[src] * norm)
                out = out + x
            out = out / (self.num_layers + 1)
        return out[: self.n_users], out[self.n_users :], None

    def _history_pairs(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """``(row in users, position in hist_items)`` of every history entry of ``users``."""
        indptr = self.hist_indptr
        users = users.to(indptr.device)
        counts = indptr[users + 1] - indptr[users]
        rows = torch.arange(len(users), device=indptr.device).repeat_interleave(counts)
        pos = torch.repeat_interleave(indptr[users] - (torch.cumsum(counts, 0) - counts), counts)
        return rows, pos + torch.arange(int(counts.sum()), device=indptr.device)

    def _active_position(self) -> Tensor:
        """Item -> position among the active items (-1 for cold items)."""
        pos = torch.full((self.n_items,), -1, dtype=torch.long, device=self.active.device)
        pos[self.active] = torch.arange(len(self.active), device=self.active.device)
        return pos

    def history_scores(self, users: Tensor, items: Tensor) -> Tensor:
        """The history sum ``sum_j a(j, i) w_uj S[j, i]`` for pairs ``(users[b], items[b])``.

        In training mode with :meth:`prepare_finetune`'s folds, each user's own out-of-fold relation.
        """
        rows, pos = self._history_pairs(users)
        j, i = self.hist_items[pos], items[rows]
        lowpass = self._pair_lowpass(rows, pos, items)
        folds = self._folds if self.training else None
        f = None if folds is None else folds[0].to(users.device)[users[rows]]
        if self.dense:
            apos = self._active_position()
            aj, ai = apos[j], apos[i]
            ok = (aj >= 0) & (ai >= 0)
            rows, pos, j, aj, ai = rows[ok], pos[ok], j[ok], aj[ok], ai[ok]
            s = self.relation_dense[aj, ai] if f is None else folds[1][f[ok], aj, ai]
        else:
            k = self.nbr_index.shape[1]
            if f is None:
                found, at = _find_sorted(self.nbr_index.reshape(-1), i * k, k, j)
                s = torch.where(found, self.nbr_value.reshape(-1)[at], 0.0)
            else:  # [n, k] rows gathered per pair
                row_idx, row_val = folds[1][f, i], folds[2][f, i]
                hit = row_idx == j.unsqueeze(1)
                s = (row_val * hit).sum(1)
            keep = s != 0
            rows, pos, j, s = rows[keep], pos[keep], j[keep], s[keep]
            i = items[rows]
        w = self.edge_weight(self.hist_feats[pos])
        # <k_j, q_i> for the pairs: one dense [I, T] product over the batch's T distinct targets,
        # then a scalar gather (its backward is a matmul, not an [n_pairs, a] scatter).
        targets, inv = torch.unique(items, return_inverse=True)
        logits = self.keys() @ self.queries()[targets].T
        g = logits[j, inv[rows]] + self.att_bias
        c = torch.exp(g.clamp(max=30.0)) * w * s
        return lowpass + torch.zeros(len(items), device=c.device, dtype=c.dtype).index_add_(0, rows, c)

    def _pair_lowpass(self, rows: Tensor, pos: Tensor, items: Tensor) -> Tensor:
        """``beta sum_j w_uj L[j, i]`` per pair of :meth:`history_scores` (zeros without a low-pass part)."""
        if not self._has_lowpass():
            return torch.zeros(len(items), device=items.device)
        w = self.edge_weight(self.hist_feats[pos])
        profile = torch.zeros(len(items), self.lowpass_left.shape[1], device=w.device, dtype=w.dtype)
        profile = profile.index_add_(0, rows, w.unsqueeze(1) * self.lowpass_left[self.hist_items[pos]])
        return self.lowpass_scale * (profile * self.lowpass_right[items]).sum(1)

    def _has_lowpass(self) -> bool:
        return int(self.lowpass_rank) > 0 and float(self.lowpass_scale) != 0.0

    def ego_embeddings(self, users: Tensor, items: Tensor) -> list[Tensor]:
        """Layer-0 taste rows of the batch (LightGCN's L2 term)."""
        return [self.user_embedding(users), self.item_embedding(items)]

    def loss(
        self, user_emb: Tensor, item_emb: Tensor, users: Tensor, pos: Tensor, neg: Tensor, *, weight_decay: float = 1e-4
    ) -> Tensor:
        """BPR of the current stage: on ``<p_u, q_i>`` (``"taste"``) or on the full score (``"attention"``).

        The full-score loss is scaled by the temperature of :meth:`prepare_finetune` and
        regularises the batch's attention queries. Needs the graph seen by the last :meth:`forward`.
        """
        if self.stage == "taste":
            return super().loss(user_emb, item_emb, users, pos, neg, weight_decay=weight_decay)
        items = torch.cat([pos, neg])
        uu = torch.cat([users, users])
        taste = (user_emb[uu] * item_emb[items]).sum(-1).detach()
        s = self.history_scores(uu, items) + self.taste_scale * taste + self.item_bias[items].detach()
        diff = self._temperature * (s[: len(pos)] - s[len(pos) :])
        reg = self.att_query(items).pow(2).sum() / (2 * len(users))
        return F.softplus(-diff).mean() + weight_decay * reg

    def param_groups(self, lr: float) -> list[dict]:
        """What the stage trains: the taste part (``"taste"``) or the attention and ``theta`` (``"attention"``)."""
        if self.stage == "taste":
            mods = (self.user_embedding, self.item_embedding, self.text_taste)
            return [{"params": [p for m in mods if m is not None for p in m.parameters()], "lr": lr}]
        mods = (self.att_key, self.att_query, self.text_key, self.text_query)
        params = [p for m in mods if m is not None for p in m.parameters()] + [self.att_bias, self.edge_theta]
        return [{"params": params, "lr": lr}]

    # ---------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def cache_embeddings(self, graph: RecGraph) -> None:
        """Cache taste embeddings (cold items: text only) and the attended relation for scoring."""
        was_training = self.training
        self.eval()
        p, q = self(graph)
        cold = ~self.warm
        if cold.any() and self.warm.any():
            q = q.clone()
            q[cold] = self._text(self.text_taste)[cold] if self.text_taste is not None else 0.0
        self.train(was_training)
        self.set_cached_embeddings(p, q)

    def set_cached_embeddings(self, users: Tensor, items: Tensor) -> None:
        """Install final taste embeddings and build the scoring caches from the stored buffers."""
        super().set_cached_embeddings(users.detach().cpu(), items.detach().cpu())
        with torch.no_grad():
            bias = self.item_bias.detach().cpu().clone()
            warm = self.warm.cpu()
            if (~warm).any() and warm.any():
                bias[~warm] = bias[warm].mean()
            self._scoring = (bias, self._attended_relation())

    def _attended_relation(self) -> Tensor:
        """``a(j, i) S[j, i]``: dense ``[A, A]``, or sparse CSR ``[I, I]`` with ``[i, j]`` (target-major)."""
        uniform = self._attention_is_uniform()
        if self.dense:
            if uniform:
                return self.relation_dense.cpu()
            k = self.keys().detach().cpu()[self.active.cpu()]
            q = self.queries().detach().cpu()[self.active.cpu()]
            out = torch.empty_like(self.relation_dense.cpu())
            bias = float(self.att_bias)
            for b in range(0, len(k), 2048):
                g = k @ q[b : b + 2048].T + bias
                out[:, b : b + 2048] = torch.exp(g.clamp(max=30.0)) * self.relation_dense[:, b : b + 2048].cpu()
            return out
        att = torch.ones_like(self.nbr_value)
        if not uniform:
            keys, queries = self.keys(), self.queries()
            for b in range(0, self.n_items, 1024):  # [chunk, k, a] at a time
                nb = self.nbr_index[b : b + 1024]
                g = torch.einsum("ika,ia->ik", keys[nb], queries[b : b + 1024]) + self.att_bias
                att[b : b + 1024] = torch.exp(g.clamp(max=30.0))
        rel = (att * self.nbr_value).detach().reshape(-1).cpu()
        k = self.nbr_index.shape[1]
        # CSR straight from the top-k rows (k entries a row, columns sorted): no COO index copy and
        # no coalesce, whose transient peak was ~7x the result. A cold row's 0-padding repeats
        # column 0 with value 0, which every reader sums (sparse.mm, _csr_row's index_add_).
        crow = torch.arange(0, self.n_items * k + 1, k) if k else torch.zeros(self.n_items + 1, dtype=torch.long)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                crow, self.nbr_index.reshape(-1).cpu(), rel, (self.n_items, self.n_items), check_invariants=False
            )

    @torch.no_grad()
    def weighted_history(self, users: Tensor) -> Tensor:
        """Dense ``[len(users), I]`` matrix of ``w_uj`` (0 off the history), on CPU."""
        rows, pos = self._history_pairs(users)  # on the histories' device (the GPU while training there)
        w = self.edge_weight(self.hist_feats[pos])
        out = torch.zeros(len(users), self.n_items, device=w.device)
        out[rows, self.hist_items[pos]] = w
        return out.cpu()

    def _history_term(self, users: Tensor, *, lowpass: bool = True) -> Tensor:
        w = self.weighted_history(users)
        _, rel = self._scoring
        if self.dense:
            act = self.active.cpu()
            out = torch.zeros(len(users), self.n_items)
            out[:, act] = w[:, act] @ rel
        else:
            out = torch.sparse.mm(rel, w.T).T
        if lowpass and self._has_lowpass():
            out = out + self._lowpass_term(w)
        return out

    def _lowpass_term(self, w: Tensor, scale: float | None = None) -> Tensor:
        """``beta (w @ L)``, ``[B, I]``, for weighted histories ``w [B, I]`` (``scale`` replaces ``beta``)."""
        beta = float(self.lowpass_scale) if scale is None else scale
        return beta * ((w @ self.lowpass_left.cpu()) @ self.lowpass_right.cpu().T)

    @torch.no_grad()
    def lowpass_unit(self, users: Tensor) -> float:
        """``std(history term without L) / std(w @ L)`` over ``users`` x all items: the unit of ``beta``."""
        if int(self.lowpass_rank) == 0:
            raise RuntimeError("fit_lowpass(graph, rank) before lowpass_unit()")
        users = users.cpu()
        lp = self._lowpass_term(self.weighted_history(users), 1.0)
        return float(self._history_term(users, lowpass=False).std()) / max(float(lp.std()), 1e-12)

    @torch.no_grad()
    def score(self, users: Tensor) -> Tensor:
        """Scores ``[len(users), n_items]``: history + taste profile + popularity (taste only in stage ``taste``)."""
        if getattr(self, "_cached", None) is None:
            raise RuntimeError("call cache_embeddings(graph) before score()")
        p, q = self._cached
        users = users.cpu()
        taste = p[users] @ q.T
        if self.stage == "taste":
            return taste
        bias, _ = self._scoring
        return self._history_term(users) + float(self.taste_scale) * taste + bias

    @torch.no_grad()
    def taste_unit(self, users: Tensor) -> float:
        """``std(history term) / std(<p_u, q_i>)`` over ``users`` x all items: the unit of ``gamma``."""
        p, q = self._cached
        users = users.cpu()
        return float(self._history_term(users).std()) / max(float((p[users] @ q.T).std()), 1e-12)

    @torch.no_grad()
    def relation_from(self, sources: Tensor) -> Tensor:
        """``[len(sources), I]``: ``a(j, i) S[j, i] + beta L[j, i]`` from each source item ``j`` to every target ``i``.

        What one interaction with ``j`` (of weight 1) adds to every item's history term; a cold
        source (no training interaction, so no relation) adds nothing.
        """
        if getattr(self, "_scoring", None) is None:
            raise RuntimeError("call cache_embeddings(graph) before relation_from()")
        sources = torch.as_tensor(sources, dtype=torch.long).cpu()
        _, rel = self._scoring
        out = torch.zeros(len(sources), self.n_items)
        if self.dense:
            act = self.active.cpu()
            aj = self._active_position().cpu()[sources]
            ok = aj >= 0
            out[ok.nonzero(as_tuple=True)[0].unsqueeze(1), act] = rel[aj[ok]]
            return out + self._source_lowpass(sources)
        onehot = torch.zeros(self.n_items, len(sources))
        onehot[sources, torch.arange(len(sources))] = 1.0
        return torch.sparse.mm(rel, onehot).T + self._source_lowpass(sources)  # rel is target-major: [i, j]

    def _source_lowpass(self, sources: Tensor) -> Tensor | float:
        """``beta L[j, :]`` for each source ``j``, ``[len(sources), I]`` (0 without a low-pass part)."""
        if not self._has_lowpass():
            return 0.0
        return float(self.lowpass_scale) * (self.lowpass_left.cpu()[sources] @ self.lowpass_right.cpu().T)

    @torch.no_grad()
    def contributions(self, user: int, item: int) -> dict:
        """The exact terms of ``score(user, item)``.

        Returns:
            ``{"history": LongTensor [n] of the user's history items j (sorted), "contribution":
            FloatTensor [n] c(u, j, item) = w_uj (a(j, item) S[j, item] + beta L[j, item]) (without
            a low-pass part, 0 for history items that are not among the item's relation sources),
            "taste profile": float gamma <p_u, q_item>,
            "taste scale": float gamma, "popularity": float b_item, "score": float}``; the
            contributions plus the two residuals equal ``score`` (float32 round-off).
        """
        out = self.contributions_many(user, torch.tensor([int(item)]))
        return {
            "history": out["history"],
            "contribution": out["contribution"][0],
            "taste profile": float(out["taste profile"][0]),
            "taste scale": out["taste scale"],
            "popularity": float(out["popularity"][0]),
            "score": float(out["score"][0]),
        }

    @torch.no_grad()
    def contributions_many(self, user: int, items: Tensor) -> dict:
        """:meth:`contributions` for several items of one user at once.

        Returns:
            ``{"history": [n], "contribution": [len(items), n], "taste profile": [len(items)],
            "taste scale": float, "popularity": [len(items)], "score": [len(items)]}``.
        """
        if getattr(self, "_cached", None) is None:
            raise RuntimeError("call cache_embeddings(graph) before contributions()")
        items = torch.as_tensor(items, dtype=torch.long).cpu()
        a, b = int(self.hist_indptr[user]), int(self.hist_indptr[user + 1])
        j = self.hist_items[a:b].cpu()
        w = self.edge_weight(self.hist_feats[a:b]).cpu()
        bias, rel = self._scoring
        if self.dense:
            apos = self._active_position().cpu()
            aj, ai = apos[j], apos[items]
            block = torch.zeros(len(items), len(j))
            ok_i, ok_j = ai >= 0, aj >= 0
            sub = rel[aj[ok_j]][:, ai[ok_i]].T  # [items, history] of a(j, i) S[j, i]
            block[ok_i.nonzero(as_tuple=True)[0].unsqueeze(1), ok_j.nonzero(as_tuple=True)[0]] = sub
        else:
            block = torch.zeros(len(items), len(j))
            for r, i in enumerate(items.tolist()):
                block[r] = _csr_row(rel, i, self.n_items)[j]
        if self._has_lowpass():  # beta L[j, i]: every past item reaches every candidate a little
            block = block + float(self.lowpass_scale) * (self.lowpass_right.cpu()[items] @ self.lowpass_left.cpu()[j].T)
        contrib = block * w
        p, q = self._cached
        gamma = float(self.taste_scale)
        taste = gamma * (q[items] @ p[user])
        pop = bias[items]
        score = self.score(torch.tensor([int(user)]))[0, items]
        return {
            "history": j,
            "contribution": contrib,
            "taste profile": taste,
            "taste scale": gamma,
            "popularity": pop,
            "score": score,
        }

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.n_users}, {self.n_items}, embedding_dim={self.embedding_dim}, "
            f"num_layers={self.num_layers}, attention_dim={self.attention_dim}, neighbours={self.neighbours}, "
            f"relation={self.relation!r}, max_dense_items={self.max_dense_items}, "
            f"sources={int(self.relation_sources)}, "
            f"text_features={None if self.text is None else tuple(self.text.shape)}, init={self.init!r}, "
            f"relation_scale={self.relation_scale})"
        )


# ------------------------------------------------------------------------------------- helpers
def _lightgcn_adjacency(u: Tensor, i: Tensor, n_users: int, degree: Tensor) -> Tensor:
    """``D^-1/2 A D^-1/2`` of the user-item graph as a sparse CSR ``[U+I, U+I]`` (``degree``: users, then items)."""
    n = len(degree)
    src = torch.cat([u, i + n_users])
    dst = torch.cat([i + n_users, u])
    w = degree[src].rsqrt() * degree[dst].rsqrt()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        return torch.sparse_coo_tensor(torch.stack([dst, src]), w, (n, n)).coalesce().to_sparse_csr()


def _find_sorted(flat: Tensor, start: Tensor, k: int, value: Tensor) -> tuple[Tensor, Tensor]:
    """Binary search of ``value[b]`` in the sorted row ``flat[start[b] : start[b] + k]``: ``(found, position)``."""
    lo, hi = start.clone(), start + k
    end = hi.clone()
    last = max(len(flat) - 1, 0)
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        go_right = active & (flat[mid.clamp(max=last)] < value)
        lo = torch.where(go_right, mid + 1, lo)
        hi = torch.where(active & ~go_right, mid, hi)
    found = (lo < end) & (flat[lo.clamp(max=last)] == value)
    return found, lo.clamp(max=last)


def _csr_row(m: Tensor, row: int, n: int) -> Tensor:
    crow, col, val = m.crow_indices(), m.col_indices(), m.values()
    out = torch.zeros(n)
    a, b = int(crow[row]), int(crow[row + 1])
    out.index_add_(0, col[a:b], val[a:b])
    return out
