"""What the analyst records about a case after the fact: withdrawn analyses, notes, failed analyses and where
the evidence came from. All of it is logged, nothing is deleted, and verification still passes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.cli import main
from forensic_face.core.errors import CaseError
from forensic_face.store.case import Case


@pytest.fixture()
def case(tmp_path: Path) -> Case:
    src = tmp_path / "cam1.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    case = Case.create(tmp_path / "case", "C-9", "Analyst")
    case.add_evidence([src])
    for _ in range(2):
        case.commit_analysis(lambda aid: ({f"{aid}.json": json.dumps({"analysis_id": aid}).encode()}, {}))
    return case


def test_a_withdrawn_analysis_stays_in_the_case_marked_with_its_reason(case: Case) -> None:
    case.withdraw_analysis("analysis-001", "  wrong gallery chosen  ")
    first, second = case.analyses()
    assert first.withdrawn is not None and first.withdrawn.text == "wrong gallery chosen"
    assert first.withdrawn.analyst == "Analyst" and first.withdrawn.time and second.withdrawn is None
    assert first.record is not None and first.record.is_file()  # nothing deleted
    with pytest.raises(CaseError, match="already withdrawn"):
        case.withdraw_analysis("analysis-001", "again")
    for bad, match in (("analysis-007", "records no analysis"), ("../x", "records no analysis")):
        with pytest.raises(CaseError, match=match):
            case.withdraw_analysis(bad, "a reason")
    for reason, match in (("   ", "empty"), ("a\x00b", "control characters"), ("x" * 2001, "at most 2000")):
        with pytest.raises(CaseError, match=match):
            case.withdraw_analysis("analysis-002", reason)
    assert case.analyses()[1].withdrawn is None  # the refusals changed nothing
    assert case.verify().ok


def test_notes_are_kept_in_order_with_who_wrote_them(case: Case) -> None:
    case.add_note("analysis-002", "face partly occluded by a cap;\nleft eye marked by hand")
    case.add_note("analysis-002", "second look: the cap's logo matches exhibit 4")
    notes = case.analyses()[1].notes
    assert [n.text for n in notes] == ["face partly occluded by a cap;\nleft eye marked by hand",
                                       "second look: the cap's logo matches exhibit 4"]
    assert case.analyses()[0].notes == () and case.verify().ok
    with pytest.raises(CaseError, match="records no analysis"):
        case.add_note("analysis-003", "nothing to note on")


def test_provenance_is_logged_and_the_latest_record_is_shown(case: Case) -> None:
    name = case.evidence[0].name
    case.set_provenance(name, "EX-12", "PC Smith", "2026-11-30 14:05")
    case.set_provenance(name, "EX-12a", "PC Smith", "2026-11-30 14:05")
    prov = case.provenance()[name]
    assert (prov.exhibit, prov.received_from, prov.received_at) == ("EX-12a", "PC Smith", "2026-11-30 14:05")
    assert [e["details"]["exhibit"] for e in case.read_log() if e["action"] == "evidence.provenance"] == [
        "EX-12", "EX-12a"]  # both stay in the log
    with pytest.raises(CaseError, match="no evidence named"):
        case.set_provenance("other.png", "EX-1", "", "")
    with pytest.raises(CaseError, match="at least one"):
        case.set_provenance(name, " ", "", "")
    assert case.verify().ok


def test_the_case_commands_record_withdrawals_notes_and_provenance(case: Case,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = str(case.root)
    assert main(["case", "withdraw", root, "analysis-002", "--reason", "wrong face box"]) == 0
    assert "analysis-002 withdrawn" in capsys.readouterr().out
    assert main(["case", "note", root, "analysis-001", "compared with the custody photo"]) == 0
    assert main(["case", "provenance", root, case.evidence[0].name, "--exhibit", "EX-3", "--received-from",
                 "DC Jones"]) == 0
    assert main(["case", "withdraw", root, "analysis-002", "--reason", "again"]) == 1
    assert "already withdrawn" in capsys.readouterr().err
    refs = Case.open(root).analyses()
    assert refs[1].withdrawn.text == "wrong face box" and refs[0].notes[0].text == "compared with the custody photo"
    assert Case.open(root).provenance()[case.evidence[0].name].exhibit == "EX-3"


def test_an_exported_view_is_written_and_logged_and_may_lie_in_the_case_folder(case: Case, tmp_path: Path) -> None:
    png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    entry = case.export_view(case.root / "frame-export.png", png, {"view": "frame", "caption": "C-9 · cam1.png",
                                                                  "evidence": case.evidence[0].name})
    assert (case.root / "frame-export.png").read_bytes() == png and entry["action"] == "view.exported"
    assert entry["details"]["sha256"] == hashlib.sha256(png).hexdigest()
    assert case.verify().ok  # logged: not "added outside the tool"
    (case.root / "frame-export.png").write_bytes(png + b"x")
    assert not case.verify().ok  # and checked like a report written into the case
