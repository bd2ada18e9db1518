"""Align a detected face and crop it to a model's input size.

The crop is a similarity transform (rotation, uniform scale, shift). ``AlignSpec.mode`` chooses what it
fits: ``"eyes"`` puts the eye centres at fixed places (the project's own networks); ``"arcface"`` fits the
detector's five landmarks, least squares, to the ArcFace five-point template (the input of SFace and other
networks trained on it): YuNet's five points to the template itself, dlib's to where they lie in it. The
transform and its inverse are kept, so anything found in the crop (a reconstruction, a heat map) can be drawn
back on the original frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forensic_face.vision.detect import FIVE_POINT, FaceDetection

# Where dlib's HOG box puts the eyes, measured as a median over 300 LFW faces (see README):
# eye midpoint at (0.464, 0.252) of the box width from its top-left corner, eyes 0.391 widths apart.
BOX_EYE_MID = (0.464, 0.252)
BOX_EYE_DIST = 0.391

#: The ArcFace five-point template of a 112x112 crop (insightface's; OpenCV's ``FaceRecognizerSF.alignCrop``
#: uses it for SFace): image-left eye, image-right eye, nose tip, image-left and image-right mouth corners.
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]])
#: Where the detector's five dlib landmarks (in its order: the image-right eye's outer and inner corners, the
#: image-left eye's outer and inner corners, the base of the nose; no mouth) lie in that 112-px crop: medians
#: over 400 clean LFW faces of training people aligned on the template by YuNet's five points
#: (research/sface_template.py). dlib's nose point is the base of the nose, 9 px below the template's tip.
DLIB5_IN_ARCFACE_112 = np.array([[80.06, 53.78], [66.20, 54.01], [31.16, 53.71], [45.02, 54.17], [55.15, 80.87]])


@dataclass(frozen=True)
class AlignSpec:
    """Geometry of an aligned crop."""

    size: int  # output is size x size pixels: the networks' input (FaceEngine.size), never a default
    eye_y: float = 0.40  # eye line height as a fraction of size ("eyes" mode)
    eye_dist: float = 0.34  # distance between eye centres as a fraction of size ("eyes" mode)
    mode: str = "eyes"  # "eyes", or "arcface": the five-point template scaled to size (eye_y, eye_dist unused)


@dataclass(frozen=True)
class AlignedFace:
    """An aligned crop and the transform that made it."""

    image: np.ndarray  # (size, size, C) uint8, same channels as the input frame
    matrix: np.ndarray  # (2, 3) float64: frame (x, y, 1) -> crop (x, y)
    detection: FaceDetection
    method: str  # "eyes" or "five-point" (from landmarks), or "box" (from the face box alone)

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


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) similarity transform (rotation, uniform scale, shift; no reflection) taking the (N, 2) points
    ``src`` closest to ``dst`` in least squares (Umeyama, 1991); exact for two distinct points."""
    src, dst = np.asarray(src, np.float64).reshape(-1, 2), np.asarray(dst, np.float64).reshape(-1, 2)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var = float((s0**2).sum()) / len(src)
    if var < 1e-12:
        raise ValueError("the source points coincide")
    u, sv, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = (u * d) @ vt
    scale = float((sv * d).sum()) / var
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def align_face(image: np.ndarray, det: FaceDetection, spec: AlignSpec) -> AlignedFace:
    """Crop ``image`` ((H, W) or (H, W, 3) uint8) to an aligned face of ``spec.size`` pixels.

    Uses the landmarks when present and their eyes plausible, otherwise the face box ("box": the eyes
    placed where dlib's box puts them). When the face is much larger than the crop the frame is first
    reduced by pyramid steps so the warp does not alias.
    """
    if spec.mode not in ("eyes", "arcface"):
        raise ValueError(f"unknown alignment mode {spec.mode!r} (eyes, arcface)")
    eyes = det.eye_centres()
    plausible = eyes is not None and _plausible_eyes(eyes, det)
    if spec.mode == "arcface":
        scale = spec.size / 112.0
        if plausible:
            template = ARCFACE_TEMPLATE_112 if det.landmark_kind == FIVE_POINT else DLIB5_IN_ARCFACE_112
            matrix, method = similarity_fit(det.landmarks, template * scale), "five-point"
        else:
            matrix, method = similarity_fit(np.stack(_eyes_from_box(det)), ARCFACE_TEMPLATE_112[:2] * scale), "box"
    else:
        method = "eyes"
        if not plausible:
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
