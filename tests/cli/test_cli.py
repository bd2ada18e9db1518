import subprocess
import sys

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
