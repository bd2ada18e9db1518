"""The ArcFace five-point alignment (AlignSpec(mode="arcface")): the template's points land where the template
puts them, from the detector's dlib landmarks, through the pixels of the crop."""

import numpy as np
import pytest

from forensic_face.vision.align import (
    ARCFACE_TEMPLATE_112,
    DLIB5_IN_ARCFACE_112,
    AlignSpec,
    align_face,
    similarity_fit,
)
from forensic_face.vision.detect import FaceDetection


def _similarity(scale: float, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, np.array(shift, np.float64)[:, None]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _blob_frame(points: np.ndarray, sigma: float, shape: tuple[int, int]) -> np.ndarray:
    """A dark frame with a bright Gaussian spot centred (to sub-pixel) on each point."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    img = np.zeros(shape)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.clip(np.round(img * 250), 0, 255).astype(np.uint8)


def _centroid(img: np.ndarray, near: np.ndarray, radius: int = 6) -> np.ndarray:
    x0, y0 = (int(round(v)) - radius for v in near)
    win = img[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1].astype(np.float64)
    win = np.clip(win - 0.2 * win.max(), 0, None)  # the spot, without the neighbours' tails
    yy, xx = np.mgrid[0:win.shape[0], 0:win.shape[1]]
    return np.array([(win * xx).sum() / win.sum() + x0, (win * yy).sum() / win.sum() + y0])


@pytest.mark.parametrize("scale,angle,shift", [(2.6, 17.0, (260.0, 40.0)), (0.8, -9.0, (60.0, 50.0)),
                                               (1.0, 0.0, (100.0, 100.0))])
def test_template_points_land_on_the_template(scale: float, angle: float, shift: tuple[float, float]) -> None:
    """A synthetic face: the template's five points drawn as spots through a known similarity, the detector's
    landmarks exactly where dlib's points sit on that face. The crop puts every spot within 0.5 px of the
    template (2.6: the frame is reduced by the pyramid first; 0.8: enlarged)."""
    m = _similarity(scale, angle, shift)
    frame = _blob_frame(_apply(m, ARCFACE_TEMPLATE_112), 1.5 * scale, (520, 620))
    corners = _apply(m, np.array([[16.0, 24.0], [96.0, 24.0], [96.0, 104.0], [16.0, 104.0]]))
    box = (*corners.min(0), *corners.max(0))
    det = FaceDetection(box=box, score=1.0, method="dlib-hog",
                       landmarks=_apply(m, DLIB5_IN_ARCFACE_112).astype(np.float32))
    aligned = align_face(frame, det, AlignSpec(size=112, mode="arcface"))
    assert aligned.method == "five-point" and aligned.image.shape == (112, 112)
    found = np.array([_centroid(aligned.image, p) for p in ARCFACE_TEMPLATE_112])
    assert np.abs(found - ARCFACE_TEMPLATE_112).max() < 0.5, found - ARCFACE_TEMPLATE_112
    np.testing.assert_allclose(aligned.to_frame(ARCFACE_TEMPLATE_112), _apply(m, ARCFACE_TEMPLATE_112), atol=0.02)


def test_template_scales_with_the_crop_size() -> None:
    m = _similarity(1.5, 5.0, (50.0, 20.0))
    det = FaceDetection(box=(50.0, 20.0, 230.0, 200.0), score=1.0, method="dlib-hog",
                        landmarks=_apply(m, DLIB5_IN_ARCFACE_112).astype(np.float32))
    aligned = align_face(np.zeros((300, 300), np.uint8), det, AlignSpec(size=56, mode="arcface"))
    np.testing.assert_allclose(_apply(aligned.matrix, _apply(m, ARCFACE_TEMPLATE_112)), ARCFACE_TEMPLATE_112 / 2,
                               atol=1e-3)


def test_without_landmarks_the_box_places_the_template_eyes() -> None:
    det = FaceDetection(box=(100.0, 80.0, 200.0, 180.0), score=float("nan"), method="manual")
    aligned = align_face(np.zeros((300, 300), np.uint8), det, AlignSpec(size=112, mode="arcface"))
    assert aligned.method == "box"
    eyes = np.array([[100 + (0.464 - 0.391 / 2) * 100, 80 + 0.252 * 100],
                     [100 + (0.464 + 0.391 / 2) * 100, 80 + 0.252 * 100]])  # where dlib's box puts the eyes
    np.testing.assert_allclose(_apply(aligned.matrix, eyes), ARCFACE_TEMPLATE_112[:2], atol=1e-6)


def test_unknown_mode_is_refused() -> None:
    det = FaceDetection(box=(0.0, 0.0, 50.0, 50.0), score=1.0, method="manual")
    with pytest.raises(ValueError, match="unknown alignment mode"):
        align_face(np.zeros((60, 60), np.uint8), det, AlignSpec(size=32, mode="ears"))


def test_similarity_fit_recovers_a_similarity_and_never_reflects() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (7, 2))
    m = _similarity(0.7, 123.0, (-4.0, 9.5))
    np.testing.assert_allclose(similarity_fit(src, _apply(m, src)), m, atol=1e-9)
    mirrored = src * [-1.0, 1.0]
    fit = similarity_fit(src, mirrored)
    assert np.linalg.det(fit[:, :2]) > 0  # a rotation and scale, not the mirror the points ask for
    with pytest.raises(ValueError, match="coincide"):
        similarity_fit(np.ones((3, 2)), src[:3])
