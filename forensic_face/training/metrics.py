"""Verification metrics, their 95 % intervals and paired tests, and image quality metrics.

Intervals and tests (numpy and scipy; scikit-image for SSIM):

- a rate k/n (accuracy, precision, recall, false match / non-match rate): Wilson's score interval;
- ROC-AUC: DeLong's variance (from the midrank "structural components" of the genuine and impostor
  scores), and for two scorers on the same pairs the paired DeLong test of their difference;
- two decisions on the same pairs: McNemar's exact test on the pairs where exactly one is right;
- a per-image figure of two methods on the same images (PSNR): the mean difference with a t interval.

All of them treat the pairs as independent draws. LFW's DevTest pairs share people; a bootstrap over
the groups of pairs linked by shared people (``research/interval_check.py``) gave intervals 3 % narrower
to 9 % wider than these for the shipped model.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

#: Two-sided 95 % normal quantile.
Z95 = float(stats.norm.ppf(0.975))


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false accept rate, true accept rate, thresholds) for "same when score >= threshold"."""
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], same[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    tpr = np.r_[0.0, tp / max(1, y.sum())]
    fpr = np.r_[0.0, fp / max(1, (~y).sum())]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (probability a random genuine pair outscores a random impostor pair)."""
    fpr, tpr, _ = roc_curve(scores, same)
    return float(np.trapezoid(tpr, fpr))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True accept rate at the largest threshold whose false accept rate is at most ``far``."""
    fpr, tpr, _ = roc_curve(scores, same)
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def binary_metrics(decision: np.ndarray, same: np.ndarray) -> dict[str, float]:
    d = np.asarray(decision, bool)
    y = np.asarray(same, bool)
    tp, fp = int((d & y).sum()), int((d & ~y).sum())
    fn, tn = int((~d & y).sum()), int((~d & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / max(1, y.size), "precision": precision, "recall": recall, "f1": f1,
            "false_match_rate": fp / max(1, fp + tn), "false_non_match_rate": fn / max(1, fn + tp),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def best_threshold_accuracy(scores: np.ndarray, same: np.ndarray) -> float:
    """Accuracy at the best threshold chosen on these very pairs (an optimistic bound, for reference only)."""
    _, _, thr = roc_curve(scores, same)
    y = np.asarray(same, bool)
    s = np.asarray(scores)
    return float(max(((s >= t) == y).mean() for t in thr))


def verification_report(scores: np.ndarray, same: np.ndarray, decision: np.ndarray) -> dict:
    """The verification figures of one scorer at its decision, with 95 % intervals under ``ci95``
    (Wilson for the rates, DeLong for the AUC; none for TAR at FAR, whose threshold is chosen on these pairs)."""
    out = binary_metrics(decision, same)
    out |= {"roc_auc": roc_auc(scores, same), "tar_at_far_1e-2": tar_at_far(scores, same, 1e-2),
            "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3),
            "best_threshold_accuracy_on_test": best_threshold_accuracy(scores, same)}
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}
    tp, fp, fn, tn = out["tp"], out["fp"], out["fn"], out["tn"]
    counts = {"accuracy": (tp + tn, tp + fp + fn + tn), "precision": (tp, tp + fp), "recall": (tp, tp + fn),
              "false_match_rate": (fp, fp + tn), "false_non_match_rate": (fn, fn + tp)}
    ci = {k: _rounded(wilson_interval(*kn)) for k, kn in counts.items()}
    y = np.asarray(same, bool)
    ci["roc_auc"] = _rounded(auc_interval(scores, y)[1:]) if y.any() and not y.all() else [0.0, 1.0]
    out["ci95"] = ci
    return out


def rate_report(hits: np.ndarray) -> dict:
    """The share of True in ``hits`` with its count and Wilson interval."""
    k, n = int(np.sum(hits)), int(np.size(hits))
    return {"rate": round(k / max(1, n), 4), "count": k, "of": n, "ci95": _rounded(wilson_interval(k, n))}


def _rounded(pair, nd: int = 4) -> list[float]:
    return [round(float(v), nd) for v in pair]


def _p(p: float) -> float:
    """A p-value to three significant digits (a tiny one stays distinguishable from zero)."""
    return float(f"{min(max(p, 0.0), 1.0):.3g}")


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for the proportion k/n (the whole [0, 1] when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their mean rank."""
    return stats.rankdata(x, method="average")


def _delong_parts(scores: np.ndarray, same: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components: for each genuine pair the share of impostors it outscores
    (ties half), and for each impostor pair the share of genuine pairs that outscore it."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(same, bool)
    pos, neg = s[y], s[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise ValueError("an AUC needs both same-person and different-person pairs")
    both = _midranks(np.concatenate([pos, neg]))
    v_pos = (both[:m] - _midranks(pos)) / n
    v_neg = 1.0 - (both[m:] - _midranks(neg)) / m
    return float(v_pos.mean()), v_pos, v_neg


def auc_interval(scores: np.ndarray, same: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(AUC, lower, upper): DeLong's standard error, normal interval clipped to [0, 1]."""
    auc, v_pos, v_neg = _delong_parts(scores, same)
    se = math.sqrt(_var(v_pos) / v_pos.size + _var(v_neg) / v_neg.size)
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)


def _var(v: np.ndarray) -> float:
    return float(np.var(v, ddof=1)) if v.size > 1 else 0.0


def auc_difference(scores_a: np.ndarray, scores_b: np.ndarray, same: np.ndarray, z: float = Z95) -> dict:
    """Paired DeLong test of AUC(a) - AUC(b) for two scorers on the same pairs: the difference, its 95 %
    interval and the two-sided p-value."""
    auc_a, pa, na = _delong_parts(scores_a, same)
    auc_b, pb, nb = _delong_parts(scores_b, same)
    var = _var(pa - pb) / pa.size + _var(na - nb) / na.size
    diff = auc_a - auc_b
    se = math.sqrt(max(var, 0.0))
    p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return {"auc_a": round(auc_a, 4), "auc_b": round(auc_b, 4), "difference": round(diff, 4),
            "ci95": _rounded((diff - z * se, diff + z * se)), "p_value": _p(p)}


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's exact test for two decisions on the same pairs: ``a_only`` pairs only a got right,
    ``b_only`` only b; the two-sided p-value of the binomial test of a_only against b_only."""
    a = np.asarray(correct_a, bool)
    b = np.asarray(correct_b, bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    p = float(stats.binomtest(a_only, n, 0.5).pvalue) if n else 1.0
    return {"accuracy_a": round(float(a.mean()), 4), "accuracy_b": round(float(b.mean()), 4),
            "a_only": a_only, "b_only": b_only, "p_value": _p(p)}


def mean_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean of a - b over paired items, its 95 % t interval, and the share of items where a > b."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = d.size
    if n < 2:
        raise ValueError("a mean difference with an interval needs at least two paired items")
    se = math.sqrt(_var(d) / n)
    q = float(stats.t.ppf(0.975, n - 1))
    mean = float(d.mean())
    return {"mean": round(mean, 4), "ci95": _rounded((mean - q * se, mean + q * se)),
            "share_better": round(float((d > 0).mean()), 4), "n": int(n)}


def probability_report(prob: np.ndarray, same: np.ndarray, bins: int = 10) -> dict:
    """How far stated match probabilities are from what happened: the Brier score, the expected
    calibration error (the pair-weighted mean gap between the stated probability and the observed
    same-person rate over ``bins`` equal-width probability bins) and the bins themselves."""
    p = np.asarray(prob, np.float64)
    y = np.asarray(same, bool)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    rows, gap = [], 0.0
    for k in range(bins):
        m = which == k
        if not m.any():
            continue
        stated, observed = float(p[m].mean()), float(y[m].mean())
        gap += abs(stated - observed) * int(m.sum())
        rows.append({"from": k / bins, "to": (k + 1) / bins, "pairs": int(m.sum()), "stated": round(stated, 4),
                     "observed": round(observed, 4)})
    return {"brier": round(float(((p - y) ** 2).mean()), 4), "ece": round(gap / max(1, p.size), 4), "bins": rows}


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB per image of uint8 batches (N, H, W)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(a.shape[0], -1).mean(axis=1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(x, y, data_range=255) for x, y in zip(a, b, strict=True)])
