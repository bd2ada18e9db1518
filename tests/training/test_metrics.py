"""The figures the evaluation reports and the intervals and tests around them."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from forensic_face.training.metrics import (
    auc_difference,
    auc_interval,
    mcnemar,
    mean_difference,
    probability_report,
    roc_auc,
    verification_report,
    wilson_interval,
)


def two_classes(rng: np.random.Generator, n: int = 300, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    same = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    return np.where(same, rng.normal(shift, 1.0, 2 * n), rng.normal(0.0, 1.0, 2 * n)), same


def test_wilson_interval_matches_newcombes_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (score interval without correction)
    for (k, n), expected in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                             (1, 29): (0.0061, 0.1718)}.items():
        assert wilson_interval(k, n) == pytest.approx(expected, abs=6e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    for p, n in ((0.9, 200), (0.15, 500)):
        hits = rng.binomial(n, p, 4000)
        covered = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(int(k), n) for k in hits)])
        assert 0.93 <= covered <= 0.97, (p, n, covered)


def test_delong_auc_is_the_roc_area_and_its_variance_is_right() -> None:
    # a hand-worked case: genuine 0.9, 0.8; impostor 0.7, 0.85 -> AUC 3/4; components (1, 1/2) and (1, 1/2),
    # variance 0.125 / 2 + 0.125 / 2
    auc, lo, hi = auc_interval(np.array([0.9, 0.8, 0.7, 0.85]), np.array([True, True, False, False]))
    assert auc == pytest.approx(0.75)
    assert auc - lo == pytest.approx(1.959964 * 0.125**0.5, abs=1e-4) and hi == 1.0  # clipped above
    rng = np.random.default_rng(1)
    scores, same = two_classes(rng)
    scores = np.round(scores, 1)  # with ties
    auc, lo, hi = auc_interval(scores, same)
    assert auc == pytest.approx(roc_auc(scores, same), abs=1e-12)
    # DeLong's standard error agrees with a bootstrap's
    boot = []
    for _ in range(600):
        i = np.r_[rng.integers(0, 300, 300), 300 + rng.integers(0, 300, 300)]
        boot.append(roc_auc(scores[i], same[i]))
    assert (hi - lo) / (2 * 1.959964) == pytest.approx(np.std(boot), rel=0.15)


def test_paired_auc_test_finds_a_real_difference_and_no_difference_in_a_copy() -> None:
    rng = np.random.default_rng(2)
    scores, same = two_classes(rng, n=400)
    same_again = auc_difference(scores, scores.copy(), same)
    assert same_again["difference"] == 0 and same_again["p_value"] == 1.0
    worse = scores + rng.normal(0, 1.0, scores.size)  # the same scorer with noise added: lower AUC
    test = auc_difference(scores, worse, same)
    assert test["difference"] > 0 and test["p_value"] < 0.01 and test["ci95"][0] > 0
    # pairing: the interval of the difference is narrower than two independent AUC intervals would give
    _, lo_a, hi_a = auc_interval(scores, same)
    _, lo_b, hi_b = auc_interval(worse, same)
    unpaired_halfwidth = np.hypot((hi_a - lo_a) / 2, (hi_b - lo_b) / 2)
    assert (test["ci95"][1] - test["ci95"][0]) / 2 < unpaired_halfwidth
    assert auc_difference(worse, scores, same)["difference"] == -test["difference"]


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs() -> None:
    a = np.array([True] * 3 + [False] * 10 + [True] * 50 + [False] * 7)
    b = np.array([False] * 3 + [True] * 10 + [True] * 50 + [False] * 7)
    out = mcnemar(a, b)
    assert (out["a_only"], out["b_only"]) == (3, 10)
    assert out["p_value"] == pytest.approx(2 * sum(comb(13, i) for i in range(4)) / 2**13, rel=1e-3)
    assert mcnemar(a, a)["p_value"] == 1.0


def test_mean_difference_has_a_t_interval() -> None:
    out = mean_difference(np.array([2.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0]))  # differences 1, 2, 3
    assert out["mean"] == 2.0 and out["share_better"] == 1.0
    assert out["ci95"] == pytest.approx([2 - 4.3027 / 3**0.5, 2 + 4.3027 / 3**0.5], abs=1e-3)  # t(2) = 4.3027
    with pytest.raises(ValueError, match="two paired items"):
        mean_difference(np.array([1.0]), np.array([0.0]))


def test_verification_report_gives_every_rate_an_interval_around_it() -> None:
    rng = np.random.default_rng(3)
    scores, same = two_classes(rng)
    report = verification_report(scores, same, scores >= 0.5)
    assert set(report["ci95"]) == {"accuracy", "precision", "recall", "false_match_rate", "false_non_match_rate",
                                   "roc_auc"}
    for key, (lo, hi) in report["ci95"].items():
        assert lo < report[key] < hi, key
    assert report["ci95"]["accuracy"] == pytest.approx(wilson_interval(report["tp"] + report["tn"], 600), abs=1e-4)


def test_probability_report_tells_calibrated_from_overconfident_probabilities() -> None:
    rng = np.random.default_rng(4)
    stated = rng.uniform(0, 1, 5000)
    happened = rng.uniform(0, 1, 5000) < stated  # the stated probabilities are true
    honest = probability_report(stated, happened)
    assert honest["ece"] < 0.03 and sum(b["pairs"] for b in honest["bins"]) == 5000
    boastful = probability_report(np.where(stated > 0.5, 0.99, 0.01), happened)  # same decisions, overstated
    assert boastful["ece"] > 0.2 and boastful["brier"] > honest["brier"]
    assert honest["brier"] == pytest.approx(((stated - happened) ** 2).mean(), abs=1e-4)


def test_a_report_on_one_class_of_pairs_says_nothing_about_the_auc() -> None:
    same = np.ones(20, bool)
    report = verification_report(np.linspace(0, 1, 20), same, np.ones(20, bool))
    assert report["ci95"]["roc_auc"] == [0.0, 1.0] and report["ci95"]["recall"][1] == 1.0


def test_identification_searches_are_made_from_pairs_without_searching_a_gallery_image_for_itself() -> None:
    from forensic_face.training.evaluate import identification_sets
    from forensic_face.training.lfw import Pair

    pairs = [Pair("Ann/1.jpg", "Ann/2.jpg", True), Pair("Bob/1.jpg", "Cid/1.jpg", False),
             Pair("Ann/3.jpg", "Ann/1.jpg", True), Pair("Cid/2.jpg", "Ann/4.jpg", False),
             Pair("Bob/2.jpg", "Dee/1.jpg", False)]
    sets = identification_sets(pairs)
    assert sets.gallery_paths == ["Ann/1.jpg", "Bob/1.jpg", "Cid/2.jpg"]  # the first 'a' image of each person
    # Ann/2 and Ann/4 search for Ann, Cid/1 for Cid; Ann/1 is Ann's gallery image (no search); Dee is not enrolled
    assert sets.closed.tolist() == [0, 1, 3] and sets.truth.tolist() == [0, 2, 0]
    assert sets.open.tolist() == [4]


def test_rate_report_counts_and_brackets() -> None:
    from forensic_face.training.metrics import rate_report

    r = rate_report(np.array([True, True, False, True]))
    assert (r["count"], r["of"], r["rate"]) == (3, 4, 0.75) and r["ci95"][0] < 0.75 < r["ci95"][1]
