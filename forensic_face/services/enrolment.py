"""Enrolment: the people of an LFW-style folder into a gallery, and a gallery's stored images re-embedded for
a new model. Each face goes through the probe path's face step (detect, align at the engine's size, grey,
quality) and is embedded as it is (gallery faces are not reconstructed); the gallery is any GalleryStore."""

from __future__ import annotations

import hashlib
import logging
import stat
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from forensic_face.core.errors import InputError, NoFaceFoundError
from forensic_face.core.progress import Progress
from forensic_face.engine.inference import usable_cores
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
    workers: int = 1  # images prepared and embedded at once

    def add_failure(self, status: str, path: str, reason: str) -> None:
        """Count an image that was not enrolled: ``status`` "no_face" or "unreadable"."""
        (self.no_face if status == "no_face" else self.unreadable).append(path)
        self.reasons[path] = reason

    def as_dict(self) -> dict:
        return {**self.__dict__, "faces_per_s": round(self.enrolled / self.seconds, 1) if self.seconds else None}


@dataclass
class _Prepared:
    """What a worker made of one image: the face step's outcome and, for a usable face, its embedding and
    thumbnail."""

    face: ProbeFace | None
    status: str  # "ok", "no_face" or "unreadable"
    message: str
    face_px: float | None = None
    method: str | None = None
    embedding: np.ndarray | None = None
    thumbnail: bytes | None = None


#: Images a worker prepares before embedding their faces in one call of the networks: a batch costs less per face
#: than one face at a time (``python -m research.enrol_chunk``: the bench's 120 faces, two workers, the project's
#: quiet 2-core machine, four interleaved rounds: 20.7-24.5 faces/s with 4 against 17.5-19.5 with 1 in float32,
#: 36.9-40.2 against 27.2-30.2 in bfloat16; 2 and 8 about as much as 4). Every call embeds exactly this many faces (a
#: short chunk is padded with copies of its last face): in float32 a face's embedding can differ in its last bits with
#: the batch's size (up to 5e-7 here) but, measured and tested, not with the faces beside it, so a gallery is the same
#: bit for bit however its enrolment was cut and resumed.
EMBED_CHUNK = 4


def enrol_workers() -> int:
    """Images prepared and embedded at once by default: one per usable core (at most 8). Each runs the engine's
    networks on one torch thread (:class:`FaceEngine` lets as many calls run at once), so the cores share the
    work instead of one core's threads contending: on the project's 2-core machine 29.6-31.1 faces/s with two
    workers against 26.5 with one (whose mirror-image passes use the second core) and 17.5 with one before those
    passes (300 LFW images, the shipped join, quiet machine)."""
    return min(8, usable_cores())


def enroll_folder(store: GalleryStore, folder: str | Path, engine, detector, progress: Progress | None = None,
                  batch: int = 32, workers: int | None = None, chunk: int = EMBED_CHUNK) -> EnrolReport:
    """Enrol every image of an LFW-style folder (one sub-folder per person). Resumable: images
    already enrolled for the engine's model version are skipped. Images with no usable face are
    recorded (status ``no_face``/``unreadable``, with the reason) and listed in the report; an image
    that cannot be read or decoded (too large, an I/O error, a hostile file) does not stop the rest.
    Safe to run in several processes at once on one gallery (as far as its store is).

    ``workers`` threads (default :func:`enrol_workers`) decode, detect, align and embed images at once, ``chunk``
    images a call of the networks (:data:`EMBED_CHUNK`); this thread alone talks to the store, in the files' order,
    and stores the embeddings ``batch`` at a time."""
    store.require_writable("enrolment")
    files = _image_files(Path(folder))
    report = EnrolReport(people=len({p for p, _ in files}), workers=max(1, workers or enrol_workers()))
    t0 = time.perf_counter()
    probe_path = ProbePath(engine, detector)
    person_ids: dict[str, int] = {}  # asked of the store once per person (a server round trip each)
    in_run: set[tuple[int, str]] = set()  # (person id, sha256) of the images met so far (a file copied twice)

    def to_prepare() -> Iterator[_Image]:
        for i, (person, path) in enumerate(files):
            if progress is not None:
                progress.update(i, len(files), f"enrolling {person}")
            report.images_seen += 1
            image = _to_enrol(store, person, path, report, person_ids, in_run, probe_path.engine.info.version)
            if image is not None:
                yield image

    pending: list[tuple[int, _Prepared]] = []
    # closing: the workers stop however the loop ends (an error storing, a cancel)
    with closing(_prepared(to_prepare(), probe_path, report.workers, chunk)) as results:
        for image, prepared in results:
            image_id = image.stored_id if image.stored_id is not None else store.add_image(
                image.person_id, str(image.path), image.sha256, prepared.status, prepared.message, prepared.face_px,
                prepared.method)
            if prepared.face is None:
                if prepared.status != "no_face":
                    log.warning("%s; not enrolled", prepared.message)
                report.add_failure(prepared.status, str(image.path), prepared.message)
                continue
            pending.append((image_id, prepared))
            if len(pending) >= batch:
                report.enrolled += _store_embeddings(store, pending, probe_path)
                pending = []
    if pending:
        report.enrolled += _store_embeddings(store, pending, probe_path)
    if progress is not None:
        progress.update(len(files), len(files), "done")
    report.seconds = time.perf_counter() - t0
    return report


def reembed(store: GalleryStore, engine, detector, progress: Progress | None = None,
            workers: int | None = None, chunk: int = EMBED_CHUNK) -> int:
    """Embed every usable stored image with the engine's model version (after a model change); ``workers`` and
    ``chunk`` as :func:`enroll_folder`'s."""
    store.require_writable("re-embedding")
    probe_path = ProbePath(engine, detector)
    rows = store.images_to_reembed(engine.info.version)

    def to_prepare() -> Iterator[_Image]:
        for i, (iid, path) in enumerate(rows):
            if progress is not None:
                progress.update(i, len(rows), "re-embedding")
            p = Path(path)
            data, reason = _read_image(p) if p.is_file() else (None, f"{p}: no longer on disk")
            if data is None:
                log.warning("%s; not re-embedded", reason)
                continue
            yield _Image(p, data, "", -1, iid)

    done, pending = 0, []
    with closing(_prepared(to_prepare(), probe_path, max(1, workers or enrol_workers()), chunk)) as results:
        for image, prepared in results:
            if prepared.face is None:
                log.warning("%s; not re-embedded", prepared.message)
                continue
            pending.append((image.stored_id, prepared))
            if len(pending) >= 32:
                done += _store_embeddings(store, pending, probe_path)
                pending = []
    if pending:
        done += _store_embeddings(store, pending, probe_path)
    if progress is not None:
        progress.update(len(rows), len(rows), "done")
    return done


@dataclass
class _Image:
    """An image to prepare: its file, bytes and digest, its person's id and its row where it is stored already."""

    path: Path
    data: bytes
    sha256: str
    person_id: int
    stored_id: int | None


def _to_enrol(store: GalleryStore, person: str, path: Path, report: EnrolReport, person_ids: dict[str, int],
              in_run: set[tuple[int, str]], model_version: str) -> _Image | None:
    """The image to prepare, or None with the image counted in ``report`` (unreadable, enrolled already or met
    earlier in this run); ``person_ids`` caches the store's ids of the people seen."""
    data, reason = _read_image(path)
    if data is None:
        log.warning("%s; not enrolled", reason)
        report.add_failure("unreadable", str(path), reason)
        return None
    digest = hashlib.sha256(data).hexdigest()
    pid = person_ids.get(person)
    if pid is None:
        pid = person_ids[person] = store.person_id(person)
    if (pid, digest) in in_run:
        report.already_enrolled += 1
        return None
    in_run.add((pid, digest))
    stored = store.find_image(pid, digest)
    if stored is not None and (stored.status != "ok" or store.has_embedding(stored.id, model_version)):
        report.already_enrolled += 1
        if stored.status == "no_face":
            report.add_failure("no_face", str(path), stored.message)
        return None
    return _Image(path, data, digest, pid, stored.id if stored is not None else None)


def _prepared(images: Iterable[_Image], probe_path: ProbePath, workers: int,
              chunk: int) -> Iterator[tuple[_Image, _Prepared]]:
    """(image, what became of it) for each of ``images``, in their order; ``workers`` threads prepare chunks of
    ``chunk`` images, one chunk more in hand than there are workers. ``images`` is drawn on this thread (it may talk
    to the store). Leaving the loop early (an error, a cancel) drops the chunks not started and waits for those
    running."""
    if chunk < 1:
        raise ValueError(f"a chunk holds at least one image, not {chunk!r}")
    window: deque[tuple[list[_Image], Future]] = deque()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="enrol")
    try:
        for part in _chunks(images, chunk):
            window.append((part, pool.submit(_prepare_chunk, part, probe_path, chunk)))
            if len(window) > workers:
                done, job = window.popleft()
                yield from zip(done, job.result(), strict=True)
        while window:
            done, job = window.popleft()
            yield from zip(done, job.result(), strict=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(images: Iterable[_Image], size: int) -> Iterator[list[_Image]]:
    part: list[_Image] = []
    for image in images:
        part.append(image)
        if len(part) >= size:
            yield part
            part = []
    if part:
        yield part


def _prepare_chunk(images: list[_Image], probe_path: ProbePath, size: int) -> list[_Prepared]:
    """:func:`_prepare` for each of ``images``, the usable faces then embedded in one call of ``size`` faces
    (padded with copies of the last: one batch size for every call, :data:`EMBED_CHUNK`)."""
    prepared = [_prepare(image, probe_path) for image in images]
    usable = [p for p in prepared if p.face is not None]
    if usable:
        faces = [p.face for p in usable]
        faces += [faces[-1]] * (size - len(faces))
        for p, e in zip(usable, probe_path.embed_faces(faces)[:len(usable)], strict=True):
            p.embedding = e
    return prepared


def _prepare(image: _Image, probe_path: ProbePath) -> _Prepared:
    """The probe path's face step on an image's bytes (decode, detect, align at the engine's size, grey,
    quality) and, for a usable face, its thumbnail (its embedding is made by :func:`_prepare_chunk`: gallery
    faces are embedded as they are, not reconstructed)."""
    path = image.path
    try:
        frame = frames.decode_image_bytes(image.data, source=str(path), suffix=path.suffix)
        try:
            face = probe_path.face(frame.image)
        except NoFaceFoundError as exc:
            return _Prepared(None, "no_face", str(exc))
    except InputError as exc:
        return _Prepared(None, "unreadable", str(exc))
    except _IMAGE_FAILURES as exc:
        return _Prepared(None, "unreadable", _failure_text(path, exc))
    return _Prepared(face, "ok", "", float(face.detection.width), face.detection.method, None,
                     frames.encode_png(face.aligned.image))


def _store_embeddings(store: GalleryStore, pending: list[tuple[int, _Prepared]], probe_path: ProbePath) -> int:
    """Store the embeddings of ``pending`` ((image id, prepared image) pairs) with the aligned crops as
    thumbnails."""
    engine = probe_path.engine
    store.store_embeddings(engine.info.version, [(iid, p.embedding, p.thumbnail) for iid, p in pending],
                           arithmetic=[engine.info.params["precision"]])
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
