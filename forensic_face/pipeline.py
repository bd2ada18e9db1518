"""The case workflow shared by the CLI, the GUI and the tests: analyse one frame of a case.

``analyze_case``: pick the frame (a still, or the sharpest frames of a clip), detect and align the
face (or use the analyst's box), take the audio window at the frame's timestamp, reconstruct with
and without audio, embed, search the gallery, store the results in the case and log the step with
the hashes of its inputs and outputs, the model version and every parameter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from forensic_face import __version__
from forensic_face.core.errors import AudioError, CaseError, ForensicFaceError, NoFaceFoundError
from forensic_face.core.progress import Progress
from forensic_face.models.calibration import DEFAULT_FPIR
from forensic_face.store.case import Case, EvidenceItem
from forensic_face.store.gallery import Gallery, SearchResult
from forensic_face.vision.frames import encode_png

log = logging.getLogger(__name__)


@dataclass
class AnalysisResult:
    """Everything one analysis produced (also written to ``results/<id>.json``)."""

    analysis_id: str
    frame_evidence: str
    timestamp_s: float | None  # of the frame in its clip; None for a still
    face: dict  # detection (box, landmarks, method), alignment method
    quality: dict  # face size, blur, noise, hints
    audio: dict | None  # evidence, window, pitch, feature parameters; None without audio
    search: dict | None  # SearchResult.as_dict(), None without a gallery
    engine: dict  # model version, device, weights hash
    images: dict[str, str] = field(default_factory=dict)  # role -> results/ file
    audio_effect: dict = field(default_factory=dict)  # how much the audio changed the reconstruction
    seconds: float = 0.0
    face_image: np.ndarray | None = None  # aligned degraded face (S, S) uint8
    reconstruction: np.ndarray | None = None  # (S, S) uint8, with audio when there was audio
    reconstruction_no_audio: np.ndarray | None = None
    search_result: SearchResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("face_image", "reconstruction", "reconstruction_no_audio", "search_result")}


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
               time_s: float | None = None):
    """The frame to analyse: the still itself, or the chosen/sharpest frame of a clip."""
    from forensic_face.vision.frames import load_image, read_video_frame
    from forensic_face.vision.select import select_best_frames

    path = case.evidence_path(item.name)
    if item.kind == "image":
        return load_image(path), {"selection": "still"}
    if time_s is not None:
        from forensic_face.vision.frames import video_info

        fps = video_info(path).fps
        return read_video_frame(path, int(round(time_s * fps))), {"selection": "given time", "time_s": time_s}
    sel = select_best_frames(path, detector, k=3, progress=progress)
    if not sel.best:
        raise NoFaceFoundError(f"{item.name}: no frame of the clip has a detectable face; give a time and a face box")
    return sel.best[0].frame, {
        "selection": "sharpest frames with a face",
        "ranked_timestamps_s": [round(float(r.frame.timestamp_s), 3) for r in sel.best]}


def analyze_case(case: Case, engine, detector, gallery: Gallery | None = None, *, frame: str | None = None,
                 audio: str | None = None, use_audio: bool = True, box: tuple[float, float, float, float] | None = None,
                 time_s: float | None = None, audio_time_s: float | None = None, top_k: int = 10,
                 fpir: float = DEFAULT_FPIR, progress: Progress | None = None) -> AnalysisResult:
    from forensic_face.audio.features import AudioFeatureExtractor
    from forensic_face.vision.align import AlignSpec, align_face
    from forensic_face.vision.quality import assess

    t0 = time.perf_counter()
    if gallery is not None and engine.calibration is not None:
        try:  # refuse a false-lead rate the calibration did not measure before any work is done
            engine.calibration.check_fpir(fpir)
        except ValueError as exc:
            raise ForensicFaceError(str(exc)) from None
    step = progress or Progress()
    step.update(0, 5, "loading frame")
    item = pick_evidence(case, frame, ("image", "video"))
    if item is None:
        raise CaseError("the case has no image or video evidence to analyse (add some with `case add`)")
    frm, selection = load_frame(case, item, detector, progress, time_s)
    step.update(1, 5, "detecting face")
    if box is not None:
        det = detector.from_box(frm.image, box)
    else:
        try:
            det = detector.detect_one(frm.image)
        except NoFaceFoundError as exc:
            raise NoFaceFoundError(f"{item.name}: {exc} Draw the face box by hand (--box x0,y0,x1,y1).") from None
    aligned = align_face(frm.image, det, AlignSpec(size=engine.size))
    grey = cv2.cvtColor(aligned.image, cv2.COLOR_RGB2GRAY) if aligned.image.ndim == 3 else aligned.image
    quality = assess(aligned.image, det.width)
    step.update(2, 5, "audio")
    audio_info, audio_vec = None, None
    aitem = pick_evidence(case, audio, ("audio",)) if use_audio else None
    if use_audio and audio is not None and aitem is None:
        raise CaseError(f"no audio evidence {audio!r}")
    if aitem is not None:
        extractor = AudioFeatureExtractor()
        try:
            clip = extractor.load(case.evidence_path(aitem.name))
        except AudioError as exc:
            raise AudioError(f"audio evidence {aitem.name}: {exc} (analyse with --no-audio to go on without it)") \
                from None
        t_audio = audio_time_s if audio_time_s is not None else (
            frm.timestamp_s if item.kind == "video" and frm.timestamp_s is not None else clip.duration_s / 2)
        t_audio = float(min(max(t_audio, 0.0), clip.duration_s))
        feats = extractor(clip, np.array([t_audio]))
        audio_vec = feats.vector
        audio_info = {"evidence": aitem.name, "sha256": aitem.sha256, "timestamp_s": round(t_audio, 3),
                      "window_s": feats.params["config"]["prosody_window_s"],
                      "pitch_hz": round(float(feats.prosody[0, 0]), 1),
                      "voiced_fraction": round(float(feats.prosody[0, 3]), 3),
                      "quality": feats.params["quality"], "params": feats.params}
    step.update(3, 5, "reconstructing")
    rec_plain = engine.reconstruct(grey[None])[0]
    rec_audio = engine.reconstruct(grey[None], audio_vec)[0] if audio_vec is not None else None
    recon = rec_audio if rec_audio is not None else rec_plain
    effect = {}
    if rec_audio is not None:
        diff = np.abs(rec_audio.astype(np.int16) - rec_plain.astype(np.int16))
        effect = {"mean_abs_difference": round(float(diff.mean()), 3), "max_abs_difference": int(diff.max())}
    step.update(4, 5, "searching gallery")
    search, search_res = None, None
    if gallery is not None:
        emb = engine.embed(recon[None])[0]
        if engine.calibration is None:
            raise ForensicFaceError("the models carry no calibration; retrain or re-export them")
        search_res = gallery.search(emb, engine.calibration, engine.info.version, det.width, top_k,
                                    probe_sharpness=quality.sharpness, fpir=fpir)
        search = search_res.as_dict()
    n = sum(1 for e in case.read_log() if e.get("action") == "analysis") + 1
    aid = f"analysis-{n:03d}"
    images = {}
    for role, img in (("input_face", grey), ("reconstruction", recon), ("reconstruction_no_audio", rec_plain),
                      ("difference", cv2.absdiff(recon, grey))):
        fname = f"{aid}-{role}.png"
        case.save_result(fname, encode_png(img), "result.image", {"analysis": aid, "role": role})
        images[role] = f"results/{fname}"
    if search_res is not None:  # the gallery faces that matched, so the case stays readable without the gallery
        for k, cand in enumerate(search_res.candidates, 1):
            png = gallery.thumbnail(cand.image_id)
            if png is not None:
                fname = f"{aid}-candidate-{k}.png"
                case.save_result(fname, png, "result.image",
                                 {"analysis": aid, "role": f"candidate {k}", "person": cand.person})
                search["candidates"][k - 1]["thumbnail"] = f"results/{fname}"
    result = AnalysisResult(
        analysis_id=aid, frame_evidence=item.name,
        timestamp_s=None if frm.timestamp_s is None else round(frm.timestamp_s, 3),
        face={**det.as_dict(), "alignment": aligned.method, "frame_to_crop": np.round(aligned.matrix, 5).tolist(),
              **selection},
        quality={**quality.as_dict(), "hints": quality.hints()},
        audio=audio_info, search=search, engine=engine.info.as_dict(), images=images, audio_effect=effect,
        seconds=round(time.perf_counter() - t0, 3), face_image=grey, reconstruction=recon,
        reconstruction_no_audio=rec_plain, search_result=search_res)
    payload = {**result.as_dict(), "software": f"forensic-face {__version__}",
               "parameters": {"top_k": top_k, "fpir": fpir, "use_audio": use_audio, "manual_box": box,
                              "time_s": time_s, "audio_time_s": audio_time_s},
               "inputs": {"frame": {"evidence": item.name, "sha256": item.sha256}}}
    case.save_result(f"{aid}.json", payload, "analysis",
                     {"analysis": aid, "frame": {"evidence": item.name, "sha256": item.sha256},
                      "audio": {"evidence": aitem.name, "sha256": aitem.sha256} if aitem else None,
                      "model_version": engine.info.version, "weights_sha256": engine.info.weights_sha256,
                      "device": engine.info.device, "verdict": search_res.verdict if search_res else None,
                      "parameters": payload["parameters"]})
    step.update(5, 5, "done")
    return result
