import subprocess
import sys
from pathlib import Path

import pytest

from forensic_face.cli import main


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "bench" in out


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "forensic_face", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("forensic-face ")


def test_bad_usage_exits_2(capsys):
    try:
        code = main(["no-such-command"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2


def test_demo_runs_and_finds_the_face(tmp_path):
    """The README's main command: builds the demo inputs, finds the face, writes the overview."""
    import json
    import subprocess
    import sys

    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "forensic_face", "demo", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (out / "inputs" / "cctv_frame.jpg").is_file() and (out / "inputs" / "cctv_audio.wav").is_file()
    x0, y0, x1, y1 = summary["face"]["box"]
    assert 380 < (x0 + x1) / 2 < 540 and 130 < (y0 + y1) / 2 < 260  # where the demo placed the face
    assert summary["audio"]["feature_dim"] == 715
    assert 90 < summary["audio"]["pitch_hz"] < 160
    assert (out / "demo_overview.png").stat().st_size > 10_000
    if "analysis" in summary:  # with the shipped models: a case, a search and the PDF report
        from forensic_face.store.case import Case

        report = summary["report"]
        assert Path(report["path"]).read_bytes().startswith(b"%PDF-") and report["pages"] >= 4
        assert report["verified"] and summary["analysis"]["search"]["candidates"]
        assert Case.open(summary["case"]).read_log()[-1]["action"] == "report.exported"


def test_progress_line_rate_counts_only_the_work_done_here(monkeypatch) -> None:
    """A resumed task starts at step 500 of 1000: rate and ETA come from the steps done since then."""
    import io

    from forensic_face.core import progress as progress_mod

    clock = iter([100.0, 110.0])
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    p = progress_mod.console_progress(out)
    p.update(500, 1000, "resumed")
    p.update(600, 1000, "later")  # 100 steps in 10 s
    line = out.getvalue().split("\r")[-1]
    assert "600/1000" in line and " 10.0/s" in line and "eta    40s" in line


def test_analyze_without_a_face_says_how_to_give_the_box_once_and_logs_the_failure(tmp_path, tiny_models,
                                                                                   capsys) -> None:
    import cv2
    import numpy as np

    from forensic_face.cli import main
    from forensic_face.store.case import Case

    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((240, 320, 3), 128, np.uint8))
    case = Case.create(tmp_path / "case", "C-1", "Analyst")
    case.add_evidence([wall])
    capsys.readouterr()
    assert main(["analyze", str(case.root), "--models", str(tiny_models), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "no face found in the 320x240 frame" in err and err.count("--box x0,y0,x1,y1") == 1
    assert err.lower().count("by hand") == 1
    assert [f.frame for f in Case.open(case.root).failed_analyses()] == ["wall.png"]
    box = main(["analyze", str(case.root), "--models", str(tiny_models), "--device", "cpu", "--box",
                "700,10,20,900"])
    assert box == 1 and "is not x0,y0 (top left) then x1,y1" in capsys.readouterr().err


def test_the_recognisers_arithmetic_is_chosen_on_the_command_line_and_recorded_with_the_analysis(
        tmp_path, tiny_models, frame_640, capsys) -> None:
    """`analyze --precision bfloat16`: the analysis record and its audit entry say which arithmetic the
    recognisers ran in; an unknown one is refused by the parser."""
    import json

    import cv2

    from forensic_face.cli import main
    from forensic_face.store.case import RESULTS_DIR, Case

    src = tmp_path / "cam1.png"
    cv2.imwrite(str(src), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    case = Case.create(tmp_path / "case", "C-9", "Analyst")
    case.add_evidence([src])
    args = ["analyze", str(case.root), "--models", str(tiny_models), "--device", "cpu"]
    assert main([*args, "--precision", "bfloat16"]) == 0
    record = json.loads((case.root / RESULTS_DIR / "analysis-001" / "analysis-001.json").read_text())
    assert record["engine"]["precision"] == "bfloat16"
    entry = [e for e in Case.open(case.root).read_log() if "precision" in e.get("details", {})][-1]
    assert entry["details"]["precision"] == "bfloat16"
    assert main([*args, "--precision", "float32"]) == 0
    record = json.loads((case.root / RESULTS_DIR / "analysis-002" / "analysis-002.json").read_text())
    assert record["engine"]["precision"] == "float32"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*args, "--precision", "half"])
    assert stop.value.code == 2 and "invalid choice: 'half'" in capsys.readouterr().err


@pytest.mark.parametrize("share", ["1.5", "-0.1"])
def test_a_teacher_share_outside_0_to_1_is_refused_before_any_work(tmp_path, capsys, share) -> None:
    """`tune-sface --teacher-share` mixes the tuned weights with SFace's: a share outside 0 .. 1 is refused at once,
    with what it means, before the data is read or anything is written."""
    out = tmp_path / "run"
    rc = main(["tune-sface", "--data", str(tmp_path / "nowhere"), "--out", str(out), "--teacher-share", share])
    assert rc != 0
    err = capsys.readouterr().err
    assert "--teacher-share must lie in 0 .. 1" in err and f"not {float(share):g}" in err
    assert not out.exists()
