"""Two checks of a model folder on held-out people (never DevTest), printed as JSON rows:

``fit``: does the autoencoder fit its training faces better than held-out ones? Reconstruction PSNR
(and bicubic beside it) at mild and severe on 600 training images (a seeded draw, each run through the
evaluation's probe pipeline with its own seeded degradation) against the 600 calibration probes. A
large gap would call for more or more varied training data; none calls for more capacity or steps.

``ensemble``: would embedding the degraded input as well as its reconstruction help? Calibration
ROC-AUC and best-threshold accuracy (the threshold chosen on the same pairs: an upper bound) of the
normalised mean ``w * e(reconstruction) + (1 - w) * e(degraded input)`` for several ``w``.

    .venv/bin/python -m research.model_checks fit
    .venv/bin/python -m research.model_checks ensemble --models runs/models13
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import gallery_crops, probe_set
from forensic_face.training.lfw import Pair
from forensic_face.training.metrics import best_threshold_accuracy, roc_auc
from forensic_face.training.split import load_split_data
from forensic_face.training.train import training_rows
from forensic_face.vision.degrade import DEGRADED_LEVELS, EVAL_LEVELS
from research.score_calibration import score

N_TRAIN = 600
WEIGHTS = (1.0, 0.75, 0.5, 0.0)


def training_pairs(index, cache, split, seed: int = 5) -> list[Pair]:
    """``N_TRAIN`` training images (those with a teacher descriptor, as training uses), each paired with itself:
    the probe pipeline then degrades and crops it as it does a calibration probe."""
    pick = np.sort(np.random.default_rng(seed).choice(training_rows(index, cache, split), N_TRAIN, replace=False))
    return [Pair(index.paths[r], index.paths[r], True) for r in pick]


def check_fit(engine: FaceEngine, index, cache, split) -> list[dict]:
    rows = []
    for people, pairs, tag in (("train", training_pairs(index, cache, split), "trainfit"),
                               ("calib", split.calib_pairs, "calib")):
        row = score(engine, index, cache, pairs, reconstruction_only=True, tag=tag)
        rows += [{"people": people, "level": level, "psnr": row[f"calib_psnr_{level}"],
                  "bicubic": row[f"calib_bicubic_{level}"]} for level in DEGRADED_LEVELS]
    return rows


def check_ensemble(engine: FaceEngine, index, cache, split) -> list[dict]:
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    gallery = engine.embed(gallery_crops(index, cache, [p.a for p in pairs], engine.size))
    rows = []
    for level in EVAL_LEVELS:
        probes = probe_set(index, cache, pairs, level, engine.size, "calib", 2)
        e_rec, e_deg = engine.embed(engine.reconstruct(probes.crop)), engine.embed(probes.crop)
        for w in WEIGHTS:
            e = w * e_rec + (1 - w) * e_deg
            s = (gallery * (e / np.linalg.norm(e, axis=1, keepdims=True))).sum(1)
            rows.append({"level": level, "w_reconstruction": w, "auc": round(roc_auc(s, same), 4),
                         "best_threshold_accuracy": round(best_threshold_accuracy(s, same), 3)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=("fit", "ensemble"))
    ap.add_argument("--models", help="model folder (default: the shipped models)")
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    rows = (check_fit if args.check == "fit" else check_ensemble)(engine, index, cache, split)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
