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


def _joined_bundle(dest: Path, weight: float = 0.25) -> Path:
    """The shipped bundle's files made into those of a bundle that joins a companion (as `tune-sface --export
    --companion` writes them): the shipped student kept, beside the project's CNN of the bundle the autoencoder comes
    from; the shipped evaluation, labelled as the joined bundle's, and also saved as the previous one's."""
    folder = _bundle_files(dest)
    shutil.copy(folder / "evaluation.json", folder / "evaluation_previous.json")
    meta = json.loads((folder / "models.json").read_text())
    trained = meta["record"]["autoencoder"]  # the run that trained the autoencoder with the CNN
    tried = [round(0.05 * k, 2) for k in range(1, 13)]
    meta["record"] = {**meta["record"],
                      "autoencoder": {"from_bundle": meta["version"], "weights_sha256": meta["weights_sha256"],
                                      "record": meta["record"]},
                      "companion": {"from_bundle": trained["from_bundle"], "weights_sha256": trained["weights_sha256"],
                                    "source": f"the recogniser of bundle {trained['from_bundle']}",
                                    "record": trained["record"]},
                      "companion_weight": {"weights_tried": tried, "chosen": weight, "pairs": 600,
                                           "levels": ["clean", "mild", "severe"],
                                           "mean_log_likelihood": [-0.26 - 0.01 * abs(k - 4) for k in range(12)]}}
    meta["companion"] = {"architecture": "ff-cnn", "source": f"the recogniser of bundle {trained['from_bundle']}",
                         "embeds": "reconstruction", "mirror": True, "weight": weight,
                         "config": {"size": 64, "width": 48, "embed_dim": 128, "depth": 1}}
    meta["version"] = "ff-2026-12-06-0badc0de"
    (folder / "models.json").write_text(json.dumps(meta))
    ev = json.loads((folder / "evaluation.json").read_text())
    ev["engine"] |= {"model_version": meta["version"],
                     "companion": {"recogniser": "ff-cnn", "embeds": "reconstruction", "mirror_averaged": True,
                                   "weight": weight, "input": "64 px, eyes alignment"}}
    ev["product_scores"] = "recon"
    (folder / "evaluation.json").write_text(json.dumps(ev))
    return folder


def test_a_joined_bundle_s_card_names_the_companion_its_weight_and_what_the_rows_are(tmp_path: Path) -> None:
    folder = _joined_bundle(tmp_path)
    proc = _write_card(folder)
    assert proc.returncode == 0, proc.stderr
    text = (folder / "MODEL_CARD.md").read_text()
    assert "- **Companion** (3,542,544 parameters): the recogniser of version `ff-2026-11-26-19f697db`" in text
    assert "with w = 0.25. Chosen on the calibration people" in text
    assert "0.2: -0.2700, 0.25: -0.2600, 0.3: -0.2700" in text and "chosen: 0.25." in text
    assert "never searched with" not in text and "is not searched with" not in text
    # the rows: recon_* the joined embedding as searched, degraded_* the companion given the degraded face instead
    assert ("| severe | joined, companion given the reconstruction (the product), no audio | 72.2 % (69.3–74.9) |"
            in text)
    assert "| severe | joined, companion given the degraded face instead, no audio | 80.2 % (77.6–82.5) |" in text
    assert "| severe | companion given the reconstruction (a) vs given the degraded face (b), no audio |" in text
    # the command that fetched the companion's bundle and joined it
    assert "git archive 292be66 resources/models | tar -x -C /tmp/prev" in text
    assert ("--threads 1 --export resources/models --companion /tmp/prev/resources/models\n" in text)
    assert "The autoencoder and the companion come from version `ff-2026-11-26-19f697db`, made together by:" in text
    # against the previous bundle (the student alone): its product rows are the face as found
    assert "## Against the previous model (sface, version `ff-2026-12-05-dada2dc4`)" in text
    assert "So is the recogniser, the student of the same tuning run" in text
    assert "The tuning run is the one version `ff-2026-12-05-dada2dc4` took its student from" in text
    assert "| severe | previous (sface) | 80.2 % (77.6–82.5) |" in text  # its degraded_* rows
    assert "| severe | this one | 72.2 % (69.3–74.9) |" in text  # this one's recon_* rows
    assert "Two recognisers per face" in text
    assert text.startswith("# Model card: forensic_face fusion autoencoder + recogniser + companion\n")


def test_a_joined_bundle_without_the_companion_s_origin_is_refused(tmp_path: Path) -> None:
    folder = _joined_bundle(tmp_path)
    meta = json.loads((folder / "models.json").read_text())
    meta["record"]["companion"] = meta["companion"]["source"]  # as the first exports of a companion recorded it
    (folder / "models.json").write_text(json.dumps(meta))
    proc = _write_card(folder)
    assert proc.returncode != 0
    assert "record.companion does not name the companion's bundle" in proc.stderr
    assert "--companion PREV" in proc.stderr
    assert not (folder / "MODEL_CARD.md").exists()
