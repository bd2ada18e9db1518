"""Long work off the GUI thread: one task at a time per runner, with progress, cancel and errors.

A task is a plain function ``fn(progress) -> result`` that runs on a pool thread; the runner
turns its :class:`~forensic_face.core.progress.Progress` updates into Qt signals (queued to the
GUI thread) and calls ``on_done(result)`` or ``on_error(title, message)`` on the GUI thread.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from forensic_face.core.errors import (
    CancelledError,
    CaseIntegrityError,
    EvidenceError,
    ForensicFaceError,
    NoFaceFoundError,
    describe_os_error,
)
from forensic_face.core.progress import CancelToken, Progress

log = logging.getLogger(__name__)


class _Signals(QObject):
    progress = Signal(int, int, str)
    done = Signal(object)
    failed = Signal(str, str)  # kind (see failure_kind, or cancelled | internal), message


def failure_kind(exc: ForensicFaceError) -> str:
    """What a failure means for the analyst: "no_face" (a box drawn by hand helps), "integrity" (the case's
    record or evidence is not as recorded: evidence the store refuses as altered or missing asks for a
    verification), or "error" (the step changed nothing)."""
    if isinstance(exc, NoFaceFoundError):
        return "no_face"
    if isinstance(exc, CaseIntegrityError) or (isinstance(exc, EvidenceError) and "case verify" in str(exc)):
        return "integrity"
    return "error"


class _Job(QRunnable):
    def __init__(self, fn: Callable[[Progress], Any], signals: _Signals, token: CancelToken) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.fn, self.signals, self.token = fn, signals, token

    def run(self) -> None:
        progress = Progress(lambda d, t, m: self.signals.progress.emit(int(d), int(t), str(m)), self.token)
        try:
            result = self.fn(progress)
        except CancelledError as exc:
            self.signals.failed.emit("cancelled", str(exc))
        except ForensicFaceError as exc:
            self.signals.failed.emit(failure_kind(exc), str(exc))
        except MemoryError:
            self.signals.failed.emit("error", "the computer ran out of memory; close other programs and retry")
        except OSError as exc:  # the file system refused (a full disk, a read-only folder): the user can act
            log.warning("task failed: %s", exc)
            self.signals.failed.emit("error", describe_os_error(exc))
        except Exception as exc:  # noqa: BLE001 - any failure must reach the user, not kill the thread
            log.error("task failed:\n%s", traceback.format_exc())
            self.signals.failed.emit("internal", f"{type(exc).__name__}: {exc}")
        else:
            self.signals.done.emit(result)


class TaskRunner(QObject):
    """Runs one task at a time on its own thread pool and reports on the GUI thread."""

    started = Signal(str, bool)  # label, cancellable
    progress = Signal(int, int, str)
    finished = Signal(str)  # label

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._token: CancelToken | None = None
        self._label = ""
        self._signals: _Signals | None = None
        self._retired: _Signals | None = None

    @property
    def busy(self) -> bool:
        return self._token is not None

    @property
    def label(self) -> str:
        return self._label

    def run(self, label: str, fn: Callable[[Progress], Any], on_done: Callable[[Any], None],
            on_error: Callable[[str, str], None] | None = None, cancellable: bool = True) -> bool:
        """Start ``fn`` unless a task is running (then return False and do nothing)."""
        if self.busy:
            return False
        token = CancelToken()
        signals = _Signals()
        self._token, self._label, self._signals = token, label, signals
        signals.progress.connect(self.progress)

        def finish() -> None:
            # keep the signal object alive until the next task: it is still delivering this call
            self._retired, self._signals, self._token = self._signals, None, None
            self.finished.emit(label)

        def done(result: Any) -> None:
            finish()
            on_done(result)

        def failed(kind: str, message: str) -> None:
            finish()
            if on_error is not None:
                on_error(kind, message)

        signals.done.connect(done)
        signals.failed.connect(failed)
        self.started.emit(label, cancellable)
        self.pool.start(_Job(fn, signals, token))
        return True

    @Slot()
    def cancel(self) -> None:
        if self._token is not None:
            self._token.cancel()

    def wait(self, msecs: int = -1) -> bool:
        return self.pool.waitForDone(msecs)
