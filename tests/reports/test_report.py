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


def pdf_text(path: Path, layout: bool = True) -> str:
    """The PDF's text laid out as printed, or (``layout`` False) cell by cell in reading order."""
    return subprocess.run(["pdftotext", *(["-layout"] if layout else []), str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


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
    assert squash("recognisers in float32 arithmetic") in flat  # the arithmetic the analyses ran in
    assert squash(case.read_log()[0]["hash"][:16]) in flat  # audit entries with their hashes
    assert "same-person" in text or "error rates of the models are not on record" in text
    evaluation = models_dir() / "evaluation.json"
    if evaluation.is_file():  # the shipped error rates are printed with their 95 % intervals
        shipped = json.loads(evaluation.read_text())
        severe = shipped["levels"]["severe"][f"{shipped.get('product_scores', 'recon')}_with_audio"]  # the product's
        if (shipped.get("calibration") or {}).get("quality_range"):  # its known limit is stated
            assert "partly covered (scarf, mask) or very noisy measures as sharp" in " ".join(text.split())
        lo, hi = severe["ci95"]["false_match_rate"]
        assert f"({lo:.1%}–{hi:.1%})".replace("%", "") in flat  # the bracket under the figure in its cell
        assert "Wilson's interval" in text
        if "reference" in shipped["levels"]["clean"]:  # SFace as published, measured beside the models, is named
            clean = shipped["levels"]["clean"]["reference"]["at_0.363"]["accuracy"]
            assert f"{shipped['reference']['name']} (not tuned" in " ".join(text.split())
            assert squash(f"clean {clean:.1%}") in flat
        rows = shipped.get("identification", {}).get("levels", {}).get("clean", {}).get("by_fpir_setting")
        if rows:  # what each false-lead setting gave, the one these searches used marked
            words = " ".join(text.split())
            one = next(r for r in rows if r["fpir"] == 0.01)
            false_leads = 1 - one["not_enrolled_no_confident_match"]["rate"]
            assert f"1.0% (used here): {false_leads:.1%} false leads" in words
            assert "5.0%: " in words and "5.0% (used here)" not in words
        installed = json.loads((models_dir() / "models.json").read_text())
        cfg = installed["record"].get("recogniser", {}).get("tuning", {}).get("config", {})
        if installed["version"] == shipped["engine"]["model_version"] and cfg.get("teacher_share"):
            assert (f"then every tuned weight moved {cfg['teacher_share']:g} of the way back to SFace's published "
                    "value") in " ".join(text.split())  # the method says the tuned student was moved back
        comp = (shipped.get("engine") or {}).get("companion")
        if comp:  # how the two recognisers are joined, as the shipped bundle joins them
            assert ("a weighted mean of the two cosines" if comp.get("probe_weight") else "× the second's") in \
                " ".join(text.split())
            cross = (comp.get("sharp") or {}).get("cross")
            assert (f"{cross:.0%} of the first's cosine compares the probe's tuned embedding with the gallery face's "
                    "published SFace embedding" in " ".join(text.split())) == bool(cross)
    entry = case.read_log()[-1]
    head = entry["details"]["covers_head"]  # the head the report was made from: the last entry before its own
    assert head == {"seq": entry["seq"] - 1, "hash": entry["prev"]}
    words = " ".join(text.split())
    assert "Audit log head" in text and squash(head["hash"]) in flat  # the anchor, in full
    assert f"--expect-head {head['seq']}:{head['hash'][:16]}" in words
    gallery = json.loads((case.results_dir / "analysis-001" / "analysis-001.json").read_text())["search"]["gallery"]
    assert gallery["people"] == 2 and len(gallery["content_sha256"]) == 64
    assert squash(gallery["content_sha256"]) in flat and "2 people" in words  # the gallery searched, identified
    assert gallery["arithmetic"] == ["float32"] and squash("(made in float32 arithmetic)") in flat
    assert entry["action"] == "report.exported"
    assert entry["details"]["sha256"] == hashlib.sha256((tmp_path / "report.pdf").read_bytes()).hexdigest()


def test_an_analysis_in_another_arithmetic_than_the_figures_says_so(analysed_case: Case, tiny_models: Path,
                                                                   detector, tmp_path: Path) -> None:
    """The error rates were measured in float32; an analysis whose recognisers ran in bfloat16 says so beside them
    (and the analyses in float32 alone do not)."""
    from forensic_face.engine.inference import FaceEngine

    assert squash("rounding between") not in squash(pdf_text(write_report(analysed_case, tmp_path / "a.pdf").path))
    case = Case.create(tmp_path / "case", "CR-2026/18", "Analyst")
    case.add_evidence([analysed_case.evidence_path("cam1.jpg")])
    analyze_case(case, FaceEngine(tiny_models, device="cpu", precision="bfloat16"), detector, use_audio=False)
    text = squash(pdf_text(write_report(case, tmp_path / "b.pdf").path))
    assert squash("recognisers in bfloat16 arithmetic") in text  # the analysis' Models line
    assert squash("The recognisers ran in bfloat16 arithmetic in the analysis of this report, and in float32 for "
                  "the figures below") in text


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


def _copy(case: Case, dst: Path) -> Case:
    from forensic_face.store.case import copy_case

    copy_case(case.root, dst)
    return Case.open(dst)


def _section(text: str, start: str, end: str | None = None) -> str:
    """The report's text from the heading ``start`` to ``end`` (or its end)."""
    body = text[text.index(start):]
    return body[:body.index(end)] if end else body


def test_withdrawn_notes_failed_and_provenance_are_printed(analysed_case: Case, tmp_path: Path) -> None:
    case = _copy(analysed_case, tmp_path / "copy")
    case.withdraw_analysis("analysis-002", "wrong box: the face of a bystander was analysed")
    case.add_note("analysis-001", "Compared with the <b>original</b> recording.\nThe cap hides the hairline.")
    case.log_failed_analysis("cam1.jpg", None, "no face found in the frame (tried dlib and Haar)", {})
    case.set_provenance("cam1.jpg", "EX-17/3", "PC Jan Kowalski", "2026-11-30 14:05")
    info = write_report(case, tmp_path / "r.pdf")
    text = pdf_text(Path(info.path))
    words = " ".join(text.split())
    assert info.verified and info.analyses == 2  # a withdrawn analysis is still in the report
    assert "Analysis analysis-002 — WITHDRAWN" in text
    assert re.search(r"^analysis-002 .*\n\(WITHDRAWN\)", text, re.MULTILINE)  # marked in the summary
    withdrawn = _section(words, "Analysis analysis-002 — WITHDRAWN", "Frame and face")
    assert "Reason: wrong box: the face of a bystander was analysed" in withdrawn
    assert "Łucja Nowak <analyst>" in withdrawn and "must not be relied on" in withdrawn
    assert "WITHDRAWN" not in _section(words, "Analysis analysis-001", "Analysis analysis-002")
    note = _section(text, "Analyst's notes", "Frame and face")  # printed with its analysis, lines kept
    assert "Compared with the <b>original</b> recording.\n The cap hides the hairline." in note
    logged = [e for e in case.read_log() if e["action"] == "analysis.note"][-1]  # the note's own entry
    assert "Łucja Nowak <analyst>" in note and logged["time"][:19].replace("T", " ") in note
    failed = _section(words, "Failed analyses", "1. Evidence and integrity")
    assert squash("no face found in the frame (tried dlib and") in squash(failed) and "cam1.jpg" in failed
    provenance = _section(words, "Exhibits and provenance", "Verification")
    assert "cam1.jpg EX-17/3 PC Jan Kowalski 2026-11-30 14:05" in provenance
    assert "cam1.wav not recorded not recorded not recorded" in provenance
    log = squash(_section(pdf_text(Path(info.path), layout=False), "Audit log (", "Examiner's declaration"))
    for said in ("analysis-002 WITHDRAWN; reason: wrong box", "note on analysis-001: Compared with the",
                 "cam1.jpg: exhibit EX-17/3; received from PC Jan Kowalski", "failed: no face found"):
        assert squash(said) in log, said
    declaration = _section(words, "Examiner's declaration")
    assert "analysis-002 was withdrawn" in declaration and "investigative lead, not an identification" in declaration
    assert "Examiner Łucja Nowak <analyst>" in declaration and "Signature" in declaration
    assert f"Date {case.read_log()[-1]['time'][:10]}" in declaration


def test_the_analyses_chosen_go_in_and_the_others_are_named_as_left_out(analysed_case: Case, tmp_path: Path) -> None:
    from forensic_face.cli import main

    case = _copy(analysed_case, tmp_path / "copy")
    info = write_report(case, tmp_path / "r.pdf", analyses=["analysis-002"])
    words = " ".join(pdf_text(Path(info.path)).split())
    assert info.analyses == 1 and info.left_out == ["analysis-001"]
    assert "2. Analysis analysis-002" in words and "Analysis analysis-001" not in words
    assert "Left out of this report at the analyst's choice: analysis-001." in words
    assert "Left out of this report at the analyst's choice: analysis-001" in _section(words, "Examiner's declaration")
    logged = case.read_log()[-1]["details"]
    assert logged["analyses"] == ["analysis-002"] and logged["left_out"] == ["analysis-001"]
    with pytest.raises(CaseError, match="analysis-009"):
        write_report(case, tmp_path / "x.pdf", analyses=["analysis-001", "analysis-009"])
    assert not (tmp_path / "x.pdf").exists()
    case.withdraw_analysis("analysis-001", "the wrong gallery was searched")
    info = write_report(case, tmp_path / "none.pdf", analyses=[])
    words = " ".join(pdf_text(Path(info.path)).split())
    assert info.analyses == 0 and "No analysis is in this report." in words
    assert "left out of this report at the analyst's choice: analysis-001 (withdrawn), analysis-002." in words.lower()
    out = tmp_path / "cli.pdf"
    assert main(["report", str(case.root), "--out", str(out), "--analyses", "analysis-001, analysis-002"]) == 0
    assert Case.open(case.root).read_log()[-1]["details"]["left_out"] == []
    assert main(["report", str(case.root), "--out", str(out), "--analyses", "analysis-001"]) == 0
    assert Case.open(case.root).read_log()[-1]["details"]["left_out"] == ["analysis-002"]
    assert main(["report", str(case.root), "--out", str(out), "--analyses", "analysis-7"]) == 1
    assert main(["report", str(case.root), "--out", str(out), "--analyses", " , "]) == 1


def _old_layout_case(analysed_case: Case, root: Path, analyses: int) -> Case:
    """A case as versions before the one-unit analyses wrote it: every result file in results/ itself, logged
    by its own ``result.image`` entry, then the record and its ``analysis`` entry."""
    case = Case.create(root, "OLD-1", "Łucja Nowak <analyst>", "Written by an older version")
    case.add_evidence([analysed_case.evidence_path("cam1.jpg"), analysed_case.evidence_path("cam1.wav")])
    new = analysed_case.results_dir / "analysis-001"
    template = json.loads((new / "analysis-001.json").read_text())
    for k in range(1, analyses + 1):
        aid, record = f"analysis-{k:03d}", json.loads(json.dumps(template))
        files = {role: new / Path(rel).name for role, rel in record["images"].items()}
        files.update({f"candidate {i}": new / Path(c["thumbnail"]).name
                      for i, c in enumerate(record["search"]["candidates"], 1)})
        for role, src in files.items():
            rel = f"results/{aid}-{role.replace(' ', '-')}.png"
            (case.root / rel).write_bytes(src.read_bytes())
            case.append_log("result.image", {"analysis": aid, "role": role, "result": rel,
                                             "sha256": hashlib.sha256(src.read_bytes()).hexdigest()})
            if role in record["images"]:
                record["images"][role] = rel
            else:
                record["search"]["candidates"][int(role.split()[1]) - 1]["thumbnail"] = rel
        data = json.dumps({**record, "analysis_id": aid}).encode()
        (case.results_dir / f"{aid}.json").write_bytes(data)
        case.append_log("analysis", {"analysis": aid, "frame": {"evidence": "cam1.jpg"},
                                     "result": f"results/{aid}.json", "sha256": hashlib.sha256(data).hexdigest()})
    return case


def test_an_old_layout_audit_log_is_grouped_per_analysis(analysed_case: Case, tmp_path: Path) -> None:
    case = _old_layout_case(analysed_case, tmp_path / "old", analyses=8)
    entries = case.read_log()
    per_file = [e for e in entries if e["action"] == "result.image"]
    per_analysis = len(per_file) // 8
    assert per_analysis >= 6 and len(per_file) == 8 * per_analysis
    info = write_report(case, tmp_path / "old.pdf")
    assert info.verified and info.analyses == 8
    text = pdf_text(Path(info.path))
    log = _section(pdf_text(Path(info.path), layout=False), "Audit log (", "Examiner's declaration")
    flat = squash(log)
    assert squash(f"Audit log ({len(entries)} entries; the {len(per_file)} per-file entries of 8 analyses saved by "
                  f"an older version shown one row per analysis)") in flat
    assert flat.count(squash(f"result.image × {per_analysis}")) == 8 and flat.count("result.image") == 8
    layout = f"the {per_analysis} result files of analysis-003, one entry each (an older version's layout)"
    assert squash(layout) in flat
    for first, last in zip(per_file[::per_analysis], per_file[per_analysis - 1::per_analysis], strict=True):
        assert f"{first['seq']}–{last['seq']}" in log and last["hash"] in flat  # the last entry's hash, in full
        assert first["hash"][:16] not in flat
    rows = len(entries) - len(per_file) + 8  # one row per entry, one per group
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", log)) == rows  # each time whole, on one line
    pages = text.split("\f")
    first_log_page = next(i for i, p in enumerate(pages) if "Audit log (" in p)
    assert len(pages[first_log_page:]) - 1 <= 2  # the 64-entry log: two pages at most, declaration included


def test_long_words_break_only_at_separators() -> None:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from forensic_face.reports.pdf import FONT, _register_fonts, fit_lines

    _register_fonts()
    path = "/media/analyst/USB-stick/Case_2026_17/camera-3/recordings/2026-11-30/cam3_1405.mp4"
    lines = fit_lines(path, 120, FONT, 7.3)
    assert len(lines) > 1 and "".join(lines) == path and all(stringWidth(x, FONT, 7.3) <= 120 for x in lines)
    assert all(x[-1] in "/\\,;=_-." for x in lines[:-1])  # a path breaks after its separators
    sentence = f"an ordinary sentence copied from {path} today"
    words = [w for line in fit_lines(sentence, 120, FONT, 7.3) for w in line.split()]
    assert words[:5] == sentence.split()[:5] and words[-1] == "today"  # words that fit are never split
    digest = "ab" * 32
    assert "".join(fit_lines(digest, 50, FONT, 7.3)) == digest  # no separator: cut only where it must be


def test_reconstructions_are_watermarked_and_the_difference_has_its_scale(analysed_case: Case) -> None:
    from dataclasses import replace

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from forensic_face.reports.content import find_analysis, load_analysis
    from forensic_face.reports.pdf import faces_figure

    view = load_analysis(analysed_case, find_analysis(analysed_case, "analysis-001"))
    grey = np.full((64, 64), 128, np.uint8)
    roles = ("input_face", "reconstruction", "reconstruction_no_audio")
    fig = faces_figure(replace(view, images={**{r: grey for r in roles}, "difference": np.full((64, 64), 3, np.uint8)}))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    height = pixels.shape[0]
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert set(panels) >= {"degraded input (aligned)", "reconstruction with audio", "reconstruction without audio",
                           "|reconstruction − input|"}

    def inside(ax) -> np.ndarray:
        b = ax.get_window_extent()
        return pixels[height - int(b.y1) + 4:height - int(b.y0) - 4, int(b.x0) + 4:int(b.x1) - 4]

    assert (inside(panels["degraded input (aligned)"]) == 128).all()  # the evidence-derived input: untouched
    for title in ("reconstruction with audio", "reconstruction without audio"):
        marked = np.abs(inside(panels[title]) - 128).max(axis=2) > 40
        assert 0.02 < marked.mean() < 0.4, title  # the label across the image, the face still visible
    bars = [ax for ax in fig.axes if ax.get_xlabel() == "grey levels"]
    assert len(bars) == 1 and bars[0].get_xlim()[0] == 0 and bars[0].get_xlim()[1] >= 3


@pytest.mark.skipif(shutil.which("pdffonts") is None, reason="pdffonts (poppler-utils) is not installed")
def test_every_font_is_embedded(analysed_case: Case, tmp_path: Path) -> None:
    info = write_report(analysed_case, tmp_path / "fonts.pdf")
    listing = subprocess.run(["pdffonts", info.path], check=True, capture_output=True, text=True).stdout
    fonts = listing.splitlines()[2:]
    assert len(fonts) >= 3 and "DejaVuSansMono" in listing
    for row in fonts:  # name, type, encoding, then emb sub uni
        assert row.split()[-5] == "yes", row


def test_the_tuning_described_is_the_evaluated_bundles(tmp_path: Path) -> None:
    """The method section's account of the recogniser's tuning comes from models.json only when that is the bundle
    whose figures evaluation.json holds; another bundle's (or none) says nothing about it."""
    from forensic_face.reports.content import _tuning

    cfg = {"frozen_blocks": 6, "epochs": 20, "teacher_share": 0.2, "margin_weight": 0.5}
    (tmp_path / "models.json").write_text(json.dumps(
        {"version": "ff-a", "record": {"recogniser": {"tuning": {"config": cfg}}}}))
    assert _tuning(tmp_path, {"engine": {"model_version": "ff-a"}}) == {"teacher_share": 0.2, "frozen_blocks": 6,
                                                                      "epochs": 20}
    assert _tuning(tmp_path, {"engine": {"model_version": "ff-b"}}) is None  # figures of another bundle
    assert _tuning(tmp_path, None) is None  # no evaluation on record
    (tmp_path / "models.json").write_text("{not json")
    assert _tuning(tmp_path, {"engine": {"model_version": "ff-a"}}) is None
