"""Align a detected face by its eyes and crop it to a model's input size.

The crop is a similarity transform (rotation, uniform scale, shift) that puts the eye centres at
fixed places in the output. The transform and its inverse are kept, so anything found in the crop
(a reconstruction, a heat map) can be drawn back on the original frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forensic_face.vision.detect import FaceDetection

# Where dlib's HOG box puts the eyes, measured as a median over 300 LFW faces (see README):
# eye midpoint at (0.464, 0.252) of the box width from its top-left corner, eyes 0.391 widths apart.
BOX_EYE_MID = (0.464, 0.252)
BOX_EYE_DIST = 0.391


@dataclass(frozen=True)
class AlignSpec:
    """Geometry of an aligned crop."""

    size: int  # output is size x size pixels: the networks' input (FaceEngine.size), never a default
    eye_y: float = 0.40  # eye line height as a fraction of size
    eye_dist: float = 0.34  # distance between eye centres as a fraction of size


@dataclass(frozen=True)
class AlignedFace:
    """An aligned crop and the transform that made it."""

    image: np.ndarray  # (size, size, C) uint8, same channels as the input frame
    matrix: np.ndarray  # (2, 3) float64: frame (x, y, 1) -> crop (x, y)
    detection: FaceDetection
    method: str  # "eyes" (from landmarks) or "box" (from the face box alone)

    @property
    def inverse(self) -> np.ndarray:
        """(2, 3) float64: crop (x, y, 1) -> frame (x, y)."""
        return cv2.invertAffineTransform(self.matrix)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) crop coordinates to frame coordinates."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.inverse[:, :2].T + self.inverse[:, 2]

    def crop_outline_in_frame(self) -> np.ndarray:
        """The crop's four corners in frame coordinates, (4, 2), clockwise from top-left."""
        s = self.image.shape[0]
        return self.to_frame(np.array([[0, 0], [s, 0], [s, s], [0, s]], dtype=np.float64))

    @property
    def scale(self) -> float:
        """Output pixels per frame pixel (above 1: the face was enlarged)."""
        return float(np.hypot(self.matrix[0, 0], self.matrix[1, 0]))


def _eyes_from_box(det: FaceDetection) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, _, _ = det.box
    w = det.width
    mid = np.array([x0 + BOX_EYE_MID[0] * w, y0 + BOX_EYE_MID[1] * w])
    half = np.array([BOX_EYE_DIST * w / 2, 0.0])
    return mid - half, mid + half


def similarity_from_eyes(left: np.ndarray, right: np.ndarray, spec: AlignSpec) -> np.ndarray:
    """(2, 3) similarity transform taking the two eye centres to their places in the crop."""
    src_vec = np.asarray(right, np.float64) - np.asarray(left, np.float64)
    dist = float(np.hypot(*src_vec))
    if dist < 1e-6:
        raise ValueError("the two eye positions coincide")
    scale = spec.eye_dist * spec.size / dist
    angle = np.arctan2(src_vec[1], src_vec[0])
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    src_mid = (np.asarray(left, np.float64) + np.asarray(right, np.float64)) / 2
    dst_mid = np.array([spec.size / 2, spec.eye_y * spec.size])
    shift = dst_mid - rot @ src_mid
    return np.hstack([rot, shift[:, None]])


def align_face(image: np.ndarray, det: FaceDetection, spec: AlignSpec) -> AlignedFace:
    """Crop ``image`` ((H, W) or (H, W, 3) uint8) to an aligned face of ``spec.size`` pixels.

    Uses the landmarks' eye centres when present and plausible, otherwise the face box.
    When the face is much larger than the crop the frame is first reduced by pyramid steps so the
    warp does not alias.
    """
    eyes = det.eye_centres()
    method = "eyes"
    if eyes is None or not _plausible_eyes(eyes, det):
        eyes, method = _eyes_from_box(det), "box"
    matrix = similarity_from_eyes(eyes[0], eyes[1], spec)
    crop = warp_to_crop(image, matrix, spec.size)
    return AlignedFace(image=crop, matrix=matrix, detection=det, method=method)


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Apply a frame -> crop similarity ``matrix`` (2, 3), giving a ``size`` x ``size`` crop.

    When the crop shrinks the face by more than 2x the frame is first reduced by pyramid steps so
    the warp does not alias.
    """
    src, pre = image, 1.0
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    while scale / pre < 0.5 and min(src.shape[:2]) > 16:
        src = cv2.pyrDown(src)
        pre *= 0.5
    warp = np.array(matrix, dtype=np.float64)
    warp[:, :2] /= pre  # coordinates in the reduced image are pre times the frame's
    return cv2.warpAffine(src, warp, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def _plausible_eyes(eyes: tuple[np.ndarray, np.ndarray], det: FaceDetection) -> bool:
    """Reject landmark fits that put the eyes implausibly far apart or outside the face box."""
    left, right = eyes
    dist = float(np.hypot(*(right - left)))
    w = max(det.width, 1.0)
    if not 0.2 * w <= dist <= 0.7 * w:
        return False
    x0, y0, x1, y1 = det.box
    mid = (left + right) / 2
    return bool(x0 - 0.1 * w <= mid[0] <= x1 + 0.1 * w and y0 - 0.2 * w <= mid[1] <= y0 + 0.7 * w)
