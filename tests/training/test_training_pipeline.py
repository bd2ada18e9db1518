"""End to end on a tiny generated LFW-style folder: face cache, split, training arrays, a short
training run with checkpoint and resume, calibration, export, the engine and the evaluation report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny_lfw(tmp_path_factory: pytest.TempPathFactory, make_face_folder) -> Path:
    """8 'people' x 3 images, each person's lighting changed."""
    return make_face_folder(tmp_path_factory.mktemp("data") / "lfw", 8, 3, seed=0, lighting=True)


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FORENSIC_FACE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def test_made_calibration_pairs(tiny_lfw: Path) -> None:
    """The pairs made among the calibration people: only those people, none drawn already or made twice, matched
    pairs of one person (at most the cap each) and as many mismatched ones of two, the same every time."""
    from forensic_face.training.lfw import index_folder
    from forensic_face.training.split import made_pairs, make_split

    index = index_folder(tiny_lfw)
    split = make_split(index)
    made = list(split.calib_made)
    assert made and made == list(make_split(index).calib_made)
    person = lambda path: path.split("/")[0]  # noqa: E731
    assert all(person(p.a) in split.calib_people and person(p.b) in split.calib_people for p in made)
    keys = [frozenset((p.a, p.b)) for p in made]
    assert len(set(keys)) == len(keys) and not set(keys) & {frozenset((p.a, p.b)) for p in split.calib_pairs}
    same = [p for p in made if p.same]
    assert all(person(p.a) == person(p.b) and p.a != p.b for p in same)
    assert all(person(p.a) != person(p.b) for p in made if not p.same)
    assert len(same) == len(made) - len(same)
    one = made_pairs(index, split.calib_people, split.calib_pairs, cap=1)
    assert max(sum(person(p.a) == q for p in one if p.same) for q in split.calib_people) == 1


def test_train_resume_export_evaluate(tiny_lfw: Path, isolated_cache, tmp_path: Path) -> None:
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.training.evaluate import evaluate, export_models
    from forensic_face.training.train import TrainConfig, prepare, train

    cfg = TrainConfig(size=32, variants=2, ae_width=4, rec_width=4, epochs=2, ae_epochs=0, rec_epochs=0, batch=4,
                      warmup_steps=1, arc_prototypes="teacher", ae_residual=True)
    prep = prepare(tiny_lfw, cfg, workers=1)
    split = prep.split
    assert split.source == "seeded"
    assert not (split.train_people & split.test_people) and not (split.train_people & split.calib_people)
    assert prep.arrays.clean.shape[1:] == (32, 32) and prep.arrays.degraded.shape[1:] == (2, 32, 32)
    # the degraded variants really differ from the clean crops
    assert np.abs(prep.arrays.degraded.astype(int) - prep.arrays.clean[:, None].astype(int)).mean() > 2
    # each variant's target is the clean frame in that variant's (perturbed) framing: closer to it than the
    # canonical clean crop is
    deg, tgt = prep.arrays.degraded.astype(int), prep.arrays.target.astype(int)
    assert tgt.shape == deg.shape
    assert np.abs(tgt - deg).mean() < np.abs(prep.arrays.clean[:, None].astype(int) - deg).mean()

    out = tmp_path / "run"
    first = train(tiny_lfw, out, TrainConfig(**{**cfg.__dict__, "epochs": 1}), workers=1, prep=prep)
    assert len(first["history"]) == 1 and (out / "checkpoint.pt").is_file()
    assert not first["channels_last"]  # width 4: see test_memory_format.py
    resumed = train(tiny_lfw, out, cfg, workers=1, resume=True, prep=prep)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]  # continued, not restarted

    dest = tmp_path / "models"
    engine, info = export_models(out / "checkpoint.pt", prep.index, prep.cache, split.calib_pairs, dest, workers=1,
                                 made=split.calib_made)
    assert FaceEngine.available(dest) and engine.calibration is not None
    # the match logistic saw the made pairs too (every level, with and without the voice)
    assert split.calib_made and info["logistic_pairs"] == {"drawn": len(split.calib_pairs),
                                                           "made": len(split.calib_made)}
    assert engine.calibration.n_pairs == 6 * (len(split.calib_pairs) + len(split.calib_made))
    meta = json.loads((dest / "models.json").read_text())
    assert meta["weights_sha256"] == engine.info.weights_sha256
    faces = prep.arrays.degraded[:3, 0]
    recon = engine.reconstruct(faces)
    assert recon.shape == faces.shape and recon.dtype == np.uint8
    emb = engine.embed(recon)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)

    if engine.calibration.open_set is None:  # too few calibration searches here: give it a table of strangers
        from dataclasses import replace

        from forensic_face.models.calibration import fit_open_set_table

        strangers = np.random.default_rng(0).normal(0.0, 0.3, (400, 30))
        engine.calibration = replace(engine.calibration, open_set=fit_open_set_table(strangers, np.full(400, -1)))
    import torch

    from forensic_face.models.sface import SFaceNet
    from forensic_face.training.evaluate import Reference

    torch.manual_seed(1)
    reference = Reference(SFaceNet().eval(), "a published recogniser", 0.363, "test")
    report = evaluate(engine, prep.index, prep.cache, split.test_pairs, {}, tmp_path / "eval.json", workers=1,
                      reference=reference)
    # a recogniser of the 64 px eyes crop: the probes are not cut as SFace takes them, and the report says so
    assert "112 px five-point" in report["reference"]["not_measured"]
    assert not any("reference" in lev for lev in report["levels"].values())
    assert set(report["levels"]) == {"clean", "mild", "severe"}
    for name, lev in report["levels"].items():
        assert {"recon_with_audio", "recon_no_audio", "degraded_no_audio", "dlib_reference", "bicubic"} <= set(lev)
        for figure, (lo, hi) in lev["recon_no_audio"]["ci95"].items():  # every interval brackets its figure
            assert lo <= lev["recon_no_audio"][figure] <= hi, (name, figure)
        tests = lev["comparisons"]
        assert {"reconstruction_vs_degraded", "audio_vs_no_audio", "ours_vs_dlib"} <= set(tests)
        for test in ("reconstruction_vs_degraded", "audio_vs_no_audio", "ours_vs_dlib"):
            assert 0 <= tests[test]["accuracy"]["p_value"] <= 1 and 0 <= tests[test]["roc_auc"]["p_value"] <= 1
        # the clean probe is its own target, so only the degraded levels report a PSNR gain
        assert ("psnr_gain_over_bicubic_db" in tests) == (name != "clean")
    ident = report["identification"]
    assert ident["enrolled_probes"] + ident["not_enrolled_probes"] <= len(split.test_pairs)
    assert ident["enrolled_probes"] > 0 and ident["gallery_people"] > 1
    for lev in ident["levels"].values():
        for who in (lev, lev["dlib_reference"]):
            assert who["rank_1"]["count"] <= who["rank_5"]["count"] <= ident["enrolled_probes"]
            assert who["enrolled_found_confidently"]["count"] <= who["rank_1"]["count"]
            assert who["not_enrolled_no_confident_match"]["of"] == ident["not_enrolled_probes"]
        # each false-lead setting's outcome: a higher rate never gives fewer leads, true or false
        settings = sorted(lev["by_fpir_setting"], key=lambda r: r["fpir"])
        assert [r["fpir"] for r in settings] == [0.005, 0.01, 0.02, 0.05, 0.1]
        for key in ("enrolled_found_confidently",):
            assert [r[key]["count"] for r in settings] == sorted(r[key]["count"] for r in settings)
        no_lead = [r["not_enrolled_no_confident_match"]["count"] for r in settings]
        assert no_lead == sorted(no_lead, reverse=True)
        curve = lev["trade_off"]["lead_score"]
        assert len(curve["threshold"]) == len(curve["false_leads"]) == len(curve["enrolled_found"])
        assert curve["false_leads"] == sorted(curve["false_leads"], reverse=True)  # a higher bar, fewer leads
    assert (tmp_path / "eval_roc.png").is_file() and (tmp_path / "eval_examples.png").is_file()
    assert (tmp_path / "eval_open_set.png").is_file()


def test_autoencoder_phase_trains_the_autoencoder_alone_and_resumes(tiny_lfw: Path, isolated_cache,
                                                                   tmp_path: Path) -> None:
    import torch

    from forensic_face.training.train import TrainConfig, load_checkpoint, prepare, train

    cfg = TrainConfig(size=32, variants=2, ae_width=4, rec_width=4, epochs=1, ae_epochs=3, rec_epochs=0, batch=4,
                      warmup_steps=1, ae_lr=5e-3)
    prep = prepare(tiny_lfw, cfg, workers=1)
    out = tmp_path / "run"
    joint = train(tiny_lfw, out, TrainConfig(**{**cfg.__dict__, "ae_epochs": 0}), workers=1, prep=prep)
    ae0, rec0, _ = load_checkpoint(out / "checkpoint.pt")
    # stop inside the autoencoder phase (after its first epoch), then resume to the end
    part = train(tiny_lfw, out, TrainConfig(**{**cfg.__dict__, "ae_epochs": 1}), workers=1, resume=True, prep=prep)
    assert [h.get("phase") for h in part["history"]] == [None, "autoencoder"]
    done = train(tiny_lfw, out, cfg, workers=1, resume=True, prep=prep)
    assert [h["epoch"] for h in done["history"]] == [1, 2, 3, 4]
    assert (part["epochs_this_session"], done["epochs_this_session"]) == (1, 2)
    assert [h.get("phase") for h in done["history"]] == [None] + ["autoencoder"] * 3
    assert done["steps"] == 4 * joint["steps"]
    ae1, rec1, _ = load_checkpoint(out / "checkpoint.pt")
    for (k, a), b in zip(rec0.state_dict().items(), rec1.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"the recogniser changed in the autoencoder phase: {k}"
    changed = [k for (k, a), b in zip(ae0.state_dict().items(), ae1.state_dict().values(), strict=True)
               if not torch.equal(a, b)]
    assert "out.weight" in changed and "enc1.0.weight" in changed
    # its reconstruction of the training faces got better
    x = torch.from_numpy(prep.arrays.degraded[:, 0].astype(np.float32) / 255)[:, None]
    y = torch.from_numpy(prep.arrays.target[:, 0].astype(np.float32) / 255)[:, None]
    with torch.no_grad():
        before, after = (float(((m(x) - y) ** 2).mean()) for m in (ae0, ae1))
    assert after < before


def test_autoencoder_phase_batch_sets_its_own_steps_and_the_phases_follow(tiny_lfw: Path, isolated_cache,
                                                                          tmp_path: Path) -> None:
    from forensic_face.training.train import TrainConfig, prepare, train

    cfg = TrainConfig(size=32, variants=2, ae_width=4, rec_width=4, epochs=1, ae_epochs=2, rec_epochs=1, batch=4,
                      ae_batch=2, warmup_steps=1)
    prep = prepare(tiny_lfw, cfg, workers=1)
    n = prep.arrays.clean.shape[0]
    assert n // 2 > n // 4 > 0
    out = tmp_path / "run"
    # stop after the first autoencoder epoch, then resume: the phase keeps its smaller batch
    part = train(tiny_lfw, out, TrainConfig(**{**cfg.__dict__, "ae_epochs": 1, "rec_epochs": 0}), workers=1,
                 prep=prep)
    done = train(tiny_lfw, out, cfg, workers=1, resume=True, prep=prep)
    assert [h["steps"] for h in part["history"]] == [n // 4, n // 2]
    assert [(h.get("phase"), h["steps"]) for h in done["history"]] == [
        (None, n // 4), ("autoencoder", n // 2), ("autoencoder", n // 2), ("recogniser", n // 4)]
    assert done["steps"] == 2 * (n // 4) + 2 * (n // 2)


def test_recogniser_phase_adapts_the_recogniser_to_the_frozen_autoencoder(tiny_lfw: Path, isolated_cache,
                                                                         tmp_path: Path) -> None:
    import torch

    from forensic_face.training.train import ArcFace, TrainConfig, load_checkpoint, prepare, rec_train_step, train

    cfg = TrainConfig(size=32, variants=2, ae_width=4, rec_width=4, epochs=1, ae_epochs=1, rec_epochs=3, batch=4,
                      warmup_steps=1, rec_lr=5e-3, audio_drop=1.0)
    prep = prepare(tiny_lfw, cfg, workers=1)
    out = tmp_path / "run"
    before = train(tiny_lfw, out, TrainConfig(**{**cfg.__dict__, "rec_epochs": 0}), workers=1, prep=prep)
    ae0, rec0, _ = load_checkpoint(out / "checkpoint.pt")
    arc0 = torch.load(out / "checkpoint.pt", weights_only=True)["arc"]
    # stop inside the recogniser phase (after its first epoch), then resume to the end
    part = train(tiny_lfw, out, TrainConfig(**{**cfg.__dict__, "rec_epochs": 1}), workers=1, resume=True, prep=prep)
    assert [h.get("phase") for h in part["history"]] == [None, "autoencoder", "recogniser"]
    done = train(tiny_lfw, out, cfg, workers=1, resume=True, prep=prep)
    assert [h.get("phase") for h in done["history"]] == [None, "autoencoder"] + ["recogniser"] * 3
    assert (part["epochs_this_session"], done["epochs_this_session"]) == (1, 2)
    assert done["steps"] == 5 * before["steps"] // 2
    ae1, rec1, _ = load_checkpoint(out / "checkpoint.pt")
    for (k, a), b in zip(ae0.state_dict().items(), ae1.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"the autoencoder changed in the recogniser phase: {k}"
    assert not torch.equal(rec0.stem[0].weight, rec1.stem[0].weight)
    # the identity losses on the final autoencoder's reconstructions of the training faces went down
    arc = torch.load(out / "checkpoint.pt", weights_only=True)["arc"]
    heads = []
    for state in (arc0, arc):
        head = ArcFace(cfg.embed_dim, prep.n_classes, cfg.arc_margin, cfg.arc_scale)
        head.load_state_dict(state)
        heads.append(head)
    n = prep.arrays.clean.shape[0]
    batch = {"deg": torch.from_numpy(prep.arrays.degraded[:, 0].astype(np.float32) / 255)[:, None],
             "clean": torch.from_numpy(prep.arrays.target[:, 0].astype(np.float32) / 255)[:, None],
             "audio": None, "present": None, "teacher": torch.from_numpy(prep.teacher[:n]),
             "label": torch.from_numpy(prep.labels[:n])}
    with torch.no_grad():
        loss_before, loss_after = (float(rec_train_step(ae1, r, h, batch, cfg)["loss"])
                                   for r, h in ((rec0, heads[0]), (rec1, heads[1])))
    assert loss_after < loss_before


def test_autoencoder_with_bottleneck_blocks_round_trips_through_a_bundle(tmp_path: Path) -> None:
    import torch

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig

    torch.manual_seed(0)
    ae = FusionAutoencoder(AEConfig(size=32, width=4, blocks=2)).eval()
    assert len(ae.blocks) == 2
    faces = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    x = torch.from_numpy(faces.astype(np.float32) / 255)[:, None]
    plain = FusionAutoencoder(AEConfig(size=32, width=4)).eval()
    plain.load_state_dict({k: v for k, v in ae.state_dict().items() if not k.startswith("blocks.")})
    with torch.no_grad():
        assert torch.equal(ae(x), plain(x))  # new blocks start as the identity
        for block in ae.blocks:  # as after training
            block.c2.weight.normal_(0, 0.05)
        assert not torch.equal(ae(x), plain(x))
    save_bundle(tmp_path, ae, Recogniser(RecogniserConfig(size=32, width=4)).eval(), None, {"date": "2026-01-01"})
    engine = FaceEngine(tmp_path, device="cpu")
    with torch.no_grad():
        direct = ae(x)[:, 0].numpy()
    # the loaded bundle has the blocks and their weights
    assert np.abs(engine.reconstruct(faces).astype(float) - direct * 255).max() <= 1.0


def test_engine_runs_faster_forms_that_give_the_stored_networks_outputs(tmp_path: Path) -> None:
    import torch
    from torch import nn

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig

    torch.manual_seed(0)
    rec = Recogniser(RecogniserConfig(size=32, width=4)).eval()
    with torch.no_grad():  # batch norms with statistics and affine terms as after training
        for m in rec.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    save_bundle(tmp_path, FusionAutoencoder(AEConfig(size=32, width=4)).eval(), rec, None, {"date": "2026-01-01"})
    engine = FaceEngine(tmp_path, device="cpu")
    stored = {k: v.clone() for k, v in engine.rec.state_dict().items()}
    faces = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    x = torch.from_numpy(faces.astype(np.float32) / 255)[:, None]
    with torch.no_grad():  # the networks as stored (and as loaded), run plainly
        e = engine.rec(torch.cat([x, torch.flip(x, dims=[3])]))
        want = nn.functional.normalize(e[:5] + e[5:], dim=1).numpy()
        recon = engine.ae(x)[:, 0].numpy() * 255
    np.testing.assert_allclose(engine.embed(faces), want, atol=1e-5)
    assert np.abs(engine.reconstruct(faces).astype(float) - recon).max() <= 1.0
    # what is exported stays the stored recogniser, batch norms and all
    assert any(isinstance(m, nn.BatchNorm2d) for m in engine.rec.modules())
    for k, v in engine.rec.state_dict().items():
        assert torch.equal(v, stored[k])


def test_tampered_weights_are_refused(tiny_lfw: Path, isolated_cache, tmp_path: Path) -> None:
    from forensic_face.core.errors import ForensicFaceError, ModelsNotTrainedError
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig

    with pytest.raises(ModelsNotTrainedError):
        FaceEngine(tmp_path / "empty")
    save_bundle(tmp_path, FusionAutoencoder(AEConfig(size=32, width=4)), Recogniser(RecogniserConfig(size=32, width=4)),
                None, {"date": "2026-01-01"})
    FaceEngine(tmp_path)  # loads
    data = bytearray((tmp_path / "models.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "models.pt").write_bytes(bytes(data))
    with pytest.raises(ForensicFaceError, match="SHA-256"):
        FaceEngine(tmp_path)


def test_teacher_prototypes_are_fixed_and_residual_starts_at_identity() -> None:
    import torch

    from forensic_face.training.train import TrainConfig, build_models

    protos = np.eye(8, 128, dtype=np.float32)
    ae, rec, arc = build_models(TrainConfig(size=32, ae_width=4, rec_width=4, ae_residual=True), 8, 715, protos)
    assert not arc.weight.requires_grad and torch.equal(arc.weight, torch.from_numpy(protos))
    # with the last convolution zeroed, the residual autoencoder returns its input
    torch.nn.init.zeros_(ae.out.weight)
    torch.nn.init.zeros_(ae.out.bias)
    x = torch.rand(2, 1, 32, 32) * 0.9 + 0.05
    assert torch.allclose(ae(x), x, atol=1e-5)


def test_a_deeper_recogniser_is_rebuilt_from_its_recorded_depth(tmp_path: Path) -> None:
    import torch

    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.nets import RecogniserConfig
    from forensic_face.training.train import TrainConfig, networks

    ae, shallow = networks(TrainConfig(size=32, ae_width=4, rec_width=4), 715)
    _, deep = networks(TrainConfig(size=32, ae_width=4, rec_width=4, rec_depth=2), 715)
    assert RecogniserConfig().depth == 1  # a CNN bundle saved before the depth existed loads at depth 1
    assert len(shallow.stages) == 4 and len(deep.stages) == 8
    # a bundle records the depth and the engine rebuilds the same network from it
    save_bundle(tmp_path, ae.eval(), deep.eval(), None, {"date": "test"})
    engine = FaceEngine(tmp_path, device="cpu")
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
    with torch.no_grad():
        t = torch.from_numpy(x[:, None] / 255.0).float()
        ref = deep(t) + deep(torch.flip(t, dims=[3]))  # the engine averages the face and its mirror image
    got = engine.embed(x)
    assert got.shape == (2, 128)
    assert np.allclose(got, torch.nn.functional.normalize(ref, dim=1).numpy(), atol=2e-2)


def test_distillation_targets_are_centred_and_relation_loss_trains(tiny_lfw: Path, isolated_cache) -> None:
    import torch

    from forensic_face.training.train import Batcher, TrainConfig, build_models, prepare, train_step

    base = dict(size=32, variants=2, ae_width=4, rec_width=4, batch=4)
    raw = prepare(tiny_lfw, TrainConfig(**base, teacher_centre=False), workers=1)
    centred = prepare(tiny_lfw, TrainConfig(**base), workers=1)
    assert np.allclose(np.linalg.norm(raw.teacher, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(centred.teacher, axis=1), 1, atol=1e-5)
    # dlib's descriptors share a dominant direction; the centred targets do not
    assert np.linalg.norm(raw.teacher.mean(axis=0)) > 0.5
    assert np.linalg.norm(centred.teacher.mean(axis=0)) < np.linalg.norm(raw.teacher.mean(axis=0)) / 3

    cfg = TrainConfig(**base, relation_weight=2.0, distill_weight=8.0)
    ae, rec, arc = build_models(cfg, centred.n_classes, 715)
    batch = Batcher(centred, cfg, np.random.default_rng(0)).batch(np.arange(4))
    losses = train_step(ae, rec, arc, batch, cfg)
    assert {"loss", "mse", "distill", "arc", "rel"} <= set(losses) and torch.isfinite(losses["loss"])
    expected = cfg.mse_weight * losses["mse"] + 8.0 * losses["distill"] + cfg.arc_weight * losses["arc"] \
        + 2.0 * losses["rel"]
    assert torch.allclose(losses["loss"].detach(), expected, rtol=1e-4)
    losses["loss"].backward()
    assert rec.embed.weight.grad is not None and float(rec.embed.weight.grad.abs().sum()) > 0


def test_blends_are_two_people_and_train_by_distillation_alone(tiny_lfw: Path, isolated_cache) -> None:
    import torch

    from forensic_face.training.blends import blend_frame, choose_blends
    from forensic_face.training.train import Batcher, TrainConfig, build_models, prepare, train_step

    people = np.repeat(np.array(["A", "B", "C", "D"]), 3)
    rows = np.arange(12)
    a, b, lam = choose_blends(rows, people, 40, seed=0)
    assert (people[a] != people[b]).all() and ((lam >= 0.25) & (lam <= 0.75)).all()
    # a smaller set is the start of a larger one (so packs and runs of different sizes agree)
    a2, b2, lam2 = choose_blends(rows, people, 10, seed=0)
    assert (a2 == a[:10]).all() and (b2 == b[:10]).all() and np.allclose(lam2, lam[:10])
    # the blend is lam of frame a and the rest of frame b (here unmoved)
    fa, fb = np.full((50, 50), 200, np.uint8), np.full((50, 50), 100, np.uint8)
    assert int(blend_frame(fa, fb, np.eye(2, 3), 0.25)[25, 25]) == 125

    base = dict(size=32, variants=2, ae_width=4, rec_width=4, batch=4)
    real = prepare(tiny_lfw, TrainConfig(**base), workers=1)
    mixed = prepare(tiny_lfw, TrainConfig(**base, blends=6), workers=1)
    n = real.arrays.clean.shape[0]
    extra = mixed.arrays.clean.shape[0] - n
    assert extra >= 4  # the teacher describes (nearly) every blend
    assert (mixed.labels[:n] == real.labels).all() and (mixed.labels[n:] == -1).all()
    assert mixed.arrays.degraded.shape[0] == mixed.teacher.shape[0] == n + extra
    # the real images' targets do not move: blends are centred on the real images' mean
    assert np.allclose(mixed.teacher[:n], real.teacher, atol=1e-6)
    # blends are new faces, not copies of the images they mix
    diff = np.abs(mixed.arrays.clean[n:, None].astype(int) - real.arrays.clean[None].astype(int)).mean(axis=(2, 3))
    assert diff.min() > 1

    cfg = TrainConfig(**base)
    ae, rec, arc = build_models(cfg, mixed.n_classes, 715)
    batch = Batcher(mixed, cfg, np.random.default_rng(0)).batch(np.arange(n, n + 4))
    losses = train_step(ae, rec, arc, batch, cfg)
    assert float(losses["arc"]) == 0.0 and float(losses["distill"]) > 0  # no identity: distillation only
    losses["loss"].backward()
    assert float(rec.embed.weight.grad.abs().sum()) > 0
    assert arc.weight.grad is None or float(arc.weight.grad.abs().sum()) == 0
    assert not batch["present"].any()  # a blend has no voice
    assert torch.isfinite(losses["loss"])


def test_train_command_trains_exports_and_says_where(tiny_lfw: Path, isolated_cache, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`forensic-face train` through the command line: the models it reports are the ones written."""
    from forensic_face.cli import main
    from forensic_face.engine.inference import FaceEngine

    out, dest = tmp_path / "run", tmp_path / "models"
    rc = main(["train", "--data", str(tiny_lfw), "--out", str(out), "--export", str(dest), "--size", "32",
               "--variants", "2", "--ae-width", "4", "--rec-width", "4", "--epochs", "1", "--ae-epochs", "0",
               "--rec-epochs", "0", "--batch", "4", "--arc-prototypes", "teacher", "--workers", "1", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["models"] == str(dest) and summary["checkpoint"] == str(out / "checkpoint.pt")
    assert summary["epochs"] == summary["epochs_this_session"] == 1
    assert FaceEngine(dest).info.version == summary["version"]


def finished_tuning_run(tmp_path: Path) -> Path:
    """A tuning run folder as `tune-sface` leaves it when done: a (seeded, untrained) student and its record."""
    import torch

    from forensic_face.models.sface import SFaceNet

    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    torch.save(SFaceNet().state_dict(), run / "student.pt")
    (run / "record.json").write_text(json.dumps({"config": {"epochs": 0}, "history": []}))
    return run


def test_an_sface_student_is_exported_calibrated_and_evaluated(tiny_lfw: Path, isolated_cache, tiny_models: Path,
                                                               tmp_path: Path) -> None:
    """`tune-sface --export`: the student of a tuning run becomes the recogniser of a bundle beside the base
    bundle's autoencoder, embedding the face as found in its own 112-px five-point crop; it is calibrated on the
    calibration people, and the evaluation scores what the product searches with (the face as found, which the
    voice cannot change) beside the same recogniser on the reconstruction carried into its crop."""
    import torch

    from forensic_face.core.errors import ForensicFaceError
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.sface import SFaceNet
    from forensic_face.services.training import export_sface_student
    from forensic_face.training.evaluate import evaluate
    from forensic_face.training.split import load_split_data

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ForensicFaceError, match="no finished tuning run"):
        export_sface_student(tiny_lfw, run, tiny_models, tmp_path / "models", workers=1, progress=None)
    torch.manual_seed(0)
    torch.save(SFaceNet().state_dict(), run / "student.pt")
    (run / "record.json").write_text(json.dumps({"config": {"epochs": 0}, "history": []}))
    dest = tmp_path / "models"
    done = export_sface_student(tiny_lfw, run, tiny_models, dest, workers=1, progress=None)
    meta = json.loads((dest / "models.json").read_text())
    assert meta["recogniser"]["architecture"] == "sface" and meta["recogniser"]["embeds"] == "input"
    assert meta["record"]["autoencoder"]["from_bundle"] == json.loads((tiny_models / "models.json").read_text())[
        "version"] and done["version"] == meta["version"] and meta["calibration"] is not None
    engine = FaceEngine(dest, device="cpu")
    assert (engine.size, engine.rec_size, engine.rec_alignment) == (32, 112, "arcface")
    if engine.calibration.open_set is None:  # too few calibration searches here, as above
        from dataclasses import replace

        from forensic_face.models.calibration import fit_open_set_table

        strangers = np.random.default_rng(0).normal(0.0, 0.3, (400, 30))
        engine.calibration = replace(engine.calibration, open_set=fit_open_set_table(strangers, np.full(400, -1)))
    index, split, cache = load_split_data(tiny_lfw, workers=1)
    from forensic_face.training.evaluate import Reference

    torch.manual_seed(1)
    reference = Reference(SFaceNet().eval(), "a published recogniser", 0.363, "test")
    report = evaluate(engine, index, cache, split.test_pairs, {}, tmp_path / "eval.json", workers=1,
                      reference=reference)
    assert report["product_scores"] == "degraded"
    assert report["reference"]["name"] == "a published recogniser" and report["reference"]["threshold"] == 0.363
    ident = report["identification"]
    for name, lev in report["levels"].items():
        assert lev["degraded_with_audio"] == lev["degraded_no_audio"]  # the voice never reaches the embedding
        assert {"recon_with_audio", "recon_no_audio"} <= set(lev)
        assert lev["comparisons"]["ours_vs_dlib"]["a"] == "degraded_with_audio"
        # the published recogniser beside the product, on the same pairs, paired with it
        ref = lev["reference"]["at_0.363"]
        assert ref["tp"] + ref["fp"] + ref["fn"] + ref["tn"] == len(split.test_pairs)
        paired = lev["comparisons"]["ours_vs_reference"]
        assert paired["b"] == "reference" and paired["accuracy"]["accuracy_b"] == ref["accuracy"]
        assert paired["roc_auc"]["auc_b"] == ref["roc_auc"]
        searched = ident["levels"][name]["reference"]
        assert searched["rank_1"]["count"] <= searched["rank_5"]["count"] <= ident["enrolled_probes"]
        assert searched["rank_1_paired"]["accuracy_b"] == searched["rank_1"]["rate"]
        assert searched["rank_1_paired"]["accuracy_a"] == ident["levels"][name]["rank_1"]["rate"]
        assert searched["not_enrolled_no_confident_match"]["of"] == ident["not_enrolled_probes"]


def test_the_evaluate_command_prints_sface_as_published_beside_ours_or_says_why_not(
        tiny_lfw: Path, isolated_cache, tiny_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`forensic-face evaluate` on an SFace student's bundle: each level's line gives SFace as published (read
    from the shared weights folder) beside ours and dlib; without that file the command says so and still
    evaluates."""
    from forensic_face.cli import main
    from forensic_face.paths import shared_weights_dir
    from forensic_face.services.training import export_sface_student

    run = finished_tuning_run(tmp_path)
    dest = tmp_path / "models"
    export_sface_student(tiny_lfw, run, tiny_models, dest, workers=1, progress=None)
    args = ["evaluate", "--data", str(tiny_lfw), "--models", str(dest), "--workers", "1", "--precision", "float32"]
    weights = shared_weights_dir()
    if weights is not None and (weights / "face_recognition_sface_2021dec.onnx").is_file():
        pytest.importorskip("onnx", reason="reading the ONNX file needs the onnx package (pip install -e '.[dev]')")
        assert main([*args, "--out", str(tmp_path / "with.json")]) == 0
        lines = [ln for ln in capsys.readouterr().out.splitlines() if "accuracy: ours" in ln]
        assert len(lines) == 3 and all("SFace as published" in ln for ln in lines)
        report = json.loads((tmp_path / "with.json").read_text())
        assert report["reference"]["threshold"] == 0.363 and "0ba9fbfa01b5270c" in report["reference"]["source"]
    monkeypatch.setenv("FORENSIC_FACE_WEIGHTS", str(tmp_path / "no weights here"))
    assert main([*args, "--out", str(tmp_path / "without.json")]) == 0
    out = capsys.readouterr().out
    assert "SFace as published not measured" in out and out.count("accuracy: ours") == 3
    assert "not_measured" in json.loads((tmp_path / "without.json").read_text())["reference"]



def test_a_companion_cnn_is_joined_to_the_student_with_a_weight_chosen_on_the_calibration_people(
        tiny_lfw: Path, isolated_cache, tiny_models: Path, tmp_path: Path) -> None:
    """`tune-sface --export --companion BUNDLE`: the CNN of the reconstruction joins the student; its weight is
    the one of the grid that fits the calibration pairs best (recorded with the table), the calibration is fitted
    on the joined similarity, enrolment and search use the joined embedding, and the evaluation scores it (the
    voice now reaches it through the reconstruction)."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.services.training import export_sface_student
    from forensic_face.training.evaluate import COMPANION_RAMPS, COMPANION_WEIGHTS, evaluate
    from forensic_face.training.split import load_split_data

    run = finished_tuning_run(tmp_path)
    dest = tmp_path / "models"
    export_sface_student(tiny_lfw, run, tiny_models, dest, workers=1, progress=None, companion=tiny_models,
                         mirror=False)
    meta = json.loads((dest / "models.json").read_text())
    table = meta["record"]["companion_weight"]
    share, ramp = table["chosen"]
    assert share in COMPANION_WEIGHTS and ramp in COMPANION_RAMPS
    # no share from the sharp end up; the full share from ramp below it
    assert meta["companion"]["probe_weight"] == [share, 0.0]
    assert meta["companion"]["quality_range"] == [table["sharp_end"] - ramp, table["sharp_end"]]
    assert meta["companion"]["weight"] == table["gallery_weight"]
    assert table["mean_log_likelihood"][table["tried"].index(table["chosen"])] == max(table["mean_log_likelihood"])
    assert meta["recogniser"]["mirror"] is False and meta["calibration"] is not None
    assert meta["record"]["companion"]["from_bundle"] == json.loads((tiny_models / "models.json").read_text())[
        "version"]
    engine = FaceEngine(dest, device="cpu")
    assert engine.companion is not None and engine.searches_reconstruction
    index, split, cache = load_split_data(tiny_lfw, workers=1)
    if engine.calibration.open_set is None:  # too few calibration searches here
        from dataclasses import replace

        from forensic_face.models.calibration import fit_open_set_table

        strangers = np.random.default_rng(0).normal(0.0, 0.3, (400, 30))
        engine.calibration = replace(engine.calibration, open_set=fit_open_set_table(strangers, np.full(400, -1)))
    report = evaluate(engine, index, cache, split.test_pairs, {}, tmp_path / "eval.json", workers=1)
    assert report["product_scores"] == "recon" and "companion" in report["note_product"]
    assert report["engine"]["companion"]["probe_weight"] == [share, 0.0]
    for lev in report["levels"].values():
        assert lev["comparisons"]["ours_vs_dlib"]["a"] == "recon_with_audio"
        assert {"degraded_with_audio", "degraded_no_audio"} <= set(lev)


def published_onnx() -> Path:
    """SFace's ONNX file in the shared weights folder (the test skips without it or without the onnx package)."""
    from forensic_face.paths import shared_weights_dir

    weights = shared_weights_dir()
    if weights is None or not (weights / "face_recognition_sface_2021dec.onnx").is_file():
        pytest.skip("SFace's ONNX file is not in ../shared/weights (set FORENSIC_FACE_WEIGHTS)")
    pytest.importorskip("onnx", reason="reading the ONNX file needs the onnx package (pip install -e '.[dev]')")
    return weights / "face_recognition_sface_2021dec.onnx"


def test_sface_as_published_is_joined_for_sharp_probes_and_the_calibration_refitted(
        tiny_lfw: Path, isolated_cache, tiny_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`forensic-face join-sharp`: SFace as published (the shared weights folder's file, hash-checked) joins a joined
    bundle for sharp probes. Its share is chosen on the calibration people by the fixed rule (the table recorded;
    where no share beats none, the command refuses and writes nothing) or given, with a cross share if asked; the
    bundle then holds SFace's own weights, the calibration is refitted on the three-part similarity, the evaluation
    scores it and names it, and a file of another hash is refused."""
    import copy
    from dataclasses import replace

    import torch

    from forensic_face.cli import main
    from forensic_face.core.errors import ForensicFaceError
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.sface import SFaceNet
    from forensic_face.services.training import export_sface_student, join_sharp
    from forensic_face.training.evaluate import SHARP_RAMPS, SHARP_SHARES, choose_sharp_share, evaluate
    from forensic_face.training.sface_onnx import convert
    from forensic_face.training.split import load_split_data

    onnx = published_onnx()
    joined = tmp_path / "joined"
    export_sface_student(tiny_lfw, finished_tuning_run(tmp_path), tiny_models, joined, workers=1, progress=None,
                         companion=tiny_models)
    before = json.loads((joined / "models.json").read_text())
    chosen_dest = tmp_path / "chosen"
    try:
        done = join_sharp(tiny_lfw, joined, chosen_dest, onnx=onnx, workers=1, progress=None)
    except ForensicFaceError as exc:  # the rule kept the bundle without it (as on these test faces): nothing written
        assert "no sharp share beat" in str(exc) and not chosen_dest.exists()
        done = None
    else:
        table = json.loads((chosen_dest / "models.json").read_text())["record"]["sharp"]["share_choice"]
        assert done["chosen"] == table["chosen"] and table["chosen"]["T"] in SHARP_SHARES
    dest = tmp_path / "given"
    assert main(["join-sharp", "--data", str(tiny_lfw), "--models", str(joined), "--out", str(dest), "--onnx",
                 str(onnx), "--share", "0.5", "--ramp", "1", "--cross", "0.5", "--workers", "1"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "SFace as published joined for sharp probes (share 0.5" in said and "probe 0.5 against its gallery" in said
    meta = json.loads((dest / "models.json").read_text())
    sharp, q1 = meta["companion"]["sharp"], before["companion"]["quality_range"][1]
    assert sharp["share"] == 0.5 and sharp["quality_range"] == [q1 - 1.0, q1] and "as published" in sharp["source"]
    assert sharp["cross"] == 0.5 and meta["record"]["sharp"]["cross"] == 0.5
    assert meta["record"]["sharp"]["onnx_sha256"] == "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
    assert meta["calibration"] is not None and meta["calibration"] != before["calibration"]
    assert meta["version"] != before["version"] and json.loads((joined / "models.json").read_text()) == before
    engine = FaceEngine(dest, device="cpu", precision="float32")
    published = SFaceNet()
    published.load_state_dict(convert(onnx))
    faces = (np.random.default_rng(3).random((2, 112, 112)) * 255).astype(np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(faces[:, None] / 1.0).float().expand(-1, 3, -1, -1)
        by_hand = torch.nn.functional.normalize(published.eval()(x) + published(torch.flip(x, dims=[3])), dim=1)
    assert np.all((engine.embed_sharp(faces) * by_hand.numpy()).sum(1) > 0.9999)  # SFace's own, to float16
    index, split, cache = load_split_data(tiny_lfw, workers=1)
    # the rule join-sharp chose by (or refused on: it ran without a cross share), on the same calibration people:
    # the best eligible candidate
    plain = copy.copy(engine)
    plain.companion = replace(engine.companion, sharp=replace(engine.companion.sharp, cross=0.0))
    chosen, table = choose_sharp_share(plain, index, cache, split.calib_pairs, workers=1)
    assert len(table["tried"]) == 1 + len(SHARP_SHARES) * len(SHARP_RAMPS) and table["tried"]["T 0 R 1"]["eligible"]
    top, ramp = table["chosen"]["T"], table["chosen"]["R"]
    best = max(v["mean_rank_1"] for v in table["tried"].values() if v["eligible"])
    assert table["tried"][f"T {top:g} R {ramp:g}"]["mean_rank_1"] == best and top in (0.0, *SHARP_SHARES)
    assert ramp in SHARP_RAMPS
    assert (chosen is None) == (top == 0) == (done is None)  # refused exactly when no share beat none
    if engine.calibration.open_set is None:  # too few calibration searches here
        from forensic_face.models.calibration import fit_open_set_table

        strangers = np.random.default_rng(0).normal(0.0, 0.3, (400, 30))
        engine.calibration = replace(engine.calibration, open_set=fit_open_set_table(strangers, np.full(400, -1)))
    report = evaluate(engine, index, cache, split.test_pairs, {}, tmp_path / "eval.json", workers=1)
    assert report["engine"]["companion"]["sharp"]["share"] == 0.5 and "SFace as published" in report["note_product"]
    assert report["engine"]["companion"]["sharp"]["cross"] == 0.5
    assert all(0.0 <= lev["recon_no_audio"]["roc_auc"] <= 1.0 for lev in report["levels"].values())
    wrong = tmp_path / "other.onnx"
    wrong.write_bytes(b"not SFace")
    with pytest.raises(ForensicFaceError, match="SHA-256"):
        join_sharp(tiny_lfw, joined, tmp_path / "never", onnx=wrong, workers=1, progress=None)
    assert not (tmp_path / "never").exists()


def test_a_shipped_autoencoder_is_fine_tuned_with_an_identity_loss_through_its_frozen_recogniser(
        tiny_lfw: Path, isolated_cache, tmp_path: Path, tiny_sface_clip_models: Path) -> None:
    """``init_from`` starts from a bundle's networks, in its architecture whatever the configuration said; the
    autoencoder-only phase with ``ae_id_weight`` pulls the recogniser's embedding of the reconstruction towards its
    embedding of the clean face (closer than the same steps of the MSE alone bring it), the recogniser untouched;
    a bundle of another recogniser is refused."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    from forensic_face.models.bundle import load_networks, save_bundle
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig
    from forensic_face.training.train import TrainConfig, config_from_bundle, load_checkpoint, prepare, train

    torch.manual_seed(0)
    start = tmp_path / "start"
    save_bundle(start, FusionAutoencoder(AEConfig(size=32, width=8)), Recogniser(RecogniserConfig(size=32, width=8)),
                None, {"date": "test"})
    cfg = config_from_bundle(TrainConfig(size=32, variants=2, ae_width=4, rec_width=4, epochs=0, ae_epochs=4,
                                         rec_epochs=0, batch=4, warmup_steps=1, ae_lr=2e-3, ae_id_weight=50.0), start)
    assert (cfg.ae_width, cfg.rec_width, cfg.init_from) == (8, 8, str(start))
    with pytest.raises(ValueError, match="sface"):
        config_from_bundle(cfg, tiny_sface_clip_models)
    prep = prepare(tiny_lfw, cfg, workers=1)
    done = train(tiny_lfw, tmp_path / "run", cfg, workers=1, prep=prep)
    assert [h.get("phase") for h in done["history"]] == ["autoencoder"] * 4
    assert all("identity" in h and "mse" in h for h in done["history"])
    assert done["initialised_from"]["from_bundle"] == json.loads((start / "models.json").read_text())["version"]
    train(tiny_lfw, tmp_path / "mse", TrainConfig(**{**cfg.__dict__, "ae_id_weight": 0.0}), workers=1, prep=prep)
    ae0, rec0, _ = load_networks(start, torch.device("cpu"))
    ae1, rec1, _ = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    ae_mse, _, _ = load_checkpoint(tmp_path / "mse" / "checkpoint.pt")
    for (k, a), b in zip(rec0.state_dict().items(), rec1.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"the recogniser changed: {k}"
    x = torch.from_numpy(prep.arrays.degraded[:, 0].astype(np.float32) / 255)[:, None]
    y = torch.from_numpy(prep.arrays.target[:, 0].astype(np.float32) / 255)[:, None]
    with torch.no_grad():
        target = rec0(y)
        before, mse_only, after = (float((1 - F.cosine_similarity(rec0(m(x)), target)).mean())
                                   for m in (ae0, ae_mse, ae1))
    assert after < min(before, mse_only)
