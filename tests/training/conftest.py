"""Fixtures of the training tests: small LFW-style folders generated from the astronaut face."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def make_face_folder(face_rgb: np.ndarray) -> Callable[..., Path]:
    """``make(root, people, per_person, seed, lighting)`` writes ``people`` x ``per_person`` grey 250x250 frames
    of the astronaut face, each rotated and scaled a little (and, with ``lighting``, each person's brightness
    and contrast changed), one sub-folder per 'person'; returns ``root``. Identity is not what these tests test:
    the plumbing is."""
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)

    def make(root: Path, people: int, per_person: int, seed: int, lighting: bool) -> Path:
        rng = np.random.default_rng(seed)
        for p in range(people):
            person = f"Person_{p:02d}"
            (root / person).mkdir(parents=True)
            for i in range(per_person):
                s = rng.uniform(0.9, 1.1)
                m = cv2.getRotationMatrix2D((256, 200), rng.uniform(-8, 8), s)
                img = cv2.warpAffine(grey, m, (512, 512), borderMode=cv2.BORDER_REFLECT)[20:420, 60:460]
                img = cv2.resize(img, (250, 250), interpolation=cv2.INTER_AREA)
                if lighting:
                    img = np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.2) + 10 * p, 0, 255).astype(np.uint8)
                cv2.imwrite(str(root / person / f"{person}_{i + 1:04d}.jpg"), img)
        return root

    return make
