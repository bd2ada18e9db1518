"""Score a trained model folder on the held-out calibration pairs (never DevTest), as the model card's
"full run" table does: ROC-AUC of reconstruction-to-gallery cosine (no audio) at clean/mild/severe, and
reconstruction PSNR against the clean face beside bicubic upsampling. Used to choose between full runs
before one is evaluated on DevTest.

    .venv/bin/python -m research.score_calibration runs/models48 --name "48 px" --settings "--size 48" \
        --append resources/models/hp_search.json

A trial file of ``research/gpu_search.py`` (``trial-NAME.pt``) scores as well (the networks without
their match calibration, which the scores do not use); several trials score in one process, each
row named after its file:

    .venv/bin/python -m research.score_calibration /work/.device/1/trial-*.pt --append resources/models/hp_search.json \
        --key gpu_trials
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.core.progress import console_progress
from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import gallery_crops, probe_set, score_pairs
from forensic_face.training.metrics import psnr, roc_auc
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import DEGRADED_LEVELS, EVAL_LEVELS


def trial_engine(path: Path, folder: Path) -> tuple[FaceEngine, dict]:
    """The networks of a gpu_search trial file as an engine (no match calibration) and its record."""
    from forensic_face.models.bundle import save_bundle
    from forensic_face.training.pack import trial_networks

    ae, rec, record = trial_networks(path)
    save_bundle(folder, ae, rec, None, record)
    return FaceEngine(folder, device="cpu"), record


def training_seconds(record: dict) -> float:
    """Seconds of training as the sum of the epochs (``train_seconds`` counts only a resumed run's last session)."""
    history = record.get("history", [])
    return round(sum(h["seconds"] for h in history)) if history else record.get("train_seconds", float("nan"))


def score(engine: FaceEngine, index, cache, pairs, reconstruction_only: bool = False, tag: str = "calib") -> dict:
    """Calibration-pair ROC-AUC (reconstruction vs clean gallery, no audio) per level; PSNR beside bicubic.

    ``reconstruction_only``: PSNR alone (an autoencoder-only trial, whose recogniser is untrained).
    ``tag`` names the probes' disk cache (other pairs than the calibration pairs need their own)."""
    same = np.array([p.same for p in pairs])
    size = engine.size
    gal = None if reconstruction_only else engine.embed(gallery_crops(index, cache, [p.a for p in pairs], size))
    clean_b = gallery_crops(index, cache, [p.b for p in pairs], size)
    row = {}
    for level in EVAL_LEVELS if not reconstruction_only else DEGRADED_LEVELS:
        probes = probe_set(index, cache, pairs, level, size, tag, 2, console_progress(label="probes "))
        if not reconstruction_only:
            row[f"calib_auc_{level}"] = round(roc_auc(score_pairs(engine, gal, probes, None, None)["recon"], same),
                                              3)
        if level != "clean":
            recon = engine.reconstruct(probes.crop_clean_geom)
            row[f"calib_psnr_{level}"] = round(float(psnr(recon, clean_b).mean()), 2)
            row[f"calib_bicubic_{level}"] = round(float(psnr(probes.crop_clean_geom, clean_b).mean()), 2)
    return row


def main() -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", help="model folder (models.pt + models.json), or gpu_search trial files")
    ap.add_argument("--name", help="the row's name (one model folder); trial rows are named after the file")
    ap.add_argument("--settings", default="")
    ap.add_argument("--append", help="hp_search.json to add the rows to")
    ap.add_argument("--key", default="full_runs", help="list of hp_search.json the rows go to")
    ap.add_argument("--reconstruction-only", action="store_true",
                    help="PSNR alone, no AUC (autoencoder-only trials: their recogniser is untrained)")
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw", console_progress(label="faces "))
    rows = []
    for model in map(Path, args.models):
        if model.suffix == ".pt":
            with tempfile.TemporaryDirectory() as tmp:
                engine, record = trial_engine(model, Path(tmp))
                row = {"run": model.stem.removeprefix("trial-"), "settings": record.get("overrides", {}),
                       "train_s": record.get("train_seconds"), "device": record.get("gpu") or record.get("device"),
                       "steps": record.get("steps"), "params": record.get("params"),
                       **score(engine, index, cache, split.calib_pairs, args.reconstruction_only)}
        else:
            engine = FaceEngine(model, device="cpu")
            record = json.loads((model / "models.json").read_text()).get("record", {})
            row = {"run": args.name or model.name, "settings": args.settings, "train_s": training_seconds(record),
                   **score(engine, index, cache, split.calib_pairs, args.reconstruction_only)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.append:
        path = Path(args.append)
        saved = json.loads(path.read_text())
        names = {r["run"] for r in rows}
        saved[args.key] = [r for r in saved.get(args.key, []) if r["run"] not in names] + rows
        path.write_text(json.dumps(saved, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
