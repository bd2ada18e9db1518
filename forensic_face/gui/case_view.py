"""The case view's centre: analysis controls and the Frame / Compare / Audio / Candidates tabs."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.widgets import FrameView, ImagePanel, MplCanvas, Timeline, to_pixmap
from forensic_face.reports.wording import open_set_note, search_verdict

NO_AUDIO = "(no audio)"


class CaseView(QWidget):
    """Centre of the window while a case is open."""

    run_requested = Signal()
    frame_requested = Signal(str, object)  # evidence, frame index or None (rank best frames)
    detect_requested = Signal()
    candidate_opened = Signal(int)  # row
    analysis_chosen = Signal(str)  # analysis id
    audio_chosen = Signal(str)  # audio evidence, "" for none
    box_drawn = Signal(object)  # (x0, y0, x1, y1) drawn by hand
    drawing_toggled = Signal(bool)  # drawing a face box by hand on or off

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # -- controls
        self.frame_combo = QComboBox()
        self.frame_combo.setMinimumContentsLength(18)
        self.audio_combo = QComboBox()
        self.audio_combo.setMinimumContentsLength(14)
        self.use_audio = QCheckBox("Use audio")
        self.use_audio.setChecked(True)
        self.run_button = QPushButton("Run analysis")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Detect or use the drawn box, reconstruct, search the gallery (Ctrl+R)")
        self.run_button.clicked.connect(self.run_requested)
        self.analysis_combo = QComboBox()
        self.analysis_combo.setMinimumContentsLength(14)
        self.analysis_combo.setToolTip("Earlier analyses of this case")
        top = QHBoxLayout()
        for w in (QLabel("Frame:"), self.frame_combo, QLabel("Audio:"), self.audio_combo, self.use_audio,
                  self.run_button):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(QLabel("Showing:"))
        top.addWidget(self.analysis_combo)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._frame_tab(), "Frame")
        self.tabs.addTab(self._compare_tab(), "Compare")
        self.tabs.addTab(self._audio_tab(), "Audio")
        self.tabs.addTab(self._candidates_tab(), "Candidates")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.tabs, 1)
        self.frame_combo.currentTextChanged.connect(lambda name: name and self.frame_requested.emit(name, None))
        self.analysis_combo.currentTextChanged.connect(self.analysis_chosen)
        self.audio_combo.currentTextChanged.connect(lambda name: self.audio_chosen.emit("" if name == NO_AUDIO
                                                                                         else name))
        self.frame_view.box_drawn.connect(self.box_drawn)
        self.draw_button.toggled.connect(self.drawing_toggled)
        self.view = None  # reports.content.AnalysisView shown

    # ---------------------------------------------------------------------------------- tabs
    def _frame_tab(self) -> QWidget:
        w = QWidget()
        self.detect_button = QPushButton("Detect face")
        self.detect_button.clicked.connect(self.detect_requested)
        self.draw_button = QToolButton()
        self.draw_button.setText("Draw face box")
        self.draw_button.setCheckable(True)
        self.draw_button.setToolTip("Drag on the frame to draw the face box by hand (Ctrl+B); drag its edges or "
                                    "corners to resize it, inside it to move it. The analysis then uses your box")
        self.clear_box_button = QPushButton("Clear drawn box")
        fit = QPushButton("Fit")
        self.frame_view = FrameView()
        self.frame_view.setObjectName("frameView")
        self.timeline = Timeline()
        self.timeline.setVisible(False)
        self.frame_note = QLabel("")
        self.frame_note.setTextFormat(Qt.TextFormat.PlainText)
        self.frame_note.setWordWrap(True)
        self.draw_button.toggled.connect(self.frame_view.set_drawing)
        self.clear_box_button.clicked.connect(lambda: self.frame_view.set_manual_box(None))
        fit.clicked.connect(self.frame_view.fit)
        bar = QHBoxLayout()
        for b in (self.detect_button, self.draw_button, self.clear_box_button, fit):
            bar.addWidget(b)
        bar.addStretch(1)
        lay = QVBoxLayout(w)
        lay.addLayout(bar)
        lay.addWidget(self.frame_view, 1)
        lay.addWidget(self.timeline)
        lay.addWidget(self.frame_note)
        self.timeline.position_changed.connect(
            lambda idx: self.frame_combo.currentText() and self.frame_requested.emit(self.frame_combo.currentText(),
                                                                                     idx))
        return w

    def _compare_tab(self) -> QWidget:
        w = QWidget()
        self.input_panel = ImagePanel("Degraded input (aligned)")
        self.recon_panel = ImagePanel("Reconstruction")
        self.diff_panel = ImagePanel("Difference |reconstruction − input|")
        self.with_audio = QCheckBox("Reconstruction with audio")
        self.with_audio.setChecked(True)
        self.with_audio.toggled.connect(self._show_reconstruction)
        self.show_diff = QCheckBox("Difference map")
        self.show_diff.setChecked(True)
        self.show_diff.toggled.connect(self.diff_panel.setVisible)
        self.zoom = QSlider(Qt.Orientation.Horizontal)
        self.zoom.setRange(1, 8)
        self.zoom.setValue(4)
        self.zoom.setToolTip("Zoom (nearest neighbour: every pixel shown as computed)")
        self.zoom.valueChanged.connect(lambda z: [p.set_zoom(z) for p in self._panels()])
        self.quality = QLabel("")
        self.quality.setWordWrap(True)
        self.quality.setObjectName("qualityHints")
        row = QHBoxLayout()
        for p in self._panels():
            row.addWidget(p, 1)
        ctl = QHBoxLayout()
        ctl.addWidget(self.with_audio)
        ctl.addWidget(self.show_diff)
        ctl.addWidget(QLabel("Zoom:"))
        ctl.addWidget(self.zoom, 1)
        lay = QVBoxLayout(w)
        lay.addLayout(row, 1)
        lay.addLayout(ctl)
        lay.addWidget(self.quality)
        note = QLabel("<i>The reconstruction is model output for the recogniser; it is not evidence and must not "
                      "be used to identify anyone by eye.</i>")
        note.setWordWrap(True)
        lay.addWidget(note)
        return w

    def _panels(self) -> list[ImagePanel]:
        return [self.input_panel, self.recon_panel, self.diff_panel]

    def _audio_tab(self) -> QWidget:
        w = QWidget()
        self._audio_canvas: MplCanvas | None = None  # made on first use: matplotlib costs ~0.5 s at start-up
        self.audio_note = QLabel("No audio in this analysis.")
        self.audio_note.setTextFormat(Qt.TextFormat.PlainText)
        self.audio_note.setWordWrap(True)
        self._audio_layout = QVBoxLayout(w)
        self._audio_layout.addWidget(self.audio_note)
        return w

    @property
    def audio_canvas(self) -> MplCanvas:
        if self._audio_canvas is None:
            self._audio_canvas = MplCanvas(9, 5)
            self._audio_layout.insertWidget(0, self._audio_canvas, 1)
        return self._audio_canvas

    def _candidates_tab(self) -> QWidget:
        w = QWidget()
        self.verdict = QLabel("Run an analysis with a gallery to see candidates.")
        self.verdict.setObjectName("verdict")
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)
        self.verdict.setWordWrap(True)
        self.verdict.setStyleSheet("font-size: 15px; font-weight: bold; padding: 6px;")
        self.search_info = QLabel("")
        self.search_info.setTextFormat(Qt.TextFormat.PlainText)
        self.search_info.setWordWrap(True)
        self.table = QTableWidget(0, 6)
        self.table.setObjectName("candidates")
        self.table.setHorizontalHeaderLabels(["Person", "Identity probability", "Cosine similarity",
                                              "Euclidean distance", "Match probability", "Gallery image"])
        self.table.setIconSize(QSize(56, 56))
        self.table.verticalHeader().setDefaultSectionSize(60)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3, 4):
            self.table.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.candidate_opened.emit(row))
        caveat = QLabel("<i>A candidate is an investigative lead, not an identification. Double-click a row to "
                        "compare side by side.</i>")
        lay = QVBoxLayout(w)
        lay.addWidget(self.verdict)
        lay.addWidget(self.search_info)
        lay.addWidget(self.table, 1)
        lay.addWidget(caveat)
        return w

    # ---------------------------------------------------------------------------------- what the analyst chose
    def tab_names(self) -> list[str]:
        return [self.tabs.tabText(i) for i in range(self.tabs.count())]

    def show_tab(self, index: int) -> None:
        self.tabs.setCurrentIndex(index)

    def set_drawing(self, on: bool) -> None:
        """Turn drawing a face box by hand on or off (the Draw face box button follows)."""
        self.draw_button.setChecked(on)

    def allow_run(self, on: bool) -> None:
        """Enable Run analysis when ``on`` and the case has a frame to analyse."""
        self.run_button.setEnabled(on and self.frame_combo.count() > 0)

    def selected_frame(self) -> str:
        """The image or video evidence chosen, "" when the case has none."""
        return self.frame_combo.currentText()

    def selected_audio(self) -> str | None:
        """The audio evidence chosen, or None."""
        name = self.audio_combo.currentText()
        return None if name in ("", NO_AUDIO) else name

    def uses_audio(self) -> bool:
        """Whether the analysis is to use the chosen audio."""
        return self.use_audio.isChecked() and self.selected_audio() is not None

    def frame_index(self) -> int | None:
        """The clip frame the timeline stands at; None for a still image."""
        return self.timeline.slider.value() if self.timeline.slider.isEnabled() else None

    def drawn_box(self) -> tuple[float, float, float, float] | None:
        """The face box drawn by hand on the frame, or None."""
        return self.frame_view.manual_box()

    def shown_reconstruction(self) -> np.ndarray | None:
        """The reconstruction the Compare tab shows (with or without audio)."""
        return self.recon_panel.array

    # ---------------------------------------------------------------------------------- content
    def set_evidence(self, evidence: list, keep: bool = True) -> None:
        frame_now, audio_now = self.frame_combo.currentText(), self.audio_combo.currentText()
        frames = [e.name for e in evidence if e.kind in ("image", "video")]
        audios = [e.name for e in evidence if e.kind == "audio"]
        self.frame_combo.blockSignals(True)
        self.frame_combo.clear()
        self.frame_combo.addItems(frames)
        if keep and frame_now in frames:
            self.frame_combo.setCurrentText(frame_now)
        self.frame_combo.blockSignals(False)
        self.audio_combo.clear()
        self.audio_combo.addItems([*audios, NO_AUDIO])
        if keep and audio_now in audios:
            self.audio_combo.setCurrentText(audio_now)
        self.run_button.setEnabled(bool(frames))

    def set_analyses(self, ids: list[str], current: str | None) -> None:
        self.analysis_combo.blockSignals(True)
        self.analysis_combo.clear()
        self.analysis_combo.addItems(ids)
        if current:
            self.analysis_combo.setCurrentText(current)
        self.analysis_combo.blockSignals(False)

    def show_frame(self, data) -> None:
        """A FrameData from the workbench: picture, clip timeline, detection."""
        same = getattr(self, "_frame_key", None) == (data.evidence, data.frames)
        box = self.frame_view.manual_box() if same else None
        self.frame_view.set_frame(data.image)
        self.frame_view.set_manual_box(box)
        det = data.detection
        if det is not None:
            self.show_detection(det["box"], det.get("landmarks"), det.get("method", ""))
        if data.frames > 1:
            if not same:
                self.timeline.set_clip(data.frames, data.fps)
            if data.best:
                self.timeline.set_marks(data.best)
            self.timeline.slider.blockSignals(True)
            self.timeline.slider.setValue(data.index)
            self.timeline.slider.blockSignals(False)
            self.timeline.refresh_label()
        else:
            self.timeline.set_clip(1, 0)
        self.timeline.setVisible(data.frames > 1)
        self._frame_key = (data.evidence, data.frames)
        h, w = data.image.shape[:2]
        when = f" · frame {data.index} at {data.timestamp_s:.2f} s" if data.timestamp_s is not None else ""
        found = (f"face {det['box'][2] - det['box'][0]:.0f} px wide found by {det['method']}" if det is not None
                 else data.detection_note)
        self.frame_note.setText(f"{data.evidence}: {w}×{h}{when}. {found}")

    def show_detection(self, box, landmarks=None, method: str = "") -> None:
        """A face's box, landmarks and the method that found it, over the frame."""
        self.frame_view.set_detection(box, landmarks, method)

    def time_s(self) -> float | None:
        return self.timeline.seconds() if self.timeline.slider.isEnabled() else None

    def clear_analysis(self) -> None:
        """Back to 'no analysis shown' (another case was opened)."""
        self.view = None
        for panel in self._panels():
            panel.set_image(None)
        self.quality.setText("")
        self.table.setRowCount(0)
        self.verdict.setText("Run an analysis with a gallery to see candidates.")
        self.verdict.setStyleSheet("font-size: 15px; font-weight: bold; padding: 6px;")
        self.search_info.setText("")
        self.draw_audio(None, None, 1.0, None, "No audio shown yet.")
        self.frame_view.set_frame(None)
        self.frame_note.setText("")
        self._frame_key = None

    def show_analysis(self, view) -> None:
        """A reports.content.AnalysisView: compare panels, candidates, audio and the frame with its box."""
        self.view = view
        r = view.record
        q = r.quality
        self.input_panel.set_image(view.images.get("input_face"), r.frame_evidence)
        has_audio = view.images.get("reconstruction_no_audio") is not None and r.audio is not None
        self.with_audio.setEnabled(has_audio)
        self.with_audio.setChecked(has_audio)
        self._show_reconstruction()
        self.diff_panel.set_image(view.images.get("difference"))
        self.quality.setText(
            f"Face {q.face_px:.0f} px wide · sharpness {q.sharpness:.1f} · "
            f"noise σ {q.noise_sigma:.2f} · mean level {q.mean_level:.0f}"
            + (" · <b>" + html.escape("; ".join(q.hints)) + "</b>" if q.hints else " · no quality warnings"))
        self._show_search(view)
        if view.frame is not None:
            face = r.face
            self.frame_view.set_frame(view.frame)
            self.show_detection(face.box, face.landmarks, face.method)
            self.frame_note.setText(f"{view.analysis_id}: {r.frame_evidence} — face box "
                                    f"{'drawn by the analyst' if face.method == 'manual' else 'detected'}")
            self._frame_key = None

    def _show_reconstruction(self) -> None:
        if self.view is None:
            return
        role = "reconstruction" if self.with_audio.isChecked() else "reconstruction_no_audio"
        img = self.view.images.get(role)
        if img is None:
            img = self.view.images.get("reconstruction")
        self.recon_panel.set_image(img, "with audio" if role == "reconstruction" and self.with_audio.isEnabled()
                                   else "without audio")

    def _show_search(self, view) -> None:
        search = view.record.search
        self.table.setRowCount(0)
        if search is None:
            self.verdict.setText("No gallery was searched (choose one in Settings, then run the analysis).")
            self.search_info.setText("")
            return
        cands = search.candidates
        if not view.trustworthy:  # a record changed after it was written: never headline what it now says
            self.verdict.setText("ALTERED: files of this analysis were changed after they were written (case "
                                 "verification names them). Do not rely on anything shown for it.\n"
                                 "It now reads: " + search_verdict(search))
            self.verdict.setStyleSheet("font-size: 15px; font-weight: bold; padding: 6px; background: #f8d7da;")
        else:
            self.verdict.setText(search_verdict(search))
        if cands and view.trustworthy:
            colour = "#fff3cd" if search.confident else "#e3f2fd"
            self.verdict.setStyleSheet(f"font-size: 15px; font-weight: bold; padding: 6px; background: {colour};")
        self.search_info.setText(
            f"{search.people_searched} people ({search.embeddings_searched} images) compared with "
            f"model {search.model_version}; match probability 0.5 at cosine "
            f"{search.threshold_similarity:.3f}. {open_set_note(search)} "
            "Identity probability assumes the person is in the gallery.")
        self.table.setRowCount(len(cands))
        for r, c in enumerate(cands):
            name = QTableWidgetItem(c.person)
            thumb = view.thumbnails[r] if r < len(view.thumbnails) else None
            if thumb is not None:
                name.setIcon(QIcon(to_pixmap(thumb)))
            self.table.setItem(r, 0, name)
            values = (c.identity_probability, c.similarity, c.euclidean, c.match_probability)
            for col, value in enumerate(values, 1):
                item = QTableWidgetItem(f"{value:.3f}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, col, item)
            self.table.setItem(r, 5, QTableWidgetItem(c.image_path))

    def draw_audio(self, audio_view, t: float | None, window_s: float, lbrp: np.ndarray | None, note: str) -> None:
        from forensic_face.reports import figures

        fig = self.audio_canvas.figure
        fig.clear()
        if audio_view is None:
            self.audio_note.setText(note or "No audio in this analysis.")
            self.audio_canvas.draw()
            return
        gs = fig.add_gridspec(3, 1, height_ratios=[1, 2.4, 1.3])
        ax_w = fig.add_subplot(gs[0])
        ax_s = fig.add_subplot(gs[1], sharex=ax_w)
        figures.draw_audio(ax_w, ax_s, audio_view, t, window_s)
        ax_w.set_title("waveform · spectrogram with pitch · analysis window at the frame", fontsize=9)
        ax_l = fig.add_subplot(gs[2])
        if lbrp is not None:
            figures.draw_lbrp(ax_l, lbrp)
        else:
            ax_l.text(0.5, 0.5, "LBRP features: computing…", ha="center", va="center", transform=ax_l.transAxes)
            ax_l.axis("off")
        self.audio_note.setText(note)
        self.audio_canvas.draw()
