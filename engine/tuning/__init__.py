"""Hyper-parameter tuning: ``gatlens tune`` searches a model's registered space with Optuna.

Submodules, imported by name (this package face stays light so that the CLI can read a tuned
configuration without importing torch or Optuna):

- :mod:`engine.tuning.best`: the ``<dataset>-<model>.best.json`` file: its overrides, written
  by a study and read back by ``gatlens train/benchmark --config FILE``.
- :mod:`engine.tuning.pruning`: the training callback that reports validation NDCG@10 to a
  trial and stops hopeless ones.
- :mod:`engine.tuning.progress`: one line (or a bar on a terminal) per finished trial.
- :mod:`engine.tuning.study`: the study itself: seeded TPE, resumable SQLite storage, pruner.
"""
