"""Arrays filled chunk by chunk, in memory or on disk, so that long preparation resumes where it stopped.

Preparing a large training folder takes hours (dlib's detector and recogniser cost about 0.12 s per
image on one core: some 8 hours on 2 cores for CASIA-WebFace's 494,000 images) and its arrays
outgrow memory (8 degraded variants and their targets at 64 px are about 70 kB per image: 34 GB for
CASIA-WebFace). :class:`ChunkedArrays` keeps such arrays as ``.npy`` files opened as memory maps in
one folder, with a ``done`` mask per chunk of rows. Finished chunks are flushed to disk and marked
done every :data:`CHECKPOINT_S` seconds and whenever the work stops (finished, cancelled or failed),
so a rerun computes only the chunks not yet done. The chunk computations are seeded by their rows,
so a resumed preparation writes exactly what an uninterrupted one would.

Layout of a folder: ``meta.json`` (names, shapes, dtypes, number of chunks, ``complete``), one
``NAME.npy`` per array, ``done.npy`` (bool per chunk). ``meta.json`` and ``done.npy`` are replaced
atomically; the arrays are written in place, and a chunk counts as prepared only once ``done.npy`` says
so. Two processes preparing the same folder take turns (:func:`exclusive`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from forensic_face.core.errors import ForensicFaceError
from forensic_face.core.progress import Progress

log = logging.getLogger(__name__)

#: Seconds between checkpoints of a preparation on disk.
CHECKPOINT_S = 60.0
#: Disk space left free beyond what the arrays need.
DISK_MARGIN = 1 << 30

Spec = dict[str, tuple[tuple[int, ...], str, object]]  # name -> (shape, dtype, fill value)


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (on a ``.lock`` file beside it) while it is prepared: a second
    process preparing the same folder (two trainings of one data set started together) waits, then finds
    the work done, instead of both writing it. An advisory lock (``fcntl.flock``); where there is no
    ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s is being prepared by another process; waiting for it", folder)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def gather(array: np.ndarray, idx: np.ndarray, sub: np.ndarray | None = None) -> np.ndarray:
    """``array[idx]``, or ``array[idx, sub]`` (one item of the second axis per row).

    From an array memory-mapped from a file, the kernel is first asked for all the items' pages at once
    (``posix_fadvise(WILLNEED)``): from a file that is not in the page cache (one larger than memory), a
    batch then costs one round of parallel reads instead of one disk wait per item (96 items of 4 kB
    from a cold 6.6 GB file on this machine's disk: 1.9 ms against 50.7 ms)."""
    idx = np.asarray(idx)
    if isinstance(array, np.memmap) and array.filename and hasattr(os, "posix_fadvise") and idx.size:
        start = array.offset + idx.astype(np.int64) * array.strides[0]
        length = array.strides[0]
        if sub is not None:
            start += np.asarray(sub, np.int64) * array.strides[1]
            length = array.strides[1]
        fd = os.open(array.filename, os.O_RDONLY)
        try:
            for s in start.tolist():
                os.posix_fadvise(fd, s, length, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)
    return array[idx] if sub is None else array[idx, sub]


def nbytes(specs: Spec) -> int:
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype, _ in specs.values())


class ChunkedArrays:
    """Named arrays whose rows are filled by chunks (``folder`` None: plain arrays in memory)."""

    def __init__(self, arrays: dict[str, np.ndarray], done: np.ndarray, folder: Path | None) -> None:
        self.arrays, self.done, self.folder = arrays, done, folder
        self._last = time.monotonic()
        self._dirty = False  # chunks put since the last checkpoint

    # ------------------------------------------------------------------------------------- opening
    @classmethod
    def in_memory(cls, specs: Spec, n_chunks: int) -> ChunkedArrays:
        arrays = {k: np.full(shape, fill, dtype) for k, (shape, dtype, fill) in specs.items()}
        return cls(arrays, np.zeros(n_chunks, bool), None)

    @classmethod
    def on_disk(cls, folder: Path, specs: Spec, n_chunks: int) -> ChunkedArrays:
        """Open ``folder`` to resume it when it holds these arrays (same names, shapes, dtypes and chunks),
        otherwise start it afresh (after checking that the disk has room for the arrays)."""
        folder = Path(folder)
        meta = {"arrays": {k: [list(shape), np.dtype(dtype).str] for k, (shape, dtype, _) in specs.items()},
                "chunks": n_chunks}
        old = _read_meta(folder)
        if old is not None and {k: old.get(k) for k in meta} == meta and _files_intact(folder, specs, n_chunks):
            arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r+") for k in specs}
            return cls(arrays, np.load(folder / "done.npy"), folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        need, free = nbytes(specs), shutil.disk_usage(folder).free
        if need + DISK_MARGIN > free:
            shutil.rmtree(folder)
            raise ForensicFaceError(
                f"preparing these arrays needs {_size(need)} in {folder.parent} and only {_size(free)} is free: "
                "point FORENSIC_FACE_CACHE at a larger disk, or prepare fewer variants (--variants)")
        arrays = {}
        for k, (shape, dtype, fill) in specs.items():
            arrays[k] = np.lib.format.open_memmap(folder / f"{k}.npy", mode="w+", dtype=dtype, shape=shape)
            if fill != 0:
                arrays[k][...] = fill
        store = cls(arrays, np.zeros(n_chunks, bool), folder)
        _write_json(folder / "meta.json", {**meta, "complete": False})
        store._dirty = True
        store.checkpoint()
        return store

    @staticmethod
    def open_complete(folder: Path) -> dict[str, np.ndarray] | None:
        """The arrays of a finished folder, memory-mapped read-only; None when it is absent or unfinished."""
        meta = _read_meta(Path(folder))
        if meta is None or not meta.get("complete"):
            return None
        return {k: np.load(Path(folder) / f"{k}.npy", mmap_mode="r") for k in meta["arrays"]}

    # ------------------------------------------------------------------------------------- filling
    def pending(self) -> list[int]:
        return [int(c) for c in np.nonzero(~self.done)[0]]

    def put(self, chunk: int, rows: slice | np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Write one chunk's rows and mark it done (on disk it counts as done from the next checkpoint)."""
        for k, v in values.items():
            self.arrays[k][rows] = v
        self.done[chunk] = True
        self._dirty = True
        if self.folder is not None and time.monotonic() - self._last >= CHECKPOINT_S:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Flush the arrays, then record which chunks they hold (a chunk is never marked before its rows are
        on disk)."""
        if self.folder is None or not self._dirty:
            return
        for a in self.arrays.values():
            if isinstance(a, np.memmap):
                a.flush()
        tmp = self.folder / "done.tmp.npy"
        np.save(tmp, self.done)
        tmp.replace(self.folder / "done.npy")
        self._last = time.monotonic()
        self._dirty = False

    def finish(self) -> dict[str, np.ndarray]:
        """Mark the folder complete (every chunk must be done); returns the arrays (read-only maps on disk)."""
        if not self.done.all():
            raise ForensicFaceError(f"{int((~self.done).sum())} chunks are not prepared yet")
        if self.folder is None:
            return self.arrays
        self.checkpoint()
        meta = _read_meta(self.folder)
        if not meta.get("complete"):
            _write_json(self.folder / "meta.json", {**meta, "complete": True})
        self.arrays = {}  # close the writable maps before opening read-only ones
        return self.open_complete(self.folder)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _files_intact(folder: Path, specs: Spec, n_chunks: int) -> bool:
    try:
        for k, (shape, dtype, _) in specs.items():
            a = np.load(folder / f"{k}.npy", mmap_mode="r")
            if a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
                return False
        done = np.load(folder / "done.npy")
        return done.dtype == bool and done.shape == (n_chunks,)
    except (OSError, ValueError):
        return False


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def parallel_map(fn: Callable, jobs: list, workers: int, progress: Progress | None, total: int,
                 message: str, sizes: Iterable[int] | None = None, on_result: Callable | None = None,
                 done: int = 0) -> list:
    """``[fn(j) for j in jobs]`` in ``workers`` processes (spawned), in order, with progress and cancel.

    ``on_result(k, result)``: called with each result as it comes instead of keeping them (returns []);
    ``done``: items finished before these jobs (a resumed task's progress starts there)."""
    sizes = list(sizes) if sizes is not None else [1] * len(jobs)
    results: list = [None] * len(jobs) if on_result is None else []
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        it = pool.imap(fn, jobs) if pool is not None else map(fn, jobs)
        for k, res in enumerate(it):
            if on_result is None:
                results[k] = res
            else:
                on_result(k, res)
            done += sizes[k]
            if progress is not None:
                progress.update(done, total, message)
    finally:
        if pool is not None:
            pool.terminate()
    return results
