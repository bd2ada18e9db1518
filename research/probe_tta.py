"""Test-time augmentation of a probe, measured on the calibration people (held out of every training; never
DevTest): the recogniser alone (the installed student, flip-averaged as the product embeds), its embedding of the
face as found against the mean of its embeddings of the face slightly shifted and scaled (each flip-averaged),
the gallery embedded as it is. The same pairs and searches as research/student_heldout.py: 600 pairs (AUC,
DeLong's paired p), the calibration identification set (rank-1, McNemar's exact p).

With the recognisers in bfloat16 a pass costs half what it did, so a probe could afford a few more; this asks
whether they would buy anything.

    .venv/bin/python -m research.probe_tta [--models resources/models]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import engine_probes, gallery_crops, identification_sets
from forensic_face.training.metrics import auc_difference, mcnemar
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS
from research.student_heldout import held_out

#: (scale, dx, dy) about the crop's centre; the first is the face as found.
VARIANTS = {
    "shifts": [(1.0, 0, 0), (1.0, 2, 0), (1.0, -2, 0), (1.0, 0, 2), (1.0, 0, -2)],
    "scales": [(1.0, 0, 0), (0.94, 0, 0), (1.06, 0, 0)],
    "both": [(1.0, 0, 0), (0.94, 0, 0), (1.06, 0, 0), (1.0, 2, 0), (1.0, -2, 0), (1.0, 0, 2), (1.0, 0, -2)],
}


def moved(faces: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
    """The crops scaled about their centre and shifted (edges repeated)."""
    if (scale, dx, dy) == (1.0, 0, 0):
        return faces
    n = faces.shape[1]
    m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), 0.0, scale)
    m[:, 2] += (dx, dy)
    return np.stack([cv2.warpAffine(f, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in faces])


def embedded(engine: FaceEngine, faces: np.ndarray, variants) -> np.ndarray:
    e = sum(engine.embed(moved(faces, *v)) for v in variants)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)
    gal_pairs = engine.embed(gallery_crops(index, cache, [p.a for p in pairs], engine.rec_size, mode="arcface"))
    gal_id = engine.embed(gallery_crops(index, cache, sets.gallery_paths, engine.rec_size, mode="arcface"))
    out: dict = {"installed": engine.info.version, "precision": engine.info.params["precision"],
                 "pairs": len(pairs), "searches": int(sets.closed.size), "gallery": len(sets.gallery_paths),
                 "variants": VARIANTS, "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib")
        row, scores, top1 = {}, {}, {}
        for name, variants in {"as found": [(1.0, 0, 0)], **VARIANTS}.items():
            scores[name], top1[name], row[name] = held_out(embedded(engine, probes.rec_crop, variants), gal_pairs,
                                                           gal_id, sets, same)
            if name != "as found":
                row[name]["vs_as_found_auc"] = auc_difference(scores[name], scores["as found"], same)
                row[name]["vs_as_found_rank_1"] = mcnemar(top1[name], top1["as found"])
        out["levels"][level] = row
        print(level, json.dumps(row), flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
