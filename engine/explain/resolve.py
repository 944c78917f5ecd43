"""Checks every explanation and what-if starts with: the model can be explained, the user has a history."""

from __future__ import annotations

from engine.errors import NO_HISTORY, UnknownUserError
from engine.recommender import Recommender


def require_attention_model(rec: Recommender) -> None:
    """Raise a clear ValueError unless the recommender holds the graph attention model."""
    model = rec.model
    if rec.model_name != "gat" or getattr(model, "encoder", None) != "gat":
        raise ValueError(
            f"explanations need the attention model 'gat' (got {rec.model_name!r}); train or load it with --model gat"
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
