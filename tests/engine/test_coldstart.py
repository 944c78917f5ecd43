"""Cold-start evaluation: hidden items leave every part of the split; the model trains by its own recipe."""

from __future__ import annotations

import numpy as np

from engine.assembly import prepare
from engine.config import RunConfig
from engine.data.split import I, U
from engine.evaluation.coldstart import cold_start_eval, hide_items

CFG = RunConfig().with_overrides(data={"scale": 0.1}, features={"text": False}, train={"epochs": 3})


def test_hidden_items_leave_train_valid_and_test(tmp_path) -> None:
    split = prepare(CFG, cache_dir=tmp_path).split
    reduced, cold, held = hide_items(split, 0.1, seed=0)
    seen = np.unique(split.train[I].to_numpy())
    assert len(cold) == round(0.1 * len(seen)) and set(cold) <= set(seen)
    for part in ("train", "valid", "test"):
        assert not getattr(reduced, part)[I].isin(cold).any()
    moved = sum(getattr(split, p)[I].isin(cold).sum() for p in ("train", "valid", "test"))
    assert len(held) == moved


def test_cold_start_eval_trains_the_default_gat_by_its_staged_fit(tmp_path, monkeypatch) -> None:
    import engine.assembly as assembly

    fitted = []
    real = assembly.train_model
    monkeypatch.setattr(assembly, "train_model", lambda prep, **kw: fitted.append(prep) or real(prep, **kw))
    cfg = CFG.with_overrides(data={"data_dir": None})
    monkeypatch.chdir(tmp_path)  # the default cache dir is relative: keep it out of the repository
    out = cold_start_eval(cfg, share=0.1, k=20, seed=0)
    assert out["model"] == "gat" and len(fitted) == 1
    split = prepare(cfg, cache_dir=tmp_path / "data" / "cache").split
    _, cold, held = hide_items(split, 0.1, seed=0)
    assert fitted[0].config.model.name == "gat" and not fitted[0].split.train[I].isin(cold).any()
    assert out["cold_items"] == len(cold) and out["users"] == held[U].nunique()
    assert out["random_recall@20_among_cold"] == min(20, len(cold)) / len(cold)
    assert 0.0 <= out["recall@20_among_cold"] <= 1.0 and out["epochs"] >= 1
