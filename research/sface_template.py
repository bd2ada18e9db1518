"""Where do dlib's five landmarks lie in the ArcFace 112-px template frame? (``DLIB5_IN_ARCFACE_112``)

SFace was trained on faces aligned by five points that dlib's predictor does not give (eye centres, nose tip,
mouth corners; dlib gives eye corners and the base of the nose). YuNet (``../shared/weights``, research only)
gives the template's five points: on clean LFW images of training people (never DevTest, never calibration
people), the similarity fitted from YuNet's points to the template maps the project detector's dlib points
into the template frame; their per-point medians are the constants the ``arcface`` alignment fits to.

    .venv/bin/python -m research.sface_template [--images 400]     # ~1 minute
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from forensic_face.paths import shared_data_dir
from forensic_face.training.lfw import _most_central, index_folder
from forensic_face.training.split import make_split
from forensic_face.vision.align import ARCFACE_TEMPLATE_112, similarity_fit
from forensic_face.vision.detect import FaceDetector

YUNET = Path(__file__).resolve().parents[2] / "shared" / "weights" / "face_detection_yunet_2023mar.onnx"


def yunet_points(yunet, grey: np.ndarray) -> np.ndarray | None:
    """YuNet's five points (template order) of the most central face, or None."""
    h, w = grey.shape
    yunet.setInputSize((w, h))
    _, faces = yunet.detect(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    if faces is None:
        return None
    centre = np.array([w / 2, h / 2])
    best = min(faces, key=lambda f: np.hypot(*(f[:2] + f[2:4] / 2 - centre)))
    return best[4:14].reshape(5, 2).astype(np.float64)


def measure(n_images: int, seed: int = 0) -> dict:
    index = index_folder(shared_data_dir() / "lfw")
    split = make_split(index, seed)
    rows = [i for i, person in enumerate(index.people) if person in split.train_people]
    rows = np.random.default_rng(seed).choice(rows, size=min(n_images, len(rows)), replace=False)
    detector = FaceDetector()
    yunet = cv2.FaceDetectorYN.create(str(YUNET), "", (250, 250), 0.6)
    mapped, yunet_mapped, residual = [], [], []
    for i in rows:
        grey = cv2.imread(str(index.root / index.paths[i]), cv2.IMREAD_GRAYSCALE)
        faces = detector.detect(grey)
        five = yunet_points(yunet, grey)
        if not faces or five is None:
            continue
        dlib = _most_central(faces, grey.shape).landmarks
        m = similarity_fit(five, ARCFACE_TEMPLATE_112)
        fitted = five @ m[:, :2].T + m[:, 2]
        residual.append(float(np.sqrt(((fitted - ARCFACE_TEMPLATE_112) ** 2).sum(1).mean())))
        mapped.append(dlib @ m[:, :2].T + m[:, 2])
        yunet_mapped.append(fitted)
    pts = np.stack(mapped)
    median = np.median(pts, axis=0)
    spread = np.median(np.abs(pts - median), axis=0)
    moved = []  # how far YuNet's points move when the face is aligned by dlib's points and the medians instead
    for dlib_in_template, five_in_template in zip(pts, yunet_mapped, strict=True):
        m = similarity_fit(dlib_in_template, median)
        moved.append(np.hypot(*(five_in_template @ m[:, :2].T + m[:, 2] - five_in_template).T).mean())
    return {"images_tried": int(len(rows)), "faces_used": int(len(pts)),
            "dlib5_in_arcface_112": np.round(median, 2).tolist(),
            "median_abs_deviation_px": np.round(spread, 2).tolist(),
            "yunet_fit_rms_px_median": round(float(np.median(residual)), 2),
            "dlib_vs_yunet_alignment_px_median": round(float(np.median(moved)), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=400)
    print(json.dumps(measure(ap.parse_args().images), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
