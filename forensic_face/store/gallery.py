"""The gallery: known people, their images and embeddings in one SQLite database (WAL mode).

Tables: ``people`` (name), ``images`` (path, SHA-256, whether a usable face was found, face size,
detector step), ``embeddings`` (image, model version, float32 vector). Several model versions may
coexist; search uses the engine's version, and :meth:`Gallery.reembed` fills in a new version from
the stored images.

Search is vectorised: the embeddings of the current model are held in one (N, D) float32 matrix
sorted by person; similarities are one matrix-vector product, per-person scores a
``maximum.reduceat`` over each person's rows, and the top k an ``argpartition``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from forensic_face.core.errors import ForensicFaceError, InputError, NoFaceFoundError
from forensic_face.core.progress import Progress
from forensic_face.models.calibration import DEFAULT_FPIR, OPEN_SET_NEIGHBOURS
from forensic_face.vision.frames import IMAGE_GLOBS, encode_png

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id), path TEXT NOT NULL,
    sha256 TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    face_px REAL, method TEXT, added TEXT NOT NULL, UNIQUE(person_id, sha256));
CREATE TABLE IF NOT EXISTS embeddings (
    image_id INTEGER NOT NULL REFERENCES images(id), model_version TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (image_id, model_version));
CREATE INDEX IF NOT EXISTS images_person ON images(person_id);
CREATE TABLE IF NOT EXISTS thumbs (image_id INTEGER PRIMARY KEY REFERENCES images(id), png BLOB NOT NULL);
"""


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
                "seconds": round(self.seconds, 5), "candidates": [c.as_dict() for c in self.candidates]}


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
    seconds: float = 0.0

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


class Gallery:
    """A gallery database file. Thread-safe for the GUI's worker threads (one connection, a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_symlink():
            raise GalleryError(f"{self.path}: the gallery database is a symbolic link")
        if self.path.exists():
            with open(self.path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise GalleryError(f"{self.path}: not a gallery database (not an SQLite file)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: cannot open the gallery database ({exc})") from None
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?), ('created', ?)",
                            (str(SCHEMA_VERSION), datetime.now(UTC).isoformat()))
        elif row[0] != str(SCHEMA_VERSION):
            raise GalleryError(f"{self.path}: gallery schema {row[0]} is not supported (this version reads "
                               f"{SCHEMA_VERSION})")
        self._index: dict[str, EmbeddingIndex] = {}

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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

    # ------------------------------------------------------------------------------------------ enrolment
    def enroll_folder(self, folder: str | Path, engine, detector, progress: Progress | None = None,
                      batch: int = 32) -> EnrolReport:
        """Enrol every image of an LFW-style folder (one sub-folder per person). Resumable: images
        already enrolled for the engine's model version are skipped. Images with no usable face are
        recorded (status ``no_face``/``unreadable``) and listed in the report."""
        import time

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder")
        files = []
        for person_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
            for f in sorted({f for g in IMAGE_GLOBS for f in person_dir.glob(g)}):
                if not f.is_symlink():
                    files.append((person_dir.name, f))
        if not files:
            raise InputError(f"{folder}: no person sub-folders with images (expected <folder>/<Name>/<image>)")
        report = EnrolReport(people=len({p for p, _ in files}))
        t0 = time.perf_counter()
        pending: list[tuple[int, np.ndarray]] = []
        version = engine.info.version
        for i, (person, path) in enumerate(files):
            if progress is not None:
                progress.update(i, len(files), f"enrolling {person}")
            report.images_seen += 1
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            pid = self._person_id(person)
            with self._lock:
                row = self.db.execute("SELECT id, status FROM images WHERE person_id=? AND sha256=?",
                                      (pid, digest)).fetchone()
                if row is not None and (row[1] != "ok" or self.db.execute(
                        "SELECT 1 FROM embeddings WHERE image_id=? AND model_version=?", (row[0], version)).fetchone()):
                    report.already_enrolled += 1
                    if row[1] == "no_face":
                        report.no_face.append(str(path))
                    continue
            face, status, message, px, method = self._face(data, path, engine, detector)
            with self._lock:
                if row is None:
                    cur = self.db.execute(
                        "INSERT INTO images (person_id, path, sha256, status, message, face_px, method, added) "
                        "VALUES (?,?,?,?,?,?,?,?)", (pid, str(path), digest, status, message, px, method,
                                                     datetime.now(UTC).isoformat()))
                    image_id = cur.lastrowid
                else:
                    image_id = row[0]
            if face is None:
                (report.no_face if status == "no_face" else report.unreadable).append(str(path))
                continue
            pending.append((image_id, face))
            if len(pending) >= batch:
                report.enrolled += self._store_embeddings(pending, engine)
                pending = []
        if pending:
            report.enrolled += self._store_embeddings(pending, engine)
        if progress is not None:
            progress.update(len(files), len(files), "done")
        report.seconds = time.perf_counter() - t0
        self._index.pop(version, None)
        return report

    def _face(self, data: bytes, path: Path, engine, detector):
        from forensic_face.vision.align import AlignSpec, align_face
        from forensic_face.vision.frames import decode_image_bytes

        try:
            frame = decode_image_bytes(data, source=str(path), suffix=path.suffix)
        except InputError as exc:
            return None, "unreadable", str(exc), None, None
        try:
            det = detector.detect_one(frame.image)
        except NoFaceFoundError as exc:
            return None, "no_face", str(exc), None, None
        aligned = align_face(frame.image, det, AlignSpec(size=engine.size))
        return aligned.image, "ok", "", float(det.width), det.method

    def _store_embeddings(self, pending: list[tuple[int, np.ndarray]], engine) -> int:
        emb = engine.embed(np.stack([f for _, f in pending]))
        thumbs = [(iid, encode_png(face)) for iid, face in pending]
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?)",
                                [(iid, engine.info.version, e.astype(np.float32).tobytes())
                                 for (iid, _), e in zip(pending, emb, strict=True)])
            self.db.executemany("INSERT OR REPLACE INTO thumbs VALUES (?,?)", thumbs)
            self.db.execute("COMMIT")
        return len(pending)

    def thumbnail(self, image_id: int) -> bytes | None:
        """PNG of the aligned face that was embedded for a gallery image (None for imported vectors)."""
        with self._lock:
            row = self.db.execute("SELECT png FROM thumbs WHERE image_id=?", (int(image_id),)).fetchone()
        return bytes(row[0]) if row else None

    def _person_id(self, name: str) -> int:
        with self._lock:
            row = self.db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            if row:
                return row[0]
            return self.db.execute("INSERT INTO people (name, created) VALUES (?, ?)",
                                   (name, datetime.now(UTC).isoformat())).lastrowid

    def add_embeddings(self, person: str, vectors: np.ndarray, model_version: str,
                       paths: Iterable[str] | None = None) -> None:
        """Store precomputed embeddings (e.g. for benchmarks or imports), one image row each."""
        pid = self._person_id(person)
        paths = list(paths) if paths is not None else [f"<{person}:{i}>" for i in range(len(vectors))]
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self.db.execute("BEGIN")
            for p, v in zip(paths, vectors, strict=True):
                iid = self.db.execute("INSERT INTO images (person_id, path, sha256, status, added) VALUES "
                                      "(?,?,?,?,?)", (pid, p, hashlib.sha256(p.encode()).hexdigest(), "ok",
                                                      now)).lastrowid
                self.db.execute("INSERT INTO embeddings VALUES (?,?,?)",
                                (iid, model_version, np.asarray(v, np.float32).tobytes()))
            self.db.execute("COMMIT")
        self._index.pop(model_version, None)

    # ------------------------------------------------------------------------------------------ search
    def index(self, model_version: str) -> EmbeddingIndex:
        if model_version not in self._index:
            with self._lock:
                rows = self.db.execute(
                    "SELECT e.vector, i.person_id, i.id, i.path FROM embeddings e JOIN images i ON i.id = e.image_id "
                    "WHERE e.model_version=?", (model_version,)).fetchall()
                names = dict(self.db.execute("SELECT id, name FROM people").fetchall())
            ids = sorted(names)
            pos = {pid: k for k, pid in enumerate(ids)}
            if rows:
                vectors = np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(len(rows), -1)
            else:
                vectors = np.zeros((0, 128), np.float32)
            self._index[model_version] = EmbeddingIndex(
                vectors, np.array([pos[r[1]] for r in rows], np.int64), [names[i] for i in ids],
                np.array([r[2] for r in rows], np.int64), [r[3] for r in rows])
        return self._index[model_version]

    def search(self, embedding: np.ndarray, calibration, model_version: str, probe_face_px: float,
               top_k: int = 10, probe_sharpness: float | None = None,
               fpir: float = DEFAULT_FPIR) -> SearchResult:
        """Rank the gallery's people for one L2-normalised probe embedding. ``probe_sharpness`` (the
        variance of the Laplacian of the aligned probe crop) sets the match threshold of calibrations
        that take the probe's quality into account; they refuse a search without it.

        The best candidate is a confident lead when its match probability is at least 0.5 *and* the
        search's lead score reaches the open-set threshold for this many people: the score that searches
        of that many strangers reach in a share ``fpir`` of cases (MatchCalibration.open_set_threshold;
        a ``fpir`` outside the calibration's range is refused with GalleryError)."""
        import time

        t0 = time.perf_counter()
        try:
            calibration.check_fpir(fpir)
        except ValueError as exc:
            raise GalleryError(str(exc)) from None
        idx = self.index(model_version)
        if len(idx) == 0:
            return SearchResult([], False, float("nan"), 0, 0, model_version, probe_face_px,
                                probe_sharpness=probe_sharpness, fpir=fpir)
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
                            open_thr, fpir, lead if calibration.open_set else float("nan"))

    # ------------------------------------------------------------------------------------------ model change
    def reembed(self, engine, detector, progress: Progress | None = None) -> int:
        """Embed every usable stored image with the engine's model version (after a model change)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, path FROM images WHERE status='ok' AND id NOT IN "
                "(SELECT image_id FROM embeddings WHERE model_version=?)", (engine.info.version,)).fetchall()
        done, pending = 0, []
        for i, (iid, path) in enumerate(rows):
            if progress is not None:
                progress.update(i, len(rows), "re-embedding")
            p = Path(path)
            if not p.is_file():
                log.warning("%s: gallery image no longer on disk; not re-embedded", p)
                continue
            face, status, *_ = self._face(p.read_bytes(), p, engine, detector)
            if face is not None:
                pending.append((iid, face))
            if len(pending) >= 32:
                done += self._store_embeddings(pending, engine)
                pending = []
        if pending:
            done += self._store_embeddings(pending, engine)
        if progress is not None:
            progress.update(len(rows), len(rows), "done")
        self._index.pop(engine.info.version, None)
        return done
