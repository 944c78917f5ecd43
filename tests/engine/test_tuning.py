"""``gatlens tune``: the study keeps its best trial, resumes, writes a reusable file, prunes through the loop.

Everything runs on the tests' tiny demo world (scale 0.1: 150 users, 200 items) without the
text encoder; the closed-form EASE fits in well under a second, so a 3-trial study is cheap.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from engine.assembly import prepare, train_model
from engine.cli import build_parser
from engine.commands.benchmark import tuned_overrides
from engine.commands.common import config_from_args
from engine.config import DataConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig
from engine.evaluation.benchmark import run_benchmark
from engine.evaluation.ranking import evaluate
from engine.models.registry import model_spec
from engine.tuning import study as study_module
from engine.tuning.best import load_tuned, write_best
from engine.tuning.pruning import PruningCallback
from engine.tuning.study import objective_for, storage_url, study_name, tune

DATA = ["--dataset", "demo", "--scale", "0.1"]


def tiny(model: str, **train: Any) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="demo", scale=0.1),
        features=FeatureConfig(text=False),
        model=ModelConfig(name=model),
        train=TrainConfig(**train),
    )


@pytest.fixture(scope="module")
def ease_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A 3-trial EASE study, with what its objective evaluated and the progress it wrote."""
    root = tmp_path_factory.mktemp("tune")
    parts: list[str] = []
    real = study_module.evaluate

    def recording(model: Any, split: Any, part: str = "test", **kw: Any) -> Any:
        parts.append(part)
        return real(model, split, part, **kw)

    stream = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study_module, "evaluate", recording)
        result = tune(tiny("ease"), 3, study_dir=root / "tuning", cache_dir=root / "cache", progress=stream)
    yield {"root": root, "result": result, "parts": parts, "progress": stream.getvalue()}


def stored_trials(result: Any) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=result.study_name, storage=storage_url(result.storage)).trials


def test_closed_form_study_returns_the_best_trial_it_ran(ease_study: dict[str, Any]) -> None:
    result = ease_study["result"]
    trials = stored_trials(result)
    values = [t.value for t in trials]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 and result.ran == 3
    assert result.best_value == max(values) and result.best_trial == values.index(max(values)) + 1
    # Trial 1 is the defaults, so the tuned value is never below them.
    assert trials[0].params == {"model.ease_l2": 500.0} and result.default_value == values[0]
    assert len({t.params["model.ease_l2"] for t in trials}) == 3
    assert result.config.model.ease_l2 == trials[result.best_trial - 1].params["model.ease_l2"]
    # The objective is validation NDCG@10: the test part is never evaluated.
    assert ease_study["parts"] == ["valid"] * 3
    assert result.study_name.startswith("demo-ease-data") and result.storage.name == "demo-ease.db"


def test_progress_says_trial_n_of_budget_value_and_best(ease_study: dict[str, Any]) -> None:
    lines = ease_study["progress"].splitlines()
    values = [t.value for t in stored_trials(ease_study["result"])]
    assert len(lines) == 3
    for n, (line, value) in enumerate(zip(lines, values, strict=True), start=1):
        best = max(values[:n])
        assert line.startswith(f"tune ease on demo: trial {n} of 3: valid NDCG@10 {value:.4f} in 0:0")
        assert f"; best {best:.4f} (trial {values.index(best) + 1})" in line
    assert lines[0].endswith("ease_l2=500")


def test_best_json_round_trips_into_a_config_that_trains_the_same_model(ease_study: dict[str, Any]) -> None:
    result = ease_study["result"]
    doc = json.loads(result.best_file.read_text())
    assert result.best_file.name == "demo-ease.best.json"
    assert doc["best_value"] == result.best_value and doc["objective"] == "valid ndcg@10"
    assert doc["overrides"] == {"features": {"text": False}, "model": {"ease_l2": result.config.model.ease_l2}}
    assert doc["reuse"]["train"] == f"gatlens train --dataset demo --scale 0.1 --model ease --config {result.best_file}"

    args = build_parser().parse_args(["train", *DATA, "--model", "ease", "--config", str(result.best_file)])
    config = config_from_args(args)
    assert config == result.config
    prep = prepare(config, cache_dir=ease_study["root"] / "cache")
    model, _ = train_model(prep)
    assert evaluate(model, prep.split, "valid", ks=(10,)).overall["ndcg@10"] == pytest.approx(
        result.best_value, abs=1e-12
    )


def test_resuming_runs_only_the_missing_trials(ease_study: dict[str, Any]) -> None:
    root, first = ease_study["root"], ease_study["result"]
    before = [t.value for t in stored_trials(first)]
    more = tune(tiny("ease"), 5, study_dir=root / "tuning", cache_dir=root / "cache")
    trials = stored_trials(more)
    assert more.study_name == first.study_name and more.ran == 2 and more.complete == 5
    assert [t.value for t in trials[:3]] == before
    # A resumed sampler is seeded by the stored history: no trial repeats a start-up point.
    assert len({t.params["model.ease_l2"] for t in trials}) == 5
    assert more.best_value == max(t.value for t in trials) >= first.best_value
    again = tune(tiny("ease"), 5, study_dir=root / "tuning", cache_dir=root / "cache")
    assert again.ran == 0 and again.best_value == more.best_value


def test_changed_data_or_budget_is_a_different_study() -> None:
    config = tiny("ease")
    name = study_name(config, "demo", "a" * 64)
    assert name.startswith("demo-ease-dataaaaaaaaaaa-cfg")
    assert study_name(config, "demo", "b" * 64) != name
    assert study_name(config.with_overrides(train={"epochs": 7}), "demo", "a" * 64) != name
    assert study_name(config.with_overrides(train={"device": "cpu"}), "demo", "a" * 64) == name
    # A ModelConfig field EASE does not read (a knob of other models) is not part of its study.
    assert study_name(config.with_overrides(model={"num_layers": 3}), "demo", "a" * 64) == name
    assert study_name(config.with_overrides(model={"ease_l2": 9.0}), "demo", "a" * 64) != name


def test_a_model_without_a_search_space_runs_one_trial(tmp_path: Path) -> None:
    result = tune(tiny("pop"), 4, study_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert (result.complete, result.ran) == (1, 1) and result.default_value == result.best_value
    assert load_tuned(result.best_file).overrides == {"features": {"text": False}}


class FakeTrial:
    """Records reports; says "prune" from ``prune_from`` on."""

    def __init__(self, prune_from: int) -> None:
        self.prune_from = prune_from
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return bool(self.reports) and self.reports[-1][1] >= self.prune_from


def test_pruning_callback_reports_evaluated_epochs_and_raises_when_told() -> None:
    trial = FakeTrial(prune_from=3)
    cb = PruningCallback(trial)
    cb.on_epoch_end(1, {"loss": 0.6, "valid_ndcg@10": 0.11, "best_valid": 0.11})
    cb.on_epoch_end(2, {"loss": 0.5})  # eval_every > 1: nothing to report
    assert trial.reports == [(0.11, 1)]
    with pytest.raises(optuna.TrialPruned, match=r"pruned at epoch 3: valid NDCG@10 0\.0900 \(best 0\.1100\)"):
        cb.on_epoch_end(3, {"loss": 0.4, "valid_ndcg@10": 0.09, "best_valid": 0.11})
    assert trial.reports == [(0.11, 1), (0.09, 3)]


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_a_trained_models_trial_is_pruned_from_inside_the_training_loop(tmp_path: Path) -> None:
    config = tiny("lightgcn", epochs=5)
    prep = prepare(config, cache_dir=tmp_path)
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    study.optimize(objective_for(model_spec("lightgcn"), config, prep), n_trials=1)
    (trial,) = study.trials
    # Pruned at the first evaluated epoch: one report, epochs 2-5 never ran.
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]
    assert 0.0 < trial.intermediate_values[1] < 1.0


def test_config_file_is_checked_and_explicit_flags_win(tmp_path: Path) -> None:
    path = write_best(
        tmp_path / "demo-bprmf.best.json", model="bprmf", overrides={"train": {"lr": 0.001, "epochs": 40}}
    )
    args = build_parser().parse_args(["train", *DATA, "--model", "bprmf", "--config", str(path), "--epochs", "7"])
    config = config_from_args(args)
    assert (config.train.lr, config.train.epochs, config.train.weight_decay) == (0.001, 7, 1e-4)
    wrong = build_parser().parse_args(["train", *DATA, "--model", "ease", "--config", str(path)])
    with pytest.raises(ValueError, match="tuned for model 'bprmf', not 'ease': add --model bprmf"):
        config_from_args(wrong)
    bad = write_best(tmp_path / "bad.json", model="bprmf", overrides={"train": {"learning_rate": 0.1}})
    with pytest.raises(ValueError, match=r"train has no field\(s\) \['learning_rate'\]"):
        load_tuned(bad)
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        load_tuned(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("flag", "field", "off"),
    [("--sources", "relation_sources", "0 for all"), ("--lowpass", "lowpass_rank", "0 for off")],
)
def test_relation_flags_set_the_model(flag: str, field: str, off: str) -> None:
    """--sources K (the relation's form) and --lowpass R (its low-pass rank): -1 (chosen on validation) unless given."""
    parse = build_parser().parse_args
    assert getattr(config_from_args(parse(["train", *DATA])).model, field) == -1
    assert getattr(config_from_args(parse(["train", *DATA, flag, "32"])).model, field) == 32
    assert getattr(config_from_args(parse(["train", *DATA, flag, "0"])).model, field) == 0
    with pytest.raises(ValueError, match=rf"{flag} must be >= 0, {off} \(got -3\)"):
        config_from_args(parse(["train", *DATA, flag, "-3"]))


def test_threshold_flag_sets_the_positives(capsys: pytest.CaptureFixture[str]) -> None:
    parse = build_parser().parse_args
    assert config_from_args(parse(["benchmark", *DATA])).data.threshold == 3.0  # RecBole's protocol
    assert config_from_args(parse(["train", *DATA, "--threshold", "6"])).data.threshold == 6.0
    assert config_from_args(parse(["tune", *DATA, "--threshold", "None"])).data.threshold is None
    for bad in ("high", "nan"):
        with pytest.raises(SystemExit):
            parse(["train", *DATA, "--threshold", bad])
        assert (
            f"expected a {'finite ' if bad == 'nan' else ''}number or 'none' (got '{bad}')" in capsys.readouterr().err
        )


def test_benchmark_uses_the_tuned_folder_per_model(tmp_path: Path) -> None:
    write_best(tmp_path / "demo-ease.best.json", model="ease", overrides={"model": {"ease_l2": 42.0}})
    args = build_parser().parse_args(["benchmark", *DATA, "--models", "pop,ease", "--tuned", str(tmp_path)])
    base = config_from_args(args)
    tuned = tuned_overrides(args, ["pop", "ease"], base.data)
    assert tuned == {"ease": {"model": {"ease_l2": 42.0}}}
    rows = run_benchmark(
        base.with_overrides(features={"text": False}), ["ease"], [0], cache_dir=tmp_path, isolate=False, tuned=tuned
    )
    assert rows[0]["config"]["model"]["ease_l2"] == 42.0


def test_a_failed_run_is_reported_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main
    from engine.evaluation import benchmark as bench

    assert bench._failure_reason(-9, "") == "killed by signal 9 (the system's out-of-memory killer, most likely)"
    trace = "Traceback (most recent call last):\n  File x\nMemoryError: EASE's inverse over 50,000 active items\n"
    assert bench._failure_reason(1, trace) == "MemoryError: EASE's inverse over 50,000 active items"
    assert bench._failure_reason(2, "") == "exit status 2"

    def child(cfg: RunConfig, cache_dir: Path) -> dict[str, Any]:  # ease's child dies; pop runs here
        if cfg.model.name == "ease":
            return bench.failed_row(cfg, "killed by signal 9")
        return bench.run_one(cfg.with_overrides(features={"text": False}), cache_dir)

    monkeypatch.setattr(bench, "_run_isolated", child)
    out = tmp_path / "rows.json"
    args = ["benchmark", *DATA, "--models", "ease,pop", "--seeds", "1", "--cache-dir", str(tmp_path), "--out", str(out)]
    assert main(args) == 1
    printed = capsys.readouterr()
    assert "ease      seed 0: FAILED: killed by signal 9" in printed.err
    assert "[1/2] ease seed 0 ..." in printed.err and "[2/2] pop seed 0 ..." in printed.err  # each run announced
    assert "FAILED: ease seed 0: killed by signal 9" in printed.out
    assert any(line.startswith("pop ") for line in printed.out.splitlines())  # the table keeps pop's row
    rows = json.loads(out.read_text())
    assert [(r["model"], "failed" in r) for r in rows] == [("ease", True), ("pop", False)]
    assert rows[1]["test"]["ndcg@10"] > 0


def test_a_data_error_stops_the_benchmark_once_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main
    from engine.evaluation import benchmark as bench

    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "interactions.csv").write_text("user_id,item_id,rating\nu1,i1,five\n")
    (folder / "items.csv").write_text("item_id,title\ni1,One\n")
    started: list[str] = []
    monkeypatch.setattr(bench, "_run_isolated", lambda cfg, cache_dir: started.append(cfg.model.name))
    args = ["benchmark", "--dataset", "csv", "--data-dir", str(folder), "--models", "pop,ease", "--seeds", "2"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.count("interactions.csv, line 2, column 'rating': got 'five', expected a number") == 1
    assert started == [] and "[1/" not in err  # no run started


def test_reuse_commands_repeat_every_data_option_that_shaped_the_study(tmp_path: Path) -> None:
    from engine.tuning.study import reuse_commands

    data = DataConfig(dataset="csv", data_dir="d", threshold=None, duplicates="drop", unknown_items="add", seed=2)
    cmds = reuse_commands(RunConfig(data=data, model=ModelConfig(name="ease")), tmp_path / "b.json")
    options = "--dataset csv --data-dir d --threshold none --duplicates drop --unknown-items add"
    assert cmds["train"] == f"gatlens train {options} --seed 2 --model ease --config {tmp_path / 'b.json'}"
    assert cmds["benchmark"].startswith(f"gatlens benchmark {options} --models ease")
    default = reuse_commands(RunConfig(data=DataConfig(threshold=6.0)), tmp_path / "b.json")["train"]
    assert "--threshold 6 " in default and "--duplicates" not in default


def test_bar_shows_the_running_trials_epoch_and_logs_get_none() -> None:
    from engine.tuning.progress import TrialProgress

    assert TrialProgress("tune x", 5, stream=io.StringIO(), bar=False).epochs() is None
    shown = TrialProgress("tune bprmf on demo", 5, done=2, stream=io.StringIO(), bar=True)
    hook = shown.epochs()
    assert hook is not None
    hook.on_epoch_end(7, {"loss": 0.3, "valid_ndcg@10": 0.2, "best_valid": 0.2345})
    assert shown.bar.postfix == "trial 3: epoch 7, valid NDCG@10 so far 0.2345"
    shown.close()


def test_cli_tunes_every_listed_model_with_the_same_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    study_dir = tmp_path / "tuning"
    common = [*DATA, "--no-text", "--cache-dir", str(tmp_path / "cache"), "--study-dir", str(study_dir)]
    assert main(["tune", *common, "--models", "pop,itemknn,ease", "--trials", "2"]) == 0
    out, err = capsys.readouterr()
    assert sorted(p.name for p in study_dir.glob("*.best.json")) == [
        "demo-ease.best.json",
        "demo-itemknn.best.json",
        "demo-pop.best.json",
    ]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[-3:]}
    assert [rows[m][1] for m in ("pop", "itemknn", "ease")] == ["1", "2", "2"]  # pop has nothing to search
    assert "tune itemknn on demo: trial 2 of 2: valid NDCG@10 " in err
    assert f"gatlens train --dataset demo --scale 0.1 --model ease --config {study_dir / 'demo-ease.best.json'}" in out
    assert main(["tune", *common, "--models", "ease,nope", "--trials", "2"]) == 2
    assert "--models: unknown model(s) ['nope']" in capsys.readouterr().err


def test_a_repeated_point_reuses_the_stored_value_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny("ease")
    prep = prepare(config, cache_dir=tmp_path)
    fits: list[float] = []
    real = study_module.evaluate_config

    def counting(cfg: RunConfig, *args: Any, **kw: Any) -> Any:
        fits.append(cfg.model.ease_l2)
        return real(cfg, *args, **kw)

    monkeypatch.setattr(study_module, "evaluate_config", counting)
    study = optuna.create_study(direction="maximize")
    for _ in range(2):
        study.enqueue_trial({"model.ease_l2": 100.0})
    study.optimize(objective_for(model_spec("ease"), config, prep), n_trials=2)
    first, second = study.trials
    assert fits == [100.0] and second.value == first.value
    assert second.user_attrs["duplicate_of"] == 1 and "duplicate_of" not in first.user_attrs


def _judge(curve: list[float], finished: list[list[float]], pruner: optuna.pruners.BasePruner | None = None) -> bool:
    """Whether ``pruner`` (default: the study's) cuts a running trial whose validation curve is ``curve``."""
    pruner = pruner or study_module.make_pruner("median", tiny("bprmf", patience=2, eval_every=1))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for values in finished:
        done = study.ask()
        for step, value in enumerate(values, start=1):
            done.report(value, step)
        study.tell(done, max(values))
    trial = study.ask()
    for step, value in enumerate(curve, start=1):
        trial.report(value, step)
    return trial.should_prune()


def test_the_pruner_waits_while_a_trial_improves_and_cuts_a_stalled_one_below_the_median() -> None:
    fast = [[0.10, 0.18, 0.20, 0.21, 0.21, 0.21, 0.21, 0.21]] * 5  # five fast learners, plateau at 0.21
    slow = [0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16]  # far below the median, still climbing
    stalled = [0.02, 0.04, 0.06, 0.09, 0.08, 0.07, 0.08, 0.08]  # below the median, best 4 reports ago
    assert not _judge(slow, fast)
    assert _judge(stalled, fast)
    # The plain median pruner (scheme 1) cut the slow learner too: the reason for the wrapper.
    assert _judge(slow, fast, optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))


def test_benchmark_can_hold_the_split_and_vary_only_the_initialisation(tmp_path: Path) -> None:
    args = build_parser().parse_args(["benchmark", *DATA, "--models", "bprmf", "--split-seed", "0"])
    assert args.split_seed == 0
    base = config_from_args(args).with_overrides(features={"text": False}, train={"epochs": 2})
    rows = run_benchmark(base, ["bprmf"], [0, 1], cache_dir=tmp_path, isolate=False, split_seed=args.split_seed)
    assert [(r["seed"], r["split_seed"]) for r in rows] == [(0, 0), (1, 0)]
    assert [r["config"]["train"]["seed"] for r in rows] == [0, 1]
    assert rows[0]["test"]["ndcg@10"] != rows[1]["test"]["ndcg@10"]  # another initialisation, the same split
    default = run_benchmark(base, ["bprmf"], [1], cache_dir=tmp_path, isolate=False)
    assert (default[0]["seed"], default[0]["split_seed"]) == (1, 1)  # by default a seed draws its own split
