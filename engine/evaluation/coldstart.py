"""Cold-start check: can language-model features place items the graph has never seen?

Protocol: split as usual, then pick a random share of items (default 5%) and remove
*every* training and validation interaction with them, so they enter the model with no
edges at all (their id embeddings are unused; only the frozen text encoder's features,
through the trainable projection, place them). After training, for each test user who
consumed at least one cold item (in the original test or the moved interactions), rank
the cold items only and measure Recall@20 of the ones they consumed; a random ranking
has expected Recall@20 = 20 / n_cold. The full-catalog Recall@20 restricted to cold
items is reported too (a much harder bar: cold items compete with warm ones).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.config import RunConfig
from engine.data.graph import build_graph
from engine.data.split import I, SplitData, U


def hide_items(split: SplitData, share: float, seed: int = 0) -> tuple[SplitData, np.ndarray, pd.DataFrame]:
    """Remove all train/valid interactions of a random ``share`` of the interacted items.

    Returns:
        The reduced split, the cold item indices, and the held-out (user, item) pairs of
        cold items (from train, valid and test).
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1) (got {share!r})")
    rng = np.random.default_rng(seed)
    seen = np.unique(split.train[I].to_numpy())
    cold = np.sort(rng.choice(seen, size=max(1, round(share * len(seen))), replace=False))
    parts = {name: getattr(split, name) for name in ("train", "valid", "test")}
    held = pd.concat([f[f[I].isin(cold)][[U, I]] for f in parts.values()], ignore_index=True)
    reduced = replace(
        split,
        train=parts["train"][~parts["train"][I].isin(cold)].reset_index(drop=True),
        valid=parts["valid"][~parts["valid"][I].isin(cold)].reset_index(drop=True),
        test=parts["test"][~parts["test"][I].isin(cold)].reset_index(drop=True),
    )
    return reduced, cold, held


def cold_start_eval(config: RunConfig, *, share: float = 0.05, k: int = 20, seed: int = 0) -> dict[str, Any]:
    """Train on a split with hidden items and measure how well they are recommended."""
    from engine.assembly import prepare, train_model

    prep = prepare(config)
    reduced, cold, held = hide_items(prep.split, share, seed)
    graph = build_graph(reduced)
    prep = replace(prep, split=reduced, graph=graph)
    # the model's own recipe (the registry's fit, e.g. gat's staged fit), as gatlens train runs it
    model, result = train_model(prep)
    users = np.unique(held[U].to_numpy())
    with torch.no_grad():
        scores = model.score(torch.as_tensor(users)).numpy()
    train = reduced.matrix("train")
    truth = held.groupby(U)[I].apply(lambda s: set(s.tolist()))
    among, full, rand = [], [], []
    cold_set = set(cold.tolist())
    for row, u in enumerate(users):
        consumed = truth[u]
        s = scores[row]
        top_cold = cold[np.argsort(-s[cold], kind="stable")[:k]]
        among.append(len(consumed & set(top_cold.tolist())) / len(consumed))
        masked = s.copy()
        masked[train.indices[train.indptr[u] : train.indptr[u + 1]]] = -np.inf
        top = np.argpartition(-masked, k)[:k]
        full.append(len(consumed & set(top.tolist()) & cold_set) / len(consumed))
        rand.append(min(k, len(cold)) / len(cold))
    return {
        "model": config.model.name,
        "text_features": prep.text.info is not None,
        "cold_items": len(cold),
        "users": len(users),
        f"recall@{k}_among_cold": float(np.mean(among)),
        f"random_recall@{k}_among_cold": float(np.mean(rand)),
        f"recall@{k}_full_catalog": float(np.mean(full)),
        "epochs": result.epochs,
    }
