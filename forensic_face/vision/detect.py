"""Face detection with landmarks, offline.

The detector is a cascade of increasingly expensive steps, stopping at the first that finds a face:

1. dlib's HOG detector at the frame's own resolution (finds faces from about 80 px wide);
2. the same on the frame upscaled (x2, then x4 while the upscaled frame stays under a pixel cap),
   which reaches faces down to about 20 px;
3. OpenCV's Haar cascade on the frame upscaled x2 (weaker, kept as a last resort).

dlib's 5-point landmark predictor then places the eye corners and nose. When every step fails the
caller gets :class:`NoFaceFoundError` and may hand in a face box drawn by hand
(:meth:`FaceDetector.from_box`). The model files come from the ``face_recognition_models`` package
(installed from the package registry); nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.errors import ForensicFaceError, InputError, NoFaceFoundError
from forensic_face.vision.frames import to_grey

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in frame pixels

#: Landmark kinds. dlib's predictor gives the image-right eye's outer and inner corners, the image-left eye's outer
#: and inner corners, then the base of the nose; YuNet (:mod:`forensic_face.vision.yunet`) gives the points of the
#: ArcFace template: the image-left and image-right eye centres, the nose tip, the image-left and image-right mouth
#: corners.
DLIB5 = "dlib5"
FIVE_POINT = "five-point"


@dataclass(frozen=True)
class FaceDetection:
    """A face found in (or drawn on) a frame. Coordinates are frame pixels."""

    box: Box
    score: float
    method: str  # "dlib-hog", "dlib-hog-x2", "dlib-hog-x4", "haar-x2", "yunet", "manual"
    landmarks: np.ndarray | None = None  # (5, 2) float32 x, y, in the order ``landmark_kind`` names
    extra: dict = field(default_factory=dict)
    landmark_kind: str = DLIB5  # DLIB5 or FIVE_POINT

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def eye_centres(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(image-left eye, image-right eye) centres as (2,) arrays, or None without landmarks."""
        return eye_centres(self.landmarks, self.landmark_kind)

    def as_dict(self) -> dict:
        """JSON-ready description for results and the audit log."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "method": self.method,
            "landmarks": None if self.landmarks is None else np.round(self.landmarks, 2).tolist(),
            "landmark_kind": self.landmark_kind,
        }


def eye_centres(landmarks: np.ndarray | None, kind: str = DLIB5) -> tuple[np.ndarray, np.ndarray] | None:
    """(image-left eye, image-right eye) centres as (2,) arrays from five ``landmarks`` of ``kind``; None without."""
    if landmarks is None:
        return None
    if kind == FIVE_POINT:
        a, b = np.asarray(landmarks[0]), np.asarray(landmarks[1])
    elif kind == DLIB5:
        a, b = landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)
    else:
        raise ValueError(f"unknown landmark kind {kind!r} ({DLIB5}, {FIVE_POINT})")
    return (a, b) if a[0] <= b[0] else (b, a)


def nose_point(landmarks: np.ndarray, kind: str = DLIB5) -> np.ndarray:
    """The nose landmark (2,): the base of the nose (DLIB5) or its tip (FIVE_POINT)."""
    return np.asarray(landmarks[2] if kind == FIVE_POINT else landmarks[4])


def _model_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)  # the PyInstaller build carries the model files as data
    if frozen and (Path(frozen) / "face_recognition_models" / "models").is_dir():
        return Path(frozen) / "face_recognition_models" / "models"
    spec = importlib.util.find_spec("face_recognition_models")  # locate without importing (it needs pkg_resources)
    if spec is None or spec.origin is None:
        raise ForensicFaceError(
            "the face_recognition_models package is not installed; reinstall forensic-face with its dependencies"
        )
    return Path(spec.origin).parent / "models"


def check_box(box: Box, width: int, height: int) -> Box:
    """A face ``box`` given by the caller (e.g. drawn by the analyst), clamped to the ``width`` x ``height`` frame.

    Raises :class:`InputError` when it is not (x0, y0, x1, y1) with x1 > x0 and y1 > y0, reaches outside the
    frame by more than 2 px, or is under 4 px.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    text = ",".join(f"{v:g}" for v in (x0, y0, x1, y1))
    if not all(np.isfinite((x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
        raise InputError(f"the face box {text} is not x0,y0 (top left) then x1,y1 (bottom right) with x1 > x0 "
                         "and y1 > y0; nothing was analysed")
    slack = 2.0  # a box drawn to the frame's edge may overshoot it by a pixel or two: that is clamped
    if x0 < -slack or y0 < -slack or x1 > width + slack or y1 > height + slack:
        raise InputError(f"the face box {text} reaches outside the {width}x{height} frame (x 0-{width}, y 0-{height}); "
                         "draw it inside the frame (nothing was analysed)")
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise InputError(f"the face box {text} is smaller than 4 px; draw it around the whole face")
    return x0, y0, x1, y1


def dlib_model_path(name: str) -> Path:
    """Path of a model file shipped in the ``face_recognition_models`` package."""
    path = _model_dir() / name
    if not path.is_file():
        raise ForensicFaceError(f"model file {name} is missing from the face_recognition_models package")
    return path


def haar_cascade_path() -> Path:
    import cv2.data

    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class DetectorConfig:
    """What the detection cascade tries, in order; defaults chosen by the LFW measurement in README."""

    upscales: tuple[int, ...] = (1, 2, 4)  # HOG passes at these upscale factors
    max_upscaled_pixels: int = 5_000_000  # skip an upscale pass whose image would be larger than this
    haar_fallback: bool = True  # try OpenCV's Haar cascade (on a x2 image) when HOG finds nothing
    min_face_px: int = 12  # ignore detections narrower than this (noise)
    hog_threshold: float = 0.0  # dlib HOG score threshold (-0.2 found no more LFW faces, added false ones)


class FaceDetector:
    """dlib HOG + 5-point landmarks, with upscaling and a Haar fallback. Thread-safe; load once, reuse."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        import dlib

        self.config = config or DetectorConfig()
        self._hog = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5_face_landmarks.dat")))
        self._haar = cv2.CascadeClassifier(str(haar_cascade_path())) if self.config.haar_fallback else None
        self._dlib = dlib
        self._lock = threading.Lock()  # dlib objects are not documented as re-entrant

    # -- detection -------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces in ``image`` ((H, W) or (H, W, 3) uint8 RGB), best first; empty if none found."""
        grey = to_grey(image)
        found: list[FaceDetection] = []
        for factor in self.config.upscales:
            if factor > 1 and grey.size * factor * factor > self.config.max_upscaled_pixels:
                continue
            found = self._hog_pass(grey, factor)
            if found:
                break
        if not found and self._haar is not None:
            found = self._haar_pass(grey)
        found = [d for d in found if d.width >= self.config.min_face_px]
        found.sort(key=lambda d: (d.score, d.width), reverse=True)
        return [self._with_landmarks(grey, d) for d in found]

    def detect_one(self, image: np.ndarray) -> FaceDetection:
        """The most confident face; raises :class:`NoFaceFoundError` when there is none."""
        faces = self.detect(image)
        if not faces:
            h, w = image.shape[:2]
            raise NoFaceFoundError(
                f"no face found in the {w}x{h} frame (tried dlib HOG at x{', x'.join(map(str, self.config.upscales))}"
                f"{' and a Haar cascade' if self._haar is not None else ''})"
            )
        return faces[0]

    def from_box(self, image: np.ndarray, box: Box) -> FaceDetection:
        """A detection from a face box given by the caller (e.g. drawn by the analyst).

        Landmarks are predicted inside the box when it is at least 24 px wide; below that the
        alignment falls back to the box alone.
        """
        h, w = image.shape[:2]
        det = FaceDetection(box=check_box(box, w, h), score=float("nan"), method="manual")
        if det.width >= 24:
            det = self._with_landmarks(to_grey(image), det)
        return det

    # -- internals -------------------------------------------------------------------------------
    def _hog_pass(self, grey: np.ndarray, factor: int) -> list[FaceDetection]:
        img = grey if factor == 1 else cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        with self._lock:
            rects, scores, _ = self._hog.run(img, 0, self.config.hog_threshold)
        name = "dlib-hog" if factor == 1 else f"dlib-hog-x{factor}"
        return [
            FaceDetection(
                box=(r.left() / factor, r.top() / factor, (r.right() + 1) / factor, (r.bottom() + 1) / factor),
                score=float(s),
                method=name,
                extra={"upscale": factor},
            )
            for r, s in zip(rects, scores, strict=True)
        ]

    def _haar_pass(self, grey: np.ndarray) -> list[FaceDetection]:
        factor = 2
        img = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        if img.size > self.config.max_upscaled_pixels:
            img, factor = grey, 1
        with self._lock:
            boxes, _, weights = self._haar.detectMultiScale3(
                img, scaleFactor=1.1, minNeighbors=4, minSize=(24, 24), outputRejectLevels=True
            )
        out = []
        for (x, y, bw, bh), wgt in zip(boxes, np.ravel(weights), strict=True):
            # Haar boxes are wider and sit higher than dlib's; shrink to the dlib convention so that
            # box-based alignment and the landmark predictor see the same framing.
            cx, cy, s = x + bw / 2, y + bh * 0.56, bw * 0.80
            out.append(
                FaceDetection(
                    box=((cx - s / 2) / factor, (cy - s / 2) / factor, (cx + s / 2) / factor, (cy + s / 2) / factor),
                    score=float(wgt) / 10.0 - 1.0,  # put on a scale roughly comparable to HOG's
                    method=f"haar-x{factor}",
                    extra={"upscale": factor},
                )
            )
        return out

    def _with_landmarks(self, grey: np.ndarray, det: FaceDetection) -> FaceDetection:
        """Add 5-point landmarks, predicted on a crop around the box scaled so the face is ~100 px wide."""
        x0, y0, x1, y1 = det.box
        pad = 0.5 * max(det.width, det.height)
        cx0, cy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
        cx1, cy1 = min(grey.shape[1], int(np.ceil(x1 + pad))), min(grey.shape[0], int(np.ceil(y1 + pad)))
        crop = grey[cy0:cy1, cx0:cx1]
        factor = max(1.0, min(4.0, 100.0 / max(det.width, 1.0)))
        if factor != 1.0:
            crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        rect = self._dlib.rectangle(
            int(round((x0 - cx0) * factor)),
            int(round((y0 - cy0) * factor)),
            int(round((x1 - cx0) * factor)) - 1,
            int(round((y1 - cy0) * factor)) - 1,
        )
        with self._lock:
            shape = self._shape(np.ascontiguousarray(crop), rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32) / factor
        pts += np.array([cx0, cy0], dtype=np.float32)
        return FaceDetection(box=det.box, score=det.score, method=det.method, landmarks=pts, extra=det.extra)
