"""The PostgreSQL gallery: people, images, embeddings and thumbnails in a database server with the pgvector
extension, shared by many analysts. Chosen by a ``postgresql://`` location (a libpq URL, e.g.
``postgresql://analyst@db.unit.example/gallery``); the password comes from the standard libpq sources
(``PGPASSWORD``, ``~/.pgpass``, a service file), never from a case.

Its tables live in the schema ``forensic_face`` of the database: ``schema_version`` (the migrations
applied), ``meta`` (when the gallery was made), ``state`` (a generation counter every write transaction
raises first, which also makes writers take turns), ``people``, ``images`` (with the enrolment status of
each), ``embeddings`` (image, model version, ``vector``, the SHA-256 of its float32 bytes), ``thumbs`` and
``search_index`` (the HNSW indexes of a model version, when built: one of the whole embeddings, one of their
first values, or both).

Search runs in the database: the inner product ``<#>`` of pgvector over every embedding of the model
(exact), or over an HNSW index of the model version's embeddings when one serves the query (approximate; the
index holds the embeddings or, by default, half-precision copies of them, and the candidates it finds are
ranked by their exact inner products in either case). An index of the embeddings' first values (a joined
bundle's recogniser's) serves the queries that are 0 beyond them (its sharp probes); the others go to the index
of the whole embeddings, or are searched exactly where there is none. Every result records the search it had. A
gallery of up to FULL_RANK_PEOPLE people returns every person's best similarity, so the softmax over
people is the same as in memory; a larger one returns the RANKED_PEOPLE best and a histogram of the rest
(engine.search.Ranking).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np

from forensic_face.core.errors import enrol_command
from forensic_face.engine.search import Histogram, Ranking
from forensic_face.store.gallery.protocol import (
    GalleryError,
    GalleryMode,
    ImageRecord,
    StoredImage,
    arithmetic_key,
    arithmetic_of,
    lines_sha256,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: Galleries of up to this many people return every person's best similarity to a search.
FULL_RANK_PEOPLE = 10_000
#: Larger ones return at least this many best people, and the others as a histogram of SIMILARITY_BINS
#: bins over [-1, 1] (width 1e-4: an identity probability is then within 0.1 % of its own value).
RANKED_PEOPLE = 100
SIMILARITY_BINS = 20_000
#: What an HNSW index may hold: the embeddings (``vector``) or half-precision copies (``halfvec``, pgvector
#: 0.7 or later: half the memory, and searches as exact once their candidates are re-ranked).
INDEX_VECTORS = ("vector", "halfvec")
#: How long opening waits for the server before saying it cannot be reached (seconds).
CONNECT_TIMEOUT_S = 10
#: The least memory an index build gets (PostgreSQL's ``maintenance_work_mem``, which holds the HNSW graph while
#: it is built; a server or session setting above it is kept). A graph that outgrows it goes on being built on
#: disk, many times slower: at 1M joined embeddings, m 64, the build put ~14k rows a minute into the graph until it
#: outgrew 2GB at ~760k, then ~3k; with 5GB it fitted and went on at ~17k (research/pg_bench/README.md).
BUILD_MEMORY_MIN = "2GB"
#: A memory size as PostgreSQL's settings take it (a whole number and a unit).
MEMORY_SIZE = re.compile(r"[1-9][0-9]*(kB|MB|GB|TB)")
_GRAPH_SPILLED = re.compile(r"hnsw graph no longer fits into maintenance_work_mem after ([0-9]+) tuples")
_LOCK_KEY = int.from_bytes(b"FFgallry", "big") >> 1  # the advisory lock migrations hold

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        "CREATE TABLE state (id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)",
        "INSERT INTO state VALUES (1, 0)",
        "CREATE TABLE people (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, name_json text NOT NULL, "
        "created timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE images (id bigserial PRIMARY KEY, person_id bigint NOT NULL REFERENCES people(id), "
        "path text NOT NULL, sha256 text NOT NULL, status text NOT NULL, message text NOT NULL DEFAULT '', "
        "face_px real, method text, added timestamptz NOT NULL DEFAULT now(), UNIQUE (person_id, sha256))",
        "CREATE TABLE embeddings (image_id bigint NOT NULL REFERENCES images(id), model_version text NOT NULL, "
        "person_id bigint NOT NULL REFERENCES people(id), vector vector NOT NULL, vector_sha256 text NOT NULL, "
        "PRIMARY KEY (image_id, model_version))",
        "CREATE INDEX embeddings_model_person ON embeddings (model_version, person_id)",
        "CREATE TABLE thumbs (image_id bigint PRIMARY KEY REFERENCES images(id), png bytea NOT NULL)",
        "CREATE TABLE search_index (model_version text PRIMARY KEY, index_name text NOT NULL, dim integer NOT NULL, "
        "m integer NOT NULL, ef_construction integer NOT NULL, ef_search integer NOT NULL, "
        "built timestamptz NOT NULL DEFAULT now())",
    ),
    # several indexes per model version, told apart by how many of the embeddings' values they hold; a prefix
    # index built under schema 1 (named as the whole embeddings' index is) takes a prefix index's name
    2: (
        "ALTER TABLE search_index DROP CONSTRAINT search_index_pkey",
        "ALTER TABLE search_index ADD PRIMARY KEY (model_version, dim)",
        "DO $$ DECLARE r record; BEGIN FOR r IN SELECT s.model_version, s.index_name, s.dim FROM search_index s "
        "WHERE to_regclass(quote_ident(s.index_name)) IS NOT NULL AND s.dim < (SELECT vector_dims(e.vector) FROM "
        "embeddings e WHERE e.model_version = s.model_version LIMIT 1) LOOP "
        "EXECUTE format('ALTER INDEX %I RENAME TO %I', r.index_name, r.index_name || '_p' || r.dim); "
        "UPDATE search_index SET index_name = r.index_name || '_p' || r.dim WHERE model_version = r.model_version "
        "AND dim = r.dim; END LOOP; END $$",
    ),
}


def _indexed(prefix: int | None):
    """The SQL of what an HNSW index holds: the embedding, or its first ``prefix`` values."""
    from psycopg import sql

    return sql.SQL("vector") if prefix is None else sql.SQL("subvector(vector, 1, {})").format(
        sql.Literal(int(prefix)))


def _described(row) -> dict:
    """What a search on an index records, from its ``search_index`` row joined to the catalogue (name, dim, m,
    ef_construction, ef_search, the type it holds, the embeddings' length)."""
    described = {"mode": "hnsw", "m": row[2], "ef_construction": row[3], "ef_search": row[4], "vectors": row[5]}
    if row[1] < row[6]:  # the index holds the first values only
        described["prefix"] = row[1]
    return described


def _searched(index: dict) -> dict:
    """An index's description as results record it (without its name and dimension)."""
    return {k: v for k, v in index.items() if k not in ("name", "dim")}


def serving_index(indexes: list[dict], query: np.ndarray) -> dict | None:
    """The index a search for ``query`` uses: the shortest prefix index beyond whose values the query is 0 (a
    joined bundle's sharp probe), else the index of the whole embeddings, else None (exact search). ``indexes``
    shortest first."""
    for index in indexes:
        if "prefix" not in index or not np.any(query[index["dim"]:]):
            return index
    return None


@dataclass(frozen=True)
class IndexBuild:
    """What building an HNSW index took: its name, the build memory it had (``maintenance_work_mem``), the
    seconds, and where the graph outgrew that memory (the embeddings in it by then; None when it fitted)."""

    name: str
    build_memory: str
    seconds: float
    spilled_after: int | None

    def advice(self) -> str | None:
        """What to tell the person who built it, when the build memory was too small."""
        if self.spilled_after is None:
            return None
        return (f"the index graph outgrew its build memory (maintenance_work_mem {self.build_memory}) after "
                f"{self.spilled_after:,} embeddings, and the rest was built on disk, many times slower; give the "
                "next build more (--build-memory), as the server's free memory allows")


def _psycopg():
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency of the package
        raise GalleryError("PostgreSQL galleries need the psycopg package: pip install 'psycopg[binary]'") from None
    return psycopg


def public_location(location: str) -> str:
    """``location`` without a password, in its user part or its query (for messages; the user is kept)."""
    parts = urlsplit(location)
    query = "&".join(q for q in parts.query.split("&") if not q.lower().startswith("password="))
    netloc = parts.netloc
    if parts.password is not None:
        user = quote(parts.username or "", safe="")
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class _Vectors:
    """pgvector's binary form of float32 vectors, registered on a connection."""

    @staticmethod
    def register(db) -> None:
        from psycopg.adapt import Dumper, Loader
        from psycopg.pq import Format
        from psycopg.types import TypeInfo

        info = TypeInfo.fetch(db, "vector")
        if info is None:
            raise GalleryError("the pgvector extension is not installed in this database")

        class VectorDumper(Dumper):
            format = Format.BINARY
            oid = info.oid

            def dump(self, obj: np.ndarray) -> bytes:
                a = np.asarray(obj, ">f4").ravel()
                return struct.pack(">HH", a.size, 0) + a.tobytes()

        class VectorLoader(Loader):
            format = Format.BINARY

            def load(self, data) -> np.ndarray:
                dim = struct.unpack_from(">H", data)[0]
                return np.frombuffer(bytes(data), ">f4", dim, 4).astype(np.float32)

        info.register(db)
        db.adapters.register_dumper(np.ndarray, VectorDumper)
        db.adapters.register_loader(info.oid, VectorLoader)


class PostgresGallery:
    """A gallery in a PostgreSQL database (a GalleryStore). Thread-safe (one connection, a lock); a
    connection lost to a server restart is opened again on the next call.

    ``mode``: "read" (an existing gallery; nothing is written), "write" (an existing gallery, to change)
    or "create" (enrolment: the gallery's tables are made in the database when missing; the database
    itself and the pgvector extension must exist or be creatable by the user). GalleryError, saying which,
    for a server that cannot be reached, a refused password, a missing database, a database without a
    gallery (read, write) or with a gallery of another schema version."""

    def __init__(self, location: str, *, mode: GalleryMode = "read") -> None:
        if mode not in ("read", "write", "create"):
            raise ValueError(f"mode must be 'read', 'write' or 'create', not {mode!r}")
        self._url, self.mode = str(location), mode
        self.location = public_location(self._url)
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[int, dict]] = {}  # model version -> (generation, identity)
        self._db = None
        self._closed = False
        self._connect()

    # ------------------------------------------------------------------------------------------ opening
    def _connect(self) -> None:
        psycopg = _psycopg()
        try:
            params = psycopg.conninfo.conninfo_to_dict(self._url)
        except psycopg.ProgrammingError as exc:
            raise GalleryError(f"{self.location}: not a PostgreSQL location ({exc})") from None
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "forensic-face")
        try:
            db = psycopg.connect(**params, autocommit=True)
        except psycopg.OperationalError as exc:
            raise self._connect_error(exc, params) from None
        try:
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        self._cache.clear()

    def _connect_error(self, exc: Exception, params: dict) -> GalleryError:
        text = str(exc).strip()
        where = f"{params.get('host') or 'the local server'}" + (f":{params['port']}" if params.get("port") else "")
        last = text.splitlines()[-1] if text else type(exc).__name__
        if "password authentication failed" in text or "no password supplied" in text:
            user = params.get("user") or "the default user"
            return GalleryError(f"{self.location}: the server refused the password of {user} ({last}); give it "
                                "with PGPASSWORD or in ~/.pgpass, never in the location")
        if "does not exist" in text and "database" in text:
            return GalleryError(f"{self.location}: the server has no such database ({last}); ask its "
                                "administrator to create it")
        return GalleryError(f"{self.location}: cannot reach the gallery server at {where} ({' '.join(text.split())}); "
                            "check that it is running and reachable from here")

    def _prepare(self, db) -> None:
        """Check (and in create or write mode migrate) the gallery's tables on a new connection."""
        psycopg = _psycopg()
        try:
            db.execute("SET search_path TO forensic_face, public")
            with db.transaction():
                if self.mode != "read":
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                version = self._schema_version(db)
                if version < SCHEMA_VERSION and self.mode != "read":
                    self._migrate(db, version)
                elif version < SCHEMA_VERSION:
                    raise GalleryError(f"{self.location}: the gallery's tables are of schema {version}; open it once "
                                       f"for enrolment to bring them to {SCHEMA_VERSION}")
            _Vectors.register(db)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise GalleryError(f"{self.location}: not allowed to {'create' if self.mode == 'create' else 'read'} the "
                               f"gallery's tables ({exc}); ask the database's administrator for the rights") from None
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _schema_version(self, db) -> int:
        """The gallery's schema version: 0 when the database has none (GalleryError for a newer one, and for
        no gallery unless creating)."""
        if db.execute("SELECT to_regclass('forensic_face.schema_version')").fetchone()[0] is None:
            if self.mode != "create":
                raise GalleryError(f"{self.location}: no gallery in this database (no forensic_face tables); create "
                                   f"one with {enrol_command(self.location)}")
            return 0
        version = db.execute("SELECT max(version) FROM forensic_face.schema_version").fetchone()[0] or 0
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.location}: gallery schema {version} is not supported (this version reads "
                               f"{SCHEMA_VERSION}); use the version of forensic-face that made it")
        return version

    def _migrate(self, db, version: int) -> None:
        if version == 0:
            try:
                with db.transaction():
                    db.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except _psycopg().Error as exc:
                raise GalleryError(f"{self.location}: the pgvector extension is not installed in this database and "
                                   f"cannot be installed by this user ({' '.join(str(exc).split())}); ask the "
                                   "administrator to run CREATE EXTENSION vector") from None
            db.execute("CREATE SCHEMA IF NOT EXISTS forensic_face")
            db.execute("CREATE TABLE forensic_face.schema_version (version integer PRIMARY KEY, "
                       "applied timestamptz NOT NULL DEFAULT now())")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (%s)", (target,))
            log.info("%s: gallery tables brought to schema %d", self.location, target)
        db.execute("INSERT INTO meta VALUES ('created', %s) ON CONFLICT DO NOTHING", (datetime.now(UTC).isoformat(),))

    def _error(self, exc: Exception) -> GalleryError:
        psycopg = _psycopg()
        text = " ".join(str(exc).split())
        if isinstance(exc, psycopg.OperationalError) or getattr(self._db, "broken", False):
            return GalleryError(f"{self.location}: lost the connection to the gallery server ({text}); the step "
                                "under way was not completed; try again when the server is back")
        return GalleryError(f"{self.location}: the gallery database refused a request ({text})")

    @contextmanager
    def _session(self, write: bool = False) -> Iterator:
        """The connection, in one transaction (a write one raises the generation first); psycopg errors
        become GalleryError. A broken connection is reopened first."""
        psycopg = _psycopg()
        with self._lock:
            if write:
                self.require_writable("changing the gallery")
            if self._closed:
                raise GalleryError(f"{self.location}: the gallery was closed; open it again")
            if self._db is None or self._db.closed or self._db.broken:
                self._connect()
            try:
                with self._db.transaction():
                    if write:
                        self._db.execute("UPDATE state SET generation = generation + 1")
                    yield self._db
            except psycopg.Error as exc:
                raise self._error(exc) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()

    def __enter__(self) -> PostgresGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require_writable(self, what: str) -> None:
        if self.mode == "read":
            raise GalleryError(f"{self.location}: opened for reading only; {what} needs the gallery opened with "
                               "open_gallery(location, mode='create') (or mode='write')")

    # ------------------------------------------------------------------------------------------ info
    def info(self) -> dict:
        with self._session() as db:
            people = db.execute("SELECT count(*) FROM people").fetchone()[0]
            images = dict(db.execute("SELECT status, count(*) FROM images GROUP BY status ORDER BY status").fetchall())
            models = dict(db.execute("SELECT model_version, count(*) FROM embeddings GROUP BY model_version "
                                     "ORDER BY model_version").fetchall())
            size = db.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN "
                              "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'forensic_face' AND "
                              "c.relkind = 'r'").fetchone()[0]
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())  # a few rows
        return {"path": self._server()["path"], "people": people, "images": sum(images.values()),
                "images_by_status": images, "embeddings_by_model": models,
                "arithmetic_by_model": {v: arithmetic_of(v, meta) for v in models}, "size_bytes": int(size)}

    def _server(self) -> dict:
        """Where the gallery is, without credentials: ``path`` (a libpq URL), ``server``, ``database``."""
        info = self._db.info
        host, port, database = info.host, info.port, info.dbname
        if host.startswith("/"):  # a Unix socket's folder
            path = f"postgresql:///{quote(database, safe='')}?host={quote(host, safe='/')}&port={port}"
        else:
            path = f"postgresql://{host if ':' not in host else f'[{host}]'}:{port}/{quote(database, safe='')}"
        return {"path": path, "server": f"{host}:{port}", "database": database}

    def no_face_images(self) -> list[str]:
        with self._session() as db:
            rows = db.execute("SELECT path FROM images WHERE status != 'ok' ORDER BY path COLLATE \"C\"").fetchall()
        return [r[0] for r in rows]

    def identity(self, model_version: str) -> dict:
        with self._session() as db:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return dict(self._identity(db, model_version)[0])

    def _identity(self, db, model_version: str) -> tuple[dict, list[dict]]:
        """(identity, the HNSW indexes of ``model_version``: name, dimension and what :func:`_described` says,
        the prefix indexes first, shortest first) in the transaction's snapshot; read once per generation of
        the gallery."""
        generation = db.execute("SELECT generation FROM state").fetchone()[0]
        cached = self._cache.get(model_version)
        if cached is None or cached[0] != generation:
            self._cache[model_version] = (generation, *self._read_identity(db, model_version))
        return self._cache[model_version][1], self._cache[model_version][2]

    def _read_identity(self, db, model_version: str) -> tuple[dict, dict | None]:
        embeddings, people = db.execute("SELECT count(*), count(DISTINCT person_id) FROM embeddings "
                                        "WHERE model_version = %s", (model_version,)).fetchone()
        enrolled = db.execute("SELECT count(*) FROM people").fetchone()[0]
        created = db.execute("SELECT value FROM meta WHERE key = 'created'").fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta WHERE starts_with(key, %s)",
                               (arithmetic_key(model_version, ""),)).fetchall())
        rows = db.execute(  # what the indexes hold, from the catalogue; an index dropped there is not used
            "SELECT s.index_name, s.dim, s.m, s.ef_construction, s.ef_search, t.typname, (SELECT vector_dims(vector) "
            "FROM embeddings WHERE model_version = s.model_version LIMIT 1) FROM search_index s "
            "JOIN pg_index x ON x.indexrelid = to_regclass(s.index_name) JOIN pg_opclass o ON o.oid = x.indclass[0] "
            "JOIN pg_type t ON t.oid = o.opcintype WHERE s.model_version = %s ORDER BY s.dim", (model_version,)
        ).fetchall()
        indexes = [{"name": r[0], "dim": r[1], **_described(r)} for r in rows if r[6] is not None and r[1] <= r[6]]
        if not indexes:
            search = {"mode": "exact"}
        elif len(indexes) == 1:
            search = _searched(indexes[0])
        else:  # which one a search had is in its result
            search = {"mode": "hnsw", "indexes": [_searched(i) for i in indexes]}
        with db.cursor(name="ff_content") as cur:  # streamed: a million lines need not be held at once
            cur.itersize = 20_000
            cur.execute("SELECT line FROM (SELECT p.name_json || E'\\t' || i.sha256 || E'\\t' || e.vector_sha256 "
                        "|| E'\\n' AS line FROM embeddings e JOIN images i ON i.id = e.image_id JOIN people p "
                        "ON p.id = e.person_id WHERE e.model_version = %s) l ORDER BY line COLLATE \"C\"",
                        (model_version,))
            checksum = lines_sha256(row[0] for row in cur)
        identity = {**self._server(), "schema": SCHEMA_VERSION, "created": created[0] if created else None,
                    "model_version": model_version, "people": people, "people_enrolled": enrolled,
                    "embeddings": embeddings, "content_sha256": checksum,
                    "arithmetic": arithmetic_of(model_version, meta), "search": search}
        return identity, indexes

    # ------------------------------------------------------------------------------------------ search
    def rank(self, model_version: str, query: np.ndarray, people: int) -> Ranking:
        """Searchable.rank, in the database: on the model version's HNSW index that serves ``query``
        (:func:`serving_index`), exactly where none does; the ranking's identity records which."""
        q = np.asarray(query, np.float32).ravel()
        with self._session() as db:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            identity, indexes = self._identity(db, model_version)
            index = serving_index(indexes, q)
            if len(indexes) > 1 or (indexes and index is None):
                identity = {**identity, "search": {"mode": "exact"} if index is None else _searched(index)}
            total, embeddings = identity["people"], identity["embeddings"]
            held = [] if embeddings else db.execute("SELECT model_version, count(*) FROM embeddings GROUP BY "
                                                    "model_version ORDER BY model_version").fetchall()
            if not embeddings:
                return Ranking(np.zeros(0), [], np.zeros(0, np.int64), [], 0, 0, identity, held)
            if index is not None:
                rows, others = self._rank_hnsw(db, model_version, q, index), None
            elif total <= FULL_RANK_PEOPLE:
                rows, others = self._rank_all(db, model_version, q), None
            else:
                rows, others = self._rank_best(db, model_version, q, max(people, RANKED_PEOPLE))
        best = np.array([r[1] for r in rows], np.float32)  # float32 sums, as in memory
        return Ranking(best, [r[0] for r in rows], np.array([r[2] for r in rows], np.int64), [r[3] for r in rows],
                       total, embeddings, identity, held, others)

    def _rank_all(self, db, model_version: str, q: np.ndarray) -> list[tuple]:
        return db.execute(
            "SELECT p.name, b.best[1], (-b.best[2])::bigint, i.path FROM (SELECT person_id, "
            "max(ARRAY[-(vector <#> %b), -image_id::float8]) AS best FROM embeddings WHERE model_version = %s "
            "GROUP BY person_id) b JOIN people p ON p.id = b.person_id JOIN images i ON i.id = (-b.best[2])::bigint",
            (q, model_version)).fetchall()

    def _rank_best(self, db, model_version: str, q: np.ndarray, people: int) -> tuple[list[tuple], Histogram]:
        """The ``people`` best people, and a histogram of the others' best similarities, in one scan."""
        self._rank_best_settings(db)
        rows = db.execute(self._rank_best_sql(), self._rank_best_params(model_version, q, people)).fetchall()
        width = 2.0 / SIMILARITY_BINS
        bins = np.array([r[4] for r in rows if r[0] is None], np.float64)
        counts = np.array([r[5] for r in rows if r[0] is None], np.float64)
        centres = -1.0 + (np.clip(bins, 1, SIMILARITY_BINS) - 0.5) * width  # beyond [-1, 1]: at the edge
        return [r[:4] for r in rows if r[0] is not None], Histogram(centres, counts, width)

    @staticmethod
    def _rank_best_settings(db) -> None:
        """The exact search's transaction groups by person the rows as the (model_version, person_id) index gives
        them, never in a hashed or sorted table: at millions of people PostgreSQL otherwise hashes, and a hashed or
        sorted table that outgrows ``work_mem`` goes to temporary files sized by the rows, embeddings and all (at 10M
        embeddings 31 GB a search, 46 s; in person order 15-26 s; at 1M the planner's own choice is that order:
        ``research/pg_exact_memory.py``, ``research/pg_bench/exact-plan-*.json``)."""
        db.execute("SELECT set_config('enable_hashagg', 'off', true), set_config('enable_sort', 'off', true)")

    @staticmethod
    def _rank_best_sql() -> str:
        """The SQL of :meth:`_rank_best` (its parameters: :meth:`_rank_best_params`)."""
        return ("WITH b AS MATERIALIZED (SELECT person_id, max(ARRAY[-(vector <#> %b), -image_id::float8]) AS best "
                "FROM embeddings WHERE model_version = %s GROUP BY person_id), "
                "t AS MATERIALIZED (SELECT person_id, best FROM b ORDER BY best DESC LIMIT %s) "
                "SELECT p.name, t.best[1], (-t.best[2])::bigint, i.path, NULL::integer, NULL::bigint FROM t "
                "JOIN people p ON p.id = t.person_id JOIN images i ON i.id = (-t.best[2])::bigint UNION ALL "
                "SELECT NULL, NULL, NULL, NULL, width_bucket(b.best[1], -1.0, 1.0, %s) AS bin, count(*) FROM b "
                "WHERE b.person_id NOT IN (SELECT person_id FROM t) GROUP BY bin")

    @staticmethod
    def _rank_best_params(model_version: str, q: np.ndarray, people: int) -> tuple:
        return q, model_version, people, SIMILARITY_BINS

    def _rank_hnsw(self, db, model_version: str, q: np.ndarray, index: dict) -> list[tuple]:
        """The people among the index's ``ef_search`` nearest embeddings, each with its best of them by the
        exact inner product (the index's order is by its own, perhaps half-precision, copies)."""
        self._hnsw_settings(db, index)
        return db.execute(self._hnsw_query(model_version, index), (q, q[:index["dim"]])).fetchall()

    @staticmethod
    def _hnsw_settings(db, index: dict) -> None:
        """The transaction's settings for a search on ``index``: its ef_search, and the index even where the
        planner would scan a small table."""
        db.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_seqscan', 'off', true), "
                   "set_config('enable_bitmapscan', 'off', true)", (str(int(index["ef_search"])),))

    @staticmethod
    def _hnsw_query(model_version: str, index: dict):
        """The SQL of a search on ``index`` (parameters: the query vector, and its first ``dim`` values: all of
        them, or the prefix the index holds)."""
        from psycopg import sql

        typed = sql.SQL("{}({})").format(sql.Identifier(index["vectors"]), sql.Literal(int(index["dim"])))
        return sql.SQL(
            "SELECT DISTINCT ON (r.person_id) p.name, -r.d, r.image_id, i.path FROM (SELECT person_id, image_id, "
            "vector <#> %b AS d FROM (SELECT person_id, image_id, vector FROM embeddings WHERE model_version = {v} "
            "ORDER BY {x}::{t} <#> %b::{t} LIMIT {k}) n) r JOIN people p ON p.id = r.person_id JOIN images i "
            "ON i.id = r.image_id ORDER BY r.person_id, r.d, r.image_id").format(
                t=typed, x=_indexed(index.get("prefix")), v=sql.Literal(model_version),
                k=sql.Literal(int(index["ef_search"])))

    def build_index(self, model_version: str, m: int = 24, ef_construction: int = 200, ef_search: int = 200,
                    vectors: str = "halfvec", prefix: int | None = None,
                    build_memory: str | None = None) -> IndexBuild:
        """Build (or rebuild) the HNSW index searches of ``model_version`` use from now on (inner product;
        ``m`` links per node, ``ef_construction`` candidates while building, ``ef_search`` while searching;
        ``vectors``, one of INDEX_VECTORS, what the index holds). ``prefix``: index only each embedding's first
        ``prefix`` values (a joined bundle's recogniser: its sharp probes' queries are 0 beyond them, and an index
        of the whole joined vector finds their nearest people badly); the candidates are still ranked by the
        inner product of the full vectors. A version may have one index of the whole embeddings and prefix
        indexes beside it; each query goes to the one that serves it (:func:`serving_index`); building replaces the
        index of the same length only. ``build_memory`` (e.g. ``"8GB"``): the memory the build's graph may take
        (``maintenance_work_mem``); by default the server's or session's setting, but at least BUILD_MEMORY_MIN.
        Returns what the build took, including whether its graph outgrew that memory."""
        from psycopg import sql

        self.require_writable("building a search index")
        if vectors not in INDEX_VECTORS:
            raise ValueError(f"vectors must be one of {', '.join(INDEX_VECTORS)}, not {vectors!r}")
        if build_memory is not None and not MEMORY_SIZE.fullmatch(build_memory):
            raise ValueError(f"build memory must be a whole number with kB, MB, GB or TB (e.g. 8GB), "
                             f"not {build_memory!r}")
        name = "embeddings_hnsw_" + hashlib.sha256(model_version.encode()).hexdigest()[:16]
        if prefix is not None:
            name += f"_p{int(prefix)}"
        with self._session(write=True) as db:
            dims = db.execute("SELECT DISTINCT vector_dims(vector) FROM embeddings WHERE model_version = %s",
                              (model_version,)).fetchall()
            if len(dims) != 1:
                raise GalleryError(f"{self.location}: no index built: model version {model_version} has "
                                   f"{'no embeddings' if not dims else 'embeddings of several lengths'}")
            if prefix is not None and not 0 < prefix < dims[0][0]:
                raise GalleryError(f"{self.location}: no index built: a prefix of {prefix} values of model version "
                                   f"{model_version}'s {dims[0][0]}-value embeddings")
            if db.execute("SELECT to_regtype(%s)", (vectors,)).fetchone()[0] is None:
                raise GalleryError(f"{self.location}: no index built: this server's pgvector has no {vectors} type "
                                   "(it came with pgvector 0.7); update the extension or index vector instead")
            if build_memory is None:  # never less than the server's or the session's own setting
                build_memory = db.execute(
                    "SELECT CASE WHEN pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes(%s) "
                    "THEN %s ELSE current_setting('maintenance_work_mem') END", (BUILD_MEMORY_MIN,) * 2).fetchone()[0]
            # the graph's size while it is built, and pgvector's notice when it outgrows it (a server set to send
            # clients warnings only would keep that notice back)
            db.execute("SELECT set_config('maintenance_work_mem', %s, true), "
                       "set_config('client_min_messages', 'notice', true)", (build_memory,))
            dim = dims[0][0] if prefix is None else int(prefix)
            for (old,) in db.execute("DELETE FROM search_index WHERE model_version = %s AND dim = %s "
                                     "RETURNING index_name", (model_version, dim)).fetchall():  # the one replaced
                db.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(old)))
            db.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
            spilled: list[int] = []

            def notice(diag) -> None:  # pgvector says so when the graph outgrows maintenance_work_mem
                found = _GRAPH_SPILLED.search(diag.message_primary or "")
                if found:
                    spilled.append(int(found.group(1)))

            t0 = time.perf_counter()
            db.add_notice_handler(notice)
            try:
                db.execute(sql.SQL("CREATE INDEX {n} ON embeddings USING hnsw (({x}::{t}({d})) {ops}) "
                                   "WITH (m = {m}, ef_construction = {efc}) WHERE model_version = {v}").format(
                    n=sql.Identifier(name), x=_indexed(prefix), t=sql.Identifier(vectors), d=sql.Literal(dim),
                    ops=sql.Identifier(f"{vectors}_ip_ops"), m=sql.Literal(int(m)),
                    efc=sql.Literal(int(ef_construction)), v=sql.Literal(model_version)))
            finally:
                db.remove_notice_handler(notice)
            seconds = time.perf_counter() - t0
            db.execute("INSERT INTO search_index (model_version, index_name, dim, m, ef_construction, ef_search) "
                       "VALUES (%s, %s, %s, %s, %s, %s)", (model_version, name, dim, m, ef_construction, ef_search))
        build = IndexBuild(name, build_memory, seconds, min(spilled) if spilled else None)
        if build.spilled_after is not None:
            log.warning("%s: %s", self.location, build.advice())
        return build

    def drop_index(self, model_version: str) -> None:
        """Search ``model_version`` exactly again (its HNSW indexes, if any, are dropped)."""
        from psycopg import sql

        with self._session(write=True) as db:
            for (name,) in db.execute("DELETE FROM search_index WHERE model_version = %s RETURNING index_name",
                                      (model_version,)).fetchall():
                db.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))

    # ------------------------------------------------------------------------------------------ people, images
    def person_id(self, name: str) -> int:
        with self._session() as db:
            row = db.execute("SELECT id FROM people WHERE name = %s", (name,)).fetchone()
        if row is not None:
            return row[0]
        self.require_writable("enrolment")
        with self._session(write=True) as db:
            db.execute("INSERT INTO people (name, name_json) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                       (name, json.dumps(name)))
            return db.execute("SELECT id FROM people WHERE name = %s", (name,)).fetchone()[0]

    def find_image(self, person_id: int, sha256: str) -> StoredImage | None:
        with self._session() as db:
            row = db.execute("SELECT id, status, message FROM images WHERE person_id = %s AND sha256 = %s",
                             (person_id, sha256)).fetchone()
        return StoredImage(*row) if row is not None else None

    def has_embedding(self, image_id: int, model_version: str) -> bool:
        with self._session() as db:
            return db.execute("SELECT 1 FROM embeddings WHERE image_id = %s AND model_version = %s",
                              (image_id, model_version)).fetchone() is not None

    def add_image(self, person_id: int, path: str, sha256: str, status: str, message: str,
                  face_px: float | None, method: str | None) -> int:
        with self._session(write=True) as db:
            db.execute("INSERT INTO images (person_id, path, sha256, status, message, face_px, method) VALUES "
                       "(%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (person_id, sha256) DO NOTHING",
                       (person_id, path, sha256, status, message, face_px, method))
            return db.execute("SELECT id FROM images WHERE person_id = %s AND sha256 = %s",
                              (person_id, sha256)).fetchone()[0]

    def images_to_reembed(self, model_version: str) -> list[tuple[int, str]]:
        with self._session() as db:
            return db.execute("SELECT id, path FROM images i WHERE status = 'ok' AND NOT EXISTS (SELECT 1 FROM "
                              "embeddings e WHERE e.image_id = i.id AND e.model_version = %s) ORDER BY id",
                              (model_version,)).fetchall()

    def images(self) -> Iterator[ImageRecord]:
        yield from self._batches("SELECT i.id, p.name, i.path, i.sha256, i.status, i.message, i.face_px, i.method "
                                 "FROM images i JOIN people p ON p.id = i.person_id WHERE i.id > %s ORDER BY i.id",
                                 (), lambda row: ImageRecord(*row))

    def embeddings(self, model_version: str) -> Iterator[tuple[int, np.ndarray]]:
        yield from self._batches("SELECT image_id, vector FROM embeddings WHERE model_version = %s AND image_id > %s "
                                 "ORDER BY image_id", (model_version,), tuple, binary=True)

    def _batches(self, query: str, args: tuple, convert, size: int = 5000, binary: bool = False) -> Iterator:
        """The rows of ``query`` (keyed by the id it orders by, its last parameter) ``size`` at a time."""
        last = 0
        while True:
            with self._session() as db:
                rows = db.execute(f"{query} LIMIT {size}", (*args, last), binary=binary).fetchall()
            yield from (convert(row) for row in rows)
            if len(rows) < size:
                return
            last = rows[-1][0]

    # ------------------------------------------------------------------------------------------ embeddings
    def store_embeddings(self, model_version: str, embeddings: Sequence[tuple[int, np.ndarray, bytes]],
                         arithmetic: Sequence[str] = ()) -> None:
        rows = [(int(iid), np.asarray(vector, np.float32).ravel(), png) for iid, vector, png in embeddings]
        with self._session(write=True) as db, db.cursor() as cur:
            cur.executemany("INSERT INTO meta VALUES (%s, '') ON CONFLICT DO NOTHING",
                            [(arithmetic_key(model_version, a),) for a in arithmetic])
            cur.executemany(
                "INSERT INTO embeddings (image_id, model_version, person_id, vector, vector_sha256) SELECT %s, %s, "
                "person_id, %b, %s FROM images WHERE id = %s ON CONFLICT (image_id, model_version) DO UPDATE SET "
                "vector = excluded.vector, vector_sha256 = excluded.vector_sha256",
                [(iid, model_version, v, hashlib.sha256(v.tobytes()).hexdigest(), iid) for iid, v, _ in rows])
            cur.executemany("INSERT INTO thumbs VALUES (%s, %s) ON CONFLICT (image_id) DO UPDATE SET "
                            "png = excluded.png",
                            [(iid, png) for iid, _, png in rows if png is not None])

    def thumbnail(self, image_id: int) -> bytes | None:
        with self._session() as db:
            row = db.execute("SELECT png FROM thumbs WHERE image_id = %s", (int(image_id),)).fetchone()
        return bytes(row[0]) if row else None

    def add_embeddings(self, person: str, vectors: np.ndarray, model_version: str,
                       paths: Iterable[str] | None = None) -> None:
        self.require_writable("adding embeddings")
        paths = list(paths) if paths is not None else [f"<{person}:{i}>" for i in range(len(vectors))]
        if len(paths) != len(vectors):
            raise ValueError(f"{len(paths)} paths for {len(vectors)} vectors")
        self.bulk_add(model_version, [person], np.zeros(len(vectors), np.int64), vectors, paths)

    def bulk_add(self, model_version: str, names: Sequence[str], person_idx: np.ndarray, vectors: np.ndarray,
                 paths: Sequence[str]) -> None:
        """Store precomputed embeddings in one transaction by COPY: row ``k`` is ``vectors[k]`` of person
        ``names[person_idx[k]]`` (added when new), an image at ``paths[k]`` (its SHA-256 that of the path)."""
        vectors = np.asarray(vectors, np.float32)
        with self._session(write=True) as db, db.cursor() as cur:
            cur.executemany("INSERT INTO people (name, name_json) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                            [(n, json.dumps(n)) for n in names])
            ids = dict(cur.execute("SELECT name, id FROM people WHERE name = ANY(%s)", (list(names),)).fetchall())
            owner = np.array([ids[n] for n in names], np.int64)[np.asarray(person_idx)]
            first = cur.execute("SELECT nextval('images_id_seq') FROM generate_series(1, %s)",
                                (len(vectors),)).fetchall()
            image_ids = [r[0] for r in first]
            with cur.copy("COPY images (id, person_id, path, sha256, status) FROM STDIN") as copy:
                for iid, pid, p in zip(image_ids, owner.tolist(), paths, strict=True):
                    copy.write_row((iid, pid, p, hashlib.sha256(p.encode()).hexdigest(), "ok"))
            with cur.copy("COPY embeddings (image_id, model_version, person_id, vector, vector_sha256) "
                          "FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "int8", "vector", "text"])
                for iid, pid, v in zip(image_ids, owner.tolist(), vectors, strict=True):
                    copy.write_row((iid, model_version, pid, v, hashlib.sha256(v.tobytes()).hexdigest()))
