"""Why the join loses at mild once a clip's frames are pooled (issue 24's open question): the companion's share of
pooled templates, measured on the calibration people's clips only (never DevTest).

For every frame of the calibration clips (``training.clip_eval``: 600 pairs, 16 frames each, the clip path's
detector, crops and fusion weights) the shipped join's two unit embeddings are made once (the student's of the face
as found, the companion's of the reconstruction, no audio); each frame's companion share l is the product's, from
its sharpness, times a scale (1 = the product; 0 = the student alone); frames are joined and made queries as the
engine does (``FaceEngine.join``), pooled with the tracker's weights (``clip_eval.pooled``), and scored against the
joined gallery. Per level and clip length: ROC-AUC of each scale, the paired DeLong test against scale 1, and
rank-1 of the calibration people's closed-set searches (their first images as the gallery, as the temperature is
fitted) with McNemar's test against scale 1; per level, each recogniser's spread of its frames' similarities to the
gallery face (the mean standard deviation within a clip, and the standard deviation of the clips' means, matched
and unmatched pairs together).

    .venv/bin/python -m research.companion.clip_share [--out research/companion/clip_share.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.paths import shared_data_dir
from forensic_face.training.clip_eval import CLIP_COUNTS, engine_clips, pooled
from forensic_face.training.evaluate import CalibrationSearches, gallery_embeddings
from forensic_face.training.metrics import auc_difference, mcnemar, roc_auc
from forensic_face.training.split import load_split_data
from forensic_face.vision.quality import sharpness

SCALES = (1.0, 0.5, 0.25, 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--levels", nargs="+", default=["mild", "severe"])
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(device="cpu")
    if engine.companion is None:
        raise SystemExit("the installed bundle has no companion")
    pairs = split.calib_pairs
    same = np.array([p.same for p in pairs])
    gal = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
    search = CalibrationSearches.of(engine, index, cache, pairs)
    d = int(engine.meta["rec"]["embed_dim"])
    report: dict = {"version": engine.info.version, "pairs": len(pairs), "scales": list(SCALES), "levels": {}}
    for level in args.levels:
        probes = engine_clips(engine, index, cache, pairs, level, "calib")
        p, f = probes.crop.shape[:2]
        crops = probes.crop.reshape(p * f, *probes.crop.shape[2:])
        found = probes.rec_crop.reshape(p * f, *probes.rec_crop.shape[2:])
        sharp = np.array([sharpness(c) for c in crops])
        recon = engine.reconstruct(crops)
        main, comp = engine.embed_parts(found, recon)
        product = engine.embed_searched(found, recon, main, sharp)
        base = engine.companion.probe_weights(sharp)
        lev: dict = {"mean_share": round(float(base.mean()), 4),
                     "frames_with_share": round(float((base > 0).mean()), 4), "by_frames": {}}
        # how far each recogniser's frame similarities to the gallery face spread within a clip and between clips
        g_main, g_comp = gal[:, :d], gal[:, d:]
        s_main = np.einsum("pfd,pd->pf", main.reshape(p, f, -1), g_main / np.linalg.norm(g_main, axis=1,
                                                                                          keepdims=True))
        s_comp = np.einsum("pfd,pd->pf", comp.reshape(p, f, -1), g_comp / np.linalg.norm(g_comp, axis=1,
                                                                                          keepdims=True))
        lev["frame_similarity_spread"] = {"student_sd_within_clip": round(float(s_main.std(1).mean()), 4),
                                          "companion_sd_within_clip": round(float(s_comp.std(1).mean()), 4),
                                          "student_sd_between_clips": round(float(s_main.mean(1).std()), 4),
                                          "companion_sd_between_clips": round(float(s_comp.mean(1).std()), 4)}
        scores_at: dict = {}
        first_at: dict = {}
        for scale in SCALES:
            share = (scale * base)[:, None]
            joined = np.concatenate([np.sqrt(1 - share) * main, np.sqrt(share) * comp], axis=1).astype(np.float32)
            emb = engine.query(joined)
            if scale == 1.0:
                lev["product_max_difference"] = float(np.abs(emb - product).max())
            emb = emb.reshape(p, f, -1)
            for n in CLIP_COUNTS:
                templates, _ = pooled(emb, probes.quality, n, engine.pooling_at(1.0))
                scores_at[(scale, n)] = (gal * templates).sum(1)
                first_at[(scale, n)] = (templates[search.matched] @ search.gallery.T).argmax(1) == search.truth
        for n in CLIP_COUNTS:
            row = {}
            for scale in SCALES:
                s = scores_at[(scale, n)]
                first = first_at[(scale, n)]
                row[str(scale)] = {"auc": round(roc_auc(s, same), 4), "rank_1": round(float(first.mean()), 4)}
                if scale != 1.0:
                    row[str(scale)]["minus_product"] = auc_difference(s, scores_at[(1.0, n)], same)
                    row[str(scale)]["rank_1_against_product"] = mcnemar(first, first_at[(1.0, n)])
            lev["by_frames"][str(n)] = row
            print(f"{level} {n:2d} frames: " + ", ".join(
                f"scale {k}: AUC {v['auc']:.4f}" + (f" ({v['minus_product']['difference']:+.4f}, p = "
                                                     f"{v['minus_product']['p_value']:.2g})" if "minus_product" in v
                                                     else "") + f", rank-1 {v['rank_1']:.3f}"
                + (f" (p = {v['rank_1_against_product']['p_value']:.2g})" if "minus_product" in v else "")
                for k, v in row.items()) + f" ({len(search.matched)} searches)", flush=True)
        print(f"{level}: {lev['frame_similarity_spread']}, mean share {lev['mean_share']}, "
              f"product reproduced to {lev['product_max_difference']:.1e}", flush=True)
        report["levels"][level] = lev
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
