"""The people of a clip: the tracks Analysis ▸ Find the people in the clip found, each with its best face, number,
time span and faces, to choose the one to analyse; and the time range to look in."""

from __future__ import annotations

import html

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.frame_view import track_colour
from forensic_face.gui.widgets import to_qimage

ICON_PX = 64
NO_TRACKS = "No tracks yet: Analysis ▸ Find the people in the clip… (Ctrl+Shift+T) follows every face through the clip."


class TracksPanel(QWidget):
    """The tracks of a clip (services.analysis.ClipTracks) as a list, each in the colour its box has on the frames;
    choosing one draws its box thicker, Follow this person analyses it."""

    track_chosen = Signal(object)  # track number, None when none is chosen
    follow_requested = Signal(int)  # track number

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel(NO_TRACKS)
        self.summary.setObjectName("tracksSummary")
        self.summary.setWordWrap(True)
        self.start, self.end = self._seconds("start of the clip"), self._seconds("end of the clip")
        self.start.setToolTip("Follow the faces from this time (s from the start of the clip)")
        self.end.setToolTip("Follow the faces up to this time (s from the start of the clip)")
        self.find_button = QToolButton()  # the window gives it its action (Analysis ▸ Find the people in the clip)
        self.find_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.list = QListWidget()
        self.list.setObjectName("trackList")
        self.list.setIconSize(QSize(ICON_PX + 8, ICON_PX + 8))
        self.list.setSpacing(2)
        self.list.currentItemChanged.connect(self._current_changed)
        self.follow_button = QPushButton("Follow this person")
        self.follow_button.setToolTip("Pool the best frames of the chosen track and search the gallery with them "
                                      "(the clip is followed again over the same range: the same tracks)")
        self.follow_button.setEnabled(False)
        self.follow_button.clicked.connect(self._follow)
        self.tracks = None  # services.analysis.ClipTracks shown
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        span = QHBoxLayout()
        for w in (QLabel("From"), self.start, QLabel("to"), self.end):
            span.addWidget(w)
        lay.addLayout(span)
        lay.addWidget(self.find_button)
        lay.addWidget(self.summary)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.follow_button)

    @staticmethod
    def _seconds(at_zero: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 24 * 3600.0)
        box.setDecimals(2)
        box.setSuffix(" s")
        box.setSpecialValueText(at_zero)  # 0 stands for the clip's own start or end
        return box

    def time_range(self) -> tuple[float | None, float | None]:
        """(start, end) in seconds of the range to follow the faces in; None: the clip's own start or end."""
        return (self.start.value() or None), (self.end.value() or None)

    def selected_track(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def show_tracks(self, tracks) -> None:
        """List the tracks of ``tracks`` (None: none, and the hint of how to find them)."""
        self.tracks = tracks
        self.list.blockSignals(True)
        self.list.clear()
        self.list.blockSignals(False)
        self.follow_button.setEnabled(False)
        if tracks is None:
            self.summary.setText(NO_TRACKS)
            return
        req = tracks.request
        span = "" if req.start_s is None and req.end_s is None else (
            f", {req.start_s or 0:.2f}–" + ("end" if req.end_s is None else f"{req.end_s:.2f} s"))
        self.summary.setText(f"<b>{html.escape(tracks.evidence)}</b>{span}: {html.escape(tracks.summary)}"
                             + "".join(f"<br>Warning: {html.escape(w)}" for w in tracks.warnings))
        for t in tracks.tracks:
            when = "?" if t.start_s is None else f"{t.start_s:.2f}–{t.end_s:.2f} s"
            text = (f"Track {t.track_id}\n{when} · frames {t.first_frame}–{t.last_frame}\n{t.faces} faces, "
                    f"{t.usable_faces} usable" + (" · from your box" if t.seeded else ""))
            item = QListWidgetItem(QIcon(_framed(t.thumbnail, t.track_id)), text)
            item.setData(Qt.ItemDataRole.UserRole, t.track_id)
            self.list.addItem(item)

    def _follow(self) -> None:
        track = self.selected_track()
        if track is not None:
            self.follow_requested.emit(track)

    def _current_changed(self, item, _previous) -> None:
        self.follow_button.setEnabled(item is not None)
        self.track_chosen.emit(None if item is None else int(item.data(Qt.ItemDataRole.UserRole)))


def _framed(face, track_id: int) -> QPixmap:
    """The track's best face fitted in ICON_PX, framed in the track's colour."""
    side = ICON_PX + 8
    pm = QPixmap(side, side)
    pm.fill(track_colour(track_id))
    if face is not None:
        img = to_qimage(face).scaled(ICON_PX, ICON_PX, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
        p = QPainter(pm)
        p.fillRect(QRect(4, 4, ICON_PX, ICON_PX), Qt.GlobalColor.black)
        p.drawImage((side - img.width()) // 2, (side - img.height()) // 2, img)
        p.end()
    return pm
