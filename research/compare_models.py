"""Paired comparison of two model folders on the same probes: accuracy at each model's own calibrated
threshold, ROC-AUC and the mean cosine of same-person and different-person pairs, per level, on the
calibration pairs and on the DevTest pairs (reconstruction vs clean gallery, no audio), with McNemar's
exact test on the pairs that one model gets right and the other wrong, and the paired DeLong test of
the AUC difference (forensic_face.training.metrics).

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
from forensic_face.training.evaluate import gallery_crops, probe_set, probe_sharpness, score_pairs
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
    if engines[0].size != engines[1].size:
        raise SystemExit("the two models take different input sizes")
    size = engines[0].size
    sets = [("calibration", split.calib_pairs)] + ([] if args.calibration_only else [("DevTest", split.test_pairs)])
    for tag, pairs in sets:
        same = np.array([p.same for p in pairs])
        gallery = gallery_crops(index, cache, [p.a for p in pairs], size)
        gallery_emb = [e.embed(gallery) for e in engines]
        for level in EVAL_LEVELS:
            probes = probe_set(index, cache, pairs, level, size, "calib" if tag == "calibration" else "test", 2, None)
            right, text, scores = [], [], []
            for name, e, g in zip("AB", engines, gallery_emb, strict=True):
                s = score_pairs(e, g, probes, None, None)["recon"]
                ok = (e.calibration.probability(s, probe_sharpness(probes)) >= 0.5) == same
                right.append(ok)
                scores.append(s)
                text.append(f"{name}: accuracy {ok.mean():.3f}, AUC {roc_auc(s, same):.4f}, mean cosine same "
                            f"{s[same].mean():.3f} / different {s[~same].mean():.3f}")
            m = mcnemar(right[0], right[1])
            d = auc_difference(scores[0], scores[1], same)
            print(f"{tag} {level} ({len(pairs)} pairs) | {text[0]} | {text[1]} | right only with A {m['a_only']}, "
                  f"only with B {m['b_only']}, McNemar p = {m['p_value']:.3f} | AUC A - B {d['difference']:+.4f} "
                  f"(95 % {d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}), DeLong p = {d['p_value']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
