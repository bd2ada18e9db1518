"""The Frame tab: the frame view with its tools (zoom readout, fit, 1:1, rotation, viewing adjustments),
face detection and the hand-drawn box, the clip's player, and the note on what is shown."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.frame_view import NEUTRAL, FrameView
from forensic_face.gui.widgets import Timeline

#: the viewing adjustment sliders: (label, slider range, neutral position, value of a position, its text)
ADJUSTMENTS = (
    ("Brightness", (-100, 100), 0, lambda v: v / 200.0, lambda v: f"{v:+d}"),
    ("Contrast", (-100, 100), 0, lambda v: 4.0 ** (v / 100.0), lambda v: f"×{4.0 ** (v / 100.0):.2f}"),
    ("Gamma", (-100, 100), 0, lambda v: 3.0 ** (v / 100.0), lambda v: f"{3.0 ** (v / 100.0):.2f}"),
)


class FramePanel(QWidget):
    """The Frame tab. Its ``actions`` (zoom, fit, 1:1, rotation, play, frame steps) are what the View menu
    lists; those on the clip (play, steps) act only while the focus is in this tab."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = FrameView()
        self.view.setObjectName("frameView")
        self.timeline = Timeline()
        self.timeline.setVisible(False)
        self.detect_button = QPushButton("Detect face")
        self.draw_button = QToolButton()
        self.draw_button.setText("Draw face box")
        self.draw_button.setCheckable(True)
        self.draw_button.setToolTip("Drag on the frame to draw the face box by hand (Ctrl+B); drag its edges or "
                                    "corners to resize it, inside it to move it. The analysis then uses your box")
        self.clear_box_button = QPushButton("Clear drawn box")
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("zoomReadout")
        self.zoom_label.setMinimumWidth(56)
        self.zoom_label.setToolTip("Zoom: screen pixels per frame pixel (100 % shows the pixels as recorded)")
        self.export_button = QToolButton()
        self.export_button.setText("Export PNG…")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.note = QLabel("")
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setWordWrap(True)
        self.actions = self._make_actions()
        self.adjust_button = QToolButton()
        self.adjust_button.setText("Adjust view")
        self.adjust_button.setCheckable(True)
        self.adjust_button.setToolTip("Brightness, contrast and gamma of the view only: the evidence and the "
                                      "analysis always use the pixels as recorded")
        self.adjust_bar = self._adjust_bar()
        self.adjust_bar.setVisible(False)
        self.adjust_button.toggled.connect(self.adjust_bar.setVisible)
        bar = QHBoxLayout()
        for b in (self.detect_button, self.draw_button, self.clear_box_button):
            bar.addWidget(b)
        bar.addStretch(1)
        for name in ("fit", "actual", "rotate_left", "rotate_right"):
            b = QToolButton()
            b.setDefaultAction(self.actions[name])
            bar.addWidget(b)
        for w in (self.zoom_label, self.adjust_button, self.export_button):
            bar.addWidget(w)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.adjust_bar)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.timeline)
        lay.addWidget(self.note)
        self.draw_button.toggled.connect(self.view.set_drawing)
        self.view.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))

    def _make_actions(self) -> dict[str, QAction]:
        v, tl = self.view, self.timeline
        specs = {  # name: (text, shortcuts, slot, only in this tab)
            "zoom_in": ("Zoom &in", ["Ctrl+=", "Ctrl++"], lambda: v.zoom_by(v.ZOOM_STEP), False),
            "zoom_out": ("Zoom &out", ["Ctrl+-"], lambda: v.zoom_by(1 / v.ZOOM_STEP), False),
            "fit": ("&Fit", ["Ctrl+0"], v.fit, False),
            "actual": ("1:1 (&actual pixels)", ["Ctrl+Alt+0"], v.actual_pixels, False),
            "rotate_left": ("Rotate view ⟲", ["Ctrl+Shift+Left"], lambda: v.rotate_view(-90), False),
            "rotate_right": ("Rotate view ⟳", ["Ctrl+Shift+Right"], lambda: v.rotate_view(90), False),
            "play": ("&Play / pause clip", ["Space"], tl.toggle_play, True),
            "previous": ("Previous frame", ["Left"], lambda: tl.step(-1), True),
            "next": ("Next frame", ["Right"], lambda: tl.step(1), True),
            "previous_mark": ("Previous marked frame", ["Ctrl+Left"], lambda: tl.jump_to_mark(-1), True),
            "next_mark": ("Next marked frame", ["Ctrl+Right"], lambda: tl.jump_to_mark(1), True),
        }
        actions = {}
        for name, (text, keys, slot, local) in specs.items():
            act = QAction(text, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.triggered.connect(lambda _checked=False, slot=slot: slot())
            if local:  # arrows and Space keep their usual meaning in the tables and lists elsewhere
                act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(act)
            actions[name] = act
        return actions

    def action_groups(self) -> list[list[QAction]]:
        """The actions as the View menu groups them: zoom, rotation, the clip."""
        names = (("zoom_in", "zoom_out", "fit", "actual"), ("rotate_left", "rotate_right"),
                 ("play", "previous", "next", "previous_mark", "next_mark"))
        return [[self.actions[n] for n in group] for group in names]

    def _adjust_bar(self) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(0, 0, 0, 0)
        self.adjust_sliders: list[QSlider] = []
        for label, (lo, hi), neutral, _value, text in ADJUSTMENTS:
            s = QSlider(Qt.Orientation.Horizontal)
            s.setRange(lo, hi)
            s.setValue(neutral)
            readout = QLabel(text(neutral))
            readout.setMinimumWidth(40)
            s.valueChanged.connect(lambda v, readout=readout, text=text: readout.setText(text(v)))
            s.valueChanged.connect(self._apply_adjustment)
            row.addWidget(QLabel(label + ":"))
            row.addWidget(s, 1)
            row.addWidget(readout)
            self.adjust_sliders.append(s)
        reset = QPushButton("Reset")
        reset.clicked.connect(self.reset_adjustment)
        row.addWidget(reset)
        row.addWidget(QLabel("<i>view only; never the evidence</i>"))
        return w

    def _apply_adjustment(self) -> None:
        self.view.set_adjustment(*(spec[3](s.value()) for spec, s in zip(ADJUSTMENTS, self.adjust_sliders,
                                                                           strict=True)))

    def reset_adjustment(self) -> None:
        for spec, s in zip(ADJUSTMENTS, self.adjust_sliders, strict=True):
            s.setValue(spec[2])

    def adjustment_text(self) -> str:
        """The viewing adjustment in words, empty when the pixels are shown as recorded."""
        if self.view.adjustment() == NEUTRAL:
            return ""
        return "view adjusted (" + ", ".join(f"{spec[0].lower()} {spec[4](s.value())}" for spec, s in
                                            zip(ADJUSTMENTS, self.adjust_sliders, strict=True)) + "; not evidence)"
