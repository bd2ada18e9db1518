"""The PDF case report: what an examiner reads in it (checked with pdftotext), and what it refuses."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from forensic_face.core.errors import CaseError
from forensic_face.paths import models_dir
from forensic_face.reports.pdf import write_report
from forensic_face.services.analysis import analyze_case
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.case import Case
from forensic_face.store.gallery import open_gallery

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="pdftotext (Debian package poppler-utils) is not installed")

HOSTILE_PERSON = "Ana <b>&amp; Żółć"


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def analysed_case(tmp_path_factory, frame_640, face_rgb, tiny_engine, detector) -> Case:
    from forensic_face.audio.synth import synth_speech

    tmp = tmp_path_factory.mktemp("report")
    cv2.imwrite(str(tmp / "cam1.jpg"), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    sf.write(tmp / "cam1.wav", synth_speech(4.0, 16000, seed=3), 16000)
    people = tmp / "people"
    for name, shift in ((HOSTILE_PERSON, 0), ("Someone_Else", 60)):
        (people / name).mkdir(parents=True)
        cv2.imwrite(str(people / name / "a.jpg"), cv2.cvtColor(np.roll(face_rgb, shift, axis=1), cv2.COLOR_RGB2BGR))
    case = Case.create(tmp / "case", "CR-2026/17", "Łucja Nowak <analyst>", "Shop robbery — camera 3")
    case.add_evidence([tmp / "cam1.jpg", tmp / "cam1.wav"])
    with open_gallery(tmp / "gallery.db", mode="create") as gallery:
        enroll_folder(gallery, people, tiny_engine, detector)
        analyze_case(case, tiny_engine, detector, gallery, top_k=2)
    analyze_case(case, tiny_engine, detector, use_audio=False)  # a second analysis: no audio, no gallery
    return case


def test_report_holds_what_an_examiner_needs(analysed_case: Case, tmp_path: Path) -> None:
    case = analysed_case
    info = write_report(case, tmp_path / "report.pdf")
    text = pdf_text(tmp_path / "report.pdf")
    flat = squash(text)
    assert info.pages >= 5 and info.analyses == 2 and info.verified
    for needle in ("Face examination report", "CR-2026/17", "Łucja Nowak <analyst>", "Shop robbery — camera 3",
                   "Evidence and integrity", "Analysis analysis-001", "Analysis analysis-002",
                   "Method and error rates", "Audit log", "not an identification", "Gallery search",
                   "Audio: not used in this analysis.", "No gallery was searched in this analysis."):
        assert needle in text, needle
    for item in case.evidence:  # full SHA-256 of every evidence file (wrapped in its table cell)
        assert item.sha256 in flat and item.name in text
    assert "verified" in text and "hash chain" in text
    assert f"page 1 of {info.pages}" in text and f"page {info.pages} of {info.pages}" in text
    assert squash(HOSTILE_PERSON) in flat  # names with markup print literally, nothing is interpreted
    assert squash(case.read_log()[0]["hash"][:16]) in flat  # audit entries with their hashes
    assert "same-person" in text or "error rates of the models are not on record" in text
    evaluation = models_dir() / "evaluation.json"
    if evaluation.is_file():  # the shipped error rates are printed with their 95 % intervals
        shipped = json.loads(evaluation.read_text())
        severe = shipped["levels"]["severe"]["recon_with_audio"]
        if (shipped.get("calibration") or {}).get("quality_range"):  # its known limit is stated
            assert "partly covered (scarf, mask) or very noisy measures as sharp" in " ".join(text.split())
        lo, hi = severe["ci95"]["false_match_rate"]
        assert f"({lo:.1%}–{hi:.1%})".replace("%", "") in flat  # the bracket under the figure in its cell
        assert "Wilson's interval" in text
        rows = shipped.get("identification", {}).get("levels", {}).get("clean", {}).get("by_fpir_setting")
        if rows:  # what each false-lead setting gave, the one these searches used marked
            words = " ".join(text.split())
            one = next(r for r in rows if r["fpir"] == 0.01)
            false_leads = 1 - one["not_enrolled_no_confident_match"]["rate"]
            assert f"1.0% (used here): {false_leads:.1%} false leads" in words
            assert "5.0%: " in words and "5.0% (used here)" not in words
    entry = case.read_log()[-1]
    head = entry["details"]["covers_head"]  # the head the report was made from: the last entry before its own
    assert head == {"seq": entry["seq"] - 1, "hash": entry["prev"]}
    words = " ".join(text.split())
    assert "Audit log head" in text and squash(head["hash"]) in flat  # the anchor, in full
    assert f"--expect-head {head['seq']}:{head['hash'][:16]}" in words
    gallery = json.loads((case.results_dir / "analysis-001" / "analysis-001.json").read_text())["search"]["gallery"]
    assert gallery["people"] == 2 and len(gallery["content_sha256"]) == 64
    assert squash(gallery["content_sha256"]) in flat and "2 people" in words  # the gallery searched, identified
    assert entry["action"] == "report.exported"
    assert entry["details"]["sha256"] == hashlib.sha256((tmp_path / "report.pdf").read_bytes()).hexdigest()


def test_confident_and_unconfident_verdicts_are_stated(analysed_case: Case, tmp_path: Path) -> None:
    saved = json.loads((analysed_case.results_dir / "analysis-001" / "analysis-001.json").read_text())
    text = pdf_text(Path(write_report(analysed_case, tmp_path / "r.pdf").path))
    if saved["search"]["confident"]:
        assert f"Investigative lead: {saved['search']['candidates'][0]['person']}" in text.replace("\n", " ")
    else:
        assert "No confident match" in text
    for cand in saved["search"]["candidates"]:
        assert f"{cand['match_probability']:.3f}" in text and f"{cand['similarity']:.3f}" in text
        assert cand["distance"] == pytest.approx((2 - 2 * cand["similarity"]) ** 0.5, abs=2e-3)  # both rounded
        assert f"{cand['distance']:.3f}" in text
    assert "Euclidean distance" in " ".join(text.split())  # the column heading


def test_tampered_evidence_and_results_are_reported_not_hidden(analysed_case: Case, tmp_path: Path) -> None:
    from forensic_face.store.case import copy_case

    copy_case(analysed_case.root, tmp_path / "copy")
    case = Case.open(tmp_path / "copy")
    ev = case.evidence_dir / case.evidence[0].name
    os.chmod(ev, 0o644)
    ev.write_bytes(ev.read_bytes() + b"tampered")
    res = case.results_dir / "analysis-001" / "reconstruction.png"
    cv2.imwrite(str(res), np.zeros((32, 32), np.uint8))
    info = write_report(case, tmp_path / "tampered.pdf")
    text = pdf_text(tmp_path / "tampered.pdf")
    assert not info.verified
    assert "Verification FAILED" in text and "ALTERED" in text
    assert "results/analysis-001/reconstruction.png: ALTERED" in text
    first = text[:text.index("1. Evidence and integrity")]  # the title page says so too
    assert "VERIFICATION FAILED" in first and "(ALTERED)" in first


def test_report_refuses_bad_targets_and_changes_no_evidence(analysed_case: Case, tmp_path: Path) -> None:
    case = analysed_case
    before = {p.name: p.read_bytes() for p in case.evidence_dir.iterdir()}
    with pytest.raises(CaseError, match="evidence"):
        write_report(case, case.evidence_dir / "x.pdf")
    with pytest.raises(CaseError, match="results"):
        write_report(case, case.results_dir / "analysis-001" / "x.pdf")
    with pytest.raises(CaseError, match=r"\.pdf"):
        write_report(case, tmp_path / "report.txt")
    (tmp_path / "dir.pdf").mkdir()
    with pytest.raises(CaseError, match="folder"):
        write_report(case, tmp_path / "dir.pdf")
    assert {p.name: p.read_bytes() for p in case.evidence_dir.iterdir()} == before
    assert Case.open(case.root).verify().ok


def test_planted_and_malformed_result_files_are_listed_not_fatal(analysed_case: Case, tmp_path: Path) -> None:
    from forensic_face.store.case import copy_case

    copy_case(analysed_case.root, tmp_path / "copy")
    case = Case.open(tmp_path / "copy")
    planted = case.results_dir / "analysis-009.json"
    planted.write_text('{"analysis_id": "analysis-009", "search": {"verdict": "candidate: Planted"}}')
    (case.results_dir / "analysis-002" / "analysis-002.json").write_text(
        '{"analysis_id": "analysis-002", "images": {"input_face": "../../etc/passwd"}, "search": 5')
    info = write_report(case, tmp_path / "r.pdf")
    text = " ".join(pdf_text(Path(info.path)).split())
    assert info.analyses == 1 and "Planted" not in text  # a file the log does not know is never shown as a result
    assert "results/analysis-009.json: added outside the tool" in text
    assert "analysis-002: " in text and "unreadable" in text
    assert "results/analysis-002/analysis-002.json: altered after it was written" in text


def test_a_hostile_title_still_gets_its_report(analysed_case: Case, tmp_path: Path) -> None:
    from forensic_face.store.case import copy_case

    copy_case(analysed_case.root, tmp_path / "copy")
    meta = json.loads((tmp_path / "copy" / "case.json").read_text())
    meta["title"] = ("Burglary " * 1112)[:10_000]  # 10,000 characters written into case.json by hand
    (tmp_path / "copy" / "case.json").write_text(json.dumps(meta))
    info = write_report(Case.open(tmp_path / "copy"), tmp_path / "long.pdf")
    text = " ".join(pdf_text(Path(info.path)).split())
    assert not info.verified and "(10,000 characters, shortened)" in text
    assert "the case title was changed after the case was created" in text


def test_cli_report(analysed_case: Case, tmp_path: Path) -> None:
    from forensic_face.cli import main

    out = tmp_path / "cli.pdf"
    assert main(["report", str(analysed_case.root), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF-")
    assert main(["report", str(tmp_path / "nope"), "--out", str(out)]) == 1


def test_report_shows_the_lbrp_the_analysis_used(analysed_case: Case) -> None:
    from forensic_face.audio.features import AudioFeatureExtractor
    from forensic_face.reports.content import find_analysis, load_analysis

    with_audio = load_analysis(analysed_case, find_analysis(analysed_case, "analysis-001"))
    without = load_analysis(analysed_case, find_analysis(analysed_case, "analysis-002"))
    t = with_audio.record.audio.timestamp_s
    ext = AudioFeatureExtractor()
    expected = ext(ext.load(analysed_case.evidence_path("cam1.wav")), np.array([t])).lbrp[0]
    assert with_audio.lbrp is not None and np.allclose(with_audio.lbrp, expected)
    assert without.lbrp is None and without.audio is None
