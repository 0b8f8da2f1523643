"""Who may receive something: the value a read rule produces.

A binding's read rule (`Binding.audience`) turns an item into an `Audience`; every
decision per recipient (live notifications, pages delivered later from the fan-out
queue, state frames about the item) asks that one value, and it is small enough to
travel in a queue message with the frame it guards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Audience:
    """Everyone, every signed-in user, or the named users (nobody when none are named)."""

    everyone: bool = False
    signed_in: bool = False
    users: frozenset[str] = frozenset()

    @classmethod
    def public(cls) -> Audience:
        return cls(everyone=True)

    @classmethod
    def members(cls) -> Audience:
        """Every signed-in user, never an anonymous connection."""
        return cls(signed_in=True)

    @classmethod
    def only(cls, users: Iterable[str]) -> Audience:
        return cls(users=frozenset(users))

    @classmethod
    def nobody(cls) -> Audience:
        return cls()

    def allows(self, user_id: str | None) -> bool:
        if self.everyone:
            return True
        if user_id is None:
            return False
        return self.signed_in or user_id in self.users

    def to_dict(self) -> dict[str, Any]:
        return {"everyone": self.everyone, "signed_in": self.signed_in, "users": sorted(self.users)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Audience:
        users = data.get("users", [])
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ValueError("audience users must be a list of strings")
        return cls(bool(data.get("everyone")), bool(data.get("signed_in")), frozenset(users))


def allows(audience: Audience | None, user_id: str | None) -> bool:
    """`audience.allows(user_id)`, with None (the item does not exist) allowing nobody."""
    return audience is not None and audience.allows(user_id)


def to_dict(audience: Audience | None) -> dict[str, Any] | None:
    return audience.to_dict() if audience is not None else None


def from_dict(data: Mapping[str, Any] | None) -> Audience | None:
    return Audience.from_dict(data) if data else None
