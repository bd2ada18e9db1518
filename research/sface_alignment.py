"""Does SFace lose clean-face accuracy to the product's alignment? (issue 24: clean accuracy 98.0 % against 98.5 %)

SFace was trained on faces aligned by five points (eye centres, nose tip, mouth corners) that the project's detector
does not give: the product fits dlib's five points to where they lie, on average, in the template frame
(``DLIB5_IN_ARCFACE_112``, ``research/sface_template.py``), so a face whose proportions differ from the average is
aligned a little otherwise than SFace saw in training. Here SFace as published (OpenCV's ``FaceRecognizerSF`` on
``../shared/weights``; research only) embeds the clean images of the calibration pairs (never DevTest) aligned both
ways: by the cascade's points as the product aligns them (the face cache's landmarks, ``evaluate.gallery_crops``), and
by YuNet's own five points on the template itself (YuNet at score 0.4, its face nearest the centre; where it finds
none within 50 px of the centre, the cascade's crop stands in, counted). Pair AUC with DeLong's interval, the best
single threshold's accuracy (in-sample, for both alike), rank-1 of the identification searches made from the pairs,
McNemar's exact p between the two. Prints JSON; asserts nothing.

    .venv/bin/python -m research.sface_alignment > research/sface_alignment.json     # ~1 minute
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import gallery_crops, identification_sets
from forensic_face.training.metrics import auc_interval, mcnemar
from forensic_face.training.split import load_split_data
from forensic_face.vision.align import AlignSpec, align_face
from forensic_face.vision.yunet import YuNetConfig, YuNetDetector
from research.calibration_people import first

SFACE = Path(__file__).resolve().parents[2] / "shared" / "weights" / "face_recognition_sface_2021dec.onnx"


def _off_centre(d, grey: np.ndarray) -> float:
    """How far the detection's box centre lies from the image's, pixels."""
    return float(np.hypot((d.box[0] + d.box[2] - grey.shape[1]) / 2, (d.box[1] + d.box[3] - grey.shape[0]) / 2))


def yunet_crops(index, paths: list[str], fallback: np.ndarray) -> tuple[np.ndarray, int]:
    """Each image aligned by YuNet's five points on the template (the ``fallback`` crop where YuNet finds no face
    near the centre) and how many YuNet aligned."""
    detector, spec = YuNetDetector(YuNetConfig(score_threshold=0.4)), AlignSpec(size=112, mode="arcface")
    out, found = fallback.copy(), 0
    for k, p in enumerate(paths):
        grey = cv2.imread(str(index.root / p), cv2.IMREAD_GRAYSCALE)
        faces = sorted((_off_centre(d, grey), i, d) for i, d in enumerate(detector.detect(grey)))
        if faces and faces[0][0] < 50:
            out[k] = align_face(grey, faces[0][2], spec).image
            found += 1
    return out, found


def main() -> int:
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    row = {p: i for i, p in enumerate(paths)}
    cascade = gallery_crops(index, cache, paths, 112, "arcface")
    yunet, found = yunet_crops(index, paths, cascade)
    sface = cv2.FaceRecognizerSF.create(str(SFACE), "")
    out: dict = {"images": len(paths), "aligned_by_yunet": found, "pairs": len(pairs),
                 "searches": int(sets.closed.size), "gallery": len(sets.gallery_paths)}
    top1 = {}
    product, own = "cascade points, mapped (the product)", "YuNet's own points"
    for name, crops in ((product, cascade), (own, yunet)):
        e = np.stack([sface.feature(cv2.cvtColor(c, cv2.COLOR_GRAY2BGR)).ravel() for c in crops])
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        scores = np.array([e[row[p.a]] @ e[row[p.b]] for p in pairs])
        auc, lo, hi = auc_interval(scores, same)
        best = max(float(((scores >= t) == same).mean()) for t in np.unique(scores))
        sims = e[[row[pairs[i].b] for i in sets.closed]] @ e[[row[p] for p in sets.gallery_paths]].T
        top1[name] = first(sims, sets.truth)
        out[name] = {"auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
                     "best_threshold_accuracy": round(best, 4), "rank_1": round(float(top1[name].mean()), 4)}
    out["rank_1_yunet_vs_product"] = mcnemar(top1[own], top1[product])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
