"""Synthetic clips of the clip evaluation (forensic_face.training.clip_eval): each frame moved and degraded on
its own, the same at every run, and cropped back where the clean face is for the reconstruction's score."""

from __future__ import annotations

import cv2
import numpy as np

from forensic_face.training.clip_eval import _in_clean_alignment, clip_frame
from forensic_face.vision.align import AlignSpec, align_face
from forensic_face.vision.detect import FaceDetector


def _face(face_rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (250, 250), interpolation=cv2.INTER_AREA)


def test_frames_differ_from_each_other_and_repeat_exactly(face_rgb: np.ndarray) -> None:
    grey = _face(face_rgb)
    a, ma = clip_frame(grey, "severe", (3, 0, 2))
    b, mb = clip_frame(grey, "severe", (3, 1, 2))
    again, m_again = clip_frame(grey, "severe", (3, 0, 2))
    assert np.array_equal(a, again) and np.array_equal(ma, m_again)
    assert not np.allclose(ma, mb) and np.abs(a.astype(int) - b.astype(int)).mean() > 2


def test_the_clean_alignment_undoes_each_frames_motion(face_rgb: np.ndarray) -> None:
    grey = _face(face_rgb)
    det = FaceDetector().detect(grey)[0]
    clean = align_face(grey, det, AlignSpec(size=64))
    for f in range(3):
        frame, motion = clip_frame(grey, "clean", (0, f, 0))
        back = _in_clean_alignment(frame, clean.matrix, motion, 64)
        moved = cv2.warpAffine(frame, clean.matrix, (64, 64), flags=cv2.INTER_CUBIC)
        err = np.abs(back.astype(int) - clean.image.astype(int)).mean()
        assert err < 3.0
        assert err < 0.5 * np.abs(moved.astype(int) - clean.image.astype(int)).mean()


def test_the_pooled_companion_share_is_the_best_rank_1_that_keeps_the_pair_auc() -> None:
    """The clip calibration's choice of the companion share of pooled frames: a scale whose pair AUC falls more
    than the tolerance below the frames' own share's in any condition is not taken, however good its rank-1; of
    the rest the best mean rank-1 wins, and on a tie the larger scale (the nearer to the frames' own share)."""
    import pytest

    from forensic_face.training.clip_eval import SHARE_AUC_TOLERANCE, choose_pooled_share

    auc = {1.0: [0.98, 0.90], 0.5: [0.981, 0.899], 0.25: [0.98, 0.90 - 2 * SHARE_AUC_TOLERANCE], 0.0: [0.97, 0.88]}
    rank_1 = {1.0: [0.60, 0.20], 0.5: [0.65, 0.21], 0.25: [0.70, 0.25], 0.0: [0.72, 0.30]}
    assert choose_pooled_share(rank_1, auc) == 0.5  # 0.25 and 0 rank better but lose AUC
    assert choose_pooled_share(rank_1 | {0.5: [0.60, 0.20]}, auc) == 1.0  # a tie: the frames' own share
    assert choose_pooled_share({1.0: [0.5], 0.5: [0.4]}, {1.0: [0.9], 0.5: [0.95]}) == 1.0
    with pytest.raises(ValueError, match="scale 1"):
        choose_pooled_share({0.5: [0.4]}, {0.5: [0.9]})
