"""The SFace student (forensic_face.training.distil) on a tiny generated LFW-style folder: its crops, the frozen
features kept and resumed, what is tuned and what stays the teacher's, and a run that resumes after its last epoch.
The teacher is a randomly initialised SFaceNet (the published weights are not needed to test the plumbing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, make_face_folder):
    from forensic_face.training.lfw import build_face_cache, index_folder

    root = make_face_folder(tmp_path_factory.mktemp("data") / "lfw", 4, 3, seed=1, lighting=True)
    index = index_folder(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("FORENSIC_FACE_CACHE", str(tmp_path_factory.mktemp("cache")))
    cache = build_face_cache(index, with_teacher=False, workers=1)
    yield index, cache
    mp.undo()


def _teacher():
    from forensic_face.models.sface import SFaceNet

    torch.manual_seed(0)
    return SFaceNet().eval()


def test_the_student_learns_only_its_late_blocks_and_resumes(tiny, tmp_path: Path) -> None:
    from forensic_face.training.distil import DistilConfig, run_distillation

    index, cache = tiny
    teacher = _teacher()
    people = frozenset(index.people)
    cfg = DistilConfig(variants=2, frozen_blocks=10, epochs=1, batch=4, lr=1e-3)
    student, first = run_distillation(index, cache, people, teacher, tmp_path, cfg, workers=1)
    assert first["images"] == 12 and first["people"] == 4
    with np.load(tmp_path / "crops.npz") as z:
        crops = z["crops"]
    assert crops.shape == (12, 3, 112, 112)
    assert np.abs(crops[:, 1:].astype(int) - crops[:, :1].astype(int)).mean() > 2  # the variants are degraded
    feats = np.load(tmp_path / "features.npy", mmap_mode="r")
    assert feats.shape[:2] == (12, 3) and feats.dtype == np.float16
    t, s = teacher.state_dict(), student.state_dict()
    frozen = [k for k in t if k.startswith(("stem.", "fc.", "embed_bn.")) or
              (k.startswith("blocks.") and int(k.split(".")[1]) < 10)]
    tuned = [k for k in t if k.startswith("feature_bn.weight") or
             (k.startswith("blocks.") and int(k.split(".")[1]) >= 10 and k.endswith("conv.weight"))]
    assert frozen and tuned
    assert all(torch.equal(t[k], s[k]) for k in frozen)
    assert all(not torch.equal(t[k], s[k]) for k in tuned)
    # the whole network on a crop equals the late blocks on its kept features
    with torch.inference_mode():
        x = torch.from_numpy(crops[:2, 1].astype(np.float32)).unsqueeze(1).expand(-1, 3, -1, -1)
        whole = student(x)
        split = student.late(torch.from_numpy(feats[:2, 1].astype(np.float32)), 10)
    assert torch.allclose(whole, split, atol=0.05 * float(whole.abs().mean()))

    more = DistilConfig(**{**cfg.as_dict(), "epochs": 2})
    _, second = run_distillation(index, cache, people, teacher, tmp_path, more, workers=1)
    assert [h["epoch"] for h in second["history"]] == [1, 2]  # continued, not restarted
    assert second["history"][0] == first["history"][0]
    assert json.loads((tmp_path / "record.json").read_text())["history"] == second["history"]
    # each stage's time is what every session spent on it: the resumed run adds its own to the first run's
    for stage, seconds in first["timings"].items():
        assert second["timings"][stage] >= seconds, stage

    # the finished run moved a quarter of the way back to the teacher: no more tuning, every tensor mixed
    tuned = torch.load(tmp_path / "student.pt", weights_only=True)
    back = DistilConfig(**{**more.as_dict(), "teacher_share": 0.25})
    moved, third = run_distillation(index, cache, people, teacher, tmp_path, back, workers=1)
    assert third["history"] == second["history"] and third["config"]["teacher_share"] == 0.25
    kept = torch.load(tmp_path / "student_tuned.pt", weights_only=True)
    written = torch.load(tmp_path / "student.pt", weights_only=True)
    m = moved.state_dict()
    for k, v in tuned.items():
        assert torch.equal(kept[k], v) and torch.equal(written[k], m[k]), k
        if v.is_floating_point():
            assert torch.allclose(m[k], 0.25 * t[k] + 0.75 * v, atol=1e-6), k
    changed = [k for k in tuned if not torch.equal(t[k], tuned[k])]
    assert changed and all(not torch.equal(m[k], tuned[k]) and not torch.equal(m[k], t[k]) for k in changed)
    assert all(torch.equal(m[k], t[k]) for k in frozen)


def test_the_margin_loss_pulls_towards_the_true_centre() -> None:
    from forensic_face.training.distil import DistilConfig, distil_loss

    centres = torch.nn.functional.normalize(torch.eye(3, 8), dim=1)
    target = centres[[0]]
    near = distil_loss(centres[[0]] * 5, target, torch.tensor([0]), centres, DistilConfig())
    far = distil_loss(centres[[1]] * 5, target, torch.tensor([0]), centres, DistilConfig())
    assert near[0] < 1e-6 < far[0] and near[1] < far[1]


def test_fresh_variants_are_new_every_epoch_and_a_run_resumes(tiny, tmp_path: Path) -> None:
    from forensic_face.training.distil import DistilConfig, fresh_faces, run_distillation, training_images

    index, cache = tiny
    teacher = _teacher()
    people = frozenset(index.people)
    cfg = DistilConfig(variants=3, frozen_blocks=10, epochs=1, batch=4, lr=1e-3, fresh=True, bfloat16=True)
    student, first = run_distillation(index, cache, people, teacher, tmp_path, cfg, workers=1)
    # nothing degraded is kept: no fixed copies, no frozen features
    assert not (tmp_path / "crops.npz").exists() and not (tmp_path / "features.npy").exists()
    assert first["config"]["fresh"] and first["images"] == 12
    drawn = first["history"][0]["drawn"]
    assert sum(drawn.values()) == 12 and first["levels"] == drawn
    t, s = teacher.state_dict(), student.state_dict()
    assert all(torch.equal(t[k], s[k]) for k in t if k.startswith(("stem.", "blocks.0.", "fc.")))
    assert not torch.equal(t["blocks.11.pw.conv.weight"], s["blocks.11.pw.conv.weight"])

    faces, ok = fresh_faces(index, cache, training_images(index, cache, people), cfg, workers=1)
    assert ok.all() and len(faces.frames) == 12
    rows = np.arange(12)
    a, level_a = faces.draw(rows, 0)
    again, _ = faces.draw(rows, 0)
    b, _ = faces.draw(rows, 1)
    assert np.array_equal(a, again)  # seeded: a resumed run draws the same
    degraded = level_a != 0
    assert degraded.any()
    assert all(not np.array_equal(a[i], b[i]) for i in np.nonzero(degraded)[0])  # the next epoch draws anew
    # over many draws the clean crop comes about once in 1 + variants, as from the fixed copies
    clean_share = np.mean([np.mean([np.array_equal(c, faces.clean[i]) for i, c in enumerate(faces.draw(rows, e)[0])])
                           for e in range(40)])
    assert 0.15 < clean_share < 0.35

    more = DistilConfig(**{**cfg.as_dict(), "epochs": 2})
    _, second = run_distillation(index, cache, people, teacher, tmp_path, more, workers=1)
    assert [h["epoch"] for h in second["history"]] == [1, 2] and second["history"][0] == first["history"][0]
    assert sum(second["levels"].values()) == 24
