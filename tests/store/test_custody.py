"""Chain of custody under attack: tampering of every kind the log can know of, anchors beyond the folder,
two processes at once, kills in every write phase, hostile metadata, and failures a user can cause.

Each tampering test does what a defence expert with write access to the folder did to the landed code
(reproduced there: every one of them verified OK or was repaired by the next write)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.core.errors import CaseError, CaseFormatError, CaseIntegrityError
from forensic_face.store.audit import GENESIS, UnitKey, canonical, entry_hash, new_key_file
from forensic_face.store.case import Case

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _jpeg(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture()
def case(tmp_path: Path) -> Case:
    c = Case.create(tmp_path / "case", "2026-117", "A. Analyst", "Burglary, Elm St")
    c.add_evidence([_jpeg(tmp_path / "src" / "cam1.jpg", 1), _jpeg(tmp_path / "src" / "cam2.jpg", 2)])
    return c


def _analysis(case: Case, verdict: str = "no confident match") -> str:
    def build(aid: str):
        record = {"analysis_id": aid, "frame_evidence": case.evidence[0].name, "images": {
            "input_face": f"results/{aid}/input_face.png"}, "search": {"verdict": verdict, "candidates": []}}
        png = cv2.imencode(".png", np.full((8, 8), 100, np.uint8))[1].tobytes()
        return {f"{aid}.json": json.dumps(record).encode(), "input_face.png": png}, {"verdict": verdict}

    aid, _ = case.commit_analysis(build)
    return aid


def _problems(case: Case, **kw) -> str:
    report = Case.open(case.root).verify(**kw)
    assert not report.ok
    return "\n".join(report.problems)


def _chain(entries: list[dict]) -> list[dict]:
    """Re-link and re-hash a whole log, as an attacker who rewrites it would."""
    prev = GENESIS
    out = []
    for seq, e in enumerate(entries, start=1):
        e = {k: v for k, v in e.items() if k not in ("hash", "seal")}
        e.update(seq=seq, prev=prev)
        e["hash"] = entry_hash(e)
        prev = e["hash"]
        out.append(e)
    return out


def _write_log(case: Case, entries: list[dict]) -> None:
    case.audit_file.write_bytes(b"".join(canonical(e) + b"\n" for e in entries))


def _rewrite_everything(case: Case, entries: list[dict], keep_seals: bool = False) -> None:
    """Log and case.json rewritten consistently: only an anchor beyond the folder can tell."""
    entries = entries if keep_seals else _chain(entries)
    _write_log(case, entries)
    meta = json.loads(case.case_file.read_text())
    meta["log_head"] = {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]}
    case.case_file.write_text(json.dumps(meta))


def _edit_meta(case: Case, **changes) -> None:
    meta = json.loads(case.case_file.read_text())
    meta.update(changes)
    case.case_file.write_text(json.dumps(meta))


# ------------------------------------------------------------------------------------------------ tampering
def test_swapped_evidence_with_its_record_edited_is_caught(case: Case, tmp_path: Path) -> None:
    item = case.evidence[0]
    path = case.evidence_dir / item.name
    os.chmod(path, 0o644)
    other = _jpeg(tmp_path / "other.jpg", 99)
    path.write_bytes(other.read_bytes())
    meta = json.loads(case.case_file.read_text())
    meta["evidence"][0].update(sha256=__import__("hashlib").sha256(other.read_bytes()).hexdigest(),
                               size=other.stat().st_size)
    case.case_file.write_text(json.dumps(meta))
    text = _problems(case)
    assert f"evidence/{item.name}: case.json's record (sha256, size) differs from the addition logged" in text
    assert "swapped" in text
    assert Case.open(case.root).verify().evidence_status[item.name] == "swapped"


def test_evidence_deleted_with_its_record_is_caught(case: Case) -> None:
    item = case.evidence[1]
    os.chmod(case.evidence_dir / item.name, 0o644)
    (case.evidence_dir / item.name).unlink()
    meta = json.loads(case.case_file.read_text())
    meta["evidence"] = [e for e in meta["evidence"] if e["name"] != item.name]
    case.case_file.write_text(json.dumps(meta))
    assert f"evidence/{item.name}: its addition is logged (seq 3) but case.json no longer lists it" in _problems(case)


def test_truncated_log_is_an_alarm_that_no_write_repairs(case: Case, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from forensic_face.cli import main

    _analysis(case)
    entries = case.read_log()
    _write_log(case, entries[:-2])
    assert "removed" in _problems(case)
    src = _jpeg(tmp_path / "new.jpg", 5)
    for write in (lambda c: c.append_log("note", {}), lambda c: c.add_evidence([src]), _analysis):
        with pytest.raises(CaseIntegrityError, match="record is in doubt"):
            write(Case.open(case.root))
    assert main(["case", "add", str(case.root), str(src)]) == 1
    assert "record is in doubt" in capsys.readouterr().err
    assert main(["report", str(case.root), "--out", str(tmp_path / "r.pdf")]) == 0
    assert "verification" in capsys.readouterr().err  # the report is written, says it failed, and is not logged
    assert len(Case.open(case.root).read_log()) == len(entries) - 2  # nothing appended over the gap
    n = len(entries)
    assert f"entries {n - 1}..{n} removed" in _problems(case)  # still caught after every attempt


def test_forged_appended_entry_is_caught_and_never_adopted(case: Case, tmp_path: Path) -> None:
    entries = case.read_log()
    genuine = case.evidence[0]

    def forge(action: str, details: dict) -> None:
        e = {"seq": entries[-1]["seq"] + 1, "time": entries[-1]["time"], "action": action, "analyst": "x",
             "user": "x", "software": "x", "details": details, "prev": entries[-1]["hash"]}
        e["hash"] = entry_hash(e)
        _write_log(case, entries + [e])

    planted = case.evidence_dir / ".incoming-1-planted.jpg"
    planted.write_bytes(_jpeg(tmp_path / "p.jpg", 7).read_bytes())
    digest = __import__("hashlib").sha256(planted.read_bytes()).hexdigest()
    forge("evidence.added", {"name": "planted.jpg", "sha256": digest, "size": planted.stat().st_size,
                             "kind": "image", "format": "JPEG", "original_name": "planted.jpg", "added": "",
                             "incoming": planted.name})
    assert "appended outside the tool" in _problems(case)
    with pytest.raises(CaseIntegrityError):
        Case.open(case.root).append_log("note", {})
    assert not (case.evidence_dir / "planted.jpg").exists() and planted.exists()  # not adopted, not touched

    forge("evidence.added", {**{k: v for k, v in genuine.__dict__.items()}, "name": "renamed.jpg",
                             "incoming": genuine.name})  # a forged entry calling a genuine file "incoming"
    with pytest.raises(CaseIntegrityError):
        Case.open(case.root).append_log("note", {})
    assert (case.evidence_dir / genuine.name).is_file() and not (case.evidence_dir / "renamed.jpg").exists()


def test_results_edited_deleted_or_added_are_caught(case: Case) -> None:
    from forensic_face.reports.content import find_analysis, load_analysis

    aid = _analysis(case)
    record = case.results_dir / aid / f"{aid}.json"
    record.write_text(record.read_text().replace("no confident match", "candidate: Somebody Else"))
    assert f"results/{aid}/{aid}.json: altered after it was written" in _problems(case)
    view = load_analysis(case, find_analysis(case, aid), Case.open(case.root).verify())
    assert not view.trustworthy and "changed after they were written" in view.problems[0]

    (case.results_dir / aid / "extra.png").write_bytes(b"x")
    assert f"results/{aid}/extra.png: added outside the tool" in _problems(case)
    import shutil

    shutil.rmtree(case.results_dir)
    text = _problems(case)
    assert f"results/{aid}/{aid}.json: missing" in text and "results/: the folder is missing" in text


@pytest.mark.parametrize("field", ["id", "title", "analyst", "created"])
def test_case_metadata_edits_are_caught(case: Case, field: str) -> None:
    _edit_meta(case, **{field: "2000-01-01T00:00:00" if field == "created" else "Someone Else"})
    assert f"the case {field} was changed after the case was created" in _problems(case)


def test_paths_from_the_log_never_leave_the_case(case: Case, tmp_path: Path) -> None:
    from forensic_face.services.workbench import Workbench

    other = Case.create(tmp_path / "other", "OTHER", "B")
    other.add_evidence([_jpeg(tmp_path / "o.jpg", 3)])
    _analysis(other)
    case.append_log("analysis", {"analysis": "../../other/results/analysis-001"})
    case.append_log("analysis", {"analysis": "analysis-009", "record": "results/../../other/results/x.json",
                                 "files": {"results/../../other/x": "0" * 64}})
    refs = case.analyses()
    assert [r.analysis_id for r in refs] == ["analysis-009"] and refs[0].record is None
    wb = Workbench()
    state = wb.case_state(Case.open(case.root))
    assert state.latest is None and state.analyses == ["analysis-009"]
    with pytest.raises(ValueError, match="no record file inside results"):
        wb.load_analysis(state.case, "analysis-009")
    with pytest.raises(ValueError, match="records no analysis"):
        wb.load_analysis(state.case, "../../other/results/analysis-001")
    assert "not a file inside results/" in _problems(case)


# ------------------------------------------------------------------------------------------------ anchors
def test_the_head_noted_earlier_exposes_a_rewritten_log(case: Case) -> None:
    head = Case.open(case.root).verify().head
    entries = case.read_log()
    entries[1]["details"] = {**entries[1]["details"], "original_name": "innocent.jpg"}
    _rewrite_everything(case, entries)
    evidence = json.loads(case.case_file.read_text())["evidence"]
    evidence[0]["original_name"] = "innocent.jpg"
    _edit_meta(case, evidence=evidence)
    assert Case.open(case.root).verify().ok  # everything recomputed: nothing inside the folder can tell
    for noted in (f"{head['seq']}:{head['hash']}", head["hash"][:16]):
        assert "the log was rewritten after it was noted" in _problems(case, expected_head=noted)
    with pytest.raises(CaseError, match="at least 12 hexadecimal"):
        Case.open(case.root).verify(expected_head="abc")


def test_unit_key_seals_every_entry_and_catches_a_rewrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "unit.key"
    key = new_key_file(key_file)
    with pytest.raises(CaseError, match="never overwritten"):
        new_key_file(key_file)
    monkeypatch.setenv("FORENSIC_FACE_AUDIT_KEY", str(key_file))
    case = Case.create(tmp_path / "sealed", "S-1", "A")
    case.add_evidence([_jpeg(tmp_path / "a.jpg", 1)])
    report = Case.open(case.root).verify()
    assert report.ok and report.sealed_with == key.key_id
    assert all(e["sealed_by"] == key.key_id and e["seal"] == key.seal(e["hash"]) for e in case.read_log())

    assert "sealed with another key" in _problems(case, key=UnitKey(b"k" * 32))

    entries = case.read_log()
    seals = [e["seal"] for e in entries]
    entries[1]["details"] = {**entries[1]["details"], "source": "/elsewhere"}
    forged = _chain(entries)  # every hash recomputed; the old seals kept, since new ones need the key
    for e, seal in zip(forged, seals, strict=True):
        e["seal"] = seal
    _rewrite_everything(case, forged, keep_seals=True)
    assert "its seal does not verify with the unit key" in _problems(case)
    _rewrite_everything(case, [{k: v for k, v in e.items() if k != "sealed_by"} for e in entries])
    assert "carry no seal of unit key" in _problems(case)
    monkeypatch.delenv("FORENSIC_FACE_AUDIT_KEY")
    assert Case.open(case.root).verify().ok  # without the key, an unsealed rewrite cannot be told apart
    _rewrite_everything(case, forged, keep_seals=True)
    assert any("set FORENSIC_FACE_AUDIT_KEY" in n for n in Case.open(case.root).verify().notes)


def test_verification_runs_are_recorded(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    from forensic_face.cli import main

    assert main(["case", "verify", str(case.root)]) == 0
    out = capsys.readouterr().out
    last = Case.open(case.root).read_log()[-1]
    assert last["action"] == "case.verified" and last["details"]["ok"] is True
    assert f"head: {last['seq']}:{last['hash']}" in out
    assert main(["case", "verify", str(case.root), "--no-log", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["logged"] is False
    assert Case.open(case.root).read_log()[-1]["seq"] == last["seq"]
    assert main(["case", "verify", str(case.root), "--expect-head", f"{last['seq']}:{last['hash'][:20]}"]) == 0


# ------------------------------------------------------------------------------------------------ processes
def _run_all(scripts: list[str]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-c", s], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for s in scripts]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_two_processes_adding_evidence_at_once_lose_nothing(tmp_path: Path) -> None:
    case = Case.create(tmp_path / "c", "C", "A")
    for rnd in range(5):
        files = [[_jpeg(tmp_path / f"r{rnd}" / f"p{w}_{i}.jpg", 1000 * rnd + 10 * w + i) for i in range(3)]
                 for w in range(2)]
        scripts = [textwrap.dedent(f"""
            from forensic_face.store.case import Case
            c = Case.open({str(case.root)!r})
            for f in {[str(f) for f in fs]!r}:
                c.add_evidence([f])
            """) for fs in files]
        for res in _run_all(scripts):
            assert res.returncode == 0, res.stderr
        now = Case.open(case.root)
        assert len(now.evidence) == 6 * (rnd + 1)
        assert now.verify().ok


def test_a_second_writer_waits_for_a_long_copy_and_never_removes_it(tmp_path: Path) -> None:
    case = Case.create(tmp_path / "c", "C", "A")
    big, small = _jpeg(tmp_path / "big.jpg", 1), _jpeg(tmp_path / "small.jpg", 2)
    slow = textwrap.dedent(f"""
        import time
        from forensic_face.store.case import Case
        real = Case._copy_in
        def copy_slowly(self, src, progress):
            out = real(self, src, progress)
            print("copied", flush=True)
            time.sleep(1.5)  # a large file: the copy sits in evidence/ under a temporary name
            return out
        Case._copy_in = copy_slowly
        Case.open({str(case.root)!r}).add_evidence([{str(big)!r}])
        """)
    first = subprocess.Popen([sys.executable, "-c", slow], env=ENV, stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "copied"
    second = subprocess.run([sys.executable, "-m", "forensic_face", "case", "add", str(case.root), str(small)],
                            env=ENV, capture_output=True, text=True, timeout=120)
    assert first.wait(timeout=60) == 0 and second.returncode == 0, second.stderr
    now = Case.open(case.root)
    assert sorted(e.original_name for e in now.evidence) == ["big.jpg", "small.jpg"]
    assert now.verify().ok


def test_two_analyses_at_once_get_their_own_ids(case: Case) -> None:
    script = textwrap.dedent(f"""
        import json, time
        from forensic_face.store.case import Case
        def build(aid):
            time.sleep(0.5)
            return {{aid + ".json": json.dumps({{"analysis_id": aid}}).encode()}}, {{}}
        print(Case.open({str(case.root)!r}).commit_analysis(build)[0])
        """)
    results = _run_all([script, script])
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sorted(r.stdout.strip() for r in results) == ["analysis-001", "analysis-002"]
    assert [a.analysis_id for a in Case.open(case.root).analyses()] == ["analysis-001", "analysis-002"]
    assert Case.open(case.root).verify().ok


KILLER = r"""
import json, os, signal, sys
K, WHEN, OP, ROOT, ARG = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
from forensic_face.store.case import Case
renames = []
def rename_then_maybe_die(src, dst, _rename=os.replace):
    renames.append(dst)
    stop = len(renames) == K
    if stop and WHEN == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    _rename(src, dst)
    if stop and WHEN == "after":
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = rename_then_maybe_die
case = Case.open(ROOT)
if OP == "add":
    case.add_evidence([ARG])
elif OP == "analysis":
    def build(aid):
        rec = {"analysis_id": aid, "images": {"input_face": f"results/{aid}/input_face.png"}}
        return {aid + ".json": json.dumps(rec).encode(), "input_face.png": b"png" * 50,
                "candidate-1.png": b"c" * 80}, {"verdict": "x"}
    case.commit_analysis(build)
else:
    case.append_log("note", {"text": ARG})
print("replaces", len(renames))
"""


@pytest.mark.parametrize("op", ["add", "analysis", "note"])
def test_a_kill_in_any_write_phase_leaves_the_old_or_the_new_state(case: Case, tmp_path: Path, op: str) -> None:
    """SIGKILL just before and just after each rename of a change (every write of this tool ends in one):
    the case then verifies with at most a note, the next change finishes or removes the interrupted one
    and logs it, and evidence or an analysis is there whole or not at all."""
    def run(k: int, when: str, arg: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", KILLER, str(k), when, op, str(case.root), arg], env=ENV,
                              capture_output=True, text=True, timeout=60)

    dry = run(0, "never", str(_jpeg(tmp_path / "dry.jpg", 500)))
    assert dry.returncode == 0, dry.stderr
    total = int(dry.stdout.split()[-1])
    assert total >= 3
    for k in range(1, total + 1):
        for when in ("before", "after"):
            before = Case.open(case.root)
            n_ev, n_an = len(before.evidence), len(before.analyses())
            res = run(k, when, str(_jpeg(tmp_path / f"k{k}{when}.jpg", 600 + 2 * k + (when == "after"))))
            assert res.returncode == -9, res.stderr
            report = Case.open(case.root).verify()
            assert report.ok, (k, when, report.problems)
            Case.open(case.root).append_log("note", {"after kill": [k, when]})
            after = Case.open(case.root)
            report = after.verify()
            assert report.ok and not report.notes, (k, when, report.problems, report.notes)
            assert len(after.evidence) in (n_ev, n_ev + 1) and len(after.analyses()) in (n_an, n_an + 1)
    ids = [a.analysis_id for a in Case.open(case.root).analyses()]
    removed = [a for e in Case.open(case.root).read_log() if e["action"] == "case.recovered"
               for a in e["details"]["unrecorded_analyses"]]
    assert len(ids + removed) == len(set(ids + removed))  # an id is never given twice, not even after a kill
    if op == "analysis":
        assert removed  # some kills came before the commit point and left a staged analysis


# ------------------------------------------------------------------------------------------------ hostile metadata
@pytest.mark.parametrize(("changes", "message"), [
    ({"title": ["a", "list"]}, "field 'title' is not text"),
    ({"analyst": 42}, "field 'analyst' is not text"),
    ({"log_head": {"seq": "7", "hash": "x"}}, "'log_head' is missing or malformed"),
    ({"pending": "soon"}, "'pending' is malformed"),
    ({"title": "x" * 20_000}, "more than 10000"),
])
def test_hostile_case_json_gets_a_specific_error(case: Case, changes: dict, message: str) -> None:
    _edit_meta(case, **changes)
    with pytest.raises(CaseFormatError, match=message):
        Case.open(case.root)


def test_new_case_fields_are_checked(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="at most 300"):
        Case.create(tmp_path / "a", "X", "A", "t" * 301)
    with pytest.raises(CaseError, match="one line"):
        Case.create(tmp_path / "b", "X\n2", "A")


# ------------------------------------------------------------------------------------------------ user failures
def test_read_only_case_and_full_disk_are_refused_before_any_change(case: Case, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import shutil

    from forensic_face.store import case as case_mod
    from forensic_face.store import lock

    before = case.audit_file.read_bytes()
    real_open = os.open

    def no_write(path, flags, *a):  # what a read-only mount or folder does (root ignores chmod)
        if str(path).endswith(".lock") and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(lock.os, "open", no_write)
    with pytest.raises(CaseError, match="read-only for this user"):
        Case.open(case.root).append_log("note", {})
    assert Case.open(case.root).verify().ok  # reading a read-only case still works
    monkeypatch.setattr(lock.os, "open", real_open)

    monkeypatch.setattr(case_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(CaseError, match="free some space"):
        Case.open(case.root).add_evidence([_jpeg(tmp_path / "x.jpg", 9)])
    assert case.audit_file.read_bytes() == before


def test_cli_refuses_bad_numbers_and_explains_file_system_errors(capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from forensic_face.cli import main
    from forensic_face.core.errors import describe_os_error

    for args in (["analyze", "c", "--top", "0"], ["analyze", "c", "--time", "nan"], ["analyze", "c", "--time", "-1"],
                 ["gallery", "search", "g.db", "x.jpg", "--top", "many"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "from 1 to 1000" in err and "0 or more" in err
    text = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/cases/x/results/a.png"))
    assert "/cases/x/results/a.png: the disk is full; free some space" in text and "unchanged" in text
