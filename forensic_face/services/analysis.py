"""The case workflow shared by the CLI, the GUI and the tests: analyse one frame of a case.

``analyze_case``: pick the frame (a still, or the sharpest frames of a clip), detect and align the
face (or use the analyst's box), take the audio window at the frame's timestamp, reconstruct with
and without audio, embed, search the gallery, store the results in the case and log the step with
the hashes of its inputs and outputs, the model version and every parameter.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from forensic_face import __version__
from forensic_face.core.errors import (
    AudioError,
    CancelledError,
    CaseError,
    ForensicFaceError,
    InputError,
    NoFaceFoundError,
    VideoDamagedError,
    VideoDecodeError,
)
from forensic_face.core.progress import Progress
from forensic_face.core.records import AnalysisRecord, SearchOutcome
from forensic_face.engine.probe import Probe, ProbePath, pool
from forensic_face.engine.search import search_gallery
from forensic_face.models.calibration import DEFAULT_FPIR
from forensic_face.store.case import RESULTS_DIR, Case, EvidenceItem
from forensic_face.store.gallery import GalleryStore
from forensic_face.vision.frames import ROTATIONS, encode_png, rotate_image

log = logging.getLogger(__name__)


@dataclass
class AnalysisResult:
    """Everything one analysis produced (also written to ``results/<id>/<id>.json``)."""

    analysis_id: str
    frame_evidence: str
    timestamp_s: float | None  # of the frame in its clip; None for a still
    face: dict  # detection (box, landmarks, method), alignment method
    quality: dict  # face size, blur, noise, hints
    audio: dict | None  # evidence, window, pitch, feature parameters; None without audio
    search: dict | None  # SearchOutcome.as_dict(), None without a gallery
    engine: dict  # model version, device, weights hash
    images: dict[str, str] = field(default_factory=dict)  # role -> results/<id>/<role>.png
    audio_effect: dict = field(default_factory=dict)  # how much the audio changed the reconstruction
    seconds: float = 0.0
    face_image: np.ndarray | None = None  # aligned degraded face (S, S) uint8
    reconstruction: np.ndarray | None = None  # (S, S) uint8, with audio when there was audio
    reconstruction_no_audio: np.ndarray | None = None
    search_result: SearchOutcome | None = None
    record: AnalysisRecord | None = None  # the saved record as the GUI and the report read it back
    clip: dict | None = None  # a clip's track: the frames pooled (see analyze_clip); None for one frame
    strip: np.ndarray | None = None  # the pooled faces side by side, captioned

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in (
            "face_image", "reconstruction", "reconstruction_no_audio", "search_result", "record", "strip")}
        return out if self.clip is not None else {k: v for k, v in out.items() if k != "clip"}


def pick_evidence(case: Case, name: str | None, kinds: tuple[str, ...]) -> EvidenceItem | None:
    items = [e for e in case.evidence if e.kind in kinds]
    if name is None:
        return items[0] if items else None
    for e in case.evidence:
        if e.name == name or e.original_name == name:
            if e.kind not in kinds:
                raise CaseError(f"evidence {name!r} is {e.kind}, expected {' or '.join(kinds)}")
            return e
    raise CaseError(f"no evidence named {name!r} in the case (see `forensic-face case log`)")


def load_frame(case: Case, item: EvidenceItem, detector, progress: Progress | None = None,
               time_s: float | None = None, path=None):
    """The frame to analyse: the still itself, or the chosen/sharpest frame of a clip."""
    from forensic_face.vision.frames import load_image, read_video_frame_at
    from forensic_face.vision.select import select_best_frames

    path = path if path is not None else case.evidence_path(item.name)
    if item.kind == "image":
        return load_image(path), {"selection": "still"}
    if time_s is not None:  # the frame on show at that time, by the container's timestamps
        return read_video_frame_at(path, time_s), {"selection": "given time", "time_s": time_s}
    sel = select_best_frames(path, detector, k=3, progress=progress)
    if not sel.best:
        raise NoFaceFoundError(f"{item.name}: no frame of the clip has a detectable face; give a time and a face box")
    return sel.best[0].frame, {
        "selection": "sharpest frames with a face",
        "ranked_timestamps_s": [round(float(r.frame.timestamp_s), 3) for r in sel.best]}


def analyze_case(case: Case, engine, detector, gallery: GalleryStore | None = None, *, frame: str | None = None,
                 audio: str | None = None, use_audio: bool = True, box: tuple[float, float, float, float] | None = None,
                 time_s: float | None = None, audio_time_s: float | None = None, top_k: int = 10,
                 fpir: float = DEFAULT_FPIR, rotate: int = 0, progress: Progress | None = None) -> AnalysisResult:
    """Analyse one frame of a case and record the analysis in it as one unit (store.case.commit_analysis).

    Before any long work the case must be able to take the result (lock, an intact record, free
    space) and the frame's and audio's evidence files must still match their recorded SHA-256. ``rotate``
    turns the frame clockwise by 90, 180 or 270 degrees first (a camera hung sideways); ``box`` is then in
    the turned frame."""
    t0 = time.perf_counter()
    if rotate not in ROTATIONS:
        raise InputError(f"a frame is turned by 0, 90, 180 or 270 degrees, not {rotate!r}; nothing was analysed")
    if gallery is not None and engine.calibration is not None:
        try:  # refuse a false-lead rate the calibration did not measure before any work is done
            engine.calibration.check_fpir(fpir)
        except ValueError as exc:
            raise ForensicFaceError(str(exc)) from None
    step = progress or Progress()
    step.update(0, 5, "checking the case and its evidence")
    item = pick_evidence(case, frame, ("image", "video"))
    if item is None:
        raise CaseError("the case has no image or video evidence to analyse (add some with `case add`)")
    aitem = pick_evidence(case, audio, ("audio",)) if use_audio else None
    if use_audio and audio is not None and aitem is None:
        raise CaseError(f"no audio evidence {audio!r}")
    case.check_writable()
    frame_path = case.checked_evidence_path(item)
    audio_path = case.checked_evidence_path(aitem) if aitem is not None else None
    parameters = {"top_k": top_k, "fpir": fpir, "use_audio": use_audio, "manual_box": box, "time_s": time_s,
                  "audio_time_s": audio_time_s, "rotate": rotate}
    with _failure_logged(case, item, aitem, parameters):
        step.update(0, 5, "loading frame")
        frm, selection = load_frame(case, item, detector, progress, time_s, path=frame_path)
        frm = replace(frm, image=rotate_image(frm.image, rotate))
        step.update(1, 5, "detecting face")
        path = ProbePath(engine, detector)
        try:
            face = path.face(frm.image, box)
        except NoFaceFoundError as exc:
            raise NoFaceFoundError(f"{item.name}: {exc}") from None  # each interface says how to draw the box
        step.update(2, 5, "audio")
        audio_info, audio_vec = None, None
        if aitem is not None:
            audio_info, audio_vec = _audio_features(aitem, audio_path, frm, item.kind, audio_time_s)
        step.update(3, 5, "reconstructing")
        probe = path.complete(face, audio_vec)
        step.update(4, 5, "searching gallery")
        search, search_res, thumbs = None, None, []
        if gallery is not None:
            search_res, search = _search(gallery, engine, probe, top_k, fpir)
            thumbs = [gallery.thumbnail(c.image_id) for c in search_res.candidates]
    result = _result(item, frm, selection, probe, audio_info, search, search_res, engine)
    step.update(4, 5, "saving the analysis in the case")
    aid, _ = case.commit_analysis(
        lambda aid: _analysis_files(aid, result, thumbs, parameters, item, aitem, engine, t0), progress)
    result.analysis_id = aid
    result.images = {role: f"{RESULTS_DIR}/{aid}/{role}.png" for role in _IMAGE_ROLES}
    result.seconds = round(time.perf_counter() - t0, 3)
    step.update(5, 5, "done")
    return result


_IMAGE_ROLES = ("input_face", "reconstruction", "reconstruction_no_audio", "difference")


@contextmanager
def _failure_logged(case: Case, item: EvidenceItem, aitem: EvidenceItem | None, parameters: dict) -> Iterator[None]:
    """Log an analysis that fails with a reason the analyst should see in the case (no face, unusable audio, a
    gallery refused) as ``analysis.failed``; a cancellation is not a failure and is not logged."""
    try:
        yield
    except CancelledError:
        raise
    except ForensicFaceError as exc:
        try:
            case.log_failed_analysis(item.name, aitem.name if aitem else None, str(exc), parameters)
        except ForensicFaceError as not_logged:  # the case cannot take it (locked, record in doubt): say so
            log.warning("the failed analysis was not logged in the case: %s", not_logged)
        raise


def _audio_features(aitem: EvidenceItem, path, frm, frame_kind: str, audio_time_s: float | None):
    """(record of the audio window, feature vector) at the frame's time (a still: mid-clip or as given)."""
    from forensic_face.audio.features import AudioFeatureExtractor

    extractor = AudioFeatureExtractor()
    try:
        header = extractor.info(path)  # header only, limits checked, nothing decoded
        t_audio = audio_time_s if audio_time_s is not None else (
            frm.timestamp_s if frame_kind == "video" and frm.timestamp_s is not None else header.duration_s / 2)
        t_audio = float(min(max(t_audio, 0.0), header.duration_s))
        clip = extractor.load(path, around_s=t_audio)  # a window around the time; the whole file when short
    except AudioError as exc:
        raise AudioError(f"audio evidence {aitem.name}: {exc} (analyse with --no-audio to go on without it)") \
            from None
    feats = extractor(clip, np.array([t_audio]))
    info = {"evidence": aitem.name, "sha256": aitem.sha256, "timestamp_s": round(t_audio, 3),
            "window_s": feats.params["config"]["prosody_window_s"],
            "pitch_hz": round(float(feats.prosody[0, 0]), 1),
            "voiced_fraction": round(float(feats.prosody[0, 3]), 3),
            "quality": _with_voice_warnings(feats), "params": feats.params}
    return info, feats.vector


def _with_voice_warnings(feats) -> dict:
    """The audio's quality record with the windows that hold no voice named among its warnings (their vectors
    carry no voice: the reconstruction had nothing to take from them)."""
    quality = dict(feats.params["quality"])
    quality["warnings"] = [*quality.get("warnings", []), *feats.warnings]
    return quality


def _result(item: EvidenceItem, frm, selection: dict, probe: Probe, audio_info: dict | None, search: dict | None,
            search_res: SearchOutcome | None, engine) -> AnalysisResult:
    """The analysis of one probe, before it is saved (no id, images or time yet)."""
    face = probe.face
    return AnalysisResult(
        analysis_id="", frame_evidence=item.name,
        timestamp_s=None if frm.timestamp_s is None else round(frm.timestamp_s, 3),
        face={**face.detection.as_dict(), "alignment": face.aligned.method,
              "frame_to_crop": np.round(face.aligned.matrix, 5).tolist(), **_recogniser_crop(face), **selection},
        quality={**face.quality.as_dict(), "hints": face.quality.hints()},
        audio=audio_info, search=search, engine=engine.info.as_dict(), audio_effect=probe.audio_effect,
        face_image=face.grey, reconstruction=probe.reconstruction,
        reconstruction_no_audio=probe.reconstruction_no_audio, search_result=search_res)


def _recogniser_crop(face) -> dict:
    """How the recogniser's own crop was made, when it takes another than the autoencoder's (what was embedded
    can then be made again from the frame)."""
    if face.rec_aligned is None:
        return {}
    return {"recogniser_alignment": face.rec_aligned.method,
            "frame_to_recogniser_crop": np.round(face.rec_aligned.matrix, 5).tolist()}


def _search(gallery: GalleryStore, engine, probe: Probe, top_k: int, fpir: float) -> tuple[SearchOutcome, dict]:
    """Search the gallery with the probe's embedding (of its reconstruction, or of the face as found); the saved
    dict names the gallery searched (path, content checksum, people, model version: SearchOutcome.gallery)."""
    if engine.calibration is None:
        raise ForensicFaceError("the models carry no calibration; retrain or re-export them")
    res = search_gallery(gallery, probe.embedding, engine.calibration, engine.info.version,
                         probe.face.detection.width, top_k, probe_sharpness=probe.face.quality.sharpness, fpir=fpir,
                         paths=engine.path_weights(probe.embedding))
    return res, res.as_dict()  # with the identity of the gallery content it searched


def _analysis_files(aid: str, result: AnalysisResult, thumbs: list, parameters: dict, item: EvidenceItem,
                    aitem: EvidenceItem | None, engine, t0: float) -> tuple[dict[str, bytes], dict]:
    """The files of analysis ``aid`` (its JSON record, the faces, the candidates' gallery faces) and the
    details of its log entry."""
    files = {f"{role}.png": encode_png(img) for role, img in (
        ("input_face", result.face_image), ("reconstruction", result.reconstruction),
        ("reconstruction_no_audio", result.reconstruction_no_audio),
        ("difference", cv2.absdiff(result.reconstruction, result.face_image)))}
    if result.strip is not None:
        files["track_strip.png"] = encode_png(result.strip)
    search = None
    if result.search is not None:  # the gallery faces that matched, so the case stays readable without the gallery
        search = {**result.search, "candidates": [dict(c) for c in result.search["candidates"]]}
        for k, png in enumerate(thumbs, 1):
            if png is not None:
                files[f"candidate-{k}.png"] = png
                search["candidates"][k - 1]["thumbnail"] = f"{RESULTS_DIR}/{aid}/candidate-{k}.png"
    result.search = search
    record = {**result.as_dict(), "analysis_id": aid, "search": search,
              "images": {role: f"{RESULTS_DIR}/{aid}/{role}.png" for role in _roles(result)},
              "seconds": round(time.perf_counter() - t0, 3), "software": f"forensic-face {__version__}",
              "parameters": parameters, "inputs": {"frame": {"evidence": item.name, "sha256": item.sha256}}}
    text = json.dumps(record, indent=2)
    files[f"{aid}.json"] = (text + "\n").encode()
    result.record = AnalysisRecord.from_dict(json.loads(text))  # exactly what the file says
    res = result.search_result
    details = {"frame": {"evidence": item.name, "sha256": item.sha256},
               "audio": {"evidence": aitem.name, "sha256": aitem.sha256} if aitem else None,
               "model_version": engine.info.version, "weights_sha256": engine.info.weights_sha256,
               "device": engine.info.device, "precision": engine.info.params.get("precision"),
               "verdict": res.verdict if res else None,
               "gallery": search.get("gallery") if search else None, "parameters": parameters}
    return files, details


# ------------------------------------------------------------------------------------------------ clips

#: The most frames of a track pooled into its template (those of highest weight).
POOL_FRAMES = 16
POOLING = ("quality-weighted mean of the frames' embeddings (engine.fusion: size, sharpness, noise, pose and "
           "detector score), renormalised")


@dataclass(frozen=True)
class ClipRequest:
    """What the analyst asked of a clip: which part, which person (a track number, or a box drawn on a frame to
    follow), how many frames to pool."""

    start_s: float | None = None
    end_s: float | None = None
    track: int | None = None  # None: the track whose frames weigh most
    seed_frame: int | None = None  # a box drawn on this frame starts (or picks) the track
    seed_box: tuple[float, float, float, float] | None = None
    pool_frames: int = POOL_FRAMES

    def as_dict(self) -> dict:
        return {"start_s": self.start_s, "end_s": self.end_s, "track": self.track, "seed_frame": self.seed_frame,
                "seed_box": self.seed_box, "pool_frames": self.pool_frames}


def analyze_clip(case: Case, engine, detector, clip_detector, gallery: GalleryStore | None = None, *,
                 clip: str | None = None, audio: str | None = None, use_audio: bool = True,
                 request: ClipRequest = ClipRequest(), top_k: int = 10, fpir: float = DEFAULT_FPIR,
                 progress: Progress | None = None) -> AnalysisResult:
    """Analyse one person through a clip and record it in the case as one unit: follow the faces
    (:func:`forensic_face.vision.track.track_faces`), take the chosen track's best frames (at most
    ``request.pool_frames``, by weight) through the probe path with the audio window of each frame's time, pool
    them (:func:`forensic_face.engine.probe.pool`), and search the gallery with the pooled template read with the
    calibration of pooled templates (never the single frame's). The record lists every frame used (time, box,
    quality, weight) and a strip of them."""
    t0 = time.perf_counter()
    step = progress or Progress()
    item = _clip_item(case, clip)
    aitem = pick_evidence(case, audio, ("audio", "video")) if use_audio and audio is not None else None
    case.check_writable()
    path = case.checked_evidence_path(item)
    audio_path = case.checked_evidence_path(aitem) if aitem is not None else None
    parameters = {"top_k": top_k, "fpir": fpir, "use_audio": use_audio, "clip": request.as_dict()}
    with _failure_logged(case, item, aitem, parameters):
        if gallery is not None:
            _pooled_calibration(engine, fpir)
        tracks, track = _follow(path, item, clip_detector, request, step)
        chosen, frm = _pool_faces(path, track, engine, request, step)
        audio_info, audio_vecs, audio_note = _track_audio(aitem, audio_path, item, path, chosen, use_audio,
                                                          audio is not None)
        step.update(3, 5, "reconstructing and pooling the frames")
        probes = ProbePath(engine, detector).complete_many([f for _, f in chosen], audio_vecs)
        # the template searched with pools the embeddings of the reconstructions without audio: those the pooled
        # calibration was fitted on; the reconstruction shown keeps the audio (a recogniser of the face as found
        # is not reached by the audio: its embeddings are the probes' own)
        plain = None if audio_vecs is None or not engine.searches_reconstruction else \
            ProbePath(engine, detector).embed_probes([p.face for p in probes],
                                                     np.stack([p.reconstruction_no_audio for p in probes]))
        pooled = pool(probes, np.array([tf.weight for tf, _ in chosen]), embeddings=plain,  # None: theirs
                      pooling=engine.pooling_of(len(chosen)))
        step.update(4, 5, "searching gallery")
        search, search_res, thumbs = None, None, []
        if gallery is not None:
            search_res = _pooled_search(gallery, engine, pooled, top_k, fpir)
            search = search_res.as_dict()
            thumbs = [gallery.thumbnail(c.image_id) for c in search_res.candidates]
        best = int(np.argmax(pooled.weights))
        result = _result(item, frm, {"selection": f"track {track.track_id}, {len(chosen)} frames pooled"},
                         replace(probes[best], reconstruction=pooled.reconstruction,
                                 reconstruction_no_audio=pooled.reconstruction_no_audio),
                         audio_info, search, search_res, engine)
        result.clip = _clip_record(replace(tracks, warnings=(*tracks.warnings, *audio_note)), track, chosen,
                                   pooled, engine, searched=gallery is not None)
        result.strip = track_strip([f.grey for _, f in chosen], [tf for tf, _ in chosen], pooled.weights)
    step.update(4, 5, "saving the analysis in the case")
    heard = aitem if aitem is not None or audio_info is None else item  # the clip itself when its sound was used
    aid, _ = case.commit_analysis(
        lambda aid: _analysis_files(aid, result, thumbs, parameters, item, heard, engine, t0), progress)
    result.analysis_id = aid
    result.images = {role: f"{RESULTS_DIR}/{aid}/{role}.png" for role in _roles(result)}
    result.seconds = round(time.perf_counter() - t0, 3)
    step.update(5, 5, "done")
    return result


@dataclass(frozen=True, eq=False)
class PersonTrack:
    """One person followed through a clip, as the analyst chooses among them (see :func:`find_tracks`)."""

    track_id: int  # what ClipRequest.track names
    first_frame: int
    last_frame: int
    start_s: float | None  # time of its first and last face (None: the frame had no time)
    end_s: float | None
    faces: int  # frames it has a face on
    usable_faces: int  # of those, faces of weight above 0 (those a clip analysis can pool)
    weight: float  # the sum of its faces' weights: the track analysed when none is named weighs most
    seeded: bool  # started (or confirmed) by the box the analyst drew
    frames: np.ndarray  # (N,) int64 frame indices, ascending
    boxes: np.ndarray  # (N, 4) float32 face box on each of those frames (x0, y0, x1, y1), frame pixels
    best_frame: int  # the frame of its best face (weighs most)
    thumbnail: np.ndarray | None  # RGB crop of that face (at most 112 px a side)

    def box_at(self, frame_index: int) -> tuple[float, float, float, float] | None:
        """Its face box on frame ``frame_index``, None when it has no face there."""
        i = int(np.searchsorted(self.frames, frame_index))
        if i < len(self.frames) and self.frames[i] == frame_index:
            return tuple(float(v) for v in self.boxes[i])
        return None


@dataclass(frozen=True, eq=False)
class ClipTracks:
    """The people of a clip (or of its time range), followed but not analysed."""

    evidence: str
    request: ClipRequest  # the range and the analyst's box tracked: analyse a track with replace(request, track=N)
    tracks: list[PersonTrack]  # by first frame
    summary: str
    warnings: tuple[str, ...]

    def boxes_at(self, frame_index: int) -> list[tuple[int, tuple[float, float, float, float]]]:
        """(track id, face box) of every track with a face on frame ``frame_index``."""
        return [(t.track_id, box) for t in self.tracks if (box := t.box_at(frame_index)) is not None]


def find_tracks(case: Case, clip_detector, *, clip: str | None = None, request: ClipRequest = ClipRequest(),
                progress: Progress | None = None) -> ClipTracks:
    """Follow every face through a clip of the case (``request``: its time range, a box the analyst drew) without
    analysing anything, for the analyst to choose whom to analyse: the same tracking as :func:`analyze_clip`, so
    ``analyze_clip(request=replace(found.request, track=N))`` follows track N. The clip must match its recorded
    SHA-256; nothing is written to the case."""
    step = progress or Progress()
    item = _clip_item(case, clip)
    path = case.checked_evidence_path(item)
    request = replace(request, track=None)
    tracks = _track_clip(path, item, clip_detector, request, step)
    people = []
    for t in tracks.tracks:
        d = t.as_dict(with_faces=False)
        people.append(PersonTrack(
            track_id=t.track_id, first_frame=t.first_frame, last_frame=t.last_frame, start_s=d["start_s"],
            end_s=d["end_s"], faces=d["faces"], usable_faces=d["usable_faces"],
            weight=round(float(t.weights.sum()), 4), seeded=t.seeded, frames=t.records["frame"].copy(),
            boxes=t.records["box"].copy(), best_frame=t.crops[0].frame_index if t.crops else t.first_frame,
            thumbnail=t.crops[0].image if t.crops else None))
    return ClipTracks(evidence=item.name, request=request, tracks=people, summary=tracks.summary(),
                      warnings=tracks.warnings)


def _roles(result: AnalysisResult) -> tuple[str, ...]:
    return _IMAGE_ROLES + (("track_strip",) if result.strip is not None else ())


def _pooled_calibration(engine, fpir: float) -> None:
    """Refuse, before any work, models without the calibration of pooled templates or a false-lead rate it did
    not measure."""
    if engine.clip_calibration is None or engine.calibration is None:
        raise ForensicFaceError("the models carry no calibration for templates pooled from clips (it is never "
                                "borrowed from single frames); fit it with `forensic-face evaluate --clips`, or "
                                "analyse single frames of the clip")
    try:
        engine.clip_calibration.check_fpir(fpir)
    except ValueError as exc:
        raise ForensicFaceError(str(exc)) from None


def _clip_item(case: Case, clip: str | None) -> EvidenceItem:
    """The clip ``clip`` of the case (None: its first)."""
    item = pick_evidence(case, clip, ("video",))
    if item is None:
        raise CaseError("the case has no video evidence to follow a face through (add a clip with `case add`)")
    return item


def _follow(path, item: EvidenceItem, clip_detector, request: ClipRequest, step: Progress):
    """(the tracking of the clip, the track chosen): the one asked for, the one the analyst's box started, or the
    one whose faces weigh most."""
    tracks = _track_clip(path, item, clip_detector, request, step)
    if request.track is not None:
        found = [t for t in tracks.tracks if t.track_id == request.track]
        if not found:
            raise InputError(f"{item.name}: there is no track {request.track}; the tracking found "
                             + ", ".join(str(t.track_id) for t in tracks.tracks))
        return tracks, found[0]
    seeded = [t for t in tracks.tracks if t.seeded]
    return tracks, (seeded[0] if seeded else max(tracks.tracks, key=lambda t: float(t.weights.sum())))


def _track_clip(path, item: EvidenceItem, clip_detector, request: ClipRequest, step: Progress):
    """Every face of the clip's range followed (vision.track.TrackResult; the analyst's box seeds a track), up to
    any damage in the clip (named among its warnings); NoFaceFoundError when no face was followed. The same clip
    and request give the same tracks, numbered alike."""
    from forensic_face.engine.fusion import frame_weight
    from forensic_face.vision.frames import iter_video_frames, video_info
    from forensic_face.vision.track import Seed, read_ahead, track_faces

    step.update(0, 5, "following faces through the clip")
    seeds = [Seed(request.seed_frame, request.seed_box)] if request.seed_box is not None else []
    if seeds and request.seed_frame is None:
        raise InputError("a box to follow needs the frame it was drawn on")
    info = video_info(path)
    span = (request.end_s if request.end_s is not None else info.duration_s) - (request.start_s or 0.0)
    damage: list[str] = []
    frames = read_ahead(_up_to_damage(iter_video_frames(path, start_s=request.start_s, end_s=request.end_s), damage))
    with closing(frames):  # the decoder thread stops with the tracking, cancelled or failed too
        tracks = track_faces(frames, clip_detector, weigh=frame_weight, seeds=seeds, workers=2,
                             total_frames=max(1, int(span * info.fps)) if info.fps > 0 else None, progress=step)
    if not tracks.tracks:
        raise NoFaceFoundError(f"{item.name}: {tracks.summary()}" + (f" ({damage[0]})" if damage else ""))
    return replace(tracks, warnings=(*tracks.warnings, *damage))


def _up_to_damage(frames, damage: list[str]):
    """``frames`` until the reader finds the clip damaged or cut short; what it said is put in ``damage`` (the frames
    before the damage are used, and the record says where the clip stopped being readable)."""
    try:
        yield from frames
    except VideoDamagedError as exc:
        damage.append(f"{exc}; only the {exc.frames_read} frames before it were followed")


def _pool_faces(path, track, engine, request: ClipRequest, step: Progress) -> tuple[list, object]:
    """The track's faces to pool, [(TrackedFace, ProbeFace)] in time order (the ``request.pool_frames`` of highest
    weight, weight 0 never), and the frame of the best of them (shown as the analysed frame)."""
    from forensic_face.engine.probe import face_at, rec_spec
    from forensic_face.vision.frames import iter_video_frames
    from forensic_face.vision.track import iter_track_frames

    w = track.weights
    usable = np.nonzero(w > 0)[0]
    if usable.size == 0:
        raise InputError(f"none of the {len(w)} faces of track {track.track_id} is usable (each is under 12 px "
                         "wide, turned far to the side or without detail); choose another track or time range")
    keep = usable[np.argsort(-w[usable], kind="stable")[:request.pool_frames]]
    wanted = {int(track.records["frame"][i]) for i in keep}
    best_frame = int(track.records["frame"][keep[0]])
    step.update(1, 5, f"aligning the {len(wanted)} best faces of track {track.track_id}")
    chosen, frm = [], None
    frames = _up_to_damage(iter_video_frames(path, start_s=request.start_s, end_s=request.end_s), [])
    for frame, tf in iter_track_frames(frames, track):
        if tf.frame_index in wanted:
            chosen.append((tf, face_at(frame.image, tf.detection, engine.size, engine.alignment, rec_spec(engine))))
            if tf.frame_index == best_frame:
                frm = frame
    if frm is None or len(chosen) != len(wanted):
        raise VideoDecodeError(f"the clip gave {len(chosen)} of the track's {len(wanted)} chosen frames on a second "
                               "reading (it decodes differently each time: re-encode it losslessly and add the copy)")
    return chosen, frm


def _track_audio(aitem: EvidenceItem | None, audio_path, item: EvidenceItem, clip_path, chosen: list,
                 use_audio: bool, asked: bool) -> tuple[dict | None, np.ndarray | None, tuple[str, ...]]:
    """The audio windows at the pooled frames' times: of the audio evidence given, else of the clip's own
    sound track when it has a usable one (else the clip is analysed without audio, and the note returned says
    why)."""
    from forensic_face.audio.features import AudioFeatureExtractor
    from forensic_face.audio.info import ANALYSIS_SPAN_S, MAX_WHOLE_S

    if not use_audio:
        return None, None, ()
    source, src_path = (aitem, audio_path) if aitem is not None else (item, clip_path)
    extractor = AudioFeatureExtractor()
    times = np.array([tf.timestamp_s or 0.0 for tf, _ in chosen])
    # one read covering every pooled frame's window (a track can last longer than the usual 60 s window)
    span = min(max(ANALYSIS_SPAN_S, float(times.max() - times.min()) + 2 * extractor.config.prosody_window_s + 2.0),
               MAX_WHOLE_S)
    try:
        feats = extractor(extractor.load(src_path, around_s=float(times.min() + times.max()) / 2, span_s=span),
                          times)
    except AudioError as exc:
        if asked:
            raise AudioError(f"audio evidence {source.name}: {exc} (analyse with --no-audio to go on without it)") \
                from None
        return None, None, (f"analysed without audio: the clip's own sound track cannot be used ({exc})",)
    voiced = feats.prosody[:, 0][feats.prosody[:, 0] > 0]
    info = {"evidence": source.name, "sha256": source.sha256, "timestamp_s": round(float(np.median(times)), 3),
            "timestamps_s": [round(float(t), 3) for t in times], "own_track": aitem is None,
            "window_s": feats.params["config"]["prosody_window_s"],
            "pitch_hz": round(float(np.median(voiced)), 1) if voiced.size else float("nan"),
            "voiced_fraction": round(float(np.mean(feats.prosody[:, 3])), 3),
            "quality": _with_voice_warnings(feats), "params": feats.params}
    return info, feats.vector, ()


def _pooled_search(gallery: GalleryStore, engine, pooled, top_k: int, fpir: float) -> SearchOutcome:
    """Search with the pooled template, read with the calibration of pooled templates (one frame: its own)."""
    one = len(pooled.probes) == 1
    cal = engine.calibration if one else engine.clip_calibration
    sharp = float(np.dot(pooled.weights, [p.face.quality.sharpness for p in pooled.probes]))
    face_px = float(np.dot(pooled.weights, [p.face.detection.width for p in pooled.probes]))
    return search_gallery(gallery, pooled.embedding, cal, engine.info.version, face_px, top_k,
                          probe_sharpness=sharp, fpir=fpir, paths=engine.path_weights(pooled.embedding))


def _clip_record(tracks, track, chosen: list, pooled, engine, searched: bool) -> dict:
    """The ``clip`` part of the analysis record: the track, how it was pooled and every frame used."""
    one = len(chosen) == 1
    calibration = ("single frame" if one else "pooled templates") if searched else "none (no gallery searched)"
    frames = []
    for (tf, face), w in zip(chosen, pooled.weights, strict=True):
        q = tf.quality
        frames.append({"index": tf.frame_index, "time_s": tf.timestamp_s, "box": [round(float(v), 2)
                                                                                 for v in tf.detection.box],
                       "method": tf.detection.method, "face_px": round(float(q.face_px), 1),
                       "sharpness": round(float(face.quality.sharpness), 2),
                       "noise_sigma": round(float(q.noise_sigma), 2), "turn": q.as_dict()["turn"],
                       "frame_weight": round(float(tf.weight), 4), "weight": round(float(w), 4)})
    shared = "" if engine.companion is None or one else (
        f"; each frame's share of the second recogniser × {engine.pooled_share:g} (chosen with the calibration)")
    return {"track": str(track.track_id), "tracks_found": len(tracks.tracks),
            "pooling": POOLING + shared
            + "; searched with the reconstructions without audio (as the calibration was fitted)",
            "calibration": calibration,
            "calibration_sha256": None if not searched else (
                engine.info.calibration_sha256 if one else engine.clip_calibration_sha256),
            "frames": frames, "tracking": tracks.as_dict(with_faces=False), "warnings": list(tracks.warnings)}


def track_strip(faces: list[np.ndarray], tracked: list, weights: np.ndarray, side: int = 96) -> np.ndarray:
    """The pooled faces side by side (grey, ``side`` px), each captioned with its time and weight."""
    tiles = []
    for face, tf, w in zip(faces, tracked, weights, strict=True):
        tile = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        band = np.full((22, side), 255, np.uint8)
        when = "?" if tf.timestamp_s is None else f"{tf.timestamp_s:.2f}s"
        cv2.putText(band, f"{when} w{w:.2f}", (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.36, 0, 1, cv2.LINE_AA)
        tiles.append(np.vstack([tile, band]))
        tiles.append(np.full((side + 22, 4), 255, np.uint8))
    return np.hstack(tiles[:-1])
