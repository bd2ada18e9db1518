"""Image quality measures shown before any match is trusted: face size, blur, noise, exposure.

No reference image is needed: blur is the variance of the Laplacian, noise is Immerkaer's fast
estimate of the Gaussian noise sigma (1996), both on the grey face crop.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from forensic_face.vision.detect import DLIB5, FIVE_POINT, eye_centres, nose_point
from forensic_face.vision.frames import to_grey

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


@dataclass(frozen=True)
class QualityReport:
    """No-reference quality figures of a face: of its aligned crop, and of the face as the frame holds it."""

    face_px: float  # face box width in the original frame, pixels
    sharpness: float  # variance of the Laplacian of the grey crop (higher = sharper)
    noise_sigma: float  # estimated Gaussian noise sigma, 0..255 units
    mean_level: float  # mean grey level, 0..255
    contrast: float  # standard deviation of grey levels, 0..255
    detail_px: float = float("nan")  # the width the face's detail really has (:func:`detail_width`); NaN: unknown
    roll_deg: float = float("nan")  # in-plane rotation of the face, degrees (0: upright); NaN: unknown
    turn: float = float("nan")  # how far the face is turned to a side: 0 frontal, about 0.5 in profile

    @property
    def resolution_px(self) -> float:
        """The face's real resolution: its detail width when known, else its width in the frame."""
        return min(self.face_px, self.detail_px) if math.isfinite(self.detail_px) else self.face_px

    def hints(self) -> list[str]:
        """Plain-language warnings for the analyst."""
        out = [self._size_hint()] if self.resolution_px < 48 else []
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
        if math.isfinite(self.roll_deg) and abs(self.roll_deg) > ROLL_WARN_DEG:
            turn = "counter-clockwise" if self.roll_deg > 0 else "clockwise"
            out.append(f"face rotated by about {abs(self.roll_deg):.0f}° in the picture: turn the frame "
                       f"{abs(self.roll_deg):.0f}° {turn} so that the face is upright, and analyse it again")
        if math.isfinite(self.turn) and abs(self.turn) > TURN_WARN:
            out.append("face turned to the side: a frontal gallery photo compares poorly with it")
        return out

    def _size_hint(self) -> str:
        px, lost = self.resolution_px, ": identity detail is largely lost"
        if px < 0.7 * self.face_px:  # enlarged (or blurred) before it was saved: its width overstates it
            return (f"face {self.face_px:.0f} px wide in the frame but with the detail of about {px:.0f} px (enlarged "
                    f"or blurred before it was saved){lost if px < 24 else ''}")
        return f"face only {px:.0f} px wide{lost}" if px < 24 else f"small face ({px:.0f} px wide)"

    def as_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


#: In-plane rotation (degrees) above which the analyst is told to rotate the frame.
ROLL_WARN_DEG = 20.0
#: Turn (nose offset from the eyes' midpoint along the eye line, in eye distances) above which a face is
#: called turned to the side.
TURN_WARN = 0.3
#: The nose tip's offset (FIVE_POINT landmarks) over the nose base's (DLIB5) on the same faces: on the 500 clean LFW
#: faces both detectors found, the ratio of their medians is 1.28 and of their 90th percentiles 1.24
#: (research/yunet_vs_cascade.py).
NOSE_TIP_TURN_RATIO = 1.26
#: A face region shrunk and enlarged back may differ from itself by this share of its contrast (beyond what
#: its noise explains) and still be said to keep its detail.
DETAIL_TOLERANCE = 0.1


def detail_width(region: np.ndarray, noise: float) -> float:
    """The width (px) of the smallest copy of a face ``region`` (its box in the frame, grey) that keeps its detail.

    The region is shrunk to w px (area average) and enlarged back (bicubic); the smallest w whose round trip
    changes it by at most DETAIL_TOLERANCE of its contrast, after the part of the change its ``noise``
    (sigma) explains, is the detail the face has. A face enlarged from 20 px gives about 20-25 whatever its
    width in the frame; a sharp face gives about its width. Coarse (the steps are 8 %); NaN for a region
    smaller than 8 px."""
    g = to_grey(region).astype(np.float32)
    h, w = g.shape
    if w < 8 or h < 8:
        return float("nan")
    contrast = float(g.std()) or 1.0
    width = 6.0
    while width < w:
        wi, hi = int(round(width)), max(2, int(round(h * width / w)))
        back = cv2.resize(cv2.resize(g, (wi, hi), interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_CUBIC)
        change = float(np.sqrt(np.mean((back - g) ** 2)))
        noise_part = noise * math.sqrt(max(0.0, 1.0 - (wi / w) ** 2))  # the noise the shrinking removes
        if math.sqrt(max(change**2 - noise_part**2, 0.0)) <= DETAIL_TOLERANCE * contrast:
            return float(wi)
        width *= 1.08
    return float(w)


def pose_from_landmarks(landmarks: np.ndarray | None, kind: str = DLIB5) -> tuple[float, float]:
    """(roll in degrees, turn) of a face from its 5 landmarks of ``kind`` (detect.DLIB5 or detect.FIVE_POINT):
    roll is the eye line's angle, 180° off when the nose is above it (upside down); turn is the nose's
    offset from the eyes' midpoint along the eye line, in eye distances, on dlib's scale (FIVE_POINT's nose tip
    stands further out of the face than dlib's nose base: its offset is divided by NOSE_TIP_TURN_RATIO). NaNs
    without landmarks."""
    if landmarks is None or len(landmarks) < 5:
        return float("nan"), float("nan")
    pts = np.asarray(landmarks, np.float64)
    a, b = eye_centres(pts, kind)
    line = b - a
    dist = float(np.hypot(*line)) or 1.0
    unit = line / dist
    nose = nose_point(pts, kind) - (a + b) / 2
    roll = math.degrees(math.atan2(unit[1], unit[0]))
    if unit[0] * nose[1] - unit[1] * nose[0] < 0:  # the nose is above the eye line: upside down
        roll = roll - 180.0 if roll > 0 else roll + 180.0
    turn = float(np.dot(unit, nose) / dist)
    return roll, turn / NOSE_TIP_TURN_RATIO if kind == FIVE_POINT else turn


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


def assess(face_crop: np.ndarray, face_px: float, region: np.ndarray | None = None,
           landmarks: np.ndarray | None = None, roll_deg: float | None = None,
           landmark_kind: str = DLIB5) -> QualityReport:
    """Quality figures of an aligned face crop whose face was ``face_px`` wide in the frame; with the face's
    ``region`` of the frame (its box, unresampled) also the width its detail really has, and with its
    ``landmarks`` (of ``landmark_kind``) its roll and turn (``roll_deg`` when the rotation is known otherwise)."""
    g = to_grey(face_crop)
    roll, turn = pose_from_landmarks(landmarks, landmark_kind)
    detail = detail_width(region, noise_sigma(region)) if region is not None and min(region.shape[:2]) >= 8 \
        else float("nan")
    return QualityReport(face_px=float(face_px), sharpness=sharpness(g), noise_sigma=noise_sigma(g),
                         mean_level=float(g.mean()), contrast=float(g.std()), detail_px=detail,
                         roll_deg=roll if roll_deg is None else float(roll_deg), turn=turn)
