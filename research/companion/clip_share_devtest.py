"""The pooled companion share chosen on the calibration clips (the clip calibration's ``companion_share``), held
against each frame's own share on the DevTest clips: paired tests of what ``evaluate --clips`` reports only as
two separate runs.

The DevTest clips of ``training.clip_eval`` (1,000 pairs, 16 frames each, the clip path's detector, crops and
fusion weights; ``evaluate_clips``'s cached probes) are embedded once as the product embeds them; templates of 4, 8
and 16 frames are pooled at the installed bundle's scale and at 1 (each frame's own share). Per level and length:
pair ROC-AUC with the paired DeLong test, closed-set rank-1 on the 696-person DevTest gallery (561 searches) with
McNemar's test, and one-to-one accuracy, each read with its own clip calibration (the installed one; for scale 1
the one stored in ``--before``, the bundle's models.json as it was before the share was chosen), McNemar's test.
At the installed scale the figures are ``evaluation_clips.json``'s, and at 1 those of the evaluation before the
scale was chosen (compared by hand on the run recorded in ``clip_share_devtest.json``).

    .venv/bin/python -m research.companion.clip_share_devtest --before OLD_MODELS_JSON \\
        [--out research/companion/clip_share_devtest.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.calibration import MatchCalibration
from forensic_face.paths import shared_data_dir
from forensic_face.training.clip_eval import engine_clips, frame_embeddings, pooled
from forensic_face.training.evaluate import gallery_embeddings, identification_sets
from forensic_face.training.metrics import auc_difference, mcnemar, roc_auc
from forensic_face.training.split import load_split_data

COUNTS = (4, 8, 16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="models.json with the clip calibration of scale 1")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--levels", nargs="+", default=["mild", "severe"])
    args = ap.parse_args()
    before = json.loads(args.before.read_text())["clip_calibration"]
    if before.get("companion_share", 1.0) != 1.0:
        raise SystemExit(f"{args.before}: its clip calibration is not of scale 1")
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(device="cpu")
    if engine.companion is None or engine.pooled_share == 1.0:
        raise SystemExit("the installed bundle pools frames at their own companion share: nothing to compare")
    cals = {engine.pooled_share: engine.clip_calibration, 1.0: MatchCalibration.from_dict(before)}
    pairs = split.test_pairs
    same = np.array([p.same for p in pairs])
    gal = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
    sets = identification_sets(pairs)
    id_gal = gallery_embeddings(engine, index, cache, sets.gallery_paths)
    report: dict = {"version": engine.info.version, "pairs": len(pairs), "searches": int(sets.closed.size),
                    "gallery_people": len(sets.gallery_paths), "chosen": engine.pooled_share, "levels": {}}
    for level in args.levels:
        probes = engine_clips(engine, index, cache, pairs, level, "test")
        emb = frame_embeddings(engine, probes)
        lev: dict = {}
        for n in COUNTS:
            scores, first, right = {}, {}, {}
            for scale, cal in cals.items():
                templates, q = pooled(emb, probes.quality, n, engine.pooling_at(scale))
                scores[scale] = (gal * templates).sum(1)
                right[scale] = (cal.probability(scores[scale], q) >= 0.5) == same
                sims = templates[sets.closed] @ id_gal.T
                first[scale] = (sims > sims[np.arange(len(sims)), sets.truth][:, None]).sum(1) == 0
            s = engine.pooled_share
            row = {"auc": {str(k): round(roc_auc(v, same), 4) for k, v in scores.items()},
                   "auc_difference": auc_difference(scores[s], scores[1.0], same),
                   "rank_1": {str(k): round(float(v.mean()), 4) for k, v in first.items()},
                   "rank_1_test": mcnemar(first[s], first[1.0]),
                   "accuracy": {str(k): round(float(v.mean()), 4) for k, v in right.items()},
                   "accuracy_test": mcnemar(right[s], right[1.0])}
            lev[str(n)] = row
            print(f"{level} {n:2d} frames: AUC {row['auc'][str(s)]:.4f} against {row['auc']['1.0']:.4f} "
                  f"(p = {row['auc_difference']['p_value']:.2g}); rank-1 {row['rank_1'][str(s)]:.3f} against "
                  f"{row['rank_1']['1.0']:.3f} (p = {row['rank_1_test']['p_value']:.2g}); accuracy "
                  f"{row['accuracy'][str(s)]:.3f} against {row['accuracy']['1.0']:.3f} "
                  f"(p = {row['accuracy_test']['p_value']:.2g})", flush=True)
        report["levels"][level] = lev
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
