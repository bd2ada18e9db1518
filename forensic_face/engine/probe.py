"""The one probe path: from a frame (with an optional face box and audio vector) to the aligned face, its
quality, its reconstruction and its embedding.

    frame ─► detect (or the given box) ─► align at the engine's size ─► grey ─► quality
          ─► reconstruct (with the audio vector; and without it, to show what the audio changed)
          ─► embed the reconstruction (the project's own CNN), or the face as found in the recogniser's own
             crop (a recogniser distilled on degraded faces: ``engine.embeds == "input"``), joined to a
             companion recogniser's embedding of the reconstruction where the bundle has one

Each step exists here once, and every caller goes through it: the case analysis
(:func:`forensic_face.services.analysis.analyze_case`), the command line's gallery search, enrolment (the same
face step, then the embedding of the face as it is: gallery faces are not reconstructed), the demo and
the bench. The crop size is always the engine's (its networks' input), never a constant.

:class:`ProbePath` binds an engine and a detector; :func:`find_face` is the face step alone, for code that
has no engine (the demo and the bench without installed models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from forensic_face.vision.align import AlignedFace, AlignSpec, align_face
from forensic_face.vision.detect import Box, FaceDetection, FaceDetector
from forensic_face.vision.frames import to_grey
from forensic_face.vision.quality import QualityReport, assess

if TYPE_CHECKING:
    from forensic_face.engine.fusion import Pooling
    from forensic_face.engine.inference import FaceEngine

#: The crop size used to show or time the face step when no models are installed (nothing is
#: reconstructed or embedded then); with models the size is always the engine's.
NO_MODEL_SIZE = 112


@dataclass(frozen=True)
class ProbeFace:
    """A face made ready for the networks."""

    detection: FaceDetection  # found by the detector, or made from the given box ("manual")
    aligned: AlignedFace  # the crop at the engine's size, in the frame's channels, and its transform
    grey: np.ndarray  # (S, S) uint8: what the autoencoder sees (and the recogniser, when it takes the same crop)
    quality: QualityReport  # of the crop, with the face's width in the frame
    rec_aligned: AlignedFace | None = None  # the recogniser's own crop (grey) when it differs from ``aligned``

    @property
    def size(self) -> int:
        return int(self.grey.shape[0])

    @property
    def rec_grey(self) -> np.ndarray:
        """(R, R) uint8: the face in the recogniser's crop, grey (``grey`` when both networks share it)."""
        return self.grey if self.rec_aligned is None else to_grey(self.rec_aligned.image)


@dataclass(frozen=True)
class Probe:
    """A face through the whole path: its reconstruction(s) and the embedding searched with."""

    face: ProbeFace
    reconstruction: np.ndarray  # (S, S) uint8: with the audio when an audio vector was given
    reconstruction_no_audio: np.ndarray | None  # (S, S) uint8 without audio; None when not asked for
    embedding: np.ndarray  # (D,) float32 as searched: unit (a joined bundle's: a query, FaceEngine.query), of
    # ``reconstruction``, or of the face (engine.embeds)
    audio_used: bool

    @property
    def audio_effect(self) -> dict:
        """How much the audio changed the reconstruction (grey levels); empty without both forms."""
        if not self.audio_used or self.reconstruction_no_audio is None:
            return {}
        diff = np.abs(self.reconstruction.astype(np.int16) - self.reconstruction_no_audio.astype(np.int16))
        return {"mean_abs_difference": round(float(diff.mean()), 3), "max_abs_difference": int(diff.max())}


def locate(image: np.ndarray, detector: FaceDetector, box: Box | None = None) -> FaceDetection:
    """The face to analyse: the given ``box`` (landmarks predicted inside it, and the face's apparent rotation
    when it is not upright: ``extra["apparent_rotation_deg"]``), else the detector's most confident face
    (:class:`~forensic_face.core.errors.NoFaceFoundError` when there is none)."""
    if box is None:
        return detector.detect_one(image)
    det = detector.from_box(image, box)
    det.extra["apparent_rotation_deg"] = apparent_rotation(image, det.box, detector)
    return det


def apparent_rotation(image: np.ndarray, box: Box, detector: FaceDetector) -> float:
    """How far a face drawn by hand is rotated, clockwise, in degrees (0, 90, 180 or -90): the first quarter turn
    of its box region (with a margin) in which the detector finds a face of about its size; 0 when none does
    (the landmarks then give the roll). The detector only finds upright faces, so this catches the sideways
    and upside-down faces a box drawn by hand lets through."""
    x0, y0, x1, y1 = box
    m = 0.25 * max(x1 - x0, y1 - y0)
    h, w = image.shape[:2]
    region = image[int(max(0, y0 - m)):int(min(h, y1 + m)), int(max(0, x0 - m)):int(min(w, x1 + m))]
    for turns in range(4):  # np.rot90 turns counter-clockwise: k turns make a face rotated 90*k clockwise upright
        found = detector.detect(np.ascontiguousarray(np.rot90(region, turns)))
        if any(d.width >= 0.25 * (x1 - x0) for d in found):  # the detector's boxes are tight: eyes to mouth
            return float((90 * turns + 180) % 360 - 180)
    return 0.0


def face_region(image: np.ndarray, box: Box) -> np.ndarray:
    """The face's box of the frame as it is (not resampled), clipped to the frame."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return image[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]


def face_at(image: np.ndarray, detection: FaceDetection, size: int, alignment: str = "eyes",
            rec: AlignSpec | None = None) -> ProbeFace:
    """Align ``detection`` of ``image`` ((H, W) or (H, W, 3) uint8) to a ``size`` px crop the way the networks
    want (``alignment``: AlignSpec.mode), take its grey form and measure its quality (with the detail its
    region of the frame has, and its pose). ``rec``: the recogniser's own crop, when it takes another.

    A colour frame is made grey once, whole, before any crop is warped from it (:func:`to_grey`, BT.601 luma: the
    Y a JPEG stores), so the networks and the quality measures get from it exactly what they get from its grey
    form, as the grey frames of training and evaluation were warped; ``aligned`` keeps the frame's colour (the
    crop shown and kept as a gallery thumbnail)."""
    spec = AlignSpec(size=size, mode=alignment)
    aligned = align_face(image, detection, spec)
    frame = to_grey(image)
    grey = to_grey(aligned.image) if image.ndim == 2 else align_face(frame, detection, spec).image
    turned = detection.extra.get("apparent_rotation_deg")
    quality = assess(grey, detection.width, face_region(frame, detection.box), detection.landmarks,
                     roll_deg=turned if turned else None, landmark_kind=detection.landmark_kind)
    rec_aligned = align_face(frame, detection, rec) if rec is not None and rec != spec else None
    return ProbeFace(detection, aligned, grey, quality, rec_aligned)


def find_face(image: np.ndarray, detector: FaceDetector, size: int, box: Box | None = None,
              alignment: str = "eyes", rec: AlignSpec | None = None) -> ProbeFace:
    """The face step: :func:`locate` then :func:`face_at`."""
    return face_at(image, locate(image, detector, box), size, alignment, rec)


def rec_spec(engine: FaceEngine) -> AlignSpec | None:
    """The recogniser's own crop, or None when it takes the autoencoder's."""
    return None if engine.same_crop else AlignSpec(size=engine.rec_size, mode=engine.rec_alignment)


class ProbePath:
    """The probe path bound to an engine (its networks and their input size) and a detector."""

    def __init__(self, engine: FaceEngine, detector: FaceDetector) -> None:
        self.engine = engine
        self.detector = detector

    @property
    def size(self) -> int:
        """Side of the aligned crops, pixels: the engine's input size."""
        return int(self.engine.size)

    def face(self, image: np.ndarray, box: Box | None = None) -> ProbeFace:
        """Detect (or take ``box``), align at the engine's size the engine's way (and the recogniser's, when it
        takes its own crop), grey, quality."""
        return self.face_of(image, locate(image, self.detector, box))

    def face_of(self, image: np.ndarray, detection: FaceDetection) -> ProbeFace:
        """The crops and quality of a face already found (a track's face, a stored detection)."""
        return face_at(image, detection, self.size, self.engine.alignment, rec_spec(self.engine))

    def embed_probes(self, faces: Sequence[ProbeFace], recon: np.ndarray) -> np.ndarray:
        """(N, D) embeddings searched with: of the reconstructions ``recon`` (N, S, S), or of the faces as found
        in the recogniser's crop when it embeds its input (and the companion's joined, where there is one)."""
        return self.engine.embed_searched(np.stack([f.rec_grey for f in faces]), recon,
                                          sharpness=np.array([f.quality.sharpness for f in faces]))

    def complete(self, face: ProbeFace, audio: np.ndarray | None = None, without_audio: bool = True) -> Probe:
        """Reconstruct ``face`` (with ``audio``, a (D,) or (1, D) vector, when given) and embed the
        reconstruction (or the face, for a recogniser of its input). ``without_audio``: also reconstruct without
        the audio (the comparison the analysis shows); the reconstruction without audio is the one searched with
        when there is no audio."""
        recon, bare, emb = self.engine.probe(face.rec_grey, face.grey, audio, face.quality.sharpness,
                                             plain=without_audio)
        if audio is None:
            return Probe(face, recon, recon, emb, False)
        return Probe(face, recon, bare, emb, True)

    def run(self, image: np.ndarray, box: Box | None = None, audio: np.ndarray | None = None,
            without_audio: bool = True) -> Probe:
        """The whole path for one frame: :meth:`face` then :meth:`complete`."""
        return self.complete(self.face(image, box), audio, without_audio)

    def complete_many(self, faces: Sequence[ProbeFace], audio: np.ndarray | None = None) -> list[Probe]:
        """:meth:`complete` for many faces at once, batched (the frames of a track); ``audio``: (N, D), one vector
        per face, or None."""
        grey = np.stack([f.grey for f in faces])
        plain = self.engine.reconstruct(grey)
        with_audio = self.engine.reconstruct(grey, audio) if audio is not None else None
        recon = with_audio if with_audio is not None else plain
        emb = self.embed_probes(faces, recon)
        return [Probe(f, recon[i], plain[i], emb[i], with_audio is not None) for i, f in enumerate(faces)]

    def embed_faces(self, faces: Sequence[ProbeFace]) -> np.ndarray:
        """Embeddings (N, D) float32 of faces as they are, not reconstructed (gallery faces), batched, in the
        recogniser's crop (and the companion's, in the autoencoder's crop)."""
        return self.engine.embed_searched(np.stack([f.rec_grey for f in faces]), np.stack([f.grey for f in faces]))


def probe_size(engine: FaceEngine | None = None, models: str | None = None) -> int:
    """The crop size of the face step: the engine's; without one, the installed bundle's (read from its
    metadata, no weights loaded); without models, :data:`NO_MODEL_SIZE`."""
    if engine is not None:
        return int(engine.size)
    from forensic_face.models.bundle import bundle_input_size

    size = bundle_input_size(models)
    return size if size is not None else NO_MODEL_SIZE


@dataclass(frozen=True)
class PooledProbe:
    """The faces of one person's track through the probe path, pooled into one template."""

    probes: tuple[Probe, ...]  # one per frame pooled, in time order
    weights: np.ndarray  # (N,) each face's share of the template (sum 1)
    embedding: np.ndarray  # (D,) the quality-weighted mean of the faces' embeddings (fusion.fuse): unit, or a query
    reconstruction: np.ndarray  # (S, S) uint8: the faces' reconstructions averaged with the same weights
    reconstruction_no_audio: np.ndarray  # (S, S) uint8: the same without audio

    @property
    def audio_used(self) -> bool:
        return any(p.audio_used for p in self.probes)


def pool(probes: Sequence[Probe], weights: np.ndarray, embeddings: np.ndarray | None = None,
         pooling: Pooling | None = None) -> PooledProbe:
    """Pool ``probes`` with their fusion ``weights`` (:mod:`forensic_face.engine.fusion`): the template searched
    with, and the reconstruction shown, made from every face (a face of weight 0 takes no part). ``embeddings``
    (N, D): pool these instead of the probes' own (e.g. those of the reconstructions without audio).
    ``pooling``: the engine's (``FaceEngine.pooling``) where its probe embeddings are a joined bundle's queries."""
    from forensic_face.engine.fusion import fuse

    w = np.asarray(weights, np.float64)
    emb = np.stack([p.embedding for p in probes]) if embeddings is None else embeddings
    template = fuse(emb, w, pooling)  # InputError when every weight is 0
    share = w / w.sum()

    def average(images: list[np.ndarray]) -> np.ndarray:
        stack = np.stack(images).astype(np.float64)
        return np.clip(np.round(np.tensordot(share, stack, axes=1)), 0, 255).astype(np.uint8)

    return PooledProbe(tuple(probes), share.astype(np.float32), template, average([p.reconstruction for p in probes]),
                       average([p.reconstruction_no_audio for p in probes]))

