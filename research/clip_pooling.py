"""Which pooling of a clip's frames recognises best, measured on the calibration people's clips (never DevTest).

Reads the clips ``forensic-face evaluate --clips`` made and cached (``clip_probes``, tag "calib"), embeds every frame's
reconstruction with the shipped models, pools the first N frames of each clip in several ways and scores each on the
calibration pairs: ROC-AUC of the pooled template against the pair's clean first image, and rank-1 of the matched
probes among the calibration people (one clean image each).

    .venv/bin/python -m research.clip_pooling [--frames 8] [--out clip_pooling.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.clip_eval import clip_probes, frame_embeddings, frame_weights
from forensic_face.training.evaluate import CalibrationSearches, gallery_crops
from forensic_face.training.metrics import auc_interval
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def _pool(emb: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = np.where(w.sum(1, keepdims=True) > 0, w, 1.0)
    t = (w[:, :, None] * emb).sum(1)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def poolings(quality: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Weights (P, n) of each pooling compared."""
    q = {k: v[:, :n] for k, v in quality.items()}
    w = frame_weights(q)
    found = q["found"] > 0
    return {"quality weights (shipped)": w, "equal": np.ones_like(w), "quality weights squared": w ** 2,
            "detected frames only, equal": found.astype(float), "quality weights, detected frames only": w * found,
            "sharpness only": q["crop_sharpness"] / (q["crop_sharpness"] + 30.0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--out")
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    pairs = split.calib_pairs
    engine = FaceEngine(device="cpu")
    gal = engine.embed(gallery_crops(index, cache, [p.a for p in pairs], engine.size))
    same = np.array([p.same for p in pairs])
    search = CalibrationSearches.of(engine, index, cache, pairs)
    report: dict = {"frames": args.frames, "pairs": len(pairs), "people": len(search.pos), "levels": {}}
    for level in EVAL_LEVELS[1:]:
        probes = clip_probes(index, cache, pairs, level, engine.size, engine.alignment, "calib")
        emb = frame_embeddings(engine, probes)[:, :args.frames]
        rows = {}
        for name, w in poolings(probes.quality, args.frames).items():
            t = _pool(emb, w)
            auc, lo, hi = auc_interval((gal * t).sum(1), same)
            sims = t[search.matched] @ search.gallery.T
            rows[name] = {"roc_auc": round(auc, 4), "roc_auc_95": [round(lo, 4), round(hi, 4)],
                          "rank_1": round(float((sims.argmax(1) == search.truth).mean()), 4)}
        report["levels"][level] = rows
    text = json.dumps(report, indent=2)
    if args.out:
        open(args.out, "w").write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
