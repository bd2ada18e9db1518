"""Paired comparison of two model folders on the same probes: accuracy at each model's own calibrated
threshold, ROC-AUC and the mean cosine of same-person and different-person pairs, per level, on the
calibration pairs and on the DevTest pairs (each model's product scores against the clean gallery, no audio:
the reconstruction's embedding, or the face's for a recogniser of the face as found), with McNemar's
exact test on the pairs that one model gets right and the other wrong, and the paired DeLong test of
the AUC difference (forensic_face.training.metrics); on DevTest also rank-1 of gallery search (the 696-person
gallery of the evaluation) with McNemar's test on the searches.

    .venv/bin/python -m research.compare_models resources/models runs/models6 [--calibration-only]

Reads the probe caches that ``forensic-face evaluate`` and ``research/score_calibration.py`` write (makes
them when missing).
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
    identification_sets,
    probe_sharpness,
    product_embeddings,
    score_pairs,
)
from forensic_face.training.metrics import auc_difference, mcnemar, roc_auc
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="model folder A")
    ap.add_argument("b", type=Path, help="model folder B")
    ap.add_argument("--calibration-only", action="store_true",
                    help="only the calibration pairs (to choose between models without looking at DevTest)")
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engines = [FaceEngine(m, device="cpu") for m in (args.a, args.b)]
    sets = [("calibration", split.calib_pairs)] + ([] if args.calibration_only else [("DevTest", split.test_pairs)])
    for tag, pairs in sets:
        same = np.array([p.same for p in pairs])
        gallery_emb = [gallery_embeddings(e, index, cache, [p.a for p in pairs]) for e in engines]
        ident = identification_sets(pairs)
        id_gallery = [gallery_embeddings(e, index, cache, ident.gallery_paths) for e in engines]
        for level in EVAL_LEVELS:
            kind = "calib" if tag == "calibration" else "test"
            right, text, scores, top1 = [], [], [], []
            for name, e, g, ig in zip("AB", engines, gallery_emb, id_gallery, strict=True):
                probes = engine_probes(e, index, cache, pairs, level, kind)
                s = score_pairs(e, g, probes, None, None)["product"]
                ok = (e.calibration.probability(s, probe_sharpness(probes)) >= 0.5) == same
                right.append(ok)
                scores.append(s)
                sims = product_embeddings(e, probes, ident.closed) @ ig.T
                top1.append(sims.argmax(1) == ident.truth)
                text.append(f"{name}: accuracy {ok.mean():.3f}, AUC {roc_auc(s, same):.4f}, "
                            f"rank-1 {top1[-1].mean():.3f}, mean cosine same {s[same].mean():.3f} / "
                            f"different {s[~same].mean():.3f}")
            m = mcnemar(right[0], right[1])
            r = mcnemar(top1[0], top1[1])
            d = auc_difference(scores[0], scores[1], same)
            print(f"{tag} {level} ({len(pairs)} pairs) | {text[0]} | {text[1]} | right only with A {m['a_only']}, "
                  f"only with B {m['b_only']}, McNemar p = {m['p_value']:.2g} | AUC A - B {d['difference']:+.4f} "
                  f"(95 % {d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}), DeLong p = {d['p_value']:.2g} | rank-1 "
                  f"({len(ident.closed)} searches) first only with A {r['a_only']}, only with B {r['b_only']}, "
                  f"McNemar p = {r['p_value']:.2g}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
