"""Checks every explanation and what-if starts with: the model can be explained, the user has a history."""

from __future__ import annotations

from engine.errors import NO_HISTORY, UnknownUserError, UnsupportedModelError
from engine.models.registry import ATTENTION_GRAPH, model_names, model_spec
from engine.recommender import Recommender


def require_attention_model(rec: Recommender) -> None:
    """Raise :class:`UnsupportedModelError` (a ValueError) unless the model offers the attention graph.

    What-if edits, counterfactuals and the faithfulness evaluation run on the attention model's
    computation subgraph; which models offer it is their registry capability.
    """
    name = rec.model_name
    if name not in model_names() or ATTENTION_GRAPH not in model_spec(name).capabilities.explain:
        raise UnsupportedModelError(
            f"this needs the user-item attention model 'uigat' (got {name!r}); train or load it with --model uigat"
        )


def resolve_user(rec: Recommender, user_id: str, *, purpose: str = "an explanation") -> int:
    """Internal index of a user with training history (UnknownUserError / ValueError otherwise)."""
    status = rec.user_status(str(user_id))
    if status == NO_HISTORY:
        raise ValueError(f"{purpose} needs a user with training history (got {user_id!r}, who has none)")
    if not rec.idmap.has_user(str(user_id)):
        example = rec.idmap.users[0] if rec.idmap.n_users else None
        raise UnknownUserError(str(user_id), example)
    return rec.idmap.user_index(str(user_id))
