"""Would SFace as published (the student's teacher) beside the shipped student help the sharper probes? (issue 24:
"the student must not lose the teacher's clean-face accuracy; if one network cannot hold both, fuse the teacher's
and the student's scores by the measured probe quality ... chosen on the calibration people")

On the calibration people only (held out of every training; never DevTest), as ``research.student_heldout``: the
recogniser alone through ``FaceEngine.embed`` (flip-averaged) on the probe's own 112 px crop, the 600 calibration
pairs (AUC, DeLong) and 314 searches in a gallery of 545 (rank-1, McNemar). For each teacher share a in
0 .. 1 the pair / search similarity is a * teacher cosine + (1 - a) * student cosine, at clean / mild / severe;
also each probe's quality q = ln(1 + variance of the Laplacian of its 64 px crop), to see where the levels fall.

    .venv/bin/python -m research.teacher_fusion [--models resources/models] [--out research/teacher_fusion.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine, cpu_graph
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import engine_probes, gallery_crops, identification_sets, probe_sharpness
from forensic_face.training.metrics import auc_difference, auc_interval, mcnemar
from forensic_face.training.sface_onnx import convert, default_onnx_path
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def best_accuracy(s: np.ndarray, same: np.ndarray) -> float:
    """The accuracy of the best single threshold on these pairs' own scores (an oracle, for orientation only)."""
    order = np.sort(s)
    cuts = np.concatenate([[order[0] - 1], (order[1:] + order[:-1]) / 2, [order[-1] + 1]])
    return round(float(max(((s >= x) == same).mean() for x in cuts)), 4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--out", type=Path, default=Path("research/teacher_fusion.json"))
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    teacher = SFaceNet()
    teacher.load_state_dict(convert(default_onnx_path()))
    swapped = FaceEngine(args.models, device="cpu")
    swapped._rec_run = cpu_graph(teacher.eval().for_inference(), engine.rec_size, engine.precision)
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)
    c, t = sets.closed, sets.truth
    firsts = [p.a for p in pairs]
    crops = {"pairs": gallery_crops(index, cache, firsts, engine.rec_size, mode="arcface"),
             "id": gallery_crops(index, cache, sets.gallery_paths, engine.rec_size, mode="arcface")}
    gal = {n: {k: f(v) for k, v in crops.items()} for n, f in (("student", engine.embed), ("teacher", swapped.embed))}
    out: dict = {"installed": engine.info.version, "pairs": len(pairs), "searches": int(c.size),
                 "gallery": len(sets.gallery_paths), "precision": engine.info.params["precision"], "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib")
        q = np.log1p(probe_sharpness(probes))
        emb = {"student": engine.embed(probes.rec_crop), "teacher": swapped.embed(probes.rec_crop)}
        pair_s = {n: (gal[n]["pairs"] * emb[n]).sum(1) for n in emb}
        id_s = {n: emb[n] @ gal[n]["id"].T for n in emb}
        row: dict = {"quality_percentiles_5_50_95": [round(float(v), 3) for v in np.percentile(q, [5, 50, 95])]}
        scores, top1 = {}, {}
        for a in SHARES:
            s = a * pair_s["teacher"] + (1 - a) * pair_s["student"]
            m = a * id_s["teacher"] + (1 - a) * id_s["student"]
            top1[a] = (m[c] > m[c, t][:, None]).sum(1) == 0
            scores[a] = s
            auc, lo, hi = auc_interval(s, same)
            row[f"teacher_{a}"] = {"auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
                                   "rank_1": round(float(top1[a].mean()), 4),
                                   "best_threshold_accuracy": best_accuracy(s, same)}
        for a in SHARES[1:]:
            row[f"teacher_{a}_vs_student"] = {"auc": auc_difference(scores[a], scores[0.0], same),
                                              "rank_1": mcnemar(top1[a], top1[0.0])}
        out["levels"][level] = row
        print(level, json.dumps({k: v for k, v in row.items() if "_vs_" not in k}), flush=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
