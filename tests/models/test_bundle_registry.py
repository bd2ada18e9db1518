"""models.json names the recogniser's architecture; a bundle that names none (every bundle shipped before it
did) loads as the project's own CNN, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from forensic_face.core.errors import ForensicFaceError
from forensic_face.models.bundle import (
    DEFAULT_ARCHITECTURE,
    META_FILE,
    RECOGNISERS,
    WEIGHTS_FILE,
    load_networks,
    save_bundle,
)
from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import models_dir


def test_the_shipped_bundle_loads_the_network_it_names_with_exactly_its_tensors() -> None:
    """resources/models names its recogniser (a bundle naming none is the project's CNN): load_networks builds that
    network with exactly the stored tensors, which give the same embeddings as a network loaded by hand."""
    folder = models_dir()
    if not (folder / META_FILE).is_file():
        pytest.skip("no trained models in resources/models")
    meta = json.loads((folder / META_FILE).read_text())
    name = (meta.get("recogniser") or {}).get("architecture", DEFAULT_ARCHITECTURE)
    cls, config_cls = RECOGNISERS[name]
    _, rec, _ = load_networks(folder, torch.device("cpu"))
    assert type(rec) is cls and rec.config == config_cls(**meta["rec"])
    tensors = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    by_hand = cls(config_cls(**meta["rec"]))
    by_hand.load_state_dict({k[4:]: v.float() if v.is_floating_point() else v
                             for k, v in tensors.items() if k.startswith("rec.")})
    channels = 3 if name == "sface" else 1
    x = torch.rand(4, channels, rec.config.size, rec.config.size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(rec(x), by_hand.eval()(x))


def _tiny_ae() -> FusionAutoencoder:
    return FusionAutoencoder(AEConfig(size=32, width=4)).eval()


def test_a_bundle_names_its_recogniser_and_one_without_the_name_is_the_cnn(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rec = Recogniser(RecogniserConfig(size=32, width=4)).eval()
    meta = save_bundle(tmp_path, _tiny_ae(), rec, None, {"date": "test"})
    assert meta["recogniser"] == {"architecture": "ff-cnn", "source": "forensic-face train", "embeds": "reconstruction",
                                  "mirror": True}
    x = torch.rand(3, 1, 32, 32)
    _, loaded, _ = load_networks(tmp_path, torch.device("cpu"))
    stored = json.loads((tmp_path / META_FILE).read_text())
    del stored["recogniser"]  # as every bundle written before the field existed
    (tmp_path / META_FILE).write_text(json.dumps(stored))
    _, old_style, _ = load_networks(tmp_path, torch.device("cpu"))
    with torch.no_grad():
        assert type(old_style) is Recogniser and torch.equal(old_style(x), loaded(x))


def test_an_sface_bundle_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SFaceNet()
    with torch.no_grad():  # away from the initial statistics, so the batch norms' buffers are tested too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    meta = save_bundle(tmp_path, _tiny_ae(), net, None, {"date": "test"}, source="OpenCV Zoo SFace 2021dec",
                       embeds="input")
    assert meta["recogniser"] == {"architecture": "sface", "source": "OpenCV Zoo SFace 2021dec", "embeds": "input",
                                  "mirror": True}
    _, loaded, _ = load_networks(tmp_path, torch.device("cpu"))
    assert type(loaded) is SFaceNet
    x = torch.rand(2, 3, 112, 112) * 255
    with torch.no_grad():
        a, b = net(x), loaded(x)
    assert float(torch.nn.functional.cosine_similarity(a, b).min()) > 0.9999  # stored as float16


def test_an_unknown_architecture_is_refused_by_name(tmp_path: Path) -> None:
    save_bundle(tmp_path, _tiny_ae(), Recogniser(RecogniserConfig(size=32, width=4)), None, {"date": "test"})
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["recogniser"]["architecture"] = "resnet-9000"
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ForensicFaceError, match="'resnet-9000' is unknown"):
        load_networks(tmp_path, torch.device("cpu"))


def test_an_unregistered_network_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    save_bundle(tmp_path, _tiny_ae(), Recogniser(RecogniserConfig(size=32, width=4)), None, {"date": "test"})
    before = {f: (tmp_path / f).read_bytes() for f in (META_FILE, WEIGHTS_FILE)}
    with pytest.raises(ForensicFaceError, match="not a registered recogniser"):
        save_bundle(tmp_path, _tiny_ae(), torch.nn.Linear(2, 2), None, {"date": "test"})
    assert {f: (tmp_path / f).read_bytes() for f in (META_FILE, WEIGHTS_FILE)} == before


def test_a_bundle_without_mirror_averaging_embeds_each_face_once_under_a_version_of_its_own(tmp_path: Path) -> None:
    """The same weights with and without mirror averaging give different embeddings: the bundles get different
    versions (a gallery keeps its embeddings per version), the engine says which it does, and without it a face
    and its mirror image no longer embed alike."""
    from forensic_face.engine.inference import FaceEngine

    torch.manual_seed(0)
    rec, ae = Recogniser(RecogniserConfig(size=32, width=4)).eval(), _tiny_ae()
    both, once = tmp_path / "both", tmp_path / "once"
    a = save_bundle(both, ae, rec, None, {"date": "test"})
    b = save_bundle(once, ae, rec, None, {"date": "test"}, mirror=False)
    assert a["weights_sha256"] == b["weights_sha256"] and a["version"] != b["version"]
    assert b["recogniser"]["mirror"] is False
    averaged, single = FaceEngine(both, device="cpu"), FaceEngine(once, device="cpu")
    assert averaged.info.params["recogniser_mirror_averaged"] is True
    assert single.info.params["recogniser_mirror_averaged"] is False
    face = (np.random.default_rng(0).random((1, 32, 32)) * 255).astype(np.uint8)
    mirrored = face[:, :, ::-1]
    assert np.allclose(averaged.embed(face), averaged.embed(mirrored), atol=1e-5)
    assert not np.allclose(single.embed(face), single.embed(mirrored), atol=1e-3)
    with torch.no_grad():
        by_hand = torch.nn.functional.normalize(single.rec(torch.from_numpy(face[:, None] / 255.0).float()), dim=1)
    assert np.allclose(single.embed(face), by_hand.numpy(), atol=1e-4)
    meta = json.loads((once / META_FILE).read_text())
    meta["recogniser"]["mirror"] = "no"
    (once / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ForensicFaceError, match="mirror must be true or false"):
        FaceEngine(once, device="cpu")


def test_a_companion_recogniser_joins_the_similarity_with_its_weights(tmp_path: Path) -> None:
    """A bundle with a companion: gallery faces weigh the two recognisers by the companion's weight, a probe by its
    own share, read from its sharpness between the two ends of the quality range; a gallery face's embedding is a
    unit vector, a probe's a query whose inner product with it is the weighted mean of the two cosines (weights
    sqrt((1 - l)(1 - w)) and sqrt(l w)), so one similarity scale holds for every share, and a template pooled from
    several probes is such a query too; the engine records the weights; a companion that does not take the
    autoencoder's crop, or whose weights are out of range, is refused."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import Companion

    torch.manual_seed(0)
    ae = _tiny_ae()
    main, other = (Recogniser(RecogniserConfig(size=32, width=4)).eval() for _ in range(2))
    comp = Companion(other, 0.5, source="test", probe_weight=(0.4, 0.1), quality_range=(2.0, 6.0))
    meta = save_bundle(tmp_path / "b", ae, main, None, {"date": "test"}, companion=comp)
    # the same tensors joined with other weights embed otherwise: another version
    other_weights = save_bundle(tmp_path / "b2", ae, main, None, {"date": "test"},
                                companion=Companion(other, 0.5, source="test", probe_weight=(0.3, 0.1),
                                                    quality_range=(2.0, 6.0)))
    assert other_weights["weights_sha256"] == meta["weights_sha256"] and other_weights["version"] != meta["version"]
    engine = FaceEngine(tmp_path / "b", device="cpu")
    assert engine.info.params["companion"]["probe_weight"] == [0.4, 0.1] and engine.searches_reconstruction
    faces = (np.random.default_rng(1).random((4, 32, 32)) * 255).astype(np.uint8)
    gallery = engine.embed_searched(faces, faces)
    sharp = np.expm1(np.array([1.0, 2.0, 4.0, 9.0]))  # q below, at, inside and above the range
    probes = engine.embed_searched(faces, faces, sharpness=sharp)
    assert gallery.shape == (4, 2 * main.config.embed_dim)
    assert np.allclose(np.linalg.norm(gallery, axis=1), 1.0, atol=1e-5)
    share = np.array([0.4, 0.4, 0.25, 0.1])[:, None]
    w_main, w_comp = np.sqrt((1 - share) * 0.5), np.sqrt(share * 0.5)
    assert np.allclose(np.linalg.norm(probes, axis=1), 1.0 / (w_main + w_comp)[:, 0], atol=1e-5)
    a, c = engine.embed_parts(faces, faces)
    with torch.no_grad():
        x = torch.from_numpy(faces[:, None] / 255.0).float()
        by_hand = torch.nn.functional.normalize(other(x) + other(torch.flip(x, dims=[3])), dim=1).numpy()
    assert np.allclose(c, by_hand, atol=1e-4) and np.allclose(a, engine.embed(faces), atol=1e-6)
    expected = (w_main * (a @ a.T) + w_comp * (c @ c.T)) / (w_main + w_comp)
    assert np.allclose(probes @ gallery.T, expected, atol=1e-4)
    assert np.allclose(np.diag(probes @ gallery.T), 1.0, atol=1e-4)  # a face against itself: 1 at every share
    # a template pooled from the probes (the clip path): its similarity is again a weighted mean of cosines
    from forensic_face.engine.fusion import fuse

    template = fuse(probes, np.ones(4), engine.pooling)
    d = main.config.embed_dim
    t_main, t_comp = template[:d], template[d:]
    mean_main = (np.sqrt(0.5) * np.linalg.norm(t_main), np.sqrt(0.5) * np.linalg.norm(t_comp))
    by_cos = (mean_main[0] * (a @ (t_main / np.linalg.norm(t_main))) + mean_main[1] * (c @ (t_comp / np.linalg.norm(
        t_comp)))) / sum(mean_main)
    assert np.allclose(gallery @ template, by_cos, atol=1e-4) and np.all(gallery @ template <= 1 + 1e-5)
    with pytest.raises(ValueError, match="unit"):
        fuse(probes, np.ones(4))  # queries are not unit vectors: pooled only with the engine's query
    # a probe whose share is 0 (as sharp as the range's sharp end) is the recogniser's alone: its similarity is the
    # recogniser's cosine, and the companion's network is not run for it
    save_bundle(tmp_path / "z", ae, main, None, {"date": "test"},
                companion=Companion(other, 0.5, source="test", probe_weight=(0.4, 0.0), quality_range=(2.0, 6.0)))
    zero = FaceEngine(tmp_path / "z", device="cpu")
    seen, run = [], zero._comp_run
    zero._comp_run = lambda x: seen.append(len(x)) or run(x)
    two = zero.embed_searched(faces[:2], faces[:2], sharpness=np.expm1(np.array([1.0, 9.0])))
    assert seen == [1, 1]  # one face, then its mirror image: the blurred probe's
    assert np.allclose(two[1] @ zero.embed_searched(faces, faces).T, a[1] @ a.T, atol=1e-4)
    with pytest.raises(ForensicFaceError, match="between 0 and 1"):
        save_bundle(tmp_path / "c", ae, main, None, {"date": "test"}, companion=Companion(other, 1.0))
    with pytest.raises(ForensicFaceError, match="must embed the reconstruction"):
        save_bundle(tmp_path / "f", ae, main, None, {"date": "test"}, companion=Companion(other, 0.5, embeds="input"))
    with pytest.raises(ForensicFaceError, match="probe_weight"):
        save_bundle(tmp_path / "e", ae, main, None, {"date": "test"},
                    companion=Companion(other, 0.5, probe_weight=(0.4, 1.5), quality_range=(2.0, 6.0)))
    small = Recogniser(RecogniserConfig(size=24, width=4)).eval()
    save_bundle(tmp_path / "d", ae, main, None, {"date": "test"}, companion=Companion(small, 0.3))
    with pytest.raises(ForensicFaceError, match="companion recogniser does not take"):
        FaceEngine(tmp_path / "d", device="cpu")


def test_a_clip_calibration_scales_the_companion_share_of_the_frames_it_pools(tmp_path: Path) -> None:
    """The clip calibration's ``companion_share`` (chosen on calibration clips) scales each frame's companion share
    before a template is pooled: each frame enters as its two unit embeddings joined at the scaled share, so a
    template of one frame is that frame at half its share; without it (or at 1) a template pools the queries'
    own directions, as before; the scale is stored with the clip calibration (its digest changes, the version not)."""
    from forensic_face.engine.fusion import fuse
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import Companion, save_clip_calibration
    from forensic_face.models.calibration import MatchCalibration

    torch.manual_seed(0)
    main, other = (Recogniser(RecogniserConfig(size=32, width=4)).eval() for _ in range(2))
    comp = Companion(other, 0.5, source="test", probe_weight=(0.4, 0.1), quality_range=(2.0, 6.0))
    folder = tmp_path / "b"
    meta = save_bundle(folder, _tiny_ae(), main, None, {"date": "test"}, companion=comp)
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    save_clip_calibration(folder, cal, {"pairs": 0})
    own = FaceEngine(folder, device="cpu")
    save_clip_calibration(folder, cal, {"pairs": 0}, companion_share=0.5)
    halved = FaceEngine(folder, device="cpu")
    assert own.pooled_share == 1.0 and halved.pooled_share == 0.5 and halved.info.version == meta["version"]
    assert halved.clip_calibration_sha256 != own.clip_calibration_sha256
    faces = (np.random.default_rng(1).random((3, 32, 32)) * 255).astype(np.uint8)
    sharp = np.expm1(np.array([1.0, 4.0, 9.0]))  # shares 0.4, 0.25, 0.1
    probes = own.embed_searched(faces, faces, sharpness=sharp)
    a, c = own.embed_parts(faces, faces)
    d = main.config.embed_dim
    # the frames' own share: the queries' directions, pooled as before
    assert np.allclose(own.pooling.directions(probes), probes / np.linalg.norm(probes, axis=1, keepdims=True))
    # half the share: each frame's unit embeddings joined at l / 2
    half = np.array([0.2, 0.125, 0.05])[:, None]
    dirs = halved.pooling.directions(probes)
    assert np.allclose(dirs, np.concatenate([np.sqrt(1 - half) * a, np.sqrt(half) * c], axis=1), atol=1e-5)
    assert np.allclose(halved.pooling_at(0.0).directions(probes)[:, d:], 0.0)
    # a template of one frame is that frame's query at half its share: the similarity's companion part is smaller
    one = fuse(probes[:1], np.ones(1), halved.pooling)
    w_main, w_comp = np.sqrt((1 - 0.2) * 0.5), np.sqrt(0.2 * 0.5)
    gallery = own.embed_searched(faces, faces)
    assert np.allclose(gallery @ one, (w_main * (a @ a[0]) + w_comp * (c @ c[0])) / (w_main + w_comp), atol=1e-4)
    assert not np.allclose(fuse(probes, np.ones(3), halved.pooling), fuse(probes, np.ones(3), own.pooling))
    with pytest.raises(ValueError, match="non-zero"):
        own.pooling.directions(np.zeros((1, 2 * d)))
