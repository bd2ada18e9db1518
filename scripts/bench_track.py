"""Frames per second and memory of clip tracking (YuNet + tracker) on a generated 640x480 25 fps clip.

The clip (the tracking test's 8 seconds: two faces crossing, a cut, one face walking, no face; repeated) is
written once as MJPG AVI, then read back with the product's frame reader and tracked (CONFIGS: 1 thread; 2 OpenCV
threads; 2 detection workers; detecting every or every second frame; decoding on a second thread or not). The
resident memory is sampled every 250 frames: a 10-minute figure is extrapolated only from a run whose memory
stayed flat (the last sample within 2 MiB plus the records' and crops' bytes of the first after warm-up).

    .venv/bin/python scripts/bench_track.py [--seconds 60] [--quick]      # ~5 minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import cv2

from forensic_face.engine.fusion import frame_weight
from forensic_face.vision.frames import iter_video_frames
from forensic_face.vision.synthclip import crossing_shots, generate_clip
from forensic_face.vision.track import FACE_RECORD, TrackerConfig, read_ahead, track_faces
from forensic_face.vision.yunet import YuNetDetector

FPS = 25.0


def write_clip(path: Path, seconds: float) -> int:
    shots = crossing_shots() * max(1, round(seconds / 8))  # 8 s each
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 480))
    n = 0
    for frame, _ in generate_clip(shots, fps=FPS):
        out.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        n += 1
    out.release()
    return n


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


#: (label, OpenCV threads, detection workers, detect every k-th frame, decode on a second thread)
CONFIGS = [
    ("1 thread", 1, 1, 1, False),
    ("1 thread, read-ahead", 1, 1, 1, True),
    ("2 OpenCV threads, read-ahead", 2, 1, 1, True),
    ("2 detection workers, read-ahead", 1, 2, 1, True),
    ("2 detection workers, no read-ahead", 1, 2, 1, False),
    ("2 detection workers, every 2nd frame", 1, 2, 2, True),
]


def run(path: Path, n: int, detector, threads: int, workers: int, every: int, ahead: bool) -> dict:
    cv2.setNumThreads(threads)
    samples: list[tuple[int, float]] = []

    def frames():
        for k, f in enumerate(iter_video_frames(path)):
            if k % 250 == 0:
                samples.append((k, rss_mib()))
            yield f

    source = read_ahead(frames()) if ahead else frames()
    t = time.perf_counter()
    result = track_faces(source, detector, weigh=frame_weight, config=TrackerConfig(detect_every=every),
                         workers=workers)
    dt = time.perf_counter() - t
    records = sum(len(tr.records) for tr in result.tracks)
    crops = sum(c.image.nbytes for tr in result.tracks for c in tr.crops)
    warm = samples[1][1] if len(samples) > 1 else samples[0][1]
    flat = samples[-1][1] - warm <= 2 + (records * FACE_RECORD.itemsize + crops) / 2**20
    return {"fps": n / dt, "seconds": dt, "tracks": len(result.tracks), "records": records, "crop_bytes": crops,
            "rss": samples, "flat": flat, "cuts": len(result.cuts)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="only 1 thread and 2 workers with read-ahead")
    args = ap.parse_args()
    detector = YuNetDetector()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.avi"
        t = time.perf_counter()
        n = write_clip(path, args.seconds)
        print(f"clip: {n} frames 640x480 at {FPS:g} fps ({n / FPS:.0f} s), written in {time.perf_counter() - t:.0f} s, "
              f"{path.stat().st_size / 2**20:.0f} MiB MJPG")
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            t = time.perf_counter()
            for _ in iter_video_frames(path):
                pass
            print(f"decoding alone, {threads} OpenCV thread(s): {n / (time.perf_counter() - t):6.1f} frames/s")
        for label, threads, workers, every, ahead in CONFIGS:
            if args.quick and (workers, every, ahead) not in ((1, 1, False), (2, 1, True)):
                continue
            r = run(path, n, detector, threads, workers, every, ahead)
            ten = f"{15000 / r['fps'] / 60:.1f} min" if r["flat"] else "not extrapolated (memory grew)"
            kib = r["records"] * FACE_RECORD.itemsize / 1024
            print(f"{label:38s} {r['fps']:6.1f} frames/s; {r['tracks']} tracks, {r['cuts']} cuts, {r['records']} "
                  f"records ({kib:.0f} KiB) + crops {r['crop_bytes'] / 1024:.0f} KiB; 10-minute clip: {ten}")
            print("    RSS MiB by frame: " + ", ".join(f"{k}:{m:.0f}" for k, m in r["rss"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the whole run (ru_maxrss): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
