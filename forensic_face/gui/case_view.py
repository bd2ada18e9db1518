"""The case view's centre: analysis controls and the Frame / Compare / Audio / Candidates tabs."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from forensic_face.gui.audio_panel import AudioPanel
from forensic_face.gui.frame_panel import FramePanel
from forensic_face.gui.search_panel import SearchPanel
from forensic_face.gui.widgets import ImagePanel, to_pixmap, to_qimage

NO_AUDIO = "(no audio)"
#: what File ▸ Export as PNG offers: kind -> menu text
EXPORTS = {"frame": "Frame view…", "crop": "Face crop…", "comparison": "Comparison…"}


class CaseView(QWidget):
    """Centre of the window while a case is open."""

    run_requested = Signal()
    frame_requested = Signal(str, object, bool)  # evidence, frame index or None (rank best frames), detect
    detect_requested = Signal()
    candidate_opened = Signal(int)  # row
    analysis_chosen = Signal(str)  # analysis id
    audio_chosen = Signal(str)  # audio evidence, "" for none
    box_drawn = Signal(object)  # (x0, y0, x1, y1) drawn by hand
    drawing_toggled = Signal(bool)  # drawing a face box by hand on or off
    tracks_changed = Signal(object)  # the tracks drawn on a clip's frames (services.analysis.ClipTracks) or None

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
        self.analysis_combo.setToolTip("The analysis the tabs show; choose an earlier one of this case")
        top = QHBoxLayout()
        for w in (QLabel("Frame:"), self.frame_combo, QLabel("Audio:"), self.audio_combo, self.use_audio,
                  self.run_button):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(QLabel("Showing:"))
        top.addWidget(self.analysis_combo)
        self.frame_panel = FramePanel()
        self.frame_view, self.timeline, self.frame_note = (self.frame_panel.view, self.frame_panel.timeline,
                                                           self.frame_panel.note)
        self.draw_button, self.detect_button = self.frame_panel.draw_button, self.frame_panel.detect_button
        self.audio_panel = AudioPanel()
        self.search_panel = SearchPanel()
        self.verdict, self.table = self.search_panel.verdict, self.search_panel.table
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.frame_panel, "Frame")
        self.tabs.addTab(self._compare_tab(), "Compare")
        self.tabs.addTab(self.audio_panel, "Audio")
        self.tabs.addTab(self.search_panel, "Candidates")
        self.record_note = QLabel("")  # the shown analysis's withdrawal and the analyst's notes, from the log
        self.record_note.setObjectName("analysisRecordNote")
        self.record_note.setWordWrap(True)
        self.record_note.setTextFormat(Qt.TextFormat.PlainText)
        self.record_note.setVisible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.record_note)
        lay.addWidget(self.tabs, 1)
        self.view = None  # reports.content.AnalysisView shown
        self._drawn: tuple | None = None  # ((evidence, frame index), box) the analyst drew, kept for that frame
        self._clip: str | None = None  # the clip the timeline is set for
        self._shown_frame: tuple[str, str] | None = None  # (evidence, its time in words) the frame view shows
        self._tracks = None  # services.analysis.ClipTracks drawn on the frames of their clip
        self._chosen_track: int | None = None
        self._connect()

    def _connect(self) -> None:
        fp = self.frame_panel
        self.frame_combo.currentTextChanged.connect(self._frame_chosen)
        self.analysis_combo.currentTextChanged.connect(lambda aid: aid and self.analysis_chosen.emit(aid))
        self.audio_combo.currentTextChanged.connect(lambda name: self.audio_chosen.emit("" if name == NO_AUDIO
                                                                                         else name))
        self.search_panel.candidate_opened.connect(self.candidate_opened)
        fp.detect_button.clicked.connect(self.detect_requested)
        fp.clear_box_button.clicked.connect(self.clear_drawn_box)
        fp.view.box_drawn.connect(self._box_drawn)
        fp.draw_button.toggled.connect(self.drawing_toggled)
        fp.timeline.position_changed.connect(self._position_chosen)
        fp.timeline.playing_changed.connect(  # paused: the frame it stopped on, with its face found
            lambda playing: playing or self._position_chosen(self.timeline.slider.value()))

    def _frame_chosen(self, name: str) -> None:
        self._drawn = None  # another frame: the box drawn on the last one goes
        self.audio_panel.reset_choice()
        if name:
            self.frame_requested.emit(name, None, True)

    def _position_chosen(self, index: int) -> None:
        self._drawn = None
        name = self.frame_combo.currentText()
        if name:  # while the clip plays, frames are shown without looking for the face
            self.frame_requested.emit(name, index, not self.timeline.playing)

    def _box_drawn(self, box: tuple) -> None:
        self._drawn = ((self.selected_frame(), self.frame_index() or 0), box)
        self.set_drawing(False)  # drawn: the tool is put down (Ctrl+B takes it up again to adjust the box)
        self.box_drawn.emit(box)

    def clear_drawn_box(self) -> None:
        self._drawn = None
        self.frame_view.set_manual_box(None)

    def _restore_box(self, evidence: str, index: int) -> None:
        """Show the analyst's box again over a frame just shown, when it is the frame it was drawn on."""
        if self._drawn is not None and self._drawn[0] == (evidence, index):
            self.frame_view.set_manual_box(self._drawn[1])

    # ---------------------------------------------------------------------------------- tabs
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
        self.compare_row = QWidget()
        row = QHBoxLayout(self.compare_row)
        row.setContentsMargins(0, 0, 0, 0)
        for p in self._panels():
            row.addWidget(p, 1)
        self.compare_export = QToolButton()
        self.compare_export.setText("Export PNG…")
        self.compare_export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        ctl = QHBoxLayout()
        ctl.addWidget(self.with_audio)
        ctl.addWidget(self.show_diff)
        ctl.addWidget(QLabel("Zoom:"))
        ctl.addWidget(self.zoom, 1)
        ctl.addWidget(self.compare_export)
        self.clip_note = QLabel("")  # a clip analysis: the track and the frames pooled
        self.clip_note.setObjectName("clipPooled")
        self.clip_note.setWordWrap(True)
        self.clip_note.setTextFormat(Qt.TextFormat.PlainText)
        self.strip_panel = QScrollArea()  # the pooled faces side by side, at their pixels, scrolled sideways
        self.strip_panel.setObjectName("clipStrip")
        self.strip_panel.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip_image = QLabel()
        self.strip_panel.setWidget(self.strip_image)
        self.strip_panel.setFixedHeight(150)
        for widget in (self.clip_note, self.strip_panel):
            widget.setVisible(False)
        lay = QVBoxLayout(w)
        lay.addWidget(self.compare_row, 1)
        lay.addLayout(ctl)
        lay.addWidget(self.quality)
        lay.addWidget(self.clip_note)
        lay.addWidget(self.strip_panel)
        note = QLabel("<i>The reconstruction is model output for the recogniser; it is not evidence and must not "
                      "be used to identify anyone by eye.</i>")
        note.setWordWrap(True)
        lay.addWidget(note)
        return w

    def _panels(self) -> list[ImagePanel]:
        return [self.input_panel, self.recon_panel, self.diff_panel]

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

    def export_image(self, kind: str) -> tuple[QImage, dict] | None:
        """What an export of ``kind`` (EXPORTS) shows, as shown, with its source (evidence, what, when) for the
        caption; None when it is not shown."""
        if kind == "frame":
            if not self.frame_view.has_frame() or self._shown_frame is None:
                return None
            evidence, when = self._shown_frame
            turned = f", view rotated {self.frame_view.rotation()}°" if self.frame_view.rotation() else ""
            adjust = self.frame_panel.adjustment_text()
            return self.frame_view.viewport().grab().toImage(), {
                "evidence": evidence, "when": when,
                "what": f"frame view at {self.frame_view.zoom_level() * 100:.0f} %{turned}"
                        + (f", {adjust}" if adjust else "")}
        view = self.view
        if view is None or (kind == "crop" and self.input_panel.array is None):
            return None
        r = view.record
        source = {"evidence": r.frame_evidence,
                  "when": "still image" if r.timestamp_s is None else f"frame at {r.timestamp_s:.2f} s"}
        if kind == "crop":
            face = to_qimage(self.input_panel.array)
            return face.scaled(face.width() * 4, face.height() * 4), {
                **source, "what": f"face crop of {view.analysis_id} (aligned input, shown ×4, nearest neighbour)"}
        return self.compare_row.grab().toImage(), {
            **source, "what": f"comparison of {view.analysis_id}: degraded input, reconstruction (model output, "
                              "not evidence), difference"}

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

    def set_analyses(self, ids: list[str], shown: str | None) -> None:
        """The case's analyses in the Showing list, standing at ``shown`` (none selected when None)."""
        self.analysis_combo.blockSignals(True)
        self.analysis_combo.clear()
        self.analysis_combo.addItems(ids)
        self.analysis_combo.setCurrentIndex(ids.index(shown) if shown in ids else -1)
        self.analysis_combo.blockSignals(False)

    def clip_shown(self) -> str | None:
        """The clip the timeline is set for (its best frames marked), or None."""
        return self._clip

    def shown_analysis(self) -> str | None:
        """The id of the analysis the tabs show, or None."""
        return self.view.analysis_id if self.view is not None else None

    def show_frame(self, data) -> None:
        """A FrameData from the workbench: picture, clip timeline, detection; the analyst's box stays on the
        frame it was drawn on."""
        self.frame_view.set_frame(data.image)
        self._restore_box(data.evidence, data.index)
        det = data.detection
        if det is not None:
            self.show_detection(det["box"], det.get("landmarks"), det.get("method", ""))
        self._draw_tracks(data.evidence, data.index)
        tl = self.timeline
        if data.frames > 1:
            if tl.slider.maximum() != data.frames - 1 or self._clip != data.evidence:
                tl.set_clip(data.frames, data.fps)
            if data.best:
                tl.set_marks(data.best)
            tl.slider.blockSignals(True)
            tl.slider.setValue(data.index)
            tl.slider.blockSignals(False)
            tl.refresh_label()
        else:
            tl.set_clip(1, 0)
        self._clip = data.evidence if data.frames > 1 else None
        tl.setVisible(data.frames > 1)
        tl.frame_shown()
        self.audio_panel.set_frame_time(data.timestamp_s)
        h, w = data.image.shape[:2]
        when = f" · frame {data.index} at {data.timestamp_s:.2f} s" if data.timestamp_s is not None else ""
        found = (f"face {det['box'][2] - det['box'][0]:.0f} px wide found by {det['method']}" if det is not None
                 else data.detection_note)
        self.frame_note.setText(f"{data.evidence}: {w}×{h}{when}. {found}")
        self._shown_frame = (data.evidence, "still image" if data.timestamp_s is None else
                             f"frame {data.index} at {data.timestamp_s:.2f} s")

    def set_tracks(self, tracks) -> None:
        """Draw the tracks of a clip (services.analysis.ClipTracks; None: none) on each of its frames shown."""
        self._tracks, self._chosen_track = tracks, None
        self._redraw_tracks()
        self.tracks_changed.emit(tracks)

    def choose_track(self, track_id: int | None) -> None:
        """Draw track ``track_id``'s box thicker than the others; when its clip is shown on a frame without its
        face, go to the frame of its best face."""
        self._chosen_track = track_id
        self._redraw_tracks()
        track = next((t for t in self._tracks.tracks if t.track_id == track_id), None) if self._tracks else None
        if track is not None and self._clip == self._tracks.evidence and track.box_at(self.frame_index()) is None:
            self.timeline.slider.setValue(track.best_frame)  # the frame is loaded and its tracks drawn

    def tracks(self):
        """The tracks drawn on the frames of their clip (services.analysis.ClipTracks), or None."""
        return self._tracks

    def _redraw_tracks(self) -> None:
        if self._clip is not None and self.frame_index() is not None:
            self._draw_tracks(self._clip, self.frame_index())

    def _draw_tracks(self, evidence: str, index: int) -> None:
        shown = self._tracks is not None and self._tracks.evidence == evidence
        self.frame_view.set_tracks(self._tracks.boxes_at(index) if shown else [], self._chosen_track)

    def show_detection(self, box, landmarks=None, method: str = "") -> None:
        """A face's box, landmarks and the method that found it, over the frame."""
        self.frame_view.set_detection(box, landmarks, method)

    def time_s(self) -> float | None:
        return self.timeline.seconds() if self.timeline.slider.isEnabled() else None

    def audio_time_s(self) -> float | None:
        """The audio window the analyst chose for the next analysis, None for the default (the frame's time)."""
        return self.audio_panel.window_time()

    def clear_analysis(self) -> None:
        """Back to 'no analysis shown' (another case was opened)."""
        self.view = None
        self.record_note.setVisible(False)
        for panel in self._panels():
            panel.set_image(None)
        self.quality.setText("")
        self.search_panel.clear()
        self.draw_audio(None, None, 1.0, None, "No audio shown yet.")
        self.frame_view.set_frame(None)
        self.frame_note.setText("")
        self._drawn = None
        self._clip = None
        self._shown_frame = None
        self.set_tracks(None)

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
        self.search_panel.show_search(view)
        self._show_clip_pooled(view)
        self._show_record_note(view)
        self.analysis_combo.blockSignals(True)
        self.analysis_combo.setCurrentText(view.analysis_id)
        self.analysis_combo.blockSignals(False)
        if view.frame is not None:
            face = r.face
            self.frame_view.set_frame(view.frame)
            if r.parameters.get("rotate") and self.frame_view.rotation():  # the frame comes turned as analysed
                self.frame_view.rotate_view(-self.frame_view.rotation())
            self.show_detection(face.box, face.landmarks, face.method)
            if r.timestamp_s is None:  # a still; a clip's frame comes with its timeline (show_frame)
                self._restore_box(r.frame_evidence, 0)
            self._shown_frame = (r.frame_evidence, "still image" if r.timestamp_s is None else
                                 f"frame at {r.timestamp_s:.2f} s")
            self.frame_note.setText(f"{view.analysis_id}: {r.frame_evidence} — face box "
                                    f"{'drawn by the analyst' if face.method == 'manual' else 'detected'}")

    def _show_clip_pooled(self, view) -> None:
        """A clip analysis: which track, how many frames pooled and how they counted, and their strip."""
        clip = view.record.clip
        self.clip_note.setVisible(clip is not None)
        self.strip_panel.setVisible(clip is not None)
        if clip is None:
            return
        times = [f.time_s for f in clip.frames]
        span = f"{min(times):.2f}–{max(times):.2f} s" if times else "no frames"
        self.clip_note.setText(
            f"Track {clip.track} of {clip.tracks_found:.0f} found in the clip: {len(clip.frames)} frames pooled "
            f"({span}); weights {', '.join(f'{f.weight:.2f}' for f in clip.frames)}. Calibration of the match "
            f"probability: {clip.calibration}. Ctrl+Left / Ctrl+Right on the Frame tab step through the frames used."
            + "".join(f" Warning: {w}." for w in clip.warnings))
        strip = view.images.get("track_strip")
        self.strip_image.setPixmap(to_pixmap(strip) if strip is not None else QPixmap())
        self.strip_image.adjustSize()

    def mark_pooled_frames(self, view) -> None:
        """On the timeline of a clip analysis, the frames it pooled are the marked ones."""
        if view.record.clip is not None and view.record.clip.frames:
            self.timeline.set_marks([int(f.index) for f in view.record.clip.frames], "frames pooled")

    def _show_record_note(self, view) -> None:
        """What the log says of the shown analysis since it was made: withdrawn (with why, who, when) and notes."""
        lines = []
        if view.withdrawn is not None:
            w = view.withdrawn
            lines.append(f"WITHDRAWN on {w.time[:19].replace('T', ' ')} by {w.analyst or w.user}: {w.text}. It stays "
                         "in the case and the report, marked withdrawn; do not rely on it.")
        lines += [f"Note ({n.time[:16].replace('T', ' ')}, {n.analyst or n.user}): {n.text}" for n in view.notes]
        self.record_note.setText("\n".join(lines))
        self.record_note.setStyleSheet("padding: 4px; background: #f8d7da;" if view.withdrawn is not None
                                       else "padding: 4px; background: #eef2f7;")
        self.record_note.setVisible(bool(lines))

    def _show_reconstruction(self) -> None:
        if self.view is None:
            return
        role = "reconstruction" if self.with_audio.isChecked() else "reconstruction_no_audio"
        img = self.view.images.get(role)
        if img is None:
            img = self.view.images.get("reconstruction")
        self.recon_panel.set_image(img, "with audio" if role == "reconstruction" and self.with_audio.isEnabled()
                                   else "without audio")

    def draw_audio(self, audio_view, t: float | None, window_s: float, lbrp: np.ndarray | None, note: str) -> None:
        self.audio_panel.draw(audio_view, t, window_s, lbrp, note)

    @property
    def audio_canvas(self):
        return self.audio_panel.canvas

    @property
    def audio_note(self) -> QLabel:
        return self.audio_panel.note
