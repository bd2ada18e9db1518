"""Search a gallery for many probe images with one engine, one detector and one open gallery.

Each probe goes through the probe path (:mod:`forensic_face.engine.probe`: detect, align at the engine's
size, grey, quality, reconstruct, embed) and is searched; a probe that cannot be searched (unreadable, no
face) becomes an outcome with its reason and the others go on. Problems of the gallery or the models
(a gallery of another model version, models without calibration) stop the whole search: every probe
would fail the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.errors import ForensicFaceError, InputError, NoFaceFoundError
from forensic_face.core.progress import Progress
from forensic_face.core.records import SearchOutcome
from forensic_face.engine.probe import ProbeFace, ProbePath
from forensic_face.engine.search import search_gallery
from forensic_face.store.gallery import GalleryStore
from forensic_face.vision.frames import IMAGE_SUFFIXES, load_image

#: What one probe may fail with; anything else stops the search.
PROBE_FAILURES = (InputError, NoFaceFoundError, OSError, cv2.error, MemoryError, ValueError, OverflowError)
#: A probe image no larger than this (pixels, its longer side) in which no face is found is taken as the
#: face crop itself: a face cut out by hand is often too tight for the detector.
WHOLE_IMAGE_FACE_PX = 160


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe's search, or why it could not be searched."""

    path: Path
    result: SearchOutcome | None = None
    face: ProbeFace | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None


def probe_files(items: Sequence[str | Path]) -> list[Path]:
    """The probes, in order: each file as given; for a folder, the image files under it (sub-folders
    included, sorted, symbolic links skipped), or the folder itself when it holds none (it then fails as
    one probe, saying so)."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if not p.is_dir():
            out.append(p)
            continue
        found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                       and not f.is_symlink())
        out.extend(found or [p])
    return out


def audio_vector(path: str | Path) -> np.ndarray:
    """The audio vector (1, D) at the middle of a recording (only a window around it is read)."""
    from forensic_face.audio.features import AudioFeatureExtractor

    ext = AudioFeatureExtractor()
    t_mid = ext.info(path).duration_s / 2  # header only: a long recording is read as a window
    return ext(ext.load(path, around_s=t_mid), [t_mid]).vector


def probe_face(probe_path: ProbePath, path: Path) -> ProbeFace:
    """The face step of one probe file; a small image with no face found is taken as the face crop itself."""
    if path.is_dir():
        raise InputError(f"{path}: a folder with no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    image = load_image(path).image
    try:
        return probe_path.face(image)
    except NoFaceFoundError:
        h, w = image.shape[:2]
        if max(h, w) > WHOLE_IMAGE_FACE_PX:
            raise
        return probe_path.face(image, (0, 0, w, h))


class BatchSearch:
    """Probes searched against one open gallery with one probe path (the model loaded once)."""

    def __init__(self, probe_path: ProbePath, gallery: GalleryStore, *, top: int = 10, fpir: float,
                 audio: np.ndarray | None = None) -> None:
        engine = probe_path.engine
        if engine.calibration is None:
            raise ForensicFaceError("the models carry no calibration; retrain or re-export them")
        self.probe_path, self.gallery, self.top, self.fpir, self.audio = probe_path, gallery, top, fpir, audio

    def search(self, path: Path) -> ProbeOutcome:
        """Search one probe file (its failure, if any, in the outcome)."""
        try:
            face = probe_face(self.probe_path, path)
        except PROBE_FAILURES as exc:
            return ProbeOutcome(path, error=_failure(path, exc))
        probe = self.probe_path.complete(face, self.audio, without_audio=False)
        engine = self.probe_path.engine
        res = search_gallery(self.gallery, probe.embedding, engine.calibration, engine.info.version,
                             face.detection.width, self.top, probe_sharpness=face.quality.sharpness, fpir=self.fpir,
                             paths=engine.path_weights(probe.embedding))
        return ProbeOutcome(path, res, face)

    def run(self, paths: Sequence[Path], progress: Progress | None = None) -> Iterator[ProbeOutcome]:
        """The outcome of each probe, in order."""
        for i, path in enumerate(paths):
            if progress is not None:
                progress.update(i, len(paths), f"searching {path.name}")
            yield self.search(path)
        if progress is not None:
            progress.update(len(paths), len(paths), "done")


def _failure(path: Path, exc: BaseException) -> str:
    """Why a probe was not searched, naming the file once."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, cv2.error | MemoryError | ValueError | OverflowError):
        text = f"cannot be decoded ({type(exc).__name__}: {text.splitlines()[0] if text else ''})"
    return text if str(path) in text else f"{path}: {text}"
