"""A held-out interactions file to score lists against: ``gatlens audit --truth FILE``.

The file holds what users went on to consume, one row per (user, item): ``user_id, item_id``
and optionally ``rating`` (rows rated below the dataset's positive threshold are not relevant,
the same rule as the split's). CSV or Parquet; the same checks and messages as a lists file
(:mod:`engine.recs.reading`). Users the dataset knows but the split has no history for cannot
be ranked by a model, so their rows are left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from engine.data.idmap import IdMap
from engine.data.problems import Problems
from engine.data.schema import ITEM, RATING, USER
from engine.recs.reading import file_digest, numbers, parse_known_ids, read_cells

EXPECTED = "columns user_id,item_id[,rating], one row per held-out interaction"


@dataclass
class Truth:
    """Held-out interactions as a relevance matrix.

    Attributes:
        matrix: ``[n_users, n_items]`` binary, indexed by internal indices.
        name: the file's name.
        sha256: the file's sha256.
        rows: data rows in the file.
        relevant_rows: rows that count as relevant (known user with history, rating at threshold or above).
        users_without_history: users in the file the split has no training history for.
    """

    matrix: sp.csr_matrix
    name: str
    sha256: str
    rows: int
    relevant_rows: int
    users_without_history: int

    def summary(self) -> dict[str, object]:
        """The audit settings' description of the file."""
        return {
            "file": self.name,
            "sha256": self.sha256,
            "rows": self.rows,
            "relevant_rows": self.relevant_rows,
            "users": int((np.diff(self.matrix.indptr) > 0).sum()),
            "users_without_history": self.users_without_history,
        }


def read_truth(
    path: str | Path,
    *,
    idmap: IdMap,
    known_users: pd.Index,
    threshold: float | None = None,
    columns: dict[str, str] | None = None,
    encoding: str = "utf-8",
) -> Truth:
    """Read and validate a held-out interactions file.

    Args:
        path: CSV or Parquet file.
        idmap: the split's id map.
        known_users: every user id the dataset knows.
        threshold: ratings below it are not relevant (default: None, every row is).
        columns: file column -> canonical name (default: None).
        encoding: the CSV file's encoding (default: ``"utf-8"``).

    Raises:
        DataValidationError: naming file, line or row, column, value and expectation of each problem.
    """
    path = Path(path)
    problems = Problems()
    cells = read_cells(
        path, problems, columns=columns, encoding=encoding, required=(USER, ITEM), optional=(RATING,), expected=EXPECTED
    )
    if cells is None:
        problems.raise_if_any()
        raise AssertionError("read_cells returned nothing without a problem")  # pragma: no cover
    user_pos = parse_known_ids(cells, USER, known_users, problems, "a user_id of this dataset")
    items = parse_known_ids(cells, ITEM, pd.Index(idmap.items), problems, "an item_id of this dataset's catalog")
    keep = np.ones(len(cells.frame), dtype=bool)
    if RATING in cells.frame.columns:
        ratings = numbers(cells, RATING)
        cells.report(~np.isfinite(ratings), RATING, "a finite number (or leave the rating column out)", problems)
        if threshold is not None:
            keep &= ratings >= threshold
    problems.raise_if_any()
    users = pd.Index(idmap.users).get_indexer(known_users)[user_pos]
    without_history = int(pd.unique(user_pos[users < 0]).size)
    keep &= users >= 0
    n = int(keep.sum())
    matrix = sp.csr_matrix((np.ones(n), (users[keep], items[keep])), shape=(idmap.n_users, idmap.n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    sha, _ = file_digest(path)
    return Truth(matrix, path.name, sha, len(cells.frame), n, without_history)
