"""What the window does with the open case's frames, audio and analyses: previews, face detection, running
an analysis, showing one, and comparing with a candidate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QInputDialog

from forensic_face.gui.actions import WindowActions
from forensic_face.gui.dialogs import CompareDialog, show_error

if TYPE_CHECKING:
    from forensic_face.gui.main_window import MainWindow


class AnalysisActions(WindowActions):
    """The Analysis menu and the case view's requests; the work runs off the GUI thread through the window's
    runners: analyses on the task runner, frames and audio panels on the preview runner."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._queued: dict[str, tuple] = {}  # preview work waiting for the preview runner, newest per kind
        self.compare: CompareDialog | None = None  # the candidate comparison opened last
        self.listened: str | None = None  # the audio window written for the player last
        window.preview.finished.connect(self._next_preview)

    # ---------------------------------------------------------------------------------------- previews
    def _preview_task(self, kind: str, fn, on_done, title: str) -> None:
        """Run light work (frames, audio panels) beside the main task; while one runs, the newest request of
        each kind waits and the older ones are dropped."""
        if not self.w.preview.run(kind, fn, on_done, self.w.failure_handler(title)):
            self._queued[kind] = (fn, on_done, title)

    def _next_preview(self, _label: str) -> None:
        if self._queued:
            kind = next(iter(self._queued))
            fn, on_done, title = self._queued.pop(kind)
            self.w.preview.run(kind, fn, on_done, self.w.failure_handler(title))

    def load_frame(self, evidence: str, index, detect: bool = True) -> None:
        w = self.w
        if w.state is None or not evidence:
            return
        case = w.state.case
        rank = index is None and any(e.name == evidence and e.kind == "video" for e in case.evidence)
        def show(data) -> None:
            if w.state is not None and w.state.case.root == case.root:  # the case may have closed meanwhile
                w.case_view.show_frame(data)

        self._preview_task("frame", lambda p: w.wb.load_frame(case, evidence, index, detect=detect, rank=rank,
                                                               progress=p), show, "Could not load the frame")

    def detect_face(self) -> None:
        cv = self.w.case_view
        name = cv.selected_frame()
        if name:
            idx = cv.frame_index()
            self.load_frame(name, idx if idx is not None else 0, detect=True)

    def preview_audio(self, name: str) -> None:
        """Before any analysis: the chosen audio evidence with a window at the frame's time (or mid-clip), or
        where the analyst chose it."""
        w = self.w
        cv = w.case_view
        if w.state is None or cv.view is not None or not name:
            return
        case, t_frame = w.state.case, cv.audio_time_s() if cv.audio_time_s() is not None else cv.time_s()

        def show(result) -> None:
            view, t, vec = result
            if cv.view is None:
                length = view.file_duration_s or view.duration_s
                cv.draw_audio(view, t, 1.0, vec, f"{name}: {length:.1f} s; window 1 s at "
                              f"{t:.2f} s (no analysis yet)" + (" · warnings: " + "; ".join(
                                  view.warnings) if view.warnings else ""))

        self._preview_task("audio", lambda p: w.wb.audio_panel(case, name, t_frame), show,
                           "Could not read the audio")

    def listen(self, t: float, window_s: float) -> None:
        """Play the audio window at ``t`` of the recording shown (the analysis', else the one chosen) in the
        system's audio player, from a WAV copy made on the worker thread."""
        w = self.w
        cv = w.case_view
        if w.state is None:
            return
        shown = cv.view.record.audio if cv.view is not None else None
        evidence = shown.evidence if shown is not None else cv.selected_audio()
        if not evidence:
            return
        case = w.state.case

        def play(path: str) -> None:
            self.listened = path
            opened = QDesktopServices.openUrl(QUrl.fromLocalFile(path))
            w.statusBar().showMessage(f"{'Playing' if opened else 'No audio player opened it; the window is in'} "
                                      f"{path}", 10000)

        w.run_task("Preparing the audio", lambda p: w.wb.listen_window(case, evidence, t, window_s), play,
                   "Could not prepare the audio", cancellable=False)

    # ---------------------------------------------------------------------------------------- analyses
    def run_analysis(self) -> None:
        w = self.w
        if w.state is None:
            return
        cv = w.case_view
        frame = cv.selected_frame()
        if not frame:
            show_error(w, "Nothing to analyse", "error", "Add an image or video to the case first.")
            return
        audio, use_audio = cv.selected_audio(), cv.uses_audio()
        box, time_s, audio_time_s, case = cv.drawn_box(), cv.time_s(), cv.audio_time_s(), w.state.case

        def done(result) -> None:
            state, aid = result
            w.case_actions.show_case(state)
            w.show_tab(3 if state.latest and state.latest.record.search else 1)
            w.statusBar().showMessage(f"{aid} saved in the case and logged", 8000)

        turn = cv.frame_view.rotation() if w.act_turned.isChecked() else 0  # the frame as the view shows it
        w.run_task("Analysing", lambda p: w.wb.analyze(case, frame, audio, use_audio, box, time_s, p,
                                                       audio_time_s=audio_time_s if use_audio else None,
                                                       rotate=turn),
                   done, "The analysis could not finish")

    def _clip(self) -> str | None:
        """The video chosen in Frame:, None (and the analyst told why) when a still or nothing is."""
        w = self.w
        frame = w.case_view.selected_frame()
        if not frame or not any(e.name == frame and e.kind == "video" for e in w.state.case.evidence):
            show_error(w, "No clip to follow", "error", "Choose a video in Frame: to follow a face through it "
                       "(a still image is analysed with Run analysis).")
            return None
        return frame

    def follow_clip(self) -> None:
        """Follow the person through the clip shown and pool the best frames of the track: the track the box drawn
        on this frame starts, else the one whose faces weigh most."""
        w = self.w
        if w.state is None or (frame := self._clip()) is None:
            return
        cv = w.case_view
        # Use audio ticked with no audio evidence chosen: the clip's own sound track, when it has a usable one
        audio, use_audio, case = cv.selected_audio(), cv.use_audio.isChecked(), w.state.case
        box, seed_frame = cv.drawn_box(), cv.frame_index()
        w.run_task("Following the face through the clip",
                   lambda p: w.wb.analyze_clip(case, frame, audio, use_audio, box, seed_frame, p),
                   self._clip_analysed, "The clip could not be analysed")

    def find_people(self) -> None:
        """Follow every face through the clip shown (in the time range of the People in the clip panel; a box drawn
        on this frame starts a track) without analysing: the tracks are drawn on the frames and listed."""
        w = self.w
        if w.state is None or (frame := self._clip()) is None:
            return
        start_s, end_s = w.tracks_panel.time_range()
        if start_s is not None and end_s is not None and end_s <= start_s:
            show_error(w, "No time range", "error", f"The range ends ({end_s:.2f} s) before it starts "
                       f"({start_s:.2f} s); set its end after its start, or to 'end of the clip'.")
            return
        cv, case = w.case_view, w.state.case
        box, seed_frame = cv.drawn_box(), cv.frame_index()

        def done(tracks) -> None:
            if w.state is None or w.state.case.root != case.root:  # the case closed meanwhile
                return
            cv.set_tracks(tracks)
            w.tracks_dock.show()
            w.tracks_dock.raise_()
            w.show_tab(0)
            w.statusBar().showMessage(f"{tracks.evidence}: {tracks.summary}; choose one in People in the clip and "
                                      "Follow this person", 10000)

        w.run_task("Finding the people in the clip",
                   lambda p: w.wb.find_tracks(case, frame, box, seed_frame, start_s, end_s, p), done,
                   "The faces could not be followed through the clip")

    def follow_track(self, track_id: int) -> None:
        """Analyse track ``track_id`` of the tracks found (over the range and from the box they were found with)."""
        w = self.w
        tracks = w.case_view.tracks()
        if w.state is None or tracks is None:
            return
        cv, case = w.case_view, w.state.case
        audio, use_audio = cv.selected_audio(), cv.use_audio.isChecked()
        w.run_task(f"Following track {track_id} through the clip",
                   lambda p: w.wb.follow_track(case, tracks, track_id, audio, use_audio, p),
                   self._clip_analysed, "The clip could not be analysed")

    def _clip_analysed(self, result) -> None:
        state, aid = result
        w = self.w
        w.case_actions.show_case(state)
        w.show_tab(1)
        w.statusBar().showMessage(f"{aid} saved in the case and logged", 8000)

    def withdraw_analysis(self) -> None:
        """Withdraw the analysis shown, asking why (a reason is required; nothing is deleted)."""
        self._record_on_shown("Withdraw analysis", "Why is {aid} withdrawn? (It stays in the case and the report, "
                              "marked withdrawn.)", self.w.wb.withdraw_analysis)

    def add_note(self) -> None:
        """Write a note on the analysis shown (logged with who and when, printed in the report)."""
        self._record_on_shown("Add a note", "Note on {aid} (logged with your name and the time, printed in the "
                              "report):", self.w.wb.add_note, multiline=True)

    def _record_on_shown(self, title: str, prompt: str, record, multiline: bool = False) -> None:
        w = self.w
        view = w.case_view.view
        if w.state is None or view is None:
            w.statusBar().showMessage(f"{title}: show an analysis first (the Showing list)", 6000)
            return
        aid, case = view.analysis_id, w.state.case
        ask = QInputDialog.getMultiLineText if multiline else QInputDialog.getText
        text, ok = ask(w, title, prompt.format(aid=aid))
        if not ok or not text.strip():
            return

        def done(result) -> None:
            state, shown = result
            w.case_actions.show_case(state, show_latest=False)
            self.show_view(shown)
            w.statusBar().showMessage(f"{title}: {aid}: recorded in the audit log", 8000)

        w.run_task(title, lambda p: record(case, aid, text), done, f"{title}: not recorded", cancellable=False)

    def show_analysis_id(self, analysis_id: str) -> None:
        w = self.w
        if w.state is None or not analysis_id:
            return
        shown = w.case_view.view
        if shown is not None and shown.analysis_id == analysis_id:
            return
        case, verification = w.state.case, w.state.verification
        self._preview_task("analysis", lambda p: w.wb.load_analysis(case, analysis_id, verification),
                           lambda view: self.show_view(view, case), "Could not load the analysis")

    def show_view(self, view, case=None) -> None:
        """An analysis (reports.content.AnalysisView) of the open case: its tabs, the clip at its frame, its
        audio panel. One loaded from ``case`` is dropped when that case is no longer open."""
        w = self.w
        if w.state is None or (case is not None and case.root != w.state.case.root):
            return
        cv = w.case_view
        cv.show_analysis(view)
        ev = view.record.frame_evidence
        if any(e.name == ev and e.kind == "video" for e in w.state.case.evidence):
            self._show_clip_at(view, ev)
        audio = view.record.audio
        if view.audio is None or audio is None:
            cv.draw_audio(None, None, 1.0, None, view.audio_problem or "No audio in this analysis.")
            return
        t, win = audio.timestamp_s, audio.window_s if audio.window_s > 0 else 1.0
        note = (f"{audio.evidence}: window {win:g} s at {t:.2f} s · pitch {audio.pitch_hz:g} Hz · "
                f"voiced {100 * audio.voiced_fraction:.0f} %"
                + (" · warnings: " + "; ".join(view.audio.warnings) if view.audio.warnings else ""))
        cv.draw_audio(view.audio, t, win, view.lbrp, note)  # the LBRP load_analysis computed at the window

    def _show_clip_at(self, view, evidence: str) -> None:
        """An analysis of a clip: its timeline, positioned at the analysed frame, with the analysis' box."""
        w = self.w
        cv = w.case_view
        case, face = w.state.case, view.record.face
        t = view.record.timestamp_s

        def show(data) -> None:
            if cv.view is view:
                cv.show_frame(data)
                cv.show_detection(face.box, face.landmarks, face.method)
                cv.mark_pooled_frames(view)

        rank = cv.clip_shown() != evidence  # a clip's best frames are ranked once, when its timeline is set
        self._preview_task("frame", lambda p: w.wb.load_frame(case, evidence, None, detect=False, rank=rank,
                                                               progress=p, time_s=t), show,
                           "Could not load the frame")

    def open_candidate(self, row: int) -> None:
        """The analysed face beside the candidate in ``row`` of the candidates table."""
        view = self.w.case_view.view
        if view is None:
            return
        cands = view.record.search.candidates if view.record.search is not None else []
        if 0 <= row < len(cands):
            thumb = view.thumbnails[row] if row < len(view.thumbnails) else None
            recon = self.w.case_view.shown_reconstruction()
            self.compare = CompareDialog(self.w, view.images.get("input_face"), recon, cands[row], thumb)
            self.compare.open()
