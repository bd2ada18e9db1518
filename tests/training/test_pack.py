"""The portable training pack (forensic_face.training.pack): the training arrays it restores, the subset
of images a ``max_images`` trial draws, its voices, and autoencoder-only trial files.

The pack is written here the way ``research/gpu_search.py pack`` lays it out (the frames' 192 px crops as
JPEG, ``meta.npz`` beside them), with OpenCV instead of jpegtran (absent here and in CI): what is tested is
what the borrowed machine does with a pack."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.training.pack import CROP, FRAME, load_pack, run_trial, trial_networks

PEOPLE = ["Ann_A", "Bob_B", "Cat_C", "Dan_D", "Eve_E"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory, face_rgb: np.ndarray, detector) -> Path:
    """15 frames of 5 people (3 each) at cache rows 2, 4, ... of a 40-row cache; one or two voice clips
    per person except the last, each clip's vector filled with its own number."""
    root = tmp_path_factory.mktemp("pack")
    (root / "frames").mkdir()
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)
    x, y, side = CROP
    rng = np.random.default_rng(0)
    boxes, marks = [], []
    for k in range(15):
        frame = cv2.resize(grey[20:420, 60:460], (FRAME, FRAME), interpolation=cv2.INTER_AREA)
        frame = np.clip(frame.astype(np.float32) * rng.uniform(0.8, 1.1) + 4 * k, 0, 255).astype(np.uint8)
        crop = frame[y:y + side, x:x + side]
        cv2.imwrite(str(root / "frames" / f"{k:05d}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
        restored = cv2.copyMakeBorder(crop, y, FRAME - y - side, x, FRAME - x - side, cv2.BORDER_REPLICATE)
        face = detector.detect(restored)[0]
        boxes.append(face.box)
        marks.append(face.landmarks)
    people = np.array([PEOPLE[k // 3] for k in range(15)])
    clip_person = np.array([0, 1, 1, 2, 3, 3], np.int32)  # index into the sorted people; Eve_E has none
    audio = np.repeat(np.arange(6, dtype=np.float16)[:, None, None], 715, axis=2)
    teacher = rng.normal(size=(15, 128)).astype(np.float32)
    np.savez_compressed(root / "meta.npz", rows=np.arange(2, 32, 2), n_index=40, people=people,
                        boxes=np.array(boxes, np.float32), landmarks=np.array(marks, np.float32), teacher=teacher,
                        audio=audio, clip_person=clip_person, split=json.dumps({"seed": 0}))
    return root


def _load(pack: Path, work: Path, **overrides):
    from dataclasses import replace

    from forensic_face.training.train import TrainConfig

    cfg = replace(TrainConfig(size=32, variants=2, ae_width=4, rec_width=4, batch=4, warmup_steps=1), **overrides)
    return cfg, load_pack(pack, work, cfg, workers=1)


def test_pack_restores_every_image_with_its_person_teacher_and_voices(pack: Path, tmp_path: Path) -> None:
    _, prep = _load(pack, tmp_path)
    meta = np.load(pack / "meta.npz")
    a = prep.arrays
    assert a.clean.shape == (15, 32, 32) and a.degraded.shape == (15, 2, 32, 32)
    assert a.clean.std() > 10  # a face, not an empty frame
    assert a.people == PEOPLE and list(a.person) == [k // 3 for k in range(15)]
    np.testing.assert_array_equal(prep.cache["teacher_raw"], meta["teacher"])
    # each clip keeps its person: clip c (vector filled with c) belonged to clip_person[c] of the pack
    for vec, person in zip(a.audio, a.clip_person, strict=True):
        assert a.people[person] == PEOPLE[meta["clip_person"][int(vec[0, 0])]]
    assert a.audio.shape[0] == 6


def test_max_images_draws_the_subset_prepare_draws_and_keeps_rows_teachers_and_voices(
        pack: Path, tmp_path: Path) -> None:
    meta = np.load(pack / "meta.npz")
    _, full = _load(pack, tmp_path / "full")
    cfg, sub = _load(pack, tmp_path / "sub", max_images=6)
    # forensic_face.training.train.prepare's rule: a seeded permutation of the training rows, first N, sorted
    picked = np.sort(np.random.default_rng(cfg.seed).permutation(meta["rows"])[:6])
    pos = np.searchsorted(meta["rows"], picked)
    a = sub.arrays
    assert a.clean.shape[0] == 6
    np.testing.assert_array_equal(a.clean, full.arrays.clean[pos])  # the same frames, aligned the same way
    np.testing.assert_array_equal(sub.cache["teacher_raw"], meta["teacher"][pos])
    assert a.people == sorted(set(meta["people"][pos]))
    assert [a.people[p] for p in sub.labels] == list(meta["people"][pos])
    assert sub.n_classes == len(a.people)
    # voices only of the people kept, renumbered over them, each still its own person's
    kept = [c for c in range(6) if PEOPLE[meta["clip_person"][c]] in a.people]
    assert sorted(int(v[0, 0]) for v in a.audio) == kept
    for vec, person in zip(a.audio, a.clip_person, strict=True):
        assert a.people[person] == PEOPLE[meta["clip_person"][int(vec[0, 0])]]


def test_autoencoder_only_trial_keeps_only_the_trained_autoencoder(pack: Path, tmp_path: Path) -> None:
    import torch

    overrides = {"size": 32, "variants": 2, "ae_width": 4, "rec_width": 4, "batch": 4, "warmup_steps": 1,
                 "epochs": 0, "ae_epochs": 2}
    _, prep = _load(pack, tmp_path / "work")
    out = tmp_path / "out"
    out.mkdir()
    run_trial("ae", overrides, prep, out, tmp_path / "runs", threads=1, time_limit=0.0)
    saved = torch.load(out / "trial-ae.pt", map_location="cpu", weights_only=True)
    assert "rec" not in saved  # untrained: not carried back
    record = json.loads(saved["record"])
    assert [h["phase"] for h in record["history"]] == ["autoencoder", "autoencoder"]
    ae, rec, _ = trial_networks(out / "trial-ae.pt")
    for name, value in ae.state_dict().items():  # the trained autoencoder, as stored (float16)
        torch.testing.assert_close(value, saved["ae"][name].float())
    assert rec.config.width == 4  # the recogniser is built from the record, left as initialised
