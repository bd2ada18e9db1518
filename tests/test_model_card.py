"""The model card shipped in resources/models is what scripts/model_card.py writes from the bundle's files beside
it, and the script refuses an evaluation made with other weights than the bundle's."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "resources" / "models"


def _bundle_files(dest: Path) -> Path:
    """The shipped bundle's JSON files (what the card is written from), copied into ``dest``."""
    for path in MODELS.glob("*.json"):
        shutil.copy(path, dest / path.name)
    return dest


def _write_card(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "model_card.py"), "--models", str(folder)],
                          capture_output=True, text=True, timeout=300)


def test_the_shipped_card_is_the_one_its_files_give(tmp_path: Path) -> None:
    folder = _bundle_files(tmp_path)
    proc = _write_card(folder)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "MODEL_CARD.md").read_text() == (MODELS / "MODEL_CARD.md").read_text(), (
        "resources/models/MODEL_CARD.md is out of date: run .venv/bin/python scripts/model_card.py")


def test_an_evaluation_of_other_weights_is_refused(tmp_path: Path) -> None:
    folder = _bundle_files(tmp_path)
    ev = json.loads((folder / "evaluation.json").read_text())
    ev["engine"]["weights_sha256"] = "0" * 64
    (folder / "evaluation.json").write_text(json.dumps(ev))
    proc = _write_card(folder)
    assert proc.returncode != 0
    assert f"{folder / 'evaluation.json'} was made with version" in proc.stderr
    assert "forensic-face evaluate" in proc.stderr
    assert not (folder / "MODEL_CARD.md").exists()
