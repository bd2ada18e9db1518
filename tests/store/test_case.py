"""Case folders: evidence entry, chain of custody, verification, hostile input, atomic saves."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.core.errors import CaseError, CaseFormatError, EvidenceError
from forensic_face.store.case import Case, entry_hash


@pytest.fixture()
def jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "frame 01.jpg"
    path.parent.mkdir()
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture()
def wav(tmp_path: Path) -> Path:
    import soundfile as sf

    path = tmp_path / "src2" / "audio.wav"
    path.parent.mkdir()
    sf.write(path, 0.3 * np.sin(np.arange(8000) / 5.0), 16000)
    return path


@pytest.fixture()
def case(tmp_path: Path) -> Case:
    return Case.create(tmp_path / "case", "2026-117", "A. Analyst", "Burglary, Elm St")


def test_create_add_and_verify(case: Case, jpeg: Path, wav: Path) -> None:
    before = jpeg.read_bytes(), jpeg.stat().st_mtime_ns
    items = case.add_evidence([jpeg, wav])
    assert [i.kind for i in items] == ["image", "audio"]
    assert (jpeg.read_bytes(), jpeg.stat().st_mtime_ns) == before  # the source is only read
    stored = case.evidence_path(items[0].name)
    assert stored.read_bytes() == before[0]
    assert not os.access(stored, os.W_OK) or os.geteuid() == 0  # read-only (root may write anyway)
    assert oct(stored.stat().st_mode & 0o222) == "0o0"
    reopened = Case.open(case.root)
    assert [e.name for e in reopened.evidence] == [i.name for i in items]
    report = reopened.verify()
    assert report.ok, report.problems
    actions = [e["action"] for e in reopened.read_log()]
    assert actions == ["case.created", "evidence.added", "evidence.added"]


def test_duplicate_content_is_skipped_and_logged(case: Case, jpeg: Path, tmp_path: Path) -> None:
    case.add_evidence([jpeg])
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(jpeg.read_bytes())
    assert case.add_evidence([copy]) == []
    assert len(case.evidence) == 1
    assert case.read_log()[-1]["action"] == "evidence.duplicate_skipped"


def test_refuses_files_that_are_not_what_they_say(case: Case, tmp_path: Path, jpeg: Path) -> None:
    fake = tmp_path / "clip.wav"
    fake.write_bytes(jpeg.read_bytes())  # a JPEG named .wav
    with pytest.raises(EvidenceError, match="content is JPEG"):
        case.add_evidence([fake])
    junk = tmp_path / "x.jpg"
    junk.write_bytes(b"hello world, not an image")
    with pytest.raises(EvidenceError, match="not a recognised"):
        case.add_evidence([junk])
    empty = tmp_path / "e.jpg"
    empty.write_bytes(b"")
    with pytest.raises(EvidenceError, match="empty"):
        case.add_evidence([empty])
    link = tmp_path / "link.jpg"
    link.symlink_to(jpeg)
    with pytest.raises(EvidenceError, match="symbolic link"):
        case.add_evidence([link])
    assert case.evidence == [] and [e["action"] for e in case.read_log()] == ["case.created"]


def test_verify_names_altered_missing_and_added_evidence(case: Case, jpeg: Path, wav: Path) -> None:
    a, b = case.add_evidence([jpeg, wav])
    path_a = case.evidence_dir / a.name
    os.chmod(path_a, 0o644)
    data = bytearray(path_a.read_bytes())
    data[100] ^= 1
    path_a.write_bytes(bytes(data))
    (case.evidence_dir / b.name).unlink()
    (case.evidence_dir / "planted.jpg").write_bytes(jpeg.read_bytes())
    report = Case.open(case.root).verify()
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"evidence/{a.name}: altered" in text
    assert f"evidence/{b.name}: missing" in text
    assert "evidence/planted.jpg: added outside the tool" in text


def _rewrite_log(case: Case, entries: list[dict]) -> None:
    case.audit_file.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def test_verify_names_edited_removed_and_reordered_log_entries(case: Case, jpeg: Path, wav: Path) -> None:
    case.add_evidence([jpeg, wav])
    case.append_log("note", {"text": "first look"})
    entries = case.read_log()
    assert len(entries) == 4

    edited = [dict(e) for e in entries]
    edited[1]["details"] = {**edited[1]["details"], "original_name": "other.jpg"}
    _rewrite_log(case, edited)
    problems = Case.open(case.root).verify().problems
    assert any("line 2 (seq 2, evidence.added): edited" in p for p in problems)

    removed = [entries[0], entries[2], entries[3]]
    _rewrite_log(case, removed)
    assert any("entries 2..2 removed" in p for p in Case.open(case.root).verify().problems)

    reordered = [entries[0], entries[2], entries[1], entries[3]]
    _rewrite_log(case, reordered)
    problems = Case.open(case.root).verify().problems
    assert any("removed" in p or "out of order" in p for p in problems)

    truncated = entries[:3]
    _rewrite_log(case, truncated)
    assert any("entries 4 removed" in p for p in Case.open(case.root).verify().problems)

    # re-hashing an edited entry does not help: the next entry's link breaks
    forged = [dict(e) for e in entries]
    forged[1]["details"] = {**forged[1]["details"], "original_name": "forged.jpg"}
    forged[1]["hash"] = entry_hash(forged[1])
    _rewrite_log(case, forged)
    assert any("line 3 (seq 3): does not follow" in p for p in Case.open(case.root).verify().problems)

    _rewrite_log(case, entries)
    assert Case.open(case.root).verify().ok


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2, 3]", "top level is not an object"),
        (json.dumps({"schema": 99}).encode(), "schema version 99 is not supported"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
    ],
)
def test_malformed_case_files_get_clear_errors(case: Case, content: bytes, message: str) -> None:
    case.case_file.write_bytes(content)
    with pytest.raises(CaseFormatError, match=message):
        Case.open(case.root)


def test_hostile_evidence_names_and_huge_files(case: Case) -> None:
    meta = json.loads(case.case_file.read_text())
    meta["evidence"] = [{"name": "../../etc/passwd", "sha256": "0" * 64, "size": 1, "kind": "image"}]
    case.case_file.write_text(json.dumps(meta))
    with pytest.raises(CaseFormatError, match="not a plain file name"):
        Case.open(case.root)
    case.case_file.write_bytes(b" " * (5 << 20))
    with pytest.raises(CaseFormatError, match="refusing to read"):
        Case.open(case.root)


def test_symlinked_case_file_is_refused(case: Case, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(case.case_file.read_text())
    case.case_file.unlink()
    case.case_file.symlink_to(outside)
    with pytest.raises(CaseError, match="symbolic link"):
        Case.open(case.root)


def test_create_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(CaseError, match="not an empty folder"):
        Case.create(tmp_path / "busy", "1", "A")


WRITER = r"""
import sys, pathlib
from forensic_face.store.case import Case
root, src = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
case = Case.open(root)
i = 0
while True:
    i += 1
    p = src / f"f{i}.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0" + i.to_bytes(8, "big") * 5000)
    case.add_evidence([p])
    case.append_log("note", {"i": i})
    print(i, flush=True)
"""


def test_killed_while_saving_never_leaves_a_broken_case(case: Case, tmp_path: Path) -> None:
    """Kill a process that keeps adding evidence and writing the log at random moments, many times;
    after each kill the case verifies (an interrupted change is a note, never a problem), and after
    the next change, which finishes or removes it and logs that, it verifies clean."""
    src = tmp_path / "incoming"
    src.mkdir()
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    seen = 0
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(case.root), str(src)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.25, 0.6))  # interpreter start-up takes ~0.2 s; then it writes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reopened = Case.open(case.root)
        report = reopened.verify()
        assert report.ok, report.problems
        reopened.append_log("note", {"after": "kill"})
        report = reopened.verify()
        assert report.ok and report.notes == [], (report.problems, report.notes)
        n = len(reopened.evidence)
        assert n >= seen  # nothing that was saved is lost
        seen = n
    assert seen > 0


def test_case_commands(tmp_path: Path, jpeg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from forensic_face.cli import main

    root = tmp_path / "c"
    assert main(["case", "new", str(root), "--id", "X-1", "--analyst", "B. Examiner"]) == 0
    assert main(["case", "add", str(root), str(jpeg)]) == 0
    assert main(["case", "verify", str(root)]) == 0
    assert "OK: 1 evidence file(s) re-hashed" in capsys.readouterr().out
    stored = next((root / "evidence").iterdir())
    os.chmod(stored, 0o644)
    stored.write_bytes(b"\xff\xd8\xff tampered")
    assert main(["case", "verify", str(root)]) == 1
    captured = capsys.readouterr()
    assert f"evidence/{stored.name}: altered" in captured.out and "verification failed" in captured.err
    assert main(["case", "log", str(root)]) == 0
    assert "evidence.added" in capsys.readouterr().out
