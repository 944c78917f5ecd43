"""How many users an item has, in the dataset's own verb: "watched by 455", "chosen by 3".

A shop's products are chosen, not played; the verb is the engine's (``ServedModel.interaction_verb``:
"watched" on the movie datasets and the demo world, "chose" elsewhere), the same the reasons use.
"""

from __future__ import annotations

# The past participle of each verb the engine uses for an interaction.
_PARTICIPLES = {"watched": "watched", "chose": "chosen"}


def participle(verb: str) -> str:
    """``"chosen"`` for ``"chose"``; a verb this module does not know is used as it is."""
    return _PARTICIPLES.get(verb, verb)


def audience_words(n: int, verb: str = "watched") -> str:
    """``"watched by 455"`` / ``"chosen by 1"``.

    Args:
        n: the item's training interactions (one per user).
        verb: the dataset's interaction verb (default: ``"watched"``, the demo world's).
    """
    return f"{participle(verb)} by {n:,}"
