"""`SharedPatch`: a process-wide patch that several local stacks in one process share.

moto's state and botocore's defaults are process-wide, and tests may run stacks side by
side: the first user applies the patch, the last one to leave restores what it replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Saved = TypeVar("Saved")


class SharedPatch(Generic[Saved]):
    """`apply(*args)` patches and returns what `restore(saved)` needs to undo it."""

    def __init__(self, apply: Callable[..., Saved], restore: Callable[[Saved], None]) -> None:
        self._apply = apply
        self._restore = restore
        self._lock = threading.Lock()
        self._users = 0
        self._saved: Saved | None = None

    def acquire(self, *args: Any) -> Saved | None:
        """Apply on the first use (with this caller's `args`); return what was saved."""
        with self._lock:
            self._users += 1
            if self._users == 1:
                self._saved = self._apply(*args)
            return self._saved

    def release(self) -> None:
        """Restore when the last user leaves; extra calls do nothing."""
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                saved, self._saved = self._saved, None
                self._restore(saved)  # type: ignore[arg-type]
