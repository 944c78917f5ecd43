"""DistributedDataParallel: 2 gloo processes on CPU match 1 process.

With full-graph steps (``fanout=None``) the two ranks draw the same permutation and negatives
and each takes half of every batch; DDP's gradient average then equals the one-process
gradient of the whole batch, so only float summation order differs. Stated tolerance:
validation NDCG@10 within 1e-3 absolute (measured here: identical to 1e-12).
"""

from __future__ import annotations

import pytest

from engine.commands.ddp import parse_fanout, run_training, spawn
from engine.config import RunConfig

TOLERANCE = 1e-3


def test_parse_fanout() -> None:
    assert parse_fanout("15,10") == (15, 10)
    assert parse_fanout("full") is None
    assert parse_fanout("-1,5") == (-1, 5)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_fanout("15;10")
    with pytest.raises(ValueError, match="positive or -1"):
        parse_fanout("15,0")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path) -> None:
    # scale 0.1 is the tests' tiny world: 150 users, 200 items.
    cfg = RunConfig().with_overrides(
        model={"name": "uigat"}, data={"scale": 0.1}, features={"text": False}, train={"epochs": 3}
    )
    one = run_training(cfg, fanout=None, cache_dir=tmp_path, save=False, distributed=False)
    two = spawn(cfg, 2, fanout=None, cache_dir=tmp_path, save=True, backend="gloo")
    assert one is not None
    assert (one["world_size"], two["world_size"], two["backend"]) == (1, 2, "gloo")
    assert two["best_valid"] == pytest.approx(one["best_valid"], abs=TOLERANCE)
    for a, b in zip(one["curve"], two["curve"], strict=True):
        assert b["valid_ndcg@10"] == pytest.approx(a["valid_ndcg@10"], abs=TOLERANCE)
        assert b["loss"] == pytest.approx(a["loss"], abs=TOLERANCE)
    assert two["test"]["ndcg@10"] == pytest.approx(one["test"]["ndcg@10"], abs=TOLERANCE)
    # Rank 0 saved the artifact where `gatlens train` looks for it.
    assert two["artifact"] is not None and (tmp_path / "models" / "demo").is_dir()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_for_the_default_gat(tmp_path) -> None:
    # Its taste stage runs data-parallel on both ranks, the closed-form stages once on rank 0.
    cfg = RunConfig().with_overrides(data={"scale": 0.1}, features={"text": False}, train={"epochs": 3})
    assert cfg.model.name == "gat"
    one = run_training(cfg, fanout=None, cache_dir=tmp_path, save=False, distributed=False)
    two = spawn(cfg, 2, fanout=None, cache_dir=tmp_path, save=True, backend="gloo")
    assert one is not None and (two["world_size"], two["backend"]) == (2, "gloo")
    # The taste stage's curve (loss and validation), then the whole recipe's validation and test.
    assert len(two["curve"]) == len(one["curve"]) == 3
    for a, b in zip(one["curve"], two["curve"], strict=True):
        assert b["valid_ndcg@10"] == pytest.approx(a["valid_ndcg@10"], abs=TOLERANCE)
        assert b["loss"] == pytest.approx(a["loss"], abs=TOLERANCE)
    assert two["best_valid"] == pytest.approx(one["best_valid"], abs=TOLERANCE)
    assert two["test"]["ndcg@10"] == pytest.approx(one["test"]["ndcg@10"], abs=TOLERANCE)
    # best_valid is the mixed model's, above what the taste stage alone validated at.
    assert one["best_valid"] > max(c["valid_ndcg@10"] for c in one["curve"])
    assert two["artifact"] is not None and (tmp_path / "models" / "demo").is_dir()


def test_models_without_mini_batches_are_refused_with_the_ones_that_can(tmp_path) -> None:
    from engine.commands.ddp import build_parser

    cfg = RunConfig().with_overrides(model={"name": "lightgcn"}, data={"scale": 0.1}, features={"text": False})
    with pytest.raises(ValueError, match=r"'lightgcn' does not.*gat, uigat, gcn, sage"):
        run_training(cfg, fanout=None, cache_dir=tmp_path, save=False)
    assert not any(tmp_path.iterdir())  # refused before any data was prepared
    assert build_parser().parse_args([]).model == "gat"  # the default model trains data-parallel too


def test_train_refuses_minibatch_mode_for_a_model_without_a_subgraph_encoder(tmp_path) -> None:
    from engine.pipeline import train_or_load

    cfg = RunConfig().with_overrides(
        model={"name": "lightgcn"}, data={"scale": 0.1}, features={"text": False}, train={"mode": "minibatch"}
    )
    with pytest.raises(ValueError, match=r"'lightgcn' does not train on sampled mini-batches.*gat, uigat"):
        train_or_load(cfg, cache_dir=tmp_path)
