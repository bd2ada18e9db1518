"""The match calibration: probabilities that depend on how sharp the probe is, fitted and stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from forensic_face.models.calibration import MatchCalibration, fit_logistic, sharpness_feature
from forensic_face.training.metrics import probability_report

TRUE_WEIGHTS = np.array([0.33, 5.55, -0.63, 1.06])  # about what the shipped model's calibration pairs gave


def pairs_by_sharpness(rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs whose chance of being the same person at a given similarity falls as the probe gets
    sharper (a blurred probe's same-person similarities are lower, so a middling one means more)."""
    sharp = np.exp(rng.uniform(2.5, 7.5, n)) - 1  # q from 2.5 (blurred) to 7.5 (sharp)
    q = sharpness_feature(sharp)
    sim = rng.uniform(-0.3, 0.9, n)
    z = TRUE_WEIGHTS @ np.stack([np.ones(n), sim, q, sim * q])
    same = rng.random(n) < 1 / (1 + np.exp(-z))
    return sim, same, sharp


def test_sharp_probes_need_a_higher_similarity_and_probabilities_come_out_calibrated() -> None:
    rng = np.random.default_rng(0)
    sim, same, sharp = pairs_by_sharpness(rng)
    weights, q_range = fit_logistic(sim, same, sharp)
    cal = MatchCalibration(weights, 0.05, sim.size, 0, quality_range=q_range)
    pooled = MatchCalibration(fit_logistic(sim, same)[0], 0.05, sim.size, 0)
    assert cal.uses_quality and not pooled.uses_quality
    assert cal.threshold(np.exp(7.0) - 1) > cal.threshold(np.exp(3.0) - 1) + 0.1
    test_sim, test_same, test_sharp = pairs_by_sharpness(np.random.default_rng(1))
    for group in (sharpness_feature(test_sharp) < 4, sharpness_feature(test_sharp) > 6):
        aware = probability_report(cal.probability(test_sim[group], test_sharp[group]), test_same[group])
        one = probability_report(pooled.probability(test_sim[group], test_sharp[group]), test_same[group])
        assert aware["ece"] < 0.03 and one["ece"] > 2 * aware["ece"]
        assert aware["brier"] < one["brier"]


def test_probes_outside_the_fitted_range_are_treated_as_its_nearest_edge() -> None:
    rng = np.random.default_rng(2)
    sim, same, sharp = pairs_by_sharpness(rng)
    weights, q_range = fit_logistic(sim, same, sharp)
    cal = MatchCalibration(weights, 0.05, sim.size, 0, quality_range=q_range)
    lo, hi = q_range
    assert 2.5 <= lo < 2.7 and 7.3 < hi <= 7.5  # the 1st and 99th percentiles of q
    s = np.linspace(-0.2, 0.8, 11)
    assert np.array_equal(cal.probability(s, 0.0), cal.probability(s, np.exp(lo) - 1))
    assert np.allclose(cal.probability(s, 1e9), cal.probability(s, np.exp(hi) - 1))
    with pytest.raises(ValueError, match="sharpness"):
        cal.probability(s, None)


def test_a_quality_term_that_would_let_similarity_lower_the_probability_is_dropped() -> None:
    rng = np.random.default_rng(3)
    sharp = np.exp(rng.uniform(2.5, 7.5, 4000)) - 1
    q = sharpness_feature(sharp)
    same = rng.random(4000) < 0.5
    # for sharp probes, higher similarity means *less* likely the same person: not a usable calibration
    sim = np.where(same, rng.normal(0.6 - 0.15 * (q - 2.5), 0.1), rng.normal(0.2, 0.1))  # inverted when sharp
    weights, q_range = fit_logistic(sim, same, sharp)
    assert q_range is None and weights[2] == 0 and weights[3] == 0 and weights[1] > 0


def test_old_bundles_load_and_refitted_calibrations_are_recorded(tiny_models: Path, tmp_path: Path) -> None:
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_calibration

    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    meta = json.loads((folder / "models.json").read_text())
    del meta["calibration"]["quality_range"]  # a bundle written before the quality term
    (folder / "models.json").write_text(json.dumps(meta))
    old = FaceEngine(folder, device="cpu")
    assert not old.calibration.uses_quality
    assert old.calibration.probability(0.9, None) == old.calibration.probability(0.9, 123.0)
    new_cal = MatchCalibration((0.3, 5.5, -0.6, 1.0), 0.07, 10, 5, quality_range=(2.4, 7.5))
    save_calibration(folder, new_cal, {"calibration_info": {"why": "test"}})
    new = FaceEngine(folder, device="cpu")
    assert new.calibration == new_cal
    assert new.info.version == old.info.version and new.info.weights_sha256 == old.info.weights_sha256
    assert new.info.calibration_sha256 != old.info.calibration_sha256  # results say which calibration they used
    assert new.info.as_dict()["calibration_sha256"] == new.info.calibration_sha256
    assert json.loads((folder / "models.json").read_text())["record"]["calibration_info"] == {"why": "test"}


def test_open_set_threshold_holds_the_false_lead_rate_of_a_gallery_search() -> None:
    from forensic_face.models.calibration import fit_impostor_tail

    rng = np.random.default_rng(5)
    # strangers' similarities with an exponential upper tail (Laplace): the tail model is exact here
    tail = fit_impostor_tail(rng.laplace(0.0, 0.07, 400_000))
    cal = MatchCalibration((0.0, 10.0, 0.0, 0.0), 0.05, 0, 0, impostor_tail=tail)
    for people, fpir in ((20, 0.05), (300, 0.01), (2000, 0.01)):
        t = cal.open_set_threshold(people, fpir)
        best_stranger = rng.laplace(0.0, 0.07, (20_000, people)).max(axis=1)
        assert np.mean(best_stranger >= t) == pytest.approx(fpir, rel=0.35), (people, fpir)
    assert cal.open_set_threshold(10_000) > cal.open_set_threshold(100) > cal.open_set_threshold(2)
    assert cal.open_set_threshold(100, 0.05) < cal.open_set_threshold(100, 0.01)
    # lighter (normal) tails than the exponential model: the threshold errs towards fewer false leads
    normal = MatchCalibration((0.0, 10.0, 0.0, 0.0), 0.05, 0, 0,
                              impostor_tail=fit_impostor_tail(rng.normal(0.0, 0.1, 400_000)))
    t = normal.open_set_threshold(1000, 0.01)
    assert np.mean(rng.normal(0.0, 0.1, (5_000, 1000)).max(axis=1) >= t) < 0.01
    assert MatchCalibration((0.0, 10.0, 0.0, 0.0), 0.05, 0, 0).open_set_threshold(1000) == float("-inf")
    with pytest.raises(ValueError, match="stranger similarities"):
        fit_impostor_tail(rng.normal(0, 0.1, 500))


def test_lead_score_is_the_best_similarity_less_half_the_mean_of_the_next_three() -> None:
    from forensic_face.models.calibration import lead_score

    assert lead_score(np.array([0.1, 0.9, 0.3, 0.5, 0.4])) == pytest.approx(0.9 - 0.5 * 0.4)  # any order
    assert lead_score(np.array([0.2, 0.6])) == pytest.approx(0.6 - 0.5 * 0.2)  # fewer neighbours in a small gallery
    assert lead_score(np.array([0.7])) == pytest.approx(0.7)  # one person: the similarity itself
    rows = np.array([[0.9, 0.5, 0.4, 0.3], [0.2, 0.8, 0.1, 0.0]])
    np.testing.assert_allclose(lead_score(rows), [0.9 - 0.5 * 0.4, 0.8 - 0.5 * 0.1])
    old = MatchCalibration((0.0, 10.0, 0.0, 0.0), 0.05, 0, 0)
    assert old.lead_score(rows).tolist() == [0.9, 0.8]  # calibrations before the table: the best similarity


def _correlated_searches(rng: np.random.Generator, searches: int, people: int) -> np.ndarray:
    """Stranger similarities of gallery searches that rise and fall together: a per-probe resemblance
    to everyone plus each person's own part."""
    return rng.normal(0.0, 0.08, (searches, 1)) + rng.normal(0.0, 0.12, (searches, people))


def test_open_set_table_holds_the_false_lead_rate_when_a_probe_resembles_everyone_a_little() -> None:
    from forensic_face.models.calibration import fit_open_set_table

    rng = np.random.default_rng(8)
    table = fit_open_set_table(_correlated_searches(rng, 3000, 401), np.zeros(3000, int))  # own person: column 0
    assert table["people"][0] == 1 and table["people"][-1] == 400
    cal = MatchCalibration((0.0, 10.0, 0.0, 0.0), 0.05, 0, 0, open_set=table)
    assert cal.fpir_range == (0.005, 0.1)
    # fresh searches of people who are not enrolled, at measured, interpolated and extrapolated gallery sizes
    for people, fpir in ((1, 0.01), (20, 0.05), (20, 0.01), (150, 0.01), (400, 0.02), (1000, 0.01)):
        t = cal.open_set_threshold(people, fpir)
        rate = np.mean(cal.lead_score(_correlated_searches(rng, 6000, people)) >= t)
        assert rate == pytest.approx(fpir, rel=0.45), (people, fpir, rate)
    assert cal.open_set_threshold(100, 0.05) < cal.open_set_threshold(100, 0.01) < cal.open_set_threshold(100, 0.005)
    with pytest.raises(ValueError, match="false-lead rates from 0.5% to 10.0%"):
        cal.open_set_threshold(100, 0.2)
    with pytest.raises(ValueError, match="searches"):
        fit_open_set_table(_correlated_searches(rng, 20, 50), np.full(20, -1))
    assert MatchCalibration.from_dict(cal.as_dict()).open_set_threshold(150) == cal.open_set_threshold(150)


def test_sharp_probes_get_more_decided_identity_probabilities_when_their_rankings_are_more_reliable() -> None:
    from forensic_face.models.calibration import fit_temperature, fit_temperature_q

    rng = np.random.default_rng(6)
    n, k = 1500, 50
    q = rng.uniform(2.5, 7.5, n)
    truth = rng.integers(0, k, n)
    sims = rng.normal(0.0, 0.2, (n, k))
    sims[np.arange(n), truth] += 0.1 * (q - 2.0)  # the true person stands out more for sharper probes
    start = fit_temperature(sims, truth)
    a, b = fit_temperature_q(sims, truth, q, start, degree=1)
    assert b < 0  # a lower temperature (more decided) for sharper probes
    cal = MatchCalibration((0.0, 10.0, 0.0, 0.0), start, 0, 0, quality_range=(2.5, 7.5), temperature_q=(a, b))
    sharp_probe, blurred_probe = np.expm1(7.0), np.expm1(3.0)
    assert cal.search_temperature(sharp_probe) < start < cal.search_temperature(blurred_probe)
    rows = cal.softmax(sims[:3], np.full(3, sharp_probe))
    assert rows.shape == (3, k) and np.allclose(rows.sum(1), 1)
    assert np.allclose(rows[0], cal.softmax(sims[0], sharp_probe))
    assert np.allclose(cal.softmax(sims[0]), MatchCalibration((0, 1, 0, 0), start, 0, 0).softmax(sims[0]))
    # calibrated per quality group: the stated top-1 probability matches how often the top-1 is right
    for group in (q > 6.5, q < 3.5):
        p = cal.softmax(sims[group], np.expm1(q[group]))
        one = MatchCalibration((0, 1, 0, 0), start, 0, 0).softmax(sims[group])
        right = p.argmax(1) == truth[group]
        assert abs(p.max(1).mean() - right.mean()) < abs(one.max(1).mean() - right.mean())


def test_mildly_degraded_probes_get_a_temperature_of_their_own() -> None:
    from forensic_face.models.calibration import fit_temperature, fit_temperature_q
    from forensic_face.training.metrics import probability_report

    rng = np.random.default_rng(11)
    n, k = 3000, 50
    q = np.concatenate([rng.uniform(2.5, 3.5, n // 3), rng.uniform(3.8, 4.6, n // 3), rng.uniform(6.0, 7.5, n // 3)])
    truth = rng.integers(0, k, n)
    sims = rng.normal(0.0, 0.2, (n, k))
    # blurred probes rank poorly; mildly degraded ones nearly as well as sharp ones (not halfway between)
    sims[np.arange(n), truth] += np.select([q < 3.6, q < 5.0], [0.05, 0.30], 0.35)
    start = fit_temperature(sims, truth)
    forms = {d: fit_temperature_q(sims, truth, q, start, degree=d) for d in (1, 2)}
    assert len(forms[1]) == 2 and len(forms[2]) == 3
    middle = (q > 3.7) & (q < 4.7)
    ece = {}
    for d, coef in forms.items():
        cal = MatchCalibration((0.0, 10.0, 0.0, 0.0), start, 0, 0, quality_range=(2.5, 7.5), temperature_q=coef)
        p = cal.softmax(sims[middle], np.expm1(q[middle]))
        ece[d] = probability_report(p.max(1), p.argmax(1) == truth[middle])["ece"]
    # the log-linear form misstates the middle group (0.13 stated where 0.26 are right); the square term halves that
    assert ece[1] > 0.1 and ece[2] < 0.5 * ece[1]
    a, b = forms[1]  # bundles with (a, b) read as before
    old = MatchCalibration((0.0, 10.0, 0.0, 0.0), start, 0, 0, quality_range=(2.5, 7.5), temperature_q=(a, b))
    assert old.search_temperature(np.expm1(4.0)) == pytest.approx(np.exp(a + b * 4.0))


def test_a_temperature_by_sharpness_stays_inside_the_fitted_range_so_probabilities_stay_meaningful() -> None:
    """A temperature polynomial read far from the qualities it was fitted on (a calibration fitted on few, odd
    searches) would overflow to an infinite temperature (every identity probability equal) or fall to 0: it is
    held inside the range temperatures are fitted in, without a warning."""
    import warnings

    from forensic_face.models.calibration import LOG_TEMPERATURES, MatchCalibration

    cal = MatchCalibration((0.0, 10.0, 0.0, 0.0), 0.05, 0, 0, quality_range=(2.5, 7.5),
                           temperature_q=(-3.0, 0.0, 40.0))  # exp(-3 + 40 q^2): overflows at q = 7.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = cal.search_temperature(np.array([1e9, 10.0]))
        probs = cal.softmax(np.array([[0.9, 0.2, 0.1], [0.9, 0.2, 0.1]]), np.array([1e9, 10.0]))
    assert np.all(np.isfinite(t)) and t.max() == pytest.approx(np.exp(LOG_TEMPERATURES[1]))
    assert np.allclose(probs.sum(1), 1.0) and np.all(probs[:, 0] > probs[:, 1])
