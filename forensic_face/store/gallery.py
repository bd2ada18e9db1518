"""The gallery: known people, their images and embeddings in one SQLite database (WAL mode).

Tables: ``people`` (name), ``images`` (path, SHA-256, whether a usable face was found, face size,
detector step), ``embeddings`` (image, model version, float32 vector). Several model versions may
coexist; search uses the engine's version, and :meth:`Gallery.reembed` fills in a new version from
the stored images.

A gallery is opened in one of three modes: ``"read"`` (the default: an existing gallery, read-only;
search, information, analysis), ``"write"`` (an existing gallery, to re-embed or import into) and
``"create"`` (enrolment: opened, or created with its folders when missing). Only a file this package
created is accepted; another program's SQLite file is refused and left untouched.

Search is vectorised: the embeddings of the current model are held in one (N, D) float32 matrix
sorted by person; similarities are one matrix-vector product, per-person scores a
``maximum.reduceat`` over each person's rows, and the top k an ``argpartition``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple

import cv2
import numpy as np

from forensic_face.core.errors import ForensicFaceError, InputError, NoFaceFoundError
from forensic_face.core.progress import Progress
from forensic_face.models.calibration import DEFAULT_FPIR, OPEN_SET_NEIGHBOURS
from forensic_face.vision.frames import IMAGE_GLOBS, encode_png

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: Stored in the SQLite header of every gallery this package creates ("FFga"); galleries made before
#: it was set carry 0 and are recognised by their tables.
APPLICATION_ID = int.from_bytes(b"FFga", "big")
#: Image files larger than this are not read at enrolment (recorded as unreadable, "too large").
MAX_IMAGE_BYTES = 256 * 1024 * 1024
#: How long a writer waits for another process's write to finish before giving up (seconds).
BUSY_TIMEOUT_S = 60.0
GalleryMode = Literal["read", "write", "create"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_REQUIRED_TABLES = ("embeddings", "images", "meta", "people")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id), path TEXT NOT NULL,
    sha256 TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    face_px REAL, method TEXT, added TEXT NOT NULL, UNIQUE(person_id, sha256))""",
    """CREATE TABLE IF NOT EXISTS embeddings (
    image_id INTEGER NOT NULL REFERENCES images(id), model_version TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (image_id, model_version))""",
    "CREATE INDEX IF NOT EXISTS images_person ON images(person_id)",
    "CREATE TABLE IF NOT EXISTS thumbs (image_id INTEGER PRIMARY KEY REFERENCES images(id), png BLOB NOT NULL)",
)
# decoding or detecting on a hostile image may fail in these ways besides InputError
_IMAGE_FAILURES = (cv2.error, MemoryError, OverflowError, ValueError)


class GalleryError(ForensicFaceError):
    """The gallery database cannot be opened or used as asked."""


def embedding_distance(similarity: float) -> float:
    """Euclidean distance between two unit-length embeddings with this cosine similarity: sqrt(2 - 2 s),
    0 for identical embeddings, sqrt(2) for orthogonal ones, 2 for opposite ones (the same ranking as
    the similarity, on the scale some examiners are used to)."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * float(similarity)))


def candidate_distance(candidate: dict) -> float:
    """A saved candidate's Euclidean distance (computed from its similarity in results saved before the
    distance was stored); NaN when neither is there or the saved value is not a number (a damaged file)."""
    for key, convert in (("distance", float), ("similarity", embedding_distance)):
        try:
            if candidate.get(key) is not None:
                return convert(candidate[key])
        except (TypeError, ValueError):
            return float("nan")
    return float("nan")


@dataclass(frozen=True)
class Candidate:
    person: str
    similarity: float  # best cosine similarity over the person's images
    identity_probability: float  # softmax over all people in the gallery (fitted temperature)
    match_probability: float  # calibrated probability that probe and this person are the same
    image_path: str  # the gallery image that matched best
    image_id: int

    def as_dict(self) -> dict:
        return {"person": self.person, "similarity": round(self.similarity, 4),
                "distance": round(embedding_distance(self.similarity), 4),
                "identity_probability": round(self.identity_probability, 4),
                "match_probability": round(self.match_probability, 4), "image_path": self.image_path,
                "image_id": self.image_id}


@dataclass
class SearchResult:
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
    gallery: dict | None = None  # Gallery.identity() of the content searched (read with the index it searched)

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
                "open_set_threshold": (round(self.open_set_threshold, 4) if np.isfinite(self.open_set_threshold)
                                       else None), "fpir": self.fpir,
                "lead_score": round(self.lead_score, 4) if np.isfinite(self.lead_score) else None,
                "seconds": round(self.seconds, 5), "candidates": [c.as_dict() for c in self.candidates],
                "gallery": self.gallery}


def _number(value, default: float = float("nan")) -> float:
    """A stored figure as a float (``default`` for anything else: stored results are untrusted input)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def _rate_text(search: dict) -> str:
    return f"{_number(search.get('fpir'), 0.01):.1%}".replace(".0%", "%")


def _lead_words(search: dict) -> str:
    """What the lead score of a stored search is, in words (the neighbours a gallery of its size has)."""
    people = search.get("people_searched")
    k = min(OPEN_SET_NEIGHBOURS, int(people) - 1) if isinstance(people, int) else OPEN_SET_NEIGHBOURS
    if k < 1:
        return "its similarity, the gallery holding one person"
    return "the best candidate's similarity less half " + (
        "the next one's" if k == 1 else f"the mean of the next {('two', 'three')[k - 2] if k <= 3 else k}")


def search_verdict(search: dict) -> str:
    """The verdict sentence of a stored search result (as saved by ``SearchResult.as_dict``), the same in
    the GUI and the report; "This is not an identification." ends a lead."""
    cands = [c for c in search.get("candidates") or [] if isinstance(c, dict)]
    if not cands:
        return "The gallery is empty: nobody was compared."
    best = cands[0]
    prob = _number(best.get("match_probability"))
    if search.get("confident"):
        return (f"Investigative lead: {best.get('person', '?')} (match probability {prob:.3f}). "
                "This is not an identification.")
    thr = search.get("open_set_threshold")
    if prob >= 0.5 and thr is not None:
        people = search.get("people_searched", "?")
        rate = _rate_text(search)
        lead = search.get("lead_score")
        if lead is None:  # results saved before the lead score: the threshold was on the similarity itself
            return (f"No confident match: {best.get('person', '?')} has match probability {prob:.3f} as a single "
                    f"comparison, but its similarity {_number(best.get('similarity')):.3f} is below "
                    f"{_number(thr):.3f}, which the best of {people} people who are not the probe's person reaches "
                    f"in {rate} of searches.")
        return (f"No confident match: {best.get('person', '?')} has match probability {prob:.3f} as a single "
                f"comparison, but stands out too little from the next candidates for a gallery of {people}: lead "
                f"score {_number(lead):.3f} ({_lead_words(search)}) is below "
                f"{_number(thr):.3f}, which searches for someone not enrolled reach in {rate} of cases.")
    return "No confident match: no person in the gallery reaches a match probability of 0.5."


def open_set_note(search: dict) -> str:
    """One sentence on the open-set condition of a stored search result (empty without one), the same in
    the GUI and the report."""
    thr = search.get("open_set_threshold")
    if thr is None:
        return ""
    people = search.get("people_searched", "?")
    rate = _rate_text(search)
    lead = search.get("lead_score")
    if lead is None:  # saved before the lead score
        return (f"A lead also needs a similarity of at least {_number(thr):.3f}: the best of {people} strangers "
                f"reaches that in {rate} of searches, so a person who is not in the gallery rarely yields a lead.")
    return (f"A lead also needs a lead score ({_lead_words(search)}) of at least {_number(thr):.3f}; this "
            f"search's is {_number(lead):.3f}. Searches of {people} people "
            f"for someone not among them reach that in {rate} of cases (measured on held-out calibration "
            f"searches), so a person who is not in the gallery rarely yields a lead.")


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


class EmbeddingIndex:
    """Embeddings of one model sorted by person, for vectorised search."""

    def __init__(self, vectors: np.ndarray, person_idx: np.ndarray, people: list[str], image_ids: np.ndarray,
                 paths: list[str]) -> None:
        order = np.argsort(person_idx, kind="stable")
        self.vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)  # (N, D)
        self.person_idx = person_idx[order]
        self.image_ids = image_ids[order]
        self.paths = [paths[i] for i in order]
        self.people = people
        starts = np.r_[0, np.nonzero(np.diff(self.person_idx))[0] + 1] if len(order) else np.zeros(0, int)
        self.starts = starts.astype(np.int64)
        self.present = self.person_idx[starts] if len(order) else np.zeros(0, int)  # person of each run

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-person best similarity (P,) and the row of that best match (P,), P = people with embeddings."""
        sims = self.vectors @ np.asarray(query, np.float32)  # (N,)
        best = np.maximum.reduceat(sims, self.starts)
        # row of the maximum within each run: the first row whose similarity equals the run's best
        run = np.repeat(np.arange(self.starts.size), np.diff(np.r_[self.starts, sims.size]))
        hit = np.nonzero(sims == best[run])[0]
        first = np.full(self.starts.size, -1, np.int64)
        first[run[hit][::-1]] = hit[::-1]
        return best, first


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


def _remove_stale(paths: Iterable[Path], age_s: float = 600.0) -> None:
    """Remove what a creation killed half-way left (a creation takes milliseconds: older ones are debris)."""
    now = time.time()
    for path in paths:
        with suppress(OSError):
            if now - path.stat().st_mtime > age_s:
                path.unlink()
                log.info("%s: removed, left by a gallery creation that was interrupted", path)


def _enrol_text(path: Path) -> str:
    return f"`forensic-face gallery enroll {path} FOLDER`"


def _image_files(folder: Path) -> list[tuple[str, Path]]:
    """(person, image path) of an LFW-style folder: one sub-folder per person; symbolic links skipped."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = []
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        for f in sorted({f for g in IMAGE_GLOBS for f in person_dir.glob(g)}):
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


class _Snapshot(NamedTuple):
    """What one read of the gallery gives for one model version."""

    index: EmbeddingIndex
    identity: dict  # Gallery.identity()
    held: list[tuple[str, int]]  # (model version, embeddings) of every version, read only when index is empty


class Gallery:
    """A gallery database file. Thread-safe for the GUI's worker threads (one connection, a lock).

    ``mode``: ``"read"`` opens an existing gallery read-only (search, information, analysis; nothing is
    written to it); ``"write"`` opens an existing gallery to change it (re-embed, import); ``"create"``
    opens one for enrolment, creating it and its folders when missing. Raises GalleryError for a path
    that is missing (read, write), a folder, a symbolic link, or a file that is not a forensic-face
    gallery (such a file is never modified)."""

    def __init__(self, path: str | Path, *, mode: GalleryMode = "read") -> None:
        if mode not in ("read", "write", "create"):
            raise ValueError(f"mode must be 'read', 'write' or 'create', not {mode!r}")
        self.path = Path(path)
        self.mode: GalleryMode = mode
        self._lock = threading.RLock()
        self._cache: dict[str, _Snapshot] = {}
        self._data_version: int | None = None
        self._check_file()
        if mode != "read":
            self._connect_read().close()  # before any write: another program's file is refused untouched
        self.db = self._connect_write() if mode != "read" else self._connect_read()

    # ------------------------------------------------------------------------------------------ opening
    def _check_file(self) -> None:
        """Refuse paths that cannot be a gallery (creating a missing one in create mode)."""
        p = self.path
        if p.is_symlink():
            raise GalleryError(f"{p}: the gallery database is a symbolic link; give the path of the file itself")
        if p.is_dir():
            raise GalleryError(f"{p}: is a folder, not a gallery database; give the path of its .db file "
                               f"(e.g. {p / 'gallery.db'})")
        if not p.exists():
            if self.mode != "create":
                raise GalleryError(f"no gallery database at {p}; create one with {_enrol_text(p)}")
            self._create_file()
        try:
            with open(p, "rb") as fh:
                head = fh.read(100)
        except OSError as exc:
            raise GalleryError(f"{p}: cannot read the gallery database ({exc.strerror or exc})") from None
        if not head:
            raise GalleryError(f"{p}: the file is empty, not a gallery database; delete it or choose another path")
        if head[:16] != _SQLITE_MAGIC:
            raise GalleryError(f"{p}: not a gallery database (not an SQLite file)")
        app_id = int.from_bytes(head[68:72], "big") if len(head) >= 72 else 0
        if app_id not in (0, APPLICATION_ID):
            raise GalleryError(f"{p}: an SQLite database of another program (application id {app_id:#x}), not a "
                               "forensic-face gallery; choose the gallery's .db file")

    def _create_file(self) -> None:
        """Make a new gallery at the path, whole or not at all: built beside it under a temporary name and
        hard-linked into place (when another process got there first, its gallery is kept)."""
        p = self.path
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.creating")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(p.parent.glob(f".{glob.escape(p.name)}.*.creating*"))
            db = self._connect(str(tmp), False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('schema', ?), ('created', ?)",
                           (str(SCHEMA_VERSION), datetime.now(UTC).isoformat()))
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute("COMMIT")
            finally:
                db.close()  # the last connection: the WAL is merged into the file and removed
            try:
                os.link(tmp, p)
                log.info("%s: created a new gallery", p)
            except FileExistsError:
                log.info("%s: created by another process meanwhile; using it", p)
            except OSError:  # a file system without hard links (FAT): a rename, unless one appeared meanwhile
                if not p.exists():
                    os.replace(tmp, p)
        except (OSError, sqlite3.Error) as exc:
            raise GalleryError(f"{p}: cannot create the gallery ({getattr(exc, 'strerror', None) or exc}); "
                               "choose a folder you can write to") from None
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                with suppress(OSError):
                    leftover.unlink(missing_ok=True)

    def _connect(self, target: str, uri: bool) -> sqlite3.Connection:
        return sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                               isolation_level=None)

    def _connect_read(self) -> sqlite3.Connection:
        """A read-only connection. WAL needs the -shm (and -wal) files beside the database; in a folder where
        they cannot be created the file is opened as immutable, which is safe only when no -wal file holds
        changes not yet written into the database (else GalleryError)."""
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            return self._checked(self._connect(uri, True))
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN",
                                                            "SQLITE_READONLY_CANTINIT"):
                raise self._error(exc) from None
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise GalleryError(
                    f"{self.path}: the gallery is in a folder this program cannot write to, and its {wal.name} file "
                    "holds changes not yet merged into it; open it once where its folder is writable (or copy "
                    "the gallery with its -wal file to such a folder)") from None
            log.info("%s: read-only folder; opening the gallery as immutable (%s)", self.path, exc)
        try:
            return self._checked(self._connect(uri + "&immutable=1", True))
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _checked(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """``db`` once it is known to be a gallery of a supported schema (closed and GalleryError otherwise)."""
        try:
            self._check_gallery(db)
        except BaseException:
            db.close()
            raise
        return db

    def _error(self, exc: sqlite3.Error) -> GalleryError:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith("SQLITE_BUSY") or "locked" in str(exc):
            return GalleryError(f"{self.path}: the gallery is busy (another program has been writing to it for "
                                f"over {BUSY_TIMEOUT_S:.0f} s); try again when it has finished")
        if name.startswith("SQLITE_READONLY") and self.mode == "read":
            return GalleryError(f"{self.path}: the gallery cannot be read without a change this read-only opening "
                                f"may not make ({exc}); open it once for enrolment where its folder is writable")
        if name.startswith("SQLITE_READONLY"):
            return GalleryError(f"{self.path}: the gallery cannot be changed here (its file or folder is "
                                f"read-only: {exc}); enrol into a copy in a folder you can write to")
        return GalleryError(f"{self.path}: cannot use the gallery database ({exc})")

    def _tables(self, db: sqlite3.Connection) -> set[str]:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _check_gallery(self, db: sqlite3.Connection) -> None:
        tables = self._tables(db)  # sqlite3 errors are the caller's to turn into GalleryError
        missing = [t for t in _REQUIRED_TABLES if t not in tables]
        row = None if missing else db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if missing or row is None:
            what = f"no {', '.join(missing)} table{'s' * (len(missing) > 1)}" if missing else "no schema version"
            raise GalleryError(f"{self.path}: an SQLite database but not a forensic-face gallery ({what}); it was "
                               "left unchanged. Choose the gallery's .db file, or a new path to enrol into")
        if row[0] != str(SCHEMA_VERSION):
            raise GalleryError(f"{self.path}: gallery schema {row[0]} is not supported (this version reads "
                               f"{SCHEMA_VERSION}); open it with the version of forensic-face that made it")

    def _connect_write(self) -> sqlite3.Connection:
        """A read-write connection to a gallery already checked read-only, brought up to date: tables added
        since it was made (thumbs), the application id, WAL mode."""
        db = self._connect(str(self.path), False)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._check_gallery(db)
                for statement in _SCHEMA:
                    db.execute(statement)
                if db.execute("PRAGMA application_id").fetchone()[0] == 0:
                    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                log.warning("%s: could not switch the gallery to WAL mode now; a later opening will", self.path)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            db.close()
            raise self._error(exc) from None
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ writing
    def _require_writable(self, what: str) -> None:
        if self.mode == "read":
            raise GalleryError(f"{self.path}: opened for reading only; {what} needs the gallery opened with "
                               "Gallery(path, mode='create') (or mode='write' for an existing one)")

    def _changed(self) -> None:
        """Forget what was read: this connection wrote (other connections' writes are seen by data_version)."""
        self._cache.clear()

    def _refresh(self) -> None:
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._cache.clear()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (waits for other writers up to BUSY_TIMEOUT_S)."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._error(exc) from None
            try:
                yield self.db
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(self.db)
                raise self._error(exc) from None
            except BaseException:
                _rollback(self.db)
                raise
            finally:
                self._changed()

    # ------------------------------------------------------------------------------------------ info
    def info(self) -> dict:
        with self._lock:
            q = self.db.execute
            people = q("SELECT COUNT(*) FROM people").fetchone()[0]
            images = dict(q("SELECT status, COUNT(*) FROM images GROUP BY status").fetchall())
            models = dict(q("SELECT model_version, COUNT(*) FROM embeddings GROUP BY model_version").fetchall())
        return {"path": str(self.path), "people": people, "images": sum(images.values()), "images_by_status": images,
                "embeddings_by_model": models, "size_bytes": self.path.stat().st_size if self.path.exists() else 0}

    def no_face_images(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT path FROM images WHERE status != 'ok' ORDER BY path")]

    def identity(self, model_version: str) -> dict:
        """What a search with ``model_version`` compares a probe against, for the chain of custody.

        Keys: ``path`` (absolute), ``schema`` (gallery schema version), ``created`` (when the gallery was
        made, ISO 8601), ``model_version``, ``people`` (people with an embedding of this version),
        ``people_enrolled`` (all people, whatever their embeddings), ``embeddings`` (of this version) and
        ``content_sha256``: the SHA-256 of the UTF-8 text made of one line per embedding of this version,
        ``json.dumps(person_name) + "\\t" + image_sha256 + "\\t" + sha256(vector bytes) + "\\n"`` (the
        name as a JSON string with ASCII escapes, the image file's SHA-256 as enrolled and the SHA-256 of
        the stored float32 vector, both lower-case hex), the lines sorted. It depends on the enrolled
        content only: not on row ids, insertion order, thumbnails or other model versions. Cached until
        the gallery changes (by this or another connection)."""
        return dict(self._snapshot(model_version).identity)

    def _snapshot(self, model_version: str) -> _Snapshot:
        """The search index and identity of ``model_version``, read in one transaction (so they agree)."""
        with self._lock:
            self._refresh()
            if model_version not in self._cache:
                self.db.execute("BEGIN")
                try:
                    rows = self.db.execute(
                        "SELECT e.vector, i.person_id, i.id, i.path, i.sha256 FROM embeddings e "
                        "JOIN images i ON i.id = e.image_id WHERE e.model_version=?", (model_version,)).fetchall()
                    names = dict(self.db.execute("SELECT id, name FROM people").fetchall())
                    meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
                    held = [] if rows else self.db.execute(  # what there is instead, to say so
                        "SELECT model_version, COUNT(*) FROM embeddings GROUP BY model_version "
                        "ORDER BY model_version").fetchall()
                finally:
                    self.db.execute("COMMIT")
                self._cache[model_version] = _Snapshot(self._build_index(rows, names),
                                                       self._build_identity(model_version, rows, names, meta), held)
            return self._cache[model_version]

    def _build_index(self, rows: list, names: dict[int, str]) -> EmbeddingIndex:
        ids = sorted(names)
        pos = {pid: k for k, pid in enumerate(ids)}
        sizes = {len(r[0]) for r in rows}
        if len(sizes) > 1 or any(size % 4 for size in sizes):
            raise GalleryError(f"{self.path}: the gallery's embeddings of one model differ in length "
                               f"({sorted(sizes)} bytes); the database is damaged")
        if rows:
            vectors = np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(len(rows), -1)
        else:
            vectors = np.zeros((0, 128), np.float32)
        return EmbeddingIndex(vectors, np.array([pos[r[1]] for r in rows], np.int64), [names[i] for i in ids],
                              np.array([r[2] for r in rows], np.int64), [r[3] for r in rows])

    def _build_identity(self, model_version: str, rows: list, names: dict[int, str], meta: dict) -> dict:
        quoted = {pid: json.dumps(name) for pid, name in names.items()}
        lines = sorted(f"{quoted[r[1]]}\t{r[4]}\t{hashlib.sha256(r[0]).hexdigest()}\n" for r in rows)
        return {"path": str(self.path.resolve()), "schema": int(meta.get("schema", SCHEMA_VERSION)),
                "created": meta.get("created"), "model_version": model_version,
                "people": len({r[1] for r in rows}), "people_enrolled": len(names), "embeddings": len(rows),
                "content_sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}

    # ------------------------------------------------------------------------------------------ enrolment
    def enroll_folder(self, folder: str | Path, engine, detector, progress: Progress | None = None,
                      batch: int = 32) -> EnrolReport:
        """Enrol every image of an LFW-style folder (one sub-folder per person). Resumable: images
        already enrolled for the engine's model version are skipped. Images with no usable face are
        recorded (status ``no_face``/``unreadable``, with the reason) and listed in the report; an image
        that cannot be read or decoded (too large, an I/O error, a hostile file) does not stop the rest.
        Safe to run in several processes at once on one gallery."""
        from forensic_face.engine.probe import ProbePath

        self._require_writable("enrolment")
        files = _image_files(Path(folder))
        report = EnrolReport(people=len({p for p, _ in files}))
        t0 = time.perf_counter()
        probe_path = ProbePath(engine, detector)
        pending: list = []  # (image id, ProbeFace)
        for i, (person, path) in enumerate(files):
            if progress is not None:
                progress.update(i, len(files), f"enrolling {person}")
            report.images_seen += 1
            item = self._enrol_image(person, path, probe_path, report)
            if item is not None:
                pending.append(item)
            if len(pending) >= batch:
                report.enrolled += self._store_embeddings(pending, probe_path)
                pending = []
        if pending:
            report.enrolled += self._store_embeddings(pending, probe_path)
        if progress is not None:
            progress.update(len(files), len(files), "done")
        report.seconds = time.perf_counter() - t0
        return report

    def _enrol_image(self, person: str, path: Path, probe_path, report: EnrolReport) -> tuple | None:
        """(image id, ProbeFace) to embed, or None with the image counted in ``report``."""
        data, reason = _read_image(path)
        if data is None:
            log.warning("%s; not enrolled", reason)
            report.add_failure("unreadable", str(path), reason)
            return None
        digest = hashlib.sha256(data).hexdigest()
        pid = self._person_id(person)
        with self._lock:
            row = self.db.execute("SELECT id, status, message FROM images WHERE person_id=? AND sha256=?",
                                  (pid, digest)).fetchone()
            if row is not None and (row[1] != "ok" or self.db.execute(
                    "SELECT 1 FROM embeddings WHERE image_id=? AND model_version=?",
                    (row[0], probe_path.engine.info.version)).fetchone()):
                report.already_enrolled += 1
                if row[1] == "no_face":
                    report.add_failure("no_face", str(path), row[2])
                return None
        face, status, message, px, method = self._face(data, path, probe_path)
        image_id = row[0] if row is not None else self._add_image(pid, path, digest, status, message, px, method)
        if face is None:
            if status != "no_face":
                log.warning("%s; not enrolled", message)
            report.add_failure(status, str(path), message)
            return None
        return image_id, face

    def _add_image(self, pid: int, path: Path, digest: str, status: str, message: str, px: float | None,
                   method: str | None) -> int:
        """The id of this person's image with this SHA-256, stored now unless another process just did."""
        with self._writing() as db:
            db.execute("INSERT INTO images (person_id, path, sha256, status, message, face_px, method, added) "
                       "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (person_id, sha256) DO NOTHING",
                       (pid, str(path), digest, status, message, px, method, datetime.now(UTC).isoformat()))
            return db.execute("SELECT id FROM images WHERE person_id=? AND sha256=?", (pid, digest)).fetchone()[0]

    def _face(self, data: bytes, path: Path, probe_path):
        """(face or None, status, message, face width px, detector step) of an image's bytes: the probe path's
        face step (detect, align at the engine's size, grey, quality)."""
        from forensic_face.vision.frames import decode_image_bytes

        try:
            frame = decode_image_bytes(data, source=str(path), suffix=path.suffix)
            try:
                face = probe_path.face(frame.image)
            except NoFaceFoundError as exc:
                return None, "no_face", str(exc), None, None
        except InputError as exc:
            return None, "unreadable", str(exc), None, None
        except _IMAGE_FAILURES as exc:
            return None, "unreadable", _failure_text(path, exc), None, None
        return face, "ok", "", float(face.detection.width), face.detection.method

    def _store_embeddings(self, pending: list, probe_path) -> int:
        """Embed the faces of ``pending`` ((image id, ProbeFace) pairs) as they are and store the embeddings
        with the aligned crops as thumbnails."""
        emb = probe_path.embed_faces([face for _, face in pending])
        engine = probe_path.engine
        thumbs = [(iid, encode_png(face.aligned.image)) for iid, face in pending]
        with self._writing() as db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?)",
                           [(iid, engine.info.version, e.astype(np.float32).tobytes())
                            for (iid, _), e in zip(pending, emb, strict=True)])
            db.executemany("INSERT OR REPLACE INTO thumbs VALUES (?,?)", thumbs)
        return len(pending)

    def thumbnail(self, image_id: int) -> bytes | None:
        """PNG of the aligned face that was embedded for a gallery image (None for imported vectors, and in
        galleries made before thumbnails were kept)."""
        with self._lock:
            try:
                row = self.db.execute("SELECT png FROM thumbs WHERE image_id=?", (int(image_id),)).fetchone()
            except sqlite3.OperationalError as exc:  # no thumbs table: an old gallery opened read-only
                if "no such table" not in str(exc):
                    raise self._error(exc) from None
                return None
        return bytes(row[0]) if row else None

    def _person_id(self, name: str) -> int:
        with self._lock:
            row = self.db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            if row:
                return row[0]
            self._require_writable("enrolment")
            with self._writing() as db:
                db.execute("INSERT INTO people (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                           (name, datetime.now(UTC).isoformat()))
                return db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()[0]

    def add_embeddings(self, person: str, vectors: np.ndarray, model_version: str,
                       paths: Iterable[str] | None = None) -> None:
        """Store precomputed embeddings (e.g. for benchmarks or imports), one image row each."""
        self._require_writable("adding embeddings")
        paths = list(paths) if paths is not None else [f"<{person}:{i}>" for i in range(len(vectors))]
        now = datetime.now(UTC).isoformat()
        pid = self._person_id(person)
        with self._writing() as db:
            for p, v in zip(paths, vectors, strict=True):
                iid = db.execute("INSERT INTO images (person_id, path, sha256, status, added) VALUES "
                                 "(?,?,?,?,?)", (pid, p, hashlib.sha256(p.encode()).hexdigest(), "ok", now)).lastrowid
                db.execute("INSERT INTO embeddings VALUES (?,?,?)",
                           (iid, model_version, np.asarray(v, np.float32).tobytes()))

    # ------------------------------------------------------------------------------------------ search
    def index(self, model_version: str) -> EmbeddingIndex:
        """The embeddings of ``model_version`` for search (cached until the gallery changes)."""
        return self._snapshot(model_version).index

    def _check_searchable(self, snapshot: _Snapshot) -> None:
        """GalleryError when a snapshot with no embedding to compare has people (another model's only)."""
        people, held = snapshot.identity["people_enrolled"], snapshot.held
        model_version = snapshot.identity["model_version"]
        if people == 0:
            return
        if not held:
            raise GalleryError(f"{self.path}: the gallery holds {people} people but no embeddings (none of their "
                               f"images had a usable face); enrol images with visible faces: {_enrol_text(self.path)}")
        versions = ", ".join(f"{v} ({n} embeddings)" for v, n in held)
        raise GalleryError(
            f"{self.path}: the gallery's {people} people were embedded with model version(s) {versions}, not with "
            f"{model_version}, the model this search uses; re-embed the gallery for it by enrolling the same "
            f"people folder again: {_enrol_text(self.path)} (images already enrolled are embedded with the "
            "current model; nothing is removed)")

    def search(self, embedding: np.ndarray, calibration, model_version: str, probe_face_px: float,
               top_k: int = 10, probe_sharpness: float | None = None,
               fpir: float = DEFAULT_FPIR) -> SearchResult:
        """Rank the gallery's people for one L2-normalised probe embedding. ``probe_sharpness`` (the
        variance of the Laplacian of the aligned probe crop) sets the match threshold of calibrations
        that take the probe's quality into account; they refuse a search without it.

        The best candidate is a confident lead when its match probability is at least 0.5 *and* the
        search's lead score reaches the open-set threshold for this many people: the score that searches
        of that many strangers reach in a share ``fpir`` of cases (MatchCalibration.open_set_threshold;
        a ``fpir`` outside the calibration's range is refused with GalleryError).

        A gallery with nobody in it gives an empty result ("empty gallery"); one whose people have no
        embedding of ``model_version`` (another model's only) is refused with GalleryError saying how to
        re-embed it. The result's ``gallery`` is :meth:`identity` of the content searched."""
        t0 = time.perf_counter()
        try:
            calibration.check_fpir(fpir)
        except ValueError as exc:
            raise GalleryError(str(exc)) from None
        snapshot = self._snapshot(model_version)
        idx, identity = snapshot.index, snapshot.identity
        if len(idx) == 0:
            self._check_searchable(snapshot)
            return SearchResult([], False, float("nan"), 0, 0, model_version, probe_face_px,
                                probe_sharpness=probe_sharpness, fpir=fpir, gallery=dict(identity))
        best, rows = idx.scores(embedding)
        probs = calibration.softmax(best, probe_sharpness)
        k = min(top_k, best.size)
        top = np.argpartition(-best, k - 1)[:k]
        top = top[np.argsort(-best[top])]
        match = calibration.probability(best[top], probe_sharpness)
        cands = [Candidate(person=idx.people[idx.present[j]], similarity=float(best[j]),
                           identity_probability=float(probs[j]), match_probability=float(m),
                           image_path=idx.paths[rows[j]], image_id=int(idx.image_ids[rows[j]]))
                 for j, m in zip(top, match, strict=True)]
        open_thr = calibration.open_set_threshold(int(best.size), fpir)
        lead = float(calibration.lead_score(best))  # the best similarity itself for calibrations before the table
        confident = bool(match[0] >= 0.5 and lead >= open_thr)
        return SearchResult(cands, confident, calibration.threshold(probe_sharpness), int(best.size),
                            len(idx), model_version, probe_face_px, time.perf_counter() - t0, probe_sharpness,
                            open_thr, fpir, lead if calibration.open_set else float("nan"), dict(identity))

    # ------------------------------------------------------------------------------------------ model change
    def reembed(self, engine, detector, progress: Progress | None = None) -> int:
        """Embed every usable stored image with the engine's model version (after a model change)."""
        from forensic_face.engine.probe import ProbePath

        self._require_writable("re-embedding")
        probe_path = ProbePath(engine, detector)
        with self._lock:
            rows = self.db.execute(
                "SELECT id, path FROM images WHERE status='ok' AND id NOT IN "
                "(SELECT image_id FROM embeddings WHERE model_version=?)", (engine.info.version,)).fetchall()
        done, pending = 0, []
        for i, (iid, path) in enumerate(rows):
            if progress is not None:
                progress.update(i, len(rows), "re-embedding")
            p = Path(path)
            data, reason = _read_image(p) if p.is_file() else (None, f"{p}: no longer on disk")
            if data is None:
                log.warning("%s; not re-embedded", reason)
                continue
            face, status, message, *_ = self._face(data, p, probe_path)
            if face is None:
                log.warning("%s; not re-embedded", message)
                continue
            pending.append((iid, face))
            if len(pending) >= 32:
                done += self._store_embeddings(pending, probe_path)
                pending = []
        if pending:
            done += self._store_embeddings(pending, probe_path)
        if progress is not None:
            progress.update(len(rows), len(rows), "done")
        return done
