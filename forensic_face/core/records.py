"""The records of a gallery search: its candidates and its outcome, as saved in results and reports."""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    def as_dict(self) -> dict:
        return {"person": self.person, "similarity": round(self.similarity, 4),
                "distance": round(embedding_distance(self.similarity), 4) if self.distance is None else self.distance,
                "identity_probability": round(self.identity_probability, 4),
                "match_probability": round(self.match_probability, 4), "image_path": self.image_path,
                "image_id": self.image_id}

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
                   distance=None if distance is None else as_number(distance))


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
                "gallery": self.gallery}

    @classmethod
    def from_dict(cls, saved: dict) -> SearchOutcome:
        """A search as :meth:`as_dict` saved it, or as older versions did (no ``lead_score``, ``gallery`` or
        candidates' ``distance``); a damaged figure reads as NaN (a count as 0, a rate as DEFAULT_FPIR, an
        open-set threshold as none), a candidate that is not a dict is left out."""
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
            open_set_threshold=as_number(saved.get("open_set_threshold"), float("-inf")),
            fpir=as_number(saved.get("fpir"), DEFAULT_FPIR), lead_score=as_number(saved.get("lead_score")),
            gallery=saved["gallery"] if isinstance(saved.get("gallery"), dict) else None)
