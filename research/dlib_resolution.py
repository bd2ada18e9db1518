"""Does a 64 px grey crop hold enough of a face for the clean-face target? dlib's recogniser (the
reference of ``forensic-face evaluate``) on the clean DevTest pairs, its aligned 150 px chip first
shrunk to the resolution of the product's crop and enlarged back.

The product's crop puts the eye centres 0.34 of its side apart (``AlignSpec.eye_dist``): 21.8 px at
64 px. The eye distance in dlib's chip (150 px, padding 0.25) is measured on these faces; the chip is
area-downscaled so that its eyes lie as far apart as in a crop of ``side`` px, then bicubic-upscaled
back to 150 px. Nothing is trained or fitted: dlib at its documented 0.6 distance, the best threshold
on these pairs for reference, and the ROC-AUC.

    .venv/bin/python -m research.dlib_resolution            # ~3 minutes per resolution on 2 cores
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from forensic_face.paths import shared_data_dir
from forensic_face.training.lfw import build_face_cache, dlib_shape, index_folder
from forensic_face.training.metrics import best_threshold_accuracy, roc_auc
from forensic_face.training.split import make_split
from forensic_face.vision.align import AlignSpec
from forensic_face.vision.detect import dlib_model_path


def main() -> int:
    import dlib

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", default="0,64,48,32", help="crop sides to emulate (0: dlib's own chip)")
    args = ap.parse_args()
    index = index_folder(shared_data_dir() / "lfw")
    pairs = make_split(index, 0).test_pairs
    cache = build_face_cache(index, None, with_teacher=True, workers=2)
    rec = dlib.face_recognition_model_v1(str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")))
    pos = {p: i for i, p in enumerate(index.paths)}
    chips, eyes = {}, []
    for i in sorted({pos[p.a] for p in pairs} | {pos[p.b] for p in pairs}):
        marks = cache["landmarks"][i]
        if not np.isfinite(marks).all():
            continue
        grey = cv2.imread(str(index.root / index.paths[i]), cv2.IMREAD_GRAYSCALE)
        shape = dlib_shape(cache["boxes"][i], marks)
        chips[i] = dlib.get_face_chip(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), shape, 150, 0.25)
        # 5-point landmarks: 0-1 one eye's corners, 2-3 the other's; frame px -> chip px
        scale = 150 / dlib.get_face_chip_details(shape, 150, 0.25).rect.width()
        eyes.append(np.linalg.norm(marks[0:2].mean(0) - marks[2:4].mean(0)) * scale)
    eye_chip = float(np.median(eyes))
    print(f"median eye distance in dlib's 150 px chip: {eye_chip:.1f} px; in the product's crop: "
          f"{AlignSpec.eye_dist:.2f} of its side", flush=True)
    same = np.array([p.same for p in pairs])
    for side in map(int, args.sides.split(",")):
        k = int(round(150 * AlignSpec.eye_dist * side / eye_chip)) if side else 150
        desc = {}
        for i, chip in chips.items():
            c = chip if not side else cv2.resize(cv2.resize(chip, (k, k), interpolation=cv2.INTER_AREA), (150, 150),
                                                 interpolation=cv2.INTER_CUBIC)
            desc[i] = np.asarray(rec.compute_face_descriptor(c), np.float32)
        ok = [j for j, p in enumerate(pairs) if pos[p.a] in desc and pos[p.b] in desc]
        dist = np.array([np.linalg.norm(desc[pos[pairs[j].a]] - desc[pos[pairs[j].b]]) for j in ok])
        s = same[ok]
        print(json.dumps({"crop_side": side or "dlib chip", "chip_px": k, "pairs": len(ok),
                          "accuracy_at_0.6": round(float(((dist < 0.6) == s).mean()), 4),
                          "best_threshold_accuracy": round(best_threshold_accuracy(-dist, s), 4),
                          "roc_auc": round(roc_auc(-dist, s), 4)}),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
