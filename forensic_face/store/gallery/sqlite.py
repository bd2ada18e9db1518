"""The SQLite gallery: one database file (WAL mode) holding people, their images and embeddings.

Tables: ``people`` (name), ``images`` (path, SHA-256, whether a usable face was found, face size,
detector step), ``embeddings`` (image, model version, float32 vector), ``thumbs`` (the aligned face of
each embedded image, PNG). Several model versions may coexist; search uses the engine's version, and
re-embedding fills in a new version from the stored images.

A gallery is opened in one of three modes: ``"read"`` (the default: an existing gallery, read-only;
search, information, analysis), ``"write"`` (an existing gallery, to re-embed or import into) and
``"create"`` (enrolment: opened, or created with its folders when missing). Only a file this package
created is accepted; another program's SQLite file is refused and left untouched.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from forensic_face.core.errors import enrol_command
from forensic_face.engine.search import EmbeddingIndex, Snapshot
from forensic_face.store.gallery.protocol import (
    GalleryError,
    GalleryMode,
    ImageRecord,
    IndexedStore,
    StoredImage,
    arithmetic_key,
    arithmetic_of,
    content_sha256,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: Stored in the SQLite header of every gallery this package creates ("FFga"); galleries made before
#: it was set carry 0 and are recognised by their tables.
APPLICATION_ID = int.from_bytes(b"FFga", "big")
#: How long a writer waits for another process's write to finish before giving up (seconds).
BUSY_TIMEOUT_S = 60.0

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


class SQLiteGallery(IndexedStore):
    """A gallery database file (a GalleryStore). Thread-safe for the GUI's worker threads (one connection, a lock).

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
        self._cache: dict[str, Snapshot] = {}
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
                raise GalleryError(f"no gallery database at {p}; create one with {enrol_command(p)}")
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

    def __enter__(self) -> SQLiteGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def location(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------------------------------ writing
    def require_writable(self, what: str) -> None:
        if self.mode == "read":
            raise GalleryError(f"{self.path}: opened for reading only; {what} needs the gallery opened with "
                               "open_gallery(path, mode='create') (or mode='write' for an existing one)")

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
            meta = dict(q("SELECT key, value FROM meta").fetchall())
        return {"path": str(self.path), "people": people, "images": sum(images.values()), "images_by_status": images,
                "embeddings_by_model": models, "arithmetic_by_model": {v: arithmetic_of(v, meta) for v in models},
                "size_bytes": self.path.stat().st_size if self.path.exists() else 0}

    def no_face_images(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT path FROM images WHERE status != 'ok' ORDER BY path")]

    def snapshot(self, model_version: str) -> Snapshot:
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
                self._cache[model_version] = Snapshot(self._build_index(rows, names),
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
        return {"path": str(self.path.resolve()), "schema": int(meta.get("schema", SCHEMA_VERSION)),
                "created": meta.get("created"), "model_version": model_version,
                "people": len({r[1] for r in rows}), "people_enrolled": len(names), "embeddings": len(rows),
                "content_sha256": content_sha256((names[r[1]], r[4], r[0]) for r in rows),
                "arithmetic": arithmetic_of(model_version, meta), "search": {"mode": "exact"}}

    # ------------------------------------------------------------------------------------------ people, images
    def person_id(self, name: str) -> int:
        with self._lock:
            row = self.db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            if row:
                return row[0]
            self.require_writable("enrolment")
            with self._writing() as db:
                db.execute("INSERT INTO people (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                           (name, datetime.now(UTC).isoformat()))
                return db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()[0]

    def find_image(self, person_id: int, sha256: str) -> StoredImage | None:
        with self._lock:
            row = self.db.execute("SELECT id, status, message FROM images WHERE person_id=? AND sha256=?",
                                  (person_id, sha256)).fetchone()
        return StoredImage(*row) if row is not None else None

    def has_embedding(self, image_id: int, model_version: str) -> bool:
        with self._lock:
            return self.db.execute("SELECT 1 FROM embeddings WHERE image_id=? AND model_version=?",
                                   (image_id, model_version)).fetchone() is not None

    def add_image(self, person_id: int, path: str, sha256: str, status: str, message: str,
                  face_px: float | None, method: str | None) -> int:
        with self._writing() as db:
            db.execute("INSERT INTO images (person_id, path, sha256, status, message, face_px, method, added) "
                       "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (person_id, sha256) DO NOTHING",
                       (person_id, path, sha256, status, message, face_px, method, datetime.now(UTC).isoformat()))
            return db.execute("SELECT id FROM images WHERE person_id=? AND sha256=?",
                              (person_id, sha256)).fetchone()[0]

    def images_to_reembed(self, model_version: str) -> list[tuple[int, str]]:
        with self._lock:
            return self.db.execute(
                "SELECT id, path FROM images WHERE status='ok' AND id NOT IN "
                "(SELECT image_id FROM embeddings WHERE model_version=?)", (model_version,)).fetchall()

    def images(self) -> Iterator[ImageRecord]:
        yield from self._batches("SELECT i.id, p.name, i.path, i.sha256, i.status, i.message, i.face_px, i.method "
                                 "FROM images i JOIN people p ON p.id = i.person_id WHERE i.id > ? ORDER BY i.id",
                                 (), lambda row: ImageRecord(*row))

    def embeddings(self, model_version: str) -> Iterator[tuple[int, np.ndarray]]:
        yield from self._batches("SELECT image_id, vector FROM embeddings WHERE model_version=? AND image_id > ? "
                                 "ORDER BY image_id", (model_version,),
                                 lambda row: (row[0], np.frombuffer(row[1], np.float32).copy()))

    def _batches(self, query: str, args: tuple, convert, size: int = 5000) -> Iterator:
        """The rows of ``query`` (keyed by an id it orders by, its last parameter: the last id read) read
        ``size`` at a time, each converted; the lock is not held between batches."""
        last = 0
        while True:
            with self._lock:
                rows = self.db.execute(f"{query} LIMIT {size}", (*args, last)).fetchall()
            yield from (convert(row) for row in rows)
            if len(rows) < size:
                return
            last = rows[-1][0]

    # ------------------------------------------------------------------------------------------ embeddings
    def store_embeddings(self, model_version: str, embeddings: Sequence[tuple[int, np.ndarray, bytes]],
                         arithmetic: Sequence[str] = ()) -> None:
        with self._writing() as db:
            db.executemany("INSERT OR IGNORE INTO meta VALUES (?, '')",
                           [(arithmetic_key(model_version, a),) for a in arithmetic])
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?)",
                           [(iid, model_version, vector.astype(np.float32).tobytes())
                            for iid, vector, _ in embeddings])
            db.executemany("INSERT OR REPLACE INTO thumbs VALUES (?,?)",
                           [(iid, png) for iid, _, png in embeddings if png is not None])

    def thumbnail(self, image_id: int) -> bytes | None:
        with self._lock:
            try:
                row = self.db.execute("SELECT png FROM thumbs WHERE image_id=?", (int(image_id),)).fetchone()
            except sqlite3.OperationalError as exc:  # no thumbs table: an old gallery opened read-only
                if "no such table" not in str(exc):
                    raise self._error(exc) from None
                return None
        return bytes(row[0]) if row else None

    def add_embeddings(self, person: str, vectors: np.ndarray, model_version: str,
                       paths: Iterable[str] | None = None) -> None:
        self.require_writable("adding embeddings")
        paths = list(paths) if paths is not None else [f"<{person}:{i}>" for i in range(len(vectors))]
        now = datetime.now(UTC).isoformat()
        pid = self.person_id(person)
        with self._writing() as db:
            for p, v in zip(paths, vectors, strict=True):
                iid = db.execute("INSERT INTO images (person_id, path, sha256, status, added) VALUES "
                                 "(?,?,?,?,?)", (pid, p, hashlib.sha256(p.encode()).hexdigest(), "ok", now)).lastrowid
                db.execute("INSERT INTO embeddings VALUES (?,?,?)",
                           (iid, model_version, np.asarray(v, np.float32).tobytes()))
