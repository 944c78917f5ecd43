"""External string ids <-> contiguous internal indices, with a JSON round-trip."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class IdMap:
    """Bidirectional map for users and items.

    Internal indices are positions in ``users`` / ``items``; the lists are kept
    sorted-as-given so the map is deterministic for a given dataset.

    Attributes:
        users: external user ids, index = internal user index.
        items: external item ids, index = internal item index.
    """

    users: tuple[str, ...]
    items: tuple[str, ...]
    _user_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _item_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_user_index", {u: i for i, u in enumerate(self.users)})
        object.__setattr__(self, "_item_index", {u: i for i, u in enumerate(self.items)})
        if len(self._user_index) != len(self.users):
            raise ValueError("IdMap: duplicate user ids")
        if len(self._item_index) != len(self.items):
            raise ValueError("IdMap: duplicate item ids")

    @classmethod
    def build(cls, users: Iterable[str], items: Iterable[str]) -> IdMap:
        """Build from id iterables (duplicates dropped, first occurrence order kept)."""
        return cls(tuple(dict.fromkeys(map(str, users))), tuple(dict.fromkeys(map(str, items))))

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def has_user(self, user_id: str) -> bool:
        return str(user_id) in self._user_index

    def has_item(self, item_id: str) -> bool:
        return str(item_id) in self._item_index

    def user_index(self, user_id: str) -> int:
        """Internal index of an external user id; ``KeyError`` naming the id if unknown."""
        try:
            return self._user_index[str(user_id)]
        except KeyError:
            raise KeyError(f"unknown user id {user_id!r}") from None

    def item_index(self, item_id: str) -> int:
        """Internal index of an external item id; ``KeyError`` naming the id if unknown."""
        try:
            return self._item_index[str(item_id)]
        except KeyError:
            raise KeyError(f"unknown item id {item_id!r}") from None

    def user_indices(self, user_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self._user_index[str(u)] for u in user_ids), dtype=np.int64, count=len(user_ids))

    def item_indices(self, item_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self._item_index[str(i)] for i in item_ids), dtype=np.int64, count=len(item_ids))

    def extend(self, users: Iterable[str] = (), items: Iterable[str] = ()) -> IdMap:
        """A new map with unseen ids appended (existing indices unchanged)."""
        new_users = [u for u in dict.fromkeys(map(str, users)) if u not in self._user_index]
        new_items = [i for i in dict.fromkeys(map(str, items)) if i not in self._item_index]
        return IdMap(self.users + tuple(new_users), self.items + tuple(new_items))

    def to_json(self) -> str:
        return json.dumps({"users": list(self.users), "items": list(self.items)})

    @classmethod
    def from_json(cls, text: str) -> IdMap:
        obj = json.loads(text)
        return cls(tuple(obj["users"]), tuple(obj["items"]))
