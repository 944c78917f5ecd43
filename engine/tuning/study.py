"""One Optuna study per (dataset, model): seeded TPE over the model's registered search space.

Readable top to bottom: :func:`tune` prepares the data once, opens (or resumes) the study in
``<study-dir>/<dataset>-<model>.db``, queues the model's defaults as the first trial, runs the
missing trials and writes the best configuration (:mod:`engine.tuning.best`).

Choices, and why:

- **Objective: validation NDCG@10 with full ranking** (the early-stopping metric); the test
  part is never evaluated here, so tuned baselines stay comparable with published tables.
- **The study name holds the data's content hash and the fixed settings' hash**, so a changed
  dataset, split, seed or epoch budget starts a new study instead of silently resuming an old
  one (several studies can share one ``.db`` file).
- **Resuming** counts finished (complete or pruned) trials: ``--trials 20`` after 12 runs 8.
  The sampler's seed is ``seed + trials stored``, so a resumed study does not replay the
  random start-up points it already tried, and the same history gives the same next trials.
- **The defaults are trial 1** (when they lie in the space), so the tuned result is never
  below the untuned one on validation and the file records the gain.
- **Pruning fits early stopping:** :class:`optuna.pruners.MedianPruner` judges a trial only
  after ``patience * eval_every`` epochs and only against complete trials at the same epoch,
  and, wrapped in :class:`optuna.pruners.PatientPruner`, only once the trial has stopped
  improving for :data:`STALL_EVALS` evaluations. A trial that is still climbing is never cut:
  with the median alone every slow learning rate was cut at epoch 10 (ml-100k BPR-MF: 14 of
  20 trials, lr 1.3-1.5e-3 among them, at 0.14-0.16 while the best reached 0.215).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState

from engine.artifacts.fingerprint import fingerprint
from engine.assembly import DEFAULT_CACHE, Prepared, prepare, train_model
from engine.config import RunConfig
from engine.data.schema import Dataset
from engine.evaluation.ranking import evaluate
from engine.models.base import EmbeddingModel, FittedModel
from engine.models.registry import Choice, Distribution, FloatRange, IntRange, ModelSpec, model_spec
from engine.training.callbacks import Callback
from engine.training.result import TrainResult
from engine.tuning.best import best_path, dataset_label, file_stem, overrides_of, write_best
from engine.tuning.progress import FINISHED, TrialProgress, best_of
from engine.tuning.pruning import PruningCallback

log = logging.getLogger(__name__)

DEFAULT_STUDY_DIR = Path("data/tuning")
OBJECTIVE = "valid ndcg@10"
PRUNERS = ("median", "none")
# TPE's own default is 10 random start-up trials: half of a 20-trial budget. 5 leaves TPE
# most of it while still spreading the first points over the space.
STARTUP_TRIALS = 5
# Bump when what the study name hashes, or how its trials are judged, changes meaning.
# 2: the median pruner waits while a trial still improves (trials of scheme 1 were judged without it).
_SCHEME = "gatlens-study/2"
# Evaluations without a new best before a trial below the median may be pruned.
STALL_EVALS = 3


@dataclass(frozen=True)
class StudyResult:
    """What one study found.

    Attributes:
        model / dataset: what was tuned, on what.
        study_name / storage: the Optuna study and its SQLite file.
        best_file: the tuned-configuration JSON written at the end.
        best_value: the best trial's validation NDCG@10.
        best_trial: its number, counting from 1.
        default_value: validation NDCG@10 of the defaults (None when they were not a trial).
        config: the best trial's full configuration.
        complete / pruned / failed: trials of the study in each state.
        ran: trials this call ran.
    """

    model: str
    dataset: str
    study_name: str
    storage: Path
    best_file: Path
    best_value: float
    best_trial: int
    default_value: float | None
    config: RunConfig
    complete: int
    pruned: int
    failed: int
    ran: int


def study_name(config: RunConfig, dataset: str, data_hash: str) -> str:
    """``<dataset>-<model>-data<hash>-cfg<hash>``: a different dataset or fixed setting is a different study.

    Args:
        config: the study's fixed settings; the hash reads the data, features and training
            sections and the model's own knobs, and leaves out the device (where trials run
            does not change what they find).
        dataset: the dataset's name (``Dataset.name``: a csv folder's name, not ``"csv"``).
        data_hash: the dataset's content hash.
    """
    fixed = config.fingerprint_dict()
    # Only the model's own knobs: a field added to ModelConfig for another model (this happened
    # mid-study: ItemGAT's knobs) must not orphan every stored study.
    spec = model_spec(config.model.name)
    fixed["model"] = {k: v for k, v in fixed["model"].items() if k == "name" or k in spec.knobs}
    if spec.revision:
        fixed["model"]["revision"] = spec.revision
    cfg_hash = fingerprint(fixed, data_hash, _SCHEME)
    return f"{file_stem(dataset, config.model.name)}-data{data_hash[:10]}-cfg{cfg_hash[:8]}"


def storage_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file (absolute, so the working directory does not matter)."""
    return f"sqlite:///{Path(path).resolve()}"


def make_pruner(kind: str, config: RunConfig) -> optuna.pruners.BasePruner:
    """The pruner ``kind`` (:data:`PRUNERS`) for trials trained under ``config.train``.

    Raises:
        ValueError: for an unknown kind.
    """
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind != "median":
        raise ValueError(f"pruner must be one of {', '.join(PRUNERS)} (got {kind!r})")
    t = config.train
    # Judge no trial before it had the epochs early stopping would grant it without improvement.
    median = optuna.pruners.MedianPruner(
        n_startup_trials=STARTUP_TRIALS, n_warmup_steps=t.patience * t.eval_every, interval_steps=t.eval_every
    )
    # ... and none that is still improving: behind the median at epoch 10 is where a slow
    # learning rate is, not only a hopeless one. PatientPruner counts reports, one per evaluation.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.PatientPruner(median, patience=STALL_EVALS)


def make_sampler(seed: int) -> optuna.samplers.TPESampler:
    """Seeded multivariate TPE (learning rate and batch size interact; independent TPE misses that)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate is "experimental"
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS, multivariate=True)


def _inside(dist: Distribution, value: Any) -> bool:
    if isinstance(dist, Choice):
        return value in dist.values
    if isinstance(dist, IntRange):
        return isinstance(value, int) and dist.low <= value <= dist.high and (value - dist.low) % dist.step == 0
    if isinstance(dist, FloatRange):
        return isinstance(value, int | float) and dist.low <= value <= dist.high
    return False


def default_params(spec: ModelSpec, config: RunConfig) -> dict[str, Any] | None:
    """``config``'s values at the search-space keys, or None when one lies outside its range."""
    params = {}
    for key, dist in spec.search_space.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if not _inside(dist, value):
            return None
        params[key] = value
    return params


def params_to_overrides(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"train.lr": 0.001}`` -> ``{"train": {"lr": 0.001}}`` (what ``ModelSpec.suggest`` returns)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, name = key.split(".")
        out.setdefault(section, {})[name] = value
    return out


def validation_ndcg(model: EmbeddingModel | FittedModel, prep: Prepared) -> float:
    """The objective: validation NDCG@10 with full ranking (training items excluded)."""
    return float(evaluate(model, prep.split, "valid", ks=(10,)).overall["ndcg@10"])


def evaluate_config(
    config: RunConfig, prep: Prepared, *, callbacks: Sequence[Callback] = (), cache_dir: Path = DEFAULT_CACHE
) -> tuple[float, TrainResult]:
    """Train ``config`` on ``prep``'s data and return (validation NDCG@10, training result).

    ``prep`` is reused when ``config`` changes only the model and training sections (the
    split and features are then the same); otherwise the data is prepared again.
    """
    same_data = config.data == prep.config.data and config.features == prep.config.features
    trial_prep = (
        dataclasses.replace(prep, config=config)
        if same_data
        else prepare(config, dataset=prep.dataset, cache_dir=cache_dir)
    )
    model, result = train_model(trial_prep, callbacks=callbacks)
    return validation_ndcg(model, trial_prep), result


def objective_for(
    spec: ModelSpec,
    base: RunConfig,
    prep: Prepared,
    *,
    cache_dir: Path = DEFAULT_CACHE,
    callbacks: Sequence[Callback] = (),
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: suggest a point, train it (pruning trained models), return validation NDCG@10.

    Args:
        spec: the model's registry entry (its search space and whether it trains).
        base: the fixed settings each point overrides.
        prep: the prepared data, shared by the trials.
        cache_dir: the feature cache, for a point that changes the features (default: data/cache).
        callbacks: extra training callbacks, e.g. progress (default: none).
    """

    def objective(trial: optuna.Trial) -> float:
        config = base.with_overrides(**spec.suggest(trial))
        # TPE repeats integer points (knn_k=10 twice in 8 trials on ml-100k); training is seeded,
        # so a repeat would only re-measure the stored value.
        twin = _same_point(trial)
        if twin is not None:
            trial.set_user_attr("duplicate_of", twin.number + 1)
            trial.set_user_attr("epochs", twin.user_attrs.get("epochs"))
            return float(twin.value)
        hooks = (*callbacks, PruningCallback(trial)) if spec.capabilities.trained else ()
        t0 = time.perf_counter()
        value, result = evaluate_config(config, prep, callbacks=hooks, cache_dir=cache_dir)
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        return value

    return objective


def _same_point(trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    """A complete trial of the study at exactly ``trial``'s parameters, if any."""
    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return next((t for t in done if t.params == trial.params), None)


def reuse_commands(config: RunConfig, best_file: Path) -> dict[str, str]:
    """The ``gatlens train`` / ``gatlens benchmark`` command lines that reuse a tuned file.

    ``train`` names the seed the study ran with (its split), ``benchmark`` runs its own seeds.
    """
    d = config.data
    data = [("--dataset", d.dataset), ("--data-dir", d.data_dir), ("--split", None if d.split == "random" else d.split)]
    data += [("--scale", None if d.scale == 1.0 else f"{d.scale:g}"), ("--columns", d.columns), ("--name", d.name)]
    data.append(("--encoding", None if d.encoding == "utf-8" else d.encoding))
    threshold = None if d.threshold == 3.0 else "none" if d.threshold is None else f"{d.threshold:g}"
    data += [("--threshold", threshold), ("--duplicates", None if d.duplicates == "error" else d.duplicates)]
    data.append(("--unknown-items", None if d.unknown_items == "error" else d.unknown_items))
    flags = " ".join(f"{flag} {shlex.quote(str(value))}" for flag, value in data if value)
    seed = f" --seed {d.seed}" if d.seed else ""
    model, path = shlex.quote(config.model.name), shlex.quote(str(best_file))
    return {
        "train": f"gatlens train {flags}{seed} --model {model} --config {path}",
        "benchmark": f"gatlens benchmark {flags} --models {model} --config {path}",
    }


def open_study(name: str, storage: Path, *, seed: int, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create or resume the study ``name`` in the SQLite file ``storage``, seeded by its history."""
    storage.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=name, storage=storage_url(storage), direction="maximize", pruner=pruner, load_if_exists=True
    )
    # A resumed study must not replay its first random points: offset the seed by what is stored.
    study.sampler = make_sampler(seed + len(study.get_trials(deepcopy=False)))
    return study


def tune(
    config: RunConfig,
    n_trials: int,
    *,
    study_dir: Path = DEFAULT_STUDY_DIR,
    timeout: float | None = None,
    pruner: str = "median",
    seed: int | None = None,
    dataset: Dataset | None = None,
    cache_dir: Path = DEFAULT_CACHE,
    progress: bool | TextIO = False,
) -> StudyResult:
    """Tune ``config.model.name`` on ``config``'s data until the study holds ``n_trials`` finished trials.

    Args:
        config: the fixed settings (data, split, epoch budget); the model's search space
            overrides its fields trial by trial.
        n_trials: the study's trial budget; a resumed study runs only the missing trials.
        study_dir: folder of the ``.db`` studies and ``.best.json`` files (default: data/tuning).
        timeout: seconds after which no new trial starts (default: None, no limit).
        pruner: ``"median"`` or ``"none"`` (default: "median"; closed-form models never prune).
        seed: the sampler's seed (default: ``config.train.seed``).
        dataset: the loaded dataset, to skip loading it again (default: load it).
        cache_dir: the feature cache (default: data/cache).
        progress: a line per trial on stderr (True), on a given stream, or none (default: False).

    Returns:
        The :class:`StudyResult`; the best configuration is written to ``result.best_file``.

    Raises:
        ValueError: for ``n_trials < 1`` or an unknown pruner (a model without a search space
            runs one trial: its defaults).
        RuntimeError: when no trial completed (all pruned or failed).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1 (got {n_trials!r})")
    spec = model_spec(config.model.name)
    if not spec.search_space:
        # One configuration (pop): one trial evaluates it, so `--models pop,...` still lists it.
        n_trials = 1
    prep = prepare(config, dataset=dataset, cache_dir=cache_dir)
    label = dataset_label(config.data)  # what `benchmark --tuned DIR` looks for, known before loading
    name = study_name(config, label, prep.data_hash)
    stem = file_stem(label, spec.name)
    storage = Path(study_dir) / f"{stem}.db"
    sampler_seed = config.train.seed if seed is None else seed
    study = open_study(name, storage, seed=sampler_seed, pruner=make_pruner(pruner, config))
    stored = len(study.get_trials(deepcopy=False))
    if not stored:
        defaults = default_params(spec, config)
        if defaults is not None:
            study.enqueue_trial(defaults, user_attrs={"defaults": True})
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    missing = max(0, n_trials - done)
    log.info("study %s in %s: %d of %d trials stored, running %d", name, storage, done, n_trials, missing)
    shown = None
    if progress and missing:
        stream = None if progress is True else progress
        shown = TrialProgress(f"tune {spec.name} on {prep.dataset.name}", n_trials, done=done, stream=stream)
    epoch_hook = shown.epochs() if shown is not None else None
    objective = objective_for(spec, config, prep, cache_dir=cache_dir, callbacks=(epoch_hook,) if epoch_hook else ())
    try:
        if missing:
            study.optimize(objective, n_trials=missing, timeout=timeout, callbacks=[shown] if shown else [])
    finally:
        if shown is not None:
            shown.close()
    return _finish(
        study, spec, config, prep, storage, Path(study_dir), ran=len(study.get_trials(deepcopy=False)) - stored
    )


def _finish(
    study: optuna.Study,
    spec: ModelSpec,
    config: RunConfig,
    prep: Prepared,
    storage: Path,
    study_dir: Path,
    *,
    ran: int,
) -> StudyResult:
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    best = best_of(study)
    if best is None:
        raise RuntimeError(
            f"no trial of {spec.name} on {prep.dataset.name} completed ({count[TrialState.PRUNED]} pruned, "
            f"{count[TrialState.FAIL]} failed); run with -v to see why, or --pruner none"
        )
    best_config = config.with_overrides(**params_to_overrides(best.params))
    default = next((t for t in trials if t.user_attrs.get("defaults") and t.state == TrialState.COMPLETE), None)
    out = best_path(study_dir, dataset_label(config.data), spec.name)
    write_best(
        out,
        model=spec.name,
        overrides=overrides_of(best_config),
        dataset=prep.dataset.name,
        data_hash=prep.data_hash,
        study=study.study_name,
        storage=str(storage),
        objective=OBJECTIVE,
        best_value=best.value,
        best_trial=best.number + 1,
        default_value=None if default is None else default.value,
        trials={
            "complete": count[TrialState.COMPLETE],
            "pruned": count[TrialState.PRUNED],
            "failed": count[TrialState.FAIL],
        },
        params=best.params,
        config=best_config.to_dict(),
        reuse=reuse_commands(config, out),
    )
    return StudyResult(
        model=spec.name,
        dataset=prep.dataset.name,
        study_name=study.study_name,
        storage=storage,
        best_file=out,
        best_value=float(best.value),
        best_trial=best.number + 1,
        default_value=None if default is None else float(default.value),
        config=best_config,
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        ran=ran,
    )
