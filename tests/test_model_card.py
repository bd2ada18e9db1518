"""The model card shipped in resources/models is what scripts/model_card.py writes from the bundle's files beside
it, and the script refuses an evaluation made with other weights than the bundle's."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("name", ["evaluation.json", "evaluation_clips.json"])
def test_an_evaluation_in_bfloat16_is_refused(tmp_path: Path, name: str) -> None:
    """The card's figures are float32's (the same on every machine): an evaluation run with the recognisers in
    bfloat16, this machine's default, is refused with the command that gives float32."""
    folder = _bundle_files(tmp_path)
    if not (folder / name).is_file():
        pytest.skip(f"the shipped bundle has no {name}")
    ev = json.loads((folder / name).read_text())
    assert ev["engine"]["precision"] == "float32"
    ev["engine"]["precision"] = "bfloat16"
    (folder / name).write_text(json.dumps(ev))
    proc = _write_card(folder)
    assert proc.returncode != 0
    assert f"{folder / name} was measured with the recognisers in bfloat16" in proc.stderr
    assert "--precision float32" in proc.stderr
    assert not (folder / "MODEL_CARD.md").exists()


def test_a_clip_evaluation_of_another_clip_calibration_is_refused(tmp_path: Path) -> None:
    """The clip section is written only from an evaluation made with the bundle's clip calibration (refitting it,
    e.g. with another pooled companion share, leaves the old evaluation stale)."""
    folder = _bundle_files(tmp_path)
    meta = json.loads((folder / "models.json").read_text())
    if not meta.get("clip_calibration") or not (folder / "evaluation_clips.json").is_file():
        pytest.skip("the shipped bundle has no clip calibration and clip evaluation to check")
    meta["clip_calibration"]["companion_share"] = 0.75 if meta["clip_calibration"].get("companion_share") != 0.75 \
        else 0.25
    (folder / "models.json").write_text(json.dumps(meta))
    proc = _write_card(folder)
    assert proc.returncode != 0 and "another clip calibration" in proc.stderr
    assert not (folder / "MODEL_CARD.md").exists()


def _joined_bundle(dest: Path) -> Path:
    """The JSON files of a bundle that joins a companion, as `tune-sface --export --companion` writes them: the
    shipped bundle's where it is one; else the shipped bundle's made into one (its student kept, beside the project's
    CNN of the bundle its autoencoder comes from; its evaluation relabelled as the joined bundle's, and kept as the
    previous bundle's)."""
    folder = _bundle_files(dest)
    meta = json.loads((folder / "models.json").read_text())
    if meta.get("companion"):
        return folder
    shutil.copy(folder / "evaluation.json", folder / "evaluation_previous.json")
    trained = meta["record"]["autoencoder"]  # the run that trained the autoencoder with the CNN
    meta["record"] = {**meta["record"],
                      "autoencoder": {"from_bundle": meta["version"], "weights_sha256": meta["weights_sha256"],
                                      "record": meta["record"]},
                      "companion": {"from_bundle": trained["from_bundle"], "weights_sha256": trained["weights_sha256"],
                                    "source": f"the recogniser of bundle {trained['from_bundle']}",
                                    "record": trained["record"]},
                      "companion_weight": {"tried": [[a, r] for a in (0.1, 0.2, 0.3) for r in (1.0, 2.0)],
                                           "chosen": [0.2, 1.0], "pairs": 600, "levels": ["clean", "mild", "severe"],
                                           "sharp_end": 5.39,
                                           "mean_log_likelihood": [-0.26 - 0.01 * abs(k - 2) for k in range(6)]}}
    meta["companion"] = {"architecture": "ff-cnn", "source": f"the recogniser of bundle {trained['from_bundle']}",
                         "embeds": "reconstruction", "mirror": True, "weight": 0.5, "probe_weight": [0.2, 0.0],
                         "quality_range": [4.39, 5.39], "config": {"size": 64, "width": 48, "embed_dim": 128,
                                                                   "depth": 1}}
    meta["version"] = "ff-2026-12-06-0badc0de"
    (folder / "models.json").write_text(json.dumps(meta))
    ev = json.loads((folder / "evaluation.json").read_text())
    ev["engine"] |= {"model_version": meta["version"],
                     "companion": {"recogniser": "ff-cnn", "embeds": "reconstruction", "mirror_averaged": True,
                                   "weight": 0.5, "probe_weight": [0.2, 0.0], "quality_range": [4.39, 5.39],
                                   "input": "64 px, eyes alignment"}}
    ev["product_scores"] = "recon"
    (folder / "evaluation.json").write_text(json.dumps(ev))
    return folder


def _accuracy(report: dict, row: str) -> str:
    """The severe accuracy of an evaluation's ``row`` as the card's tables begin it."""
    return f"{100 * report['levels']['severe'][row]['accuracy']:.1f} % ("


def test_a_joined_bundle_s_card_names_the_companion_its_weight_and_what_the_rows_are(tmp_path: Path) -> None:
    folder = _joined_bundle(tmp_path)
    proc = _write_card(folder)
    assert proc.returncode == 0, proc.stderr
    text = (folder / "MODEL_CARD.md").read_text()
    meta, ev, prev = (json.loads((folder / f"{name}.json").read_text())
                      for name in ("models", "evaluation", "evaluation_previous"))
    rec = meta["record"]
    came, chose, student = rec["companion"], rec["companion_weight"], rec["autoencoder"]
    assert text.startswith("# Model card: forensic_face fusion autoencoder + recogniser + companion\n")
    assert (f"- **Companion** ({came['record']['params']['rec']:,} parameters): the recogniser of version "
            f"`{came['from_bundle']}` (weights SHA-256 `{came['weights_sha256'][:16]}…`)") in text
    (share, _), (lo, hi) = meta["companion"]["probe_weight"], meta["companion"]["quality_range"]
    assert f"l = {share:g} for q ≤ {lo:.2f}, falling linearly to 0 at q = {hi:.2f} and above" in text
    assert "quality, which the one open-set threshold of a gallery size needs. Chosen on the calibration people, " \
           "never on DevTest" in text
    a, ramp = chose["chosen"]
    assert f"{a:g}, {ramp:g}: {chose['mean_log_likelihood'][chose['tried'].index([a, ramp])]:.4f}" in text
    assert f"chosen: {a:g}, {ramp:g}." in text
    assert "never searched with" not in text and "is not searched with" not in text
    # the rows: recon_* the joined embedding as searched, degraded_* the companion given the degraded face instead
    assert ("| severe | joined, companion given the reconstruction (the product), no audio | "
            + _accuracy(ev, "recon_no_audio")) in text
    assert "| severe | joined, companion given the degraded face instead, no audio | " + _accuracy(
        ev, "degraded_no_audio") in text
    assert "| severe | companion given the reconstruction (a) vs given the degraded face (b), no audio |" in text
    # the commands that fetched the companion's bundle and joined it
    assert "git archive 292be66 resources/models | tar -x -C /tmp/prev   # bundle ff-2026-11-26-19f697db" in text
    tuning = rec["recogniser"]["tuning"]
    assert f"--threads {tuning['threads']} --export resources/models --companion /tmp/prev/resources/models\n" in text
    assert f"The autoencoder and the companion come from version `{came['from_bundle']}`, made together by:" in text
    # against the previous bundle (the one the autoencoder was kept from, or the one a sharp part was joined to): its
    # own product rows beside this one's, and said to share the student only where its tuning record is this one's
    # (or, when the previous bundle's weights file is this one's, said to be so instead)
    previous = prev["engine"]["model_version"]
    assert f"## Against the previous model (sface, version `{previous}`)" in text
    same_file = prev["engine"].get("weights_sha256") == meta["weights_sha256"]
    assert ("Its weights are this one's, the same file (`models.pt`" in text) == same_file
    kept = student["record"].get("recogniser", {}).get("tuning", {})
    same = {k: v for k, v in kept.items() if k != "timings"} == {k: v for k, v in tuning.items() if k != "timings"}
    if not same_file:
        assert previous == (rec.get("sharp") or {}).get("joined_to", student["from_bundle"])
        assert "The autoencoder is that model's, unchanged." in text
        assert ("So is the recogniser, the student of the same tuning run" in text) == same
    assert (f"The tuning run is the one version `{student['from_bundle']}` took its student from" in text) == same
    prev_row = f"{prev.get('product_scores', 'degraded')}_no_audio"
    assert "| severe | previous (sface) | " + _accuracy(prev, prev_row) in text
    assert "| severe | this one | " + _accuracy(ev, "recon_no_audio") in text
    assert "- Two recognisers per face" in text
    sharp = meta["companion"].get("sharp")
    if sharp:  # SFace as published for sharp probes: what it is, the rule's choice, the command that joined it
        chosen = rec["sharp"]["share_choice"]["chosen"]
        assert "- **Sharp probes**: SFace as published (OpenCV Zoo's `face_recognition_sface_2021dec.onnx`" in text
        assert f"t = {sharp['share']:g} × clip((q − {sharp['quality_range'][0]:.2f})" in text
        assert f"chosen: T {chosen['T']:g}, R {chosen['R']:g}." in text
        cross = f" --cross {sharp['cross']:g}" if sharp.get("cross") else ""
        assert f".venv/bin/forensic-face join-sharp{cross}\n" in text


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


def test_a_bundle_moved_back_by_a_share_no_rule_chose_is_refused(tmp_path: Path) -> None:
    """The card says which rule chose the share the tuned weights were moved back by: a bundle whose rule the
    script does not know gets no card (never another bundle's rule named for it)."""
    folder = _bundle_files(tmp_path)
    meta = json.loads((folder / "models.json").read_text())
    if not meta["record"].get("recogniser", {}).get("tuning", {}).get("config", {}).get("teacher_share"):
        pytest.skip("the shipped recogniser was not moved back towards SFace")
    other = "ff-2099-01-01-00000000"
    student = (meta["record"].get("sharp") or {}).get("joined_to", meta["version"])  # the bundle its student is of
    for path in folder.glob("*.json"):  # the bundle and its evaluations, all of another version
        text = path.read_text()
        path.write_text(text.replace(meta["version"], other).replace(student, other))
    proc = _write_card(folder)
    assert proc.returncode != 0
    assert f"bundle {other} was moved" in proc.stderr and "SHARE_RULES names no rule file" in proc.stderr
    assert not (folder / "MODEL_CARD.md").exists()
