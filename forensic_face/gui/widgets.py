"""Reusable widgets: the frame view with a drawable face box, zoomable image panels, the video
timeline with the best frames marked, and a matplotlib canvas."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QSizePolicy,
    QSlider,
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


class FrameView(QGraphicsView):
    """The evidence frame, the detected box and landmarks, and a box the analyst draws.

    In drawing mode a left-button drag draws the face box; once drawn, dragging one of its edges or
    corner handles resizes it, dragging inside it moves it, and dragging elsewhere draws a new one
    (the cursor shows which). ``box_drawn`` carries (x0, y0, x1, y1) in frame pixels after each
    change.
    """

    #: how close (screen pixels) to an edge a press grabs it
    GRAB_PX = 6.0

    box_drawn = Signal(tuple)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setBackgroundBrush(QBrush(QColor("#202124")))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # pan by dragging
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._pixmap: QGraphicsPixmapItem | None = None
        self._detected: list = []
        self._manual: QGraphicsRectItem | None = None
        self._drawing = False
        self._origin: QPointF | None = None
        self._edit: tuple | None = None  # (grab, press point, box at press) while resizing or moving
        self._before: tuple | None = None  # the box when the button went down
        self.viewport().setMouseTracking(True)  # the cursor shows what a press would grab
        self._frame_size = (0, 0)
        self.set_frame(None)

    # -- content
    def set_frame(self, image: np.ndarray | None) -> None:
        scene = self.scene()
        scene.clear()
        self._pixmap, self._detected, self._manual = None, [], None
        if image is None:
            scene.addSimpleText("No frame loaded").setBrush(QBrush(QColor("#cccccc")))
            return
        self._pixmap = scene.addPixmap(to_pixmap(image))
        self._pixmap.setTransformationMode(Qt.TransformationMode.FastTransformation)  # pixels as recorded
        self._frame_size = (image.shape[1], image.shape[0])
        scene.setSceneRect(QRectF(0, 0, image.shape[1], image.shape[0]))
        self.fit()

    def set_detection(self, box, landmarks=None, label: str = "") -> None:
        for item in self._detected:
            self.scene().removeItem(item)
        self._detected = []
        if box is None:
            return
        x0, y0, x1, y1 = (float(v) for v in box)
        pen = QPen(QColor("#00e676"), 0)
        pen.setCosmetic(True)
        pen.setWidthF(2.0)
        self._detected.append(self.scene().addRect(QRectF(x0, y0, x1 - x0, y1 - y0), pen))
        if label:
            text = self.scene().addSimpleText(label)
            text.setBrush(QBrush(QColor("#00e676")))
            text.setPos(x0, y0 - 14)
            text.setFlag(text.GraphicsItemFlag.ItemIgnoresTransformations, True)
            self._detected.append(text)
        if landmarks is not None:
            r = max(1.5, (x1 - x0) / 22)
            for x, y in np.asarray(landmarks, float).reshape(-1, 2):
                dot = QGraphicsEllipseItem(x - r, y - r, 2 * r, 2 * r)
                dot.setBrush(QBrush(QColor("#ff1744")))
                dot.setPen(QPen(Qt.PenStyle.NoPen))
                self.scene().addItem(dot)
                self._detected.append(dot)

    def manual_box(self) -> tuple[float, float, float, float] | None:
        if self._manual is None:
            return None
        r = self._manual.rect()
        return (round(r.left(), 1), round(r.top(), 1), round(r.right(), 1), round(r.bottom(), 1))

    def set_manual_box(self, box) -> None:
        """Show the analyst's box (None removes it). While a drag resizes or moves it, the same items are
        moved rather than made anew for each mouse event."""
        if box is None or self._pixmap is None:
            if self._manual is not None:
                self.scene().removeItem(self._manual)
                self._manual = None
            return
        x0, y0, x1, y1 = box
        if self._manual is None:
            pen = QPen(QColor("#ffd600"), 0, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            pen.setWidthF(2.0)
            self._manual = self.scene().addRect(QRectF(), pen)
            for _ in range(4):  # corner handles, a constant size on screen
                handle = QGraphicsRectItem(-3.5, -3.5, 7, 7, self._manual)
                handle.setBrush(QBrush(QColor("#ffd600")))
                handle.setPen(QPen(Qt.PenStyle.NoPen))
                handle.setFlag(handle.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self._manual.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        for handle, (x, y) in zip(self._manual.childItems(), ((x0, y0), (x1, y0), (x0, y1), (x1, y1)), strict=True):
            handle.setPos(x, y)

    # -- drawing mode
    def set_drawing(self, on: bool) -> None:
        self._drawing = on
        self.setDragMode(QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.OpenHandCursor)

    @property
    def drawing(self) -> bool:
        return self._drawing

    def _clamp(self, p: QPointF) -> QPointF:
        w, h = self._frame_size
        return QPointF(min(max(p.x(), 0.0), w), min(max(p.y(), 0.0), h))

    def grab_at(self, p: QPointF) -> str:
        """What a press at scene point ``p`` takes hold of: edges ("l", "t", "r", "b" combined, e.g. "rb" for
        the bottom-right corner), "move" inside the box, or "" (a new box)."""
        box = self.manual_box()
        if box is None:
            return ""
        x0, y0, x1, y1 = box
        tol = self.GRAB_PX / max(self.transform().m11(), 1e-6)
        if not (x0 - tol <= p.x() <= x1 + tol and y0 - tol <= p.y() <= y1 + tol):
            return ""
        edges = ("l" if abs(p.x() - x0) <= tol else "r" if abs(p.x() - x1) <= tol else "") + \
                ("t" if abs(p.y() - y0) <= tol else "b" if abs(p.y() - y1) <= tol else "")
        return edges or "move"

    _CURSORS = {"l": Qt.CursorShape.SizeHorCursor, "r": Qt.CursorShape.SizeHorCursor,
                "t": Qt.CursorShape.SizeVerCursor, "b": Qt.CursorShape.SizeVerCursor,
                "lt": Qt.CursorShape.SizeFDiagCursor, "rb": Qt.CursorShape.SizeFDiagCursor,
                "rt": Qt.CursorShape.SizeBDiagCursor, "lb": Qt.CursorShape.SizeBDiagCursor,
                "move": Qt.CursorShape.SizeAllCursor, "": Qt.CursorShape.CrossCursor}

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self._drawing and self._pixmap is not None and event.button() == Qt.MouseButton.LeftButton:
            p = self._clamp(self.mapToScene(event.position().toPoint()))
            grab, self._before = self.grab_at(p), self.manual_box()
            if grab:
                self._edit = (grab, p, self._before)
                return
            self._origin = p
            self.set_manual_box((p.x(), p.y(), p.x(), p.y()))
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drawing and self._pixmap is not None:
            p = self._clamp(self.mapToScene(event.position().toPoint()))
            if self._origin is not None:
                o = self._origin
                self.set_manual_box((min(o.x(), p.x()), min(o.y(), p.y()), max(o.x(), p.x()), max(o.y(), p.y())))
            elif self._edit is not None:
                self.set_manual_box(self._edited(*self._edit, p))
            else:
                self.viewport().setCursor(self._CURSORS[self.grab_at(p)])
            return
        super().mouseMoveEvent(event)

    def _edited(self, grab: str, start: QPointF, box: tuple, p: QPointF) -> tuple:
        x0, y0, x1, y1 = box
        if grab == "move":  # translate, kept inside the frame
            w, h = self._frame_size
            dx = min(max(p.x() - start.x(), -x0), w - x1)
            dy = min(max(p.y() - start.y(), -y0), h - y1)
            return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
        x0, x1 = (p.x() if "l" in grab else x0), (p.x() if "r" in grab else x1)
        y0, y1 = (p.y() if "t" in grab else y0), (p.y() if "b" in grab else y1)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))  # dragged past the other edge: flips

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._drawing and (self._origin is not None or self._edit is not None):
            before, self._origin, self._edit = self._before, None, None
            box = self.manual_box()
            if box is not None and box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
                if box != before:
                    self.box_drawn.emit(box)
            else:
                self.set_manual_box(before)  # too small (a click): the box stays as it was
            return
        super().mouseReleaseEvent(event)

    # -- zoom
    def fit(self) -> None:
        if self._pixmap is not None:
            self.fitInView(self._pixmap, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:  # noqa: N802
        if self._pixmap is not None:  # the wheel zooms (panning is by dragging)
            self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)
        else:
            super().wheelEvent(event)


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
    """A slider over a clip's frames with the frames the tool ranks best marked below it."""

    position_changed = Signal(int)  # frame index, on release or keyboard step

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.marks: list[int] = []
        self.fps = 25.0
        self.label = QLabel("")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(self.slider)
        lay.addWidget(self.label)
        self.slider.sliderReleased.connect(lambda: self.position_changed.emit(self.slider.value()))
        self.slider.valueChanged.connect(self._value_changed)
        self.setMinimumHeight(44)

    def set_clip(self, frames: int, fps: float) -> None:
        self.fps = fps or 25.0
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, frames - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.slider.setEnabled(frames > 1)
        self.marks = []
        self.refresh_label()
        self.update()

    def set_marks(self, indices: list[int]) -> None:
        self.marks = list(indices)
        self.refresh_label()
        self.update()

    def seconds(self) -> float:
        return self.slider.value() / self.fps

    def _value_changed(self, _value: int) -> None:
        self.refresh_label()
        if not self.slider.isSliderDown():
            self.position_changed.emit(self.slider.value())

    def refresh_label(self) -> None:
        best = ", ".join(f"{m / self.fps:.2f} s" for m in self.marks)
        self.label.setText(f"frame {self.slider.value()} · {self.seconds():.2f} s"
                           + (f" · best frames (▲): {best}" if best else ""))

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
