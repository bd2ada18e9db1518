"""YuNet, the clip detector: it finds a real face with its five points in the ArcFace order, the shipped model is
checked before use, and its points drive the alignment and the pose the way dlib's do."""

import shutil

import numpy as np
import pytest

from forensic_face.core.errors import ModelsNotTrainedError
from forensic_face.paths import models_dir
from forensic_face.vision.align import ARCFACE_TEMPLATE_112, AlignSpec, align_face
from forensic_face.vision.detect import DLIB5, FIVE_POINT
from forensic_face.vision.quality import NOSE_TIP_TURN_RATIO, pose_from_landmarks
from forensic_face.vision.yunet import YUNET_FILE, YuNetConfig, YuNetDetector


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


def test_finds_the_face_with_five_points_in_the_template_order(yunet, frame_640, detector):
    faces = yunet.detect(frame_640)
    assert len(faces) == 1
    face = faces[0]
    assert face.method == "yunet" and face.landmark_kind == FIVE_POINT and 0.6 <= face.score <= 1.0
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    # the same face as the dlib cascade finds, and eyes within a tenth of their distance of its eyes
    ref = detector.detect(frame_640)[0]
    assert abs(np.mean(face.box[0::2]) - np.mean(ref.box[0::2])) < 0.2 * ref.width
    ref_eyes, eyes = np.stack(ref.eye_centres()), np.stack(face.eye_centres())
    assert np.hypot(*(eyes - ref_eyes).T).max() < 0.1 * np.hypot(*(ref_eyes[1] - ref_eyes[0]))


def test_nothing_on_a_picture_without_a_face(yunet):
    from skimage import data

    assert yunet.detect(data.coffee()) == []
    assert yunet.detect(np.full((48, 64), 128, np.uint8)) == []


def test_the_upscale_pass_finds_a_face_too_small_for_the_first(frame_640):
    import cv2

    small = cv2.resize(frame_640, (160, 120), interpolation=cv2.INTER_AREA)  # the face about 22 px wide
    once, twice = YuNetDetector(), YuNetDetector(YuNetConfig(upscales=(1, 2)))
    faces = twice.detect(small)
    assert faces and faces[0].method in ("yunet", "yunet-x2")
    assert len(once.detect(small)) <= len(faces)
    assert all(0 <= v <= 160 for v in faces[0].box[0::2]) and all(0 <= v <= 120 for v in faces[0].box[1::2])


def test_a_damaged_model_file_is_refused_with_what_to_do(tmp_path):
    bad = tmp_path / YUNET_FILE
    shutil.copy(models_dir() / YUNET_FILE, bad)
    data = bytearray(bad.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelsNotTrainedError, match="SHA-256.*reinstall"):
        YuNetDetector(model_path=bad)
    with pytest.raises(ModelsNotTrainedError, match="cannot be read"):
        YuNetDetector(model_path=tmp_path / "missing.onnx")


def test_arcface_alignment_puts_yunet_points_on_the_template(yunet, frame_640):
    face = yunet.detect(frame_640)[0]
    aligned = align_face(frame_640, face, AlignSpec(size=112, mode="arcface"))
    assert aligned.method == "five-point"
    mapped = face.landmarks @ aligned.matrix[:, :2].T + aligned.matrix[:, 2]
    assert np.abs(mapped - ARCFACE_TEMPLATE_112).max() < 6.0  # a least-squares fit of five real points
    eyes = align_face(frame_640, face, AlignSpec(size=64))  # the project's own networks: eye centres placed
    assert eyes.method == "eyes"


def test_pose_reads_the_nose_tip_on_the_dlib_scale():
    # a frontal face: eyes level, nose tip and mouth centred below
    front = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)
    roll, turn = pose_from_landmarks(front, FIVE_POINT)
    assert abs(roll) < 1e-6 and abs(turn) < 1e-6
    turned = front.copy()
    turned[2, 0] += 13  # the nose tip a third of the eye distance to the side
    _, t5 = pose_from_landmarks(turned, FIVE_POINT)
    assert t5 == pytest.approx(13 / 40 / NOSE_TIP_TURN_RATIO, rel=1e-4) and 1.2 < NOSE_TIP_TURN_RATIO < 1.35
    # dlib order: outer and inner corner of each eye, then the nose base
    dlib = np.array([[88, 50], [72, 50], [32, 50], [48, 50], [60, 68]], np.float32)
    assert pose_from_landmarks(dlib, DLIB5) == pytest.approx((0.0, 0.0), abs=1e-6)
