import cv2
import numpy as np

from forensic_face.vision.degrade import degrade
from forensic_face.vision.quality import assess, noise_sigma, sharpness


def test_noise_estimate_tracks_added_noise(face_rgb):
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)
    base = noise_sigma(grey)
    rng = np.random.default_rng(0)
    for sigma in (5.0, 10.0, 20.0):
        noisy = np.clip(grey + rng.normal(0, sigma, grey.shape), 0, 255).astype(np.uint8)
        est = noise_sigma(noisy)
        assert abs(np.sqrt(max(est**2 - base**2, 0)) - sigma) < 0.25 * sigma


def test_blur_lowers_sharpness_and_hints_explain(face_rgb):
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)[100:260, 160:320]
    blurred = cv2.GaussianBlur(grey, (0, 0), 3)
    assert sharpness(blurred) < 0.2 * sharpness(grey)
    report = assess(degrade(grey, "severe", seed=0), face_px=18)
    text = " ".join(report.hints())
    assert "18 px" in text
    good = assess(grey, face_px=120)
    assert not any("px" in h for h in good.hints())
