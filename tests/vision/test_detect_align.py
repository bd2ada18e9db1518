import cv2
import numpy as np
import pytest

from forensic_face.core.errors import NoFaceFoundError
from forensic_face.vision.align import AlignSpec, align_face
from forensic_face.vision.detect import FaceDetector


def test_finds_the_face_with_landmarks(detector, frame_640):
    faces = detector.detect(frame_640)
    assert len(faces) == 1
    face = faces[0]
    assert face.method == "dlib-hog"
    x0, y0, x1, y1 = face.box
    assert 230 < x0 < 270 and 60 < y0 < 100 and 70 < face.width < 110  # the astronaut's face
    left, right = face.eye_centres()
    assert left[0] < right[0]
    assert x0 < left[0] < right[0] < x1 and y0 < left[1] < y0 + 0.5 * face.height


def test_small_face_found_by_upscaling(detector, frame_640):
    small = cv2.resize(frame_640, (160, 120), interpolation=cv2.INTER_AREA)  # face about 22 px wide
    face = detector.detect_one(small)
    assert face.method in ("dlib-hog-x4", "dlib-hog-x2", "haar-x2")
    assert 14 < face.width < 32


def test_no_face_says_so_and_manual_box_still_aligns(detector):
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (240, 320), dtype=np.uint8), (0, 0), 3)
    with pytest.raises(NoFaceFoundError, match=r"no face found in the \d+x\d+ frame \(tried"):
        detector.detect_one(texture)
    det = detector.from_box(texture, (100, 80, 116, 96))  # a 16 px box: too small for landmarks
    assert det.method == "manual" and det.landmarks is None
    aligned = align_face(texture, det, AlignSpec(size=64))
    assert aligned.method == "box" and aligned.image.shape == (64, 64)


def test_detector_without_haar_reports_steps(frame_640):
    from forensic_face.vision.detect import DetectorConfig

    det = FaceDetector(DetectorConfig(upscales=(1,), haar_fallback=False))
    tiny = cv2.resize(frame_640, (160, 120), interpolation=cv2.INTER_AREA)
    with pytest.raises(NoFaceFoundError, match="x1\\)"):
        det.detect_one(tiny)


def test_alignment_puts_eyes_at_template_and_inverts(detector, frame_640):
    spec = AlignSpec(size=112, eye_y=0.40, eye_dist=0.34)
    face = detector.detect_one(frame_640)
    aligned = align_face(frame_640, face, spec)
    assert aligned.method == "eyes" and aligned.image.shape == (112, 112, 3)
    left, right = face.eye_centres()
    m = aligned.matrix
    l_crop = m[:, :2] @ left + m[:, 2]
    r_crop = m[:, :2] @ right + m[:, 2]
    assert np.allclose(l_crop, [56 - 0.17 * 112, 0.40 * 112], atol=0.01)
    assert np.allclose(r_crop, [56 + 0.17 * 112, 0.40 * 112], atol=0.01)
    assert np.allclose(aligned.to_frame(np.vstack([l_crop, r_crop])), np.vstack([left, right]), atol=1e-6)


def test_alignment_undoes_in_plane_rotation(detector, frame_640):
    h, w = frame_640.shape[:2]
    rot = cv2.warpAffine(frame_640, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h))
    a = align_face(frame_640, detector.detect_one(frame_640), AlignSpec(size=96)).image.astype(float)
    b = align_face(rot, detector.detect_one(rot), AlignSpec(size=96)).image.astype(float)
    # rotation removed: the two crops agree far better than either with a crop rotated 20 degrees
    c = cv2.warpAffine(a, cv2.getRotationMatrix2D((48, 48), 20, 1.0), (96, 96))
    assert np.abs(a - b).mean() < 0.5 * np.abs(a - c).mean()


def test_large_face_is_reduced_without_aliasing(detector, face_rgb):
    big = cv2.resize(face_rgb, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    face = detector.detect_one(big)
    crop = align_face(big, face, AlignSpec(size=48))
    assert crop.scale < 0.25 and crop.image.shape == (48, 48, 3)


@pytest.mark.shared_data
def test_detection_rate_on_lfw_sample(detector, shared_data):
    files = sorted((shared_data / "lfw").glob("*/*_0001.jpg"))[:: 60][:80]
    found = sum(bool(detector.detect(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))) for f in files)
    assert found / len(files) >= 0.95


def test_a_face_box_with_reversed_corners_or_outside_the_frame_is_refused(detector, frame_640) -> None:
    """A box of 700,10,20,900 on a 640x480 frame was silently reordered and clamped; now it is refused, saying
    why, and a box drawn to the frame's very edge still works."""
    from forensic_face.core.errors import InputError

    with pytest.raises(InputError, match=r"700,10,20,900 is not x0,y0 \(top left\) then x1,y1"):
        detector.from_box(frame_640, (700, 10, 20, 900))
    with pytest.raises(InputError, match=r"reaches outside the 640x480 frame"):
        detector.from_box(frame_640, (600, 10, 700, 120))
    with pytest.raises(InputError, match="smaller than 4 px"):
        detector.from_box(frame_640, (10, 10, 12, 40))
    edge = detector.from_box(frame_640, (540, 380, 641, 481))  # a pixel over: clamped
    assert edge.box == (540.0, 380.0, 640.0, 480.0) and edge.method == "manual"
