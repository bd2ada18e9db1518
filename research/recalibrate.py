"""Refit a model bundle's match calibration and softmax temperature on the held-out calibration pairs
(never DevTest), keeping its weights and version: what ``forensic-face train`` does at export, for a
bundle exported before the calibration changed (here: the sharpness term of
forensic_face.models.calibration). The previous calibration is kept in the record.

    .venv/bin/python -m research.recalibrate resources/models
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import date
from pathlib import Path

from forensic_face.core.progress import console_progress
from forensic_face.engine.inference import FaceEngine
from forensic_face.models.bundle import save_calibration
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import calibrate
from forensic_face.training.split import load_split_data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path)
    args = ap.parse_args()
    progress = console_progress()
    index, split, cache = load_split_data(shared_data_dir() / "lfw", progress)
    engine = FaceEngine(args.models, device="cpu", precision="float32")  # as export_models fits it
    before = engine.meta.get("calibration")
    cal, info = calibrate(engine, index, cache, split.calib_pairs, 2, progress, split.calib_made)
    history = engine.meta.get("record", {}).get("calibration_history", [])
    save_calibration(args.models, cal, {"calibration_info": info, "calibration_history": [
        *history, {"replaced": date.today().isoformat(), "previous": before}]})
    print(json.dumps(cal.as_dict(), indent=2))
    engine = FaceEngine(args.models, device="cpu")
    print(f"model {engine.info.version}, calibration {engine.info.calibration_sha256[:16]}…")
    for q in cal.quality_range or ():
        print(f"q = {q:.3f}: 'same person' from similarity {cal.threshold(math.expm1(q)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
