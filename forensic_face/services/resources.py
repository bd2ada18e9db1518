"""The engine, the detector and the gallery a session works with: built on first use, kept, and shared
by the operations of the GUI's workbench and the commands of the CLI (so neither wires them itself).

Thread-safe: the GUI calls it from worker threads.
"""

from __future__ import annotations

import threading
from pathlib import Path


class Resources:
    """Lazily built engine (``models`` folder, ``device``, the recognisers' arithmetic ``precision``: see
    ``engine.inference.PRECISIONS``), detector and read-only gallery (``gallery_path``; empty for none). A context
    manager: leaving it closes the gallery."""

    def __init__(self, models: str | Path | None = None, device: str = "auto", gallery_path: str | Path = "",
                 precision: str = "auto") -> None:
        self.models, self.device, self.gallery_path = models, device, str(gallery_path or "")
        self.precision = precision
        self._engine = None
        self._detector = None
        self._preview_detector = None
        self._clip_detector = None
        self._gallery = None
        self._lock = threading.RLock()

    def set_device(self, device: str) -> None:
        """Use ``device`` from now on (the engine is rebuilt on its next use)."""
        with self._lock:
            if device != self.device:
                self.device, self._engine = device, None

    def set_precision(self, precision: str) -> None:
        """Run the recognisers in ``precision`` from now on (the engine is rebuilt on its next use)."""
        with self._lock:
            if precision != self.precision:
                self.precision, self._engine = precision, None

    def set_gallery(self, gallery_path: str | Path) -> None:
        """Search ``gallery_path`` from now on (empty: no gallery); the open one is closed."""
        with self._lock:
            gallery_path = str(gallery_path or "")
            if gallery_path != self.gallery_path:
                self.close()
                self.gallery_path = gallery_path

    def engine(self):
        """The inference engine (ModelsNotTrainedError, naming the folder, when no models are installed there)."""
        with self._lock:
            if self._engine is None:
                from forensic_face.engine.inference import FaceEngine

                self._engine = FaceEngine(self.models, device=self.device, precision=self.precision)
            return self._engine

    def detector(self, preview: bool = False):
        """The face detector; frame previews get their own instance, as they run beside the analysis."""
        from forensic_face.vision.detect import FaceDetector

        with self._lock:
            if preview:
                if self._preview_detector is None:
                    self._preview_detector = FaceDetector()
                return self._preview_detector
            if self._detector is None:
                self._detector = FaceDetector()
            return self._detector

    def clip_detector(self):
        """The detector that follows faces through clips (YuNet: fast enough for every frame)."""
        with self._lock:
            if self._clip_detector is None:
                from forensic_face.vision.yunet import YuNetDetector

                self._clip_detector = YuNetDetector()
            return self._clip_detector

    def probe_path(self):
        """The probe path (engine.probe.ProbePath) of this engine and detector."""
        from forensic_face.engine.probe import ProbePath

        return ProbePath(self.engine(), self.detector())

    def gallery(self):
        """The gallery opened read-only (None when no gallery is set)."""
        with self._lock:
            if not self.gallery_path:
                return None
            if self._gallery is None:
                from forensic_face.store.gallery import open_gallery

                self._gallery = open_gallery(self.gallery_path)
            return self._gallery

    def close(self) -> None:
        with self._lock:
            if self._gallery is not None:
                self._gallery.close()
                self._gallery = None

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
