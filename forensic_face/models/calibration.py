"""Score calibration: the "same person" probability and the gallery softmax temperature.

Match probability: logistic regression of the label (same person or not) on the cosine similarity
``s``: ``p = sigmoid(w0 + w1 s)``, fitted by Newton's method with a small ridge term on held-out
pairs pooled over the clean, mild and severe levels (with and without audio); the decision
threshold is ``p >= 0.5``. The form has room for a quality term ``q`` (log2 of the probe's face
width over 32 px) and its interaction, ``w2 q + w3 s q``, but they are not fitted (kept at 0): the
evaluation levels upscale the degraded frame back to full size, so the detected box width does not
measure the face's real resolution, and a quality term fitted on it extrapolated wrongly to
genuinely small faces (the similarity's slope turned negative below ~20 px).

Temperature: the gallery softmax ``softmax(s_k / T)`` over per-person similarities; ``T`` minimises
the negative log-likelihood of the true identity on held-out closed-set searches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def quality_feature(face_px: np.ndarray | float) -> np.ndarray:
    """q = clip(log2(face_px / 32), -2, 2): 0 for a 32 px face, -1 for 16 px, +1 for 64 px."""
    return np.clip(np.log2(np.maximum(np.asarray(face_px, dtype=np.float64), 1.0) / 32.0), -2.0, 2.0)


def _design(sim: np.ndarray, q: np.ndarray) -> np.ndarray:
    sim = np.asarray(sim, dtype=np.float64)
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), sim.shape)
    return np.stack([np.ones_like(sim), sim, q, sim * q], axis=-1)


@dataclass(frozen=True)
class MatchCalibration:
    weights: tuple[float, float, float, float]  # w0 (bias), w1 (similarity), w2 (quality), w3 (interaction)
    temperature: float  # gallery softmax temperature
    n_pairs: int  # held-out pairs it was fitted on
    n_searches: int  # held-out searches the temperature was fitted on

    def probability(self, sim: np.ndarray | float, face_px: np.ndarray | float) -> np.ndarray:
        z = _design(np.asarray(sim), quality_feature(face_px)) @ np.asarray(self.weights)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def threshold(self, face_px: float) -> float:
        """The similarity at which the match probability is 0.5 for a probe face of ``face_px``."""
        w0, w1, w2, w3 = self.weights
        q = float(quality_feature(face_px))
        slope = w1 + w3 * q
        return float(-(w0 + w2 * q) / slope) if abs(slope) > 1e-9 else float("inf")

    def softmax(self, sims: np.ndarray) -> np.ndarray:
        z = np.asarray(sims, dtype=np.float64) / self.temperature
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MatchCalibration:
        return cls(weights=tuple(float(v) for v in d["weights"]), temperature=float(d["temperature"]),
                   n_pairs=int(d["n_pairs"]), n_searches=int(d["n_searches"]))


def fit_logistic(sim: np.ndarray, face_px: np.ndarray, same: np.ndarray, ridge: float = 1e-3,
                 iters: int = 50, use_quality: bool = False) -> tuple[float, float, float, float]:
    """Newton-Raphson fit of the match logistic; returns the four weights (w2 = w3 = 0 unless
    ``use_quality``)."""
    x = _design(np.asarray(sim), quality_feature(face_px))
    if not use_quality:
        x = x[:, :2]
    y = np.asarray(same, dtype=np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + ridge * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    w = np.r_[w, np.zeros(4 - w.size)]
    return tuple(float(v) for v in w)


def fit_temperature(sims: np.ndarray, truth: np.ndarray) -> float:
    """Temperature minimising the NLL of ``truth`` under softmax(sims / T); sims (n, k), truth (n,)."""
    sims = np.asarray(sims, dtype=np.float64)
    idx = np.arange(sims.shape[0])

    def nll(t: float) -> float:
        z = sims / t
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[idx, truth] - np.log(np.exp(z).sum(axis=1))).mean())

    grid = np.exp(np.linspace(np.log(0.005), np.log(1.0), 200))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = np.exp(np.linspace(np.log(best / 1.05), np.log(best * 1.05), 41))
    return float(fine[int(np.argmin([nll(t) for t in fine]))])
