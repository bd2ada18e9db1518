"""Fusing a track: a large sharp frontal face counts more than a small blurred one, unusable faces count for
nothing, and a track with no usable face is refused with a reason."""

import cv2
import numpy as np
import pytest

from forensic_face.core.errors import InputError
from forensic_face.engine.fusion import frame_weight, fuse, weight_factors
from forensic_face.vision.detect import FaceDetection
from forensic_face.vision.frames import to_grey
from forensic_face.vision.track import FaceQuality, measure_face
from forensic_face.vision.yunet import YuNetDetector


def _quality(**changes) -> FaceQuality:
    base = {"face_px": 90.0, "sharpness": 400.0, "noise_sigma": 2.0, "roll_deg": 0.0, "turn": 0.0, "score": 0.9}
    return FaceQuality(**{**base, **changes})


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_a_sharp_large_face_outweighs_a_blurred_small_one(frame_640):
    """Measured on real pixels: the astronaut's face as the frame holds it, and shrunk to 24 px and blurred."""
    grey = to_grey(frame_640)
    det = YuNetDetector().detect(frame_640)[0]
    small = cv2.GaussianBlur(cv2.resize(grey, None, fx=0.27, fy=0.27, interpolation=cv2.INTER_AREA), (5, 5), 1.5)
    small_det = FaceDetection(box=tuple(v * 0.27 for v in det.box), score=det.score, method="yunet",
                              landmarks=det.landmarks * 0.27, landmark_kind=det.landmark_kind)
    sharp_q, blur_q = measure_face(grey, det), measure_face(small, small_det)
    assert sharp_q.face_px > 3 * blur_q.face_px and sharp_q.sharpness > 3 * blur_q.sharpness
    big, little = frame_weight(sharp_q), frame_weight(blur_q)
    assert big > 3 * little > 0
    a, b = _unit([1.0, 0.0, 0.0]), _unit([0.0, 1.0, 0.0])
    fused = fuse(np.stack([a, b]), np.array([big, little]))
    assert fused @ a > fused @ b and np.linalg.norm(fused) == pytest.approx(1.0, abs=1e-6)


def test_the_weight_never_falls_as_a_face_grows_or_sharpens():
    sizes = [frame_weight(_quality(face_px=px)) for px in (8, 12, 20, 40, 64, 200)]
    sharps = [frame_weight(_quality(sharpness=s)) for s in (0, 5, 30, 100, 1000)]
    assert sizes == sorted(sizes) and sharps == sorted(sharps)
    assert sizes[0] == sizes[1] == 0.0 and sizes[-1] == sizes[-2]  # nothing under 12 px, full from 64 px
    assert sharps[0] == 0.0 and weight_factors(_quality(sharpness=30.0))["sharpness"] == pytest.approx(0.5)


def test_unusable_faces_weigh_nothing_and_take_no_part():
    assert frame_weight(_quality(face_px=10)) == 0.0
    assert frame_weight(_quality(turn=0.9)) == 0.0  # turned beyond the pose factor's reach
    assert frame_weight(_quality(sharpness=0.0)) == 0.0
    assert 0 < frame_weight(_quality(turn=float("nan"))) < frame_weight(_quality())  # no landmarks: half
    assert frame_weight(_quality(score=float("nan"))) == pytest.approx(frame_weight(_quality(score=1.0)))  # drawn
    rng = np.random.default_rng(0)
    emb = _unit(rng.normal(size=(5, 16)))
    w = np.array([0.5, 0.0, 0.2, 0.0, 0.3])
    assert np.allclose(fuse(emb, w), fuse(emb[[0, 2, 4]], w[[0, 2, 4]]))
    assert np.allclose(fuse(emb, np.ones(5)), _unit(emb.mean(axis=0)))


def test_a_track_without_a_usable_face_is_refused_with_a_reason():
    emb = _unit(np.eye(3))
    with pytest.raises(InputError, match="none of the 3 frames can be fused.*under 12 px"):
        fuse(emb, np.zeros(3))
    with pytest.raises(InputError, match="cancel out"):
        fuse(np.stack([emb[0], -emb[0]]), np.ones(2))
    with pytest.raises(ValueError, match="unit"):
        fuse(emb * 2, np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        fuse(emb, np.array([1.0, -0.5, 1.0]))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fuse(emb, np.ones(2))
