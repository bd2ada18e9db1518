"""A Qt-free progress and cancel protocol for long work.

Engine functions take ``progress: Progress | None``. The CLI adapts it to a progress line on
stderr, the GUI to a signal; both set the cancel token from their own thread.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from forensic_face.core.errors import CancelledError

ProgressCallback = Callable[[int, int, str], None]  # (done, total, message)


class CancelToken:
    """Thread-safe flag that a long task polls; set by whoever asked for the work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("cancelled by the user; nothing was changed by the unfinished step")


class Progress:
    """Progress reporting plus cancellation, handed down to long-running engine code.

    ``update`` calls the callback only when the integer percentage or the message changes, so a
    tight loop can report every item without flooding a GUI event queue.
    """

    def __init__(self, callback: ProgressCallback | None = None, token: CancelToken | None = None) -> None:
        self._callback = callback
        self.token = token or CancelToken()
        self._last: tuple[int, str] | None = None

    def update(self, done: int, total: int, message: str = "") -> None:
        self.token.raise_if_cancelled()
        if self._callback is None:
            return
        pct = int(100 * done / total) if total > 0 else 0
        key = (pct, message)
        if key != self._last or done == total:
            self._last = key
            self._callback(done, total, message)

    def check(self) -> None:
        """Raise :class:`CancelledError` if cancellation was requested."""
        self.token.raise_if_cancelled()


def console_progress(stream: TextIO | None = None, label: str = "") -> Progress:
    """A :class:`Progress` that draws a one-line bar with rate and ETA on ``stream`` (stderr)."""
    out = stream or sys.stderr
    first: list[tuple[float, int]] = []  # (time, done) of the first report: a resumed task starts past 0

    def draw(done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if not first:
            first.append((now, done))
        t0, d0 = first[0]
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        width = 24
        filled = int(width * done / total) if total else 0
        bar = "#" * filled + "-" * (width - filled)
        text = f"\r{label}[{bar}] {done}/{total} {rate:5.1f}/s eta {eta:5.0f}s {message}"[:160]
        out.write(text.ljust(100))
        if done >= total:
            out.write("\n")
        out.flush()

    return Progress(draw)
