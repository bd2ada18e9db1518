"""YuNet, a fast face detector with five landmarks, for clips (OpenCV's ``cv2.FaceDetectorYN``).

The model (OpenCV Zoo's ``face_detection_yunet_2023mar.onnx``, MIT licence, ``resources/models/LICENSE-yunet.txt``)
ships in ``resources/models/``; its SHA-256 is checked when it is loaded, and the network is built from the bytes
that were checked. It finds faces from about 10 px wide in one pass of ~15 ms on a 640x480 frame on one core, where
the dlib cascade (:mod:`forensic_face.vision.detect`) takes 100 ms or more; research/yunet_vs_cascade.py compares
the two on clean and degraded LFW. Its five points are the ArcFace template's (eye centres, nose tip, mouth
corners), so its detections carry ``landmark_kind=FIVE_POINT``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.errors import ModelsNotTrainedError
from forensic_face.paths import models_dir
from forensic_face.vision.detect import FIVE_POINT, FaceDetection

#: The shipped model file and its SHA-256 (as published by opencv/opencv_zoo, models/face_detection_yunet/).
YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


@dataclass(frozen=True)
class YuNetConfig:
    """How YuNet is run; the defaults were chosen by research/yunet_vs_cascade.py."""

    score_threshold: float = 0.6  # keep faces scored at least this (0..1); OpenCV's sample uses 0.9
    nms_threshold: float = 0.3  # boxes overlapping more than this (IoU) are merged
    top_k: int = 100  # candidates kept before non-maximum suppression
    min_face_px: int = 8  # ignore detections narrower than this, frame pixels
    # Passes at these upscale factors, stopping at the first that finds a face: x1 finds faces from about 20 px
    # wide, x2 from about 12 px at 5x the time (research/yunet_vs_cascade.py).
    upscales: tuple[int, ...] = (1,)
    max_upscaled_pixels: int = 5_000_000  # skip an upscale pass whose image would be larger than this


def load_yunet_bytes(path: str | Path | None = None) -> bytes:
    """The YuNet model's bytes from ``path`` (default: the shipped file), after checking their SHA-256."""
    p = Path(path) if path is not None else models_dir() / YUNET_FILE
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelsNotTrainedError(f"{p}: the YuNet face detector cannot be read ({exc.strerror}); reinstall "
                                    "forensic-face (the file ships in resources/models)") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != YUNET_SHA256:
        raise ModelsNotTrainedError(f"{p}: SHA-256 {digest[:12]}… is not the YuNet model's ({YUNET_SHA256[:12]}…); "
                                    "the file is damaged or replaced: reinstall forensic-face")
    return data


class YuNetDetector:
    """YuNet on whole frames: ``detect(image)`` as :meth:`FaceDetector.detect`. Load once, reuse; threads may call
    it at once (each thread gets its own network, built from the checked bytes: a network's input size is state)."""

    method = "yunet"

    def __init__(self, config: YuNetConfig | None = None, model_path: str | Path | None = None) -> None:
        self.config = config or YuNetConfig()
        self._model = np.frombuffer(load_yunet_bytes(model_path), np.uint8)
        self._local = threading.local()

    def _network(self, size: tuple[int, int]):
        """This thread's network, set to input ``size`` (width, height)."""
        local, c = self._local, self.config
        if getattr(local, "net", None) is None:
            local.net = cv2.FaceDetectorYN.create("onnx", self._model, np.zeros(0, np.uint8), size, c.score_threshold,
                                                  c.nms_threshold, c.top_k)
            local.size = size
        elif local.size != size:
            local.net.setInputSize(size)
            local.size = size
        return local.net

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces in ``image`` ((H, W) grey or (H, W, 3) RGB uint8), best first; empty if none found."""
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
        h, w = bgr.shape[:2]
        found: list[FaceDetection] = []
        for factor in self.config.upscales:
            if factor > 1 and h * w * factor * factor > self.config.max_upscaled_pixels:
                continue
            found = self._pass(bgr, factor)
            if found:
                break
        found.sort(key=lambda d: (d.score, d.width), reverse=True)
        return found

    def _pass(self, bgr: np.ndarray, factor: int) -> list[FaceDetection]:
        h, w = bgr.shape[:2]
        img = bgr if factor == 1 else cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        _, rows = self._network((img.shape[1], img.shape[0])).detect(img)
        out: list[FaceDetection] = []
        for row in [] if rows is None else np.asarray(rows, np.float64):
            x, y, bw, bh = row[:4] / factor
            if bw < self.config.min_face_px:
                continue
            box = (max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh))
            marks = (row[4:14] / factor).reshape(5, 2).astype(np.float32)
            out.append(FaceDetection(box=box, score=float(row[14]), method=self.method if factor == 1 else
                                     f"{self.method}-x{factor}", landmarks=marks, landmark_kind=FIVE_POINT))
        return out
