"""Measure face-detection rates on LFW, clean, downscaled and at the evaluation degradation levels.

Usage: python scripts/measure_detection.py [--n 500] [--seed 0]
A detection counts as correct when its centre lies within 20% of the frame size of the frame
centre (LFW faces are centred). Prints one line per (condition, detector configuration).
"""

from __future__ import annotations

import argparse
import random
import time

import cv2
import numpy as np

from forensic_face.paths import shared_data_dir
from forensic_face.vision.degrade import degrade
from forensic_face.vision.detect import DetectorConfig, FaceDetector

CONFIGS = {
    "hog x1": DetectorConfig(upscales=(1,), haar_fallback=False, hog_threshold=0.0),
    "hog x1,x2,x4": DetectorConfig(upscales=(1, 2, 4), haar_fallback=False, hog_threshold=0.0),
    "hog x1,x2,x4 + haar": DetectorConfig(upscales=(1, 2, 4), haar_fallback=True, hog_threshold=0.0),
    "hog x1,x2,x4 t=-0.2 + haar": DetectorConfig(upscales=(1, 2, 4), haar_fallback=True, hog_threshold=-0.2),
}


def conditions(img: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    out = {"clean 250px": img}
    for s in (64, 48, 40):
        out[f"downscaled {s}px"] = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
    out["mild (DESIGN)"] = degrade(img, "mild", seed=seed)
    out["severe (DESIGN)"] = degrade(img, "severe", seed=seed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = shared_data_dir()
    if data is None:
        raise SystemExit("shared data not found; set FORENSIC_FACE_DATA")
    files = sorted((data / "lfw").glob("*/*.jpg"))
    random.Random(args.seed).shuffle(files)
    files = files[: args.n]
    dets = {name: FaceDetector(cfg) for name, cfg in CONFIGS.items()}
    stats: dict[tuple[str, str], list[float]] = {}
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        for cond, im in conditions(img, i).items():
            h, w = im.shape
            for name, det in dets.items():
                t = time.perf_counter()
                faces = det.detect(im)
                dt = time.perf_counter() - t
                ok = any(
                    abs((d.box[0] + d.box[2]) / 2 - w / 2) < 0.2 * w
                    and abs((d.box[1] + d.box[3]) / 2 - h / 2) < 0.2 * h
                    for d in faces[:1]
                )
                s = stats.setdefault((cond, name), [0, 0, 0.0])
                s[0] += ok
                s[1] += 1
                s[2] += dt
    print(f"LFW detection rate, {len(files)} random images (seed {args.seed}); correct = best box centred")
    for (cond, name), (ok, n, t) in stats.items():
        print(f"{cond:18s} {name:28s} {ok / n:6.1%}  {1000 * t / n:6.1f} ms/image")


if __name__ == "__main__":
    main()
