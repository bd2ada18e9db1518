"""Image quality measures shown before any match is trusted: face size, blur, noise, exposure.

No reference image is needed: blur is the variance of the Laplacian, noise is Immerkaer's fast
estimate of the Gaussian noise sigma (1996), both on the grey face crop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from forensic_face.vision.frames import to_grey

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


@dataclass(frozen=True)
class QualityReport:
    """No-reference quality figures of a face crop."""

    face_px: float  # face box width in the original frame, pixels
    sharpness: float  # variance of the Laplacian of the grey crop (higher = sharper)
    noise_sigma: float  # estimated Gaussian noise sigma, 0..255 units
    mean_level: float  # mean grey level, 0..255
    contrast: float  # standard deviation of grey levels, 0..255

    def hints(self) -> list[str]:
        """Plain-language warnings for the analyst."""
        out = []
        if self.face_px < 24:
            out.append(f"face only {self.face_px:.0f} px wide: identity detail is largely lost")
        elif self.face_px < 48:
            out.append(f"small face ({self.face_px:.0f} px wide)")
        if self.sharpness < 30:
            out.append("strong blur")
        if self.noise_sigma > 10:
            out.append(f"heavy noise (sigma about {self.noise_sigma:.0f})")
        if self.mean_level < 50:
            out.append("under-exposed")
        elif self.mean_level > 205:
            out.append("over-exposed")
        if self.contrast < 20:
            out.append("low contrast")
        return out

    def as_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image."""
    return float(cv2.Laplacian(to_grey(image), cv2.CV_64F).var())


def noise_sigma(image: np.ndarray) -> float:
    """Immerkaer's estimate of the Gaussian noise standard deviation (0..255 units)."""
    g = to_grey(image).astype(np.float64)
    h, w = g.shape
    if h < 3 or w < 3:
        return 0.0
    conv = cv2.filter2D(g, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(conv).sum() / (6.0 * (w - 2) * (h - 2)))


def assess(face_crop: np.ndarray, face_px: float) -> QualityReport:
    """Quality figures of an aligned face crop whose face was ``face_px`` wide in the frame."""
    g = to_grey(face_crop)
    return QualityReport(
        face_px=float(face_px),
        sharpness=sharpness(g),
        noise_sigma=noise_sigma(g),
        mean_level=float(g.mean()),
        contrast=float(g.std()),
    )
