"""The case lock: an OS advisory lock on ``<case>/.lock`` held for a whole read-modify-write.

Writers take it exclusively, readers (verification, the report's gathering) shared, so a reader
never sees a half-done operation and two writers never interleave. The lock is advisory (a
program that ignores it can still write; ``case verify`` catches what it changes) and is released
by the operating system when its holder dies, so a killed process never leaves a case locked.

Within one process the lock is re-entrant per thread (a write that verifies first does not wait
for itself) and threads of one process queue on a process-wide mutex before the file lock, since
``flock`` does not order the threads of one process.

The lock file holds, for messages only, who holds it (process id, host, command, since when).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from forensic_face.core.errors import CaseError, CaseLockedError
from forensic_face.core.progress import Progress

LOCK_FILE = ".lock"
#: How long a writer waits for another process to finish before giving up with CaseLockedError.
DEFAULT_WAIT_S = 120.0
_POLL_S = 0.05

if os.name == "nt":  # pragma: no cover - the product's tests run on Linux
    import msvcrt

    def _try_lock(fd: int, exclusive: bool) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # Windows has no shared lock: readers queue too
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int, exclusive: bool) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class _Held:
    """What this process holds on one case: the owning thread, the mode, the nesting depth."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()  # threads of this process queue here before the file lock
        self.owner: int | None = None
        self.exclusive = False
        self.depth = 0


_registry: dict[str, _Held] = {}
_registry_lock = threading.Lock()


def _held(root: Path) -> _Held:
    key = os.path.realpath(root)
    with _registry_lock:
        return _registry.setdefault(key, _Held())


def holder(root: Path) -> str:
    """Who holds (or last held) the lock of a case, in words; empty when unknown."""
    try:
        info = json.loads((root / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return ""
    if not isinstance(info, dict) or "pid" not in info:
        return ""
    return (f"process {info.get('pid')} on {info.get('host', '?')}, {info.get('command', '?')}, "
            f"since {str(info.get('since', '?'))[11:19]} UTC")


def _command() -> str:
    args = [Path(sys.argv[0]).name] + sys.argv[1:3] if sys.argv and sys.argv[0] else ["python"]
    return " ".join(a for a in args if a)[:120]


def _open(root: Path, exclusive: bool) -> int | None:
    """The lock file's descriptor; None for a reader of a case it cannot create the lock file in."""
    path = root / LOCK_FILE
    if path.is_symlink():
        raise CaseError(f"{path}: is a symbolic link; a case folder must hold real files only")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except PermissionError:
        if not exclusive:
            try:
                return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                return None  # a read-only copy nobody can write to: nothing to wait for
        raise CaseError(f"{root}: the case folder is read-only for this user (cannot create {LOCK_FILE}); "
                        "nothing was changed. Copy the case to a writable folder or ask for write access") from None
    except OSError as exc:
        if not exclusive:
            return None
        raise CaseError(f"{root}: cannot lock the case for writing ({exc.strerror}); nothing was changed") from None


def _wait(fd: int, root: Path, exclusive: bool, wait_s: float, progress: Progress | None) -> None:
    t0 = time.monotonic()
    while not _try_lock(fd, exclusive):
        waited = time.monotonic() - t0
        who = holder(root) or "another process"
        if waited >= wait_s:
            raise CaseLockedError(f"case {root} is being changed by another process ({who}) and it did not finish "
                                  f"within {wait_s:.0f} s; nothing was changed. Try again when it has finished")
        if progress is not None:
            progress.update(0, 1, f"waiting for {who} to finish with the case")
        time.sleep(_POLL_S)


@contextmanager
def case_lock(root: str | Path, *, exclusive: bool, wait_s: float = DEFAULT_WAIT_S,
              progress: Progress | None = None) -> Iterator[None]:
    """Hold the case's lock (exclusive for writers, shared for readers) for the ``with`` block.

    Raises :class:`CaseLockedError` after ``wait_s`` seconds of another process holding it, and
    :class:`CaseError` when a writer cannot create the lock file (a read-only case)."""
    root = Path(root)
    held = _held(root)
    me = threading.get_ident()
    if held.owner == me:  # nested in this thread
        if exclusive and not held.exclusive:
            raise RuntimeError("a shared case lock cannot be upgraded to an exclusive one in the same thread")
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
        return
    t0 = time.monotonic()
    while not held.mutex.acquire(timeout=_POLL_S):
        if progress is not None:
            progress.check()
        if time.monotonic() - t0 > wait_s:
            raise CaseLockedError(f"case {root} is busy with another task of this program; nothing was changed. "
                                  "Try again when it has finished")
    fd = None
    try:
        fd = _open(root, exclusive)
        if fd is not None:
            _wait(fd, root, exclusive, max(0.0, wait_s - (time.monotonic() - t0)), progress)
            if exclusive:
                _write_holder(fd)
        held.owner, held.exclusive, held.depth = me, exclusive, 1
        yield
    finally:
        held.owner, held.exclusive, held.depth = None, False, 0
        if fd is not None:
            try:
                _unlock(fd)
            finally:
                os.close(fd)
        held.mutex.release()


def _write_holder(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
            "since": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except (OSError, AttributeError):
        pass  # the holder note is for messages only
