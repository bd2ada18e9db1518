"""Decode rate of a 640x480, 25 frames/s H.264 clip (about 60 s, made on the spot: a face moving over a textured,
noisy scene, a keyframe every 2 s as a recorder writes them): PyAV as the package reads video
(``iter_video_frames``: decode and RGB conversion), PyAV decoding alone, and OpenCV's ``VideoCapture`` (decode and
BGR conversion), each with 1 and 2 decoder threads. Rounds alternate between the readers so that a busy machine
slows them alike; each figure is the best of its rounds. Also: a 2 s range late in the clip read by seeking,
against decoding up to it, and the peak memory of a whole read.

    .venv/bin/python scripts/bench_video_decode.py [--seconds 60] [--rounds 2] [--clip PATH]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from forensic_face.vision.frames import iter_video_frames, video_info


def make_clip(path: Path, seconds: float, fps: int = 25) -> Path:
    """Encode the benchmark clip with libx264 (veryfast, 1.5 Mbit/s as a recorder's main stream, a keyframe every
    2 s)."""
    from skimage import data

    rng = np.random.default_rng(0)
    scene = cv2.resize(data.camera(), (640, 480))[..., None].repeat(3, axis=2)  # a textured background
    face = cv2.resize(data.astronaut()[30:230, 150:330], (120, 134))
    noise = [rng.normal(0, 6, (480, 640, 3)) for _ in range(16)]  # sensor noise, cycled
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 640, 480, "yuv420p", 1_500_000
        stream.codec_context.gop_size = 2 * fps
        for i in range(int(seconds * fps)):
            img = scene.copy()
            x, y = int(260 + 220 * np.sin(i / 40)), int(170 + 120 * np.sin(i / 23))
            img[y : y + 134, x : x + 120] = face
            img = np.clip(img + noise[i % len(noise)], 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def read_package(path: Path, threads: int) -> int:
    return sum(1 for _ in iter_video_frames(path, threads=threads))


def read_pyav(path: Path, threads: int) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type, stream.codec_context.thread_count = "AUTO", threads
        return sum(1 for _ in container.decode(stream))


def read_opencv(path: Path, threads: int) -> int:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def rate(read: Callable[[Path, int], int], path: Path, threads: int) -> float:
    t0 = time.perf_counter()
    n = read(path, threads)
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clip", type=Path, help="a clip to read instead of the one made here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.clip or make_clip(Path(tmp) / "bench.mp4", args.seconds)
        info = video_info(path)
        print(f"{path.name}: {info.width}x{info.height}, {info.fps:g} fps, {info.frame_count} frames, {info.codec}, "
              f"{path.stat().st_size / 2**20:.1f} MiB; PyAV {av.__version__} (libavcodec "
              f"{'.'.join(map(str, av.library_versions['libavcodec']))}), OpenCV {cv2.__version__}")
        readers = {"package (PyAV + RGB)": read_package, "PyAV decode only": read_pyav,
                   "OpenCV (decode + BGR)": read_opencv}
        best: dict[tuple[str, int], float] = {}
        for _ in range(args.rounds):
            for name, read in readers.items():
                for threads in (1, 2):
                    best[name, threads] = max(best.get((name, threads), 0.0), rate(read, path, threads))
        for (name, threads), fps in best.items():
            print(f"{name:24s} {threads} thread{'s' if threads > 1 else ' '}: {fps:7.1f} frames/s")
        lo = max(info.duration_s - 10.0, 0.0)
        t0 = time.perf_counter()
        n = sum(1 for _ in iter_video_frames(path, start_s=lo, end_s=lo + 2.0, threads=2))
        seek_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for frame in iter_video_frames(path, threads=2):
            if frame.timestamp_s >= lo + 2.0:
                break
        print(f"range {lo:g}-{lo + 2:g} s ({n} frames): {seek_s:.2f} s by seeking, "
              f"{time.perf_counter() - t0:.2f} s decoding up to it")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        read_package(path, 2)
        print(f"peak memory: {before / 1024:.0f} MiB before a whole read, "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
