"""Error classes and status constants that every layer of the engine may import.

This module imports nothing of the engine, so the data layer, the models, the explainers and
the service can all raise and catch the same errors without an import circle. The CLI turns
every :class:`GatlensError` (and :class:`DataValidationError`) into one ``error: ...`` line
and exit status 2.
"""

from __future__ import annotations

# A user's standing in a dataset, as reported by ``Recommender.user_status``.
KNOWN = "known"  # has training history: personalised lists and explanations
NO_HISTORY = "no_history"  # listed in the users table or the log, but nothing to learn from
UNKNOWN = "unknown"  # in no table of the dataset


class GatlensError(Exception):
    """Base of the errors a user can act on: the CLI prints the message, never a traceback."""


class DataValidationError(ValueError, GatlensError):
    """Input data a user can fix: the message names file, row, column, value, expectation.

    Attributes:
        problems: every problem found (the first one is the message), each a
            one-line string such as ``"ratings.csv, row 7, column 'rating': got 'five', expected a number"``.
    """

    def __init__(self, problems: list[str]) -> None:
        if not problems:
            raise ValueError("DataValidationError needs at least one problem")
        self.problems = list(problems)
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)


class UnknownUserError(KeyError, GatlensError):
    """A user id that is in neither the interactions nor the users table."""

    def __init__(self, user_id: str, example: str | None = None) -> None:
        hint = f" (ids look like {example!r})" if example else ""
        super().__init__(f"unknown user id {user_id!r}{hint}")
        self.user_id = user_id

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownItemError(KeyError, GatlensError):
    """An item id that is not in the catalog."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"unknown item id {item_id!r}")
        self.item_id = item_id

    def __str__(self) -> str:
        return str(self.args[0])


class UnsupportedModelError(ValueError, GatlensError):
    """A feature asked of a model that does not offer it (e.g. an explanation method it does not support)."""


class StaleArtifactError(ValueError, GatlensError):
    """A stored version's fingerprint is not the one its configuration gives today: the data or the
    engine version changed since it was trained, so it is not the model that configuration describes."""
