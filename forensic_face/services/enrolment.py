"""Enrolment: the people of an LFW-style folder into a gallery, and a gallery's stored images re-embedded for
a new model. Each face goes through the probe path's face step (detect, align at the engine's size, grey,
quality) and is embedded as it is (gallery faces are not reconstructed); the gallery is any GalleryStore."""

from __future__ import annotations

import hashlib
import logging
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from forensic_face.core.errors import InputError, NoFaceFoundError
from forensic_face.core.progress import Progress
from forensic_face.engine.probe import ProbeFace, ProbePath
from forensic_face.store.gallery import GalleryStore
from forensic_face.vision import frames

log = logging.getLogger(__name__)

#: Image files larger than this are not read at enrolment (recorded as unreadable, "too large").
MAX_IMAGE_BYTES = 256 * 1024 * 1024
# decoding or detecting on a hostile image may fail in these ways besides InputError
_IMAGE_FAILURES = (cv2.error, MemoryError, OverflowError, ValueError)


@dataclass
class EnrolReport:
    people: int = 0
    images_seen: int = 0
    enrolled: int = 0
    already_enrolled: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # path of each image in no_face/unreadable -> why
    seconds: float = 0.0

    def add_failure(self, status: str, path: str, reason: str) -> None:
        """Count an image that was not enrolled: ``status`` "no_face" or "unreadable"."""
        (self.no_face if status == "no_face" else self.unreadable).append(path)
        self.reasons[path] = reason

    def as_dict(self) -> dict:
        return {**self.__dict__, "faces_per_s": round(self.enrolled / self.seconds, 1) if self.seconds else None}


def enroll_folder(store: GalleryStore, folder: str | Path, engine, detector, progress: Progress | None = None,
                  batch: int = 32) -> EnrolReport:
    """Enrol every image of an LFW-style folder (one sub-folder per person). Resumable: images
    already enrolled for the engine's model version are skipped. Images with no usable face are
    recorded (status ``no_face``/``unreadable``, with the reason) and listed in the report; an image
    that cannot be read or decoded (too large, an I/O error, a hostile file) does not stop the rest.
    Safe to run in several processes at once on one gallery (as far as its store is)."""
    store.require_writable("enrolment")
    files = _image_files(Path(folder))
    report = EnrolReport(people=len({p for p, _ in files}))
    t0 = time.perf_counter()
    probe_path = ProbePath(engine, detector)
    pending: list = []  # (image id, ProbeFace)
    person_ids: dict[str, int] = {}  # asked of the store once per person (a server round trip each)
    for i, (person, path) in enumerate(files):
        if progress is not None:
            progress.update(i, len(files), f"enrolling {person}")
        report.images_seen += 1
        item = _enrol_image(store, person, path, probe_path, report, person_ids)
        if item is not None:
            pending.append(item)
        if len(pending) >= batch:
            report.enrolled += _store_embeddings(store, pending, probe_path)
            pending = []
    if pending:
        report.enrolled += _store_embeddings(store, pending, probe_path)
    if progress is not None:
        progress.update(len(files), len(files), "done")
    report.seconds = time.perf_counter() - t0
    return report


def reembed(store: GalleryStore, engine, detector, progress: Progress | None = None) -> int:
    """Embed every usable stored image with the engine's model version (after a model change)."""
    store.require_writable("re-embedding")
    probe_path = ProbePath(engine, detector)
    rows = store.images_to_reembed(engine.info.version)
    done, pending = 0, []
    for i, (iid, path) in enumerate(rows):
        if progress is not None:
            progress.update(i, len(rows), "re-embedding")
        p = Path(path)
        data, reason = _read_image(p) if p.is_file() else (None, f"{p}: no longer on disk")
        if data is None:
            log.warning("%s; not re-embedded", reason)
            continue
        face, status, message, *_ = _face(data, p, probe_path)
        if face is None:
            log.warning("%s; not re-embedded", message)
            continue
        pending.append((iid, face))
        if len(pending) >= 32:
            done += _store_embeddings(store, pending, probe_path)
            pending = []
    if pending:
        done += _store_embeddings(store, pending, probe_path)
    if progress is not None:
        progress.update(len(rows), len(rows), "done")
    return done


def _enrol_image(store: GalleryStore, person: str, path: Path, probe_path: ProbePath, report: EnrolReport,
                 person_ids: dict[str, int]) -> tuple[int, ProbeFace] | None:
    """(image id, ProbeFace) to embed, or None with the image counted in ``report``; ``person_ids`` caches the
    store's ids of the people seen."""
    data, reason = _read_image(path)
    if data is None:
        log.warning("%s; not enrolled", reason)
        report.add_failure("unreadable", str(path), reason)
        return None
    digest = hashlib.sha256(data).hexdigest()
    pid = person_ids.get(person)
    if pid is None:
        pid = person_ids[person] = store.person_id(person)
    stored = store.find_image(pid, digest)
    if stored is not None and (stored.status != "ok" or store.has_embedding(stored.id, probe_path.engine.info.version)):
        report.already_enrolled += 1
        if stored.status == "no_face":
            report.add_failure("no_face", str(path), stored.message)
        return None
    face, status, message, px, method = _face(data, path, probe_path)
    image_id = stored.id if stored is not None else store.add_image(pid, str(path), digest, status, message, px,
                                                                    method)
    if face is None:
        if status != "no_face":
            log.warning("%s; not enrolled", message)
        report.add_failure(status, str(path), message)
        return None
    return image_id, face


def _face(data: bytes, path: Path, probe_path: ProbePath):
    """(face or None, status, message, face width px, detector step) of an image's bytes: the probe path's
    face step (detect, align at the engine's size, grey, quality)."""
    try:
        frame = frames.decode_image_bytes(data, source=str(path), suffix=path.suffix)
        try:
            face = probe_path.face(frame.image)
        except NoFaceFoundError as exc:
            return None, "no_face", str(exc), None, None
    except InputError as exc:
        return None, "unreadable", str(exc), None, None
    except _IMAGE_FAILURES as exc:
        return None, "unreadable", _failure_text(path, exc), None, None
    return face, "ok", "", float(face.detection.width), face.detection.method


def _store_embeddings(store: GalleryStore, pending: list[tuple[int, ProbeFace]], probe_path: ProbePath) -> int:
    """Embed the faces of ``pending`` ((image id, ProbeFace) pairs) as they are and store the embeddings
    with the aligned crops as thumbnails."""
    emb = probe_path.embed_faces([face for _, face in pending])
    thumbs = [frames.encode_png(face.aligned.image) for _, face in pending]
    store.store_embeddings(probe_path.engine.info.version,
                           [(iid, e, png) for (iid, _), e, png in zip(pending, emb, thumbs, strict=True)])
    return len(pending)


def _image_files(folder: Path) -> list[tuple[str, Path]]:
    """(person, image path) of an LFW-style folder: one sub-folder per person; symbolic links skipped."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = []
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        for f in sorted({f for g in frames.IMAGE_GLOBS for f in person_dir.glob(g)}):
            if not f.is_symlink():
                files.append((person_dir.name, f))
    if not files:
        raise InputError(f"{folder}: no person sub-folders with images (expected <folder>/<Name>/<image>)")
    return files


def _read_image(path: Path) -> tuple[bytes | None, str]:
    """The bytes of an image file, or None and why they were not read (not a regular file, larger than
    MAX_IMAGE_BYTES, an error reading it)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return None, f"{path}: not a regular file"
        if info.st_size > MAX_IMAGE_BYTES:
            return None, (f"{path}: too large ({info.st_size / 2**20:.0f} MiB; images over "
                          f"{MAX_IMAGE_BYTES // 2**20} MiB are not read)")
        with open(path, "rb") as fh:
            data = fh.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        return None, f"{path}: cannot be read ({exc.strerror or exc})"
    except MemoryError:
        return None, f"{path}: cannot be read (out of memory)"
    if len(data) > MAX_IMAGE_BYTES:  # it grew after stat
        return None, f"{path}: too large (over {MAX_IMAGE_BYTES // 2**20} MiB)"
    return data, ""


def _failure_text(path: Path, exc: BaseException) -> str:
    what = "out of memory" if isinstance(exc, MemoryError) else f"{type(exc).__name__}: {exc}".strip()
    return f"{path}: cannot be decoded or searched for a face ({what})"
