"""The operations the window drives, without Qt: every method here runs on a worker thread (they may
take seconds) and returns plain data for the GUI thread to show.

The engine, detector and gallery are the session's :class:`~forensic_face.services.resources.Resources`
(built on first use, so the window opens fast, and kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forensic_face.core.errors import CaseError, ForensicFaceError, ModelsNotTrainedError
from forensic_face.core.progress import Progress
from forensic_face.models.calibration import DEFAULT_FPIR
from forensic_face.services.cases import CaseState, case_state, verify_and_record
from forensic_face.services.resources import Resources
from forensic_face.store.case import Case, VerifyReport


@dataclass
class FrameData:
    evidence: str
    image: np.ndarray
    index: int = 0
    timestamp_s: float | None = None
    frames: int = 1  # frames in the clip (1 for a still)
    fps: float = 0.0
    best: list[int] = field(default_factory=list)  # frame indices ranked best (clips)
    detection: dict | None = None  # box, landmarks, method; None when no face was found
    detection_note: str = ""


class Workbench(Resources):
    """The session's resources and the operations of the GUI."""

    def __init__(self, models: str | Path | None = None, device: str = "auto", gallery_path: str = "",
                 top_k: int = 10, fpir: float = DEFAULT_FPIR, precision: str = "auto") -> None:
        super().__init__(models, device, gallery_path, precision)
        self.top_k, self.fpir = top_k, fpir

    def configure(self, *, device: str | None = None, gallery_path: str | None = None,
                  top_k: int | None = None, fpir: float | None = None, precision: str | None = None) -> None:
        if device is not None:
            self.set_device(device)
        if precision is not None:
            self.set_precision(precision)
        if gallery_path is not None:
            self.set_gallery(gallery_path)
        if top_k is not None:
            self.top_k = top_k
        if fpir is not None:
            self.fpir = fpir

    # ------------------------------------------------------------------------------- cases
    def case_state(self, case: Case, progress: Progress | None = None, with_latest: bool = True,
                   verification: VerifyReport | None = None) -> CaseState:
        """What the case view shows (services.cases.case_state)."""
        return case_state(case, progress, with_latest, verification)

    def open_case(self, path: str | Path, progress: Progress | None = None) -> CaseState:
        return self.case_state(Case.open(path), progress)

    def new_case(self, path: str | Path, case_id: str, analyst: str, title: str) -> CaseState:
        return self.case_state(Case.create(path, case_id, analyst, title))

    def add_evidence(self, case: Case, files: list[str], progress: Progress | None = None) -> CaseState:
        case.add_evidence(files, progress)
        return self.case_state(case, with_latest=False)

    def verify_case(self, case: Case, progress: Progress | None = None) -> tuple[CaseState, str]:
        """Verify (the Verify action): the run is recorded in the log when the case can take it; returns the
        fresh state and why the run was not recorded (empty when it was)."""
        run = verify_and_record(case, progress)
        return self.case_state(case, progress, with_latest=False, verification=run.report), run.not_logged

    def withdraw_analysis(self, case: Case, analysis_id: str, reason: str):
        """Mark an analysis withdrawn with the analyst's reason (logged, kept, shown as withdrawn); returns the
        case's fresh state and the analysis as it now reads."""
        case.withdraw_analysis(analysis_id, reason)
        return self._state_and_analysis(case, analysis_id)

    def add_note(self, case: Case, analysis_id: str, note: str):
        """Log an analyst's note on an analysis; returns the case's fresh state and the analysis with its notes."""
        case.add_note(analysis_id, note)
        return self._state_and_analysis(case, analysis_id)

    def _state_and_analysis(self, case: Case, analysis_id: str):
        state = self.case_state(case, with_latest=False)
        return state, self.load_analysis(case, analysis_id, state.verification)

    def load_analysis(self, case: Case, analysis_id: str, verification: VerifyReport | None = None):
        """A logged analysis by id; with the case view's verification, its altered files are named."""
        from forensic_face.reports.content import find_analysis, load_analysis

        return load_analysis(case, find_analysis(case, analysis_id), verification)

    def demo_case(self, folder: str | Path, progress: Progress | None = None) -> CaseState:
        """Build the bundled demo (case, gallery, analysis, report) and open its case."""
        from forensic_face.services.demo import run_demo

        if progress is not None:  # run_demo reports no progress: its stage is named, the bar stays busy
            progress.update(0, 0, "step 1 of 2: building the demo case, gallery and analysis (about 15 s)")
        summary = run_demo(folder)
        if "case" not in summary:
            raise ModelsNotTrainedError("the demo needs the trained models in resources/models")
        self.configure(gallery_path=str(Path(folder) / "gallery.db"))
        if progress is not None:
            progress.update(0, 0, "step 2 of 2: opening the demo case (verifying its evidence)")
        return self.open_case(summary["case"], progress)

    # ------------------------------------------------------------------------------- frames
    def load_frame(self, case: Case, evidence: str, index: int | None = None, detect: bool = True,
                   rank: bool = False, progress: Progress | None = None, time_s: float | None = None) -> FrameData:
        """A still, or one frame of a clip (by index, by time, or the best-ranked one; the best frames are
        ranked when ``rank``), with detection when ``detect``."""
        from forensic_face.core.errors import NoFaceFoundError
        from forensic_face.vision.frames import load_image, read_video_frame, read_video_frame_at, video_info

        item = _evidence_item(case, evidence, "image", "video")
        path = case.evidence_path(item.name)
        if item.kind == "image":
            data = FrameData(evidence, load_image(path).image)
        else:
            info = video_info(path)
            best = []
            if rank:
                from forensic_face.vision.select import select_best_frames

                sel = select_best_frames(path, self.detector(preview=True), k=3, progress=progress)
                best = [int(r.frame.index) for r in sel.best]
            if index is None and time_s is not None:  # the frame on show then, by the container's timestamps
                frame = read_video_frame_at(path, time_s)
            else:
                idx = index if index is not None else (best[0] if best else 0)
                frame = read_video_frame(path, int(min(max(idx, 0), max(info.frame_count - 1, 0))))
            idx = frame.index
            data = FrameData(evidence, frame.image, idx, frame.timestamp_s, info.frame_count, info.fps, best)
        if detect:
            from forensic_face.engine.probe import locate

            try:
                det = locate(data.image, self.detector(preview=True))
                data.detection = {"box": det.box, "landmarks": det.landmarks, "method": det.method}
            except NoFaceFoundError as exc:
                data.detection_note = f"{exc}. Draw the face box by hand (Analysis ▸ Draw face box)."
        return data

    # ------------------------------------------------------------------------------- analysis
    def analyze(self, case: Case, frame: str, audio: str | None, use_audio: bool, box, time_s: float | None,
                progress: Progress | None = None, audio_time_s: float | None = None, rotate: int = 0):
        """Run the case analysis (the audio window at ``audio_time_s``, None: at the frame's time; the frame
        turned clockwise by ``rotate`` degrees, ``box`` given on the frame as it is); returns the saved analysis
        re-read from the case (what the report shows)."""
        from forensic_face.services.analysis import analyze_case

        res = analyze_case(case, self.engine(), self.detector(), self.gallery(), frame=frame,
                           audio=audio if use_audio else None, use_audio=use_audio and audio is not None,
                           box=self._turned_box(case, frame, box, time_s, rotate), time_s=time_s,
                           audio_time_s=audio_time_s, top_k=self.top_k, fpir=self.fpir, rotate=rotate,
                           progress=progress)
        return self.case_state(case, with_latest=True), res.analysis_id

    def analyze_clip(self, case: Case, clip: str, audio: str | None, use_audio: bool, box, seed_frame: int | None,
                     progress: Progress | None = None):
        """Follow the person through ``clip`` (the track ``box`` starts on frame ``seed_frame``, else the one whose
        faces weigh most), pool its best frames and search; returns the saved analysis re-read from the case."""
        return self._analyze_clip(case, clip, audio, use_audio, _clip_request(box, seed_frame), progress)

    def find_tracks(self, case: Case, clip: str, box, seed_frame: int | None, start_s: float | None = None,
                    end_s: float | None = None, progress: Progress | None = None):
        """The people of ``clip`` (from ``start_s`` to ``end_s``; ``box`` drawn on frame ``seed_frame`` starts a
        track) followed without analysing them (services.analysis.ClipTracks)."""
        from forensic_face.services.analysis import find_tracks

        return find_tracks(case, self.clip_detector(), clip=clip, progress=progress,
                           request=_clip_request(box, seed_frame, start_s, end_s))

    def follow_track(self, case: Case, tracks, track_id: int, audio: str | None, use_audio: bool,
                     progress: Progress | None = None):
        """Analyse track ``track_id`` of ``tracks`` (found by :meth:`find_tracks`; the clip is tracked again with the
        same range and box, which gives the same tracks); returns the saved analysis re-read from the case."""
        from dataclasses import replace

        return self._analyze_clip(case, tracks.evidence, audio, use_audio, replace(tracks.request, track=track_id),
                                  progress)

    def _analyze_clip(self, case: Case, clip: str, audio: str | None, use_audio: bool, request,
                      progress: Progress | None):
        from forensic_face.services.analysis import analyze_clip

        res = analyze_clip(case, self.engine(), self.detector(), self.clip_detector(), self.gallery(),
                           clip=clip, audio=audio if use_audio else None, use_audio=use_audio, request=request,
                           top_k=self.top_k, fpir=self.fpir, progress=progress)
        return self.case_state(case, with_latest=True), res.analysis_id

    def _turned_box(self, case: Case, frame: str, box, time_s: float | None, rotate: int):
        """A box drawn on the frame as it is, where it lies on the frame turned by ``rotate``."""
        if box is None or not rotate:
            return box
        from forensic_face.vision.frames import turn_box

        h, w = self.load_frame(case, frame, detect=False, time_s=time_s).image.shape[:2]
        return turn_box(box, rotate, w, h)

    def audio_panel(self, case: Case, evidence: str, t: float | None = None, with_view: bool = True):
        """The audio panel's data from one decode of the clip: (AudioView or None, window time, LBRP there).

        ``t`` None puts the window mid-clip; ``with_view`` False when the caller already has the view.
        """
        from forensic_face.reports.figures import audio_panel_data

        return audio_panel_data(case.evidence_path(evidence), t, with_view=with_view)

    def listen_window(self, case: Case, evidence: str, t: float, window_s: float, context_s: float = 0.5) -> str:
        """A WAV copy (16 kHz mono, as analysed) of the audio window centred at ``t`` s of ``evidence``, with
        ``context_s`` either side, written to the temporary folder for the system's player; returns its path.
        The evidence is read, never changed."""
        import tempfile

        import soundfile as sf

        from forensic_face.audio.io import load_audio

        clip = load_audio(case.evidence_path(_evidence_item(case, evidence, "audio").name), around_s=t)
        half = window_s / 2 + context_s
        a = int(round((max(t - half, 0.0) - clip.offset_s) * clip.sr))
        b = int(round((t + half - clip.offset_s) * clip.sr))
        part = clip.samples[max(a, 0):max(b, 0)]
        if part.size == 0:
            raise CaseError(f"{evidence}: nothing to play at {t:.2f} s (the recording is {clip.duration_s:.1f} s)")
        folder = Path(tempfile.gettempdir()) / "forensic-face-listen"
        folder.mkdir(exist_ok=True)
        out = folder / f"{Path(evidence).stem}-{t:.2f}s.wav"
        sf.write(out, part, clip.sr, subtype="PCM_16")
        return str(out)

    # ------------------------------------------------------------------------------- gallery, report
    def enrol(self, folder: str, progress: Progress | None = None):
        from forensic_face.services.enrolment import enroll_folder
        from forensic_face.store.gallery import open_gallery

        if not self.gallery_path:
            raise ForensicFaceError("choose a gallery database first (Settings ▸ Gallery)")
        with open_gallery(self.gallery_path, mode="create") as gallery:  # enrolment alone creates a gallery
            return enroll_folder(gallery, folder, self.engine(), self.detector(), progress)

    def gallery_info(self) -> dict | None:
        gallery = self.gallery()
        return gallery.info() if gallery is not None else None

    def export_report(self, case: Case, out: str, progress: Progress | None = None):
        from forensic_face.reports.pdf import write_report

        info = write_report(case, out, progress)
        return info, self.case_state(case, with_latest=False)

    def export_view(self, case: Case, out: str, png: bytes, details: dict) -> tuple[str, str, str]:
        """Write a view the analyst exported (a PNG with its caption) beside the case and log it as
        ``view.exported`` with ``details`` (what it shows, from which evidence); returns (path, SHA-256, why it
        was not logged: empty when it was). Never inside the case folder, which holds only what it records."""
        import hashlib

        from forensic_face.store.atomic import atomic_write_bytes

        target = Path(out).resolve()
        if target.is_relative_to(Path(case.root).resolve()):
            raise CaseError(f"{out}: refusing to write into the case folder; write the picture beside it")
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(png).hexdigest()
        try:
            case.export_view(target, png, details)  # written and logged under the case lock
        except CaseError as exc:  # a case whose record is in doubt, or a read-only copy, still gets its picture
            atomic_write_bytes(target, png)
            return str(target), digest, str(exc)
        return str(target), digest, ""


def _clip_request(box, seed_frame: int | None, start_s: float | None = None, end_s: float | None = None):
    """The services.analysis.ClipRequest of a time range and a box drawn on frame ``seed_frame`` (or none)."""
    from forensic_face.services.analysis import ClipRequest

    return ClipRequest(start_s=start_s, end_s=end_s, seed_frame=seed_frame if box is not None else None,
                       seed_box=box)


def _evidence_item(case: Case, name: str, *kinds: str):
    """The case's evidence item ``name`` of one of ``kinds``; CaseError otherwise."""
    item = next((e for e in case.evidence if e.name == name), None)
    if item is None or item.kind not in kinds:
        raise CaseError(f"{name!r} is not {' or '.join(kinds)} evidence of this case")
    return item
