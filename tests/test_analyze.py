"""analyze: one call from case evidence to saved, logged results (frames, faces, audio, search)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from forensic_face.core.errors import AudioError, InputError, NoFaceFoundError
from forensic_face.services.analysis import analyze_case
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.case import Case
from forensic_face.store.gallery import open_gallery
from forensic_face.store.gallery.sqlite import SQLiteGallery


@pytest.fixture()
def evidence(tmp_path: Path, frame_640: np.ndarray) -> dict[str, Path]:
    from forensic_face.audio.synth import synth_speech

    d = tmp_path / "incoming"
    d.mkdir()
    cv2.imwrite(str(d / "cam1.jpg"), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    sf.write(d / "cam1.wav", synth_speech(4.0, 16000, seed=2), 16000)
    cv2.imwrite(str(d / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    sf.write(d / "silence.wav", np.zeros(16000, np.float32), 16000)
    return {p.name: p for p in d.iterdir()}


@pytest.fixture()
def gallery(tmp_path: Path, tiny_engine, detector, face_rgb: np.ndarray) -> SQLiteGallery:
    root = tmp_path / "people"
    for name, shift in (("Eileen_Collins", 0), ("Someone_Else", 60)):
        (root / name).mkdir(parents=True)
        img = np.roll(face_rgb, shift, axis=1)
        cv2.imwrite(str(root / name / "a.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    g = open_gallery(tmp_path / "gallery.db", mode="create")
    enroll_folder(g, root, tiny_engine, detector)
    yield g
    g.close()


def test_analyze_saves_results_and_logs_them(tmp_path: Path, evidence, tiny_engine, detector, gallery) -> None:
    case = Case.create(tmp_path / "case", "C-1", "Analyst")
    case.add_evidence([evidence["cam1.jpg"], evidence["cam1.wav"]])
    before = {e.name: e.sha256 for e in case.evidence}
    res = analyze_case(case, tiny_engine, detector, gallery, top_k=2)
    assert res.audio is not None and res.audio["evidence"] == "cam1.wav"
    assert res.reconstruction.shape == (32, 32) and res.audio_effect["max_abs_difference"] >= 0
    assert len(res.search["candidates"]) == 2 and res.search["model_version"] == tiny_engine.info.version
    saved = json.loads((case.root / "results" / res.analysis_id / f"{res.analysis_id}.json").read_text())
    assert saved["engine"]["model_version"] == tiny_engine.info.version
    ident = saved["search"]["gallery"]  # the gallery searched is in the chain: path, content, people, model
    assert ident == gallery.identity(tiny_engine.info.version) and ident["people"] == 2
    assert ident["path"] == str(gallery.path.resolve()) and len(ident["content_sha256"]) == 64
    assert saved["inputs"]["frame"]["sha256"] == before["cam1.jpg"]
    for rel in res.images.values():
        assert cv2.imread(str(case.root / rel), cv2.IMREAD_GRAYSCALE).shape == (32, 32)
    for cand in saved["search"]["candidates"]:  # the matching gallery faces travel with the case
        assert cv2.imread(str(case.root / cand["thumbnail"])).shape == (32, 32, 3)
        assert cand["person"] in ("Eileen_Collins", "Someone_Else")
    entry = [e for e in case.read_log() if e["action"] == "analysis"][-1]
    assert entry["details"]["weights_sha256"] == tiny_engine.info.weights_sha256
    assert entry["details"]["gallery"] == ident
    assert [e["action"] for e in case.read_log()].count("analysis") == 1  # one entry for the whole analysis
    assert set(entry["details"]["files"]) == {f"results/{res.analysis_id}/{p.name}"
                                              for p in (case.results_dir / res.analysis_id).iterdir()}
    assert entry["details"]["audio"]["sha256"] == before["cam1.wav"]
    assert {e.name: e.sha256 for e in case.evidence} == before
    assert Case.open(case.root).verify().ok


def test_no_audio_and_missing_audio_both_work(tmp_path: Path, evidence, tiny_engine, detector) -> None:
    case = Case.create(tmp_path / "case", "C-2", "Analyst")
    case.add_evidence([evidence["cam1.jpg"]])
    assert analyze_case(case, tiny_engine, detector).audio is None  # no audio track in the case
    case.add_evidence([evidence["cam1.wav"]])
    res = analyze_case(case, tiny_engine, detector, use_audio=False)
    assert res.audio is None and res.search is None and res.analysis_id == "analysis-002"


def test_no_face_says_so_and_a_drawn_box_works(tmp_path: Path, evidence, tiny_engine, detector) -> None:
    case = Case.create(tmp_path / "case", "C-3", "Analyst")
    case.add_evidence([evidence["wall.png"]])
    with pytest.raises(NoFaceFoundError, match="no face found"):
        analyze_case(case, tiny_engine, detector)
    res = analyze_case(case, tiny_engine, detector, box=(100, 60, 180, 150))
    assert res.face["method"] == "manual"


def test_silent_audio_gets_a_clear_error(tmp_path: Path, evidence, tiny_engine, detector) -> None:
    case = Case.create(tmp_path / "case", "C-4", "Analyst")
    case.add_evidence([evidence["cam1.jpg"], evidence["silence.wav"]])
    with pytest.raises(AudioError, match="--no-audio"):
        analyze_case(case, tiny_engine, detector)
    assert not any(e["action"] == "analysis" for e in case.read_log())  # nothing half-recorded


def test_a_false_lead_rate_the_calibration_never_measured_is_refused_before_any_work(
        tmp_path: Path, evidence, tiny_engine, detector, gallery, monkeypatch) -> None:
    from dataclasses import replace

    from forensic_face.core.errors import ForensicFaceError
    from forensic_face.models.calibration import fit_open_set_table

    sims = np.random.default_rng(0).normal(0.0, 0.2, (400, 30))
    monkeypatch.setattr(tiny_engine, "calibration",
                        replace(tiny_engine.calibration, open_set=fit_open_set_table(sims, np.full(400, -1))))
    case = Case.create(tmp_path / "case", "C-7", "Analyst")
    case.add_evidence([evidence["cam1.jpg"]])
    with pytest.raises(ForensicFaceError, match="false-lead rates from 0.5% to 10.0%"):
        analyze_case(case, tiny_engine, detector, gallery, fpir=0.3)
    assert not [e for e in case.read_log() if e["action"] == "analysis"]
    assert not list((case.root / "results").glob("*"))
    res = analyze_case(case, tiny_engine, detector, gallery, fpir=0.05)
    assert res.search["fpir"] == 0.05
    assert res.search["open_set_threshold"] == pytest.approx(tiny_engine.calibration.open_set_threshold(2, 0.05),
                                                             abs=1e-4)
    saved = json.loads((case.root / "results" / res.analysis_id / f"{res.analysis_id}.json").read_text())
    assert saved["parameters"]["fpir"] == 0.05  # the rate the search was held to is in the record


def test_analyze_command(tmp_path: Path, evidence, tiny_models: Path, gallery, capsys) -> None:
    from forensic_face.cli import main

    root = tmp_path / "case"
    assert main(["case", "new", str(root), "--id", "C-5", "--analyst", "A"]) == 0
    assert main(["case", "add", str(root), str(evidence["cam1.jpg"]), str(evidence["cam1.wav"])]) == 0
    capsys.readouterr()
    code = main(["analyze", str(root), "--gallery", str(gallery.path), "--models", str(tiny_models), "--json",
                 "--fpir", "2%"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["search"]["fpir"] == 0.02
    assert out["search"]["verdict"] in ("no confident match",) or out["search"]["verdict"].startswith("candidate")
    assert main(["gallery", "info", str(gallery.path)]) == 0
    assert "2 people" in capsys.readouterr().out


def test_altered_evidence_is_never_analysed(tmp_path: Path, evidence, tiny_engine, detector) -> None:
    import os

    from forensic_face.core.errors import EvidenceError

    case = Case.create(tmp_path / "case", "C-8", "Analyst")
    case.add_evidence([evidence["cam1.jpg"], evidence["cam1.wav"]])
    stored = case.evidence_dir / "cam1.wav"
    os.chmod(stored, 0o644)
    stored.write_bytes(stored.read_bytes()[:-100])
    with pytest.raises(EvidenceError, match="cam1.wav no longer matches the SHA-256 recorded"):
        analyze_case(case, tiny_engine, detector)
    assert not any(e["action"] == "analysis" for e in case.read_log()) and not list(case.results_dir.iterdir())
    assert analyze_case(case, tiny_engine, detector, use_audio=False).audio is None  # the intact frame still can


def test_a_mistyped_gallery_or_a_full_disk_fail_before_any_work(tmp_path: Path, evidence, tiny_models: Path,
                                                                 capsys, monkeypatch) -> None:
    import shutil

    from forensic_face.cli import main
    from forensic_face.store import case as case_mod

    root = tmp_path / "case"
    assert main(["case", "new", str(root), "--id", "C-9", "--analyst", "A"]) == 0
    assert main(["case", "add", str(root), str(evidence["cam1.jpg"])]) == 0
    capsys.readouterr()
    typo = tmp_path / "typo" / "galery.db"
    assert main(["analyze", str(root), "--gallery", str(typo), "--models", str(tiny_models)]) == 1
    assert f"no gallery database at {typo}" in capsys.readouterr().err
    assert not typo.parent.exists()  # nothing created, nothing recorded as an "empty gallery"
    monkeypatch.setattr(case_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1 << 40, 1 << 40, 1 << 20))
    assert main(["analyze", str(root), "--models", str(tiny_models)]) == 1
    assert "free some space and try again (nothing was changed)" in capsys.readouterr().err
    assert not list((root / "results").iterdir())


def test_the_saved_record_reads_back_as_the_analysis_made_it(tmp_path: Path, evidence, tiny_engine, detector,
                                                             gallery) -> None:
    """What the GUI and the report read (the record file, converted once) is what the analysis produced."""
    from forensic_face.reports.content import find_analysis, load_analysis

    case = Case.create(tmp_path / "case", "C-1", "Analyst")
    case.add_evidence([evidence["cam1.jpg"], evidence["cam1.wav"]])
    res = analyze_case(case, tiny_engine, detector, gallery, top_k=2, box=(200, 100, 330, 260))
    view = load_analysis(case, find_analysis(case, res.analysis_id))
    rec = view.record
    assert rec == res.record and rec.analysis_id == res.analysis_id
    assert rec.frame_evidence == "cam1.jpg" and rec.frame_sha256 == case.evidence[0].sha256
    assert rec.face.box == tuple(res.face["box"]) and rec.face.method == "manual" and rec.manual_box
    assert rec.quality.face_px == res.quality["face_px"] and rec.quality.hints == tuple(res.quality["hints"])
    assert rec.audio is not None and rec.audio.evidence == "cam1.wav" and rec.audio.window_s == 1.0
    assert rec.engine.weights_sha256 == tiny_engine.info.weights_sha256
    assert [c.person for c in rec.search.candidates] == [c["person"] for c in res.search["candidates"]]
    assert rec.search.as_dict()["candidates"] == res.search["candidates"]  # thumbnails included
    assert rec.search.gallery == gallery.identity(tiny_engine.info.version)
    assert [t is not None for t in view.thumbnails] == [True, True]


def test_a_failed_analysis_is_logged_with_its_reason_and_nothing_else_is_saved(tmp_path: Path, evidence,
                                                                              tiny_engine, detector) -> None:
    case = Case.create(tmp_path / "case", "C-4", "Analyst")
    case.add_evidence([evidence["wall.png"]])
    with pytest.raises(NoFaceFoundError):
        analyze_case(case, tiny_engine, detector, top_k=3)
    (failed,) = case.failed_analyses()
    assert failed.frame == "wall.png" and failed.audio == "" and "no face found" in failed.when.text
    entry = case.read_log()[-1]
    assert entry["action"] == "analysis.failed" and entry["details"]["parameters"]["top_k"] == 3
    assert case.analyses() == [] and not any(case.results_dir.iterdir()) and case.verify().ok


def test_a_sideways_frame_is_turned_upright_for_the_analysis_and_shown_turned(tmp_path: Path, frame_640,
                                                                              tiny_engine, detector) -> None:
    """A camera hung sideways: turned with `rotate`, the analysis finds the face itself, records the turn, and
    the report and the GUI show the frame as it was analysed."""
    from forensic_face.reports.content import find_analysis, load_analysis

    src = tmp_path / "sideways.png"
    cv2.imwrite(str(src), cv2.cvtColor(np.ascontiguousarray(np.rot90(frame_640, 1)), cv2.COLOR_RGB2BGR))
    case = Case.create(tmp_path / "case", "C-5", "Analyst")
    case.add_evidence([src])
    res = analyze_case(case, tiny_engine, detector, rotate=90)
    assert res.face["method"] != "manual" and res.record.parameters["rotate"] == 90
    x0, y0, x1, y1 = res.face["box"]
    assert 200 < (x0 + x1) / 2 < 440 and y1 <= 480  # in the turned (upright, 640x480) frame, where the face is
    view = load_analysis(case, find_analysis(case, res.analysis_id))
    assert view.frame.shape == frame_640.shape  # turned back upright, as analysed
    with pytest.raises(InputError, match="0, 90, 180 or 270 degrees, not 45"):
        analyze_case(case, tiny_engine, detector, rotate=45)
    assert len(case.analyses()) == 1 and case.failed_analyses() == []  # refused before any work


def test_a_box_drawn_on_the_stored_frame_follows_the_frame_s_turn(tmp_path: Path, frame_640, tiny_models,
                                                                   detector) -> None:
    """The window's box is drawn on the frame as stored; analysed turned, it is turned with the frame."""
    from forensic_face.services.workbench import Workbench
    from forensic_face.vision.frames import turn_box

    src = tmp_path / "sideways.png"
    cv2.imwrite(str(src), cv2.cvtColor(np.ascontiguousarray(np.rot90(frame_640, 1)), cv2.COLOR_RGB2BGR))
    case = Case.create(tmp_path / "case", "C-6", "Analyst")
    case.add_evidence([src])
    drawn = (100.0, 250.0, 260.0, 420.0)  # on the stored 480x640 frame
    wb = Workbench(tiny_models, "cpu")
    wb.analyze(case, "sideways.png", None, False, drawn, None, rotate=90)
    rec = wb.case_state(case).latest.record
    assert rec.face.method == "manual" and rec.parameters["rotate"] == 90
    assert rec.face.box == pytest.approx(turn_box(drawn, 90, 480, 640))
