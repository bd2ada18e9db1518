"""Verification metrics and image quality metrics (numpy only; scikit-image for SSIM)."""

from __future__ import annotations

import numpy as np


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


def verification_report(scores: np.ndarray, same: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    out = binary_metrics(decision, same)
    out |= {"roc_auc": roc_auc(scores, same), "tar_at_far_1e-2": tar_at_far(scores, same, 1e-2),
            "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3),
            "best_threshold_accuracy_on_test": best_threshold_accuracy(scores, same)}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB per image of uint8 batches (N, H, W)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(a.shape[0], -1).mean(axis=1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(x, y, data_range=255) for x, y in zip(a, b, strict=True)])
