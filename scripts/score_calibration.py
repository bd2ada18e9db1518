"""Score a trained model folder on the held-out calibration pairs (never DevTest), as the model card's
"full run" table does: ROC-AUC of reconstruction-to-gallery cosine (no audio) at clean/mild/severe, and
reconstruction PSNR against the clean face beside bicubic upsampling. Used to choose between full runs
before one is evaluated on DevTest.

    .venv/bin/python scripts/score_calibration.py runs/models48 --name "48 px" --settings "--size 48" \
        --append resources/models/hp_search.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.core.progress import console_progress
from forensic_face.models.engine import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import gallery_crops, probe_set, score_pairs
from forensic_face.training.lfw import build_face_cache, index_folder
from forensic_face.training.metrics import psnr, roc_auc
from forensic_face.training.split import make_split


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", help="model folder (models.pt + models.json)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--settings", default="")
    ap.add_argument("--append", help="hp_search.json to add the row to (under full_runs)")
    args = ap.parse_args()
    engine = FaceEngine(args.models, device="cpu")
    meta = json.loads((Path(args.models) / "models.json").read_text())
    index = index_folder(shared_data_dir() / "lfw")
    split = make_split(index, 0)
    cache = build_face_cache(index, console_progress(label="faces "), with_teacher=True, workers=2)
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    size = engine.size
    gal = engine.embed(gallery_crops(index, cache, [p.a for p in pairs], size))
    clean_b = gallery_crops(index, cache, [p.b for p in pairs], size)
    row = {"run": args.name, "settings": args.settings,
           "train_s": round(meta.get("record", {}).get("train_seconds", float("nan")))}
    for level in ("clean", "mild", "severe"):
        probes = probe_set(index, cache, pairs, level, size, "calib", 2, console_progress(label="probes "))
        row[f"calib_auc_{level}"] = round(roc_auc(score_pairs(engine, gal, probes, None, None)["recon"], same), 3)
        if level != "clean":
            recon = engine.reconstruct(probes.crop_clean_geom)
            row[f"calib_psnr_{level}"] = round(float(psnr(recon, clean_b).mean()), 2)
            row[f"calib_bicubic_{level}"] = round(float(psnr(probes.crop_clean_geom, clean_b).mean()), 2)
    print(json.dumps(row))
    if args.append:
        path = Path(args.append)
        saved = json.loads(path.read_text())
        saved["full_runs"] = [r for r in saved.get("full_runs", []) if r["run"] != args.name] + [row]
        path.write_text(json.dumps(saved, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
