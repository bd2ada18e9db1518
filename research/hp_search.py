"""Small hyperparameter search: equal CPU-time budget per trial, scored on held-out calibration people.

Each trial trains from scratch for ``--budget`` seconds on the full training set, then scores the
held-out calibration pairs (never DevTest) at the ``mild`` and ``severe`` levels: ROC-AUC of the
cosine similarity between the clean gallery face and the reconstructed probe (no audio), and the
reconstruction PSNR. Results go to a JSON file that the model card quotes.

    .venv/bin/python -m research.hp_search --budget 150 --out resources/models/hp_search.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from forensic_face.core.progress import console_progress
from forensic_face.engine.inference import FaceEngine
from forensic_face.models.bundle import save_bundle
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import gallery_crops, probe_set, score_pairs
from forensic_face.training.metrics import psnr, roc_auc
from forensic_face.training.train import TrainConfig, load_checkpoint, prepare, train
from forensic_face.vision.degrade import DEGRADED_LEVELS, EVAL_LEVELS

TRIALS = {
    "base": {},
    "lr 5e-3": {"lr": 5e-3},
    "lr 1e-3": {"lr": 1e-3},
    "batch 48": {"batch": 48},
    "rec width 48": {"rec_width": 48},
    "ae width 24": {"ae_width": 24},
    "size 48": {"size": 48},
    "size 80": {"size": 80},
    "base (rerun with the size trials)": {},
}
# second round (2026-11-26, evening): short complete schedules from the defaults of the time
TRIALS2 = {
    "shipped defaults, raw teacher": {"teacher_centre": False},
    "centred teacher": {},
    "centred, distill x4": {"distill_weight": 4.0},
    "centred, distill x4, relation 4": {"distill_weight": 4.0, "relation_weight": 4.0},
    "centred, distill x4, no ArcFace": {"distill_weight": 4.0, "arc_weight": 0.0},
    "centred, distill x16": {"distill_weight": 16.0},
    "centred, distill x4, autoencoder on MSE only": {"distill_weight": 4.0, "id_weight": 0.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=float, default=150.0, help="training seconds per trial")
    ap.add_argument("--out", default="hp_search.json")
    ap.add_argument("--trials", nargs="*")
    ap.add_argument("--round", type=int, choices=[1, 2], default=1,
                    help="1: equal wall time from the first base; 2: a complete short schedule (--epochs) from "
                         "the defaults of the second round")
    ap.add_argument("--epochs", type=int, default=4, help="round 2: epochs per trial")
    args = ap.parse_args()
    data = shared_data_dir() / "lfw"
    if args.round == 1:
        # the search's base point (the shipped defaults were chosen from its results)
        base = TrainConfig(epochs=1000, time_limit_s=args.budget, warmup_steps=20, lr=2e-3, rec_width=32,
                           variants=4, ae_epochs=0, rec_epochs=0)
        table, key = TRIALS, "trials"
    else:
        # the defaults these trials started from (the shipped defaults then chose distill 16, id weight 0)
        base = TrainConfig(epochs=args.epochs, warmup_steps=20, distill_weight=1.0, id_weight=0.1, ae_epochs=0,
                           rec_epochs=0)
        table, key = TRIALS2, "trials_round2"
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.is_file() else {}
    results = saved.get(key, [])  # resume an interrupted search (or add trials to a finished one)
    done = {r["trial"] for r in results}
    for name in [t for t in (args.trials or list(table)) if t not in done]:
        cfg = replace(base, **table[name])
        prep = prepare(data, cfg, workers=2, progress=console_progress(label="prep "))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rec = train(data, Path(tmp), cfg, prep=prep, progress=console_progress(label=f"{name} "))
            ae, net, record = load_checkpoint(Path(tmp) / "checkpoint.pt")
            save_bundle(Path(tmp) / "m", ae, net, None, {"date": "trial"})
            engine = FaceEngine(Path(tmp) / "m", device="cpu")
            pairs = prep.split.calib_pairs
            same = np.array([p.same for p in pairs])
            gal = engine.embed(gallery_crops(prep.index, prep.cache, [p.a for p in pairs], cfg.size))
            clean_b = gallery_crops(prep.index, prep.cache, [p.b for p in pairs], cfg.size)
            row = {"trial": name, "changes": table[name], "steps": rec["steps"],
                   "samples_seen": rec["steps"] * cfg.batch, "train_s": rec["train_seconds"]}
            for level in DEGRADED_LEVELS if args.round == 1 else EVAL_LEVELS:
                probes = probe_set(prep.index, prep.cache, pairs, level, cfg.size, "calib", 2,
                                   console_progress(label="probes "))
                s = score_pairs(engine, gal, probes, None, None)
                row[f"auc_{level}"] = round(roc_auc(s["recon"], same), 4)
                if level == "clean":
                    continue
                row[f"psnr_{level}"] = round(float(psnr(engine.reconstruct(probes.crop_clean_geom), clean_b).mean()), 2)
                row[f"bicubic_psnr_{level}"] = round(float(psnr(probes.crop_clean_geom, clean_b).mean()), 2)
            row["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
        if args.round == 1:
            saved.update({"budget_s": args.budget, "base": asdict(base), "scored_on":
                           "held-out calibration pairs (600, people disjoint from training and DevTest)",
                           "trials": results})
        else:
            saved.update({"round2_base": asdict(base), key: results})
        out.write_text(json.dumps(saved, indent=2))  # keeps the notes written beside the trials


if __name__ == "__main__":
    main()
