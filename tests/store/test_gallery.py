"""The gallery database: enrolment (resumable, faceless and hostile images listed, two processes at once),
vectorised search, model change, opening (read-only, create only by enrolment, other files refused untouched)
and the identity a search records for the chain of custody."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.core.records import SearchOutcome
from forensic_face.engine.search import search_gallery
from forensic_face.models.calibration import MatchCalibration
from forensic_face.services.enrolment import enroll_folder, reembed
from forensic_face.store.gallery import GalleryError, open_gallery

CAL = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)


@pytest.fixture(scope="module")
def engine(tiny_engine):
    return tiny_engine


def test_enrol_is_resumable_and_lists_faceless_images(tmp_path: Path, engine, detector, people_folder: Path) -> None:
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        rep = enroll_folder(g, people_folder, engine, detector)
        assert rep.people == 3 and rep.images_seen == 8 and rep.enrolled == 6
        assert [Path(p).name for p in rep.no_face] == ["no_face.png"]
        assert [Path(p).name for p in rep.unreadable] == ["broken.jpg"]
        again = enroll_folder(g, people_folder, engine, detector)
        assert again.enrolled == 0 and again.already_enrolled == 8
        info = g.info()
        assert info["people"] == 3 and info["embeddings_by_model"] == {engine.info.version: 6}
        assert {Path(p).name for p in g.no_face_images()} == {"no_face.png", "broken.jpg"}


def _contents(g, version: str) -> tuple:
    """What a gallery holds: its images (person, file, status, reason) in order, the embeddings' checksum, the
    thumbnails."""
    images = [(r.person, Path(r.path).name, r.status, r.message) for r in g.images()]
    thumbs = [g.thumbnail(r.id) for r in g.images() if r.status == "ok"]
    return images, g.identity(version)["content_sha256"], thumbs


def test_enrolment_on_several_workers_stores_what_one_worker_stores(tmp_path: Path, engine, detector,
                                                                     people_folder: Path) -> None:
    reports, contents = [], []
    for workers in (1, 3):
        with open_gallery(tmp_path / f"g{workers}.db", mode="create") as g:
            rep = enroll_folder(g, people_folder, engine, detector, workers=workers)
            assert rep.workers == workers
            reports.append({k: v for k, v in rep.as_dict().items() if k not in ("seconds", "faces_per_s", "workers")})
            contents.append(_contents(g, engine.info.version))
    assert reports[0] == reports[1] and reports[0]["enrolled"] == 6
    assert contents[0] == contents[1]


def test_an_enrolment_cancelled_while_workers_run_resumes_to_the_whole_gallery(
        tmp_path: Path, engine, detector, people_folder: Path) -> None:
    from forensic_face.core.errors import CancelledError
    from forensic_face.core.progress import CancelToken, Progress

    # chunks of 2 images (every run: a float32 embedding's last bits follow the chunk's size), so that some are
    # stored before the cancel
    with open_gallery(tmp_path / "whole.db", mode="create") as g:
        enroll_folder(g, people_folder, engine, detector, workers=1, chunk=2)
        want = _contents(g, engine.info.version)
    token = CancelToken()

    def cancel_at(done: int, total: int, message: str) -> None:
        if done == 5:
            token.cancel()

    with open_gallery(tmp_path / "g.db", mode="create") as g:
        with pytest.raises(CancelledError):
            enroll_folder(g, people_folder, engine, detector, Progress(cancel_at, token), batch=2, workers=2, chunk=2)
        assert 0 < g.info()["embeddings_by_model"].get(engine.info.version, 0) < 6
        rep = enroll_folder(g, people_folder, engine, detector, workers=2, chunk=2)
        assert rep.enrolled + rep.already_enrolled >= 6 and g.info()["images"] == 8
        assert _contents(g, engine.info.version) == want


def test_an_image_stores_the_same_embedding_whatever_images_are_enrolled_beside_it(
        tmp_path: Path, engine, detector, people_folder: Path) -> None:
    """Faces are embedded a chunk at a time (here of 2 images, so that faceless images leave chunks of one face); an
    image that comes first in its person's folder moves every later image into another chunk, and their stored
    vectors must not move by a bit (float32 rounding follows the batch's size, which a short chunk's padding
    keeps)."""
    import shutil

    def stored(g) -> dict[str, bytes]:
        paths = {r.id: f"{r.person}/{Path(r.path).name}" for r in g.images()}
        return {paths[i]: v.tobytes() for i, v in g.embeddings(engine.info.version)}

    folder = tmp_path / "people"
    shutil.copytree(people_folder, folder)
    shutil.copy(folder / "Person_1" / "img_0.jpg", folder / "Person_0" / "a_first.jpg")
    with open_gallery(tmp_path / "g.db", mode="create") as g, \
            open_gallery(tmp_path / "shifted.db", mode="create") as shifted:
        enroll_folder(g, people_folder, engine, detector, workers=2, chunk=2)
        enroll_folder(shifted, folder, engine, detector, workers=2, chunk=2)
        want, got = stored(g), stored(shifted)
    assert set(got) == set(want) | {"Person_0/a_first.jpg"}
    assert {k: got[k] for k in want} == want


def test_an_image_copied_twice_into_a_folder_is_enrolled_once(tmp_path: Path, engine, detector,
                                                              people_folder: Path) -> None:
    import shutil

    folder = tmp_path / "people"
    shutil.copytree(people_folder, folder)
    shutil.copy(folder / "Person_0" / "img_0.jpg", folder / "Person_0" / "img_0_copy.jpg")
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        rep = enroll_folder(g, folder, engine, detector, workers=2)
        assert (rep.images_seen, rep.enrolled, rep.already_enrolled) == (9, 6, 1)
        assert g.info()["embeddings_by_model"] == {engine.info.version: 6}


def test_search_finds_the_enrolled_image_and_says_no_confident_match_otherwise(
        tmp_path: Path, engine, detector, people_folder: Path) -> None:
    from forensic_face.engine.probe import ProbePath
    from forensic_face.vision.frames import load_image

    with open_gallery(tmp_path / "g.db", mode="create") as g:
        enroll_folder(g, people_folder, engine, detector)
        frame = load_image(people_folder / "Person_1" / "img_0.jpg")
        path = ProbePath(engine, detector)
        emb = path.embed_faces([path.face(frame.image)])[0]  # the enrolled image's own face, not reconstructed
        res = search_gallery(g, emb, CAL, engine.info.version, probe_face_px=120.0, top_k=2)
        assert res.candidates[0].person == "Person_1" and res.candidates[0].similarity == pytest.approx(1, abs=1e-4)
        assert res.candidates[0].image_path.endswith("img_0.jpg")
        assert res.confident and res.verdict == "candidate: Person_1"
        assert len(res.candidates) == 2 and res.people_searched == 3
        assert sum(c.identity_probability for c in res.candidates) <= 1.0 + 1e-6
        stranger = np.zeros(128, np.float32)
        stranger[5] = 1.0
        other = search_gallery(g, stranger, CAL, engine.info.version, probe_face_px=120.0)
        assert not other.confident and other.verdict == "no confident match"


def test_vectorised_search_matches_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(500, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    owner = rng.integers(0, 40, 500)
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        for p in np.unique(owner):
            g.add_embeddings(f"P{p:02d}", vecs[owner == p], "v1")
        q = vecs[17] + 0.3 * rng.normal(size=16).astype(np.float32)
        q /= np.linalg.norm(q)
        res = search_gallery(g, q, CAL, "v1", 64.0, top_k=5)
        brute = sorted(((float((vecs[owner == p] @ q).max()), f"P{p:02d}") for p in np.unique(owner)), reverse=True)
        assert [c.person for c in res.candidates] == [name for _, name in brute[:5]]
        assert [c.similarity for c in res.candidates] == pytest.approx([s for s, _ in brute[:5]], abs=1e-5)
        # the Euclidean distance between the unit vectors, saved with each candidate
        best = vecs[owner == int(res.candidates[0].person[1:])]
        want = float(np.linalg.norm(best - q, axis=1).min())
        assert res.candidates[0].as_dict()["distance"] == pytest.approx(want, abs=1e-4)
        with pytest.raises(GalleryError, match="other-model"):  # another model's vectors are not mixed in
            search_gallery(g, q, CAL, "other-model", 64.0)


def test_a_sharp_probe_needs_a_closer_match_than_a_blurred_one(tmp_path: Path) -> None:
    cal = MatchCalibration(weights=(0.33, 5.55, -0.63, 1.06), temperature=0.05, n_pairs=0, n_searches=0,
                           quality_range=(2.45, 7.52))
    vecs = np.eye(4, dtype=np.float32)
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        for k in range(4):
            g.add_embeddings(f"P{k}", vecs[k:k + 1], "v1")
        q = np.array([0.25, 0.0, 0.0, 0.968], np.float32)  # similarity 0.25 to P0, 0.968 to P3
        q /= np.linalg.norm(q)
        blurred = search_gallery(g, q, cal, "v1", 100.0, probe_sharpness=20.0)
        sharp = search_gallery(g, q, cal, "v1", 100.0, probe_sharpness=1500.0)
        assert blurred.threshold_similarity < sharp.threshold_similarity
        p0 = {c.person: c.match_probability for c in blurred.candidates}["P0"]
        assert p0 > {c.person: c.match_probability for c in sharp.candidates}["P0"]
        assert sharp.as_dict()["probe_sharpness"] == 1500.0
        with pytest.raises(ValueError, match="sharpness"):
            search_gallery(g, q, cal, "v1", 100.0)  # a quality-aware calibration will not guess the probe's quality


def test_a_large_gallery_needs_more_than_a_one_to_one_match_for_a_lead(tmp_path: Path) -> None:
    from forensic_face.models.calibration import fit_impostor_tail
    from forensic_face.reports.wording import search_verdict

    rng = np.random.default_rng(7)
    tail = fit_impostor_tail(rng.normal(0.0, 0.2, 200_000))  # strangers' cosines, as measured: sd about 0.2
    cal = MatchCalibration(weights=(-2.27, 9.78, 0.0, 0.0), temperature=0.07, n_pairs=0, n_searches=0,
                           impostor_tail=tail)  # one-to-one: probability 0.5 at cosine 0.232
    vecs = rng.normal(size=(400, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        for k in range(400):
            g.add_embeddings(f"P{k:03d}", vecs[k:k + 1], "v1")

        def probe(cos: float) -> np.ndarray:  # a probe at this cosine to P000, near 0 to the others
            other = rng.normal(size=128).astype(np.float32)
            other -= (other @ vecs[0]) * vecs[0]
            q = cos * vecs[0] + np.sqrt(1 - cos**2) * other / np.linalg.norm(other)
            return q / np.linalg.norm(q)

        middling = search_gallery(g, probe(0.45), cal, "v1", 100.0)
        assert middling.candidates[0].person == "P000" and middling.candidates[0].match_probability > 0.5
        assert not middling.confident and middling.below_open_set_threshold  # 0.45 is what strangers reach
        assert middling.open_set_threshold == pytest.approx(cal.open_set_threshold(400))
        assert "which the best of 400 people" in search_verdict(SearchOutcome.from_dict(middling.as_dict()))
        strong = search_gallery(g, probe(0.95), cal, "v1", 100.0)
        assert strong.confident and search_verdict(strong).startswith("Investigative lead: P000")
    # one enrolled person: one comparison, so the threshold is where 1 % of strangers' cosines lie (about 0.47)
    assert cal.open_set_threshold(1) == pytest.approx(np.quantile(rng.normal(0.0, 0.2, 200_000), 0.99), abs=0.01)
    with open_gallery(tmp_path / "small.db", mode="create") as small:
        small.add_embeddings("P000", vecs[:1], "v1")
        assert search_gallery(small, probe(0.6), cal, "v1", 100.0).confident
        assert not search_gallery(small, probe(0.4), cal, "v1", 100.0).confident


def test_a_probe_that_resembles_everyone_gets_no_lead_but_one_that_stands_out_does(tmp_path: Path) -> None:
    from forensic_face.models.calibration import fit_open_set_table
    from forensic_face.reports.wording import open_set_note, search_verdict

    rng = np.random.default_rng(9)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    common = unit(rng.normal(size=128))  # what all faces share, as real embeddings do
    vecs = unit(0.5 * common + unit(rng.normal(size=(400, 128))))
    # calibration searches of people not enrolled, each resembling the gallery's people more or less
    probes = unit(rng.uniform(0.0, 1.2, (3000, 1)) * common + unit(rng.normal(size=(3000, 128))))
    table = fit_open_set_table(probes @ vecs.T, np.full(3000, -1))
    cal = MatchCalibration(weights=(-2.27, 9.78, 0.0, 0.0), temperature=0.07, n_pairs=0, n_searches=0,
                           open_set=table)  # one-to-one: probability 0.5 at cosine 0.232
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        for k in range(400):
            g.add_embeddings(f"P{k:03d}", vecs[k:k + 1], "v1")
        # a probe that resembles everyone: P000 first at a high cosine, but the next people are close behind
        vague = search_gallery(g, unit(1.2 * common + 0.15 * vecs[0]), cal, "v1", 100.0)
        best, nxt = vague.candidates[0], vague.candidates[1]
        assert best.person == "P000" and best.similarity > 0.6 and best.match_probability > 0.95
        assert best.similarity - nxt.similarity < 0.01 and not vague.confident
        stored = vague.as_dict()
        assert stored["lead_score"] < stored["open_set_threshold"]
        saved = SearchOutcome.from_dict(stored)
        assert "stands out too little from the next candidates for a gallery of 400" in search_verdict(saved)
        assert f"this search's is {stored['lead_score']:.3f}" in open_set_note(saved)
        # one that resembles P000 and few others: a lower cosine, yet a lead
        distinct = search_gallery(g, unit(vecs[0] + 1.2 * unit(np.random.default_rng(3).normal(size=128))), cal,
                                  "v1", 100.0)
        assert distinct.candidates[0].similarity < best.similarity
        assert distinct.confident and search_verdict(distinct).startswith("Investigative lead: P000")
        hostile = {**stored, "fpir": "1%", "lead_score": "high", "open_set_threshold": [0.3],
                   "candidates": [{**stored["candidates"][0], "match_probability": "0.99"}]}
        hostile = SearchOutcome.from_dict(hostile)
        assert search_verdict(hostile).startswith("No confident match") and "nan" in open_set_note(hostile)
        with pytest.raises(GalleryError, match="false-lead rates from 0.5% to 10.0%, not 50.00%"):
            search_gallery(g, vecs[0], cal, "v1", 100.0, fpir=0.5)
        assert search_gallery(g, vecs[0], cal, "v1", 100.0, fpir=0.05).as_dict()["fpir"] == 0.05


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "g.db"
    bad.write_text("hello")
    with pytest.raises(GalleryError, match="not an SQLite file"):
        open_gallery(bad)


def test_reembed_after_a_model_change(tmp_path: Path, engine, detector, people_folder: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    import torch

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig

    with open_gallery(tmp_path / "g.db", mode="create") as g:
        enroll_folder(g, people_folder, engine, detector)
        torch.manual_seed(1)
        folder = tmp_path_factory.mktemp("models2")
        save_bundle(folder, FusionAutoencoder(AEConfig(size=32, width=4)),
                    Recogniser(RecogniserConfig(size=32, width=4)), CAL, {"date": "test2"})
        new = FaceEngine(folder, device="cpu")
        assert new.info.version != engine.info.version
        assert reembed(g, new, detector) == 6
        assert g.info()["embeddings_by_model"] == {engine.info.version: 6, new.info.version: 6}


def test_distance_of_saved_candidates_with_and_without_it() -> None:
    from forensic_face.core.records import Candidate, embedding_distance

    def candidate_distance(saved: dict) -> float:
        return Candidate.from_dict(saved).euclidean

    assert [embedding_distance(s) for s in (1.0, 0.0, -1.0)] == pytest.approx([0.0, 2 ** 0.5, 2.0])
    assert embedding_distance(1.0000001) == 0.0  # rounding above 1 is not an error
    assert candidate_distance({"similarity": 0.5, "distance": 0.9}) == 0.9  # as saved
    assert candidate_distance({"similarity": 0.5}) == pytest.approx(1.0)  # results saved before the distance was
    assert np.isnan(candidate_distance({}))
    assert np.isnan(candidate_distance({"distance": "far"})) and np.isnan(candidate_distance({"similarity": [1]}))


# ---------------------------------------------------------------------------------------------- opening
def _file_state(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def _small_gallery(path: Path, people: dict[str, np.ndarray], version: str = "v1") -> None:
    with open_gallery(path, mode="create") as g:
        for name, vecs in people.items():
            g.add_embeddings(name, vecs, version)


def _unit_vectors(n: int, seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_folder_is_refused_with_a_gallery_error(tmp_path: Path) -> None:
    for mode in ("read", "write", "create"):
        with pytest.raises(GalleryError, match="is a folder, not a gallery database"):
            open_gallery(tmp_path, mode=mode)


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_another_programs_sqlite_file_is_refused_and_left_unchanged(tmp_path: Path, journal: str) -> None:
    import sqlite3

    other = tmp_path / "notes.db"
    db = sqlite3.connect(other)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    db.execute("INSERT INTO notes (text) VALUES ('keep me')")
    db.commit()
    db.close()
    before = _file_state(other)
    for mode in ("read", "write", "create"):
        with pytest.raises(GalleryError, match="not a forensic-face gallery"):
            open_gallery(other, mode=mode)
    assert _file_state(other) == before
    db = sqlite3.connect(f"file:{other}?mode=ro", uri=True)
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master")} == {"notes"}
    db.close()


def test_an_sqlite_file_with_no_tables_or_of_another_application_is_refused(tmp_path: Path) -> None:
    import sqlite3

    blank, tagged = tmp_path / "blank.db", tmp_path / "tagged.db"
    for path, pragma in ((blank, "PRAGMA user_version=7"), (tagged, "PRAGMA application_id=1234")):
        db = sqlite3.connect(path)
        db.execute(pragma)
        db.commit()
        db.close()
    before = _file_state(blank), _file_state(tagged)
    with pytest.raises(GalleryError, match=r"not a forensic-face gallery \(no embeddings, images, meta, people tables"):
        open_gallery(blank, mode="create")
    with pytest.raises(GalleryError, match="of another program"):
        open_gallery(tagged, mode="create")
    assert (_file_state(blank), _file_state(tagged)) == before


def test_only_enrolment_creates_a_gallery(tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "galery.db"
    for mode in ("read", "write"):
        with pytest.raises(GalleryError, match=r"no gallery database at .*galery\.db; create one with "
                                               r"`forensic-face gallery enroll .*galery\.db FOLDER`"):
            open_gallery(typo, mode=mode)
    with pytest.raises(GalleryError, match="no gallery database"):
        open_gallery(typo)  # the default opens an existing gallery only
    assert not (tmp_path / "typo").exists()
    with open_gallery(typo, mode="create") as g:  # enrolment creates it with its folder
        assert g.info()["people"] == 0
        assert g.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sorted(p.name for p in (tmp_path / "typo").iterdir()) == ["galery.db"]  # built aside, linked in
    with open_gallery(typo) as g:
        assert g.info()["people"] == 0
    empty = tmp_path / "empty.db"
    empty.touch()
    for mode in ("read", "create"):
        with pytest.raises(GalleryError, match="the file is empty, not a gallery database"):
            open_gallery(empty, mode=mode)


def test_a_gallery_made_by_an_earlier_version_still_opens(tmp_path: Path) -> None:
    import sqlite3

    from forensic_face.store.gallery.sqlite import APPLICATION_ID

    path = tmp_path / "old.db"  # the first schema: no thumbs table, no application id
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
        CREATE TABLE images (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id),
            path TEXT NOT NULL, sha256 TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
            face_px REAL, method TEXT, added TEXT NOT NULL, UNIQUE(person_id, sha256));
        CREATE TABLE embeddings (image_id INTEGER NOT NULL REFERENCES images(id), model_version TEXT NOT NULL,
            vector BLOB NOT NULL, PRIMARY KEY (image_id, model_version));
        INSERT INTO meta VALUES ('schema', '1'), ('created', '2026-11-26');
        INSERT INTO people VALUES (1, 'A', '2026-11-26');
        INSERT INTO images VALUES (1, 1, 'a.jpg', 'ab', 'ok', '', 90.0, 'hog', '2026-11-26');""")
    db.execute("INSERT INTO embeddings VALUES (1, 'v1', ?)", (_unit_vectors(1, 1)[0].tobytes(),))
    db.close()
    with open_gallery(path) as g:
        res = search_gallery(g, _unit_vectors(1, 1)[0], CAL, "v1", 80.0)
        assert res.candidates[0].person == "A" and g.thumbnail(1) is None
        assert res.gallery["created"] == "2026-11-26"
    with open_gallery(path, mode="create") as g:  # enrolment brings it up to date
        assert g.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert g.thumbnail(1) is None and g.identity("v1") == res.gallery


def test_opening_for_reading_writes_nothing_and_refuses_changes(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    _small_gallery(path, {"A": _unit_vectors(2, 1), "B": _unit_vectors(1, 2)})
    before = _file_state(path)
    with open_gallery(path) as g:
        assert g.info()["people"] == 2 and g.identity("v1")["embeddings"] == 3
        assert search_gallery(g, _unit_vectors(1, 3)[0], CAL, "v1", 80.0).people_searched == 2
        assert g.thumbnail(1) is None
        with pytest.raises(GalleryError, match="opened for reading only"):
            g.add_embeddings("C", _unit_vectors(1, 4), "v1")
    assert _file_state(path) == before
    with open_gallery(path, mode="write") as g:  # an existing gallery can be changed without enrolment's create
        g.add_embeddings("C", _unit_vectors(1, 4), "v1")
        assert g.info()["people"] == 3


_READ_ONLY_FOLDER_CHECK = """
import sys
from pathlib import Path
from forensic_face.store.gallery import GalleryError, open_gallery
path = Path(sys.argv[1])
try:
    (path.parent / "probe").touch()
    sys.exit("the folder is writable")
except PermissionError:
    pass
try:
    with open_gallery(path) as g:
        print(g.info()["people"], g.identity("v1")["embeddings"])
except GalleryError as exc:
    print("GalleryError", exc)
"""


def _run_without_write_access(path: Path) -> str:
    """Open ``path`` in another process that may not write to its folder (root: without the capability to
    override file permissions, which needs util-linux's setpriv)."""
    import os
    import shutil
    import subprocess
    import sys

    cmd = [sys.executable, "-c", _READ_ONLY_FOLDER_CHECK, str(path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a folder read-only for this process")
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *cmd]
    path.parent.chmod(0o555)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        path.parent.chmod(0o755)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_gallery_in_a_read_only_folder_can_be_searched(tmp_path: Path) -> None:
    import sqlite3

    folder = tmp_path / "ro"
    path = folder / "g.db"
    _small_gallery(path, {"A": _unit_vectors(2, 1), "B": _unit_vectors(1, 2)})
    assert sorted(p.name for p in folder.iterdir()) == ["g.db"]  # no -wal, -shm: all in the file
    before = _file_state(path)
    assert _run_without_write_access(path) == "2 3"
    assert _file_state(path) == before
    # a -wal file holding changes the database file does not have yet cannot be read there: refused
    stale = tmp_path / "stale"
    stale.mkdir()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO people (name, created) VALUES ('C', 'now')")
    for name in ("g.db", "g.db-wal"):
        (stale / name).write_bytes((folder / name).read_bytes())
    writer.close()
    refused = _run_without_write_access(stale / "g.db")
    assert refused.startswith("GalleryError") and "g.db-wal file holds changes not yet merged" in refused


# ---------------------------------------------------------------------------------------------- search
def test_search_tells_an_empty_gallery_from_one_of_another_model(tmp_path: Path, engine, detector,
                                                                 people_folder: Path) -> None:
    empty = tmp_path / "empty.db"
    open_gallery(empty, mode="create").close()
    with open_gallery(empty) as g:
        res = search_gallery(g, _unit_vectors(1, 1)[0], CAL, "v2", 80.0)
        assert res.verdict == "empty gallery" and res.as_dict()["gallery"]["people_enrolled"] == 0
    old = tmp_path / "old.db"
    _small_gallery(old, {"A": _unit_vectors(2, 1), "B": _unit_vectors(1, 2)}, version="v1")
    with open_gallery(old) as g:
        with pytest.raises(GalleryError, match=r"2 people were embedded with model version\(s\) v1 \(3 embeddings\), "
                                               r"not with v2.*re-embed.*`forensic-face gallery enroll .*old\.db"):
            search_gallery(g, _unit_vectors(1, 1)[0], CAL, "v2", 80.0)
    faceless = tmp_path / "faceless"
    (faceless / "Nobody").mkdir(parents=True)
    (faceless / "Nobody" / "noise.png").write_bytes((people_folder / "Person_2" / "no_face.png").read_bytes())
    with open_gallery(tmp_path / "faceless.db", mode="create") as g:
        enroll_folder(g, faceless, engine, detector)
        with pytest.raises(GalleryError, match="1 people but no embeddings"):
            search_gallery(g, _unit_vectors(1, 1)[0], CAL, engine.info.version, 80.0)


# ---------------------------------------------------------------------------------------------- enrolment
def test_enrolment_records_hostile_images_and_goes_on(tmp_path: Path, engine, detector, people_folder: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from forensic_face.services import enrolment
    from forensic_face.vision import frames

    folder = tmp_path / "people"
    shutil.copytree(people_folder, folder)
    good = (folder / "Person_0" / "img_0.jpg").read_bytes()
    for name in ("decoder_error.jpg", "out_of_memory.jpg"):  # distinct bytes: distinct images
        (folder / "Person_1" / name).write_bytes(good + name.encode())
    with open(folder / "Person_1" / "huge.png", "wb") as fh:
        fh.truncate(enrolment.MAX_IMAGE_BYTES + 1)  # sparse: nothing is written
    (folder / "Person_0" / "a_folder.jpg").mkdir()  # reading it raises an OSError (IsADirectoryError)
    real_decode = frames.decode_image_bytes

    def decode(data: bytes, source: str = "<bytes>", suffix: str = ""):
        if source.endswith("decoder_error.jpg"):
            raise cv2.error("imdecode: hostile header")
        if source.endswith("out_of_memory.jpg"):
            raise MemoryError()
        return real_decode(data, source, suffix)

    monkeypatch.setattr(frames, "decode_image_bytes", decode)
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        rep = enroll_folder(g, folder, engine, detector)
        assert rep.images_seen == 12 and rep.enrolled == 6
        names = {Path(p).name: rep.reasons[p] for p in rep.unreadable}
        assert set(names) == {"broken.jpg", "decoder_error.jpg", "out_of_memory.jpg", "huge.png", "a_folder.jpg"}
        assert "hostile header" in names["decoder_error.jpg"] and "out of memory" in names["out_of_memory.jpg"]
        assert "too large" in names["huge.png"] and "not a regular file" in names["a_folder.jpg"]
        stored = dict(g.db.execute("SELECT path, message FROM images WHERE status='unreadable'").fetchall())
        assert {Path(p).name for p in stored} == {"broken.jpg", "decoder_error.jpg", "out_of_memory.jpg"}
        assert all(stored.values())  # with the reason


_ENROL_CHILD = """
import sys, time
from pathlib import Path
import torch
from forensic_face.engine.inference import FaceEngine
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.gallery import open_gallery
from forensic_face.vision.detect import FaceDetector
models, db, folder, me, other = sys.argv[1:]
torch.set_num_threads(1)
engine, detector = FaceEngine(models, device="cpu"), FaceDetector()
Path(me).touch()
deadline = time.monotonic() + 120  # start together (if the other process is alive)
while not Path(other).exists() and time.monotonic() < deadline:
    time.sleep(0.005)
with open_gallery(db, mode="create") as g:
    print(enroll_folder(g, folder, engine, detector).enrolled)
"""


def test_two_enrolments_at_once_lose_nothing(tmp_path: Path, engine, detector, tiny_models: Path,
                                             face_rgb: np.ndarray) -> None:
    import subprocess
    import sys

    folder = tmp_path / "people"
    rng = np.random.default_rng(5)
    small = cv2.resize(face_rgb, (160, 160), interpolation=cv2.INTER_AREA)
    for p in range(12):
        (folder / f"P{p:02d}").mkdir(parents=True)
        for i in range(2):
            img = np.clip(small.astype(np.int16) + rng.integers(-20, 20, 3), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"P{p:02d}" / f"{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    shared = tmp_path / "new" / "shared.db"  # both processes create it, then enrol the same people
    flags = [tmp_path / "ready-a", tmp_path / "ready-b"]
    procs = [subprocess.Popen([sys.executable, "-c", _ENROL_CHILD, str(tiny_models), str(shared), str(folder),
                               str(me), str(other)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me, other in (flags, flags[::-1])]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    with open_gallery(tmp_path / "alone.db", mode="create") as g:
        enroll_folder(g, folder, engine, detector)
        want = g.identity(engine.info.version)
    with open_gallery(shared) as g:
        info = g.info()
        got = g.identity(engine.info.version)
    assert info["people"] == 12 and info["images"] == 24 and info["embeddings_by_model"] == {engine.info.version: 24}
    assert got["content_sha256"] == want["content_sha256"]


# ---------------------------------------------------------------------------------------------- identity
def _expected_sum(path: Path, version: str) -> str:
    """The checksum as documented, computed from the database directly."""
    import hashlib
    import json
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute("SELECT p.name, i.sha256, e.vector FROM embeddings e JOIN images i ON i.id = e.image_id "
                      "JOIN people p ON p.id = i.person_id WHERE e.model_version=?", (version,)).fetchall()
    db.close()
    lines = sorted(f"{json.dumps(n)}\t{s}\t{hashlib.sha256(v).hexdigest()}\n" for n, s, v in rows)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def test_identity_names_the_enrolled_content_whatever_the_order(tmp_path: Path) -> None:
    people = {"Ann": _unit_vectors(2, 1), "Ann B": _unit_vectors(1, 2), 'Zoë "Z"\t': _unit_vectors(3, 3)}
    _small_gallery(tmp_path / "a.db", people)
    with open_gallery(tmp_path / "b.db", mode="create") as g:  # other order, other row ids, another model too
        g.add_embeddings("Someone", _unit_vectors(1, 9), "v0")
        for name in reversed(people):
            order = list(reversed(range(len(people[name]))))
            g.add_embeddings(name, people[name][order], "v1", [f"<{name}:{i}>" for i in order])
    with open_gallery(tmp_path / "a.db") as a, open_gallery(tmp_path / "b.db") as b:
        ia, ib = a.identity("v1"), b.identity("v1")
        assert ia["content_sha256"] == ib["content_sha256"] == _expected_sum(tmp_path / "a.db", "v1")
        assert ia["path"] == str((tmp_path / "a.db").resolve()) and Path(ia["path"]).is_absolute()
        assert (ia["schema"], ia["model_version"], ia["people"], ia["embeddings"]) == (1, "v1", 3, 6)
        assert (ib["people"], ib["people_enrolled"]) == (3, 4)
        assert a.identity("v0") == {**ia, "model_version": "v0", "people": 0, "embeddings": 0,
                                    "content_sha256": _expected_sum(tmp_path / "a.db", "v0")}


def test_identity_changes_with_what_a_search_compares_and_only_with_that(tmp_path: Path) -> None:
    people = {"A": _unit_vectors(2, 1), "B": _unit_vectors(1, 2), "C": _unit_vectors(1, 3)}
    base = tmp_path / "base.db"
    _small_gallery(base, people)
    with open_gallery(base) as g:
        want = g.identity("v1")["content_sha256"]

    def checksum(name: str, content: dict[str, np.ndarray], version: str = "v1") -> str:
        _small_gallery(tmp_path / name, content, version)
        with open_gallery(tmp_path / name) as g:
            return g.identity("v1")["content_sha256"]

    changed = {**people, "B": people["B"] + np.float32(1e-6)}  # one embedding differs in its last bits
    added = {**people, "C": np.vstack([people["C"], _unit_vectors(1, 4)])}
    removed = {k: v for k, v in people.items() if k != "A"}
    sums = [checksum("changed.db", changed), checksum("added.db", added), checksum("removed.db", removed)]
    assert want not in sums and len(set(sums)) == 3
    with open_gallery(base, mode="write") as g:  # another model version's embeddings leave it as it was
        g.add_embeddings("D", _unit_vectors(2, 5), "v2")
        assert g.identity("v1")["content_sha256"] == want


def test_identity_follows_changes_made_while_the_gallery_is_open(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    _small_gallery(path, {"A": _unit_vectors(2, 1)})
    probe = _unit_vectors(1, 7)[0]
    with open_gallery(path) as reader:
        first = search_gallery(reader, probe, CAL, "v1", 80.0)
        assert first.gallery == reader.identity("v1") and first.gallery["embeddings"] == 2
        with open_gallery(path, mode="write") as writer:  # another connection (another process alike) enrols
            writer.add_embeddings("B", _unit_vectors(1, 2), "v1")
            assert writer.identity("v1") != first.gallery  # its own writes
        second = search_gallery(reader, probe, CAL, "v1", 80.0)
        assert second.people_searched == 2 and second.gallery["embeddings"] == 3
        assert second.as_dict()["gallery"] == reader.identity("v1") == _identity_of(path)


def _identity_of(path: Path) -> dict:
    with open_gallery(path) as g:
        return g.identity("v1")
