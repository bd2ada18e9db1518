"""Reusable widgets: zoomable image panels, the clip timeline with the best frames marked and its
player controls, and a matplotlib canvas (the frame view is in frame_view)."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


def to_qimage(image: np.ndarray) -> QImage:
    """A uint8 grey (H, W) or RGB (H, W, 3) array as a QImage that owns a copy of the pixels."""
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    if img.ndim == 2:
        return QImage(img.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    if img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, :3])
    return QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_pixmap(image: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(image))


class ImagePanel(QWidget):
    """A titled image shown at an integer zoom with nearest-neighbour pixels (no invented detail)."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image = QLabel("—")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(QSize(128, 128))
        self.image.setStyleSheet("background: #202124; color: #bbbbbb;")
        self.image.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.caption = QLabel("")
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.image, 1)
        lay.addWidget(self.caption)
        self._array: np.ndarray | None = None
        self._zoom = 4

    def set_image(self, image: np.ndarray | None, caption: str = "") -> None:
        self._array = image
        self.caption.setText(caption)
        self._render()

    def set_zoom(self, zoom: int) -> None:
        self._zoom = max(1, int(zoom))
        self._render()

    def _render(self) -> None:
        if self._array is None:
            self.image.setPixmap(QPixmap())
            self.image.setText("—")
            return
        pm = to_pixmap(self._array)
        self.image.setPixmap(pm.scaled(pm.width() * self._zoom, pm.height() * self._zoom,
                                       Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation))

    @property
    def array(self) -> np.ndarray | None:
        return self._array


class Timeline(QWidget):
    """A slider over a clip's frames with the frames the tool ranks best marked below it, and a player:
    play/pause at the clip's rate, frame steps and jumps to the marked frames. Each move emits
    ``position_changed``; while playing, the next frame is asked for only once the one asked for before
    has been shown (``frame_shown``), so playback never outruns the decoding."""

    position_changed = Signal(int)  # frame index, on release, keyboard step or playback
    playing_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.marks: list[int] = []
        self._marked = "best frames"  # what the marked frames are, for the label
        self.fps = 25.0
        self.label = QLabel("")
        self.label.setObjectName("frameClock")
        self.play_button = QToolButton()
        self.play_button.setText("▶ Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play or pause the clip (Space)")
        self.play_button.toggled.connect(self._set_playing)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._waiting = False  # a frame was asked for and is not shown yet
        buttons = []
        for text, tip, slot in (("⏮", "Previous marked frame (Ctrl+Left)", lambda: self.jump_to_mark(-1)),
                                ("◀", "Previous frame (Left)", lambda: self.step(-1)),
                                ("▶", "Next frame (Right)", lambda: self.step(1)),
                                ("⏭", "Next marked frame (Ctrl+Right)", lambda: self.jump_to_mark(1))):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            buttons.append(b)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for w in (buttons[0], buttons[1], self.play_button, buttons[2], buttons[3], self.slider):
            row.addWidget(w, 1 if w is self.slider else 0)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addLayout(row)
        lay.addWidget(self.label)
        self.slider.sliderReleased.connect(lambda: self._emit(self.slider.value()))
        self.slider.valueChanged.connect(self._value_changed)
        self.setMinimumHeight(52)

    def set_clip(self, frames: int, fps: float) -> None:
        self.pause()
        self.fps = fps or 25.0
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, frames - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.slider.setEnabled(frames > 1)
        self.marks, self._marked = [], "best frames"
        self.refresh_label()
        self.update()

    def set_marks(self, indices: list[int], what: str = "best frames") -> None:
        """Mark the frames at ``indices`` (``what`` they are, for the label)."""
        self.marks = list(indices)
        self._marked = what
        self.refresh_label()
        self.update()

    def seconds(self) -> float:
        return self.slider.value() / self.fps

    def _emit(self, index: int) -> None:
        self._waiting = True
        self.position_changed.emit(index)

    def _value_changed(self, _value: int) -> None:
        self.refresh_label()
        if not self.slider.isSliderDown():
            self._emit(self.slider.value())

    def step(self, frames: int) -> None:
        """Move ``frames`` frames on (back when negative), within the clip."""
        if self.slider.isEnabled():
            self.slider.setValue(min(max(self.slider.value() + frames, 0), self.slider.maximum()))

    def jump_to_mark(self, direction: int) -> None:
        """To the next marked (best-ranked) frame after the current one, or the one before it."""
        now = self.slider.value()
        later = sorted(m for m in self.marks if (m > now if direction > 0 else m < now))
        if later:
            self.slider.setValue(later[0] if direction > 0 else later[-1])

    # -- playback
    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def toggle_play(self) -> None:
        if self.slider.isEnabled():
            self.play_button.setChecked(not self.play_button.isChecked())

    def pause(self) -> None:
        self.play_button.setChecked(False)

    def _set_playing(self, on: bool) -> None:
        if on and self.slider.isEnabled():
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self._timer.start(max(1, round(1000 / self.fps)))
        else:
            self._timer.stop()
        self.play_button.setText("❚❚ Pause" if self._timer.isActive() else "▶ Play")
        self.playing_changed.emit(self._timer.isActive())

    def frame_shown(self) -> None:
        """The frame last asked for is on screen: playback may ask for the next one."""
        self._waiting = False

    def _tick(self) -> None:
        if self._waiting:
            return  # decoding is slower than the clip's rate: frames are skipped, never queued
        if self.slider.value() >= self.slider.maximum():
            self.pause()
            return
        self.step(1)

    def refresh_label(self) -> None:
        best = ", ".join(f"{m / self.fps:.2f} s" for m in self.marks)
        self.label.setText(f"frame {self.slider.value()} of {self.slider.maximum() + 1} · {self.seconds():.2f} s"
                           f" at {self.fps:g} frames/s" + (f" · {self._marked} (▲): {best}" if best else ""))

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if not self.marks or self.slider.maximum() <= 0:
            return
        p = QPainter(self)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#ff9100"))
        geo = self.slider.geometry()
        span = geo.width() - 16
        for m in self.marks:
            x = geo.left() + 8 + span * m / self.slider.maximum()
            y = geo.bottom() + 1
            p.drawPolygon([QPointF(x, y), QPointF(x - 5, y + 8), QPointF(x + 5, y + 8)])
        p.end()


class MplCanvas(QWidget):
    """A matplotlib Figure on a Qt canvas (drawing only; the data is computed off the GUI thread)."""

    def __init__(self, width: float = 8, height: float = 4, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(width, height), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)

    def draw(self) -> None:
        self.canvas.draw_idle()
