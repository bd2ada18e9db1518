"""The gallery storage protocol: a second backend (dicts and lists, no SQLite) runs enrolment, re-embedding
and search through it with the same results as the SQLite gallery, and open_gallery refuses what no
backend opens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from forensic_face.engine.search import EmbeddingIndex, Snapshot, search_gallery
from forensic_face.models.calibration import MatchCalibration
from forensic_face.services.enrolment import enroll_folder, reembed
from forensic_face.store.gallery import GalleryError, GalleryStore, describe_info, open_gallery
from forensic_face.store.gallery import postgres as pg_module
from forensic_face.store.gallery.protocol import ImageRecord, IndexedStore, StoredImage, content_sha256


class MemoryGallery(IndexedStore):
    """A GalleryStore held in dicts and lists, for one process."""

    def __init__(self, location: str = "memory:test", mode: str = "create") -> None:
        self.location, self.mode = location, mode
        self.people: dict[str, int] = {}  # name -> id (1, 2, ...)
        self.image_rows: list[dict] = []  # image id i is image_rows[i - 1]
        self.vectors: dict[tuple[int, str], bytes] = {}  # (image id, model version) -> float32 bytes
        self.thumbs: dict[int, bytes] = {}
        self.arithmetic: set[tuple[str, str]] = set()  # (model version, arithmetic its embeddings were made in)

    def require_writable(self, what: str) -> None:
        if self.mode == "read":
            raise GalleryError(f"{self.location}: opened for reading only; {what} needs it opened for writing")

    def close(self) -> None:
        pass

    def __enter__(self) -> MemoryGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict:
        statuses = [im["status"] for im in self.image_rows]
        models = [version for _, version in self.vectors]
        return {"path": self.location, "people": len(self.people), "images": len(self.image_rows),
                "images_by_status": {s: statuses.count(s) for s in sorted(set(statuses))},
                "embeddings_by_model": {v: models.count(v) for v in sorted(set(models))},
                "arithmetic_by_model": {v: sorted(a for w, a in self.arithmetic if w == v)
                                        for v in sorted(set(models))},
                "size_bytes": 0}

    def no_face_images(self) -> list[str]:
        return sorted(im["path"] for im in self.image_rows if im["status"] != "ok")

    def snapshot(self, model_version: str) -> Snapshot:
        rows = [(iid, vec) for (iid, version), vec in self.vectors.items() if version == model_version]
        names = list(self.people)  # in id order
        owners = [self.image_rows[iid - 1]["person_id"] for iid, _ in rows]
        vectors = np.array([np.frombuffer(v, np.float32) for _, v in rows]).reshape(len(rows), -1) if rows else \
            np.zeros((0, 128), np.float32)
        index = EmbeddingIndex(vectors, np.array(owners, np.int64) - 1, names, np.array([i for i, _ in rows], np.int64),
                               [self.image_rows[iid - 1]["path"] for iid, _ in rows])
        identity = {"path": self.location, "schema": 1, "created": None, "model_version": model_version,
                    "people": len(set(owners)), "people_enrolled": len(names), "embeddings": len(rows),
                    "content_sha256": content_sha256((names[self.image_rows[iid - 1]["person_id"] - 1],
                                                      self.image_rows[iid - 1]["sha256"], vec) for iid, vec in rows),
                    "arithmetic": sorted(a for v, a in self.arithmetic if v == model_version),
                    "search": {"mode": "exact"}}
        versions = sorted({version for _, version in self.vectors})
        held = [] if rows else [(v, sum(1 for _, w in self.vectors if w == v)) for v in versions]
        return Snapshot(index, identity, held)

    def person_id(self, name: str) -> int:
        if name not in self.people:
            self.require_writable("enrolment")
            self.people[name] = len(self.people) + 1
        return self.people[name]

    def find_image(self, person_id: int, sha256: str) -> StoredImage | None:
        for iid, im in enumerate(self.image_rows, 1):
            if (im["person_id"], im["sha256"]) == (person_id, sha256):
                return StoredImage(iid, im["status"], im["message"])
        return None

    def has_embedding(self, image_id: int, model_version: str) -> bool:
        return (image_id, model_version) in self.vectors

    def add_image(self, person_id: int, path: str, sha256: str, status: str, message: str,
                  face_px: float | None, method: str | None) -> int:
        found = self.find_image(person_id, sha256)
        if found is not None:
            return found.id
        self.image_rows.append({"person_id": person_id, "path": path, "sha256": sha256, "status": status,
                            "message": message, "face_px": face_px, "method": method})
        return len(self.image_rows)

    def store_embeddings(self, model_version: str, embeddings: Sequence[tuple[int, np.ndarray, bytes]],
                         arithmetic: Sequence[str] = ()) -> None:
        self.arithmetic |= {(model_version, a) for a in arithmetic}
        for iid, vector, png in embeddings:
            self.vectors[iid, model_version] = vector.astype(np.float32).tobytes()
            self.thumbs[iid] = png

    def thumbnail(self, image_id: int) -> bytes | None:
        return self.thumbs.get(int(image_id))

    def add_embeddings(self, person: str, vectors: np.ndarray, model_version: str,
                       paths: Iterable[str] | None = None) -> None:
        import hashlib

        self.require_writable("adding embeddings")
        paths = list(paths) if paths is not None else [f"<{person}:{i}>" for i in range(len(vectors))]
        pid = self.person_id(person)
        for p, v in zip(paths, vectors, strict=True):
            self.image_rows.append({"person_id": pid, "path": p, "sha256": hashlib.sha256(p.encode()).hexdigest(),
                                "status": "ok", "message": "", "face_px": None, "method": None})
            self.vectors[len(self.image_rows), model_version] = np.asarray(v, np.float32).tobytes()

    def images_to_reembed(self, model_version: str) -> list[tuple[int, str]]:
        return [(iid, im["path"]) for iid, im in enumerate(self.image_rows, 1)
                if im["status"] == "ok" and (iid, model_version) not in self.vectors]

    def images(self) -> Iterator[ImageRecord]:
        names = list(self.people)
        for iid, im in enumerate(self.image_rows, 1):
            yield ImageRecord(iid, names[im["person_id"] - 1], im["path"], im["sha256"], im["status"], im["message"],
                              im["face_px"], im["method"])

    def embeddings(self, model_version: str) -> Iterator[tuple[int, np.ndarray]]:
        for (iid, version), vec in sorted(self.vectors.items()):
            if version == model_version:
                yield iid, np.frombuffer(vec, np.float32).copy()


def _other_engine(folder: Path):
    import torch

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig

    torch.manual_seed(2)
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    save_bundle(folder, FusionAutoencoder(AEConfig(size=32, width=4)), Recogniser(RecogniserConfig(size=32, width=4)),
                cal, {"date": "test-other"})
    return FaceEngine(folder, device="cpu")


def _searches(store: GalleryStore, engine, probes: np.ndarray) -> list[dict]:
    """Each probe's search as saved, less its time and the store's location (path, server, database) and
    creation date."""
    out = []
    for q in probes:
        saved = search_gallery(store, q, engine.calibration, engine.info.version, 90.0, top_k=3,
                               probe_sharpness=200.0).as_dict()
        gallery = {k: v for k, v in saved.pop("gallery").items()
                   if k not in ("path", "created", "server", "database", "schema")}  # each backend's own
        out.append({**{k: v for k, v in saved.items() if k != "seconds"}, "gallery": gallery})
    return out


def _probes(folder: Path, engine, detector) -> np.ndarray:
    """Embeddings of three enrolled images (as enrolment makes them) and of two strangers."""
    from forensic_face.engine.probe import ProbePath
    from forensic_face.vision.frames import load_image

    path = ProbePath(engine, detector)
    faces = [path.face(load_image(folder / name).image)
             for name in ("Person_0/img_0.jpg", "Person_1/img_1.jpg", "Person_2/img_0.jpg")]
    known = np.vstack([path.embed_faces([face]) for face in faces])  # one at a time, as enrolment's workers do
    strangers = np.random.default_rng(4).normal(size=(2, known.shape[1])).astype(np.float32)
    return np.vstack([known, strangers / np.linalg.norm(strangers, axis=1, keepdims=True)])


def _run(store: GalleryStore, folder: Path, engine, other, detector, probes: np.ndarray) -> dict:
    """Everything enrolment, re-embedding and search give with this store, less what names the store."""
    first = enroll_folder(store, folder, engine, detector).as_dict()
    again = enroll_folder(store, folder, engine, detector).as_dict()
    searches = _searches(store, engine, probes)
    reembedded = reembed(store, other, detector)
    info = {k: v for k, v in store.info().items() if k not in ("path", "size_bytes")}
    found = [c["image_id"] for s in searches for c in s["candidates"]]
    return {"enrol": [{k: v for k, v in rep.items() if k not in ("seconds", "faces_per_s")} for rep in (first, again)],
            "searches": searches, "reembedded": reembedded, "info": info,
            "no_face": store.no_face_images(), "thumbnails": [store.thumbnail(i) for i in found],
            "other_model": _searches(store, other, probes[3:])}


def test_a_second_backend_gives_what_the_sqlite_gallery_gives(tmp_path: Path, tiny_engine, detector,
                                                              people_folder: Path) -> None:
    other = _other_engine(tmp_path / "other-models")
    probes = _probes(people_folder, tiny_engine, detector)
    memory = MemoryGallery()
    assert isinstance(memory, GalleryStore)
    want = _run(memory, people_folder, tiny_engine, other, detector, probes)
    with open_gallery(tmp_path / "g.db", mode="create") as sqlite:
        assert isinstance(sqlite, GalleryStore)
        got = _run(sqlite, people_folder, tiny_engine, other, detector, probes)
    assert got == want
    assert want["enrol"][0]["enrolled"] == 6 and want["enrol"][1]["already_enrolled"] == 8
    assert want["reembedded"] == 6 and want["info"]["embeddings_by_model"] == {tiny_engine.info.version: 6,
                                                                              other.info.version: 6}
    assert [s["candidates"][0]["person"] for s in want["searches"][:3]] == ["Person_0", "Person_1", "Person_2"]
    assert all(s["candidates"][0]["similarity"] == pytest.approx(1.0, abs=1e-4) for s in want["searches"][:3])
    assert all(t is not None and t.startswith(b"\x89PNG") for t in want["thumbnails"])
    assert want["searches"][0]["gallery"]["arithmetic"] == ["float32"]  # the suite's engines run in float32


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_arithmetic_of_each_enrolment_is_kept_and_two_writers_keep_both(tmp_path: Path, backend: str,
                                                                            request: pytest.FixtureRequest) -> None:
    """Embeddings of one model made in float32 by one process and in bfloat16 by another: the gallery's identity
    names both, whichever wrote last; the note leaves the content checksum alone and is per model version."""
    where = str(tmp_path / "g.db") if backend == "sqlite" else request.getfixturevalue("postgres").database()
    vectors = np.eye(3, 8, dtype=np.float32)
    with open_gallery(where, mode="create") as first, open_gallery(where, mode="create") as second:
        ids = [first.add_image(first.person_id(f"P{k}"), f"/p{k}.png", f"{k:064x}", "ok", "", 50.0, "dlib-hog")
               for k in range(3)]
        first.store_embeddings("v1", [(ids[0], vectors[0], None)], ["float32"])
        before = second.identity("v1")
        assert before["arithmetic"] == ["float32"]
        second.store_embeddings("v1", [(ids[1], vectors[1], None)], ["bfloat16"])
        first.store_embeddings("v1", [(ids[2], vectors[2], None)], ["float32"])
        second.store_embeddings("v2", [(ids[2], vectors[2], None)])
        for store in (first, second):
            assert store.identity("v1")["arithmetic"] == ["bfloat16", "float32"]
            assert store.identity("v2")["arithmetic"] == []
            assert store.info()["arithmetic_by_model"] == {"v1": ["bfloat16", "float32"], "v2": []}
            lines = describe_info(store.info())
            assert lines[1:] == ["  embeddings of model v1: 3 (made in bfloat16 and float32 arithmetic)",
                                 "  embeddings of model v2: 1 (arithmetic not noted)"]
    with open_gallery(where, mode="create") as again:
        again.add_embeddings("Q", vectors[:1], "v3")
        plain = again.identity("v3")["content_sha256"]
    with open_gallery(tmp_path / "h.db", mode="create") as other:
        ids = [other.add_image(other.person_id("Q"), "<Q:0>", hashlib.sha256(b"<Q:0>").hexdigest(), "ok", "",
                               None, None)]
        other.store_embeddings("v3", [(ids[0], vectors[0], None)], ["bfloat16"])
        assert other.identity("v3")["content_sha256"] == plain  # the note is not part of the content


def _assert_same(got, want, where: str = "") -> None:
    """``got`` equals ``want`` (nested dicts and lists), numbers to float rounding: PostgreSQL sums the inner
    product in its own order (DevTest: similarities within 1.2e-7). The distance sqrt(2 - 2 s) is left out: a
    function of the similarity (compared), it magnifies rounding near s = 1 (1 - 6e-8 gives 3.5e-4). A figure saved
    to 4 decimals (a candidate's similarity and probabilities) may differ by one in its last decimal where the
    unrounded value lies on a rounding boundary (0.33175 ± 1e-7 saved as 0.3318 or 0.3317)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            if key != "distance":
                _assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        saved_to_4 = round(got, 4) == got and round(want, 4) == want
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6) or (saved_to_4 and abs(got - want) < 1.5e-4), where
    else:
        assert got == want, where


def test_the_postgresql_gallery_gives_what_the_other_backends_give(tmp_path: Path, tiny_engine, detector,
                                                                   people_folder: Path, postgres) -> None:
    """Enrolment, re-embedding and search on a real PostgreSQL server: the same reports, candidates,
    probabilities, identity (content checksum included) and thumbnails as the in-memory backend's."""
    other = _other_engine(tmp_path / "other-models")
    probes = _probes(people_folder, tiny_engine, detector)
    want = _run(MemoryGallery(), people_folder, tiny_engine, other, detector, probes)
    with open_gallery(postgres.database(), mode="create") as pg:
        assert isinstance(pg, GalleryStore)
        got = _run(pg, people_folder, tiny_engine, other, detector, probes)
    _assert_same(got, want)
    assert got["searches"][0]["gallery"]["search"] == {"mode": "exact"}  # PostgreSQL says it searched exactly
    with open_gallery(postgres.database(), mode="create") as pg:
        assert pg.identity("v")["schema"] == pg_module.SCHEMA_VERSION


def test_search_refusals_come_from_the_search_whatever_the_backend(tmp_path: Path) -> None:
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    store = MemoryGallery("memory:old")
    store.add_embeddings("A", np.eye(4, dtype=np.float32)[:2], "v1")
    assert search_gallery(MemoryGallery("memory:empty"), np.eye(4)[0], cal, "v2", 80.0).verdict == "empty gallery"
    with pytest.raises(GalleryError, match=r"memory:old: the gallery's 1 people were embedded with model "
                                           r"version\(s\) v1 \(2 embeddings\), not with v2"):
        search_gallery(store, np.eye(4)[0], cal, "v2", 80.0)
    store.mode = "read"
    with pytest.raises(GalleryError, match="opened for reading only; enrolment"):
        enroll_folder(store, tmp_path, None, None)


def test_open_gallery_refuses_what_no_backend_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for location in ("mysql://host/gallery", "memory://people", "HTTPS://example.org/gallery.db"):
        with pytest.raises(GalleryError, match=r"no gallery is kept at \w+:// locations"):
            open_gallery(location, mode="create")
    assert list(tmp_path.iterdir()) == []  # nothing was made for them
    with pytest.raises(ValueError, match="mode must be"):
        open_gallery(tmp_path / "g.db", mode="append")
    with pytest.raises(GalleryError, match="no gallery database at"):
        open_gallery(tmp_path / "g.db")
    assert list(tmp_path.iterdir()) == []
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        assert g.location == str(tmp_path / "g.db") and g.info()["people"] == 0
