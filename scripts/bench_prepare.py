"""Memory and time of preparing training arrays for a folder larger than LFW, in memory against on disk
(``dataset.prepare_faces`` without and with ``folder``), and the cost of drawing training batches from
each. Prints figures; asserts nothing.

The folder is LFW's training images repeated until there are ``--images`` of them (each copy gets its own
degradations: they are seeded by row), with the face cache's boxes and landmarks of the original, so only
the arrays stage is measured. The dlib stage before it (the face cache) costs about 0.12 s per image and
core, and resumes where it stopped; it is not rerun here.

    .venv/bin/python scripts/bench_prepare.py --images 30000 [--mode memory|disk] [--workers 2]

Each mode runs in its own process (so that one's memory does not count against the other). Peak memory
is the process's own (anonymous) memory, sampled every 50 ms: the pages of memory-mapped files belong to
the page cache, which the system reclaims when it needs to, and are reported apart. Drawing batches is
timed from memory, and from disk with the files dropped from the page cache (as one larger than memory
is), by plain indexing and by ``chunked.gather``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from forensic_face.training.chunked import gather


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class PeakSampler:
    """Peak anonymous and file-backed resident memory of this process, sampled in a thread."""

    def __init__(self, every: float = 0.05) -> None:
        self.anon = self.file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.anon = max(self.anon, _status("RssAnon"))
            self.file = max(self.file, _status("RssFile"))
            time.sleep(every)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def one_mode(mode: str, images: int, workers: int, folder: str) -> dict:
    from forensic_face.paths import shared_data_dir
    from forensic_face.training.dataset import prepare_faces
    from forensic_face.training.lfw import FolderIndex, build_face_cache, index_folder
    from forensic_face.training.split import make_split
    from forensic_face.training.train import training_rows

    index = index_folder(shared_data_dir() / "lfw")
    cache = build_face_cache(index, with_teacher=True, workers=workers)
    rows = training_rows(index, cache, make_split(index, 0))
    reps = np.resize(rows, images)  # LFW's training rows, repeated
    big = FolderIndex(index.root, [index.paths[r] for r in reps], [index.people[r] for r in reps])
    big_cache = {"boxes": cache["boxes"][reps], "landmarks": cache["landmarks"][reps]}
    base = _status("RssAnon")
    t0 = time.perf_counter()
    with PeakSampler() as peak:
        kw = {"folder": Path(folder)} if mode == "disk" else {}
        clean, deg, tgt, lev = prepare_faces(big, big_cache, np.arange(images), size=64, variants=8, seed=0,
                                             workers=workers, **kw)
    seconds = time.perf_counter() - t0
    arrays_bytes = sum(a.nbytes for a in (clean, deg, tgt, lev))
    row = {"mode": mode, "images": images, "workers": workers, "seconds": round(seconds, 1),
           "images_per_s": round(images / seconds, 1), "arrays_GB": round(arrays_bytes / 1e9, 2),
           "peak_anon_GB_above_start": round((peak.anon - base) / 1e9, 2),
           "peak_file_backed_GB": round(peak.file / 1e9, 2), "type": type(deg).__name__}
    if mode == "memory":
        row["batch_ms"] = draw_batches(deg, tgt, gather)
        return row
    # from disk, cold: the files' pages dropped from the page cache first (what a file larger than memory
    # gives), drawn by plain indexing and by chunked.gather (what the training's Batcher uses)
    del clean, deg, tgt, lev
    for name, how in (("batch_ms_cold_plain_indexing", lambda a, i, v: a[i, v]), ("batch_ms_cold_gather", gather)):
        deg, tgt = (drop_cached(Path(folder) / f"{k}.npy") for k in ("degraded", "target"))
        row[name] = draw_batches(deg, tgt, how)
    return row


def drop_cached(path: Path) -> np.ndarray:
    """The array of a .npy file, memory-mapped, after asking the kernel to drop its pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return np.load(path, mmap_mode="r")


def draw_batches(deg: np.ndarray, tgt: np.ndarray, how, n_batches: int = 300) -> float:
    """Milliseconds per batch drawn as the training's Batcher does: 96 random rows (the next slice of a
    permutation), one random variant each, degraded input and target."""
    rng = np.random.default_rng(0)
    n = deg.shape[0]
    order = np.concatenate([rng.permutation(n) for _ in range(-(-n_batches * 96 // n))])
    t = time.perf_counter()
    for b in range(n_batches):
        idx = order[b * 96:(b + 1) * 96]
        v = rng.integers(0, deg.shape[1], idx.size)
        x = how(deg, idx, v).astype(np.float32) / 255
        y = how(tgt, idx, v).astype(np.float32) / 255
        assert x.shape == y.shape == (idx.size, 64, 64)
    return round((time.perf_counter() - t) / n_batches * 1000, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=30000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mode", choices=["memory", "disk"], help="one mode in this process (default: both, each in "
                                                             "its own process)")
    ap.add_argument("--folder", help="where the disk mode writes (default: a temporary folder, removed after)")
    args = ap.parse_args()
    if args.mode:
        with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
            print(json.dumps(one_mode(args.mode, args.images, args.workers, str(Path(tmp) / "arrays"))), flush=True)
        return 0
    for mode in ("memory", "disk"):
        cmd = [sys.executable, __file__, "--mode", mode, "--images", str(args.images), "--workers", str(args.workers)]
        if args.folder:
            cmd += ["--folder", args.folder]
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
