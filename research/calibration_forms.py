"""Would another form of the match logistic reach the clean verification bar (issue 24: 98.5 %)?

Reads the pair scores of ``research.pair_scores`` (the shipped bundle's joined similarity and the probe's
sharpness, calibration and DevTest pairs) and compares forms of P(same | similarity s, quality q = log(1 +
sharpness)), each fitted on the calibration people as the shipped one is (clean / mild / severe, with and
without the voice; q clipped to its 1st-99th percentiles):

- ``linear``: the shipped form, logit = w0 + w1 s + w2 q + w3 s q;
- ``quadratic``: the same with q^2 and s q^2;
- ``local h``: a logistic in s whose two coefficients vary with q, each fitted by kernel-weighted likelihood
  (Gaussian kernel of bandwidth h in q) at 41 points of q's range and interpolated between them.

For each: the person-disjoint 2-fold cross-validated log-likelihood and accuracy on the calibration pairs (no
voice), then DevTest accuracy per level when fitted on all calibration pairs. Beside them, for orientation only,
the best accuracy a single threshold per level could reach on each set (chosen on that set's own pairs: an
oracle, not a method). Prints JSON; asserts nothing.

    .venv/bin/python -m research.pair_scores --out /tmp/pair_scores.npz
    .venv/bin/python -m research.calibration_forms /tmp/pair_scores.npz
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np

from forensic_face.models.calibration import QUALITY_PERCENTILES, _newton, sharpness_feature

LEVELS = ("clean", "mild", "severe")
BANDWIDTHS = (0.25, 0.4, 0.6, 1.0)


def _design(s: np.ndarray, q: np.ndarray, quadratic: bool) -> np.ndarray:
    cols = [np.ones_like(s), s, q, s * q] + ([q * q, s * q * q] if quadratic else [])
    return np.stack(cols, 1)


def _weighted_newton(x: np.ndarray, y: np.ndarray, wt: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -50, 50)))
        step = np.linalg.solve((x * (wt * p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1]),
                               x.T @ (wt * (p - y)) + ridge * w)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def fit(form: str, s: np.ndarray, sharp: np.ndarray, y: np.ndarray):
    """A fitted form: a function (s, sharpness) -> probability."""
    q = sharpness_feature(sharp)
    lo, hi = np.percentile(q, QUALITY_PERCENTILES)
    qc = np.clip(q, lo, hi)
    if form in ("linear", "quadratic"):
        quad = form == "quadratic"
        w = _newton(_design(s, qc, quad), y.astype(float), 1e-3, 80)
        return lambda s2, sh2: 1 / (1 + np.exp(-_design(s2, np.clip(sharpness_feature(sh2), lo, hi), quad) @ w))
    h = float(form.split()[1])
    grid = np.linspace(lo, hi, 41)
    x = np.stack([np.ones_like(s), s], 1)
    coef = np.array([_weighted_newton(x, y.astype(float), np.exp(-0.5 * ((qc - g) / h) ** 2)) for g in grid])

    def prob(s2, sh2):
        q2 = np.clip(sharpness_feature(sh2), lo, hi)
        return 1 / (1 + np.exp(-(np.interp(q2, grid, coef[:, 0]) + np.interp(q2, grid, coef[:, 1]) * s2)))
    return prob


def main() -> int:
    z = np.load(sys.argv[1])
    same_c, same_t = z["calib_same"], z["test_same"]
    fold = np.array([hashlib.sha256(p.encode()).digest()[0] % 2 for p in z["calib_person"]])

    def calib(mask):
        take = [(lv, a) for lv in LEVELS for a in ("none", "voice")]
        return (np.concatenate([z[f"calib_{lv}_{a}"][mask] for lv, a in take]),
                np.concatenate([z[f"calib_{lv}_sharp"][mask] for lv, _ in take]),
                np.concatenate([same_c[mask] for _ in take]))

    out: dict = {"forms": {}}
    for form in ("linear", "quadratic", *(f"local {h}" for h in BANDWIDTHS)):
        right = {lv: np.zeros(len(same_c), bool) for lv in LEVELS}
        ll = []
        for held in (0, 1):
            prob = fit(form, *calib(fold != held))
            m = fold == held
            for lv in LEVELS:
                p = prob(z[f"calib_{lv}_none"][m], z[f"calib_{lv}_sharp"][m])
                right[lv][m] = (p >= 0.5) == same_c[m]
                ll.append(np.log(np.clip(np.where(same_c[m], p, 1 - p), 1e-12, 1)))
        prob = fit(form, *calib(np.ones(len(same_c), bool)))
        out["forms"][form] = {
            "calibration_cv_log_likelihood": round(float(np.concatenate(ll).mean()), 4),
            "calibration_cv_accuracy": {lv: round(float(right[lv].mean()), 4) for lv in LEVELS},
            "devtest_accuracy": {lv: round(float(((prob(z[f"test_{lv}_none"], z[f"test_{lv}_sharp"]) >= 0.5)
                                                 == same_t).mean()), 4) for lv in LEVELS}}
    out["single_threshold_oracle"] = {}
    for tag, same in (("calibration", same_c), ("devtest", same_t)):
        for lv in LEVELS:
            s = z[f"{'calib' if tag == 'calibration' else 'test'}_{lv}_none"]
            cuts = np.sort(s)
            acc = np.array([((s >= c) == same).mean() for c in cuts])
            best = cuts[acc >= acc.max() - 1e-12]
            out["single_threshold_oracle"][f"{tag} {lv}"] = {
                "accuracy": round(float(acc.max()), 4), "thresholds": [round(float(best.min()), 3),
                                                                       round(float(best.max()), 3)]}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
