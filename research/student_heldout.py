"""Two SFace students compared on the calibration people (held out of every training; never DevTest): the
recogniser alone, through ``FaceEngine.embed`` (flip-averaged), as the product embeds the face as found (its
112 px five-point crop of the detection on the degraded frame, from the probe cache the evaluation uses), at
clean / mild / severe.

Verification: the 600 calibration pairs, ROC-AUC with DeLong's interval, paired DeLong p between the two.
Identification: each calibration person's first image (clean) as the gallery, the pairs' second images of
enrolled people as searches: rank-1, McNemar's exact p between the two.

    .venv/bin/python -m research.student_heldout --student runs/sface-f4/student.ckpt \
        [--models resources/models]

``--student``: a tuning checkpoint (``{"student": state dict, ...}``) or a bare state dict; the other is the
installed bundle's recogniser.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from forensic_face.engine.inference import FaceEngine, cpu_graph
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import engine_probes, gallery_crops, identification_sets
from forensic_face.training.metrics import auc_difference, auc_interval, mcnemar
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", type=Path, required=True)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    state = torch.load(args.student, map_location="cpu", weights_only=True)
    other = SFaceNet()
    other.load_state_dict(state.get("student", state))
    swapped = FaceEngine(args.models, device="cpu")  # the same engine, the other student's network in its place
    swapped._rec_run = cpu_graph(other.eval().for_inference(), engine.rec_size)
    nets = {"installed": engine.embed, "other": swapped.embed}
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)
    gal_pairs = gallery_crops(index, cache, [p.a for p in pairs], engine.rec_size, mode="arcface")
    gal_id = gallery_crops(index, cache, sets.gallery_paths, engine.rec_size, mode="arcface")
    c, t = sets.closed, sets.truth
    out: dict = {"student": str(args.student), "installed": engine.info.version, "pairs": len(pairs),
                 "searches": int(c.size), "gallery": len(sets.gallery_paths), "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib")
        row, scores, top1 = {}, {}, {}
        for name, embed in nets.items():
            e = embed(probes.rec_crop)
            scores[name] = (embed(gal_pairs) * e).sum(1)
            s = e @ embed(gal_id).T
            top1[name] = (s[c] > s[c, t][:, None]).sum(1) == 0
            auc, lo, hi = auc_interval(scores[name], same)
            row[name] = {"auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
                         "rank_1": round(float(top1[name].mean()), 4)}
        row["other_vs_installed_auc"] = auc_difference(scores["other"], scores["installed"], same)
        row["other_vs_installed_rank_1"] = mcnemar(top1["other"], top1["installed"])
        out["levels"][level] = row
        print(level, json.dumps(row), flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
