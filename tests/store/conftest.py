"""Fixtures of the store's tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="module")
def people_folder(tmp_path_factory: pytest.TempPathFactory, face_rgb: np.ndarray) -> Path:
    """Three people of two images each; Person_2 also has an image without a face and a broken one."""
    root = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(1)
    for p in range(3):
        d = root / f"Person_{p}"
        d.mkdir()
        for i in range(2):
            img = np.clip(face_rgb.astype(np.int16) + rng.integers(-20, 20, 3) + 15 * p, 0, 255).astype(np.uint8)
            img = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(d / f"img_{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    noise = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "Person_2" / "no_face.png"), noise)
    (root / "Person_2" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root
