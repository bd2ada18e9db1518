"""One template from many frames of a face: per-frame quality weights and the weighted mean of their embeddings.

The weight of a face is a product of factors in [0, 1], each from one quality figure the tracker measured
(:class:`~forensic_face.vision.track.FaceQuality`), so that an analyst can read why a frame counted little:

    size      (face_px - 12) / (64 - 12), clipped: nothing under 12 px wide, full from 64 px
    sharpness s / (s + 30): half at 30, the "strong blur" line of the quality hints
    noise     1 / (1 + (sigma / 10)^2): half at sigma 10, the "heavy noise" line
    pose      1 - |turn| / 0.8, clipped: turn is the nose's offset along the eye line in eye distances (0.3 is the
              quality hints' "turned to the side"); 0.5 when the pose is unknown (no landmarks)
    score     the detector's confidence (the template correlation of a followed face), clipped to [0, 1];
              1 for a box drawn by the analyst

It never decreases as the face grows or sharpens, and it is 0 for a face too small or turned too far to
compare. The fused embedding is the weighted mean of the unit embeddings, renormalised: quality-weighted
template aggregation in its simplest form; frames of weight 0 take no part.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from forensic_face.core.errors import InputError
from forensic_face.vision.track import FaceQuality

MIN_FACE_PX = 12.0  # faces narrower than this get weight 0
FULL_FACE_PX = 64.0  # faces at least this wide get the full size factor
SHARPNESS_HALF = 30.0  # sharpness (variance of the Laplacian at 64 px) at which the sharpness factor is 0.5
NOISE_HALF = 10.0  # noise sigma (0..255) at which the noise factor is 0.5
PROFILE_TURN = 0.8  # turn (nose offset along the eye line, eye distances) at which the pose factor reaches 0
UNKNOWN_POSE = 0.5  # the pose factor of a face without landmarks


def weight_factors(q: FaceQuality) -> dict[str, float]:
    """The five factors of :func:`frame_weight`, by name (for the analyst: why a frame counted little)."""
    size = min(max((q.face_px - MIN_FACE_PX) / (FULL_FACE_PX - MIN_FACE_PX), 0.0), 1.0)
    s = max(q.sharpness, 0.0) if math.isfinite(q.sharpness) else 0.0
    noise = q.noise_sigma if math.isfinite(q.noise_sigma) else 0.0
    pose = min(max(1.0 - abs(q.turn) / PROFILE_TURN, 0.0), 1.0) if math.isfinite(q.turn) else UNKNOWN_POSE
    score = min(max(q.score, 0.0), 1.0) if math.isfinite(q.score) else 1.0
    return {"size": size, "sharpness": s / (s + SHARPNESS_HALF), "noise": 1.0 / (1.0 + (noise / NOISE_HALF) ** 2),
            "pose": pose, "score": score}


def frame_weight(q: FaceQuality) -> float:
    """The fusion weight of one face, in [0, 1]: the product of :func:`weight_factors`."""
    return float(np.prod(list(weight_factors(q).values())))


@dataclass(frozen=True)
class Pooling:
    """How a joined bundle's probe queries, whose length is not 1, are pooled (``FaceEngine.pooling``):
    ``directions`` makes the queries (N, D) the unit vectors averaged (each frame's companion share as the clip
    calibration sets it), ``query`` makes the pooled unit vector (1, D) a query again."""

    directions: Callable[[np.ndarray], np.ndarray]
    query: Callable[[np.ndarray], np.ndarray]


def fuse(embeddings: np.ndarray, weights: np.ndarray, pooling: Pooling | None = None) -> np.ndarray:
    """The unit (D,) float32 template of N faces: the ``weights``-weighted mean of the unit ``embeddings`` (N, D),
    renormalised. Faces of weight 0 take no part; :class:`InputError` when every weight is 0. ``pooling`` (a
    joined bundle's): the embeddings are that bundle's probe queries; their directions are pooled and the
    template made a query again."""
    emb = np.asarray(embeddings, np.float64)
    w = np.asarray(weights, np.float64)
    if emb.ndim != 2 or w.shape != (len(emb),):
        raise ValueError(f"fuse needs embeddings (N, D) and weights (N,); got {emb.shape} and {w.shape}")
    if pooling is not None:
        return pooling.query(fuse(pooling.directions(emb), w)[None])[0]
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("fusion weights must be finite and non-negative")
    norms = np.linalg.norm(emb, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(np.abs(norms[w > 0] - 1.0) > 1e-3):
        raise ValueError("fuse expects unit (L2-normalised) embeddings")
    if not np.any(w > 0):
        raise InputError(f"none of the {len(w)} frames can be fused: every one has weight 0 (a face under "
                         f"{MIN_FACE_PX:.0f} px wide, turned far to the side or without detail); choose another "
                         "track, or draw the face box on a frame where the face is larger and frontal")
    mean = (w[:, None] * emb).sum(axis=0) / w.sum()
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise InputError("the frames' embeddings cancel out (they point in opposite directions): the track holds "
                         "more than one person or no usable face; choose the frames by hand")
    return (mean / norm).astype(np.float32)
