"""Would normalising gallery search scores raise DevTest rank-1 (issue 24: 70 % mild, 30 % severe asked)?

Hubness (some gallery faces near many degraded probes) is a known cause of rank-1 errors with degraded
probes. On the shipped bundle's DevTest identification set (gallery of 696, 561 closed-set searches, as
``forensic-face evaluate`` searches: the product's joined queries, no audio) this compares rank-1 of the plain
scores with:

- ``centred a, h``: the query less ``a`` times the mean query of the calibration people's probes of similar
  sharpness (Gaussian kernel of bandwidth ``h`` in q = log(1 + sharpness); no level labels used); inner-product
  search stays possible;
- gallery-side normalisation against a cohort of the calibration probes *of the same level* (the level known: an
  upper bound on what a quality-matched cohort could give): ``z`` = (s - mean) / std of each gallery face's
  similarities to the cohort, ``mean only``, and ``top-50 mean`` (s less the mean of the gallery face's 50 best
  cohort similarities).

Calibration people only for the cohort; nothing fitted on DevTest. Prints JSON; asserts nothing.

    .venv/bin/python -m research.gallery_norm [--models resources/models]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.calibration import sharpness_feature
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import (
    engine_probes,
    gallery_embeddings,
    identification_sets,
    probe_sharpness,
    product_embeddings,
)
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    sets = identification_sets(split.test_pairs)
    gallery = gallery_embeddings(engine, index, cache, sets.gallery_paths)
    c, t = sets.closed, sets.truth

    def rank1(scores: np.ndarray) -> float:
        return round(float(((scores[c] > scores[c, t][:, None]).sum(1) == 0).mean()), 4)

    test, cohort = {}, {}
    for level in EVAL_LEVELS:
        tp = engine_probes(engine, index, cache, split.test_pairs, level, "test")
        cp = engine_probes(engine, index, cache, split.calib_pairs, level, "calib")
        test[level] = (product_embeddings(engine, tp), sharpness_feature(probe_sharpness(tp)))
        cohort[level] = (product_embeddings(engine, cp), sharpness_feature(probe_sharpness(cp)))
    pooled = np.concatenate([cohort[lv][0] for lv in EVAL_LEVELS])
    pooled_q = np.concatenate([cohort[lv][1] for lv in EVAL_LEVELS])
    out: dict = {}
    for level in EVAL_LEVELS:
        emb, q = test[level]
        row = {"plain": rank1(emb @ gallery.T)}
        for h in (0.3, 1.0):
            k = np.exp(-0.5 * ((q[:, None] - pooled_q[None, :]) / h) ** 2)
            mean_query = (k @ pooled) / k.sum(1, keepdims=True)
            for a in (0.5, 1.0):
                row[f"centred a {a:g}, h {h:g}"] = rank1((emb - a * mean_query) @ gallery.T)
        coh = cohort[level][0] @ gallery.T  # (cohort probes, gallery)
        s = emb @ gallery.T
        row["z (cohort of the level)"] = rank1((s - coh.mean(0)) / coh.std(0))
        row["mean only (cohort of the level)"] = rank1(s - coh.mean(0))
        row["top-50 mean (cohort of the level)"] = rank1(s - np.sort(coh, 0)[-50:].mean(0))
        out[level] = row
    print(json.dumps({"models": engine.info.version, "searches": int(c.size), "gallery": len(sets.gallery_paths),
                      "rank_1": out}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
