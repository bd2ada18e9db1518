"""Would fusing two recognisers' scores by the probe's quality beat either alone? (issue 24: "fuse the scores by the
measured probe quality, a fitted, calibrated fusion, chosen on the calibration people")

For two model folders A and B (e.g. the SFace student and the project's CNN), each pair's product score of each
(what each product searches with, no audio; ``research.compare_models``' scores) and the probe's quality q (the
sharpness feature of the match calibration). A logistic z = w0 + wA sA + wB sB + q (v0 + vA sA + vB sB) is fitted
on the calibration pairs of all three levels together (Newton, as the match calibration is); on DevTest: accuracy
at z >= 0, ROC-AUC of z (DeLong's interval; paired against each model's own score), and rank-1 of gallery search
with the fused similarity (wA + vA q) sA + (wB + vB q) sB, beside each model alone with its own calibration; paired
tests (McNemar, DeLong) of A against B and of the fusion against A.

    .venv/bin/python -m research.score_fusion resources/models runs/models-old [--out research/score_fusion.json]

``research/score_fusion_mirror.json``: A = the SFace student embedding each face once (``recogniser.mirror`` false,
the bundle otherwise ff-2026-12-05-dada2dc4), B = the same averaged with the mirror image (as shipped); its
``a_vs_b`` entries are the paired tests of dropping the mirror image (its ``fused`` rows are not used).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.calibration import _newton, sharpness_feature
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import (
    engine_probes,
    gallery_embeddings,
    identification_sets,
    probe_sharpness,
    product_embeddings,
)
from forensic_face.training.metrics import auc_difference, auc_interval, mcnemar
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS


def _scores(engines, index, cache, pairs, tag: str) -> dict:
    """Per level: each engine's product scores of the pairs, the probes' sharpness, and the search similarities."""
    ident = identification_sets(pairs)
    out = {}
    gal = [gallery_embeddings(e, index, cache, [p.a for p in pairs]) for e in engines]
    id_gal = [gallery_embeddings(e, index, cache, ident.gallery_paths) for e in engines]
    for level in EVAL_LEVELS:
        row = {"s": [], "search": []}
        for e, g, ig in zip(engines, gal, id_gal, strict=True):
            probes = engine_probes(e, index, cache, pairs, level, tag)
            emb = product_embeddings(e, probes)
            row["s"].append((g * emb).sum(1))
            row["search"].append(emb[ident.closed] @ ig.T)
            row["sharp"] = probe_sharpness(probes)  # the autoencoder's crop: the same for both
        out[level] = row
    return out, ident


def _design(sa: np.ndarray, sb: np.ndarray, q: np.ndarray) -> np.ndarray:
    one = np.ones_like(sa)
    return np.stack([one, sa, sb, q, q * sa, q * sb], axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--out", type=Path, default=Path("research/score_fusion.json"))
    ap.add_argument("--dump", type=Path, help="also save every score (calibration and DevTest) to this .npz")
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engines = [FaceEngine(m, device="cpu") for m in (args.a, args.b)]
    calib, _ = _scores(engines, index, cache, split.calib_pairs, "calib")
    same_c = np.array([p.same for p in split.calib_pairs])
    q_all = np.concatenate([sharpness_feature(calib[lv]["sharp"]) for lv in EVAL_LEVELS])
    lo, hi = np.percentile(q_all, (1, 99))
    x = np.concatenate([_design(calib[lv]["s"][0], calib[lv]["s"][1], np.clip(sharpness_feature(calib[lv]["sharp"]),
                                                                              lo, hi)) for lv in EVAL_LEVELS])
    w = _newton(x, np.tile(same_c, len(EVAL_LEVELS)).astype(float), 1e-3, 50)
    test, ident = _scores(engines, index, cache, split.test_pairs, "test")
    same = np.array([p.same for p in split.test_pairs])
    if args.dump:
        np.savez(args.dump, same_calib=same_c, same_test=same, truth=ident.truth, closed=ident.closed,
                 **{f"{part}_{lv}_{k}": np.asarray(v) for part, d in (("calib", calib), ("test", test))
                    for lv in EVAL_LEVELS for k, v in d[lv].items()})
    report = {"weights": [round(float(v), 4) for v in w], "quality_range": [float(lo), float(hi)], "levels": {}}
    for lv in EVAL_LEVELS:
        t = test[lv]
        q = np.clip(sharpness_feature(t["sharp"]), lo, hi)
        z = _design(t["s"][0], t["s"][1], q) @ w
        own = [e.calibration.probability(s, t["sharp"]) >= 0.5 for e, s in zip(engines, t["s"], strict=True)]
        ra, rb = w[1] + w[4] * q[ident.closed], w[2] + w[5] * q[ident.closed]
        fused_search = ra[:, None] * t["search"][0] + rb[:, None] * t["search"][1]
        top1 = [s.argmax(1) == ident.truth for s in (*t["search"], fused_search)]
        row = {"accuracy": {n: round(float((d == same).mean()), 4)
                            for n, d in zip(("a", "b", "fused"), (*own, z >= 0), strict=True)},
               "roc_auc": {n: [round(v, 4) for v in auc_interval(s, same)]
                           for n, s in zip(("a", "b", "fused"), (*t["s"], z), strict=True)},
               "rank_1": {n: round(float(v.mean()), 4) for n, v in zip(("a", "b", "fused"), top1, strict=True)},
               "a_vs_b": {"accuracy": mcnemar(own[0] == same, own[1] == same),
                          "roc_auc": auc_difference(t["s"][0], t["s"][1], same),
                          "rank_1": mcnemar(top1[0], top1[1])},
               "fused_vs_a": {"accuracy": mcnemar((z >= 0) == same, own[0] == same),
                              "roc_auc": auc_difference(z, t["s"][0], same),
                              "rank_1": mcnemar(top1[2], top1[0])}}
        report["levels"][lv] = row
        print(lv, json.dumps({k: row[k] for k in ("accuracy", "rank_1", "roc_auc")}), flush=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
