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


def held_out(e: np.ndarray, gal_pairs: np.ndarray, gal_id: np.ndarray, sets, same: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Probe embeddings ``e`` (one per calibration pair) against the embeddings of the pairs' first images
    (``gal_pairs``) and of the identification gallery (``gal_id``): the pair scores, whether each search of
    ``sets`` put its person first, and the figures (AUC with DeLong's interval, rank-1)."""
    scores = (gal_pairs * e).sum(1)
    s = e @ gal_id.T
    c, t = sets.closed, sets.truth
    top1 = (s[c] > s[c, t][:, None]).sum(1) == 0
    auc, lo, hi = auc_interval(scores, same)
    return scores, top1, {"auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
                          "rank_1": round(float(top1.mean()), 4)}


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
    swapped._rec_run = cpu_graph(other.eval().for_inference(), engine.rec_size, engine.precision)
    nets = {"installed": engine.embed, "other": swapped.embed}
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    sets = identification_sets(pairs)
    gal_pairs = gallery_crops(index, cache, [p.a for p in pairs], engine.rec_size, mode="arcface")
    gal_id = gallery_crops(index, cache, sets.gallery_paths, engine.rec_size, mode="arcface")
    out: dict = {"student": str(args.student), "installed": engine.info.version, "pairs": len(pairs),
                 "precision": engine.info.params["precision"], "searches": int(sets.closed.size),
                 "gallery": len(sets.gallery_paths), "levels": {}}
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib")
        row, scores, top1 = {}, {}, {}
        for name, embed in nets.items():
            scores[name], top1[name], row[name] = held_out(embed(probes.rec_crop), embed(gal_pairs), embed(gal_id),
                                                           sets, same)
        row["other_vs_installed_auc"] = auc_difference(scores["other"], scores["installed"], same)
        row["other_vs_installed_rank_1"] = mcnemar(top1["other"], top1["installed"])
        out["levels"][level] = row
        print(level, json.dumps(row), flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
