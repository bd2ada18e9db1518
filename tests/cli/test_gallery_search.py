"""`forensic-face gallery search DB IMAGE [IMAGE ...]`: several probes and folders, the model loaded once,
JSON Lines or CSV with one line or row per probe, a failed probe on its own line while the others go on,
and the exit status."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.cli import main
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.gallery import open_gallery
from forensic_face.store.gallery.sqlite import SQLiteGallery


@pytest.fixture(scope="module")
def gallery_db(tmp_path_factory: pytest.TempPathFactory, tiny_engine, detector, face_rgb: np.ndarray) -> Path:
    root = tmp_path_factory.mktemp("people")
    for name, shift in (("Eileen_Collins", 0), ("Someone_Else", 60), ("Third_Person", 120)):
        (root / name).mkdir()
        cv2.imwrite(str(root / name / "a.jpg"), cv2.cvtColor(np.roll(face_rgb, shift, axis=1), cv2.COLOR_RGB2BGR))
    db = root / "gallery.db"
    with open_gallery(db, mode="create") as g:
        enroll_folder(g, root, tiny_engine, detector)
    return db


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory, frame_640: np.ndarray, face_rgb: np.ndarray) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probes")
    cv2.imwrite(str(d / "cam1.png"), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "face.jpg"), cv2.cvtColor(face_rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "wall.png"), np.full((240, 320, 3), 128, np.uint8))  # no face
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # unreadable
    (d / "folder" / "sub").mkdir(parents=True)
    cv2.imwrite(str(d / "folder" / "b.jpg"), cv2.cvtColor(face_rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "folder" / "sub" / "a.png"), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    (d / "folder" / "notes.txt").write_text("not an image")
    (d / "empty").mkdir()
    return {p.name: p for p in d.iterdir()}


def _search(db: Path, models: Path, *args: str) -> int:
    return main(["gallery", "search", str(db), *args, "--models", str(models), "--top", "2"])


def test_json_lines_one_per_probe_and_a_failed_probe_does_not_stop_the_rest(
        gallery_db: Path, tiny_models: Path, probes: dict, capsys) -> None:
    order = ["cam1.png", "wall.png", "broken.jpg", "face.jpg"]
    rc = _search(gallery_db, tiny_models, *(str(probes[n]) for n in order), "--json")
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 1 and [Path(r["image"]).name for r in rows] == order
    assert [r["ok"] for r in rows] == [True, False, False, True]
    assert "no face found" in rows[1]["error"] and str(probes["wall.png"]) in rows[1]["error"]
    assert str(probes["broken.jpg"]) in rows[2]["error"]
    good = rows[0]
    assert len(good["candidates"]) == 2 and good["people_searched"] == 3 and good["gallery"]["people"] == 3
    assert good["face"]["box"] and good["quality"]["sharpness"] > 0 and good["engine"]["input_size"] == 32
    assert "2 of 4 probe(s) could not be searched" in err
    assert "searching" in err  # the progress line goes to stderr, several probes


def test_csv_a_header_then_one_row_per_probe(gallery_db: Path, tiny_models: Path, probes: dict, capsys) -> None:
    assert _search(gallery_db, tiny_models, str(probes["cam1.png"]), str(probes["wall.png"]), "--csv") == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2
    assert rows[0]["ok"] == "true" and rows[0]["rank1_person"] and rows[0]["rank2_person"]
    assert float(rows[0]["rank1_similarity"]) >= float(rows[0]["rank2_similarity"])
    assert rows[0]["verdict"] and rows[0]["error"] == "" and "rank3_person" not in rows[0]
    assert rows[1]["ok"] == "false" and "no face found" in rows[1]["error"] and rows[1]["rank1_person"] == ""


def test_a_folder_is_its_image_files_and_the_model_is_loaded_once(
        gallery_db: Path, tiny_models: Path, probes: dict, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.engine.inference import FaceEngine

    loads: list[int] = []
    opened: list[int] = []
    engine_init, gallery_init = FaceEngine.__init__, SQLiteGallery.__init__

    def count_engine(self, *a, **k):
        loads.append(1)
        engine_init(self, *a, **k)

    def count_gallery(self, *a, **k):
        opened.append(1)
        gallery_init(self, *a, **k)

    monkeypatch.setattr(FaceEngine, "__init__", count_engine)
    monkeypatch.setattr(SQLiteGallery, "__init__", count_gallery)
    assert _search(gallery_db, tiny_models, str(probes["folder"]), str(probes["face.jpg"]), "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["image"]).relative_to(probes["face.jpg"].parent).as_posix() for r in rows] == [
        "folder/b.jpg", "folder/sub/a.png", "face.jpg"]  # sorted, sub-folders included, other files left out
    assert all(r["ok"] for r in rows) and loads == [1] and opened == [1]


def test_text_output_and_exit_status(gallery_db: Path, tiny_models: Path, probes: dict, capsys) -> None:
    assert _search(gallery_db, tiny_models, str(probes["cam1.png"])) == 0  # one probe: the output as it was
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(" (face ")[0] in ("no confident match", "candidate: Eileen_Collins",
                                          "candidate: Someone_Else", "candidate: Third_Person")
    assert len(out) == 3 and out[1].startswith("  1. ")
    assert _search(gallery_db, tiny_models, str(probes["cam1.png"]), str(probes["empty"])) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{probes['cam1.png']}: ")  # several probes: each block names its image
    assert f"{probes['empty']}: not searched: a folder with no image files" in out
    assert "1 of 2 probe(s) could not be searched" in err
    assert _search(gallery_db, tiny_models, str(probes["wall.png"])) == 1  # one probe: its error, as before
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"forensic-face: error: {probes['wall.png']}: no face found")


def test_audio_goes_with_one_probe(gallery_db: Path, tiny_models: Path, probes: dict, tmp_path: Path,
                                   capsys) -> None:
    import soundfile as sf

    from forensic_face.audio.synth import synth_speech

    wav = tmp_path / "a.wav"
    sf.write(wav, synth_speech(3.0, 16000, seed=1), 16000)
    assert _search(gallery_db, tiny_models, str(probes["cam1.png"]), "--audio", str(wav), "--json") == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    assert _search(gallery_db, tiny_models, str(probes["cam1.png"]), str(probes["face.jpg"]), "--audio",
                   str(wav)) == 1
    assert "--audio goes with one probe image" in capsys.readouterr().err


def test_json_and_csv_exclude_each_other(gallery_db: Path, tiny_models: Path, probes: dict) -> None:
    with pytest.raises(SystemExit) as exc:
        _search(gallery_db, tiny_models, str(probes["cam1.png"]), "--json", "--csv")
    assert exc.value.code == 2


def test_help_states_the_exit_status(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["gallery", "search", "--help"])
    assert "Exit status: 0 when every probe was searched, 1 when any could not be" in capsys.readouterr().out


def test_a_postgresql_url_is_a_gallery_wherever_a_path_is(gallery_db: Path, tiny_models: Path, probes: dict,
                                                          postgres, capsys) -> None:
    """migrate copies the SQLite gallery to a server, and info, search, index and enroll take its URL; the
    searches give the same candidates there."""
    url = postgres.database()
    assert main(["gallery", "migrate", str(gallery_db), url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["people"] == 3 and report["searches_compared"] == 3
    assert main(["gallery", "info", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["people"] == 3
    assert main(["gallery", "info", url]) == 0  # for a person: the arithmetic the faces were embedded in, migrated
    assert "3 people" in (out := capsys.readouterr().out) and "(made in float32 arithmetic)" in out
    searches = []
    for db in (gallery_db, url):
        assert _search(db, tiny_models, str(probes["face.jpg"]), "--json") == 0
        saved = json.loads(capsys.readouterr().out)
        searches.append([(c["person"], c["similarity"], c["identity_probability"]) for c in saved["candidates"]])
    assert searches[0] == searches[1]
    assert saved["gallery"]["search"] == {"mode": "exact"} and "postgres@" not in json.dumps(saved)
    assert main(["gallery", "index", url, "--ef-search", "40"]) == 0
    assert "HNSW index of the whole embeddings built" in capsys.readouterr().out
    assert _search(url, tiny_models, str(probes["face.jpg"]), "--json") == 0
    assert json.loads(capsys.readouterr().out)["gallery"]["search"] == {  # the command's defaults, recorded
        "mode": "hnsw", "m": 24, "ef_construction": 200, "ef_search": 40, "vectors": "halfvec"}
    assert main(["gallery", "index", str(gallery_db)]) == 1
    assert "an SQLite gallery is always searched exactly" in capsys.readouterr().err
    assert main(["gallery", "enroll", url, str(gallery_db.parent), "--models", str(tiny_models), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["already_enrolled"] == 3


def test_gallery_index_gives_a_joined_bundle_s_version_an_index_for_sharp_probes_too(
        postgres, tiny_models: Path, tiny_joined_clip_models: Path, capsys) -> None:
    """For the model version of a bundle that joins a companion, `gallery index` builds the index of the whole
    embeddings (blurred probes) and one of the recogniser's values (sharp probes); other versions get the first
    only; --exact drops them all."""
    from forensic_face.models.bundle import sharp_query_prefix

    assert sharp_query_prefix(tiny_models) is None
    version, prefix = sharp_query_prefix(tiny_joined_clip_models)
    assert prefix == 128
    rng = np.random.default_rng(0)
    joined = rng.normal(size=(40, 256)).astype(np.float32)
    url = postgres.database()
    with open_gallery(url, mode="create") as g:
        for v, vectors in ((version, joined), ("other", joined[:, :64])):
            g.bulk_add(v, [f"P{i}" for i in range(20)], np.repeat(np.arange(20), 2),
                       vectors / np.linalg.norm(vectors, axis=1, keepdims=True), [f"<{v}:{i}>" for i in range(40)])
    assert main(["gallery", "index", url, "--models", str(tiny_joined_clip_models), "--m", "8"]) == 0
    out = capsys.readouterr().out
    assert f"{version}: HNSW index of the whole embeddings built" in out
    assert f"{version}: HNSW index of their first 128 values (the recogniser's: sharp probes) built" in out
    assert "other: HNSW index of the whole embeddings built" in out and "other: HNSW index of their first" not in out
    with open_gallery(url) as g:
        assert [i.get("prefix") for i in g.identity(version)["search"]["indexes"]] == [128, None]
        assert "prefix" not in g.identity("other")["search"] and g.identity("other")["search"]["m"] == 8
    assert main(["gallery", "index", url, "--exact"]) == 0
    with open_gallery(url) as g:
        assert g.identity(version)["search"] == g.identity("other")["search"] == {"mode": "exact"}


def test_gallery_index_says_when_the_build_memory_was_too_small(postgres, tiny_models: Path, capsys) -> None:
    """--build-memory sets the memory the index's graph is built in; a graph that outgrows it is built far slower,
    and the command warns, naming the option; nonsense is refused before any index is touched."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(4000, 64)).astype(np.float32)
    url = postgres.database()
    with open_gallery(url, mode="create") as g:
        g.bulk_add("v1", [f"P{i}" for i in range(1000)], np.repeat(np.arange(1000), 4),
                   vectors / np.linalg.norm(vectors, axis=1, keepdims=True), [f"<{i}>" for i in range(4000)])
    assert main(["gallery", "index", url, "--models", str(tiny_models), "--m", "16", "--ef-construction", "64",
                 "--build-memory", "1MB"]) == 0
    captured = capsys.readouterr()
    assert "v1: HNSW index of the whole embeddings built" in captured.out and "build memory 1MB" in captured.out
    assert "warning: v1: the index graph outgrew its build memory (maintenance_work_mem 1MB) after" in captured.err
    assert "--build-memory" in captured.err
    assert main(["gallery", "index", url, "--models", str(tiny_models), "--m", "16", "--ef-construction", "64"]) == 0
    captured = capsys.readouterr()
    assert "build memory 2GB" in captured.out and "warning" not in captured.err
    assert main(["gallery", "index", url, "--models", str(tiny_models), "--build-memory", "lots"]) == 1
    assert "build memory must be a whole number with kB, MB, GB or TB" in capsys.readouterr().err
    with open_gallery(url) as g:
        assert g.identity("v1")["search"]["m"] == 16  # the index built before is still there


def test_gallery_enroll_takes_the_workers_it_is_given_and_refuses_nonsense(tmp_path: Path, gallery_db: Path,
                                                                           tiny_models: Path, capsys) -> None:
    db = tmp_path / "g.db"
    assert main(["gallery", "enroll", str(db), str(gallery_db.parent), "--models", str(tiny_models),
                 "--workers", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["workers"] == 2 and report["enrolled"] == 3
    for bad in ("0", "two", "65"):
        with pytest.raises(SystemExit):
            main(["gallery", "enroll", str(db), str(gallery_db.parent), "--workers", bad])
        assert f"a whole number of workers from 1 to 64, got '{bad}'" in capsys.readouterr().err
