"""Shared fixtures. Images come from scikit-image's bundled samples or are generated here."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def face_rgb() -> np.ndarray:
    """A 512x512 RGB photo with one frontal face (scikit-image's 'astronaut' sample)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def frame_640(face_rgb: np.ndarray) -> np.ndarray:
    """A 640x480 RGB frame with the face at about 88 px wide."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 64:576] = cv2.resize(face_rgb, (512, 480), interpolation=cv2.INTER_AREA)
    return canvas


@pytest.fixture(scope="session")
def detector():
    from forensic_face.vision.detect import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it are skipped with a reason when it is absent."""
    from forensic_face.paths import shared_data_dir

    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data (LFW and voices) is not present; set FORENSIC_FACE_DATA to run this test")
    return path
