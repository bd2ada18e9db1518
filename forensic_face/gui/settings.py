"""Persistent settings (QSettings): gallery, device, top-k, false-lead rate, analyst name, recent cases,
window layout."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from forensic_face.models.calibration import DEFAULT_FPIR, OPEN_SET_FPIRS

MAX_RECENT = 10
DEVICES = ("auto", "cpu", "cuda")
#: The recognisers' arithmetic on the CPU: engine.inference.PRECISIONS, restated so that the settings (read at
#: start-up) do not import torch.
PRECISIONS = ("auto", "float32", "bfloat16")
#: False-lead rates an analyst may hold gallery searches to (those the calibration measures).
FPIR_CHOICES = tuple(sorted(OPEN_SET_FPIRS))


class AppSettings:
    """Typed access to the application's QSettings (organisation 'forensic_face')."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or QSettings("forensic_face", "forensic-face")

    def _str(self, key: str, default: str = "") -> str:
        value = self.q.value(key, default)
        return str(value) if value is not None else default

    @property
    def gallery_path(self) -> str:
        return self._str("gallery/path")

    @gallery_path.setter
    def gallery_path(self, value: str) -> None:
        self.q.setValue("gallery/path", value)

    @property
    def device(self) -> str:
        value = self._str("engine/device", "auto")
        return value if value in DEVICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.q.setValue("engine/device", value if value in DEVICES else "auto")

    @property
    def precision(self) -> str:
        value = self._str("engine/precision", "auto")
        return value if value in PRECISIONS else "auto"

    @precision.setter
    def precision(self, value: str) -> None:
        self.q.setValue("engine/precision", value if value in PRECISIONS else "auto")

    @property
    def top_k(self) -> int:
        try:
            return max(1, min(100, int(self.q.value("search/top_k", 10))))
        except (TypeError, ValueError):
            return 10

    @top_k.setter
    def top_k(self, value: int) -> None:
        self.q.setValue("search/top_k", int(value))

    @property
    def fpir(self) -> float:
        """The false-lead rate gallery searches are held to (one of FPIR_CHOICES)."""
        try:
            value = float(self.q.value("search/fpir", DEFAULT_FPIR))
        except (TypeError, ValueError):
            return DEFAULT_FPIR
        return value if any(abs(value - c) < 1e-9 for c in FPIR_CHOICES) else DEFAULT_FPIR

    @fpir.setter
    def fpir(self, value: float) -> None:
        self.q.setValue("search/fpir", float(value))

    @property
    def analyst(self) -> str:
        return self._str("case/analyst")

    @analyst.setter
    def analyst(self, value: str) -> None:
        self.q.setValue("case/analyst", value)

    @property
    def demo_folder(self) -> str:
        """Where the demo was last built; at first a new folder in the temporary folder (never the home)."""
        return self._str("demo/folder", str(Path(tempfile.gettempdir()) / "forensic-face-demo"))

    @demo_folder.setter
    def demo_folder(self, value: str) -> None:
        self.q.setValue("demo/folder", value)

    def recent_cases(self) -> list[str]:
        value = self.q.value("case/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v][:MAX_RECENT]

    def add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_cases() if p != path]
        self.q.setValue("case/recent", [path, *items][:MAX_RECENT])

    def remove_recent(self, path: str) -> None:
        self.q.setValue("case/recent", [p for p in self.recent_cases() if p != path])

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.q.value("window/geometry"), self.q.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    def sync(self) -> None:
        self.q.sync()
