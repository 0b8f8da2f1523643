"""Full-jitter exponential backoff between attempts of a call AWS may throttle."""

from __future__ import annotations

import random
import time


def backoff(attempt: int, *, base: float = 0.05, cap: float = 1.0) -> None:
    """Sleep `uniform(0, min(cap, base * 2**attempt))` (attempt counts from 0), so callers
    retrying at once spread out instead of colliding again."""
    time.sleep(random.uniform(0, min(cap, base * 2**attempt)))
