"""The local stack's state directory (`.dev/` by default, git-ignored): what survives a restart.

- `secret`: the development JWT secret, generated once (mode 0600) and reused, so tokens
  held outside the demo (another page, a script) stay valid across restarts;
- `tables.json`: the application's tables (`devtools.stack.persist`);
- `lock`: held while a stack runs, so two stacks never write the same files.

Only `python -m devtools.stack` (what `make dev` runs) uses one by default; a `Stack` in a
test keeps nothing unless given a directory.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from devtools.stack.errors import StackError

#: HS256 wants at least 32 bytes of key (RFC 7518 section 3.2); the functions refuse less.
MIN_SECRET_BYTES = 32


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` all at once: a crash leaves the old file or the new one,
    never half of either (a temporary file in the same directory, fsynced, then renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; elsewhere the directory's defaults apply
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class StateDir:
    """One state directory, locked for the life of one stack."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def secret_file(self) -> Path:
        return self.path / "secret"

    @property
    def tables_file(self) -> Path:
        return self.path / "tables.json"

    def display(self, path: Path | None = None) -> str:
        """`path` as a developer would type it: relative to the working directory when inside it."""
        target = path or self.path
        try:
            return str(target.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(target)

    def lock(self) -> None:
        """Create the directory and take its lock; refuse when another stack holds it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StackError(f"cannot create the state directory {self.display()}: {exc.strerror}") from exc
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock, as before
            return
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StackError(f"another local stack uses {self.display()} (its secret and tables): stop it, "
                             "or give this one its own DEV_STATE_DIR") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def secret(self) -> str:
        """The kept development secret, generated on first use."""
        path = self.secret_file
        if not path.exists():
            atomic_write(path, (secrets.token_urlsafe(48) + "\n").encode(), mode=0o600)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise StackError(f"cannot read {self.display(path)} ({exc}): delete it to generate a new secret") from exc
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise StackError(f"{self.display(path)} holds fewer than {MIN_SECRET_BYTES} bytes: "
                             "delete it to generate a new secret")
        return value
