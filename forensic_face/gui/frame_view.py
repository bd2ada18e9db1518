"""The evidence frame as an examiner views it: zoom, pan, rotation, viewing adjustments, the detected face
and the box the analyst draws."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

from forensic_face.gui.widgets import to_pixmap

#: the viewing adjustments that leave the pixels as recorded: (brightness, contrast, gamma)
NEUTRAL = (0.0, 1.0, 1.0)
#: the colours of the tracks of a clip, by track number (none of them the detection's green, the drawn box's
#: yellow or the landmarks' red)
TRACK_COLOURS = ("#2979ff", "#ff9100", "#d500f9", "#00e5ff", "#f50057", "#c6ff00", "#ffffff", "#a1887f")


def track_colour(track_id: int) -> QColor:
    """The colour track ``track_id`` is drawn in, in the frame and in the list of tracks."""
    return QColor(TRACK_COLOURS[(track_id - 1) % len(TRACK_COLOURS)])


def adjusted(image: np.ndarray, brightness: float, contrast: float, gamma: float) -> np.ndarray:
    """A copy of ``image`` for viewing: contrast about mid-grey, brightness (-1..1 of full scale) added,
    then gamma (above 1 brightens the shadows). The image itself is never changed."""
    x = np.arange(256, dtype=np.float64) / 255.0
    y = np.clip(contrast * (x - 0.5) + 0.5 + brightness, 0.0, 1.0) ** (1.0 / gamma)
    return np.round(y * 255.0).astype(np.uint8)[image]


class FrameView(QGraphicsView):
    """The evidence frame, the detected box and landmarks, and a box the analyst draws.

    The wheel zooms about the cursor; the middle button (or the left one outside drawing mode) pans;
    ``zoom_by``, ``fit``, ``actual_pixels`` and ``rotate_view`` serve the View menu. Marks and box lines keep
    their size on screen at any zoom. ``set_adjustment`` changes what is shown, never the frame.

    In drawing mode a left-button drag draws the face box; once drawn, dragging one of its edges or
    corner handles resizes it, dragging inside it moves it, and dragging elsewhere draws a new one
    (the cursor shows which). ``box_drawn`` carries (x0, y0, x1, y1) in frame pixels after each
    change.
    """

    #: how close (screen pixels) to an edge a press grabs it
    GRAB_PX = 6.0
    ZOOM_STEP = 1.25
    ZOOM_RANGE = (0.02, 64.0)
    MARK_PX = 3.0  # landmark radius on screen

    box_drawn = Signal(tuple)
    zoom_changed = Signal(float)  # screen pixels per frame pixel

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setBackgroundBrush(QBrush(QColor("#202124")))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)  # zoom_by anchors itself
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._pixmap: QGraphicsPixmapItem | None = None
        self._original: np.ndarray | None = None  # the frame as loaded; what is shown may be adjusted
        self._adjust = NEUTRAL
        self._detected: list = []
        self._tracked: list = []  # the boxes and numbers of a clip's tracks on this frame
        self._manual: QGraphicsRectItem | None = None
        self._drawing = False
        self._origin: QPointF | None = None
        self._edit: tuple | None = None  # (grab, press point, box at press) while resizing or moving
        self._before: tuple | None = None  # the box when the button went down
        self._pan: QPointF | None = None  # the last point of a middle-button pan
        self.viewport().setMouseTracking(True)  # the cursor shows what a press would grab
        self._frame_size = (0, 0)
        self.set_frame(None)

    # -- content
    def set_frame(self, image: np.ndarray | None) -> None:
        """Show ``image``; the detection and the drawn box go. A frame of the size shown keeps the zoom,
        rotation and position (stepping through a clip); another size is fitted."""
        scene = self.scene()
        self._original = image
        if image is not None and self._pixmap is not None and self._frame_size == (image.shape[1], image.shape[0]):
            self.set_detection(None)
            self.set_tracks([])
            self.set_manual_box(None)
            self._pixmap.setPixmap(to_pixmap(self._shown(image)))
            return
        scene.clear()
        self._pixmap, self._detected, self._tracked, self._manual = None, [], [], None
        if image is None:
            scene.addSimpleText("No frame loaded").setBrush(QBrush(QColor("#cccccc")))
            self._frame_size = (0, 0)
            return
        self._pixmap = scene.addPixmap(to_pixmap(self._shown(image)))
        self._pixmap.setTransformationMode(Qt.TransformationMode.FastTransformation)  # pixels as recorded
        self._frame_size = (image.shape[1], image.shape[0])
        scene.setSceneRect(QRectF(0, 0, image.shape[1], image.shape[0]))
        self.fit()

    def has_frame(self) -> bool:
        return self._pixmap is not None

    @property
    def original(self) -> np.ndarray | None:
        """The frame as loaded (never adjusted)."""
        return self._original

    def _shown(self, image: np.ndarray) -> np.ndarray:
        return image if self._adjust == NEUTRAL else adjusted(image, *self._adjust)

    def set_adjustment(self, brightness: float = 0.0, contrast: float = 1.0, gamma: float = 1.0) -> None:
        """Brightness, contrast and gamma of what is shown (NEUTRAL shows the pixels as recorded)."""
        self._adjust = (float(brightness), float(contrast), float(gamma))
        if self._pixmap is not None and self._original is not None:
            self._pixmap.setPixmap(to_pixmap(self._shown(self._original)))

    def adjustment(self) -> tuple[float, float, float]:
        return self._adjust

    def set_detection(self, box, landmarks=None, label: str = "") -> None:
        for item in self._detected:
            self.scene().removeItem(item)
        self._detected = []
        if box is None:
            return
        self._detected += self._labelled_box(box, QColor("#00e676"), label)
        r = self.MARK_PX
        for x, y in np.asarray(landmarks if landmarks is not None else [], float).reshape(-1, 2):
            dot = QGraphicsEllipseItem(-r, -r, 2 * r, 2 * r)  # a constant size on screen, centred on the point
            dot.setPos(x, y)
            dot.setFlag(dot.GraphicsItemFlag.ItemIgnoresTransformations, True)
            dot.setBrush(QBrush(QColor("#ff1744")))
            dot.setPen(QPen(Qt.PenStyle.NoPen))
            self.scene().addItem(dot)
            self._detected.append(dot)

    def _labelled_box(self, box, colour: QColor, label: str, width: float = 2.0, tag: bool = False) -> list:
        """A box over the frame (lines of ``width`` screen pixels at any zoom) with ``label`` above it, or (``tag``)
        below it in dark letters on a tag of its colour (readable over any picture, clear of a detection's label)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        pen = QPen(colour, 0)
        pen.setCosmetic(True)
        pen.setWidthF(width)
        items = [self.scene().addRect(QRectF(x0, y0, x1 - x0, y1 - y0), pen)]
        if label:
            text = self.scene().addSimpleText(label)
            text.setBrush(QBrush(QColor("#000000") if tag else colour))
            text.setPos(x0, y1 if tag else y0)
            text.setFlag(text.GraphicsItemFlag.ItemIgnoresTransformations, True)
            text.setTransform(text.transform().translate(1, 2) if tag else text.transform().translate(0, -16))
            if tag:
                back = QGraphicsRectItem(text.boundingRect().adjusted(-2, -1, 2, 1), text)
                back.setBrush(QBrush(colour))
                back.setPen(QPen(Qt.PenStyle.NoPen))
                back.setFlag(back.GraphicsItemFlag.ItemStacksBehindParent, True)
            items.append(text)
        return items

    def marks(self) -> list:
        """The items drawn for the detection (box, label, landmarks)."""
        return list(self._detected)

    def set_tracks(self, boxes: list[tuple[int, tuple]], chosen: int | None = None) -> None:
        """The faces of a clip's tracks on this frame: (track number, box) each, in the track's colour with its
        number; the ``chosen`` track's box drawn thicker."""
        for item in self._tracked:
            self.scene().removeItem(item)
        self._tracked = []
        if self._pixmap is None:
            return
        for track_id, box in boxes:
            self._tracked += self._labelled_box(box, track_colour(track_id), f"track {track_id}",
                                                4.0 if track_id == chosen else 2.0, tag=True)

    def track_marks(self) -> list:
        """The items drawn for the tracks (a box and its number each)."""
        return list(self._tracked)

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
        tol = self.GRAB_PX / max(self.zoom_level(), 1e-6)
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
        if event.button() == Qt.MouseButton.MiddleButton:
            self._pan = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
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
        if self._pan is not None:
            delta = event.position() - self._pan
            self._pan = event.position()
            self.pan_by(-delta.x(), -delta.y())
            return
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
        if self._pan is not None and event.button() == Qt.MouseButton.MiddleButton:
            self._pan = None
            self.set_drawing(self._drawing)  # its cursor back
            return
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

    # -- zoom, pan, rotation
    def zoom_level(self) -> float:
        """Screen pixels per frame pixel (1.0: actual pixels), whatever the rotation."""
        t = self.transform()
        return math.hypot(t.m11(), t.m12())

    def fit(self) -> None:
        if self._pixmap is not None:
            self.fitInView(self._pixmap, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.zoom_level())

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the frame point under ``anchor`` (viewport pixels; default its centre)
        where it is on screen."""
        if self._pixmap is None:
            return
        lo, hi = self.ZOOM_RANGE
        factor = min(max(self.zoom_level() * factor, lo), hi) / self.zoom_level()
        at = anchor if anchor is not None else QPointF(self.viewport().rect().center())
        fixed = self.mapToScene(at.toPoint())
        self.scale(factor, factor)
        moved = QPointF(self.mapFromScene(fixed)) - at
        self.pan_by(moved.x(), moved.y())
        self.zoom_changed.emit(self.zoom_level())

    def actual_pixels(self) -> None:
        """One frame pixel per screen pixel (1:1), about the centre."""
        if self._pixmap is not None:
            self.zoom_by(1.0 / self.zoom_level())

    def rotate_view(self, degrees: float) -> None:
        """Rotate the view (never the frame) about its centre."""
        if self._pixmap is not None:
            centre = self.mapToScene(self.viewport().rect().center())
            self.rotate(degrees)
            self.centerOn(centre)

    def rotation(self) -> int:
        """The view's rotation in degrees, 0, 90, 180 or 270."""
        t = self.transform()
        return int(round(math.degrees(math.atan2(t.m12(), t.m11())))) % 360

    def pan_by(self, dx: float, dy: float) -> None:
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + round(dx))
        v.setValue(v.value() + round(dy))

    def wheelEvent(self, event) -> None:  # noqa: N802
        if self._pixmap is not None and event.angleDelta().y():  # the wheel zooms about the cursor
            steps = event.angleDelta().y() / 120.0
            self.zoom_by(self.ZOOM_STEP ** steps, event.position())
        else:
            super().wheelEvent(event)
