"""The typed records of what the tool produced: a gallery search (its candidates and outcome) and a case
analysis (its face, quality, audio window, search and engine), as saved in results and shown in the GUI and
the report.

Saved results are untrusted input and come in the layouts of earlier versions: they are read through the
records' ``from_dict`` once, on load, and nowhere else. A value that is missing or of the wrong type reads
as NaN (figures), an empty string (text), 0 (counts) or None (optional parts); the readers show that as a
dash, never crash on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

#: The false-lead rate a gallery search is held to by default: the share of searches for someone who is
#: not enrolled that still end with a confident lead.
DEFAULT_FPIR = 0.01


def embedding_distance(similarity: float) -> float:
    """Euclidean distance between two unit-length embeddings with this cosine similarity: sqrt(2 - 2 s),
    0 for identical embeddings, sqrt(2) for orthogonal ones, 2 for opposite ones (the same ranking as
    the similarity, on the scale some examiners are used to)."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * float(similarity)))


def as_number(value, default: float = float("nan")) -> float:
    """A stored figure as a float (``default`` for anything else: stored results are untrusted input)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def as_text(value) -> str:
    """A stored text field ("" when missing; anything else as its text)."""
    return "" if value is None else str(value)


def _count(value) -> int:
    """A stored count (0 for anything that is not a whole number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class Candidate:
    person: str
    similarity: float  # best cosine similarity over the person's images
    identity_probability: float  # softmax over all people in the gallery (fitted temperature)
    match_probability: float  # calibrated probability that probe and this person are the same
    image_path: str  # the gallery image that matched best
    image_id: int
    distance: float | None = None  # as a saved result has it; None: from the similarity (embedding_distance)
    thumbnail: str | None = None  # the gallery face saved with an analysis (results/<id>/candidate-<k>.png)

    @property
    def euclidean(self) -> float:
        """The Euclidean distance as saved, else the similarity's (NaN when neither is a number)."""
        if self.distance is not None:
            return self.distance
        return embedding_distance(self.similarity) if math.isfinite(self.similarity) else float("nan")

    def as_dict(self) -> dict:
        return {"person": self.person, "similarity": round(self.similarity, 4),
                "distance": round(self.euclidean, 4) if self.distance is None else self.distance,
                "identity_probability": round(self.identity_probability, 4),
                "match_probability": round(self.match_probability, 4), "image_path": self.image_path,
                "image_id": self.image_id, **({"thumbnail": self.thumbnail} if self.thumbnail is not None else {})}

    @classmethod
    def from_dict(cls, saved: dict) -> Candidate:
        """A saved candidate (figures that are not numbers read as NaN, a missing image id as -1; without a
        saved distance, the distance is the similarity's)."""
        image_id, distance = saved.get("image_id"), saved.get("distance")
        return cls(person=str(saved.get("person", "?")), similarity=as_number(saved.get("similarity")),
                   identity_probability=as_number(saved.get("identity_probability")),
                   match_probability=as_number(saved.get("match_probability")),
                   image_path=str(saved.get("image_path", "")),
                   image_id=image_id if isinstance(image_id, int) and not isinstance(image_id, bool) else -1,
                   distance=None if distance is None else as_number(distance),
                   thumbnail=None if saved.get("thumbnail") is None else as_text(saved["thumbnail"]))


@dataclass
class SearchOutcome:
    candidates: list[Candidate]
    confident: bool  # the best candidate's match probability reaches the threshold
    threshold_similarity: float  # similarity where the match probability is 0.5 for this probe
    people_searched: int
    embeddings_searched: int
    model_version: str
    probe_face_px: float
    seconds: float = 0.0
    probe_sharpness: float | None = None  # what the match threshold was set for (quality-aware calibrations)
    open_set_threshold: float = float("-inf")  # searches of this many strangers reach it in `fpir` of cases
    fpir: float = DEFAULT_FPIR  # the false-lead rate the open-set threshold is set for
    lead_score: float = float("nan")  # the best candidate's standing against the next (MatchCalibration.lead_score)
    gallery: dict | None = None  # the store's identity() of the content searched (read with the index it searched)
    # a joined bundle's: the weight of each recogniser's cosine in the similarities (recogniser, sharp, companion)
    paths: dict[str, float] | None = None

    @property
    def below_open_set_threshold(self) -> bool:
        """The best candidate passes the one-to-one threshold but not the gallery-size one."""
        return bool(self.candidates) and self.candidates[0].match_probability >= 0.5 and not self.confident

    @property
    def verdict(self) -> str:
        if not self.candidates:
            return "empty gallery"
        return f"candidate: {self.candidates[0].person}" if self.confident else "no confident match"

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "confident": self.confident,
                "threshold_similarity": round(self.threshold_similarity, 4),
                "people_searched": self.people_searched, "embeddings_searched": self.embeddings_searched,
                "model_version": self.model_version, "probe_face_px": round(self.probe_face_px, 1),
                "probe_sharpness": None if self.probe_sharpness is None else round(self.probe_sharpness, 2),
                "open_set_threshold": (round(self.open_set_threshold, 4) if math.isfinite(self.open_set_threshold)
                                       else None), "fpir": self.fpir,
                "lead_score": round(self.lead_score, 4) if math.isfinite(self.lead_score) else None,
                "seconds": round(self.seconds, 5), "candidates": [c.as_dict() for c in self.candidates],
                "gallery": self.gallery} | ({} if self.paths is None else {"paths": dict(self.paths)})

    @classmethod
    def from_dict(cls, saved: dict) -> SearchOutcome:
        """A search as :meth:`as_dict` saved it, or as older versions did (no ``lead_score``, ``gallery`` or
        candidates' ``distance``); a damaged figure reads as NaN (a count as 0, a rate as DEFAULT_FPIR), a
        missing open-set threshold as none (-inf) and a missing lead score as NaN (the threshold was then on the
        best similarity itself), and a candidate that is not a dict is left out."""
        sharpness = saved.get("probe_sharpness")
        return cls(
            candidates=[Candidate.from_dict(c) for c in saved.get("candidates") or [] if isinstance(c, dict)],
            confident=saved.get("confident") is True,
            threshold_similarity=as_number(saved.get("threshold_similarity")),
            people_searched=_count(saved.get("people_searched")),
            embeddings_searched=_count(saved.get("embeddings_searched")),
            model_version=str(saved.get("model_version", "")), probe_face_px=as_number(saved.get("probe_face_px")),
            seconds=as_number(saved.get("seconds"), 0.0),
            probe_sharpness=None if sharpness is None else as_number(sharpness),
            open_set_threshold=(float("-inf") if saved.get("open_set_threshold") is None
                                else as_number(saved["open_set_threshold"])),
            fpir=as_number(saved.get("fpir"), DEFAULT_FPIR), lead_score=as_number(saved.get("lead_score")),
            gallery=saved["gallery"] if isinstance(saved.get("gallery"), dict) else None,
            paths=_paths(saved.get("paths")))


def _paths(saved) -> dict[str, float] | None:
    """A search's recogniser weights as saved: names to numbers (a damaged weight reads as NaN); None when absent
    or not a mapping."""
    if not isinstance(saved, dict):
        return None
    return {str(k): as_number(v) for k, v in saved.items()}


def _part(saved: dict, key: str) -> dict:
    """A stored sub-record ({} when missing or not a JSON object)."""
    value = saved.get(key)
    return value if isinstance(value, dict) else {}


def _texts(value) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _box(value) -> tuple[float, float, float, float] | None:
    """A stored face box (x0, y0, x1, y1), None unless four finite numbers."""
    if not isinstance(value, list) or len(value) != 4:
        return None
    box = tuple(as_number(v) for v in value)
    return box if all(math.isfinite(v) for v in box) else None  # type: ignore[return-value]


def _points(value) -> tuple[tuple[float, float], ...]:
    """Stored landmarks as (x, y) pairs; () unless every one is a pair of finite numbers."""
    if not isinstance(value, list):
        return ()
    pts = tuple((as_number(p[0]), as_number(p[1])) if isinstance(p, list) and len(p) == 2 else (math.nan, math.nan)
                for p in value)
    return pts if all(math.isfinite(c) for p in pts for c in p) else ()


#: How a saved value is read into a record field of each annotated type.
_READERS = {"float": as_number, "str": as_text, "tuple[str, ...]": _texts}


def _read(cls, saved: dict, **given):
    """The record dataclass ``cls`` from ``saved``: each field not ``given`` read by its annotated type."""
    return cls(**{f.name: given[f.name] if f.name in given else _READERS[f.type](saved.get(f.name))
                  for f in fields(cls)})


class _Saved:
    """A record read from a saved JSON object field by field (:func:`_read`)."""

    @classmethod
    def from_dict(cls, saved: dict):
        return _read(cls, saved)


@dataclass(frozen=True)
class FaceRecord:
    """Where the face of an analysis was and how it was taken."""

    box: tuple[float, float, float, float] | None  # in frame pixels
    landmarks: tuple[tuple[float, float], ...]  # () when there are none
    method: str  # the detector step that found it, "manual" for a box drawn by the analyst
    alignment: str  # "eyes" or "box"
    selection: str  # "still", "given time", "sharpest frames with a face"

    @classmethod
    def from_dict(cls, saved: dict) -> FaceRecord:
        return _read(cls, saved, box=_box(saved.get("box")), landmarks=_points(saved.get("landmarks")))


@dataclass(frozen=True)
class QualityRecord(_Saved):
    """The no-reference quality of an analysed face (vision.quality.QualityReport as saved) and its warnings."""

    face_px: float
    sharpness: float
    noise_sigma: float
    mean_level: float
    contrast: float
    hints: tuple[str, ...]
    detail_px: float  # the width the face's detail really has (NaN in analyses saved before it was measured)
    roll_deg: float  # in-plane rotation, degrees (NaN: not measured)
    turn: float  # turned to a side: 0 frontal, about 0.5 in profile (NaN: not measured)


@dataclass(frozen=True)
class AudioRecord:
    """The audio window an analysis used."""

    evidence: str
    sha256: str
    timestamp_s: float  # the window's centre in the recording
    window_s: float
    pitch_hz: float  # median pitch in the window
    voiced_fraction: float
    peak_dbfs: float
    rms_dbfs: float
    warnings: tuple[str, ...]

    @classmethod
    def from_dict(cls, saved: dict) -> AudioRecord:
        return _read(cls, {**saved, **_part(saved, "quality")})  # the levels are saved in its quality part


@dataclass(frozen=True)
class EngineRecord(_Saved):
    """The models that made an analysis."""

    model_version: str
    device: str
    torch: str
    weights_sha256: str
    calibration_sha256: str  # "" for analyses saved before the calibration had its own digest
    recogniser: str  # the recogniser's architecture ("" before it was recorded: the project's CNN)
    recogniser_embeds: str  # "input" (the face as found) or "reconstruction" ("" before it was recorded: the latter)
    companion: str  # a second recogniser joined to the first, in words ("" without one)
    precision: str  # the recognisers' arithmetic: "float32" or "bfloat16" ("" before it was recorded: float32)
    sharp: str  # a third, for sharp probes (SFace as published), in words ("" without one)

    @classmethod
    def from_dict(cls, saved: dict) -> EngineRecord:
        c = saved.get("companion")
        if not isinstance(c, dict):
            return _read(cls, saved, companion="", sharp="")
        what = "face as found" if c.get("embeds") == "input" else "reconstruction"
        pw = c.get("probe_weight")
        weights = (f"weight {c.get('weight', '?')} for gallery faces, {pw[0]:g} to {pw[1]:g} for a probe from "
                   "blurred to sharp" if isinstance(pw, list) and len(pw) == 2 else f"weight {c.get('weight', '?')}")
        sharp = c.get("sharp")
        also = (f"{sharp.get('source') or sharp.get('recogniser', '?')}, embedding the face as found (up to "
                f"{sharp.get('share', '?')} of the first recogniser's share)" if isinstance(sharp, dict) else "")
        return _read(cls, saved, companion=f"{c.get('recogniser', '?')} of the {what}, {weights}", sharp=also)

    @property
    def searched_the_reconstruction(self) -> bool:
        """Whether the embedding searched with was the reconstruction's, or joined to it (every analysis before
        this was recorded)."""
        return self.recogniser_embeds != "input" or bool(self.companion)


@dataclass(frozen=True)
class ClipFrameRecord(_Saved):
    """One frame of a clip that an analysis pooled: where, how good, how much it counted."""

    index: float  # the frame's number in the clip (as saved: a number)
    time_s: float  # its presentation time in the clip, seconds
    method: str  # how the face was found on it
    face_px: float
    sharpness: float
    noise_sigma: float
    turn: float
    weight: float  # its share of the pooled template (the weights sum to 1)

    @classmethod
    def from_dict(cls, saved: dict) -> ClipFrameRecord:
        return _read(cls, saved, index=as_number(saved.get("index")))


@dataclass(frozen=True)
class ClipRecord:
    """How an analysis of a clip followed one person and pooled the frames (None for a single frame)."""

    track: str  # the track's id in the clip's tracking
    tracks_found: float  # how many tracks the clip's tracking gave
    pooling: str  # how the frames' embeddings were pooled
    calibration: str  # which calibration the match probability comes from ("pooled templates", ...)
    calibration_sha256: str  # that calibration's digest ("" when no gallery was searched)
    frames: tuple[ClipFrameRecord, ...]  # the frames used, in time order
    boxes: tuple[tuple[float, float, float, float] | None, ...]  # each frame's face box, as ``frames``
    warnings: tuple[str, ...]  # what the tracking met (a clip damaged or cut short, ...)

    @classmethod
    def from_dict(cls, saved: dict) -> ClipRecord:
        rows = [f for f in saved.get("frames", []) if isinstance(f, dict)] \
            if isinstance(saved.get("frames"), list) else []
        return cls(track=as_text(saved.get("track")), tracks_found=as_number(saved.get("tracks_found")),
                   pooling=as_text(saved.get("pooling")), calibration=as_text(saved.get("calibration")),
                   calibration_sha256=as_text(saved.get("calibration_sha256")),
                   frames=tuple(ClipFrameRecord.from_dict(f) for f in rows),
                   boxes=tuple(_box(f.get("box")) for f in rows), warnings=_texts(saved.get("warnings")))


@dataclass(frozen=True)
class AnalysisRecord:
    """One analysis of a case as its record file saved it."""

    analysis_id: str
    frame_evidence: str
    frame_sha256: str
    timestamp_s: float | None  # of the frame in its clip; None for a still
    face: FaceRecord
    quality: QualityRecord
    audio: AudioRecord | None  # None: no audio used
    search: SearchOutcome | None  # None: no gallery searched
    engine: EngineRecord
    images: dict[str, str]  # role (input_face, reconstruction, ...) -> the saved path, as recorded
    audio_effect: dict[str, float]  # mean_abs_difference, max_abs_difference (grey levels); {} without audio
    parameters: dict  # the analysis's parameters as saved (shown as they are)
    seconds: float
    software: str
    clip: ClipRecord | None = None  # the frames pooled, for an analysis of a clip's track

    @property
    def manual_box(self) -> bool:
        """Whether the analyst drew the face box."""
        return bool(self.parameters.get("manual_box"))

    @classmethod
    def from_dict(cls, saved) -> AnalysisRecord:
        """A saved analysis record (ValueError when it is not a JSON object)."""
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
        ts, frame = saved.get("timestamp_s"), _part(_part(saved, "inputs"), "frame")
        effect = _part(saved, "audio_effect")
        return cls(
            analysis_id=as_text(saved.get("analysis_id")), frame_evidence=as_text(saved.get("frame_evidence")),
            frame_sha256=as_text(frame.get("sha256")), timestamp_s=None if ts is None else as_number(ts),
            face=FaceRecord.from_dict(_part(saved, "face")), quality=QualityRecord.from_dict(_part(saved, "quality")),
            audio=AudioRecord.from_dict(saved["audio"]) if isinstance(saved.get("audio"), dict) else None,
            search=SearchOutcome.from_dict(saved["search"]) if isinstance(saved.get("search"), dict) else None,
            engine=EngineRecord.from_dict(_part(saved, "engine")),
            images={str(k): as_text(v) for k, v in _part(saved, "images").items() if v is not None},
            audio_effect={k: as_number(v) for k, v in effect.items() if k in ("mean_abs_difference",
                                                                               "max_abs_difference")},
            parameters=_part(saved, "parameters"), seconds=as_number(saved.get("seconds")),
            software=as_text(saved.get("software")),
            clip=ClipRecord.from_dict(saved["clip"]) if isinstance(saved.get("clip"), dict) else None)
