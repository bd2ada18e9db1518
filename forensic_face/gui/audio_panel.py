"""The Audio tab: waveform, spectrogram with pitch and the LBRP features, and the choice of the audio window
the next analysis takes (a click on the recording, or an audio–video offset for a clip)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from forensic_face.gui.widgets import MplCanvas


class AudioPanel(QWidget):
    """What the audio panel shows and the analyst's choice of window.

    For a clip the window sits at the frame's time plus ``offset`` (the audio–video offset); for a still
    at the time clicked. A click on the waveform or spectrogram chooses the window there (for a clip by
    setting the offset); ``window_time`` is what Run analysis passes on, None for the default."""

    listen_requested = Signal(float, float)  # (window centre s, window length s) to hear

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._canvas: MplCanvas | None = None  # made on first use: matplotlib costs ~0.5 s at start-up
        self.note = QLabel("No audio in this analysis.")
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setWordWrap(True)
        self.offset = QDoubleSpinBox()
        self.offset.setObjectName("avOffset")
        self.offset.setRange(-600.0, 600.0)
        self.offset.setDecimals(2)
        self.offset.setSingleStep(0.04)
        self.offset.setSuffix(" s")
        self.offset.setToolTip("Audio–video offset: the audio window sits at the frame's time plus this (a clip)")
        self.choice = QLabel("")
        self.choice.setObjectName("audioWindowChoice")
        self.choice.setTextFormat(Qt.TextFormat.PlainText)
        reset = QPushButton("Default window")
        reset.setToolTip("The window at the frame's time (a clip) or the middle of the recording (a still)")
        reset.clicked.connect(self.reset_choice)
        self.listen = QPushButton("Listen to the window")
        self.listen.setObjectName("listenButton")
        self.listen.setToolTip("Play the window (chosen, else the one shown) with half a second either side, in "
                               "the system's audio player")
        self.listen.setEnabled(False)
        self.listen.clicked.connect(self._listen)
        row = QHBoxLayout()
        row.addWidget(QLabel("Audio–video offset:"))
        row.addWidget(self.offset)
        row.addWidget(reset)
        row.addWidget(self.listen)
        row.addWidget(self.choice, 1)
        self._layout = QVBoxLayout(self)
        self._layout.addLayout(row)
        self._layout.addWidget(self.note)
        self._frame_time: float | None = None  # the frame's time in its clip; None for a still
        self._clicked: float | None = None  # a still's window chosen by a click
        self._axes: tuple = ()  # the axes a click chooses a window on
        self._marks: list = []
        self._shown: tuple[float, float] | None = None  # (window time, length) of the audio drawn
        self.offset.valueChanged.connect(self._changed)
        self.set_frame_time(None)

    @property
    def canvas(self) -> MplCanvas:
        if self._canvas is None:
            self._canvas = MplCanvas(9, 5)
            self._layout.insertWidget(0, self._canvas, 1)
            self._canvas.canvas.mpl_connect("button_press_event", self._clicked_at)
        return self._canvas

    # -- the choice of window
    def set_frame_time(self, t: float | None) -> None:
        """The time of the frame chosen (None for a still): a clip's window follows it with the offset."""
        self._frame_time = t
        self.offset.setEnabled(t is not None)
        self._changed()

    def window_time(self) -> float | None:
        """The window time the analyst chose, or None (the analysis then takes its default)."""
        if self._frame_time is None:
            return self._clicked
        return self._frame_time + self.offset.value() if self.offset.value() else None

    def choose(self, t: float) -> None:
        """Centre the next analysis' window at ``t`` s of the recording."""
        if self._frame_time is None:
            self._clicked = float(t)
            self._changed()
        else:
            self.offset.setValue(float(t) - self._frame_time)

    def reset_choice(self) -> None:
        self._clicked = None
        self.offset.setValue(0.0)
        self._changed()

    def _changed(self, *_args) -> None:
        t = self.window_time()
        default = "the frame's time" if self._frame_time is not None else "the middle of the recording (a still)"
        self.choice.setText(f"next analysis: window at {default}" if t is None else
                            f"next analysis: window at {t:.2f} s (chosen)")
        self._mark(t)

    def _listen(self) -> None:
        if self._shown is not None:
            chosen = self.window_time()
            self.listen_requested.emit(chosen if chosen is not None else self._shown[0], self._shown[1])

    def _clicked_at(self, event) -> None:
        if event.inaxes is not None and event.inaxes in self._axes and event.xdata is not None:
            self.choose(event.xdata)

    def _mark(self, t: float | None) -> None:
        for line in self._marks:
            line.remove()
        self._marks = []
        if t is not None and self._axes:
            self._marks = [ax.axvline(t, color="#ff9100", linewidth=1.2, linestyle="--") for ax in self._axes]
        if self._canvas is not None:
            self._canvas.draw()

    # -- drawing
    def draw(self, audio_view, t: float | None, window_s: float, lbrp: np.ndarray | None, note: str) -> None:
        from forensic_face.reports import figures

        fig = self.canvas.figure
        fig.clear()
        self._axes, self._marks = (), []
        self._shown = (float(t), float(window_s)) if audio_view is not None and t is not None else None
        self.listen.setEnabled(self._shown is not None)
        if audio_view is None:
            self.note.setText(note or "No audio in this analysis.")
            self.canvas.draw()
            return
        gs = fig.add_gridspec(3, 1, height_ratios=[1, 2.4, 1.3])
        ax_w = fig.add_subplot(gs[0])
        ax_s = fig.add_subplot(gs[1], sharex=ax_w)
        figures.draw_audio(ax_w, ax_s, audio_view, t, window_s)
        ax_w.set_title("waveform · spectrogram with pitch · analysis window (click to choose the next one)",
                       fontsize=9)
        ax_l = fig.add_subplot(gs[2])
        if lbrp is not None:
            figures.draw_lbrp(ax_l, lbrp)
        else:
            ax_l.text(0.5, 0.5, "LBRP features: computing…", ha="center", va="center", transform=ax_l.transAxes)
            ax_l.axis("off")
        self._axes = (ax_w, ax_s)
        self.note.setText(note)
        self._mark(self.window_time())
