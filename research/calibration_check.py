"""Does the sharpness-aware match calibration hold on degradations it was not fitted on?

The match logistic is fitted on the clean, mild and severe calibration probes. This script fits it
two ways, with one threshold for all and with the sharpness term, on one half of the calibration
people (person-disjoint 2-fold), and scores the other half at the single-factor degradation levels
of forensic_face.vision.degrade (noise, shot noise, JPEG, blur, motion, low resolution, dark,
bright, occlusion, rotation), then the other way round: accuracy, false match / non-match rates, Brier
score and expected calibration error per level, the two forms side by side. Calibration pairs only,
never DevTest. Prints figures; asserts nothing. ``--noise-compensated`` fits and scores the sharpness
term on the variance of the Laplacian less its response to the estimated noise (20 sigma^2, Immerkaer's
sigma), a variant that was tried and not adopted.

``--open-set`` checks the open-set (gallery lead) thresholds instead: the lead-score table of
forensic_face.models.calibration fitted on the calibration searches of one half of the probes' people
(one clean image per calibration person in the gallery; every probe at the 13 levels, reconstructed
without audio) and scored on the other half's, for galleries of 5, 20, 100 and all calibration people:
the false-lead rate of searches for people not enrolled and the share of enrolled searches that end with
a lead on the right person; beside it the best similarity alone under an empirical table of its own, and
the shipped bundle's thresholds.

``--temperature`` compares the forms of the gallery softmax temperature the same way (2-fold by person on the
enrolled calibration searches at clean, mild and severe): NLL of the true person and ECE of the top-1
identity probability.

    .venv/bin/python -m research.calibration_check [--models resources/models]
        [--noise-compensated | --open-set | --temperature]
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from forensic_face.engine.inference import FaceEngine
from forensic_face.models.calibration import (
    MatchCalibration,
    fit_logistic,
    fit_open_set_table,
    fit_temperature,
    fit_temperature_q,
    lead_score,
    open_set_lookup,
)
from forensic_face.paths import shared_data_dir
from forensic_face.training.evaluate import (
    OPEN_SET_LEVELS,
    first_images,
    gallery_crops,
    probe_set,
    probe_sharpness,
    score_pairs,
)
from forensic_face.training.metrics import binary_metrics, probability_report
from forensic_face.training.split import load_split_data
from forensic_face.vision.degrade import EVAL_LEVELS, SINGLE_FACTOR_LEVELS
from forensic_face.vision.quality import noise_sigma

FITTED = EVAL_LEVELS
CHECKED = SINGLE_FACTOR_LEVELS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("resources/models"))
    ap.add_argument("--noise-compensated", action="store_true",
                    help="sharpness less the Laplacian's response to the estimated noise")
    ap.add_argument("--open-set", action="store_true", help="check the open-set threshold on calibration searches")
    ap.add_argument("--temperature", action="store_true",
                    help="compare the gallery softmax temperature's forms on calibration searches")
    args = ap.parse_args()
    index, split, cache = load_split_data(shared_data_dir() / "lfw")
    engine = FaceEngine(args.models, device="cpu")
    pairs = split.calib_pairs
    if args.open_set:
        return open_set_check(engine, index, cache, pairs)
    if args.temperature:
        return temperature_check(engine, index, cache, pairs)
    same = np.array([p.same for p in pairs])
    # person-disjoint halves: by a stable hash of the probe's person
    fold = np.array([hashlib.sha256(p.b.split("/")[0].encode()).digest()[0] % 2 for p in pairs])
    gallery = engine.embed(gallery_crops(index, cache, [p.a for p in pairs], engine.size))
    data = {}
    for level in FITTED + CHECKED:
        probes = probe_set(index, cache, pairs, level, engine.size, "calib", 2, None)
        sharp = probe_sharpness(probes)
        if args.noise_compensated:
            sigma = np.array([noise_sigma(c) for c in probes.crop])
            sharp = np.maximum(sharp - 20 * sigma**2, 1.0)
        data[level] = (score_pairs(engine, gallery, probes, None, None)["recon"], sharp)
        print(f"{level:9s} probes: median sharpness {np.median(data[level][1]):8.1f}", flush=True)
    print()
    print(f"{'level':9s} {'form':10s} {'accuracy':>8s} {'FMR':>6s} {'FNMR':>6s} {'Brier':>7s} {'ECE':>7s}")
    for level in FITTED + CHECKED:
        for form in ("one", "sharpness"):
            probs = np.zeros(len(pairs))
            for held in (0, 1):
                fit = fold != held
                sims = np.concatenate([data[lv][0][fit] for lv in FITTED])
                sharp = np.concatenate([data[lv][1][fit] for lv in FITTED])
                ys = np.concatenate([same[fit]] * len(FITTED))
                weights, q_range = fit_logistic(sims, ys, sharp if form == "sharpness" else None)
                cal = MatchCalibration(weights, 1.0, int(sims.size), 0, quality_range=q_range)
                s, sh = data[level]
                probs[~fit] = cal.probability(s[~fit], sh[~fit])
            m = binary_metrics(probs >= 0.5, same)
            r = probability_report(probs, same)
            print(f"{level:9s} {form:10s} {m['accuracy']:8.3f} {m['false_match_rate']:6.3f} "
                  f"{m['false_non_match_rate']:6.3f} {r['brier']:7.4f} {r['ece']:7.4f}", flush=True)
    return 0


def calibration_searches(engine, index, cache, pairs, levels):
    """Every calibration pair's second image that is not its person's gallery image, at each level,
    reconstructed without audio, searched against the calibration gallery (one clean image per person):
    (similarities, the own person's column or -1, person-disjoint fold 0/1, level, sharpness), one row per
    probe and level."""
    first = first_images(pairs)
    people = sorted(first)
    pos = {q: i for i, q in enumerate(people)}
    gallery = engine.embed(gallery_crops(index, cache, [first[q] for q in people], engine.size))
    rows = [k for k, p in enumerate(pairs) if p.b != first.get(p.b.split("/")[0])]
    person = [pairs[k].b.split("/")[0] for k in rows]
    truth = np.array([pos.get(q, -1) for q in person])
    fold = np.array([hashlib.sha256(q.encode()).digest()[0] % 2 for q in person])
    sims, level, sharp = [], [], []
    for lv in levels:
        probes = probe_set(index, cache, pairs, lv, engine.size, "calib", 2, None)
        sims.append(engine.embed(engine.reconstruct(probes.crop[rows])) @ gallery.T)
        sharp.append(probe_sharpness(probes)[rows])
        level += [lv] * len(rows)
    return (np.concatenate(sims), np.tile(truth, len(levels)), np.tile(fold, len(levels)), np.array(level),
            np.concatenate(sharp))


def temperature_check(engine, index, cache, pairs) -> int:
    """Person-disjoint 2-fold check of the gallery softmax temperature's forms on the enrolled calibration
    searches (clean, mild, severe; no audio): one temperature, T = exp(a + b q) and T = exp(a + b q + c q^2),
    each fitted on one half of the probes' people and scored on the other half: NLL of the true person and
    ECE of the top-1 identity probability per level."""
    sims, truth, fold, level, sharp = calibration_searches(engine, index, cache, pairs, EVAL_LEVELS)
    keep = truth >= 0
    sims, truth, fold, level, sharp = sims[keep], truth[keep], fold[keep], level[keep], sharp[keep]
    q = engine.calibration.quality(sharp)
    print(f"{keep.sum()} enrolled calibration searches of {sims.shape[1]} people; 2-fold by the probe's person")
    print(f"{'form':28s} " + " | ".join(f"{lv:>6s} NLL   ECE" for lv in EVAL_LEVELS))
    for form, degree in (("one temperature", 0), ("T = exp(a + b q)", 1), ("T = exp(a + b q + c q^2)", 2)):
        probs = np.zeros_like(sims)
        for h in (0, 1):
            fit = fold != h
            start = fit_temperature(sims[fit], truth[fit])
            coef = fit_temperature_q(sims[fit], truth[fit], q[fit], start, degree) if degree else None
            cal = replace(engine.calibration, temperature=start, temperature_q=coef)
            probs[~fit] = cal.softmax(sims[~fit], sharp[~fit] if degree else None)
        cells = []
        for lv in EVAL_LEVELS:
            m = level == lv
            p = probs[m]
            nll = -np.log(p[np.arange(m.sum()), truth[m]] + 1e-12).mean()
            ece = probability_report(p.max(1), p.argmax(1) == truth[m])["ece"]
            cells.append(f"{nll:6.3f} {ece:5.3f}")
        print(f"{form:28s} " + " | ".join(f"{c:>16s}" for c in cells), flush=True)
    return 0


def open_set_check(engine, index, cache, pairs) -> int:
    """Person-disjoint 2-fold check of the open-set table: fitted (fit_open_set_table) on the searches of
    one half of the calibration probes' people, scored on the other half's, for galleries of several sizes
    (random subsets of the calibration people): the false-lead rate of searches for people not enrolled,
    and the share of enrolled searches that end with a lead on the right person. The best similarity alone
    under the same empirical table and the shipped (or independence-model) threshold are shown beside it."""
    sims, truth, fold, level, _ = calibration_searches(engine, index, cache, pairs, OPEN_SET_LEVELS)
    n_all = sims.shape[1]
    tables = {h: {"lead": fit_open_set_table(sims[fold != h], truth[fold != h]),
                  "best": fit_open_set_table(sims[fold != h], truth[fold != h], beta=0.0)} for h in (0, 1)}
    rng = np.random.default_rng(7)
    print(f"{len(sims) // len(OPEN_SET_LEVELS)} calibration probes x {len(OPEN_SET_LEVELS)} levels; gallery subsets "
          f"of the {n_all} calibration people; 2-fold by the probe's person")
    print(f"{'people':>6s} {'rule':28s} {'FPIR':>6s} {'false leads':>11s}  enrolled with a lead, clean / mild / severe")
    for n in (5, 20, 100, n_all - 1):
        # one gallery of n people per search: the probe's own person (if enrolled) and n - 1 others, or n strangers
        keys = rng.random(sims.shape)
        enrolled = truth >= 0
        keys[np.flatnonzero(enrolled), truth[enrolled]] = -1.0  # the own person first (kept for enrolled searches)
        cols = np.argsort(keys, axis=1)
        mated_cols = cols[:, :n]
        stranger_cols = np.where(enrolled[:, None], cols[:, 1:n + 1], cols[:, :n])
        s_mated = np.take_along_axis(sims, mated_cols, 1)  # column 0 is the own person for enrolled searches
        s_open = np.take_along_axis(sims, stranger_cols, 1)
        right_first = s_mated[:, 0] >= s_mated.max(1)
        for fpir in (0.05, 0.01):
            for name in ("lead score, table", "best similarity, table", "shipped bundle's threshold"):
                false_lead = np.zeros(len(sims), bool)
                found = np.zeros(len(sims), bool)
                for h in (0, 1):
                    held = fold == h
                    if name == "lead score, table":
                        table = tables[h]["lead"]
                        score = lambda x, t=table: lead_score(x, t["beta"], t["neighbours"])  # noqa: E731
                        t = open_set_lookup(table, n, fpir)
                    elif name == "best similarity, table":
                        score, t = (lambda x: x.max(1)), open_set_lookup(tables[h]["best"], n, fpir)
                    else:
                        score, t = engine.calibration.lead_score, engine.calibration.open_set_threshold(n, fpir)
                    false_lead[held] = score(s_open[held]) >= t
                    found[held] = (score(s_mated[held]) >= t) & right_first[held]
                found_by = " / ".join(f"{found[enrolled & (level == lv)].mean():6.1%}" for lv in EVAL_LEVELS)
                by_level = {lv: false_lead[level == lv].mean() for lv in OPEN_SET_LEVELS}
                worst = max(by_level, key=by_level.get)
                by_fold = " / ".join(f"{false_lead[fold == h].mean():.2%}" for h in (0, 1))
                print(f"{n:6d} {name:28s} {fpir:6.1%} {false_lead.mean():11.2%}  {found_by}   false leads "
                      + " / ".join(f"{by_level[lv]:.2%}" for lv in EVAL_LEVELS)
                      + f", most at {worst} {by_level[worst]:.2%}; by held-out half {by_fold}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
