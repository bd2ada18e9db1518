"""The student's probe against SFace's gallery face? (issue 24; the rule in ``research/asymmetric/decision_rule.txt``,
written before this was run.)

The shipped student was tuned so that its embedding of a degraded face lands on SFace-as-published's (the
teacher's, flip-averaged) embedding of the clean face; the product compares it with the student's own embedding
of the clean gallery face. Here the gallery side is the mix g_b = unit(b T(g) + (1 - b) S(g)) for b in 0 .. 1
(b = 0: as the product; b = 1: the teacher's gallery embedding alone), the probe side the student's as always.

On the calibration people only (never DevTest), the recogniser alone through ``FaceEngine.embed`` on the probe's
own 112 px crop: the drawn and made calibration pairs (``Split.calib_pairs`` + ``Split.calib_made``, degraded as
``calibrate`` degrades them) for the pair AUC, and the closed-set searches ``identification_sets`` makes of them
for rank-1; each b paired against b = 0 (DeLong, McNemar).

    FORENSIC_FACE_PRECISION=float32 .venv/bin/python -m research.asymmetric_gallery \
        [--models resources/models] [--out research/asymmetric/result.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine, cpu_graph
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import engine_probes, gallery_crops, identification_sets
from forensic_face.training.metrics import auc_difference, auc_interval, mcnemar
from forensic_face.training.sface_onnx import convert, default_onnx_path
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--out", type=Path, default=Path("research/asymmetric/result.json"))
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    teacher = SFaceNet()
    teacher.load_state_dict(convert(default_onnx_path()))
    swapped = FaceEngine(args.models, device="cpu")  # the same engine, SFace as published in the student's place
    swapped._rec_run = cpu_graph(teacher.eval().for_inference(), engine.rec_size, engine.precision)
    pairs = list(split.calib_pairs) + list(split.calib_made)
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)
    c, t = sets.closed, sets.truth
    gal_pairs = gallery_crops(index, cache, [p.a for p in pairs], engine.rec_size, mode="arcface")
    gal_id = gallery_crops(index, cache, sets.gallery_paths, engine.rec_size, mode="arcface")
    student = {"pairs": engine.embed(gal_pairs), "id": engine.embed(gal_id)}
    sface = {"pairs": swapped.embed(gal_pairs), "id": swapped.embed(gal_id)}
    out: dict = {"installed": engine.info.version, "pairs": len(pairs), "matched": int(same.sum()),
                 "searches": int(c.size), "gallery": len(sets.gallery_paths),
                 "precision": engine.info.params["precision"], "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib")
        e = engine.embed(probes.rec_crop)
        row: dict = {}
        scores, top1 = {}, {}
        for b in SHARES:
            g_pairs = unit(b * sface["pairs"] + (1 - b) * student["pairs"])
            g_id = unit(b * sface["id"] + (1 - b) * student["id"])
            scores[b] = (g_pairs * e).sum(1)
            m = e @ g_id.T
            top1[b] = (m[c] > m[c, t][:, None]).sum(1) == 0
            auc, lo, hi = auc_interval(scores[b], same)
            row[f"gallery_sface_{b}"] = {"auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
                                         "rank_1": round(float(top1[b].mean()), 4)}
        for b in SHARES[1:]:
            row[f"gallery_sface_{b}_vs_0"] = {"auc": auc_difference(scores[b], scores[0.0], same),
                                              "rank_1": mcnemar(top1[b], top1[0.0])}
        out["levels"][level] = row
        print(level, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
