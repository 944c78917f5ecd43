r"""ItemGAT: target-aware graph attention on an item-item relation, exact per-interaction scores.

The score of item ``i`` for user ``u`` is a sum with one term per past interaction plus two
named residuals:

.. math::
    s(u, i) = \underbrace{\sum_{j \in H(u)} a(j, i)\, w_{uj}\, S_{ji}}_{\text{history}}
            + \underbrace{\gamma \langle p_u, q_i \rangle}_{\text{taste profile}}
            + \underbrace{b_i}_{\text{popularity}}

* ``S`` is a closed-form item-item relation fitted on the training matrix: EASE's
  ``B = I - P / diag(P)``, ``P = (X^T X + \lambda I)^{-1}`` (Steck, 2019), kept as the
  ``neighbours`` strongest sources per target item (all of them on MovieLens-size catalogs,
  a sparse top-k graph on large ones). Catalogs with more than ``max_dense_items`` active
  items, where the inverse does not fit in memory, use the symmetric-normalised co-occurrence
  filter ``\tilde R^T \tilde R`` of GF-CF (Shen et al., 2021) instead, computed in column blocks.
* ``a(j, i) = exp(<k_j, q^a_i> + c)`` is target-aware attention (NAIS, He et al. 2018, without
  the history softmax so that a contribution does not change when another interaction is
  removed): how much history item ``j`` counts *for candidate* ``i``. Keys and queries are
  learned item embeddings plus a trainable projection of the frozen language-model text
  features. The query side starts at zero, so ``a = 1`` at initialisation.
* ``w_uj = exp(\theta \cdot (f_{uj} - \bar f))`` weighs the interaction by its rating and
  recency ``f_uj`` (the graph's edge attributes); ``\theta`` starts at zero (``w = 1``).
* ``p_u, q_i`` are LightGCN embeddings (He et al., 2020) propagated on the user-item graph; an
  item's layer-0 embedding is its id embedding plus a projection of its text features, which
  is what places a cold item (no training interaction, so no relation and no id signal): at
  scoring time a cold item uses the text projection alone and the mean popularity of the warm
  items. ``\gamma`` starts at zero (ReZero), as does ``b``.

So the untrained model *is* the closed-form relation (``score == X S``), and training (BPR,
early stopping on validation NDCG@10 by the shared loop) can only move away from it where
validation agrees. :meth:`contributions` returns the terms; they sum to :meth:`score` exactly,
so "because you watched A" is the model's own arithmetic.

Wiring: build the model, call :meth:`fit_relation` once on the training graph (it only reads
the user->item edges), then train with :func:`engine.training.loop.fit` as any
:class:`EmbeddingModel`. :func:`select_l2` picks EASE's ridge on validation NDCG@10.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.data.graph import EDGE_UI, RecGraph
from engine.models.base import EmbeddingModel
from engine.models.ease import ease_weights
from engine.models.mf import init_embeddings

RELATIONS = ("ease", "gfcf")
_DENSE_TABLE = 50_000_000  # users x items up to which training looks history up in a dense table (200 MB)


class ItemGAT(EmbeddingModel):
    """Item-item graph attention recommender with an exact per-interaction decomposition.

    Args:
        n_users: number of users.
        n_items: number of items.
        embedding_dim: width of the taste embeddings ``p_u, q_i`` (default: 64).
        num_layers: LightGCN propagation layers of the taste term (default: 2).
        attention_dim: width of the attention keys and queries (default: 32).
        neighbours: strongest relation sources kept per target item; ``min(neighbours, items)``
            (default: 512, lossless on catalogs of a few thousand items; ~4 MB per 1k items).
        relation: ``"ease"`` or ``"gfcf"``; ``"ease"`` falls back to ``"gfcf"`` above
            ``max_dense_items`` active items (default: ``"ease"``).
        max_dense_items: largest catalog whose dense ``I x I`` inverse is computed
            (default: 20000, ~1.6 GB float32 at the peak).
        text_features: frozen item text embeddings ``[n_items, D]`` (default: None).
        init: id-embedding init of the taste term, ``"xavier"`` or ``"normal"`` (default: ``"xavier"``).
        attention_lr: learning-rate multiplier of the attention and edge-weight parameters
            (default: 0.1; a handful of shared parameters move fast under Adam).
        relation_scale: standard deviation of the history term at the start, in BPR logit units
            (default: 5.0); sets the initial attention bias ``c``, so ``a = const`` at the start.
    """

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
        text_features: Tensor | None = None,
        init: str = "xavier",
        attention_lr: float = 0.1,
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
        if relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS} (got {relation!r})")
        if text_features is not None and text_features.shape[0] != n_items:
            raise ValueError(f"text_features must have {n_items} rows (got {tuple(text_features.shape)})")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.embedding_dim, self.num_layers = int(embedding_dim), int(num_layers)
        self.attention_dim = int(attention_dim)
        self.neighbours = int(min(neighbours, max(n_items - 1, 1)))
        self.relation, self.max_dense_items, self.init = relation, int(max_dense_items), init
        self.attention_lr = float(attention_lr)
        self.relation_scale = float(relation_scale)
        # Taste term (LightGCN) and popularity; gate and biases start at zero: the start is the relation.
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_dim)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_dim)
        self.item_bias = nn.Parameter(torch.zeros(self.n_items))
        # Attention a(j, i) = exp(<k_j, q_i> + c); queries start at zero so a = 1.
        self.att_key = nn.Embedding(self.n_items, self.attention_dim)
        self.att_query = nn.Embedding(self.n_items, self.attention_dim)
        self.att_bias = nn.Parameter(torch.zeros(()))
        self.edge_theta = nn.Parameter(torch.zeros(2))  # (rating, recency) -> log interaction weight
        self.register_buffer("text", None if text_features is None else text_features.float())
        d_text = 0 if text_features is None else text_features.shape[1]
        self.text_taste = nn.Linear(d_text, self.embedding_dim, bias=False) if d_text else None
        self.text_key = nn.Linear(d_text, self.attention_dim, bias=False) if d_text else None
        self.text_query = nn.Linear(d_text, self.attention_dim, bias=False) if d_text else None
        # Relation in "target-major" layout: row i holds its sources j and S[j, i] (0-padded).
        self.register_buffer("nbr_index", torch.zeros(self.n_items, self.neighbours, dtype=torch.long))
        self.register_buffer("nbr_value", torch.zeros(self.n_items, self.neighbours))
        self.register_buffer("warm", torch.zeros(self.n_items, dtype=torch.bool))
        self.register_buffer("edge_mean", torch.zeros(2))
        self.relation_l2 = float("nan")
        self._graph_key: tuple | None = None
        self._hist: tuple[Tensor, Tensor, Tensor] | None = None  # indptr, items, centred features
        self._adj: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the taste and key embeddings; zero every part that would move the start off the relation."""
        init_embeddings([self.user_embedding.weight, self.item_embedding.weight], self.init)
        nn.init.normal_(self.att_key.weight, std=1.0 / math.sqrt(self.attention_dim))
        nn.init.zeros_(self.att_query.weight)
        for p in (self.item_bias, self.att_bias, self.edge_theta):
            nn.init.zeros_(p)
        if self.text_query is not None:
            nn.init.zeros_(self.text_query.weight)

    # ----------------------------------------------------------------------------------- relation
    @torch.no_grad()
    def fit_relation(self, graph: RecGraph, l2: float | None = None, *, folds: int = 5, seed: int = 0) -> ItemGAT:
        """Fit the closed-form relation ``S`` on the graph's user->item edges (call once before training).

        Besides the relation used for scoring, ``folds`` out-of-fold relations are fitted for
        training: users are split into ``folds`` groups and a training user's history term uses
        the relation fitted *without* that user's rows. A relation fitted on the very rows it is
        trained on already reconstructs every training positive, so the learned parts would
        learn to undo that fit (measured: -0.03 validation NDCG@10 after one epoch on ml-100k).

        Args:
            graph: the training graph.
            l2: EASE ridge ``lambda`` (default: None, ``default_l2(X)``: 5 x the mean item degree;
                :func:`select_l2` chooses it on validation instead).
            folds: user folds of the training relations; 0 or 1 trains on the full relation
                (default: 5).
            seed: seed of the fold assignment (default: 0).
        """
        X = _train_matrix(graph)
        active = np.flatnonzero(X.getnnz(axis=0) > 0)
        self.warm.zero_()
        self.warm[torch.as_tensor(active)] = True
        self.relation_l2 = float(default_l2(X) if l2 is None else l2)
        idx, val = self._relation(X, active)
        self.nbr_index.zero_()
        self.nbr_value.zero_()
        self.nbr_index[:], self.nbr_value[:] = idx, val
        self._folds = None
        if folds > 1:
            fold = torch.randint(0, folds, (self.n_users,), generator=torch.Generator().manual_seed(seed))
            rel = [self._relation(X[(fold != f).numpy()], active) for f in range(folds)]
            self._folds = (fold, torch.stack([r[0] for r in rel]), torch.stack([r[1] for r in rel]))
        attr = graph.edge_attr[graph.edge_type == EDGE_UI].float()
        self.edge_mean.copy_(attr.mean(0) if len(attr) else torch.zeros(2))
        # Scale: the history term starts at relation_scale / std(X S) (a uniform a(j, i), so the
        # ranking is exactly the relation's). BPR's logistic then sees the relation's score gaps
        # at a fixed size whatever lambda or the data, and its gradients on the learned parts
        # neither vanish nor swamp the closed-form start.
        self._graph_key = None
        self._history(graph)
        users = torch.randperm(self.n_users, generator=torch.Generator().manual_seed(seed))[:512]
        raw = torch.sparse.mm(self._relation_matrix(torch.ones_like(self.nbr_value)), self.weighted_history(users).T)
        self.att_bias.fill_(math.log(self.relation_scale / max(float(raw.std()), 1e-12)))
        self._init_bias = float(self.att_bias)
        return self

    def _relation(self, X: sp.csr_matrix, active: np.ndarray) -> tuple[Tensor, Tensor]:
        """Target-major top-k relation ``(index [I, k], value [I, k])`` of ``X``'s ``active`` items."""
        Xa = X[:, active].tocsc()
        if self.relation == "ease" and len(active) <= self.max_dense_items:
            B = ease_weights(Xa, self.relation_l2)  # [A, A], B[j, i]: source j -> target i
            idx, val = _top_k_columns(B, self.neighbours)
        else:
            idx, val = _gfcf_top_k(Xa, self.neighbours)
        act = torch.as_tensor(active, dtype=torch.long)
        index = torch.zeros(self.n_items, self.neighbours, dtype=torch.long)
        value = torch.zeros(self.n_items, self.neighbours)
        index[act, : idx.shape[1]] = act[idx]
        value[act, : idx.shape[1]] = val
        return index, value

    def _history(self, graph: RecGraph) -> tuple[Tensor, Tensor, Tensor]:
        """User -> history CSR (indptr, items sorted per user, centred edge features), cached per graph."""
        key = (id(graph.edge_index), graph.edge_index._version, graph.edge_index.device)
        if self._graph_key != key or self._hist is None:
            ui = graph.edge_type == EDGE_UI
            u, i = graph.edge_index[0, ui], graph.edge_index[1, ui] - self.n_users
            order = torch.argsort(u * self.n_items + i)
            u, i, f = u[order], i[order], graph.edge_attr[ui][order].float()
            indptr = torch.zeros(self.n_users + 1, dtype=torch.long, device=u.device)
            indptr[1:] = torch.cumsum(torch.bincount(u, minlength=self.n_users), 0)
            self._hist = (indptr, i, f)
            # Dense (user, item) -> position table when it is small (O(1) membership in training).
            self._table = None
            if self.n_users * self.n_items <= _DENSE_TABLE:
                self._table = torch.full((self.n_users, self.n_items), -1, dtype=torch.int32, device=u.device)
                self._table[u, i] = torch.arange(len(i), dtype=torch.int32, device=u.device)
            self._adj = _lightgcn_adjacency(u, i, self.n_users, self.n_items)
            self._graph_key = key
        return self._hist

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

    def forward(self, graph: RecGraph) -> tuple[Tensor, Tensor]:
        """Taste embeddings ``(p [U, d], q [I, d])``: LightGCN layer mean, items = id + text projection."""
        self._history(graph)
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight + self._text(self.text_taste)])
        out = x
        for _ in range(self.num_layers):
            x = torch.sparse.mm(self._adj, x)
            out = out + x
        out = out / (self.num_layers + 1)
        return out[: self.n_users], out[self.n_users :]

    def history_scores(self, users: Tensor, items: Tensor) -> Tensor:
        """The history sum ``sum_j a(j, i) w_uj S[j, i]`` for pairs ``(users[b], items[b])``.

        Uses the history of the graph seen by the last :meth:`forward` / :meth:`cache_embeddings`.
        """
        indptr, hist, feats = self._hist
        if self.training and getattr(self, "_folds", None) is not None:
            fold, f_index, f_value = self._folds
            f = fold[users.cpu()].to(items.device)
            nbr, val = f_index.to(items.device)[f, items], f_value.to(items.device)[f, items]
        else:
            nbr, val = self.nbr_index[items], self.nbr_value[items]  # [B, k]
        uu = users.unsqueeze(1).expand_as(nbr).reshape(-1)
        if self._table is not None:
            pos = self._table[uu, nbr.reshape(-1)].long()
            found = pos >= 0
        else:
            found, pos = _find(uu, nbr.reshape(-1), indptr, hist)
        found &= val.reshape(-1) != 0  # padding and zero-weight sources contribute nothing
        rows = torch.arange(len(items), device=items.device).repeat_interleave(nbr.shape[1])[found]
        j = nbr.reshape(-1)[found]
        s = val.reshape(-1)[found]
        w = self.edge_weight(feats[pos[found]])
        # <k_j, q_i> for the found pairs: one dense [I, T] product over the batch's T distinct
        # targets, then a scalar gather (its backward is a matmul, not an [n_pairs, a] scatter).
        targets, inv = torch.unique(items, return_inverse=True)
        logits = self.keys() @ self.queries()[targets].T
        g = logits[j, inv[rows]] + self.att_bias
        c = torch.exp(g.clamp(max=30.0)) * w * s
        return torch.zeros(len(items), device=c.device, dtype=c.dtype).index_add_(0, rows, c)

    def loss(
        self, user_emb: Tensor, item_emb: Tensor, users: Tensor, pos: Tensor, neg: Tensor, *, weight_decay: float = 1e-4
    ) -> Tensor:
        """BPR on the full score (history + taste + popularity), L2 on the batch's layer-0 rows.

        Needs the graph seen by the last :meth:`forward` (the shared loop calls ``model(graph)`` first).
        """
        items = torch.cat([pos, neg])
        uu = torch.cat([users, users])
        hist = self.history_scores(uu, items)
        s = (user_emb[uu] * item_emb[items]).sum(-1) + self.item_bias[items] + hist
        diff = s[: len(pos)] - s[len(pos) :]
        reg = (
            self.user_embedding(users).pow(2).sum()
            + self.item_embedding(items).pow(2).sum()
            + self.att_query(items).pow(2).sum()
        ) / (2 * len(users))
        return F.softplus(-diff).mean() + weight_decay * reg

    def param_groups(self, lr: float) -> list[dict]:
        """Attention and edge-weight parameters at ``attention_lr x lr``, the rest at ``lr``."""
        slow = {
            id(p)
            for m in (self.att_key, self.att_query, self.text_key, self.text_query)
            if m is not None
            for p in m.parameters()
        } | {id(self.att_bias), id(self.edge_theta)}
        fast = [p for p in self.parameters() if id(p) not in slow]
        slow_p = [p for p in self.parameters() if id(p) in slow]
        return [{"params": fast, "lr": lr}, {"params": slow_p, "lr": lr * self.attention_lr}]

    # ---------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def cache_embeddings(self, graph: RecGraph) -> None:
        """Cache taste embeddings (cold items: text only), popularity and the attended relation."""
        was_training = self.training
        self.eval()
        p, q = self(graph)
        bias = self.item_bias.detach().clone()
        cold = ~self.warm
        if cold.any() and self.warm.any():
            q = q.clone()
            q[cold] = self._text(self.text_taste)[cold] if self.text_taste is not None else 0.0
            bias[cold] = bias[self.warm].mean()
        keys, queries = self.keys(), self.queries()
        att = torch.empty_like(self.nbr_value)
        for b in range(0, self.n_items, 1024):  # [chunk, k, a] at a time
            nb = self.nbr_index[b : b + 1024]
            g = torch.einsum("ika,ia->ik", keys[nb], queries[b : b + 1024]) + self.att_bias
            att[b : b + 1024] = torch.exp(g.clamp(max=30.0))
        rel_t = self._relation_matrix(att)
        self._cached = (p.float(), q.float())
        self._scoring = (bias.cpu(), rel_t)
        self.train(was_training)

    def _relation_matrix(self, att: Tensor) -> Tensor:
        """Sparse CSR ``[I, I]`` with ``[i, j] = att[i, slot] S[j, i]`` (target-major, for ``rel_t @ W^T``)."""
        rel = (att * self.nbr_value).reshape(-1).cpu()
        rows = torch.arange(self.n_items).repeat_interleave(self.neighbours)
        ij = torch.stack([rows, self.nbr_index.reshape(-1).cpu()])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            # 0-padding entries sum into (i, 0) with value 0
            return torch.sparse_coo_tensor(ij, rel, (self.n_items, self.n_items)).coalesce().to_sparse_csr()

    def weighted_history(self, users: Tensor) -> Tensor:
        """Dense ``[len(users), I]`` matrix of ``w_uj`` (0 off the history)."""
        indptr, hist, feats = self._hist
        users = users.to(indptr.device)
        counts = indptr[users + 1] - indptr[users]
        rows = torch.arange(len(users), device=indptr.device).repeat_interleave(counts)
        # position of each history entry: the user's row start + its offset within the row
        pos = torch.repeat_interleave(indptr[users] - (torch.cumsum(counts, 0) - counts), counts)
        pos = pos + torch.arange(int(counts.sum()), device=indptr.device)
        out = torch.zeros(len(users), self.n_items, device=indptr.device)
        out[rows, hist[pos]] = self.edge_weight(feats[pos])
        return out

    @torch.no_grad()
    def score(self, users: Tensor) -> Tensor:
        """Scores ``[len(users), n_items]``: history + taste profile + popularity."""
        if getattr(self, "_cached", None) is None:
            raise RuntimeError("call cache_embeddings(graph) before score()")
        p, q = self._cached
        bias, rel_t = self._scoring
        users = users.cpu()
        w = self.weighted_history(users).cpu()
        hist = torch.sparse.mm(rel_t, w.T).T
        return hist + p[users] @ q.T + bias

    @torch.no_grad()
    def contributions(self, user: int, item: int) -> dict:
        """The exact terms of ``score(user, item)``.

        Returns:
            ``{"history": LongTensor [n] of history items j, "contribution": [n] c(u, j, item)
            (0 for history items that are not among the item's relation sources),
            "taste profile": float, "popularity": float, "score": float}``; the contributions
            plus the two residuals equal ``score`` (float32 round-off).
        """
        if getattr(self, "_cached", None) is None:
            raise RuntimeError("call cache_embeddings(graph) before contributions()")
        indptr, hist, feats = self._hist
        j = hist[indptr[user] : indptr[user + 1]].cpu()
        w = self.edge_weight(feats[indptr[user] : indptr[user + 1]]).cpu()
        _, rel_t = self._scoring
        row = _csr_row(rel_t, item, self.n_items)
        contrib = w * row[j]
        p, q = self._cached
        bias = self._scoring[0]
        taste = float(p[user] @ q[item])
        pop = float(bias[item])
        return {
            "history": j,
            "contribution": contrib,
            "taste profile": taste,
            "popularity": pop,
            "score": float(self.score(torch.tensor([user]))[0, item]),
        }

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.n_users}, {self.n_items}, embedding_dim={self.embedding_dim}, "
            f"num_layers={self.num_layers}, attention_dim={self.attention_dim}, neighbours={self.neighbours}, "
            f"relation={self.relation!r}, max_dense_items={self.max_dense_items}, "
            f"text_features={None if self.text is None else tuple(self.text.shape)}, init={self.init!r}, "
            f"attention_lr={self.attention_lr}, relation_scale={self.relation_scale})"
        )


# ------------------------------------------------------------------------------------- helpers
def default_l2(X: sp.spmatrix) -> float:
    """EASE ridge that scales with the data: 5 x the mean training degree of the active items."""
    deg = np.asarray(X.sum(axis=0)).ravel()
    deg = deg[deg > 0]
    return float(5.0 * deg.mean()) if len(deg) else 1.0


def _train_matrix(graph: RecGraph) -> sp.csr_matrix:
    ui = (graph.edge_type == EDGE_UI).cpu()
    u = graph.edge_index[0, ui].cpu().numpy()
    i = graph.edge_index[1, ui].cpu().numpy() - graph.n_users
    X = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(graph.n_users, graph.n_items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def _top_k_columns(B: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per target column ``i`` of ``B [A, A]``: the ``k`` largest ``|B[j, i]|`` as ``(j [A, k], B[j, i] [A, k])``."""
    k = min(k, B.shape[0])
    idx = torch.topk(B.abs().T, k, dim=1).indices
    idx = torch.sort(idx, dim=1).values  # sorted columns: a valid CSR layout
    return idx, torch.gather(B.T, 1, idx)


def _gfcf_top_k(Xa: sp.csc_matrix, k: int, block: int = 512) -> tuple[Tensor, Tensor]:
    """Top-``k`` sources per item of GF-CF's linear filter ``R~^T R~`` (R~ = D_u^-1/2 R D_i^-1/2), blockwise."""
    du = np.asarray(Xa.sum(axis=1)).ravel()
    di = np.asarray(Xa.sum(axis=0)).ravel()
    R = sp.diags(1 / np.sqrt(np.maximum(du, 1))) @ Xa @ sp.diags(1 / np.sqrt(np.maximum(di, 1)))
    R = R.tocsc().astype(np.float32)
    Rt = R.T.tocsr()
    n = R.shape[1]
    k = min(k, n)
    idx = torch.empty(n, k, dtype=torch.long)
    val = torch.empty(n, k)
    for b in range(0, n, block):
        G = torch.from_numpy((Rt @ R[:, b : b + block]).toarray())  # [n, block]
        cols = torch.arange(b, min(b + block, n))
        G[cols, cols - b] = 0.0  # no self-loop, as EASE's zero diagonal
        top = torch.topk(G.T, k, dim=1).indices
        top = torch.sort(top, dim=1).values
        idx[b : b + block] = top
        val[b : b + block] = torch.gather(G.T, 1, top)
    return idx, val


def _lightgcn_adjacency(u: Tensor, i: Tensor, n_users: int, n_items: int) -> Tensor:
    """``D^-1/2 A D^-1/2`` of the user-item graph as a sparse CSR ``[U+I, U+I]``."""
    n = n_users + n_items
    src = torch.cat([u, i + n_users])
    dst = torch.cat([i + n_users, u])
    deg = torch.bincount(dst, minlength=n).float()
    w = deg[src].rsqrt() * deg[dst].rsqrt()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_coo_tensor(torch.stack([dst, src]), w, (n, n)).coalesce().to_sparse_csr()


def _find(users: Tensor, items: Tensor, indptr: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Binary search of each ``(user, item)`` in the user's sorted CSR row: ``(found, position)``."""
    start, end = indptr[users], indptr[users + 1]
    lo, hi = start.clone(), end.clone()
    last = max(len(indices) - 1, 0)
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        go_right = active & (indices[mid.clamp(max=last)] < items)
        lo = torch.where(go_right, mid + 1, lo)
        hi = torch.where(active & ~go_right, mid, hi)
    found = (lo < end) & (indices[lo.clamp(max=last)] == items)
    return found, lo.clamp(max=last)


def _csr_row(m: Tensor, row: int, n: int) -> Tensor:
    crow, col, val = m.crow_indices(), m.col_indices(), m.values()
    out = torch.zeros(n)
    a, b = int(crow[row]), int(crow[row + 1])
    out.index_add_(0, col[a:b], val[a:b])
    return out


def select_l2(split, grid: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)) -> tuple[float, dict[float, float]]:
    """EASE's ridge by validation NDCG@10: ``lambda = c x mean item degree`` for ``c`` in ``grid``.

    Args:
        split: the :class:`engine.data.split.SplitData` (train fits, valid scores).
        grid: multipliers of the mean training degree of the active items (default: 1 .. 50).

    Returns:
        ``(best lambda, {lambda: validation NDCG@10})``.
    """
    from engine.evaluation.ranking import evaluate
    from engine.models.ease import EASE

    base = default_l2(split.matrix("train")) / 5.0
    results = {}
    for c in grid:
        lam = c * base
        results[lam] = float(evaluate(EASE(l2=lam).fit(split), split, "valid", ks=(10,)).overall["ndcg@10"])
    return max(results, key=results.get), results
