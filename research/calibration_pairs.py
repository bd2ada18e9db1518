"""Does the match logistic gain from more calibration pairs? The shipped calibration is fitted on the 600 pairs drawn
(seed 0) from LFW's pairsDevTrain, 300 of them matched: about 300 scores per level that fix the clean threshold. The
800 calibration people hold 2,807 images (405 people with two or more), so many more pairs can be made among them
without touching a training or DevTest person. This script makes such pairs (written here first; now the product's
``split.made_pairs``: up to 6 matched pairs per person, as many mismatched pairs of two calibration people, none
already drawn; adopted by the rule below, so the split holds them as ``calib_made``), scores them with
the installed bundle as the calibration scores its pairs (the joined similarity and the probe's sharpness, with and
without the voice, at clean / mild / severe; the degraded copies seeded by their place after the 600), and writes
the scores (``score``). ``judge`` then applies the rule fixed in ``research/calibration_pairs_rule.txt`` (written
before any DevTest figure of a refit was seen) and reports DevTest accuracy of both fits from the scores of
``research/pair_scores.py``.

    .venv/bin/python -m research.calibration_pairs score --out /tmp/calib_pairs.npz            # ~20-30 min
    .venv/bin/python -m research.calibration_pairs judge --scores /tmp/calib_pairs.npz --devtest /tmp/pair_scores.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from forensic_face.models.calibration import MatchCalibration, fit_logistic
from forensic_face.vision.degrade import EVAL_LEVELS


def score(args: argparse.Namespace) -> None:
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

    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    pairs = split.calib_pairs + list(split.calib_made)
    engine = FaceEngine(args.models, device="cpu", precision="float32")  # as the calibration is fitted
    out: dict[str, np.ndarray] = {"same": np.array([p.same for p in pairs]),
                                  "person_a": np.array([p.a.split("/")[0] for p in pairs]),
                                  "person_b": np.array([p.b.split("/")[0] for p in pairs]),
                                  "drawn": np.arange(len(pairs)) < len(split.calib_pairs)}
    print(f"{len(pairs)} pairs ({len(split.calib_pairs)} drawn, {int(out['same'].sum())} matched)", flush=True)
    gal = gallery_embeddings(engine, index, cache, [p.a for p in pairs])
    audio, present = probe_audio(index, pairs, args.workers)
    for level in EVAL_LEVELS:
        probes = engine_probes(engine, index, cache, pairs, level, "calib", args.workers)
        e_deg = engine.embed(probes.rec_crop)
        out[f"{level}_sharp"] = probe_sharpness(probes)
        out[f"{level}_none"] = score_pairs(engine, gal, probes, None, None, e_deg)["product"]
        out[f"{level}_voice"] = score_pairs(engine, gal, probes, audio, present, e_deg)["product"]
        print(level, flush=True)
    np.savez(args.out, **out)


def _fit(z, rows: np.ndarray) -> MatchCalibration:
    """The match logistic as ``calibrate`` fits it: every level, with and without the voice, pooled."""
    sims, ys, sharp = [], [], []
    for level in EVAL_LEVELS:
        for cond in ("voice", "none"):
            sims.append(z[f"{level}_{cond}"][rows])
            ys.append(z["same"][rows])
            sharp.append(z[f"{level}_sharp"][rows])
    weights, quality_range = fit_logistic(np.concatenate(sims), np.concatenate(ys), np.concatenate(sharp))
    return MatchCalibration(weights=weights, temperature=1.0, n_pairs=int(rows.sum()), n_searches=0,
                            quality_range=quality_range)


def _log_likelihood(cal: MatchCalibration, z, rows: np.ndarray) -> tuple[float, int]:
    total, n = 0.0, 0
    for level in EVAL_LEVELS:
        for cond in ("voice", "none"):
            p = np.clip(cal.probability(z[f"{level}_{cond}"][rows], z[f"{level}_sharp"][rows]), 1e-9, 1 - 1e-9)
            y = z["same"][rows]
            total += float(np.sum(np.where(y, np.log(p), np.log(1 - p))))
            n += int(rows.sum())
    return total, n


def judge(args: argparse.Namespace) -> None:
    z = dict(np.load(args.scores))
    drawn = z["drawn"]
    people = np.array(sorted(set(z["person_a"]) | set(z["person_b"])))
    fold_of = {q: k for k, q in enumerate(np.random.default_rng(0).permutation(people))}
    fold_a = np.array([fold_of[q] % args.folds for q in z["person_a"]])
    fold_b = np.array([fold_of[q] % args.folds for q in z["person_b"]])
    cv = {"drawn only": [0.0, 0], "drawn and generated": [0.0, 0]}
    for f in range(args.folds):
        held = ((fold_a == f) | (fold_b == f)) & drawn  # the drawn pairs of a held-out person
        train = (fold_a != f) & (fold_b != f)  # pairs with neither person held out
        for name, rows in (("drawn only", train & drawn), ("drawn and generated", train)):
            ll, n = _log_likelihood(_fit(z, rows), z, held)
            cv[name][0] += ll
            cv[name][1] += n
    result = {"pairs": {"drawn": int(drawn.sum()), "generated": int((~drawn).sum()),
                        "generated_matched": int((z["same"] & ~drawn).sum())},
              "cv_mean_log_likelihood": {k: round(v[0] / v[1], 5) for k, v in cv.items()},
              "cv_scores": {k: v[1] for k, v in cv.items()}}
    better = result["cv_mean_log_likelihood"]["drawn and generated"] > result["cv_mean_log_likelihood"]["drawn only"]
    result["rule_met"] = bool(better)
    fits = {"drawn only": _fit(z, drawn), "drawn and generated": _fit(z, np.ones_like(drawn))}
    result["fits"] = {k: {"weights": [round(w, 4) for w in c.weights], "quality_range": c.quality_range,
                          "threshold_sharpest": round(c.threshold(1e9), 4),
                          "threshold_blurriest": round(c.threshold(0.0), 4)} for k, c in fits.items()}
    if args.devtest is not None:
        t = np.load(args.devtest)
        same = t["test_same"]
        result["devtest_accuracy"] = {
            k: {level: round(float(((c.probability(t[f"test_{level}_none"], t[f"test_{level}_sharp"]) >= 0.5)
                                    == same).mean()), 4) for level in EVAL_LEVELS} for k, c in fits.items()}
        result["devtest_clean_threshold_median"] = {
            k: round(float(np.median([c.threshold(s) for s in t["test_clean_sharp"]])), 4) for k, c in fits.items()}
    print(json.dumps(result, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score")
    s.add_argument("--models", type=Path, default=Path("resources/models"))
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--workers", type=int, default=2)
    j = sub.add_parser("judge")
    j.add_argument("--scores", type=Path, required=True)
    j.add_argument("--devtest", type=Path)
    j.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    score(args) if args.cmd == "score" else judge(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
