"""Pair scores of the shipped bundle, for calibration research: the product's joined similarity and the probe's
sharpness for every calibration pair (with and without the voice) and every DevTest pair (no voice), at clean /
mild / severe, written to an .npz (calibration people and DevTest apart; nothing is fitted here).

    .venv/bin/python -m research.pair_scores --out /tmp/pair_scores.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import (
    engine_probes,
    gallery_embeddings,
    probe_audio,
    probe_sharpness,
    score_pairs,
)
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    out: dict[str, np.ndarray] = {}
    for tag, pairs in (("calib", split.calib_pairs), ("test", split.test_pairs)):
        out[f"{tag}_same"] = np.array([p.same for p in pairs])
        out[f"{tag}_person"] = np.array([p.b.split("/")[0] for p in pairs])
        gal = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
        audio, present = probe_audio(index, pairs, args.workers) if tag == "calib" else (None, None)
        for level in EVAL_LEVELS:
            probes = engine_probes(engine, index, cache, pairs, level, tag, args.workers)
            e_deg = engine.embed(probes.rec_crop)
            out[f"{tag}_{level}_sharp"] = probe_sharpness(probes)
            out[f"{tag}_{level}_none"] = score_pairs(engine, gal, probes, None, None, e_deg)["product"]
            if audio is not None:
                out[f"{tag}_{level}_voice"] = score_pairs(engine, gal, probes, audio, present, e_deg)["product"]
            print(tag, level, flush=True)
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
