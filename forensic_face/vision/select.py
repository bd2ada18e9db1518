"""Choose the frames of a clip worth analysing: sharp frames in which a face is found.

Every frame (or every ``step``-th) is scored for sharpness on a reduced grey copy, which is cheap;
the detector, which is not, runs only on the sharpest candidates, spread out in time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.errors import VideoDamagedError
from forensic_face.core.progress import Progress
from forensic_face.vision.detect import FaceDetection, FaceDetector
from forensic_face.vision.frames import Frame, iter_video_frames, to_grey, video_info
from forensic_face.vision.quality import sharpness

log = logging.getLogger(__name__)

#: Budget for the decoded frames kept while scanning, bytes: 48 frames (4 x the default 12 candidates)
#: up to 1080p as before; fewer, but never fewer than ``k``, for larger frames (5 at 8K).
KEPT_FRAMES_BYTES = 512 << 20


@dataclass(frozen=True)
class RankedFrame:
    """A frame chosen for analysis, with the face found in it and why it ranked where it did."""

    frame: Frame
    face: FaceDetection
    score: float  # sharpness of the face region x a size factor (higher is better)


@dataclass(frozen=True)
class FrameSelection:
    """Result of scanning a clip: per-frame sharpness (for a timeline) and the best frames."""

    timestamps_s: np.ndarray  # (N,) of scanned frames
    indices: np.ndarray  # (N,) frame indices
    sharpness: np.ndarray  # (N,) whole-frame sharpness
    best: list[RankedFrame]  # best first
    warnings: tuple[str, ...] = ()  # e.g. the damage that ended the scan early (the frames before it were used)


def select_best_frames(
    path: str | Path,
    detector: FaceDetector,
    *,
    k: int = 3,
    min_gap_s: float = 0.5,
    candidates: int = 12,
    max_scan: int = 1500,
    progress: Progress | None = None,
) -> FrameSelection:
    """Scan a video and return up to ``k`` sharp frames with a detected face, at least ``min_gap_s`` apart.

    ``candidates`` frames (the sharpest, spread in time) are passed to the detector. Clips longer
    than ``max_scan`` frames are scanned with a stride.
    """
    info = video_info(path)
    step = max(1, int(np.ceil(info.frame_count / max_scan))) if info.frame_count > 0 else 1
    ts, idx, sharp = [], [], []
    kept: dict[int, tuple[float, Frame]] = {}  # frame index -> (sharpness, frame)
    total = max(info.frame_count // step, 1)
    warnings: tuple[str, ...] = ()
    try:
        for n, frame in enumerate(iter_video_frames(path, step=step)):
            if progress is not None:
                progress.update(min(n, total), total + candidates, "scoring sharpness")
            ts.append(frame.timestamp_s or 0.0)
            idx.append(frame.index)
            sharp.append(sharpness(_reduce(frame.image)))
            kept[frame.index] = (sharp[-1], frame)
            if len(kept) > _keep_limit(frame, k, candidates):  # memory bounded: only the sharpest stay decoded
                kept.pop(min(kept, key=lambda i: kept[i][0]))
    except VideoDamagedError as exc:  # the frames before the damage are sound: rank those, and say so
        if not ts:
            raise
        warnings = (str(exc),)
    ts_a, idx_a, sharp_a = np.array(ts), np.array(idx), np.array(sharp)
    order = [i for i in np.argsort(-sharp_a) if idx_a[i] in kept]
    chosen = _spread(order, ts_a, min_gap_s, candidates)
    ranked: list[RankedFrame] = []
    for n, i in enumerate(chosen):
        if progress is not None:
            progress.update(total + n, total + candidates, "detecting faces")
        frame = kept[int(idx_a[i])][1]
        faces = detector.detect(frame.image)
        if not faces:
            continue
        face = faces[0]
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        region = frame.image[max(0, y0) : y1, max(0, x0) : x1]
        face_sharp = sharpness(region) if region.size else 0.0
        ranked.append(RankedFrame(frame=frame, face=face, score=face_sharp * min(1.0, face.width / 64.0)))
    ranked.sort(key=lambda r: r.score, reverse=True)
    if progress is not None:
        progress.update(total + candidates, total + candidates, "done")
    return FrameSelection(timestamps_s=ts_a, indices=idx_a, sharpness=sharp_a, best=_dedupe(ranked, min_gap_s, k),
                          warnings=warnings)


def _keep_limit(frame: Frame, k: int, candidates: int) -> int:
    """How many decoded frames the scan keeps: 4 x ``candidates``, fewer when they exceed the byte budget."""
    return max(k, min(4 * candidates, KEPT_FRAMES_BYTES // max(frame.image.nbytes, 1)))


def _reduce(image: np.ndarray, long_side: int = 320) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    grey = to_grey(image)
    return grey if scale >= 1 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _spread(order: list[int], ts: np.ndarray, gap: float, n: int) -> list[int]:
    """Greedy pick of up to ``n`` indices in ``order`` that are at least ``gap`` seconds apart."""
    picked: list[int] = []
    for i in order:
        if all(abs(ts[i] - ts[j]) >= gap for j in picked):
            picked.append(i)
            if len(picked) == n:
                break
    return picked


def _dedupe(ranked: list[RankedFrame], gap: float, k: int) -> list[RankedFrame]:
    out: list[RankedFrame] = []
    for r in ranked:
        if all(abs((r.frame.timestamp_s or 0) - (o.frame.timestamp_s or 0)) >= gap for o in out):
            out.append(r)
        if len(out) == k:
            break
    return out
