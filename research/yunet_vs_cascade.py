"""YuNet against the project's detector cascade (dlib HOG x1/x2/x4 + Haar) on clean and degraded LFW.

For each image and condition (the DESIGN.md levels of ``vision.degrade.EVAL_LEVELS``, plus the clean face shrunk
to a small one in a 640x480 frame as CCTV holds it), each detector's face nearest the frame centre counts as found
when its centre lies within 20 % of the frame size of the face's centre (LFW faces are centred). The eye error is
the distance of the found eye centres from the cascade's eye centres on the clean image (the mean of dlib's two
corners per eye), in inter-ocular distances (IOD); the median is given and the share within 0.1 and 0.25 IOD.
"own" is the same against the detector's own clean eyes (how far degradation moves them). On the clean faces
both found, the nose tip's offset (YuNet) over the nose base's (dlib) gives NOSE_TIP_TURN_RATIO (vision/quality.py).
The time is per 640x480 frame holding the image (one thread, median of the images timed). Detectors: the cascade
as shipped; YuNet as shipped (score >= 0.6, x1); YuNet at score >= 0.4; the same with a x2 pass when x1 finds
nothing.

    .venv/bin/python -m research.yunet_vs_cascade [--images 500] [--timed 60]     # ~1 hour on a busy core
"""

from __future__ import annotations

import argparse
import json
import random
import time

import cv2
import numpy as np

from forensic_face.paths import shared_data_dir
from forensic_face.vision.degrade import EVAL_LEVELS, degrade
from forensic_face.vision.detect import FIVE_POINT, FaceDetection, FaceDetector
from forensic_face.vision.quality import NOSE_TIP_TURN_RATIO, pose_from_landmarks
from forensic_face.vision.yunet import YuNetConfig, YuNetDetector

SMALL = (40, 28)  # the clean LFW image shrunk to these sizes: faces of about 17 and 12 px in a 640x480 frame


def conditions(img: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, float, tuple[float, float]]]:
    """name -> (image, scale from the 250-px original, offset of the original's origin in it)."""
    out = {lev: (degrade(img, lev, seed=seed), 1.0, (0.0, 0.0)) for lev in EVAL_LEVELS}
    for side in SMALL:
        frame = np.full((480, 640), 110, np.uint8)
        small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
        frame[220:220 + side, 300:300 + side] = small
        out[f"clean {side}px frame in 640x480"] = (frame, side / img.shape[1], (300.0, 220.0))
    return out


def central(faces: list[FaceDetection], centre: np.ndarray, tol: float) -> FaceDetection | None:
    """The detection nearest ``centre`` if its box centre is within ``tol`` px of it."""
    if not faces:
        return None
    best = min(faces, key=lambda f: np.hypot(*(np.array(f.box[:2]) / 2 + np.array(f.box[2:]) / 2 - centre)))
    dist = np.hypot(*(np.array(best.box[:2]) / 2 + np.array(best.box[2:]) / 2 - centre))
    return best if dist < tol else None


def eye_error(det: FaceDetection | None, ref: np.ndarray | None, scale: float, offset) -> float:
    """Mean distance of ``det``'s eye centres from ``ref`` ((2, 2) in original pixels), in reference IODs."""
    if det is None or ref is None or det.eye_centres() is None:
        return float("nan")
    eyes = (np.stack(det.eye_centres()) - np.asarray(offset)) / scale
    return float(np.hypot(*(eyes - ref).T).mean() / np.hypot(*(ref[1] - ref[0])))


def raw_turn(face: FaceDetection) -> float:
    """The nose's offset along the eye line in eye distances, from the nose point the detector gives (the tip for
    YuNet, the base for dlib), before pose_from_landmarks puts the tip's on the base's scale."""
    _, turn = pose_from_landmarks(face.landmarks, face.landmark_kind)
    return turn * NOSE_TIP_TURN_RATIO if face.landmark_kind == FIVE_POINT else turn


def measure(n_images: int, n_timed: int, seed: int = 0) -> dict:
    files = sorted((shared_data_dir() / "lfw").glob("*/*.jpg"))
    random.Random(seed).shuffle(files)
    files = files[:n_images]
    detectors = {"cascade": FaceDetector(), "yunet": YuNetDetector(),
                 "yunet t0.4": YuNetDetector(YuNetConfig(score_threshold=0.4)),
                 "yunet t0.4 x1,x2": YuNetDetector(YuNetConfig(score_threshold=0.4, upscales=(1, 2)))}
    found: dict[tuple[str, str], list[bool]] = {}
    err: dict[tuple[str, str, str], list[float]] = {}
    turns: dict[str, list[float]] = {"yunet": [], "cascade": []}
    for i, f in enumerate(files):
        grey = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        centre = np.array([grey.shape[1] / 2, grey.shape[0] / 2])
        clean_eyes: dict[str, np.ndarray | None] = {}
        clean_faces: dict[str, FaceDetection | None] = {}
        for cond, (im, scale, offset) in conditions(grey, i).items():
            for name, det in detectors.items():
                face = central(det.detect(im), centre * scale + offset, 0.2 * grey.shape[1] * scale)
                found.setdefault((cond, name), []).append(face is not None)
                if cond == "clean":
                    clean_eyes[name] = None if face is None or face.eye_centres() is None \
                        else np.stack(face.eye_centres())
                    clean_faces[name] = face
                for ref_name, ref in (("cascade", clean_eyes.get("cascade")), ("own", clean_eyes.get(name))):
                    err.setdefault((cond, name, ref_name), []).append(eye_error(face, ref, scale, offset))
        if clean_faces.get("yunet") is not None and clean_faces.get("cascade") is not None:
            for name in ("yunet", "cascade"):
                turns[name].append(abs(raw_turn(clean_faces[name])))
    rows = []
    for (cond, name), hits in found.items():
        row = {"condition": cond, "detector": name, "found": round(float(np.mean(hits)), 4), "n": len(hits)}
        for ref_name in ("cascade", "own"):
            e = np.array(err[(cond, name, ref_name)])
            e = e[np.isfinite(e)]
            row[f"eye_err_vs_{ref_name}_median_iod"] = round(float(np.median(e)), 4) if len(e) else None
            row[f"eye_err_vs_{ref_name}_within_0.1"] = round(float(np.mean(e <= 0.1)), 4) if len(e) else None
            row[f"eye_err_vs_{ref_name}_within_0.25"] = round(float(np.mean(e <= 0.25)), 4) if len(e) else None
        rows.append(row)
    tip, base = np.array(turns["yunet"]), np.array(turns["cascade"])
    turn = {"faces": len(tip), "ratio_of_medians": round(float(np.median(tip) / np.median(base)), 3),
            "ratio_of_90th_percentiles": round(float(np.percentile(tip, 90) / np.percentile(base, 90)), 3)}
    return {"images": len(files), "seed": seed, "rows": rows, "nose_tip_over_base_turn": turn,
            "ms_per_640x480": timing(files[:n_timed], detectors)}


def timing(files, detectors) -> dict:
    """Median ms per 640x480 frame holding the LFW image (clean, severe), one OpenCV thread."""
    cv2.setNumThreads(1)
    out = {}
    for lev in ("clean", "severe"):
        for name, det in detectors.items():
            times = []
            for i, f in enumerate(files):
                frame = np.full((480, 640), 110, np.uint8)
                frame[115:365, 195:445] = degrade(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), lev, seed=i)
                rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
                det.detect(rgb)  # warm
                t = time.perf_counter()
                det.detect(rgb)
                times.append(1000 * (time.perf_counter() - t))
            out[f"{lev} {name}"] = round(float(np.median(times)), 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--timed", type=int, default=60)
    args = ap.parse_args()
    if shared_data_dir() is None:
        raise SystemExit("shared data not found; set FORENSIC_FACE_DATA")
    res = measure(args.images, args.timed)
    print(json.dumps(res, indent=1))
    print(f"{'condition':32s} {'detector':17s} found  eye err (median IOD, within 0.1) vs cascade clean | own clean")
    for r in res["rows"]:
        print(f"{r['condition']:32s} {r['detector']:17s} {r['found']:6.1%} "
              f"{r['eye_err_vs_cascade_median_iod']!s:>7} {r['eye_err_vs_cascade_within_0.1']!s:>7} | "
              f"{r['eye_err_vs_own_median_iod']!s:>7} {r['eye_err_vs_own_within_0.1']!s:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
