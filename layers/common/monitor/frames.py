"""The monitor's state frames, bounded: however many people are present, no frame
exceeds API Gateway's 32 KB frame (the counts are always exact; the lists are cut)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from realtime.presence import Roster

#: Below API Gateway's 32 KB frame, with room for the envelope.
MAX_STATE_FRAME_BYTES = 31 * 1024
#: Titles longer than this are cut in state frames (notifications carry the whole field).
MAX_TITLE_CHARS = 512


def title_of(title: str | None) -> str:
    return (title or "")[:MAX_TITLE_CHARS]


def entry(slug: str, title: str | None, counts: Mapping[str, int], roster: Roster, limit: int) -> dict[str, Any]:
    """A document with who is there: at most `limit` users per phase, and how many in all."""
    return {"document": slug, "title": title_of(title),
            "phases": {phase: list(users[:limit]) for phase, users in roster.items()},
            "counts": dict(counts)}


def size(payload: Mapping[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def fit(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` (an entry) with its phase lists halved until it fits one frame."""
    while size(payload) > MAX_STATE_FRAME_BYTES and any(payload["phases"].values()):
        payload = {**payload, "phases": {p: users[: len(users) // 2] for p, users in payload["phases"].items()}}
    return payload
